"""Consent per channel: one use case to change it, one view of it — what the dispatcher applies.

Consent lives in messaging's append-only ``consent_events`` (granted, revoked, unsubscribed;
per channel or ``*``; with source and time). The ``customers.consent`` flags a profile or an
import brings are only the starting point: every event recorded later wins over them, so an
import or a profile sync never overrides an unsubscribe or a customer's recorded choice.

- :func:`set_consent` records the changes a door was asked for. An **explicit** opt-in (the
  customer asked; an operator records it through ``PUT /v1/customers/{id}/consent`` or
  ``huitouke profile consent``) recorded after an unsubscribe restores that channel, with its
  source. An automated source (``explicit=False``: imports, connectors) never lifts an
  unsubscribe — such a grant is not recorded and is reported in ``kept_unsubscribed``.
- :func:`consent_views` folds the same events with the same function the dispatcher uses
  (:func:`huitouke.messaging.consent.load_customer_contexts`), so what the API and the CLI
  show is exactly what the dispatcher applies.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select

from huitouke.errors import InputError, NotFoundError
from huitouke.i18n import t
from huitouke.messaging.consent import load_customer_contexts, record_consent
from huitouke.messaging.rules import ALL_CHANNELS, CustomerContext
from huitouke.store.tables import customers

__all__ = ["ConsentChange", "consent_view", "consent_views", "effective_channels", "set_consent"]


@dataclass(frozen=True)
class ConsentChange:
    """What :func:`set_consent` did: the consent now applied, and what it recorded."""

    customer_id: str
    consent: dict[str, bool]
    recorded: dict[str, str] = field(default_factory=dict)
    kept_unsubscribed: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "customer_id": self.customer_id,
            "consent": self.consent,
            "recorded": self.recorded,
            "kept_unsubscribed": list(self.kept_unsubscribed),
        }


def effective_channels(ctx: CustomerContext) -> dict[str, bool]:
    """Per channel the customer has a flag or an event for: may a message go there?"""
    channels = {c for c in ctx.consent if c != ALL_CHANNELS}
    channels |= {c for c in ctx.unsubscribed if c != ALL_CHANNELS}
    return {ch: ctx.allows(ch) for ch in sorted(channels)}


def consent_views(conn: Connection, customer_ids: Iterable[str]) -> dict[str, dict[str, bool]]:
    """The consent the dispatcher applies, per customer and channel."""
    return {
        cid: effective_channels(c) for cid, c in load_customer_contexts(conn, customer_ids).items()
    }


def consent_view(conn: Connection, customer_id: str) -> dict[str, bool]:
    return consent_views(conn, [customer_id])[customer_id]


def _not_found(customer_id: str) -> NotFoundError:
    return NotFoundError(
        t("service.customer_not_found", "en", customer_id=customer_id),
        code="customer.not_found",
        message_zh=t("service.customer_not_found", "zh", customer_id=customer_id),
        details={"customer_id": customer_id},
    )


def set_consent(
    conn: Connection,
    customer_id: str,
    changes: Mapping[str, bool],
    *,
    source: str,
    at: datetime,
    explicit: bool = True,
    detail: Mapping[str, Any] | None = None,
) -> ConsentChange:
    """Grant (``True``) or withdraw (``False``) consent per channel, as consent events.

    Only changes are recorded (asking twice records nothing). ``*`` is not a channel here:
    name each one (an unsubscribe from everything is :func:`messaging.unsubscribe`).
    """
    if at.tzinfo is None:
        raise InputError(
            "consent time must carry a time zone",
            code="input.naive_datetime",
            message_zh="时间必须带时区",
        )
    if ALL_CHANNELS in changes:
        raise InputError(
            "name each channel (e.g. sms, email); * is not a channel",
            code="input.bad_channel",
            message_zh="请逐个指定渠道(如 sms、email);* 不是渠道",
            details={"field": "consent"},
        )
    q = select(customers.c.customer_id).where(customers.c.customer_id == customer_id)
    if conn.dialect.name == "postgresql":
        q = q.with_for_update()  # two doors changing one customer's consent queue up
    if conn.execute(q).first() is None:
        raise _not_found(customer_id)
    ctx = load_customer_contexts(conn, [customer_id])[customer_id]
    recorded: dict[str, str] = {}
    kept: list[str] = []
    for channel in sorted(changes):
        want = bool(changes[channel])
        if ctx.allows(channel) == want:
            continue
        if want and ctx.is_unsubscribed(channel) and not explicit:
            kept.append(channel)
            continue
        action = "granted" if want else "revoked"
        record_consent(
            conn,
            customer_id,
            channel,
            action,
            source=source,
            at=at,
            detail={"explicit": explicit, **dict(detail or {})},
        )
        recorded[channel] = action
    return ConsentChange(
        customer_id=customer_id,
        consent=consent_view(conn, customer_id),
        recorded=recorded,
        kept_unsubscribed=tuple(kept),
    )
