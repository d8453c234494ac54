"""Consent and unsubscribes, and what the contact rules need to know about customers.

Consent starts from the ``customers.consent`` flags (``{"sms": true, "email": false}``, what
a profile or an import brings) and is then changed by the append-only ``consent_events`` in
time order: ``granted`` and ``revoked`` set a channel's consent; ``unsubscribed`` removes the
customer from a channel (or from every channel, ``*``) and only a later ``granted`` event for
that channel brings them back — for that channel only, even after an unsubscribe from all.
Re-importing customers with ``"sms": true`` changes the flags, never an event, so it never
undoes an unsubscribe. Changes go through :func:`huitouke.app.consent.set_consent`.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, func, insert, select

from huitouke.core.orders import COUNTED_STATUSES
from huitouke.errors import InputError
from huitouke.identity.service import person_accounts
from huitouke.messaging.rules import ALL_CHANNELS, CustomerContext
from huitouke.messaging.tables import consent_events
from huitouke.store.tables import customers, orders

__all__ = [
    "CONSENT_ACTIONS",
    "consent_history",
    "customer_by_phone",
    "effective_consent",
    "load_customer_contexts",
    "normalize_phone",
    "record_consent",
    "unsubscribe",
]

CONSENT_ACTIONS = ("granted", "revoked", "unsubscribed")
_CHUNK = 500


def _chunks(items: list[str], n: int = _CHUNK) -> Iterable[list[str]]:
    for i in range(0, len(items), n):
        yield items[i : i + n]


def effective_consent(
    flags: Mapping[str, Any] | None, events: Iterable[tuple[str, str]]
) -> tuple[dict[str, bool], frozenset[str]]:
    """Fold ``(channel, action)`` events (oldest first) over the customer's consent flags."""
    consent = {str(k): bool(v) for k, v in (flags or {}).items()}
    unsub: set[str] = set()
    for channel, action in events:
        if action == "granted":
            if channel == ALL_CHANNELS:
                unsub.clear()
                for ch in list(consent):
                    consent[ch] = True
            else:
                if ALL_CHANNELS in unsub:
                    # back on this channel only: still out of every other one known so far
                    # (a channel without a flag or event has no consent to lose)
                    unsub.discard(ALL_CHANNELS)
                    unsub.update(consent)
                unsub.discard(channel)
                consent[channel] = True
        elif action == "revoked":
            if channel == ALL_CHANNELS:
                for ch in list(consent):
                    consent[ch] = False
            else:
                consent[channel] = False
        elif action == "unsubscribed":
            unsub.add(channel)
    return consent, frozenset(unsub)


def load_customer_contexts(
    conn: Connection,
    customer_ids: Iterable[str],
    *,
    per_person: bool = True,
    accounts: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, CustomerContext]:
    """Contexts for the contact rules; unknown customers get no consent at all.

    With ``per_person`` (the default) an account merged with others into one person
    (:mod:`huitouke.identity`) answers for the person: the consent events of every account
    fold in time order over the addressed account's own flags (an unsubscribe on any
    account stops the person on that channel until a later opt-in on any of them), the
    last order is the person's, and an account without a zone takes the first zone among
    the person's accounts, the primary first. The flags stay the account's: consent an
    import brought for one shop's address is not consent for another's. ``accounts``:
    each id's person's accounts when the caller read them already
    (:func:`huitouke.identity.service.person_accounts`)."""
    ids = sorted(set(customer_ids))
    if accounts is None:
        accounts = person_accounts(conn, ids) if per_person else {cid: (cid,) for cid in ids}
    every = sorted({a for accts in accounts.values() for a in accts})
    flags: dict[str, Any] = {}
    zones: dict[str, str | None] = {}
    events: dict[str, list[tuple[datetime, int, str, str]]] = defaultdict(list)
    last_order: dict[str, datetime] = {}
    for chunk in _chunks(every):
        for cid, consent, tz in conn.execute(
            select(customers.c.customer_id, customers.c.consent, customers.c.timezone).where(
                customers.c.customer_id.in_(chunk)
            )
        ):
            flags[cid] = consent
            zones[cid] = tz
        ce = consent_events.c
        for cid, channel, action, at, eid in conn.execute(
            select(ce.customer_id, ce.channel, ce.action, ce.occurred_at, ce.event_id)
            .where(ce.customer_id.in_(chunk))
            .order_by(ce.occurred_at, ce.event_id)
        ):
            events[cid].append((_aware(at), int(eid), channel, action))
        for cid, at in conn.execute(
            select(orders.c.customer_id, func.max(orders.c.ordered_at))
            .where(orders.c.customer_id.in_(chunk), orders.c.status.in_(COUNTED_STATUSES))
            .group_by(orders.c.customer_id)
        ):
            if at is not None:
                last_order[cid] = _aware(at)
    out = {}
    for cid in ids:
        accts = accounts[cid]
        if len(accts) == 1:
            folded = events.get(cid, [])
        else:  # one person: every account's events in time order
            folded = sorted(e for a in accts for e in events.get(a, ()))
        consent, unsub = effective_consent(flags.get(cid), [(ch, act) for _, _, ch, act in folded])
        zone = zones.get(cid) or next((zones[a] for a in accts if zones.get(a)), None)
        lo = max((last_order[a] for a in accts if a in last_order), default=None)
        out[cid] = CustomerContext(
            customer_id=cid,
            consent=consent,
            unsubscribed=unsub,
            timezone=zone,
            last_order_at=lo,
        )
    return out


