"""Pulling trades from Taobao/Tmall TOP: ``taobao.trades.sold.increment.get``.

``GET <base>/router/rest`` with TOP's system parameters (``method``, ``app_key``,
``session``, ``timestamp`` — China Standard Time —, ``format=json``, ``v=2.0``,
``sign_method``, ``sign``: :func:`huitouke.connectors.taobao.sign`) and the API's:
``fields``, ``start_modified``/``end_modified`` (at most one day apart: the puller splits
longer ranges into windows of a day), ``page_no``, ``page_size`` (≤ 100) and
``use_has_next=false``. The answer is ``{"trades_sold_increment_get_response":
{"total_results", "has_next", "trades": {"trade": […]}}}`` or ``{"error_response": {"code",
"msg", "sub_code", "sub_msg"}}``.

TOP lists a window newest modification first and advises paging from the last page to the
first, so that a trade modified meanwhile (it leaves the window) makes a page's trades move
to a page still to be read, never to one already read. That needs ``total_results``, which
``use_has_next=true`` leaves out: the puller asks page 1 for the total, then the last page
back to page 2, and asks the whole window again when the total changed while it was paged.
Only a window's last page read carries a time (the window's end), so the connector's mark
passes a window only once all of it is recorded.

``App Call Limited`` (code 7) is waited out — for the seconds its ``sub_msg`` names ("This
ban will last for N more seconds"), else a pause doubling from 1 s — and asked again; HTTP
429/503 as for every platform. The session key travels in the query string; it is blanked
out of any error that names the URL.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from huitouke.connectors import taobao
from huitouke.connectors.http import JsonClient
from huitouke.connectors.model import PlatformError
from huitouke.connectors.pull import WindowedPuller, redacted

__all__ = ["TaobaoPuller"]

_LIMITED_TRIES = 10
_BAN = re.compile(r"(\d+)\s+more\s+seconds")


def _now() -> datetime:
    return datetime.now(UTC)


class TaobaoPuller(WindowedPuller):
    platform = ("Taobao", "淘宝")
    listing = ("trades modified", "修改")
    wire_time = staticmethod(taobao.wire_time)

    def __init__(
        self,
        client: JsonClient,
        app_key: str,
        secret: str,
        session: str,
        *,
        sign_method: str = "md5",
        page_size: int = 100,
        window: timedelta = timedelta(days=1),
        backfill: timedelta = timedelta(days=90),
        now: Callable[[], datetime] = _now,
    ) -> None:
        self.client = client
        self.app_key = app_key
        self.secret = secret
        self.session = session
        self.sign_method = sign_method
        self.page_size = min(page_size, 100)
        self.window = min(window, timedelta(days=1))  # TOP's limit for this API
        self.backfill = backfill
        self.now = now

    def _redact(self, exc: PlatformError) -> PlatformError:
        return redacted(exc, self.session)

    def params(self, start: datetime, end: datetime, page_no: int) -> dict[str, str]:
        """The request's parameters, signed."""
        p = {
            "method": taobao.METHOD,
            "app_key": self.app_key,
            "session": self.session,
            "timestamp": taobao.wire_time(self.now()),
            "format": "json",
            "v": "2.0",
            "sign_method": self.sign_method,
            "fields": taobao.FIELDS,
            "start_modified": taobao.wire_time(start),
            "end_modified": taobao.wire_time(end),
            "page_no": str(page_no),
            "page_size": str(self.page_size),
            "use_has_next": "false",
        }
        p["sign"] = taobao.sign(p, self.secret, self.sign_method)
        return p

    def _page(self, start: datetime, end: datetime, page_no: int) -> tuple[list[Any], int]:
        backoff = 1.0
        for _ in range(_LIMITED_TRIES):
            try:
                got = self.client.request(
                    "GET", "/router/rest", params=self.params(start, end, page_no)
                ).body
            except PlatformError as exc:
                raise self._redact(exc) from None
            if not isinstance(got, Mapping):
                raise PlatformError(
                    "Taobao answered something other than a JSON object",
                    code="connector.platform_error",
                    message_zh="淘宝返回的不是 JSON 对象",
                )
            err = got.get("error_response")
            if isinstance(err, Mapping):
                code, sub = err.get("code"), str(err.get("sub_msg") or "")
                if str(code) == "7":  # App Call Limited
                    m = _BAN.search(sub)
                    self.client._wait(float(m.group(1)) if m else backoff)
                    backoff = min(backoff * 2, 30.0)
                    continue
                detail = f"{code} {err.get('msg')} {err.get('sub_code') or ''} {sub}".strip()
                raise PlatformError(
                    f"Taobao answered error {detail[:300]}",
                    code="connector.platform_error",
                    message_zh=f"淘宝返回错误 {detail[:300]}",
                    details={"platform_code": str(code), "sub_code": str(err.get("sub_code"))},
                )
            resp = got.get("trades_sold_increment_get_response") or {}
            trades = (resp.get("trades") or {}).get("trade") or []
            try:
                total = int(resp.get("total_results") or 0)
            except (TypeError, ValueError):
                total = 0
            return (list(trades) if isinstance(trades, list) else []), total
        raise PlatformError(
            "Taobao kept answering App Call Limited",
            code="connector.platform_error",
            message_zh="淘宝持续返回 App Call Limited(限流)",
        )
