"""Order events: :func:`record_order_events`, the one use case that records them, and
:func:`load_orders`, the one that reads the orders back for analytics.

Every door records order events through :func:`record_order_events`, inside its own unit of
work — ``POST /v1/orders`` (through the group commit), ``POST /v1/orders/batch``,
``huitouke import`` and ``huitouke loyalty order apply`` / ``apply-file`` — so the same
events give the same ``orders`` rows and the same ledger whichever door they came through.
An order is identified by ``(source, order_id)``: its id lives in the namespace of its
source — the shop, platform or channel it came from (``taobao``, ``shopify``…;
:data:`~huitouke.core.orders.DEFAULT_SOURCE` when a door is given none). The same id under
two sources is two orders; an event of one source never reads or changes another's.
For each event it

1. upserts the order by the later-state rule (:mod:`huitouke.store.orders_repo`): a later
   state replaces an earlier one, an older state arriving late changes nothing;
2. refuses an event that names another customer, time, amount or currency for an order
   already recorded (409 ``order.conflict``, ``details.field``): an order id is never
   reassigned silently — the ledger would keep the first customer's points while the
   analytics counted the new amount;
3. applies the loyalty effects of the order's *stored* state (the ledger follows the order's
   latest state, not the event: a late ``paid`` after a refund earns nothing), when a
   loyalty program runs;
4. answers per event ``{order, loyalty, replayed}``; an event older than the recorded state
   answers ``loyalty.ignored: "stale"``;
5. with a :class:`~huitouke.identity.service.KeyWriter` (every door passes
   :func:`key_writer`), writes the hashed matching keys of the buyer contacts the events
   carry (``buyer``: phone, e-mail, union id; a file's customer columns) and merges the
   accounts that share a key of an automatic kind (:mod:`huitouke.identity`), set-based.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import Connection, select

from huitouke.app import messages as _messages  # noqa: F401  (registers texts)
from huitouke.core.orders import (
    DEFAULT_SOURCE,
    MONEY,
    order_ref,
    split_order_ref,
)
from huitouke.errors import ConflictError, HuitoukeError, InputError
from huitouke.i18n import t
from huitouke.identity.keys import identity_secret
from huitouke.identity.service import Contacts, KeyWriter, write_keys
from huitouke.loyalty.order_batch import ignored_effects
from huitouke.loyalty.programs_repo import get_program
from huitouke.loyalty.service import LoyaltyService, parse_order
from huitouke.settings import Settings
from huitouke.store.db import Store
from huitouke.store.orders_repo import (
    IDENTITY_FIELDS,
    STATUS_RANK,
    UpsertCounts,
    check_source,
    orders_table,
    reduce_to_latest_state,
    upsert_orders,
)
from huitouke.store.tables import order_lines, orders

__all__ = [
    "LOYALTY_PROGRAM_ID",
    "OrderEventIn",
    "OrderKey",
    "OrderTable",
    "Recorded",
    "buyer_contacts",
    "check_source",
    "find_order",
    "key_writer",
    "load_order_lines",
    "load_orders",
    "order_event",
    "order_reference",
    "present_coupon",
    "present_order",
    "present_order_ref",
    "record_order_events",
    "stored_loyalty",
    "stored_order",
    "stored_orders",
]

#: the program the doors run (``huitouke loyalty program save``, ``PUT /v1/program``)
LOYALTY_PROGRAM_ID = "default"
_FINAL = max(STATUS_RANK.values())
#: events applied to the ledger per call when a whole file is recorded
_LOYALTY_CHUNK = 2000
#: orders of a file from which its conflicts are looked for in one scan of ``orders``
_SCAN_FROM = 200_000

#: what identifies an order: ``(source, order_id)``
OrderKey = tuple[str, str]


@dataclass(frozen=True)
class OrderEventIn:
    """One order event, validated: the ``orders`` row (``order_id``, ``customer_id``, aware
    ``ordered_at``, Decimal ``amount`` and ``refunded_amount``, ``currency``, ``status``,
    ``channel``, ``source``) and its lines (``None``: the event carries none, the stored
    ones stay)."""

    order: dict[str, Any]
    lines: list[dict[str, Any]] | None = None
    #: what the event says about its buyer (``buyer`` of the event): matching keys
    contacts: Contacts | None = None

    @property
    def order_id(self) -> str:
        return str(self.order["order_id"])

    @property
    def key(self) -> OrderKey:
        return (str(self.order.get("source") or DEFAULT_SOURCE), self.order_id)


@dataclass(frozen=True)
class OrderTable:
    """Orders as canonical Arrow tables (a file import): ``orders`` follow
    :data:`~huitouke.core.orders.ORDERS_SCHEMA`, ``lines`` and ``customers`` as
    :func:`~huitouke.store.orders_repo.upsert_orders` takes them."""

    orders: pa.Table
    lines: pa.Table | None = None
    customers: pa.Table | None = None
    batch_id: int | None = None
    #: the rows are already one per order id (``read_orders`` reduces them)
    one_row_per_order: bool = False
    #: the buyers' contacts (a connector's page); without them a file's ``customers``
    #: columns (phone, email) give the matching keys
    contacts: Sequence[Contacts] | None = None


@dataclass(frozen=True)
class Recorded:
    """What :func:`record_order_events` did: the upsert counts, per event (for a sequence of
    events) ``{order, loyalty, replayed}``, and how many events went through the ledger."""

    counts: UpsertCounts
    results: list[dict[str, Any]]
    loyalty_events: int


# -- input ---------------------------------------------------------------------------------
def _bad(field: str, en: str, zh: str) -> InputError:
    return InputError(
        f"{field}: {en}", code="input.invalid", message_zh=f"{field}:{zh}", details={"field": field}
    )


def order_reference(order_id: str, source: str | None, *, field: str = "source") -> str:
    """The order a use case outside the orders table names by its id and source — a coupon
    redeemed on it, a stored-value payment of it, a fulfilment event — as the ledger and
    the journeys reference it
    (:func:`~huitouke.core.orders.order_ref`); ``source`` validated as :func:`check_source`
    does (``None``: the default source)."""
    return order_ref(check_source(source, field=field), order_id)


def present_order_ref(result: dict[str, Any]) -> dict[str, Any]:
    """A loyalty answer whose ``order_id`` is a ledger reference, with the order's id and
    ``source`` apart (what the doors show)."""
    ref = result.get("order_id")
    if isinstance(ref, str):
        result["source"], result["order_id"] = split_order_ref(ref)
    return result


def present_coupon(coupon: dict[str, Any]) -> dict[str, Any]:
    """A coupon with its history (``LoyaltyService.coupon``), the orders it names shown as
    id and source apart: ``redeemed_order_id`` + ``redeemed_order_source``, each event's
    ``order_id`` + ``order_source``."""
    ref = coupon.get("redeemed_order_id")
    if isinstance(ref, str):
        coupon["redeemed_order_source"], coupon["redeemed_order_id"] = split_order_ref(ref)
    for e in coupon.get("events") or ():
        if isinstance(e.get("order_id"), str):
            e["order_source"], e["order_id"] = split_order_ref(e["order_id"])
    return coupon


_BUYER_FIELDS = {"phone": 40, "email": 320, "union_id": 128, "name": 200}


def key_writer(settings: Settings) -> KeyWriter:
    """How the doors write matching keys (:mod:`huitouke.identity`): hashed with the key
    derived from ``HUITOUKE_SECRET_KEY``, phones read in ``HUITOUKE_PHONE_REGION``, merged
    at once by the kinds of ``HUITOUKE_IDENTITY_AUTO_MERGE``."""
    auto = tuple(k.strip() for k in settings.identity_auto_merge.split(",") if k.strip())
    return KeyWriter(
        identity_secret(settings.secret_key.get_secret_value()), settings.phone_region, auto
    )


def buyer_contacts(customer_id: str, raw: Any, *, field: str = "buyer") -> Contacts | None:
    """An event's ``buyer`` (``{"phone", "email", "union_id", "name"}``, each optional)
    validated: errors name the field; ``None`` when it gives nothing."""
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise _bad(
            field,
            "must be an object with phone, email, union_id, name",
            "应为包含 phone、email、union_id、name 的对象",
        )
    values: dict[str, str | None] = {}
    for k, v in raw.items():
        if k not in _BUYER_FIELDS:
            raise _bad(
                f"{field}.{k}",
                "unknown field (phone, email, union_id, name)",
                "未知字段(可选 phone、email、union_id、name)",
            )
        if v is None or v == "":
            continue
        if not isinstance(v, str) or len(v) > _BUYER_FIELDS[k]:
            n = _BUYER_FIELDS[k]
            raise _bad(
                f"{field}.{k}",
                f"must be text of at most {n} characters",
                f"应为不超过 {n} 个字符的文本",
            )
        values[k] = v
    if not values:
        return None
    return Contacts(customer_id, **values)


def order_event(raw: Mapping[str, Any], *, currency: str) -> OrderEventIn:
    """An order event from plain values (a JSON line, CLI options), validated as the REST
    API validates its body: errors name the field. ``currency`` is the default currency;
    ``refunded_amount`` defaults to the whole amount for ``refunded`` and to 0 otherwise;
    ``source`` defaults to :data:`~huitouke.core.orders.DEFAULT_SOURCE`."""
    source = check_source(raw.get("source"))
    ev = parse_order({**raw, "status": raw.get("status") or "paid"})
    refunded = ev.refunded_amount
    if raw.get("refunded_amount") in (None, "") and ev.status == "refunded":
        refunded = ev.amount
    if ev.status == "partially_refunded" and not 0 < refunded < ev.amount:
        raise _bad(
            "refunded_amount",
            "status partially_refunded needs 0 < refunded_amount < amount",
            "部分退款需要 0 < 退款金额 < 订单金额",
        )
    cur = str(raw.get("currency") or currency)
    if len(cur) != 3 or not cur.isascii() or not cur.isupper() or not cur.isalpha():
        raise _bad("currency", f"{cur!r} is not an ISO 4217 code", f"{cur!r} 不是 3 位币种代码")
    channel = raw.get("channel")
    order = {
        "source": source,
        "order_id": ev.order_id,
        "customer_id": ev.customer_id,
        "ordered_at": ev.ordered_at,
        "amount": ev.amount,
        "currency": cur,
        "status": ev.status,
        "refunded_amount": refunded,
        "channel": None if channel in (None, "") else str(channel),
    }
    contacts = buyer_contacts(ev.customer_id, raw.get("buyer"))
    raw_lines = raw.get("lines")
    if raw_lines is None:
        return OrderEventIn(order, None, contacts)
    lines = []
    for i, ln in enumerate(raw_lines, start=1):
        if not isinstance(ln, Mapping) or not ln.get("sku"):
            raise _bad(f"lines.{i - 1}.sku", "required", "缺少 sku")
        price = ln.get("unit_price")
        lines.append(
            {
                "source": source,
                "order_id": ev.order_id,
                "line_no": i,
                "sku": str(ln["sku"]),
                "product_name": ln.get("product_name"),
                "category": ln.get("category"),
                "quantity": ev.lines[i - 1].quantity,
                "unit_price": None if price is None else ev.lines[i - 1].unit_price,
            }
        )
    return OrderEventIn(order, lines, contacts)


# -- reads ---------------------------------------------------------------------------------
def stored_order(conn: Connection, key: OrderKey) -> dict[str, Any] | None:
    """The order ``(source, order_id)`` as stored, with its lines, or ``None``."""
    return stored_orders(conn, [key]).get(key)


def find_order(conn: Connection, order_id: str, source: str | None) -> dict[str, Any] | None:
    """The order a door names by its id and, where needed, its source (what
    ``GET /v1/orders/{id}`` reads): with ``source``, that source's order; without, the id's
    one order — or ``order.ambiguous`` (409, naming the sources) when several sources use
    the id."""
    if source is not None:
        return stored_order(conn, (check_source(source), order_id))
    found = [o for _, o in sorted(stored_orders_by_id(conn, [order_id]).items())]
    if len(found) > 1:
        sources = [o["source"] for o in found]
        params = {"order_id": order_id, "sources": ", ".join(sources)}
        raise ConflictError(
            t("orders.ambiguous", "en", **params),
            code="order.ambiguous",
            message_zh=t("orders.ambiguous", "zh", **params),
            details={"order_id": order_id, "sources": sources},
        )
    return found[0] if found else None


def stored_orders(conn: Connection, keys: Sequence[OrderKey]) -> dict[OrderKey, dict[str, Any]]:
    """The orders ``(source, order_id)`` as stored, each with its lines (by ``line_no``),
    by key."""
    wanted = set(keys)
    found = stored_orders_by_id(conn, sorted({i for _, i in wanted}))
    return {k: o for k, o in found.items() if k in wanted}


def stored_orders_by_id(
    conn: Connection, order_ids: Sequence[str]
) -> dict[OrderKey, dict[str, Any]]:
    """The stored orders with these ids, under any source, each with its lines, by key."""
    ids = sorted(set(order_ids))
    out: dict[OrderKey, dict[str, Any]] = {}
    for i in range(0, len(ids), 1000):
        chunk = ids[i : i + 1000]
        for row in conn.execute(select(orders).where(orders.c.order_id.in_(chunk))):
            out[(row.source, row.order_id)] = {**row._mapping, "lines": []}
        for r in conn.execute(
            select(order_lines)
            .where(order_lines.c.order_id.in_(chunk))
            .order_by(order_lines.c.source, order_lines.c.order_id, order_lines.c.line_no)
        ):
            out[(r.source, r.order_id)]["lines"].append(dict(r._mapping))
    return out


def load_orders(store: Store, *, per_person: bool = True) -> pa.Table:
    """Every order as the canonical Arrow table (:mod:`huitouke.core.orders`), for the
    analytics, the report and the models: what the doors recorded. With ``per_person``
    (the default) an account merged into another's person (:mod:`huitouke.identity`)
    counts as that person: its ``customer_id`` is the person's primary account."""
    from huitouke.identity.service import apply_persons, person_map

    table = store.load_orders()
    if not per_person:
        return table
    with store.connect() as conn:
        mapping = person_map(conn)
    return apply_persons(table, mapping)


