"""Signed JSON webhooks.

Each message is one ``POST`` of a JSON document to the merchant's endpoint with::

    Content-Type: application/json
    Idempotency-Key: <message_id>
    X-Huitouke-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>

(the scheme Stripe uses: the timestamp is signed with the body so a captured request cannot
be replayed later; receivers check it with :func:`verify_webhook_signature`). Timeouts,
connection errors, 429 and 5xx are retried with exponential backoff and full jitter; a
receiver that de-duplicates by ``Idempotency-Key`` gets every message exactly once even when
a worker crashes between sending and recording.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime

from huitouke.errors import AuthError
from huitouke.messaging.channels.base import Delivery, OutgoingMessage, SendResult
from huitouke.messaging.channels.http import (
    HttpClient,
    RetryPolicy,
    make_client,
    post_with_retries,
)

__all__ = ["SIGNATURE_HEADER", "WebhookChannel", "sign_webhook", "verify_webhook_signature"]

SIGNATURE_HEADER = "X-Huitouke-Signature"


def sign_webhook(secret: str, body: bytes, timestamp: int) -> str:
    mac = hmac.new(secret.encode("utf-8"), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify_webhook_signature(
    secret: str, header: str, body: bytes, *, now: float | None = None, tolerance: int = 300
) -> int:
    """Check a ``X-Huitouke-Signature`` header; returns its timestamp or raises AuthError."""
    parts: dict[str, list[str]] = {}
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        parts.setdefault(key, []).append(value)
    try:
        ts = int(parts["t"][0])
    except (KeyError, ValueError, IndexError) as exc:
        raise AuthError(
            "webhook signature header has no timestamp",
            code="webhook.bad_signature",
            message_zh="Webhook 签名头缺少时间戳",
        ) from exc
    now = time.time() if now is None else now
    if abs(now - ts) > tolerance:
        raise AuthError(
            f"webhook signature timestamp is {int(now - ts)} s off (tolerance {tolerance} s)",
            code="webhook.stale_signature",
            message_zh=f"Webhook 签名时间相差 {int(now - ts)} 秒,超出容许的 {tolerance} 秒",
        )
    expected = sign_webhook(secret, body, ts).split("v1=", 1)[1]
    if not any(hmac.compare_digest(expected, v) for v in parts.get("v1", [])):
        raise AuthError(
            "webhook signature does not match",
            code="webhook.bad_signature",
            message_zh="Webhook 签名不匹配",
        )
    return ts


class WebhookChannel:
    """POST each message as signed JSON to one URL (pooled keep-alive connections)."""

    name = "webhook"
    delivery: Delivery = "idempotent"

    def __init__(
        self,
        url: str,
        secret: str,
        *,
        client: HttpClient | None = None,
        retry: RetryPolicy | None = None,
        timeout: float = 10.0,
        max_connections: int = 64,
        clock: Callable[[], float] = time.time,
        name: str = "webhook",
    ) -> None:
        self.url = url
        self.secret = secret
        self.client = client or make_client(timeout, max_connections)
        self._own_client = client is None
        self.retry = retry or RetryPolicy()
        self.clock = clock
        self.name = name

    def body(self, message: OutgoingMessage) -> bytes:
        doc = {
            "message_id": message.message_id,
            "customer_id": message.customer_id,
            "channel": message.channel,
            "kind": message.kind,
            "journey_id": message.journey_id,
            "step_id": message.step_id,
            "campaign_id": message.campaign_id,
            "recipient": message.recipient,
            "rendered": message.rendered,
            "payload": message.payload,
            "attempt": message.attempt,
        }
        return json.dumps(doc, ensure_ascii=False, separators=(",", ":"), default=str).encode(
            "utf-8"
        )

    def send(self, message: OutgoingMessage) -> SendResult:
        body = self.body(message)
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": message.message_id,
            "User-Agent": "huitouke-webhook/1",
        }

        def sign() -> dict[str, str]:
            return {SIGNATURE_HEADER: sign_webhook(self.secret, body, int(self.clock()))}

        resp = post_with_retries(
            self.client, self.url, content=body, headers=headers, retry=self.retry, sign=sign
        )
        provider_id: str | None = None
        if resp.headers.get("content-type", "").startswith("application/json"):
            try:
                data = resp.json()
                if isinstance(data, dict) and data.get("id") is not None:
                    provider_id = str(data["id"])
            except ValueError:
                pass
        return SendResult(
            provider="webhook",
            provider_message_id=provider_id,
            detail={"http_status": resp.status_code},
            sent_at=datetime.now(UTC),
        )

    def close(self) -> None:
        if self._own_client:
            self.client.close()
