"""Pulling orders from Douyin 抖店: ``order.searchList`` by update time.

``POST <base>/order/searchList?app_key=…&method=order.searchList&access_token=…&timestamp=…
&v=2&sign_method=…&sign=…`` with the body ``param_json`` — the signed text itself
(:func:`huitouke.connectors.douyin.param_json`): ``{"update_time_start",
"update_time_end"`` (Unix seconds), ``"order_by": "update_time", "order_asc": false,
"page"`` (from 0), ``"size"`` (≤ 100)``}``. The answer is ``{"code": 10000, "msg",
"sub_code", "sub_msg", "log_id", "data": {"shop_order_list", "page", "size", "total"}}``;
another ``code`` is an error.

The puller asks in windows (``window``, one day; a first sync reaches back ``backfill``, 90
days), pages through a whole window (newest update first) and asks it again when its
``total`` changed while paged — an order updated meanwhile leaves the window for a later
one, and every order after it moves one place up. Only a window's last page carries a time
(the window's end), so the connector's mark passes a window only once all of it is
recorded. Consecutive windows share their boundary second (whether the platform's range is
inclusive is not said), which records an order at that second twice — changing nothing.

Rate limiting: HTTP 429/503 as for every platform; an answer with ``code`` 90000 (the open
platform's flow-control code as we read its error table) is waited out — a pause doubling
from 1 s, at most ``_LIMITED_TRIES`` times — and asked again. The access token travels in
the query string and is blanked out of any error that names the URL.

Access token (店铺授权): a shop's ``access_token`` expires (seven days after it was issued);
its ``refresh_token`` (valid 14 days) gets a new pair with ``token.refresh`` — ``POST
<base>/token/refresh?app_key=…&method=token.refresh&timestamp=…&v=2&sign_method=…&sign=…``
(signed as every call, no access token) with ``param_json`` ``{"grant_type":
"refresh_token", "refresh_token"}`` → ``data: {"access_token", "expires_in", "refresh_token",
"scope", "shop_id", "shop_name", "authority_id", "auth_subject_type"}``. The platform's
notes: refreshed more than an hour before the expiry, the same pair comes back unchanged;
within the last hour, a new pair, the old one valid an hour more; after the expiry, a new
pair and the old one void. So the puller refreshes

- ahead, when it knows the expiry (from its last refresh) and less than ``REFRESH_AHEAD``
  is left, and
- when an answer says the token expired or is unknown (``code`` 40003, ``sub_code``
  ``isv.access-token-expired`` or ``isv.access-token-no-existed`` — the two the open
  platform's SDKs refresh on), then asks again, once.

``expires_in`` is the token's lifetime in seconds; a value past 10⁹ is read as the expiry
itself in Unix seconds (one SDK documents the field so). Each new pair is handed to the
``tokens`` store (the connector keeps it sealed, as every credential) before it is used;
before refreshing, the store is read again: another process that refreshed meanwhile has
stored a token this one has not seen, and that one is used (a second refresh after the
expiry would void the first one's pair). Without a refresh token, or when the platform
refuses it (``code`` 50001/50002, e.g. ``dop.token-generate-failed:token-expired``), the
sync stops with an error saying the shop must be authorised again.

The first pair comes from ``token.create`` (``POST <base>/token/create``, signed the same
way, no access token): ``param_json`` ``{"code", "grant_type": "authorization_code"}`` with
the code the merchant's authorisation of a tool app returned, or ``{"code": "",
"grant_type": "authorization_self", "shop_id"}`` for the merchant's own self-use app (as
the open platform's SDKs build it); the answer's ``data`` is the same as a refresh's.
``connectors add douyin … --auth-code CODE`` (or ``--shop SHOP_ID`` with no token) calls it
once and stores the pair sealed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from urllib.parse import urlencode

from huitouke.connectors import douyin
from huitouke.connectors.http import JsonClient
from huitouke.connectors.model import PlatformError
from huitouke.connectors.pull import WindowedPuller, redacted
from huitouke.connectors.youzan import wire_time

__all__ = [
    "LIST_METHOD",
    "REFRESH_AHEAD",
    "REFRESH_METHOD",
    "TOKEN_EXPIRED",
    "DouyinPuller",
    "DouyinToken",
    "TokenStore",
]

LIST_METHOD = "order.searchList"
DETAIL_METHOD = "order.orderDetail"
SUCCESS = 10000
#: the flow-control code (限流) of the open platform's answers
RATE_LIMITED = 90000
_LIMITED_TRIES = 10
REFRESH_METHOD = "token.refresh"
#: the call that issues a shop's first token pair: an authorisation code (a tool app the
#: merchant authorised, ``grant_type=authorization_code``) or a shop id (the merchant's own
#: self-use app, ``grant_type=authorization_self`` with ``code`` empty)
CREATE_METHOD = "token.create"
#: the ``sub_code`` of an answer whose access token expired or is unknown (code 40003)
TOKEN_EXPIRED = frozenset({"isv.access-token-expired", "isv.access-token-no-existed"})
#: refresh ahead when less than this is left of the token's life
REFRESH_AHEAD = timedelta(minutes=30)
#: an ``expires_in`` past this is an instant (Unix seconds), not a lifetime
_INSTANT_FROM = 1_000_000_000


@dataclass(frozen=True)
class DouyinToken:
    """A shop's access token, the refresh token that renews it, and its expiry (when known)."""

    access_token: str
    refresh_token: str | None = None
    expires_at: datetime | None = None


