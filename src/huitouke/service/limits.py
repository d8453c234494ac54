"""The request guard: body size limits and authentication before a body is read.

An ASGI middleware in front of every route. For a request that carries a body it

1. authenticates first — the API key of a ``/v1`` endpoint, the inbound token of the
   providers' callbacks — and answers 401 without reading a byte of the body when that
   fails, so an anonymous client cannot make the server buffer or parse anything; then
   checks the key's scope against the one the matched endpoint requires (its
   :func:`~huitouke.service.deps.require` dependency) and answers 403 just as early, so a
   read key cannot make a write endpoint read its body either;
2. answers 413 ``request.too_large`` at once when ``Content-Length`` exceeds the endpoint's
   limit, and otherwise counts the bytes as the application reads them: a body sent in
   chunks is cut off as soon as it passes the limit and answered 413, whatever the
   application was doing with it.

The limit is ``HUITOUKE_REQUEST_MAX_BYTES`` (2 MiB by default); a batch endpoint gets room for
its batch maximum (``orders_batch_max × orders_batch_event_bytes``). Rejections carry
``Connection: close``: the unread rest of the body is never read.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from huitouke.errors import AuthError, HuitoukeError, TooLargeError
from huitouke.i18n import t
from huitouke.service.apikeys import Scope as KeyScope
from huitouke.service.apikeys import check_scope
from huitouke.service.context import ServiceContext
from huitouke.service.deps import authenticated_key, required_scope
from huitouke.service.lang import negotiate_lang
from huitouke.settings import Settings

__all__ = ["BATCH_LIMITS", "RequestGuard", "body_limit"]

#: Endpoints that take a batch: their limit grows with the batch maximum.
BATCH_LIMITS: dict[str, Callable[[Settings], int]] = {
    "/v1/orders/batch": lambda s: s.orders_batch_max * s.orders_batch_event_bytes,
    # the console's Data page: an export file (multipart)
    "/data/imports": lambda s: s.console_upload_max_bytes,
}
#: Callbacks authenticated by the inbound token (``?token=``) instead of an API key.
_TOKEN_PATHS = ("/v1/inbound/", "/v1/receipts/")
#: Callbacks a platform signs over the raw body — the WeCom callback and the shop platforms'
#: webhooks: their route verifies the signature (and answers 401 without storing anything)
#: instead of an API key.
_SIGNED_PATHS = re.compile(r"^/v1/(wecom/callback|connectors/[a-z0-9_-]{1,32}/webhook)/?$")
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: (method, path) → the scope its endpoint requires; cleared when it grows past this size
_SCOPE_CACHE_MAX = 4096


def _scope_table(
    routes: Any,
) -> list[tuple[re.Pattern[str], frozenset[str], KeyScope | None]]:
    """Every endpoint of the app (included routers too, in the order the router tries them)
    as (path pattern, methods, the scope its key needs)."""
    table: list[tuple[re.Pattern[str], frozenset[str], KeyScope | None]] = []
    for route in iter_route_contexts(routes):
        pattern, dependant = getattr(route, "path_regex", None), getattr(route, "dependant", None)
        if pattern is None or not route.methods:
            continue
        needed = required_scope(dependant) if dependant is not None else None
        table.append((pattern, frozenset(route.methods), needed))
    return table


def body_limit(settings: Settings, path: str) -> int:
    """The most bytes of body ``path`` may receive."""
    batch = BATCH_LIMITS.get(path.rstrip("/"))
    base = settings.request_max_bytes
    return max(base, batch(settings)) if batch is not None else base


class _BodyTooLarge(Exception):
    """Raised into the application when a streamed body passes its limit."""


def _too_large(limit: int) -> TooLargeError:
    return TooLargeError(
        t("service.too_large", "en", limit=limit),
        code="request.too_large",
        message_zh=t("service.too_large", "zh", limit=limit),
        details={"limit_bytes": limit},
    )


class RequestGuard:
    def __init__(self, app: ASGIApp, ctx: ServiceContext) -> None:
        self.app = app
        self.ctx = ctx
        self._scopes: dict[tuple[str, str], KeyScope | None] = {}
        self._table: list[tuple[re.Pattern[str], frozenset[str], KeyScope | None]] | None = None

    def _endpoint_scope(self, scope: Scope) -> KeyScope | None:
        """The scope the endpoint this request will reach requires (None: no key, or no
        such endpoint — the router answers that)."""
        path: str = scope["path"]
        root: str = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :] or "/"  # routes match below the mount point
        cache_key = (scope["method"], path)
        if cache_key in self._scopes:
            return self._scopes[cache_key]
        if self._table is None:
            self._table = _scope_table(getattr(scope.get("app"), "routes", ()))
        found: KeyScope | None = None
        for pattern, methods, needed in self._table:
            if scope["method"] in methods and pattern.match(path):
                found = needed
                break
        if len(self._scopes) >= _SCOPE_CACHE_MAX:
            self._scopes.clear()
        self._scopes[cache_key] = found
        return found

    async def _reject(self, scope: Scope, receive: Receive, send: Send, exc: HuitoukeError) -> None:
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        lang = negotiate_lang(headers.get("accept-language"), self.ctx.settings.lang)
        response = JSONResponse(
            {"error": exc.to_dict(lang)},
            status_code=exc.http_status,
            headers={"Connection": "close"},
        )
        await response(scope, receive, send)

    async def _authenticate(self, scope: Scope) -> None:
        path: str = scope["path"]
        if path.startswith(_TOKEN_PATHS):
            from huitouke.messaging.bootstrap import inbound_token

            query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
            given = query.get("token", "")
            if not hmac.compare_digest(given.encode(), inbound_token(self.ctx.settings).encode()):
                raise AuthError(
                    "missing or wrong inbound token",
                    code="auth.bad_inbound_token",
                    message_zh="回调令牌缺失或错误",
                )
        elif path.startswith("/v1/") and not _SIGNED_PATHS.match(path):
            request = Request(scope)
            scheme, _, presented = request.headers.get("authorization", "").partition(" ")
            key = await authenticated_key(
                request, presented.strip() if scheme.lower() == "bearer" else None
            )
            needed = self._endpoint_scope(scope)
            if needed is not None:
                check_scope(key, needed)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        length_header = headers.get(b"content-length")
        chunked = b"chunked" in headers.get(b"transfer-encoding", b"").lower()
        try:
            declared = int(length_header) if length_header is not None else None
        except ValueError:
            declared = None
        has_body = chunked or (declared or 0) > 0 or scope["method"] in _BODY_METHODS
        if not has_body:
            await self.app(scope, receive, send)
            return
        limit = body_limit(self.ctx.settings, scope["path"])
        try:
            await self._authenticate(scope)
        except HuitoukeError as exc:
            await self._reject(scope, receive, send, exc)
            return
        if declared is not None and declared > limit:
            await self._reject(scope, receive, send, _too_large(limit))
            return

        received = 0
        exceeded = False
        started = False

        async def limited_receive() -> Message:
            nonlocal received, exceeded
            if exceeded:
                raise _BodyTooLarge
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    exceeded = True
                    raise _BodyTooLarge
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if exceeded:
                # whatever the application made of the cut-off body, the answer is 413
                if not started:
                    started = True
                    await self._reject(scope, receive, send, _too_large(limit))
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not exceeded:
                raise
            if not started:  # the cut-off body ended the application with an error
                started = True
                await self._reject(scope, receive, send, _too_large(limit))