def load_order_lines(store: Store) -> pa.Table | None:
    """Every recorded order line (source, order_id, sku, product_name, category, quantity,
    unit_price) as Arrow, for the analytics' categories; ``None`` when there are none."""
    cols = ["source", "order_id", "sku", "product_name", "category", "quantity", "unit_price"]
    with store.connect() as conn:
        rows = conn.execute(select(*[order_lines.c[c] for c in cols])).all()
    if not rows:
        return None
    data = {c: [r[i] for r in rows] for i, c in enumerate(cols)}
    data["unit_price"] = [None if v is None else Decimal(v) for v in data["unit_price"]]
    return pa.table(
        {
            "source": pa.array(data["source"], pa.string()),
            "order_id": pa.array(data["order_id"], pa.string()),
            "sku": pa.array(data["sku"], pa.string()),
            "product_name": pa.array(data["product_name"], pa.string()),
            "category": pa.array(data["category"], pa.string()),
            "quantity": pa.array(data["quantity"], pa.int64()),
            "unit_price": pa.array(data["unit_price"], pa.decimal128(18, 4)),
        }
    )


def stored_loyalty(conn: Connection, timezone: str) -> LoyaltyService | None:
    """The loyalty program saved in the store, in the store's zone ``timezone`` (the
    merchant's; a program naming another is refused), or ``None`` when there is none."""
    program = get_program(conn, LOYALTY_PROGRAM_ID)
    return None if program is None else LoyaltyService(program.in_store_zone(timezone))


