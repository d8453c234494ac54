"""The channel port: what the dispatcher needs from SMS, email, webhooks and robots.

A channel sends one :class:`OutgoingMessage` and returns a :class:`SendResult` (the
provider's message id and what it said), or raises :class:`TransientSendError` (try again
later: timeouts, 5xx, rate limits) or :class:`PermanentSendError` (never retry: bad number,
rejected template, 4xx). Every send carries the outbox ``message_id`` as the idempotency key
the sink can de-duplicate by (``Idempotency-Key`` header, SMTP ``Message-ID``, provider
``OutId``/``SessionContext``).

``delivery`` states what a crash between "sent over the wire" and "marked sent" means:

- ``"idempotent"``: the sink de-duplicates by the key, so re-sending after a crash is safe
  and each message arrives exactly once (our webhooks; any sink that honours the key).
- ``"at_least_once"``: re-sent after a crash; a duplicate is possible in that window.
- ``"at_most_once"``: never re-sent after a crash; the row goes to dead letters with reason
  ``crash.unknown`` for a person to check (``huitouke outbox retry``). The dispatcher also
  treats a channel this way when ``HUITOUKE_AT_MOST_ONCE_CHANNELS`` names it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol, runtime_checkable

__all__ = [
    "Channel",
    "ChannelError",
    "Delivery",
    "OutgoingMessage",
    "PermanentSendError",
    "SendResult",
    "TransientSendError",
]

Delivery = Literal["idempotent", "at_least_once", "at_most_once"]


@dataclass(frozen=True)
class OutgoingMessage:
    """An outbox row as a channel sees it."""

    message_id: str
    customer_id: str
    channel: str
    kind: str
    recipient: str | None
    rendered: dict[str, Any]
    payload: dict[str, Any] = field(default_factory=dict)
    journey_id: str = ""
    step_id: str = ""
    campaign_id: str | None = None
    attempt: int = 1

    @property
    def text(self) -> str:
        return str(self.rendered.get("text", ""))


@dataclass(frozen=True)
class SendResult:
    """The sink accepted the message; ``provider_message_id`` is its id (if it gave one)."""

    provider: str
    provider_message_id: str | None = None
    status: str = "accepted"
    detail: dict[str, Any] = field(default_factory=dict)
    sent_at: datetime | None = None


class ChannelError(Exception):
    """A send failed; ``code`` is short and stable (e.g. ``http.503``, ``smtp.550``)."""

    def __init__(self, message: str, *, code: str = "error", retry_after: float | None = None):
        super().__init__(message)
        self.code = code
        self.retry_after = retry_after


class TransientSendError(ChannelError):
    """Try again later (timeouts, connection errors, 5xx, rate limiting)."""


class PermanentSendError(ChannelError):
    """Never retry (the provider refused the message itself)."""


@runtime_checkable
class Channel(Protocol):
    """A way out: send one message, say how crash-safe re-sending is."""

    name: str
    delivery: Delivery

    def send(self, message: OutgoingMessage) -> SendResult: ...

    def close(self) -> None: ...