def _aware(at: Any) -> datetime:
    value = at if isinstance(at, datetime) else datetime.fromisoformat(str(at))
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def record_consent(
    conn: Connection,
    customer_id: str,
    channel: str,
    action: str,
    *,
    source: str,
    at: datetime,
    detail: Mapping[str, Any] | None = None,
) -> None:
    """Append one consent event (the history is never rewritten)."""
    if action not in CONSENT_ACTIONS:
        raise InputError(
            f"consent action must be one of {', '.join(CONSENT_ACTIONS)}, not {action!r}",
            code="input.bad_consent_action",
            message_zh=f"同意操作应为 {', '.join(CONSENT_ACTIONS)} 之一,而不是 {action!r}",
        )
    if not channel:
        raise InputError(
            "consent needs a channel (or * for all)",
            code="input.bad_channel",
            message_zh="需要指定渠道(或 * 表示全部)",
        )
    if at.tzinfo is None:
        raise InputError(
            "consent time must carry a time zone",
            code="input.naive_datetime",
            message_zh="时间必须带时区",
        )
    conn.execute(
        insert(consent_events).values(
            customer_id=customer_id,
            channel=channel,
            action=action,
            source=source,
            detail=dict(detail or {}),
            occurred_at=at,
        )
    )


def consent_history(
    conn: Connection, customer_id: str, *, limit: int = 100
) -> list[dict[str, Any]]:
    """The customer's consent events, newest first (at most ``limit``): channel, action,
    source, detail, occurred_at."""
    ce = consent_events.c
    stmt = (
        select(ce.event_id, ce.channel, ce.action, ce.source, ce.detail, ce.occurred_at)
        .where(ce.customer_id == customer_id)
        .order_by(ce.occurred_at.desc(), ce.event_id.desc())
        .limit(limit)
    )
    return [dict(r._mapping) for r in conn.execute(stmt)]


def unsubscribe(
    conn: Connection,
    customer_id: str,
    channel: str = ALL_CHANNELS,
    *,
    source: str,
    at: datetime,
    detail: Mapping[str, Any] | None = None,
) -> None:
    """Record an unsubscribe; it wins over every consent flag until a later explicit opt-in."""
    record_consent(conn, customer_id, channel, "unsubscribed", source=source, at=at, detail=detail)


_NON_DIGITS = re.compile(r"\D")


def normalize_phone(phone: str) -> str:
    """Digits only, without a leading +86/0086/86 country code for 13-digit CN mobiles."""
    digits = _NON_DIGITS.sub("", phone or "")
    if digits.startswith("0086"):
        digits = digits[4:]
    elif digits.startswith("86") and len(digits) == 13:
        digits = digits[2:]
    return digits


def customer_by_phone(conn: Connection, phone: str) -> list[str]:
    """Customer ids whose phone number matches (after normalising both sides)."""
    wanted = normalize_phone(phone)
    if not wanted:
        return []
    tail = wanted[-4:]  # stored numbers may carry spaces or dashes: filter loosely, compare exactly
    rows = conn.execute(
        select(customers.c.customer_id, customers.c.phone).where(customers.c.phone.like(f"%{tail}"))
    ).all()
    return sorted(cid for cid, p in rows if p and normalize_phone(p) == wanted)