def _money(v: Any) -> str:
    return format(v, "f")


def present_order(o: Mapping[str, Any]) -> dict[str, Any]:
    """An order as stored, JSON-ready (what ``GET /v1/orders/{id}`` answers)."""
    return {
        "source": o["source"],
        "order_id": o["order_id"],
        "customer_id": o["customer_id"],
        "ordered_at": o["ordered_at"].isoformat(),
        "amount": _money(o["amount"]),
        "currency": o["currency"],
        "status": o["status"],
        "refunded_amount": _money(o["refunded_amount"]),
        "channel": o["channel"],
        "lines": [
            {
                "line_no": ln["line_no"],
                "sku": ln["sku"],
                "product_name": ln["product_name"],
                "category": ln["category"],
                "quantity": ln["quantity"],
                "unit_price": None if ln["unit_price"] is None else _money(ln["unit_price"]),
            }
            for ln in o["lines"]
        ],
    }


# -- the use case --------------------------------------------------------------------------
def record_order_events(
    conn: Connection,
    events: Sequence[OrderEventIn] | OrderTable,
    *,
    loyalty: LoyaltyService | None,
    progress: Callable[[int], None] | None = None,
    keys: KeyWriter | None = None,
) -> Recorded:
    """Record order events in the caller's unit of work (see the module docstring).

    ``events``: a sequence of events, applied in this order — each answered exactly as if
    it had been recorded alone after the ones before it — or a whole file's
    :class:`OrderTable` (no per-event answers; its orders go through the ledger in order of
    ``ordered_at``). ``loyalty``: the program to apply, or ``None`` to write the orders
    only. A conflict rejects everything (``details.index`` names the event of a sequence);
    the caller rolls the unit of work back. ``keys``: write the buyers' matching keys
    (:func:`key_writer`); ``None`` writes none.
    """
    if isinstance(events, OrderTable):
        recorded = _record_table(conn, events, loyalty, progress)
        if keys is not None:
            write_keys(conn, _table_contacts(events), keys, now=datetime.now(UTC))
        return recorded
    recorded = _record_events(conn, events, loyalty)
    if keys is not None:
        given = [e.contacts for e in events if e.contacts is not None]
        if given:
            write_keys(conn, given, keys, now=datetime.now(UTC))
    return recorded


