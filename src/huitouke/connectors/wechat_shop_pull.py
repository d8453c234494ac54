"""Pulling orders from WeChat 小店: ``/channels/ec/order/list/get`` by update time, then each
order's ``/channels/ec/order/get``.

Access token: ``POST <base>/cgi-bin/stable_token`` with ``{"grant_type":
"client_credential", "appid", "secret", "force_refresh"}`` → ``{"access_token",
"expires_in"}`` (the stable token WeChat recommends: asking again does not invalidate the
one other programs of the same app hold). It travels in the query string
(``?access_token=…``) as WeChat's API wants, and is blanked out of any error recorded.

Order list: ``POST /channels/ec/order/list/get?access_token=…`` with
``{"update_time_range": {"start_time", "end_time"}, "page_size", "next_key"}`` (Unix
seconds; at most **7 days** apart; ``page_size`` ≤ 100) → ``{"errcode": 0, "order_id_list":
[…], "next_key", "has_more"}``; each id then ``POST /channels/ec/order/get`` ``{"order_id"}``
→ ``{"errcode": 0, "order": {…}}``.

The puller asks in windows (``window``, one day by default, never over 7), follows
``next_key`` while ``has_more``, and only a window's last page carries a time (the window's
end), so the connector's mark passes a window once all of it is recorded. The next window
starts at the previous one's end (whether the API includes a range's ends is not
documented), and an order of that second already read with the previous window, unchanged,
is not handed on twice. WeChat does not document how
``next_key`` pages behave when an order is updated meanwhile; such an order's new update
time is after the sync's end, so the next sync (from the mark less its overlap) brings it.

Errors (``errcode`` ≠ 0): ``42001`` (token expired), ``40001`` and ``40014`` (token not
valid) get a fresh token (``force_refresh``) and the request again, once; ``45009`` (the
API's call quota reached), ``45011`` (its per-minute frequency) and ``-1`` (system busy)
are waited out — a pause doubling from 1 s, at most 30 s, ``_LIMITED_TRIES`` times —; the
others are :class:`~huitouke.connectors.model.PlatformError` with WeChat's code. HTTP
429/503 as for every platform.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from huitouke.connectors.http import JsonClient
from huitouke.connectors.model import PlatformError
from huitouke.connectors.pull import Page

__all__ = ["LIST_PATH", "ORDER_PATH", "TOKEN_PATH", "WeChatShopPuller"]

TOKEN_PATH = "/cgi-bin/stable_token"
LIST_PATH = "/channels/ec/order/list/get"
ORDER_PATH = "/channels/ec/order/get"
#: the API's longest update-time range
MAX_WINDOW = timedelta(days=7)
_TOKEN_INVALID = frozenset({42001, 40001, 40014})
_LIMITED = frozenset({45009, 45011, -1})
_LIMITED_TRIES = 10


def _now() -> datetime:
    return datetime.now(UTC)


def _error(code: Any, msg: Any, path: str) -> PlatformError:
    detail = f"{code} {str(msg or '')[:300]}".strip()
    return PlatformError(
        f"WeChat answered error {detail} ({path})",
        code="connector.platform_error",
        message_zh=f"微信返回错误 {detail}({path})",
        details={"platform_code": str(code), "path": path},
    )


class WeChatShopPuller:
    def __init__(
        self,
        client: JsonClient,
        appid: str,
        secret: str,
        *,
        page_size: int = 100,
        window: timedelta = timedelta(days=1),
        backfill: timedelta = timedelta(days=90),
        now: Callable[[], datetime] = _now,
    ) -> None:
        self.client = client
        self.appid = appid
        self.secret = secret
        self.page_size = min(page_size, 100)
        self.window = min(window, MAX_WINDOW)
        self.backfill = backfill
        self.now = now
        self._token: str | None = None

    # -- requests -------------------------------------------------------------------------
    def _redact(self, exc: PlatformError) -> PlatformError:
        hidden = [s for s in (self._token, self.secret) if s]

        def clean(s: Any) -> Any:
            if not isinstance(s, str):
                return s
            for h in hidden:
                s = s.replace(quote(h, safe=""), "***").replace(h, "***")
            return s

        return PlatformError(
            clean(exc.message),
            code=exc.code,
            message_zh=clean(exc.message_zh),
            details={k: clean(v) for k, v in exc.details.items()},
        )

    def _post(self, path: str, body: Mapping[str, Any]) -> Mapping[str, Any]:
        try:
            got = self.client.request("POST", path, body=body).body
        except PlatformError as exc:
            raise self._redact(exc) from None
        if not isinstance(got, Mapping):
            raise PlatformError(
                "WeChat answered something other than a JSON object",
                code="connector.platform_error",
                message_zh="微信返回的不是 JSON 对象",
            )
        return got

    def token(self, *, refresh: bool = False) -> str:
        """The access token (asked once per puller; ``refresh``: a new one)."""
        if self._token is not None and not refresh:
            return self._token
        got = self._post(
            TOKEN_PATH,
            {
                "grant_type": "client_credential",
                "appid": self.appid,
                "secret": self.secret,
                "force_refresh": refresh,
            },
        )
        token = got.get("access_token")
        if got.get("errcode") not in (None, 0) or not isinstance(token, str) or not token:
            raise self._redact(_error(got.get("errcode"), got.get("errmsg"), TOKEN_PATH))
        self._token = token
        return token

    def call(self, path: str, body: Mapping[str, Any]) -> Mapping[str, Any]:
        """One API call with the token, its expiry and WeChat's limits handled."""
        refreshed, backoff = False, 1.0
        for _ in range(_LIMITED_TRIES):
            token = self.token()
            got = self._post(f"{path}?access_token={quote(token, safe='')}", body)
            try:
                code = int(got.get("errcode") or 0)
            except (TypeError, ValueError):
                code = -2
            if code == 0:
                return got
            if code in _TOKEN_INVALID and not refreshed:
                refreshed = True
                self.token(refresh=True)
                continue
            if code in _LIMITED:
                self.client._wait(backoff)
                backoff = min(backoff * 2, 30.0)
                continue
            raise self._redact(_error(code, got.get("errmsg"), path))
        raise PlatformError(
            "WeChat kept answering that the call limit is reached",
            code="connector.platform_error",
            message_zh="微信持续返回调用频率或次数超限",
            details={"path": path},
        )

    def order(self, order_id: str) -> Mapping[str, Any] | None:
        """One order's detail (``None``: WeChat answered without an order)."""
        got = self.call(ORDER_PATH, {"order_id": order_id})
        order = got.get("order")
        return order if isinstance(order, Mapping) else None

    # -- pages ----------------------------------------------------------------------------
    def _window(self, start: datetime, end: datetime, edge: set[tuple[str, Any]]) -> Iterator[Page]:
        """The pages of one window; ``edge``: the orders of the previous window's last
        second (the one both ask for), left out here, then this window's last second's."""
        key: str | None = None
        last = int(end.timestamp())
        next_edge: set[tuple[str, Any]] = set()
        while True:
            body: dict[str, Any] = {
                "update_time_range": {
                    "start_time": int(start.timestamp()),
                    "end_time": int(end.timestamp()),
                },
                "page_size": self.page_size,
            }
            if key:
                body["next_key"] = key
            got = self.call(LIST_PATH, body)
            ids = got.get("order_id_list") or []
            orders = []
            for oid in ids if isinstance(ids, list) else []:
                order = self.order(str(oid))
                if order is None:
                    continue
                stamp = (str(oid), order.get("update_time"))
                if stamp in edge:
                    continue  # recorded with the previous window
                if str(order.get("update_time")) == str(last):
                    next_edge.add(stamp)
                orders.append(order)
            more = got.get("has_more") is True and bool(got.get("next_key"))
            if not more:
                edge.clear()
                edge.update(next_edge)
                yield Page(orders, end)
                return
            yield Page(orders, None)
            key = str(got.get("next_key"))

    def pages(self, since: datetime | None) -> Iterator[Page]:
        end = self.now().replace(microsecond=0)
        start = (end - self.backfill if since is None else since).replace(microsecond=0)
        edge: set[tuple[str, Any]] = set()
        while start < end:
            stop = min(start + self.window, end)
            yield from self._window(start, stop, edge)
            start = stop
