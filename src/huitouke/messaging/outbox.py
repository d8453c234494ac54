"""The outbox: messages are rows first, sent later by the dispatcher, marked sent once.

:func:`enqueue` is what journeys call: it inserts messages inside the caller's unit of work
and is idempotent by ``dedupe_key`` — a hash of (journey, customer, step, occurrence) — so
re-running an evaluation for the same day inserts nothing new: exactly one row per
(journey, customer, step, occurrence). The ``message_id`` is derived from the same key
(a UUIDv5), so it is stable too and doubles as the idempotency key sent to providers.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, and_, func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from huitouke.errors import InputError, NotFoundError
from huitouke.messaging.rules import Audience, Kind, PlannedMessage
from huitouke.messaging.sms import count_sms, estimate_cost
from huitouke.messaging.tables import OUTBOX_STATUSES, outbox

__all__ = [
    "EnqueueCounts",
    "OutboxMessage",
    "campaign_cost",
    "dedupe_key",
    "enqueue",
    "get_message",
    "list_messages",
    "message_id_for",
    "retry_messages",
    "status_counts",
]

_NAMESPACE = uuid.UUID("5b1f3c1e-8a52-4a8e-9c36-6875697426f6")
PRIORITY = {"transactional": 0, "marketing": 1}


def dedupe_key(journey_id: str, customer_id: str, step_id: str, occurrence: str) -> str:
    """SHA-256 of the canonical JSON of (journey, customer, step, occurrence)."""
    raw = json.dumps(
        [journey_id, customer_id, step_id, occurrence], ensure_ascii=False, separators=(",", ":")
    )
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


def message_id_for(key: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, key))


@dataclass(frozen=True)
class OutboxMessage:
    """A message to enqueue.

    ``rendered`` holds what is sent: ``text`` (SMS/robot text, email plain text), and for
    email ``subject``/``html``; SMS may name provider templates (``sms_template_code``,
    ``sms_template_params``). ``payload`` is extra data for webhooks and measurement.
    ``planned_at`` is when the journey decided to send (suppression after an order compares
    against it); ``not_before`` when it may leave (default: ``planned_at``).
    """

    journey_id: str
    customer_id: str
    step_id: str
    occurrence: str
    channel: str
    rendered: Mapping[str, Any]
    kind: Kind = "marketing"
    recipient: str | None = None
    payload: Mapping[str, Any] = field(default_factory=dict)
    planned_at: datetime | None = None
    not_before: datetime | None = None
    expires_at: datetime | None = None
    suppress_if_ordered: bool = False
    audience: Audience = "customer"
    campaign_id: str | None = None

    @property
    def dedupe_key(self) -> str:
        return dedupe_key(self.journey_id, self.customer_id, self.step_id, self.occurrence)

    @property
    def message_id(self) -> str:
        return message_id_for(self.dedupe_key)

    def planned(self, now: datetime | None = None) -> PlannedMessage:
        """This message as the contact rules see it (for dry runs)."""
        return PlannedMessage(
            channel=self.channel,
            kind=self.kind,
            planned_at=self.planned_at or now,
            expires_at=self.expires_at,
            suppress_if_ordered=self.suppress_if_ordered,
            audience=self.audience,
        )


@dataclass(frozen=True)
class EnqueueCounts:
    inserted: int
    duplicates: int
    message_ids: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, int]:
        return {"inserted": self.inserted, "duplicates": self.duplicates}


def _aware(value: datetime | None, name: str, where: str) -> datetime | None:
    if value is not None and value.tzinfo is None:
        raise InputError(
            f"{where}: {name} must carry a time zone",
            code="input.naive_datetime",
            message_zh=f"{where}:{name} 必须带时区",
            details={"field": name, "message": where},
        )
    return value


def _row(m: OutboxMessage, now: datetime, i: int) -> dict[str, Any]:
    where = f"message #{i + 1} ({m.journey_id}/{m.step_id} to {m.customer_id})"
    for name in ("journey_id", "customer_id", "step_id", "occurrence", "channel"):
        if not str(getattr(m, name) or "").strip():
            raise InputError(
                f"{where}: {name} is empty",
                code="input.missing_field",
                message_zh=f"{where}:{name} 为空",
                details={"field": name, "message": i + 1},
            )
    if m.kind not in PRIORITY:
        raise InputError(
            f"{where}: kind must be transactional or marketing, not {m.kind!r}",
            code="input.bad_kind",
            message_zh=f"{where}:kind 应为 transactional 或 marketing,而不是 {m.kind!r}",
            details={"field": "kind", "message": i + 1},
        )
    planned = _aware(m.planned_at, "planned_at", where) or now
    not_before = _aware(m.not_before, "not_before", where) or planned
    expires = _aware(m.expires_at, "expires_at", where)
    rendered = dict(m.rendered)
    segments = None
    if m.channel == "sms":
        segments = int(
            rendered.get("sms_segments") or count_sms(str(rendered.get("text", ""))).segments
        )
    return {
        "message_id": m.message_id,
        "dedupe_key": m.dedupe_key,
        "journey_id": m.journey_id,
        "step_id": m.step_id,
        "occurrence": m.occurrence,
        "campaign_id": m.campaign_id,
        "customer_id": m.customer_id,
        "channel": m.channel,
        "kind": m.kind,
        "audience": m.audience,
        "priority": PRIORITY[m.kind],
        "recipient": m.recipient,
        "payload": json.loads(json.dumps(dict(m.payload), default=str)),
        "rendered": json.loads(json.dumps(rendered, default=str)),
        "segments": segments,
        "planned_at": planned,
        "not_before": not_before,
        "expires_at": expires,
        "suppress_if_ordered": m.suppress_if_ordered,
        "status": "queued",
        "reason_code": None,
        "attempts": 0,
        "created_at": now,
        "updated_at": now,
    }


def enqueue(
    conn: Connection,
    messages: Iterable[OutboxMessage],
    *,
    now: datetime | None = None,
    chunk: int = 1000,
) -> EnqueueCounts:
    """Insert messages inside the caller's transaction; duplicates (by dedupe_key) are skipped.

    Returns how many rows were inserted and how many were already there (or repeated in
    ``messages``). Safe to call concurrently: the database's unique key decides.
    """
    now = now or datetime.now(UTC)
    rows: dict[str, dict[str, Any]] = {}
    total = 0
    for i, m in enumerate(messages):
        total += 1
        row = _row(m, now, i)
        rows.setdefault(row["dedupe_key"], row)
    dialect = conn.dialect.name
    ins_mod: Any = postgresql if dialect == "postgresql" else sqlite
    inserted: list[str] = []
    values = list(rows.values())
    for start in range(0, len(values), chunk):
        part = values[start : start + chunk]
        stmt = (
            ins_mod.insert(outbox)
            .on_conflict_do_nothing(index_elements=["dedupe_key"])
            .returning(outbox.c.message_id)
        )
        inserted.extend(r[0] for r in conn.execute(stmt, part))
    return EnqueueCounts(
        inserted=len(inserted), duplicates=total - len(inserted), message_ids=tuple(inserted)
    )


def _as_dict(row: Any) -> dict[str, Any]:
    out = dict(row._mapping)
    for k, v in out.items():
        if isinstance(v, datetime):
            out[k] = v.isoformat()
    return out


def list_messages(
    conn: Connection,
    *,
    status: str | Sequence[str] | None = None,
    customer_id: str | None = None,
    journey_id: str | None = None,
    channel: str | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Outbox rows, newest first, as JSON-ready dicts."""
    q = select(outbox)
    if status is not None:
        statuses = [status] if isinstance(status, str) else list(status)
        bad = [s for s in statuses if s not in OUTBOX_STATUSES]
        if bad:
            raise InputError(
                f"unknown outbox status {bad[0]!r} (one of {', '.join(OUTBOX_STATUSES)})",
                code="input.bad_status",
                message_zh=f"未知的发件箱状态 {bad[0]!r}(可选 {', '.join(OUTBOX_STATUSES)})",
            )
        q = q.where(outbox.c.status.in_(statuses))
    if customer_id is not None:
        q = q.where(outbox.c.customer_id == customer_id)
    if journey_id is not None:
        q = q.where(outbox.c.journey_id == journey_id)
    if channel is not None:
        q = q.where(outbox.c.channel == channel)
    q = q.order_by(outbox.c.updated_at.desc(), outbox.c.message_id).limit(limit)
    return [_as_dict(r) for r in conn.execute(q)]


