"""Tags and profile attributes of customers (标签/画像), with the history of who set them.

- ``customer_tags``: one row per (customer, tag) — the tags added by people (console, CLI,
  REST). Tags that came with an imported file stay in ``customers.tags``; a customer's tags
  are the union of both, and removing a tag removes it from both.
- ``profile_attributes``: the defined attributes, each with a type — ``text``, ``number``,
  ``date`` or ``choice`` (one of its ``choices``). A value is checked against its type
  before it is stored, so every stored value reads back as its type.
- ``customer_attributes``: the current value per (customer, attribute), as canonical text
  (a number as its decimal text, a date as ``YYYY-MM-DD``).
- ``customer_profile_events``: append-only history, one row per change of one customer
  (``tag.add``, ``tag.remove``, ``attr.set``, ``attr.clear``) with who made it and when.

Changes are set-based: adding a tag to a whole segment is one ``INSERT … SELECT`` per
thousand customers, never a statement per customer. Customer ids are deduplicated and
checked first; an unknown id refuses the whole change (``customer.not_found``), so nothing
is half written.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from sqlalchemy import (
    JSON,
    CheckConstraint,
    Column,
    Connection,
    ForeignKey,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    and_,
    delete,
    exists,
    func,
    literal,
    select,
    update,
)

from huitouke.errors import ConflictError, InputError, NotFoundError
from huitouke.store.tables import customers, metadata
from huitouke.store.types import UTCDateTime

__all__ = [
    "ATTRIBUTE_TYPES",
    "AttributeDef",
    "add_tags",
    "attributes_for",
    "check_tag",
    "clear_attribute",
    "customer_attributes",
    "customer_profile_events",
    "customer_tags",
    "define_attribute",
    "get_attribute",
    "list_attributes",
    "list_tags",
    "parse_value",
    "profile_attributes",
    "profile_history",
    "profile_of",
    "remove_tags",
    "set_attribute",
    "tags_for",
]

AttributeType = Literal["text", "number", "date", "choice"]
ATTRIBUTE_TYPES: tuple[AttributeType, ...] = ("text", "number", "date", "choice")
_CHUNK = 1000
_TAG = re.compile(r"^[^\x00-\x1f\x7f,]{1,64}$")
_KEY = re.compile(r"^[a-z][a-z0-9_]{0,63}$")

customer_tags = Table(
    "customer_tags",
    metadata,
    Column(
        "customer_id",
        String(128),
        ForeignKey("customers.customer_id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("tag", String(64), nullable=False),
    Column("added_at", UTCDateTime, nullable=False),
    Column("added_by", String(64), nullable=False),
    PrimaryKeyConstraint("customer_id", "tag"),
    Index("ix_customer_tags_tag", "tag"),
)

profile_attributes = Table(
    "profile_attributes",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("type", String(8), nullable=False),
    # the allowed values of a choice attribute (a JSON list), else an empty list
    Column("choices", JSON, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("created_by", String(64), nullable=False),
    CheckConstraint("type IN ('text', 'number', 'date', 'choice')", name="type_known"),
)

customer_attributes = Table(
    "customer_attributes",
    metadata,
    Column(
        "customer_id",
        String(128),
        ForeignKey("customers.customer_id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("key", String(64), ForeignKey("profile_attributes.key"), nullable=False),
    Column("value", Text, nullable=False),
    Column("set_at", UTCDateTime, nullable=False),
    Column("set_by", String(64), nullable=False),
    PrimaryKeyConstraint("customer_id", "key"),
    Index("ix_customer_attributes_key", "key"),
)

customer_profile_events = Table(
    "customer_profile_events",
    metadata,
    Column("event_id", Integer, primary_key=True, autoincrement=True),
    Column("at", UTCDateTime, nullable=False),
    Column("actor", String(64), nullable=False),
    Column("customer_id", String(128), nullable=False),
    # tag.add, tag.remove, attr.set, attr.clear
    Column("kind", String(16), nullable=False),
    # the tag or the attribute's key
    Column("name", String(64), nullable=False),
    # the attribute's new value (NULL for tags and clears)
    Column("value", Text),
    Index("ix_customer_profile_events_customer_id_at", "customer_id", "at"),
)


# -- checks ----------------------------------------------------------------------------------------


def check_tag(tag: str) -> str:
    tag = tag.strip()
    if not _TAG.match(tag):
        raise InputError(
            f"tag {tag!r}: 1 to 64 characters, no comma and no control character",
            code="tag.invalid",
            message_zh=f"标签 {tag!r}:须为 1 至 64 个字符,不含逗号和控制字符",
            details={"field": "tag", "value": tag[:80]},
        )
    return tag


def _check_key(key: str) -> str:
    if not _KEY.match(key):
        raise InputError(
            f"attribute key {key!r}: a lower-case letter, then letters, digits or _ (≤ 64)",
            code="attribute.invalid",
            message_zh=f"属性名 {key!r}:须以小写字母开头,其后为小写字母、数字或下划线(≤ 64 个)",
            details={"field": "key", "value": key[:80]},
        )
    return key


def _unique_ids(customer_ids: Iterable[str]) -> list[str]:
    """The ids once each, in first-seen order (input may repeat them)."""
    seen: dict[str, None] = {}
    for cid in customer_ids:
        cid = str(cid).strip()
        if cid:
            seen.setdefault(cid, None)
    return list(seen)


def _chunks(ids: Sequence[str]) -> Iterable[Sequence[str]]:
    for i in range(0, len(ids), _CHUNK):
        yield ids[i : i + _CHUNK]


def _check_customers(conn: Connection, ids: Sequence[str]) -> None:
    c = customers.c
    for chunk in _chunks(ids):
        found = set(conn.execute(select(c.customer_id).where(c.customer_id.in_(chunk))).scalars())
        missing = [cid for cid in chunk if cid not in found]
        if missing:
            shown = ", ".join(missing[:5]) + (" …" if len(missing) > 5 else "")
            raise NotFoundError(
                f"no customer {shown} ({len(missing)} unknown id(s)); nothing was changed",
                code="customer.not_found",
                message_zh=f"没有顾客 {shown}(共 {len(missing)} 个未知编号);未做任何更改",
                details={"customer_ids": missing[:20], "unknown": len(missing)},
            )


# -- tags ------------------------------------------------------------------------------------------


def add_tags(
    conn: Connection, customer_ids: Iterable[str], tags: Iterable[str], *, actor: str, now: datetime
) -> int:
    """Add every tag to every customer; returns how many (customer, tag) pairs were new."""
    ids = _unique_ids(customer_ids)
    wanted = sorted({check_tag(t) for t in tags})
    _check_customers(conn, ids)
    ct, ev = customer_tags.c, customer_profile_events.c
    added = 0
    for tag in wanted:
        for chunk in _chunks(ids):
            new = select(
                customers.c.customer_id,
                literal(tag),
                literal(now, UTCDateTime),
                literal(actor[:64]),
            ).where(
                customers.c.customer_id.in_(chunk),
                ~exists().where(and_(ct.customer_id == customers.c.customer_id, ct.tag == tag)),
            )
            # counted before the insert: drivers disagree on INSERT … SELECT row counts
            added += conn.execute(select(func.count()).select_from(new.subquery())).scalar_one()
            conn.execute(
                customer_profile_events.insert().from_select(
                    [ev.customer_id, ev.name, ev.at, ev.actor, ev.kind],
                    select(
                        customers.c.customer_id,
                        literal(tag),
                        literal(now, UTCDateTime),
                        literal(actor[:64]),
                        literal("tag.add"),
                    ).where(
                        customers.c.customer_id.in_(chunk),
                        ~exists().where(
                            and_(ct.customer_id == customers.c.customer_id, ct.tag == tag)
                        ),
                    ),
                )
            )
            conn.execute(
                customer_tags.insert().from_select(
                    [ct.customer_id, ct.tag, ct.added_at, ct.added_by], new
                )
            )
    return added


def remove_tags(
    conn: Connection, customer_ids: Iterable[str], tags: Iterable[str], *, actor: str, now: datetime
) -> int:
    """Remove every tag from every customer (also an imported one, from ``customers.tags``);
    returns how many (customer, tag) pairs went."""
    ids = _unique_ids(customer_ids)
    gone = sorted({check_tag(t) for t in tags})
    _check_customers(conn, ids)
    ct = customer_tags.c
    removed: set[tuple[str, str]] = set()
    for chunk in _chunks(ids):
        for r in conn.execute(
            select(ct.customer_id, ct.tag).where(ct.customer_id.in_(chunk), ct.tag.in_(gone))
        ):
            removed.add((r.customer_id, r.tag))
        conn.execute(delete(customer_tags).where(ct.customer_id.in_(chunk), ct.tag.in_(gone)))
        # imported tags live in the customers row's JSON list
        c = customers.c
        for r in conn.execute(select(c.customer_id, c.tags).where(c.customer_id.in_(chunk))):
            have = list(r.tags or [])
            keep = [t for t in have if t not in gone]
            if len(keep) != len(have):
                removed.update((r.customer_id, t) for t in have if t in gone)
                conn.execute(
                    update(customers).where(c.customer_id == r.customer_id).values(tags=keep)
                )
    if removed:
        conn.execute(
            customer_profile_events.insert(),
            [
                {"at": now, "actor": actor[:64], "customer_id": cid, "kind": "tag.remove",
                 "name": tag, "value": None}
                for cid, tag in sorted(removed)
            ],
        )  # fmt: skip
    return len(removed)


def tags_for(conn: Connection, customer_ids: Sequence[str]) -> dict[str, list[str]]:
    """Each customer's tags (added and imported), sorted; customers without any are absent."""
    out: dict[str, set[str]] = {}
    ct, c = customer_tags.c, customers.c
    for chunk in _chunks(list(customer_ids)):
        for r in conn.execute(select(ct.customer_id, ct.tag).where(ct.customer_id.in_(chunk))):
            out.setdefault(r.customer_id, set()).add(r.tag)
        for r in conn.execute(select(c.customer_id, c.tags).where(c.customer_id.in_(chunk))):
            if r.tags:
                out.setdefault(r.customer_id, set()).update(str(t) for t in r.tags)
    return {k: sorted(v) for k, v in out.items()}


