"""Consent per channel: one use case to change it, one view of it — what the dispatcher applies.

Consent lives in messaging's append-only ``consent_events`` (granted, revoked, unsubscribed;
per channel or ``*``; with source and time). The ``customers.consent`` flags a profile or an
import brings are only the starting point: every event recorded later wins over them, so an
import or a profile sync never overrides an unsubscribe or a customer's recorded choice.

- :func:`set_consent` records the changes a door was asked for. An **explicit** opt-in (the
  customer asked; an operator records it through ``PUT /v1/customers/{id}/consent`` or
  ``huitouke profile consent``) recorded after an unsubscribe restores that channel, with its
  source. An automated source (``explicit=False``: imports, connectors) never overrides the
  customer's own choice — an unsubscribe, or a grant or withdrawal from an explicit source:
  such a change is not recorded and is reported in ``kept_unsubscribed`` /
  ``kept_by_choice``. :func:`set_consents` is the same for many customers at once (a file
  import records the consent columns of its file through it).
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
from huitouke.messaging.tables import consent_events
from huitouke.store.tables import customers

__all__ = [
    "ConsentChange",
    "consent_view",
    "consent_views",
    "effective_channels",
    "set_consent",
    "set_consents",
]

_CHUNK = 1000


@dataclass(frozen=True)
class ConsentChange:
    """What :func:`set_consent` did: the consent now applied, and what it recorded."""

    customer_id: str
    consent: dict[str, bool]
    recorded: dict[str, str] = field(default_factory=dict)
    kept_unsubscribed: tuple[str, ...] = ()
    #: channels an automated change left alone: the customer's own choice decides them
    kept_by_choice: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "customer_id": self.customer_id,
            "consent": self.consent,
            "recorded": self.recorded,
            "kept_unsubscribed": list(self.kept_unsubscribed),
            "kept_by_choice": list(self.kept_by_choice),
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
    (change,) = set_consents(
        conn, {customer_id: changes}, source=source, at=at, explicit=explicit, detail=detail
    )
    return change


def set_consents(
    conn: Connection,
    changes: Mapping[str, Mapping[str, bool]],
    *,
    source: str,
    at: datetime,
    explicit: bool = True,
    detail: Mapping[str, Any] | None = None,
) -> list[ConsentChange]:
    """:func:`set_consent` for many customers at once (``{customer_id: {channel: bool}}``),
    read set-based — the form a file import uses. One ``ConsentChange`` per customer, in
    the order given.

    An automated source (``explicit=False``) never overrides the customer's own recorded
    choice: a channel with an unsubscribe, or with a grant or withdrawal from an explicit
    source (the customer asked; an operator recorded it), keeps what those events say — the
    change is not recorded and the channel is reported in ``kept_unsubscribed`` or
    ``kept_by_choice``. Channels only automated sources (or nothing) decided follow it.
    """
    if at.tzinfo is None:
        raise InputError(
            "consent time must carry a time zone",
            code="input.naive_datetime",
            message_zh="时间必须带时区",
        )
    for wanted in changes.values():
        if ALL_CHANNELS in wanted:
            raise InputError(
                "name each channel (e.g. sms, email); * is not a channel",
                code="input.bad_channel",
                message_zh="请逐个指定渠道(如 sms、email);* 不是渠道",
                details={"field": "consent"},
            )
    ids = list(dict.fromkeys(changes))
    found: set[str] = set()
    for i in range(0, len(ids), _CHUNK):
        q = select(customers.c.customer_id).where(customers.c.customer_id.in_(ids[i : i + _CHUNK]))
        if conn.dialect.name == "postgresql":
            # two doors changing one customer's consent queue up (in key order: no deadlock)
            q = q.order_by(customers.c.customer_id).with_for_update()
        found.update(r[0] for r in conn.execute(q))
    missing = [cid for cid in ids if cid not in found]
    if missing:
        raise _not_found(missing[0])
    contexts = load_customer_contexts(conn, ids)
    chosen = {} if explicit else _own_choices(conn, ids)
    recorded: dict[str, dict[str, str]] = {cid: {} for cid in ids}
    kept: dict[str, list[str]] = {cid: [] for cid in ids}
    kept_choice: dict[str, list[str]] = {cid: [] for cid in ids}
    for cid in ids:
        ctx = contexts[cid]
        own = chosen.get(cid, frozenset())
        for channel in sorted(changes[cid]):
            want = bool(changes[cid][channel])
            if ctx.allows(channel) == want:
                continue
            if not explicit and ctx.is_unsubscribed(channel):
                kept[cid].append(channel)
                continue
            if not explicit and (channel in own or ALL_CHANNELS in own):
                kept_choice[cid].append(channel)
                continue
            action = "granted" if want else "revoked"
            record_consent(
                conn,
                cid,
                channel,
                action,
                source=source,
                at=at,
                detail={"explicit": explicit, **dict(detail or {})},
            )
            recorded[cid][channel] = action
    views = consent_views(conn, ids)
    return [
        ConsentChange(
            customer_id=cid,
            consent=views[cid],
            recorded=recorded[cid],
            kept_unsubscribed=tuple(kept[cid]),
            kept_by_choice=tuple(kept_choice[cid]),
        )
        for cid in ids
    ]


def _own_choices(conn: Connection, customer_ids: list[str]) -> dict[str, frozenset[str]]:
    """Per customer, the channels (``*`` for all) the customer's own recorded choice decides:
    an unsubscribe, or a grant or withdrawal not marked as from an automated source."""
    ce = consent_events.c
    out: dict[str, set[str]] = {}
    for i in range(0, len(customer_ids), _CHUNK):
        for cid, channel, action, detail in conn.execute(
            select(ce.customer_id, ce.channel, ce.action, ce.detail).where(
                ce.customer_id.in_(customer_ids[i : i + _CHUNK])
            )
        ):
            if action == "unsubscribed" or (detail or {}).get("explicit", True) is not False:
                out.setdefault(cid, set()).add(channel)
    return {cid: frozenset(chs) for cid, chs in out.items()}
