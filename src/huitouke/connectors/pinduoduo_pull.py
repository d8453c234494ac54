"""Pulling orders from Pinduoduo 拼多多: ``pdd.order.number.list.increment.get``.

``POST <base>/api/router`` with a JSON body of the system parameters (``type``,
``client_id``, ``access_token``, ``timestamp`` — Unix seconds —, ``data_type=JSON``,
``version=V1``, ``sign``: :func:`huitouke.connectors.pinduoduo.sign`) and the API's:
``start_updated_at``/``end_updated_at`` (Unix seconds, **at most 30 minutes apart**: the
puller splits the range into windows of 30 minutes), ``page`` (from 1), ``page_size``
(≤ 100), ``order_status=5`` and ``refund_status=5`` (all), ``is_lucky_flag=0`` (all) and
``use_has_next=false``. The answer is ``{"order_sn_increment_get_response": {"total_count",
"has_next", "order_sn_list": […]}}`` or ``{"error_response": {"error_code", "error_msg",
"sub_code", "sub_msg", "request_id"}}``.

PDD's reference says to page **from the last page to the first** so that no order is missed
(an order updated meanwhile leaves the window; the pages still to be read move up, never the
ones read). That needs ``total_count``, which ``use_has_next=true`` leaves out: the puller
asks page 1 for the total, then the last page back to page 2, and the whole window again
when the total changed while it was paged. Only a window's last page read carries a time
(the window's end). Consecutive windows share their boundary second.

Rate limiting: an ``error_response`` with ``error_code`` 52101 (the API is being
throttled), 52102/52103 (temporarily unavailable) or 70031 (calls too frequent) is waited
out — for the seconds its ``sub_msg`` names, else a pause doubling from 1 s — and asked
again; HTTP 429/503 as for every platform. The access token is blanked out of recorded
errors.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from huitouke.connectors import pinduoduo
from huitouke.connectors.http import JsonClient
from huitouke.connectors.model import PlatformError
from huitouke.connectors.pull import WindowedPuller
from huitouke.connectors.youzan import wire_time

__all__ = ["RETRY_CODES", "PinduoduoPuller"]

#: error codes waited out and asked again
RETRY_CODES = frozenset({52101, 52102, 52103, 70031})
#: PDD's limit on one request's update-time range
MAX_WINDOW = timedelta(minutes=30)
_LIMITED_TRIES = 10
_SECONDS = re.compile(r"(\d+)\s*(?:s\b|秒|seconds?)")


def _now() -> datetime:
    return datetime.now(UTC)


class PinduoduoPuller(WindowedPuller):
    platform = ("Pinduoduo", "拼多多")
    listing = ("orders updated", "更新")
    wire_time = staticmethod(wire_time)
    share_boundary = True

    def __init__(
        self,
        client: JsonClient,
        client_id: str,
        client_secret: str,
        access_token: str,
        *,
        page_size: int = 100,
        window: timedelta = MAX_WINDOW,
        backfill: timedelta = timedelta(days=7),
        now: Callable[[], datetime] = _now,
    ) -> None:
        self.client = client
        self.client_id = client_id
        self.secret = client_secret
        self.token = access_token
        self.page_size = min(page_size, 100)
        self.window = min(window, MAX_WINDOW)
        self.backfill = backfill
        self.now = now

    def _clean(self, s: Any) -> Any:
        return s.replace(self.token, "***") if isinstance(s, str) else s

    def params(self, start: datetime, end: datetime, page: int) -> dict[str, str]:
        """The request's parameters, signed."""
        p = {
            "type": pinduoduo.METHOD,
            "client_id": self.client_id,
            "access_token": self.token,
            "timestamp": str(int(self.now().timestamp())),
            "data_type": "JSON",
            "version": "V1",
            "start_updated_at": str(int(start.timestamp())),
            "end_updated_at": str(int(end.timestamp())),
            "page": str(page),
            "page_size": str(self.page_size),
            "order_status": "5",
            "refund_status": "5",
            "is_lucky_flag": "0",
            "use_has_next": "false",
        }
        p["sign"] = pinduoduo.sign(p, self.secret)
        return p

    def _page(self, start: datetime, end: datetime, page: int) -> tuple[list[Any], int]:
        backoff = 1.0
        for _ in range(_LIMITED_TRIES):
            try:
                got = self.client.request(
                    "POST", "/api/router", body=self.params(start, end, page)
                ).body
            except PlatformError as exc:
                raise PlatformError(
                    self._clean(exc.message),
                    code=exc.code,
                    message_zh=self._clean(exc.message_zh),
                    details={k: self._clean(v) for k, v in exc.details.items()},
                ) from None
            if not isinstance(got, Mapping):
                raise PlatformError(
                    "Pinduoduo answered something other than a JSON object",
                    code="connector.platform_error",
                    message_zh="拼多多返回的不是 JSON 对象",
                )
            err = got.get("error_response")
            if isinstance(err, Mapping):
                try:
                    code = int(err.get("error_code"))  # type: ignore[arg-type]
                except (TypeError, ValueError):
                    code = -1
                sub = str(err.get("sub_msg") or "")
                if code in RETRY_CODES:
                    m = _SECONDS.search(sub)
                    self.client._wait(float(m.group(1)) if m else backoff)
                    backoff = min(backoff * 2, 30.0)
                    continue
                detail = self._clean(
                    f"{code} {err.get('error_msg') or ''} {err.get('sub_code') or ''} {sub}"
                ).strip()
                raise PlatformError(
                    f"Pinduoduo answered error {detail[:300]}",
                    code="connector.platform_error",
                    message_zh=f"拼多多返回错误 {detail[:300]}",
                    details={"platform_code": str(code), "sub_code": str(err.get("sub_code"))},
                )
            resp = got.get("order_sn_increment_get_response") or {}
            rows = resp.get("order_sn_list") or []
            try:
                total = int(resp.get("total_count") or 0)
            except (TypeError, ValueError):
                total = 0
            return (list(rows) if isinstance(rows, list) else []), total
        raise PlatformError(
            "Pinduoduo kept answering that calls are too frequent",
            code="connector.platform_error",
            message_zh="拼多多持续返回调用过于频繁(限流)",
        )
