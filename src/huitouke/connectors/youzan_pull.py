"""Pulling trades from Youzan Cloud: ``youzan.trades.sold.get`` by update time.

``POST <base>/api/youzan.trades.sold.get/4.0.4?access_token=…`` with a JSON body
``{"start_update", "end_update", "page_no", "page_size"}`` (times ``yyyy-MM-dd HH:mm:ss``
in China Standard Time); the answer is Youzan's envelope ``{"success", "code", "message",
"data": {"total_results", "full_order_info_list": [{"full_order_info": {…}}]}}``; an error
is ``success: false`` with a ``code`` and ``message`` (or the gateway's ``gw_err_resp``).

Youzan does not say in which order a page lists the trades of a range, and the range's
content moves while it is paged (a trade updated meanwhile leaves it, and every later trade
moves one place up). So the puller asks in windows (``window``, one day by default; the
first sync reaches back ``backfill`` days), pages through a whole window, and asks the
window again when its ``total_results`` changed while it was paged (a trade that left it
is in a later window). Only a window's last page carries a time — the window's end — so
the connector's mark moves past a window only once all of it has been recorded: a sync
killed inside a window asks for that window again, which changes nothing.

HTTP 429/503 are waited out by :class:`~huitouke.connectors.http.JsonClient`. The access
token travels in the query string, as Youzan's SDKs send it; it is blanked out of any
error that names the URL.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from huitouke.connectors import youzan
from huitouke.connectors.http import JsonClient
from huitouke.connectors.model import PlatformError
from huitouke.connectors.pull import WindowedPuller, redacted

__all__ = ["METHOD", "YouzanPuller"]

METHOD = "youzan.trades.sold.get"


def _now() -> datetime:
    return datetime.now(UTC)


class YouzanPuller(WindowedPuller):
    platform = ("Youzan", "有赞")
    listing = ("trades updated", "更新")
    wire_time = staticmethod(youzan.wire_time)
    last_to_first = False

    def __init__(
        self,
        client: JsonClient,
        access_token: str,
        *,
        page_size: int = 100,
        window: timedelta = timedelta(days=1),
        backfill: timedelta = timedelta(days=90),
        now: Callable[[], datetime] = _now,
    ) -> None:
        self.client = client
        self.token = access_token
        self.page_size = min(page_size, 100)
        self.window = window
        self.backfill = backfill
        self.now = now
        self.path = f"/api/{METHOD}/{youzan.API_VERSION}?access_token={quote(access_token)}"

    def _redact(self, exc: PlatformError) -> PlatformError:
        return redacted(exc, self.token, safe="/")

    def _page(self, start: datetime, end: datetime, page_no: int) -> tuple[list[Any], int]:
        body = {
            "start_update": youzan.wire_time(start),
            "end_update": youzan.wire_time(end),
            "page_no": page_no,
            "page_size": self.page_size,
        }
        try:
            got = self.client.request("POST", self.path, body=body).body
        except PlatformError as exc:
            raise self._redact(exc) from None
        if not isinstance(got, Mapping):
            raise PlatformError(
                "Youzan answered something other than a JSON object",
                code="connector.platform_error",
                message_zh="有赞返回的不是 JSON 对象",
            )
        if got.get("success") is not True:
            gw = got.get("gw_err_resp")
            err: Mapping[str, Any] = gw if isinstance(gw, Mapping) else got
            code = err.get("err_code", err.get("code"))
            msg = str(err.get("err_msg", err.get("message")) or "")[:300]
            raise PlatformError(
                f"Youzan answered error {code}: {msg}",
                code="connector.platform_error",
                message_zh=f"有赞返回错误 {code}:{msg}",
                details={"platform_code": str(code)},
            )
        data = got.get("data") or {}
        rows = data.get("full_order_info_list") or []
        try:
            total = int(data.get("total_results") or 0)
        except (TypeError, ValueError):
            total = 0
        trades = [
            r.get("full_order_info") if isinstance(r, Mapping) else r
            for r in (rows if isinstance(rows, list) else [])
        ]
        return trades, total