def _table_contacts(tb: OrderTable) -> list[Contacts]:
    if tb.contacts is not None:
        return list(tb.contacts)
    c = tb.customers
    if c is None or c.num_rows == 0:
        return []
    cols = [n for n in ("phone", "email") if n in c.column_names]
    if not cols:
        return []
    has = pc.fill_null(pc.is_valid(c.column(cols[0])), False)
    for n in cols[1:]:
        has = pc.or_(has, pc.is_valid(c.column(n)))
    c = c.filter(has)
    ids = c.column("customer_id").to_pylist()
    values = {n: c.column(n).to_pylist() for n in cols}
    return [
        Contacts(cid, **{n: (None if values[n][i] is None else str(values[n][i])) for n in cols})
        for i, cid in enumerate(ids)
    ]


def _customer_contacts(events: Sequence[OrderEventIn]) -> list[dict[str, Any]] | None:
    """The ``customers`` rows (name, phone, e-mail) the events' buyers give, for the upsert
    (a value not given leaves the stored one)."""
    rows = [
        {"customer_id": e.contacts.customer_id, "phone": e.contacts.phone,
         "email": e.contacts.email, "name": e.contacts.name}
        for e in events
        if e.contacts is not None
        and (e.contacts.phone or e.contacts.email or e.contacts.name)
    ]  # fmt: skip
    return rows or None


