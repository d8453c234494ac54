"""HTTP plumbing shared by the HTTP channels: one pooled client, retries with backoff."""

from __future__ import annotations

import random
import socket
import time
from collections.abc import Callable, Mapping

import httpx

from huitouke.messaging.channels.base import PermanentSendError, TransientSendError

__all__ = ["RetryPolicy", "make_client", "post_with_retries"]


class RetryPolicy:
    """Exponential backoff with full jitter: sleep U(0, min(cap, base·2^attempt))."""

    def __init__(
        self,
        retries: int = 3,
        base: float = 0.2,
        cap: float = 5.0,
        *,
        rng: random.Random | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.retries = retries
        self.base = base
        self.cap = cap
        self.rng = rng or random.Random()
        self.sleep = sleep

    def delay(self, attempt: int) -> float:
        return self.rng.uniform(0, min(self.cap, self.base * (2**attempt)))


def make_client(timeout: float = 10.0, max_connections: int = 64) -> httpx.Client:
    """A keep-alive pool. ``TCP_NODELAY``: a request goes out as two writes (head, body) and
    Nagle's algorithm would hold the second until the first is acknowledged — with delayed
    ACKs that costs milliseconds per request."""
    limits = httpx.Limits(
        max_connections=max_connections, max_keepalive_connections=max_connections
    )
    transport = httpx.HTTPTransport(
        limits=limits, socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]
    )
    return httpx.Client(timeout=httpx.Timeout(timeout), transport=transport)


def _retry_after(resp: httpx.Response) -> float | None:
    value = resp.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def post_with_retries(
    client: httpx.Client,
    url: str | httpx.URL,
    *,
    content: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    retry: RetryPolicy,
    sign: Callable[[], Mapping[str, str]] | None = None,
    method: str = "POST",
) -> httpx.Response:
    """Send; retry timeouts, connection errors, 408/425/429 and 5xx; raise on the rest.

    ``sign`` is called before every attempt so time-stamped signatures stay fresh.
    Returns the 2xx response; raises :class:`TransientSendError` when retries run out and
    :class:`PermanentSendError` on other 4xx.
    """
    last: TransientSendError | None = None
    for attempt in range(retry.retries + 1):
        if attempt:
            wait = retry.delay(attempt)
            if last is not None and last.retry_after is not None:
                wait = max(wait, min(last.retry_after, retry.cap))
            retry.sleep(wait)
        hdrs = dict(headers or {})
        if sign is not None:
            hdrs.update(sign())
        try:
            resp = client.request(method, url, content=content, headers=hdrs)
        except httpx.TimeoutException as exc:
            last = TransientSendError(f"timeout: {exc}", code="http.timeout")
            continue
        except httpx.TransportError as exc:
            last = TransientSendError(f"connection failed: {exc}", code="http.connect")
            continue
        if 200 <= resp.status_code < 300:
            return resp
        detail = resp.text[:300]
        if resp.status_code in (408, 425, 429) or resp.status_code >= 500:
            last = TransientSendError(
                f"HTTP {resp.status_code}: {detail}",
                code=f"http.{resp.status_code}",
                retry_after=_retry_after(resp),
            )
            continue
        raise PermanentSendError(
            f"HTTP {resp.status_code}: {detail}", code=f"http.{resp.status_code}"
        )
    assert last is not None
    raise last
