"""FastAPI dependencies: the shared context, the negotiated language, API-key scopes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Request, Security
from fastapi.dependencies.models import Dependant
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from huitouke.errors import AuthError
from huitouke.i18n import t
from huitouke.service.apikeys import SCOPES, ApiKey, Scope, authenticate, check_scope
from huitouke.service.context import ServiceContext
from huitouke.service.error_handlers import request_lang

__all__ = [
    "authenticated_key",
    "bearer",
    "get_ctx",
    "get_lang",
    "require",
    "required_scope",
]

bearer = HTTPBearer(
    auto_error=False,
    description="An API key from `huitouke apikey create --scope read|operator|admin`.",
)


_VERIFIED = "huitouke.verified_key"
#: the scope each dependency made by :func:`require` admits (read by :func:`required_scope`)
_SCOPE_OF: dict[Callable[..., Awaitable[ApiKey]], Scope] = {}


# Dependencies are ``async`` on purpose: FastAPI runs a plain ``def`` dependency in the
# thread pool, and a thread hop per dependency per request costs more than the work.
async def get_ctx(request: Request) -> ServiceContext:
    ctx: ServiceContext = request.app.state.ctx
    return ctx


async def get_lang(request: Request) -> str:
    return request_lang(request)


async def authenticated_key(request: Request, presented: str | None) -> ApiKey:
    """The active key ``presented`` (from the worker's cache or the store); :class:`AuthError`
    when it is missing, unknown or revoked. The request guard calls it before a body is
    read, the scope dependencies after."""
    if not presented:
        raise AuthError(
            t("service.missing_key", "en"),
            code="auth.missing_key",
            message_zh=t("service.missing_key", "zh"),
        )
    # verified once per request: the guard's check serves the scope dependency too
    state: dict[str, object] = request.scope.setdefault("state", {})
    verified = state.get(_VERIFIED)
    if isinstance(verified, tuple) and verified[0] == presented:
        return verified[1]
    ctx: ServiceContext = request.app.state.ctx
    key = ctx.keys.get(presented)
    if key is None:

        def lookup() -> ApiKey:
            with ctx.store.connect() as conn:
                return authenticate(conn, presented)

        key = await run_in_threadpool(lookup)
        ctx.keys.put(presented, key)
    state[_VERIFIED] = (presented, key)
    return key


def require(scope: Scope) -> Callable[..., Awaitable[ApiKey]]:
    """A dependency that admits keys of ``scope`` or higher (read < operator < admin)."""

    async def dependency(
        request: Request,
        credentials: HTTPAuthorizationCredentials | None = Security(bearer),
    ) -> ApiKey:
        key = await authenticated_key(request, credentials.credentials if credentials else None)
        check_scope(key, scope)
        request.state.api_key = key
        return key

    dependency.__name__ = f"require_{scope}"
    _SCOPE_OF[dependency] = scope
    return dependency


def required_scope(dependant: Dependant) -> Scope | None:
    """The highest scope the :func:`require` dependencies of an endpoint (its own, its
    router's, and those of its dependencies) ask for; None for an endpoint without a key."""
    found: list[Scope] = []
    stack = [dependant]
    while stack:
        d = stack.pop()
        scope = _SCOPE_OF.get(d.call) if d.call is not None else None
        if scope is not None:
            found.append(scope)
        stack.extend(d.dependencies)
    return max(found, key=SCOPES.index) if found else None