class TokenStore(Protocol):
    """Where a connector keeps its Douyin token (sealed)."""

    def load(self) -> DouyinToken | None: ...

    def save(self, token: DouyinToken) -> None: ...


def _auth_error(en: str, zh: str, **details: str) -> PlatformError:
    return PlatformError(
        en, code="connector.platform_error", message_zh=zh, details={"kind": "douyin", **details}
    )


def _now() -> datetime:
    return datetime.now(UTC)


class DouyinPuller(WindowedPuller):
    platform = ("Douyin", "抖店")
    listing = ("orders updated", "更新")
    wire_time = staticmethod(wire_time)
    share_boundary = True
    last_to_first = False
    first_page = 0

    def __init__(
        self,
        client: JsonClient,
        app_key: str,
        secret: str,
        access_token: str,
        *,
        sign_method: str = "hmac-sha256",
        page_size: int = 100,
        window: timedelta = timedelta(days=1),
        backfill: timedelta = timedelta(days=90),
        now: Callable[[], datetime] = _now,
        refresh_token: str | None = None,
        expires_at: datetime | None = None,
        tokens: TokenStore | None = None,
    ) -> None:
        self.client = client
        self.app_key = app_key
        self.secret = secret
        self.token = access_token
        self.refresh_token = refresh_token
        self.expires_at = expires_at
        self.tokens = tokens
        #: the access tokens this puller held before its refreshes (blanked out of errors)
        self._old_tokens: list[str] = []
        self.sign_method = sign_method
        self.page_size = min(page_size, 100)  # order.searchList's size maximum
        self.window = window
        self.backfill = backfill
        self.now = now

    def _redact(self, exc: PlatformError) -> PlatformError:
        for secret in (self.token, *self._old_tokens, self.refresh_token):
            if secret:
                exc = redacted(exc, secret)
        return exc

    def signed(
        self, method: str, params: Mapping[str, Any], *, token: bool = True
    ) -> tuple[str, bytes]:
        """The request's path with its signed query, and its body (``token``: with the
        access token, which every call but ``token.refresh`` carries)."""
        body = douyin.param_json(params)
        timestamp = wire_time(self.now())
        query = {"app_key": self.app_key, "method": method}
        if token:
            query["access_token"] = self.token
        query |= {
            "timestamp": timestamp,
            "v": douyin.API_VERSION,
            "sign_method": self.sign_method,
            "sign": douyin.sign(
                self.app_key, self.secret, method, body, timestamp, sign_method=self.sign_method
            ),
        }
        return "/" + method.replace(".", "/") + "?" + urlencode(query), body.encode("utf-8")

    # -- the access token ---------------------------------------------------------------------
    def _due(self) -> bool:
        return self.expires_at is not None and self.now() >= self.expires_at - REFRESH_AHEAD

    def _adopt(self, token: DouyinToken) -> None:
        if token.access_token != self.token:
            self._old_tokens.append(self.token)
        self.token = token.access_token
        self.refresh_token = token.refresh_token or self.refresh_token
        self.expires_at = token.expires_at

    def refresh(self) -> DouyinToken:
        """A new access token (``token.refresh``), stored before it is used; a token another
        process stored meanwhile is taken instead of refreshing again."""
        stored = self.tokens.load() if self.tokens is not None else None
        if stored is not None and stored.access_token != self.token:
            self._adopt(stored)
            if not self._due():
                return stored
        if not self.refresh_token:
            raise _auth_error(
                "Douyin's access token has expired and the connector has no refresh token: "
                "authorise the shop again and add the connector with --refresh-token",
                "抖店 access_token 已过期且连接器没有 refresh_token:请重新授权店铺,"
                "并用 --refresh-token 重新添加连接器",
            )
        data = self._answer(
            REFRESH_METHOD,
            {"grant_type": "refresh_token", "refresh_token": self.refresh_token},
            token=False,
        )
        new = _token(data, self.now())
        if new is None:
            raise _auth_error(
                "Douyin's token.refresh answered no access_token",
                "抖店 token.refresh 未返回 access_token",
            )
        if self.tokens is not None:
            self.tokens.save(new)
        self._adopt(new)
        return new

    def create_token(self, *, code: str | None = None, shop_id: str | None = None) -> DouyinToken:
        """The shop's first token pair (``token.create``, signed, no access token): from
        the authorisation ``code`` the merchant's authorisation returned, or for the
        merchant's own app from its ``shop_id``. Adopted by this puller and answered (the
        caller stores it)."""
        if code:
            params: dict[str, Any] = {"code": code, "grant_type": "authorization_code"}
        elif shop_id:
            params = {"code": "", "grant_type": "authorization_self", "shop_id": str(shop_id)}
        else:
            raise ValueError("token.create needs an authorisation code or a shop id")
        data = self._answer(CREATE_METHOD, params, token=False)
        new = _token(data, self.now())
        if new is None:
            raise _auth_error(
                "Douyin's token.create answered no access_token",
                "抖店 token.create 未返回 access_token",
            )
        self._adopt(new)
        return new

    def _answer(
        self, method: str, params: Mapping[str, Any], *, token: bool = True
    ) -> Mapping[str, Any]:
        """One call's ``data``; flow control waited out, errors raised (``token.refresh``
        refused: the shop must be authorised again)."""
        backoff = 1.0
        for _ in range(_LIMITED_TRIES):
            path, body = self.signed(method, params, token=token)
            try:
                got = self.client.request("POST", path, body=body).body
            except PlatformError as exc:
                raise self._redact(exc) from None
            if not isinstance(got, Mapping):
                raise PlatformError(
                    "Douyin answered something other than a JSON object",
                    code="connector.platform_error",
                    message_zh="抖店返回的不是 JSON 对象",
                )
            code = got.get("code")
            if str(code) == str(RATE_LIMITED):
                self.client._wait(backoff)
                backoff = min(backoff * 2, 30.0)
                continue
            if str(code) != str(SUCCESS):
                detail = (
                    f"{code} {got.get('msg') or ''} {got.get('sub_code') or ''} "
                    f"{got.get('sub_msg') or ''}"
                ).strip()
                details = {"platform_code": str(code), "sub_code": str(got.get("sub_code"))}
                if method == CREATE_METHOD:
                    raise self._redact(
                        _auth_error(
                            f"Douyin refused to issue the shop's token ({detail[:300]}): check "
                            "the app key and secret, and authorise the shop again for a new "
                            "code (a code is used once and lasts minutes)",
                            f"抖店未能签发店铺令牌({detail[:300]}):请检查 app_key 与 "
                            "app_secret,并重新授权店铺获取新的 code(code 只能用一次,几分钟内有效)",
                            **details,
                        )
                    )
                if method == REFRESH_METHOD:
                    raise self._redact(
                        _auth_error(
                            f"Douyin refused the refresh token ({detail[:300]}): authorise "
                            "the shop again and add the connector with the new tokens",
                            f"抖店拒绝了 refresh_token({detail[:300]}):请重新授权店铺,"
                            "并用新的令牌重新添加连接器",
                            **details,
                        )
                    )
                raise self._redact(
                    PlatformError(
                        f"Douyin answered error {detail[:300]}",
                        code="connector.platform_error",
                        message_zh=f"抖店返回错误 {detail[:300]}",
                        details=details,
                    )
                )
            data = got.get("data")
            return data if isinstance(data, Mapping) else {}
        raise PlatformError(
            "Douyin kept answering flow control (code 90000)",
            code="connector.platform_error",
            message_zh="抖店持续返回限流(90000)",
        )

    def call(self, method: str, params: Mapping[str, Any]) -> Mapping[str, Any]:
        """One API call's ``data``: the token refreshed ahead of its expiry, or once when the
        platform says it expired; flow control waited out, errors raised."""
        if self._due():
            self.refresh()
        try:
            return self._answer(method, params)
        except PlatformError as exc:
            if exc.details.get("sub_code") not in TOKEN_EXPIRED:
                raise
        self.refresh()
        return self._answer(method, params)

    def _page(self, start: datetime, end: datetime, page: int) -> tuple[list[Any], int]:
        data = self.call(
            LIST_METHOD,
            {
                "update_time_start": int(start.timestamp()),
                "update_time_end": int(end.timestamp()),
                "order_by": "update_time",
                "order_asc": False,
                "page": page,
                "size": self.page_size,
            },
        )
        rows = data.get("shop_order_list") or []
        try:
            total = int(data.get("total") or 0)
        except (TypeError, ValueError):
            total = 0
        return (list(rows) if isinstance(rows, list) else []), total

    def order(self, order_id: str) -> Mapping[str, Any] | None:
        """One shop order by its id (``order.orderDetail``); ``None``: not in the shop."""
        data = self.call(DETAIL_METHOD, {"shop_order_id": order_id})
        got = data.get("shop_order_detail")
        return got if isinstance(got, Mapping) else None


def _token(data: Mapping[str, Any], now: datetime) -> DouyinToken | None:
    """The pair ``token.create`` / ``token.refresh`` answer; ``None`` without a token."""
    access = data.get("access_token")
    if not isinstance(access, str) or not access:
        return None
    refresh = data.get("refresh_token")
    expires_at: datetime | None = None
    try:
        n = int(data.get("expires_in") or 0)
    except (TypeError, ValueError):
        n = 0
    if n >= _INSTANT_FROM:
        expires_at = datetime.fromtimestamp(n, UTC)
    elif n > 0:
        expires_at = now + timedelta(seconds=n)
    return DouyinToken(
        access, refresh if isinstance(refresh, str) and refresh else None, expires_at
    )