def list_tags(conn: Connection) -> list[tuple[str, int]]:
    """Every tag added through huitouke with its number of customers, most used first
    (imported tags in ``customers.tags`` are counted when a customer's page reads them)."""
    ct = customer_tags.c
    rows = conn.execute(
        select(ct.tag, func.count()).group_by(ct.tag).order_by(func.count().desc(), ct.tag)
    ).all()
    return [(r[0], int(r[1])) for r in rows]


# -- attributes ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AttributeDef:
    key: str
    type: AttributeType
    choices: tuple[str, ...]
    created_at: datetime
    created_by: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "type": self.type,
            "choices": list(self.choices),
            "created_at": self.created_at.isoformat(),
            "created_by": self.created_by,
        }


def _row_def(r: Any) -> AttributeDef:
    return AttributeDef(r.key, r.type, tuple(r.choices or ()), r.created_at, r.created_by)


def define_attribute(
    conn: Connection,
    key: str,
    type_: str,
    *,
    choices: Sequence[str] = (),
    actor: str,
    now: datetime,
) -> AttributeDef:
    """Define an attribute (its type cannot change later: stored values were checked by it)."""
    key = _check_key(key.strip())
    if type_ not in ATTRIBUTE_TYPES:
        raise InputError(
            f"attribute type {type_!r}: use one of {', '.join(ATTRIBUTE_TYPES)}",
            code="attribute.invalid",
            message_zh=f"属性类型 {type_!r}:可选 {', '.join(ATTRIBUTE_TYPES)}",
            details={"field": "type", "allowed": list(ATTRIBUTE_TYPES)},
        )
    opts = tuple(dict.fromkeys(c.strip() for c in choices if c.strip()))
    if (type_ == "choice") != bool(opts) or any(len(o) > 100 for o in opts):
        raise InputError(
            "a choice attribute needs its choices (each ≤ 100 characters); other types none",
            code="attribute.invalid",
            message_zh="选项型属性须列出选项(每项 ≤ 100 个字符);其他类型不设选项",
            details={"field": "choices"},
        )
    existing = get_attribute(conn, key)
    if existing is not None:
        if existing.type == type_ and existing.choices == opts:
            return existing
        raise ConflictError(
            f"attribute {key!r} is already defined as {existing.type}",
            code="attribute.conflict",
            message_zh=f"属性 {key!r} 已定义为 {existing.type}",
            details={"key": key, "type": existing.type},
        )
    conn.execute(
        profile_attributes.insert().values(
            key=key, type=type_, choices=list(opts), created_at=now, created_by=actor[:64]
        )
    )
    return AttributeDef(key, type_, opts, now, actor[:64])