def _segments(order_ids: Sequence[Any]) -> list[tuple[int, int]]:
    """Consecutive runs of events with distinct order keys: ``[(start, end), …]``.

    Within a run every order is upserted once, so the state stored after the run is, for
    each of its orders, the state after that order's event — what the loyalty ledger would
    have seen with the events recorded one by one. A repeated order key starts a new run.
    """
    out: list[tuple[int, int]] = []
    start, seen = 0, set[Any]()
    for i, oid in enumerate(order_ids):
        if oid in seen:
            out.append((start, i))
            start, seen = i, set()
        seen.add(oid)
    out.append((start, len(order_ids)))
    return out


def _loyalty_event(stored: Mapping[str, Any]) -> dict[str, Any]:
    # The loyalty ledger follows the order's stored (latest) state, not the event:
    # a late "paid" after a refund must not earn again.
    event = dict(stored)
    event["lines"] = [
        {**ln, "unit_price": ln["unit_price"] if ln["unit_price"] is not None else 0}
        for ln in stored["lines"]
    ]
    return event


def _text(v: Any) -> str:
    if isinstance(v, datetime):
        return v.isoformat()
    if isinstance(v, Decimal):
        return format(v.normalize(), "f")
    return str(v)


def _named(source: str, order_id: str) -> str:
    """How a message names an order: its id, qualified by a source other than the default."""
    return order_id if source == DEFAULT_SOURCE else f"{source}/{order_id}"


