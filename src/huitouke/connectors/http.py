"""HTTP to the platforms (urllib3, as the message channels use): JSON in and out, amounts
read as decimals, and the platforms' rate limits honoured.

A ``429 Too Many Requests`` (or ``503``) is waited out for its ``Retry-After`` (seconds, or an
HTTP date) — else a pause that doubles from 1 s — and the request made again, at most
``attempts`` times; then :class:`~huitouke.connectors.model.PlatformError`. ``sleep`` is an
input so tests can record the waits and a sync can be stopped between them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from email.utils import parsedate_to_datetime
from typing import Any

import urllib3

from huitouke.connectors.model import PlatformError
from huitouke.i18n import t

__all__ = ["JsonClient", "Response", "retry_after"]

_RETRY_STATUSES = (429, 503)
#: the longest single wait a Retry-After may impose (a bad header must not park a sync)
MAX_WAIT = 120.0


@dataclass(frozen=True)
class Response:
    status: int
    headers: Mapping[str, str]
    body: Any


def retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds a ``Retry-After`` header asks to wait (a number of seconds or an HTTP date);
    ``None`` when absent or unreadable."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


@dataclass
class JsonClient:
    """JSON requests to one platform, with its rate limits honoured."""

    kind: str
    base_url: str
    headers: dict[str, str] = field(default_factory=dict)
    attempts: int = 8
    timeout: float = 30.0
    sleep: Callable[[float], None] = time.sleep
    pool: urllib3.PoolManager = field(
        default_factory=lambda: urllib3.PoolManager(num_pools=4, maxsize=4, retries=False)
    )
    #: every wait made, in seconds (read by tests and the sync's report)
    waits: list[float] = field(default_factory=list)

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
    ) -> Response:
        url = self.base_url.rstrip("/") + path
        # bytes go as they are (a body whose exact text is signed: Douyin's param_json)
        data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
        headers = {"Accept": "application/json", **self.headers}
        if data is not None:
            headers["Content-Type"] = "application/json"
        backoff = 1.0
        for attempt in range(1, self.attempts + 1):
            try:
                r = self.pool.request(
                    method,
                    url,
                    fields=None if params is None else {k: str(v) for k, v in params.items()},
                    body=data,
                    headers=headers,
                    timeout=self.timeout,
                    retries=False,
                )
            except urllib3.exceptions.HTTPError as exc:
                if attempt == self.attempts:
                    raise PlatformError(
                        t("connectors.platform_unreachable", "en", url=url, detail=exc),
                        code="connector.unreachable",
                        message_zh=t("connectors.platform_unreachable", "zh", url=url, detail=exc),
                        details={"url": url},
                    ) from exc
                self._wait(backoff)
                backoff = min(backoff * 2, 30.0)
                continue
            if r.status in _RETRY_STATUSES and attempt < self.attempts:
                wait = retry_after(r.headers.get("Retry-After"))
                self._wait(backoff if wait is None else wait)
                backoff = min(backoff * 2, 30.0)
                continue
            if r.status >= 400:
                detail = r.data[:300].decode("utf-8", "replace")
                raise PlatformError(
                    t(
                        "connectors.platform_error",
                        "en",
                        kind=self.kind,
                        status=r.status,
                        detail=detail,
                    ),
                    code="connector.platform_error",
                    message_zh=t(
                        "connectors.platform_error",
                        "zh",
                        kind=self.kind,
                        status=r.status,
                        detail=detail,
                    ),
                    details={"status": r.status, "url": url},
                )
            parsed = json.loads(r.data, parse_float=Decimal) if r.data else None
            return Response(r.status, {k.lower(): v for k, v in r.headers.items()}, parsed)
        raise AssertionError("unreachable")  # pragma: no cover

    def get_lines(self, url: str) -> Iterator[bytes]:
        """The lines of a file at an absolute ``url`` (a bulk operation's result: a signed
        link, so no credentials are sent), streamed."""
        rest = b""
        for chunk in self.get_chunks(url, 1 << 16):
            rest += chunk
            *full, rest = rest.split(b"\n")
            yield from (ln for ln in full if ln.strip())
        if rest.strip():
            yield rest

    def get_chunks(self, url: str, size: int = 1 << 20) -> Iterator[bytes]:
        """The bytes of a file at an absolute ``url`` (as :meth:`get_lines`), streamed in
        chunks of up to ``size``."""
        r = self.pool.request(
            "GET", url, preload_content=False, timeout=self.timeout, retries=False
        )
        try:
            if r.status >= 400:
                raise PlatformError(
                    t(
                        "connectors.platform_error",
                        "en",
                        kind=self.kind,
                        status=r.status,
                        detail=url,
                    ),
                    code="connector.platform_error",
                    message_zh=t(
                        "connectors.platform_error",
                        "zh",
                        kind=self.kind,
                        status=r.status,
                        detail=url,
                    ),
                    details={"status": r.status},
                )
            yield from r.stream(size)
        finally:
            r.release_conn()

    def _wait(self, seconds: float) -> None:
        seconds = min(seconds, MAX_WAIT)
        self.waits.append(seconds)
        self.sleep(seconds)