def get_attribute(conn: Connection, key: str) -> AttributeDef | None:
    r = conn.execute(select(profile_attributes).where(profile_attributes.c.key == key)).first()
    return None if r is None else _row_def(r)


def list_attributes(conn: Connection) -> list[AttributeDef]:
    rows = conn.execute(select(profile_attributes).order_by(profile_attributes.c.key))
    return [_row_def(r) for r in rows]


def _bad_value(attr: AttributeDef, value: str, why_en: str, why_zh: str) -> InputError:
    return InputError(
        f"attribute {attr.key!r} ({attr.type}): {value!r} {why_en}",
        code="attribute.bad_value",
        message_zh=f"属性 {attr.key!r}({attr.type}):{value!r} {why_zh}",
        details={"field": attr.key, "type": attr.type},
    )


def parse_value(attr: AttributeDef, value: str) -> str:
    """``value`` checked against the attribute's type, as its canonical stored text."""
    text = value.strip()
    if attr.type == "text":
        if not text or len(text) > 500:
            raise _bad_value(
                attr, text[:80], "must have 1 to 500 characters", "须为 1 至 500 个字符"
            )
        return text
    if attr.type == "number":
        try:
            number = Decimal(text)
        except InvalidOperation:
            number = Decimal("NaN")
        if not number.is_finite():
            raise _bad_value(attr, text[:80], "is not a number", "不是数字")
        return str(number)
    if attr.type == "date":
        try:
            return date.fromisoformat(text).isoformat()
        except ValueError:
            raise _bad_value(
                attr, text[:80], "is not a date YYYY-MM-DD", "不是 YYYY-MM-DD 日期"
            ) from None
    if text not in attr.choices:
        raise _bad_value(
            attr, text[:80], f"is not one of {', '.join(attr.choices)}",
            f"不在选项 {', '.join(attr.choices)} 中",
        )  # fmt: skip
    return text