def _conflict(key: OrderKey, field: str, stored: Any, given: Any, **details: Any) -> ConflictError:
    params = {
        "order_id": _named(*key),
        "field": field,
        "stored": _text(stored),
        "given": _text(given),
    }
    return ConflictError(
        t("orders.conflict", "en", **params),
        code="order.conflict",
        message_zh=t("orders.conflict", "zh", **params),
        details={**params, "order_id": key[1], "source": key[0], **details},
    )


def _check_identity(event: Mapping[str, Any], stored: Mapping[str, Any], index: int) -> None:
    for f in IDENTITY_FIELDS:
        if event[f] != stored[f]:
            key = (event["source"], event["order_id"])
            raise _conflict(key, f, stored[f], event[f], index=index)


def _stale(event: Mapping[str, Any], stored: Mapping[str, Any]) -> bool:
    """The event is an older state than the recorded one (and so changed nothing)."""
    rank, stored_rank = STATUS_RANK[event["status"]], STATUS_RANK[stored["status"]]
    return rank < stored_rank or (
        rank == stored_rank < _FINAL
        and Decimal(event["refunded_amount"]) < stored["refunded_amount"]
    )


def _add(a: UpsertCounts, b: UpsertCounts) -> UpsertCounts:
    return UpsertCounts(
        a.inserted + b.inserted, a.updated + b.updated, a.unchanged + b.unchanged, b.written_at
    )


def _record_events(
    conn: Connection, events: Sequence[OrderEventIn], loyalty: LoyaltyService | None
) -> Recorded:
    ids = [e.key for e in events]
    total = UpsertCounts(0, 0, 0)
    out: list[dict[str, Any]] = []
    applied = 0
    for start, end in _segments(ids):
        seg, seg_ids = events[start:end], ids[start:end]
        written: set[datetime | None] = set()
        with_lines = [e for e in seg if e.lines is not None]
        if with_lines:
            c = upsert_orders(
                conn,
                [e.order for e in with_lines],
                lines=[ln for e in with_lines for ln in e.lines or ()],
                customers=_customer_contacts(with_lines),
            )
            written.add(c.written_at)
            total = _add(total, c)
        without_events = [e for e in seg if e.lines is None]
        without = [e.order for e in without_events]
        if without:
            c = upsert_orders(conn, without, customers=_customer_contacts(without_events))
            written.add(c.written_at)
            total = _add(total, c)
        stored = stored_orders(conn, seg_ids)
        for k, e in enumerate(seg):
            _check_identity(e.order, stored[e.key], start + k)
        effects: list[dict[str, Any] | None] = [None] * len(seg)
        if loyalty is not None:
            try:
                effects = list(
                    loyalty.apply_orders(conn, [_loyalty_event(stored[i]) for i in seg_ids])
                )
            except HuitoukeError as exc:
                index = exc.details.get("index")  # within the run; the request's index:
                if isinstance(index, int):
                    exc.details["index"] = start + index
                elif end - start == 1:
                    exc.details["index"] = start
                raise
            applied += len(seg)
        for e, eff in zip(seg, effects, strict=True):
            s = stored[e.key]
            changed = s["updated_at"] in written
            replayed = not changed
            if eff is not None:
                replayed = bool(eff.pop("replayed", False)) and replayed
                if replayed and _stale(e.order, s):
                    eff = ignored_effects(parse_order(e.order), "stale")
            out.append({"order": present_order(s), "loyalty": eff, "replayed": replayed})
    return Recorded(total, out, applied)


