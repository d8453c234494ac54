"""Index matching keys, find accounts that share one, merge and unmerge with history.

Every function takes an open connection; the caller owns the transaction (a door runs a
merge in one unit of work, so a merge is whole or absent). Invariants, checked after every
change: a link always points to a primary (a person's primary has no link itself), and an
account is in one person at a time. On PostgreSQL the accounts a merge or unmerge touches are
locked (``FOR UPDATE``, in id order) so two concurrent merges cannot build a chain.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import Connection, and_, bindparam, delete, func, insert, select, text

from huitouke.errors import ConflictError, InputError, NotFoundError, StoreError
from huitouke.identity.keys import (
    KINDS,
    KeyKind,
    account_keys,
    hash_key,
    normalise_email,
    normalise_phone,
)
from huitouke.identity.tables import identity_events, identity_keys, identity_links
from huitouke.store.tables import customers, orders

__all__ = [
    "RULES",
    "Contacts",
    "KeyWriter",
    "Match",
    "apply_persons",
    "history",
    "index_keys",
    "matches",
    "merge",
    "person",
    "person_accounts",
    "person_map",
    "unmerge",
    "write_keys",
]

#: why accounts were linked: by hand, or by the key they share
RULES = ("manual", *KINDS)
_CHUNK = 900
_MAX_REASON = 500


@dataclass(frozen=True)
class Match:
    """Accounts of different persons that share at least one key."""

    customer_ids: tuple[str, ...]
    kinds: tuple[str, ...]
    primary: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "customer_ids": list(self.customer_ids),
            "kinds": list(self.kinds),
            "primary": self.primary,
        }


def _chunks(items: Sequence[str]) -> Iterable[Sequence[str]]:
    for i in range(0, len(items), _CHUNK):
        yield items[i : i + _CHUNK]


def _reason(reason: str) -> str:
    text = (reason or "").strip()
    if not text:
        raise InputError(
            "a reason is required for a merge or an unmerge",
            code="identity.reason_required",
            message_zh="合并或拆分必须填写原因",
            details={"field": "reason"},
        )
    if len(text) > _MAX_REASON:
        raise InputError(
            f"the reason is longer than {_MAX_REASON} characters",
            code="identity.reason_required",
            message_zh=f"原因超过 {_MAX_REASON} 个字符",
            details={"field": "reason"},
        )
    return text


def person_map(conn: Connection) -> dict[str, str]:
    """Every linked account → its person (the primary's customer id)."""
    rows = conn.execute(select(identity_links.c.customer_id, identity_links.c.person_id))
    return {r.customer_id: r.person_id for r in rows}


def _persons_of(conn: Connection, ids: Sequence[str]) -> dict[str, str]:
    out = {cid: cid for cid in ids}
    for part in _chunks(list(ids)):
        rows = conn.execute(
            select(identity_links.c.customer_id, identity_links.c.person_id).where(
                identity_links.c.customer_id.in_(part)
            )
        )
        out.update({r.customer_id: r.person_id for r in rows})
    return out


def person_accounts(conn: Connection, customer_ids: Iterable[str]) -> dict[str, tuple[str, ...]]:
    """Each of ``customer_ids`` → every account of its person, the primary first (an
    account in no person → itself alone). Two reads per 900 ids: the contact rules and the
    loyalty views count a person's accounts together with it."""
    ids = sorted(set(customer_ids))
    if conn.execute(select(identity_links.c.customer_id).limit(1)).first() is None:
        return {cid: (cid,) for cid in ids}  # nobody merged: skip the reads
    of = _persons_of(conn, ids)
    members = _members(conn, of.values())
    return {cid: tuple(members[of[cid]]) for cid in ids}


def _members(conn: Connection, persons: Iterable[str]) -> dict[str, list[str]]:
    """Each person's accounts, the primary first, the others by id."""
    wanted = sorted(set(persons))
    out: dict[str, list[str]] = {p: [p] for p in wanted}
    for part in _chunks(wanted):
        rows = conn.execute(
            select(identity_links.c.customer_id, identity_links.c.person_id)
            .where(identity_links.c.person_id.in_(part))
            .order_by(identity_links.c.customer_id)
        )
        for r in rows:
            out[r.person_id].append(r.customer_id)
    return out


def _lock_accounts(conn: Connection, ids: Sequence[str]) -> dict[str, datetime]:
    """The accounts' creation times; unknown ids refused by name. Locked on PostgreSQL."""
    wanted = sorted(set(ids))
    found: dict[str, datetime] = {}
    for part in _chunks(wanted):
        q = select(customers.c.customer_id, customers.c.created_at).where(
            customers.c.customer_id.in_(part)
        )
        if conn.dialect.name == "postgresql":
            q = q.order_by(customers.c.customer_id).with_for_update()
        found.update({r.customer_id: r.created_at for r in conn.execute(q)})
    missing = [c for c in wanted if c not in found]
    if missing:
        raise NotFoundError(
            f"no customer with id {', '.join(missing[:5])}",
            code="identity.unknown_customer",
            message_zh=f"没有编号为 {'、'.join(missing[:5])} 的顾客",
            details={"customer_ids": missing},
        )
    return found


def _event(
    conn: Connection,
    *,
    action: str,
    person_id: str,
    customer_ids: Sequence[str],
    rule: str,
    actor: str,
    reason: str,
    now: datetime,
) -> None:
    conn.execute(
        insert(identity_events).values(
            at=now,
            action=action,
            person_id=person_id,
            customer_ids=list(customer_ids),
            rule=rule,
            actor=actor,
            reason=reason,
        )
    )


def _check_invariants(conn: Connection, persons: Iterable[str]) -> None:
    chained = conn.execute(
        select(func.count())
        .select_from(identity_links)
        .where(identity_links.c.customer_id.in_(sorted(set(persons))))
    ).scalar_one()
    if chained:
        raise StoreError(
            "an identity link points to an account that is itself linked",
            code="store.inconsistent",
            message_zh="身份关联指向了一个本身已被关联的账户",
        )


def merge(
    conn: Connection,
    customer_ids: Sequence[str],
    *,
    actor: str,
    reason: str,
    now: datetime,
    rule: str = "manual",
) -> dict[str, Any]:
    """One person of the persons of ``customer_ids``: the first id's person absorbs the
    others (all their accounts). Refused when all are one person already."""
    why = _reason(reason)
    if rule not in RULES:
        raise InputError(
            f"unknown rule {rule!r} (one of {', '.join(RULES)})",
            code="identity.bad_rule",
            message_zh=f"未知的规则 {rule!r}(可选 {', '.join(RULES)})",
            details={"field": "rule"},
        )
    ids = list(dict.fromkeys(c.strip() for c in customer_ids if c and c.strip()))
    if len(ids) < 2:
        raise InputError(
            "a merge needs at least two customer ids",
            code="identity.too_few",
            message_zh="合并至少需要两个顾客编号",
            details={"field": "customer_ids"},
        )
    of = _persons_of(conn, ids)
    members = _members(conn, of.values())
    everyone = sorted({m for ms in members.values() for m in ms})
    _lock_accounts(conn, everyone)
    # read again under the locks: another merge may have moved them meanwhile
    of = _persons_of(conn, ids)
    target = of[ids[0]]
    absorbed = [p for p in dict.fromkeys(of[c] for c in ids[1:]) if p != target]
    if not absorbed:
        raise ConflictError(
            f"{', '.join(ids)} are one person already ({target})",
            code="identity.already_merged",
            message_zh=f"{'、'.join(ids)} 已是同一个人({target})",
            details={"person_id": target},
        )
    members = _members(conn, [target, *absorbed])
    moved = [m for p in absorbed for m in members[p]]
    conn.execute(delete(identity_links).where(identity_links.c.customer_id.in_(moved)))
    conn.execute(
        insert(identity_links),
        [
            {"customer_id": m, "person_id": target, "rule": rule, "linked_at": now, "actor": actor}
            for m in moved
        ],
    )
    _event(
        conn, action="merge", person_id=target, customer_ids=moved, rule=rule, actor=actor,
        reason=why, now=now,
    )  # fmt: skip
    _check_invariants(conn, [target])
    return {"person_id": target, "merged": moved, "accounts": [*members[target], *moved]}


def unmerge(
    conn: Connection, customer_id: str, *, actor: str, reason: str, now: datetime
) -> dict[str, Any]:
    """``customer_id`` is its own person again. When it was the primary, the earliest
    created remaining account becomes the others' primary."""
    why = _reason(reason)
    of = _persons_of(conn, [customer_id])
    person_id = of[customer_id]
    members = _members(conn, [person_id])[person_id]
    created = _lock_accounts(conn, [customer_id, *members])
    person_id = _persons_of(conn, [customer_id])[customer_id]
    members = _members(conn, [person_id])[person_id]
    if len(members) < 2:
        raise ConflictError(
            f"customer {customer_id} is not merged with another account",
            code="identity.not_merged",
            message_zh=f"顾客 {customer_id} 没有与其他账户合并",
            details={"customer_id": customer_id},
        )
    rest = [m for m in members if m != customer_id]
    if customer_id == person_id:
        new_primary = min(rest, key=lambda c: (created[c], c))
        conn.execute(delete(identity_links).where(identity_links.c.person_id == person_id))
        others = [m for m in rest if m != new_primary]
        if others:
            conn.execute(
                insert(identity_links),
                [
                    {"customer_id": m, "person_id": new_primary, "rule": "manual",
                     "linked_at": now, "actor": actor}
                    for m in others
                ],
            )  # fmt: skip
        remaining_person = new_primary
    else:
        conn.execute(delete(identity_links).where(identity_links.c.customer_id == customer_id))
        remaining_person = person_id
    _event(
        conn, action="unmerge", person_id=person_id, customer_ids=[customer_id], rule="manual",
        actor=actor, reason=why, now=now,
    )  # fmt: skip
    _check_invariants(conn, [remaining_person, customer_id])
    return {"customer_id": customer_id, "person_id": remaining_person, "was_person": person_id}


def index_keys(
    conn: Connection,
    *,
    secret: bytes,
    region: str,
    now: datetime,
    customer_ids: Sequence[str] | None = None,
) -> dict[str, int]:
    """(Re)build the hashed keys of ``customer_ids`` (all customers when ``None``) from
    their phone, e-mail and union-id attribute. Counts per kind, and phones not valid."""
    q = select(
        customers.c.customer_id, customers.c.phone, customers.c.email, customers.c.attributes
    )
    counts = {"accounts": 0, "phone": 0, "email": 0, "union_id": 0, "phone_unreadable": 0}
    if customer_ids is None:
        conn.execute(delete(identity_keys))
        batches: Iterable[Sequence[str] | None] = [None]
    else:
        batches = list(_chunks(sorted(set(customer_ids))))
    for part in batches:
        if part is not None:
            conn.execute(delete(identity_keys).where(identity_keys.c.customer_id.in_(part)))
        rows = conn.execute(q if part is None else q.where(customers.c.customer_id.in_(part)))
        pending: list[dict[str, Any]] = []
        for r in rows:
            counts["accounts"] += 1
            keys = account_keys(r.phone, r.email, r.attributes, region=region)
            if r.phone and str(r.phone).strip() and not any(k == "phone" for k, _ in keys):
                counts["phone_unreadable"] += 1
            for kind, value in keys:
                counts[kind] += 1
                pending.append(
                    {"kind": kind, "key_hash": hash_key(secret, kind, value),
                     "customer_id": r.customer_id, "indexed_at": now}
                )  # fmt: skip
            if len(pending) >= 5000:
                conn.execute(insert(identity_keys), pending)
                pending = []
        if pending:
            conn.execute(insert(identity_keys), pending)
    return counts


def matches(conn: Connection) -> list[Match]:
    """Groups of accounts, of more than one person, that share a key (transitively: A and
    B share a phone, B and C an e-mail → one group). Accounts already one person are one
    node. The primary proposed is the earliest created account."""
    links = person_map(conn)
    k = identity_keys.c
    dup = (
        select(k.kind, k.key_hash).group_by(k.kind, k.key_hash).having(func.count() > 1)
    ).subquery()
    shared = conn.execute(
        select(k.kind, k.key_hash, k.customer_id)
        .join(dup, and_(dup.c.kind == k.kind, dup.c.key_hash == k.key_hash))
        .order_by(k.kind, k.key_hash, k.customer_id)
    ).all()
    by_key: dict[tuple[str, str], list[str]] = defaultdict(list)
    for r in shared:
        by_key[(r.kind, r.key_hash)].append(r.customer_id)
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    kinds_of: dict[str, set[str]] = defaultdict(set)
    for (kind, _), accounts in by_key.items():
        nodes = {links.get(a, a) for a in accounts}
        if len(nodes) < 2:
            continue
        first, *others = sorted(nodes)
        for other in others:
            a, b = find(first), find(other)
            if a != b:
                parent[b] = a
        for n in nodes:
            kinds_of[n].add(kind)
    groups: dict[str, list[str]] = defaultdict(list)
    for node in list(parent):
        groups[find(node)].append(node)
    out: list[Match] = []
    if not groups:
        return out
    nodes_all = sorted({n for g in groups.values() for n in g})
    created: dict[str, datetime] = {}
    for part in _chunks(nodes_all):
        created.update(
            {
                r.customer_id: r.created_at
                for r in conn.execute(
                    select(customers.c.customer_id, customers.c.created_at).where(
                        customers.c.customer_id.in_(part)
                    )
                )
            }
        )
    for group in groups.values():
        ordered = sorted(group, key=lambda c: (created.get(c) or datetime.max, c))
        kinds = sorted({k for n in group for k in kinds_of[n]})
        out.append(Match(tuple(ordered), tuple(kinds), ordered[0]))
    out.sort(key=lambda m: m.customer_ids)
    return out


def person(conn: Connection, customer_id: str) -> dict[str, Any]:
    """The person ``customer_id`` belongs to: its accounts (primary first) with how each was
    linked and, per source, its orders and net revenue — the per-source view."""
    _require_customer(conn, customer_id)
    person_id = _persons_of(conn, [customer_id])[customer_id]
    accounts = _members(conn, [person_id])[person_id]
    link_rows = {
        r.customer_id: r
        for r in conn.execute(
            select(identity_links).where(identity_links.c.customer_id.in_(accounts))
        )
    }
    per_source: dict[str, list[dict[str, Any]]] = defaultdict(list)
    rows = conn.execute(
        select(
            orders.c.customer_id,
            orders.c.source,
            func.count().label("orders"),
            func.min(orders.c.ordered_at).label("first_order_at"),
            func.max(orders.c.ordered_at).label("last_order_at"),
        )
        .where(orders.c.customer_id.in_(accounts))
        .group_by(orders.c.customer_id, orders.c.source)
        .order_by(orders.c.customer_id, orders.c.source)
    )
    for r in rows:
        per_source[r.customer_id].append(
            {"source": r.source, "orders": int(r.orders),
             "first_order_at": r.first_order_at, "last_order_at": r.last_order_at}
        )  # fmt: skip
    return {
        "person_id": person_id,
        "accounts": [
            {
                "customer_id": a,
                "primary": a == person_id,
                "rule": link_rows[a].rule if a in link_rows else None,
                "linked_at": link_rows[a].linked_at if a in link_rows else None,
                "actor": link_rows[a].actor if a in link_rows else None,
                "sources": per_source.get(a, []),
            }
            for a in accounts
        ],
    }


def _require_customer(conn: Connection, customer_id: str) -> None:
    found = conn.execute(
        select(customers.c.customer_id).where(customers.c.customer_id == customer_id)
    ).first()
    if found is None:
        raise NotFoundError(
            f"no customer with id {customer_id}",
            code="identity.unknown_customer",
            message_zh=f"没有编号为 {customer_id} 的顾客",
            details={"customer_ids": [customer_id]},
        )


def history(
    conn: Connection, customer_id: str | None = None, *, limit: int = 100
) -> list[dict[str, Any]]:
    """Merges and unmerges, newest first; for one customer: the events that name it (it was
    moved, taken out, or it is the person others were moved into or out of)."""
    q = select(identity_events).order_by(identity_events.c.event_id.desc())
    rows = conn.execute(q).mappings()
    out: list[dict[str, Any]] = []
    for r in rows:
        ids = list(r["customer_ids"] or [])
        if customer_id is not None and customer_id != r["person_id"] and customer_id not in ids:
            continue
        out.append({**dict(r), "customer_ids": ids})
        if len(out) >= limit:
            break
    return out


def apply_persons(table: pa.Table, mapping: Mapping[str, str]) -> pa.Table:
    """``table`` (the canonical orders) with each linked account's ``customer_id``
    replaced by its person's: the analytics count a person once."""
    if not mapping or table.num_rows == 0:
        return table
    keys = pa.array(list(mapping.keys()), type=pa.string())
    values = pa.array(list(mapping.values()), type=pa.string())
    column = table.column("customer_id")
    position = pc.index_in(column, value_set=keys)
    replaced = pc.take(values, position)
    merged = pc.coalesce(replaced, column.cast(pa.string())).cast(column.type)
    index = table.schema.get_field_index("customer_id")
    return table.set_column(index, table.schema.field(index), merged)


# -- keys on write -------------------------------------------------------------------------
@dataclass(frozen=True)
class KeyWriter:
    """How the doors write matching keys as orders and customers arrive: the hashing key
    (:func:`~huitouke.identity.keys.identity_secret`), the region of phone numbers without
    a country code, and the kinds whose shared key merges accounts at once
    (``HUITOUKE_IDENTITY_AUTO_MERGE``)."""

    secret: bytes
    region: str
    auto: tuple[str, ...] = ("union_id",)


@dataclass(frozen=True)
class Contacts:
    """What a door learnt about an account's buyer: ``None`` or blank = not given (the
    stored key of that kind stays); a value given replaces the stored key of its kind (an
    unreadable one, a masked phone, removes it — as the nightly index would)."""

    customer_id: str
    phone: str | None = None
    email: str | None = None
    union_id: str | None = None
    #: the buyer's name: no matching key, it only fills the customer's profile
    name: str | None = None

    def given(self) -> dict[KeyKind, str]:
        out: dict[KeyKind, str] = {}
        for kind, raw in (("phone", self.phone), ("email", self.email),
                          ("union_id", self.union_id)):  # fmt: skip
            if raw is not None and str(raw).strip():
                out[kind] = str(raw).strip()  # type: ignore[index]
        return out


def _normalised(kind: str, raw: str, region: str) -> str | None:
    if kind == "phone":
        return normalise_phone(raw, region)
    if kind == "email":
        return normalise_email(raw)
    return raw


_SET_UNION_SQLITE = text(
    "UPDATE customers SET attributes = json_set(COALESCE(attributes, '{}'), '$.union_id', :u) "
    "WHERE customer_id = :cid AND COALESCE(json_extract(attributes, '$.union_id'), '') <> :u"
)
_SET_UNION_PG = text(
    "UPDATE customers SET attributes = CAST(CAST(COALESCE(attributes, '{}') AS jsonb) "
    "|| jsonb_build_object('union_id', CAST(:u AS text)) AS json) "
    "WHERE customer_id = :cid "
    "AND (CAST(attributes AS jsonb) ->> 'union_id') IS DISTINCT FROM CAST(:u AS text)"
)


def write_keys(
    conn: Connection,
    contacts: Iterable[Contacts],
    writer: KeyWriter,
    *,
    now: datetime,
    actor: str = "auto",
) -> dict[str, int]:
    """Write the hashed keys of the accounts' contacts a door just recorded (the accounts'
    ``customers`` rows exist), set-based: per kind given one DELETE of the batch's old keys
    and one INSERT of the new ones (900 accounts a statement); a union id is also kept in
    the account's ``union_id`` attribute, so the nightly ``identity index`` finds it
    again. Then the accounts sharing a key of a kind in ``writer.auto`` with an account of
    another person are merged into the person of the earliest created one, each merge
    recorded with its rule and ``actor``. Counts: keys written, merges made."""
    latest: dict[str, dict[KeyKind, str]] = {}
    for c in contacts:
        given = c.given()
        if given:
            latest.setdefault(c.customer_id, {}).update(given)
    if not latest:
        return {"keys": 0, "merges": 0}
    rows: list[dict[str, Any]] = []
    by_kind: dict[str, list[str]] = defaultdict(list)
    unions: list[dict[str, str]] = []
    for cid, given in latest.items():
        for kind, raw in given.items():
            by_kind[kind].append(cid)
            value = _normalised(kind, raw, writer.region)
            if value is not None:
                rows.append({"kind": kind, "key_hash": hash_key(writer.secret, kind, value),
                             "customer_id": cid, "indexed_at": now})  # fmt: skip
            if kind == "union_id":
                unions.append({"cid": cid, "u": raw})
    k = identity_keys.c
    if conn.execute(select(k.customer_id).limit(1)).first() is None:
        by_kind.clear()  # no key stored yet (a first import): nothing to replace
    for given_kind, ids in sorted(by_kind.items()):
        for part in _chunks(sorted(ids)):
            conn.execute(delete(identity_keys).where(k.kind == given_kind, k.customer_id.in_(part)))
    _insert_keys(conn, rows, now)
    if unions:
        stmt = _SET_UNION_PG if conn.dialect.name == "postgresql" else _SET_UNION_SQLITE
        conn.execute(stmt, unions)
    merges = _auto_merge(conn, [r for r in rows if r["kind"] in writer.auto], actor, now)
    return {"keys": len(rows), "merges": merges}


def _insert_keys(conn: Connection, rows: Sequence[Mapping[str, Any]], now: datetime) -> None:
    """The keys in one driver-level ``executemany`` per 5,000, in key order (the time
    bound once, not converted row by row)."""
    if not rows:
        return
    proc = identity_keys.c.indexed_at.type.bind_processor(conn.dialect)
    at = proc(now) if proc is not None else now
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    sql = (
        "INSERT INTO identity_keys (kind, key_hash, customer_id, indexed_at) "
        f"VALUES ({mark}, {mark}, {mark}, {mark})"
    )
    # in primary-key order: the key index grows by appends, not by random inserts
    ordered = sorted((r["kind"], r["key_hash"], r["customer_id"], at) for r in rows)
    for i in range(0, len(ordered), 5000):
        conn.exec_driver_sql(sql, ordered[i : i + 5000])


def _auto_merge(
    conn: Connection, rows: Sequence[Mapping[str, Any]], actor: str, now: datetime
) -> int:
    """Merge the accounts that share one of ``rows``' keys and are not one person yet."""
    if not rows:
        return 0
    k = identity_keys.c
    by_kind: dict[str, list[str]] = defaultdict(list)
    for r in rows:
        by_kind[r["kind"]].append(r["key_hash"])
    sharing: dict[tuple[str, str], set[str]] = defaultdict(set)
    q = select(k.kind, k.key_hash, k.customer_id).where(
        k.kind == bindparam("kind"), k.key_hash.in_(bindparam("hashes", expanding=True))
    )
    for kind, hashes in sorted(by_kind.items()):
        for part in _chunks(sorted(set(hashes))):
            for found in conn.execute(q, {"kind": kind, "hashes": list(part)}):
                sharing[(found.kind, found.key_hash)].add(found.customer_id)
    shared = {key: ids for key, ids in sharing.items() if len(ids) > 1}
    if not shared:
        return 0
    of = _persons_of(conn, sorted({c for ids in shared.values() for c in ids}))
    merges = 0
    for (kind, _), ids in sorted(shared.items()):
        persons = sorted({of[c] for c in ids})
        # read again: an earlier merge of this batch may have joined them already
        current = _persons_of(conn, persons)
        persons = sorted(set(current.values()))
        if len(persons) < 2:
            continue
        created = _lock_accounts(conn, persons)
        ordered = sorted(persons, key=lambda c: (created[c], c))
        merge(conn, ordered, actor=actor, rule=kind, now=now,
              reason=f"same {kind} recorded with an order or a customer")  # fmt: skip
        merges += 1
    return merges