def get_message(conn: Connection, message_id: str) -> dict[str, Any]:
    row = conn.execute(select(outbox).where(outbox.c.message_id == message_id)).first()
    if row is None:
        raise NotFoundError(
            f"no outbox message {message_id!r}",
            code="outbox.not_found",
            message_zh=f"发件箱中没有消息 {message_id!r}",
        )
    return _as_dict(row)


def retry_messages(
    conn: Connection,
    *,
    now: datetime,
    message_ids: Sequence[str] = (),
    all_dead: bool = False,
) -> int:
    """Put dead/failed (or named suppressed) messages back in the queue, attempts reset.

    The contact rules run again at send time, so a retried message to a customer who has
    since unsubscribed is still not sent.
    """
    if not message_ids and not all_dead:
        raise InputError(
            "name message ids or ask for all dead letters",
            code="input.nothing_to_retry",
            message_zh="请指定消息编号,或选择重试全部死信",
        )
    values = dict(
        status="queued",
        not_before=now,
        attempts=0,
        reason_code=None,
        lease_owner=None,
        lease_until=None,
        updated_at=now,
    )
    n = 0
    if all_dead:
        n += conn.execute(update(outbox).where(outbox.c.status == "dead").values(**values)).rowcount
    if message_ids:
        ids = list(message_ids)
        found = {
            r[0]
            for r in conn.execute(select(outbox.c.message_id).where(outbox.c.message_id.in_(ids)))
        }
        missing = [m for m in ids if m not in found]
        if missing:
            raise NotFoundError(
                f"no outbox message {missing[0]!r}",
                code="outbox.not_found",
                message_zh=f"发件箱中没有消息 {missing[0]!r}",
                details={"missing": missing},
            )
        n += conn.execute(
            update(outbox)
            .where(
                and_(
                    outbox.c.message_id.in_(ids),
                    outbox.c.status.in_(("dead", "failed", "suppressed")),
                )
            )
            .values(**values)
        ).rowcount
    return int(n)


