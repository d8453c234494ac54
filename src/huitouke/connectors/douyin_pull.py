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
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from huitouke.connectors import douyin
from huitouke.connectors.http import JsonClient
from huitouke.connectors.model import PlatformError
from huitouke.connectors.pull import WindowedPuller, redacted
from huitouke.connectors.youzan import wire_time

__all__ = ["LIST_METHOD", "DouyinPuller"]

LIST_METHOD = "order.searchList"
DETAIL_METHOD = "order.orderDetail"
SUCCESS = 10000
#: the flow-control code (限流) of the open platform's answers
RATE_LIMITED = 90000
_LIMITED_TRIES = 10


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
    ) -> None:
        self.client = client
        self.app_key = app_key
        self.secret = secret
        self.token = access_token
        self.sign_method = sign_method
        self.page_size = min(page_size, 100)  # order.searchList's size maximum
        self.window = window
        self.backfill = backfill
        self.now = now

    def _redact(self, exc: PlatformError) -> PlatformError:
        return redacted(exc, self.token)

    def signed(self, method: str, params: Mapping[str, Any]) -> tuple[str, bytes]:
        """The request's path with its signed query, and its body."""
        body = douyin.param_json(params)
        timestamp = wire_time(self.now())
        query = {
            "app_key": self.app_key,
            "method": method,
            "access_token": self.token,
            "timestamp": timestamp,
            "v": douyin.API_VERSION,
            "sign_method": self.sign_method,
            "sign": douyin.sign(
                self.app_key, self.secret, method, body, timestamp, sign_method=self.sign_method
            ),
        }
        return "/" + method.replace(".", "/") + "?" + urlencode(query), body.encode("utf-8")

    def call(self, method: str, params: Mapping[str, Any]) -> Mapping[str, Any]:
        """One API call's ``data``; flow control waited out, errors raised."""
        backoff = 1.0
        for _ in range(_LIMITED_TRIES):
            path, body = self.signed(method, params)
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
                raise PlatformError(
                    f"Douyin answered error {detail[:300]}",
                    code="connector.platform_error",
                    message_zh=f"抖店返回错误 {detail[:300]}",
                    details={"platform_code": str(code), "sub_code": str(got.get("sub_code"))},
                )
            data = got.get("data")
            return data if isinstance(data, Mapping) else {}
        raise PlatformError(
            "Douyin kept answering flow control (code 90000)",
            code="connector.platform_error",
            message_zh="抖店持续返回限流(90000)",
        )

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