def typed(attr_type: str, text: str) -> Any:
    """A stored value as its type: Decimal, date or str."""
    if attr_type == "number":
        return Decimal(text)
    if attr_type == "date":
        return date.fromisoformat(text)
    return text


def _attribute(conn: Connection, key: str) -> AttributeDef:
    attr = get_attribute(conn, key)
    if attr is None:
        raise NotFoundError(
            f"no attribute {key!r} is defined (define it first)",
            code="attribute.not_found",
            message_zh=f"未定义属性 {key!r}(请先定义)",
            details={"key": key},
        )
    return attr


def set_attribute(
    conn: Connection,
    customer_ids: Iterable[str],
    key: str,
    value: str,
    *,
    actor: str,
    now: datetime,
) -> int:
    """Set ``key`` to ``value`` for every customer; returns how many values changed."""
    attr = _attribute(conn, key)
    text = parse_value(attr, value)
    ids = _unique_ids(customer_ids)
    _check_customers(conn, ids)
    ca = customer_attributes.c
    changed = 0
    for chunk in _chunks(ids):
        same = set(
            conn.execute(
                select(ca.customer_id).where(
                    ca.customer_id.in_(chunk), ca.key == key, ca.value == text
                )
            ).scalars()
        )
        todo = [cid for cid in chunk if cid not in same]
        if not todo:
            continue
        conn.execute(delete(customer_attributes).where(ca.customer_id.in_(todo), ca.key == key))
        conn.execute(
            customer_attributes.insert(),
            [{"customer_id": cid, "key": key, "value": text, "set_at": now, "set_by": actor[:64]}
             for cid in todo],
        )  # fmt: skip
        conn.execute(
            customer_profile_events.insert(),
            [{"at": now, "actor": actor[:64], "customer_id": cid, "kind": "attr.set",
              "name": key, "value": text} for cid in todo],
        )  # fmt: skip
        changed += len(todo)
    return changed


