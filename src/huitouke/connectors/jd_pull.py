"""Pulling orders from JD 京东 JOS: ``jingdong.pop.order.search`` by modification time.

``GET <base>/routerjson`` with JOS's system parameters (``method``, ``app_key``,
``access_token``, ``timestamp`` — ``yyyy-MM-dd HH:mm:ss`` in China Standard Time —,
``v=2.0``, ``sign``: :func:`huitouke.connectors.jd.sign`) and the API's parameters as the
JSON text ``360buy_param_json``: ``start_date``/``end_date`` (at most one month apart: the
puller asks in windows of a day), ``dateType`` ``0`` (by modification time, as JOS's SDKs
spell it), ``order_state`` (every state, comma-separated),
``optional_fields``, ``page``, ``page_size`` (≤ 100) and ``sortType`` ``1`` (newest first).
The answer is ``{"jingdong_pop_order_search_responce": {"code": "0",
"searchorderinfo_result": {"apiResult": {"success", "code", "chineseErrCode",
"englishErrCode"}, "orderTotal", "orderInfoList": […]}}}`` (JD's own spelling
"responce"), or ``{"error_response": {"code", "zh_desc", "en_desc"}}``.

As with Taobao, a modified order leaves its window and the later orders of a listing move
up a place; so the puller lists newest first, reads page 1 for ``orderTotal``, then the
last page back to page 2, and asks the whole window again when the total changed while it
was paged. Only a window's last page read carries a time (the window's end).

JOS's gateway error ``2`` (App Call Limited) is waited out — a pause doubling from 1 s, at
most 30 s — and asked again; HTTP 429/503 as for every platform; other errors are
:class:`~huitouke.connectors.model.PlatformError` with JD's code. The access token travels
in the query string; it is blanked out of any error recorded.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from huitouke.connectors import jd
from huitouke.connectors.http import JsonClient
from huitouke.connectors.model import PlatformError
from huitouke.connectors.pull import WindowedPuller, redacted

__all__ = ["MAX_WINDOW", "PATH", "JdPuller"]

PATH = "/routerjson"
RESPONSE = "jingdong_pop_order_search_responce"
#: JOS's limit between start_date and end_date ("不得相差超过1个月"): 30 days, to be safe
MAX_WINDOW = timedelta(days=30)
_LIMITED_TRIES = 10


def _now() -> datetime:
    return datetime.now(UTC)


class JdPuller(WindowedPuller):
    platform = ("JD", "京东")
    listing = ("orders modified", "修改")
    wire_time = staticmethod(jd.wire_time)

    def __init__(
        self,
        client: JsonClient,
        app_key: str,
        secret: str,
        access_token: str,
        *,
        page_size: int = 100,
        window: timedelta = timedelta(days=1),
        backfill: timedelta = timedelta(days=90),
        now: Callable[[], datetime] = _now,
    ) -> None:
        self.client = client
        self.app_key = app_key
        self.secret = secret
        self.token = access_token
        self.page_size = min(page_size, 100)
        self.window = min(window, MAX_WINDOW)
        self.backfill = backfill
        self.now = now

    def _redact(self, exc: PlatformError) -> PlatformError:
        return redacted(exc, self.token)

    def params(self, start: datetime, end: datetime, page: int) -> dict[str, str]:
        """The request's parameters, signed."""
        business = {
            "start_date": jd.wire_time(start),
            "end_date": jd.wire_time(end),
            "order_state": ",".join(jd.ORDER_STATES),
            "optional_fields": jd.OPTIONAL_FIELDS,
            "page": str(page),
            "page_size": str(self.page_size),
            "sortType": "1",
            "dateType": "0",
        }
        p = {
            "method": jd.METHOD,
            "app_key": self.app_key,
            "access_token": self.token,
            "timestamp": jd.wire_time(self.now()),
            "v": "2.0",
            "360buy_param_json": json.dumps(business, separators=(",", ":"), ensure_ascii=False),
        }
        p["sign"] = jd.sign(p, self.secret)
        return p

    def _fail(self, detail: str, code: Any) -> PlatformError:
        return PlatformError(
            f"JD answered error {detail[:300]}",
            code="connector.platform_error",
            message_zh=f"京东返回错误 {detail[:300]}",
            details={"platform_code": str(code)},
        )

    def _page(self, start: datetime, end: datetime, page: int) -> tuple[list[Any], int]:
        backoff = 1.0
        for _ in range(_LIMITED_TRIES):
            try:
                got = self.client.request("GET", PATH, params=self.params(start, end, page)).body
            except PlatformError as exc:
                raise self._redact(exc) from None
            if not isinstance(got, Mapping):
                raise PlatformError(
                    "JD answered something other than a JSON object",
                    code="connector.platform_error",
                    message_zh="京东返回的不是 JSON 对象",
                )
            err = got.get("error_response")
            if isinstance(err, Mapping):
                code = str(err.get("code"))
                if code == "2":  # App Call Limited
                    self.client._wait(backoff)
                    backoff = min(backoff * 2, 30.0)
                    continue
                raise self._fail(
                    f"{code} {err.get('en_desc') or ''} {err.get('zh_desc') or ''}", code
                )
            resp = got.get(RESPONSE)
            result = resp.get("searchorderinfo_result") if isinstance(resp, Mapping) else None
            if not isinstance(result, Mapping):
                raise self._fail(f"no {RESPONSE}.searchorderinfo_result", "")
            api = result.get("apiResult")
            if isinstance(api, Mapping) and api.get("success") is False:
                api_code = api.get("code")
                raise self._fail(
                    f"{api_code} {api.get('englishErrCode') or ''} "
                    f"{api.get('chineseErrCode') or ''}",
                    api_code,
                )
            orders = result.get("orderInfoList") or []
            try:
                total = int(result.get("orderTotal") or 0)
            except (TypeError, ValueError):
                total = 0
            return (list(orders) if isinstance(orders, list) else []), total
        raise PlatformError(
            "JD kept answering App Call Limited",
            code="connector.platform_error",
            message_zh="京东持续返回 App Call Limited(限流)",
        )