def _record_table(
    conn: Connection,
    tb: OrderTable,
    loyalty: LoyaltyService | None,
    progress: Callable[[int], None] | None,
) -> Recorded:
    table = tb.orders
    if not tb.one_row_per_order:
        table = reduce_to_latest_state(orders_table(table))
    customers: pa.Table | list[dict[str, Any]] | None = tb.customers
    if customers is None and tb.contacts:
        customers = _customer_contacts([OrderEventIn({}, None, c) for c in tb.contacts])
    counts = upsert_orders(
        conn,
        table,
        tb.lines,
        customers,
        tb.batch_id,
        progress=progress,
        one_row_per_order=True,
    )
    if counts.unchanged:  # rows not written: identical, older states — or conflicts
        _refuse_table_conflicts(conn, table)
    applied = 0
    if loyalty is not None and table.num_rows:
        by_time = table.select(["source", "order_id", "ordered_at"]).sort_by(
            [("ordered_at", "ascending"), ("order_id", "ascending"), ("source", "ascending")]
        )
        keys = list(
            zip(
                by_time.column("source").to_pylist(),
                by_time.column("order_id").to_pylist(),
                strict=True,
            )
        )
        for i in range(0, len(keys), _LOYALTY_CHUNK):
            chunk = keys[i : i + _LOYALTY_CHUNK]
            stored = stored_orders(conn, chunk)
            try:
                loyalty.apply_orders(conn, [_loyalty_event(stored[k]) for k in chunk])
            except HuitoukeError as exc:
                index = exc.details.pop("index", None)
                if isinstance(index, int) and 0 <= index < len(chunk):
                    exc.details.setdefault("source", chunk[index][0])
                    exc.details.setdefault("order_id", chunk[index][1])
                raise
            applied += len(chunk)
    return Recorded(counts, [], applied)


_IDENTITY = select(orders.c.source, orders.c.order_id, *(orders.c[f] for f in IDENTITY_FIELDS))


def _refuse_table_conflicts(conn: Connection, table: pa.Table) -> None:
    """Refuse the batch when one of its orders names another identity than the stored one
    (the upsert kept the stored row): every conflict counted, the first ones named."""
    ids = table.column("order_id").to_pylist()
    if len(ids) > _SCAN_FROM:  # one scan beats hundreds of IN lists
        rows = conn.execute(_IDENTITY).all()
    else:
        rows = []
        for i in range(0, len(ids), 1000):
            chunk = ids[i : i + 1000]
            rows += conn.execute(_IDENTITY.where(orders.c.order_id.in_(chunk))).all()
    if not rows:
        return
    stored = pa.table(
        {
            "source": pa.array([r.source for r in rows], pa.string()),
            "order_id": pa.array([r.order_id for r in rows], pa.string()),
            **{
                f"{f}_stored": pa.array([r._mapping[f] for r in rows], table.schema.field(f).type)
                for f in IDENTITY_FIELDS
            },
        }
    )
    given = table.select(["source", "order_id", *IDENTITY_FIELDS])
    joined = given.join(stored, ["source", "order_id"], join_type="inner")
    found: list[dict[str, str]] = []
    count = 0
    bad_any = pa.array([False] * joined.num_rows, pa.bool_())
    for f in IDENTITY_FIELDS:
        a, b = joined.column(f), joined.column(f"{f}_stored")
        if f == "amount":
            a, b = a.cast(MONEY), b.cast(MONEY)
        bad = pc.fill_null(pc.not_equal(a, b), True).combine_chunks()
        bad_any = pc.or_(bad_any, bad)
        for row in joined.filter(bad).slice(0, 5).to_pylist():
            found.append(
                {
                    "source": row["source"],
                    "order_id": row["order_id"],
                    "field": f,
                    "stored": _text(row[f"{f}_stored"]),
                    "given": _text(row[f]),
                }
            )
    count = int(pc.sum(bad_any.cast(pa.int64())).as_py() or 0)
    if not count:
        return
    found.sort(key=lambda c: (c["order_id"], c["source"], IDENTITY_FIELDS.index(c["field"])))
    examples = "; ".join(
        f"{_named(c['source'], c['order_id'])}: {c['field']} {c['stored']} → {c['given']}"
        for c in found[:5]
    )
    raise ConflictError(
        t("orders.conflicts_in_batch", "en", n=count, examples=examples),
        code="order.conflict",
        message_zh=t("orders.conflicts_in_batch", "zh", n=count, examples=examples),
        details={"count": count, "conflicts": found[:20]},
    )