def clear_attribute(
    conn: Connection, customer_ids: Iterable[str], key: str, *, actor: str, now: datetime
) -> int:
    """Remove ``key``'s value from every customer; returns how many values went."""
    _attribute(conn, key)
    ids = _unique_ids(customer_ids)
    _check_customers(conn, ids)
    ca = customer_attributes.c
    cleared = 0
    for chunk in _chunks(ids):
        had = list(
            conn.execute(
                select(ca.customer_id).where(ca.customer_id.in_(chunk), ca.key == key)
            ).scalars()
        )
        if not had:
            continue
        conn.execute(delete(customer_attributes).where(ca.customer_id.in_(had), ca.key == key))
        conn.execute(
            customer_profile_events.insert(),
            [{"at": now, "actor": actor[:64], "customer_id": cid, "kind": "attr.clear",
              "name": key, "value": None} for cid in had],
        )  # fmt: skip
        cleared += len(had)
    return cleared


def attributes_for(conn: Connection, customer_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Each customer's attribute values as their types; customers without any are absent."""
    ca, pa_ = customer_attributes.c, profile_attributes.c
    out: dict[str, dict[str, Any]] = {}
    for chunk in _chunks(list(customer_ids)):
        rows = conn.execute(
            select(ca.customer_id, ca.key, ca.value, pa_.type)
            .join(profile_attributes, pa_.key == ca.key)
            .where(ca.customer_id.in_(chunk))
        )
        for r in rows:
            out.setdefault(r.customer_id, {})[r.key] = typed(r.type, r.value)
    return out


def profile_history(
    conn: Connection, customer_id: str, *, limit: int = 100
) -> list[dict[str, Any]]:
    ev = customer_profile_events.c
    rows = conn.execute(
        select(customer_profile_events)
        .where(ev.customer_id == customer_id)
        .order_by(ev.event_id.desc())
        .limit(limit)
    )
    return [
        {"at": r.at, "actor": r.actor, "kind": r.kind, "name": r.name, "value": r.value}
        for r in rows
    ]


def profile_of(conn: Connection, customer_id: str) -> dict[str, Any]:
    """One customer's tags, attribute values (as text) and recent history."""
    _check_customers(conn, [customer_id])
    ca = customer_attributes.c
    values = {
        r.key: r.value
        for r in conn.execute(
            select(ca.key, ca.value).where(ca.customer_id == customer_id).order_by(ca.key)
        )
    }
    return {
        "customer_id": customer_id,
        "tags": tags_for(conn, [customer_id]).get(customer_id, []),
        "attributes": values,
        "history": profile_history(conn, customer_id),
    }