def status_counts(conn: Connection, *, journey_id: str | None = None) -> dict[str, dict[str, int]]:
    """``{journey_id: {status: count}}`` — sent, suppressed, dead … per journey."""
    q = select(outbox.c.journey_id, outbox.c.status, func.count()).group_by(
        outbox.c.journey_id, outbox.c.status
    )
    if journey_id is not None:
        q = q.where(outbox.c.journey_id == journey_id)
    out: dict[str, dict[str, int]] = {}
    for jid, status, n in conn.execute(q):
        out.setdefault(jid, {})[status] = int(n)
    return out


@dataclass(frozen=True)
class CampaignCost:
    messages: int
    segments: int
    price_per_segment: Decimal
    currency: str
    cost: Decimal

    def to_dict(self) -> dict[str, Any]:
        return {
            "messages": self.messages,
            "segments": self.segments,
            "price_per_segment": str(self.price_per_segment),
            "currency": self.currency,
            "cost": str(self.cost),
        }


def campaign_cost(
    conn: Connection,
    *,
    price_per_segment: Decimal,
    currency: str,
    journey_id: str | None = None,
    campaign_id: str | None = None,
    statuses: Sequence[str] = ("sent",),
) -> CampaignCost:
    """SMS cost of a journey or campaign: segments of its messages in ``statuses`` × price.

    ``statuses=("queued", "sent")`` gives the planned cost before sending.
    """
    q = select(func.count(), func.coalesce(func.sum(outbox.c.segments), 0)).where(
        outbox.c.channel == "sms", outbox.c.status.in_(list(statuses))
    )
    if journey_id is not None:
        q = q.where(outbox.c.journey_id == journey_id)
    if campaign_id is not None:
        q = q.where(outbox.c.campaign_id == campaign_id)
    n, segs = conn.execute(q).one()
    return CampaignCost(
        messages=int(n),
        segments=int(segs),
        price_per_segment=Decimal(price_per_segment),
        currency=currency,
        cost=estimate_cost(int(segs), Decimal(price_per_segment)),
    )
