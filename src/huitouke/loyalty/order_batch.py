"""Order events applied in batches: one unit of work, set-based reads and writes.

:meth:`LoyaltyService.apply_orders` (and :meth:`~LoyaltyService.apply_order`, a batch of
one) runs here. The effects are computed with the same pure rules as everywhere else
(:mod:`huitouke.loyalty.rules`); only the input/output is batched:

1. claim every event's idempotency key with one ``INSERT … ON CONFLICT DO NOTHING
   RETURNING`` (on SQLite that first write takes the database write lock before anything
   is read); keys claimed earlier return their stored result, marked ``replayed``; a key
   repeated inside the batch is applied once and its later copies are replays;
2. load everything the batch touches in a handful of queries: its orders, members (created
   when missing), stamp cards, accounts, the lots a debit may need, the orders in the tier
   window, coupon counts and the coupons refunded orders issued. On PostgreSQL rows are
   locked with ``SELECT … FOR UPDATE ORDER BY`` their primary key, tables always in the
   same order (members, orders, stamp cards, accounts). The member row comes first: events
   of one customer queue on it, so an order found missing cannot appear meanwhile;
3. apply the events one after another in memory, in the order given — exactly what the same
   events sent one by one would do (refunds of orders earlier in the batch, tier upgrades
   mid-batch, stamp ladders, spend-back coupons all see the batch's own earlier effects);
4. write entries, lots, balances, orders, members, cards, coupons and the stored results
   with one ``executemany`` per statement.

The ledger rules are unchanged: every balance move is one entry whose ``balance_before`` is
the previous entry's ``balance_after``; balances never go negative (checked here and by the
database); lots are spent earliest-expiring first.

Accounts first needed by the batch are created at the end. On PostgreSQL another
transaction may create the same account meanwhile; if it already holds a balance the batch
refuses with ``loyalty.concurrent_update`` (transient: run it again) rather than write a
wrong ``balance_before``.

Refunds also give back the stored value paid on the order (``_Batch._return_stored_value``,
the same pure split as :meth:`LoyaltyService.reverse_stored_value_spend`). Stamps without an
order (:func:`add_stamps`: visits and grants) run through the same in-memory ledger and the
same stamp code as order stamps (``_Batch.add_stamps``), as a batch of one card.
"""

from __future__ import annotations

import copy
import functools
import json
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

from sqlalchemy import JSON, Connection, and_, bindparam, func, or_, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect

from huitouke.core.orders import order_ref
from huitouke.errors import ConflictError, HuitoukeError, InputError, NotFoundError, StoreError
from huitouke.identity.service import person_accounts
from huitouke.loyalty import codes
from huitouke.loyalty import tables as lt
from huitouke.loyalty.context import LoyaltyContext
from huitouke.loyalty.coupons import coupon_json, template_or_default
from huitouke.loyalty.ledger import claim, finish
from huitouke.loyalty.program import CouponTemplate, StampCard, TierBenefits
from huitouke.loyalty.referrals import attribute_referral
from huitouke.loyalty.rules import (
    LotView,
    allocate_fifo,
    best_benefits,
    compute_earn,
    coupon_value_for_order,
    currency_unit,
    expiry_at,
    proportional_target,
    qualified_tier,
    stamp_advance,
    stamps_for_order,
    stamps_for_visit,
    stored_value_return_split,
    tier_period_end,
    tier_window_start,
)
from huitouke.loyalty.tiers import window_metric
from huitouke.loyalty.vocab import (
    COUNTED,
    POINTS,
    POINTS_DEBT,
    SV_BONUS,
    SV_PAID,
    SV_RETURN,
    ZERO,
    OrderEvent,
    StoredValueOnOrder,
    aware,
    fmt,
    iso,
    parse_order,
    stored_value_on_orders,
    stored_value_payers,
)

__all__ = ["add_stamps", "apply_orders", "ignored_effects", "order_op_key"]

#: rows per IN (...) list: far below SQLite's bound-parameter limit
CHUNK = 2000

AcctKey = tuple[str, str]
EVENT_BLANK: dict[str, Any] = {
    "old_status": None,
    "from_customer": None,
    "to_customer": None,
    "order_id": None,
    "old_value": None,
    "new_value": None,
}


def order_op_key(o: OrderEvent) -> str:
    return f"order:{o.ref}:{o.status}:{fmt(o.refunded_amount)}"


def _chunks(items: Sequence[Any], n: int = CHUNK) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), n):
        yield items[i : i + n]


# -- statements ------------------------------------------------------------------------------
# Every statement of the order path is built once, with bind parameters (``expanding`` ones
# for the IN lists), and only executed per call: building a select, its IN lists and its
# cache key on every call was about half of the Python time of a one-event unit of work.
# The locking reads come in pairs: (plain, ``FOR UPDATE``) for PostgreSQL.
def _locking(stmt: Any) -> tuple[Any, Any]:
    return stmt, stmt.with_for_update()


def _in(name: str) -> Any:
    return bindparam(name, expanding=True)


_m, _sc, _ac, _lo = lt.members.c, lt.stamp_cards.c, lt.accounts.c, lt.orders.c
_lt, _cp, _ms, _rf, _op = (
    lt.lots.c,
    lt.coupons.c,
    lt.memberships.c,
    lt.referrals.c,
    lt.operations.c,
)
_MEMBER_COLUMNS = tuple(c.name for c in lt.members.columns)
_CARD_COLUMNS = tuple(c.name for c in lt.stamp_cards.columns)
_ORDER_COLUMNS = tuple(c.name for c in lt.orders.columns)
_START = bindparam("start", type_=_lo.ordered_at.type)
_NOW = bindparam("now", type_=_lo.ordered_at.type)

_MEMBERS = _locking(
    select(lt.members).where(_m.customer_id.in_(_in("cs"))).order_by(_m.customer_id)
)
_CARDS = _locking(
    select(lt.stamp_cards)
    .where(_sc.customer_id.in_(_in("cs")))
    .order_by(_sc.customer_id, _sc.card_id)
)
_ACCOUNTS = _locking(
    select(_ac.account_id, _ac.customer_id, _ac.asset, _ac.balance)
    .where(_ac.customer_id.in_(_in("cs")), _ac.asset.in_(_in("ss")))
    .order_by(_ac.account_id)
)
#: the batch's own orders
_ORDERS = _locking(select(lt.orders).where(_lo.order_id.in_(_in("ids"))).order_by(_lo.order_id))
#: the batch's own orders and, in the same query, the customers' orders in the tier window
_ORDERS_AND_WINDOW = _locking(
    select(lt.orders)
    .where(
        or_(
            _lo.order_id.in_(_in("ids")),
            and_(
                _lo.customer_id.in_(_in("cs")),
                _lo.earned.is_(True),
                _lo.ordered_at >= _START,
                _lo.ordered_at <= _NOW,
            ),
        )
    )
    .order_by(_lo.order_id)
)
#: the customers' orders in the tier window (no lock)
_WINDOW = select(lt.orders).where(
    _lo.customer_id.in_(_in("cs")),
    _lo.earned.is_(True),
    _lo.ordered_at >= _START,
    _lo.ordered_at <= _NOW,
)
_LOTS = select(_lt.lot_id, _lt.account_id, _lt.amount, _lt.remaining, _lt.expires_at).where(
    _lt.account_id.in_(_in("ids")), _lt.remaining > 0
)
_LOT_MAX = select(func.max(_lt.lot_id))
_LOT_IDS_PG = text(
    "SELECT nextval(pg_get_serial_sequence('loyalty_lots', 'lot_id')) FROM generate_series(1, :n)"
)
_COUPON_COUNTS = (
    select(_cp.template_id, _cp.issued_to, func.count().label("n"))
    .where(_cp.issued_to.in_(_in("cs")), _cp.template_id.in_(_in("ts")))
    .group_by(_cp.template_id, _cp.issued_to)
)
_ORDER_COUPONS = select(lt.coupons).where(_cp.source == "order", _cp.source_ref.in_(_in("ids")))
_MEMBERSHIPS = select(lt.memberships).where(
    _ms.customer_id.in_(_in("cs")), _ms.status != "cancelled"
)
_REFERRALS_REGISTERED = select(_rf.referred_id).where(
    _rf.referred_id.in_(_in("cs")), _rf.status == "registered"
)
_REFERRAL_REJECT = (
    update(lt.referrals)
    .where(
        _rf.referred_id == bindparam("cid"),
        _rf.first_order_id == bindparam("oid"),
        _rf.status == "attributed",
    )
    .values(
        status="rejected",
        reason="first_order_refunded",
        updated_at=bindparam("now", type_=_rf.updated_at.type),
    )
)
_OPERATION_RESULTS = select(_op.op_key, _op.result).where(_op.op_key.in_(_in("ks")))
_VOID_COUPON = (
    update(lt.coupons)
    .where(_cp.code == bindparam("b_code"), _cp.status == "issued")
    .values(status="voided")
)
_COUPON_EVENT_INSERT = lt.coupon_events.insert()


@functools.cache
def _insert_ignore_stmt(
    dialect: str, table: Any, index: tuple[str, ...], returning: tuple[str, ...] | None
) -> Any:
    """``INSERT … ON CONFLICT DO NOTHING RETURNING`` the primary key (``returning=None``) or
    the named columns: what comes back is what was inserted."""
    mod: Any = postgresql if dialect == "postgresql" else sqlite
    stmt = mod.insert(table).on_conflict_do_nothing(index_elements=list(index) or None)
    if returning is None:
        return stmt.returning(next(iter(table.primary_key.columns)))
    return stmt.returning(*(table.c[n] for n in returning))


@functools.cache
def _insert_stmt(table: Any) -> Any:
    return table.insert()


@functools.cache
def _update_many_stmt(
    table: Any, keys: tuple[str, ...], cols: tuple[str, ...]
) -> tuple[Any, tuple[tuple[str, str], ...]]:
    """``UPDATE … SET cols WHERE keys`` for ``executemany``, and (parameter, column) names."""
    c = table.c
    stmt = (
        update(table)
        .where(*[c[k] == bindparam(f"k_{k}", type_=c[k].type) for k in keys])
        .values({col: bindparam(f"v_{col}", type_=c[col].type) for col in cols})
    )
    names = tuple((f"k_{k}", k) for k in keys) + tuple((f"v_{col}", col) for col in cols)
    return stmt, names


def _json_text(v: Any) -> Any:
    return None if v is None else json.dumps(v)


#: column (name, value converter) lists and SQL of the PostgreSQL bulk writes, per dialect
#: (bind processors and type names depend on the dialect instance)
_PG_WRITES: weakref.WeakKeyDictionary[Dialect, dict[Any, Any]] = weakref.WeakKeyDictionary()


def _pg_cache(dialect: Dialect) -> dict[Any, Any]:
    cache = _PG_WRITES.get(dialect)
    if cache is None:
        cache = _PG_WRITES[dialect] = {}
    return cache


def _pg_update_many(
    dialect: Dialect, table: Any, keys: tuple[str, ...], cols: tuple[str, ...]
) -> tuple[Any, list[tuple[str, str, Callable[[Any], Any] | None]]]:
    """``UPDATE … FROM unnest(arrays)``: the statement and, per array parameter, the column
    and how its values are converted."""
    cache = _pg_cache(dialect)
    ck = ("update", table, keys, cols)
    hit = cache.get(ck)
    if hit is not None:
        return hit
    c = table.c
    names = [*keys, *cols]
    convert: list[tuple[str, str, Callable[[Any], Any] | None]] = []
    casts, sets = [], []
    for i, name in enumerate(names):
        col = c[name]
        if isinstance(col.type, JSON):
            proc: Callable[[Any], Any] | None = _json_text
            sql_type, use = "text", f"v.c{i}::json"
        else:
            proc = col.type.bind_processor(dialect)
            sql_type, use = col.type.compile(dialect=dialect), f"v.c{i}"
        convert.append((f"p{i}", name, proc))
        casts.append(f"CAST(:p{i} AS {sql_type}[])")
        if name in cols:
            sets.append(f"{name} = {use}")
    where = " AND ".join(f"t.{k} = v.c{i}" for i, k in enumerate(keys))
    cnames = ", ".join(f"c{i}" for i in range(len(names)))
    stmt = text(
        f"UPDATE {table.name} AS t SET {', '.join(sets)} "
        f"FROM unnest({', '.join(casts)}) AS v({cnames}) WHERE {where}"
    )
    cache[ck] = (stmt, convert)
    return stmt, convert


def _pg_copy(
    dialect: Dialect, table: Any, keys: frozenset[str]
) -> tuple[str, list[str], list[Callable[[Any], Any] | None]]:
    """``COPY table (columns) FROM STDIN`` for rows with ``keys``: the SQL, the columns (in
    the table's order) and their value converters."""
    cache = _pg_cache(dialect)
    ck = ("copy", table, keys)
    hit = cache.get(ck)
    if hit is not None:
        return hit
    names = [c.name for c in table.columns if c.name in keys]
    procs: list[Callable[[Any], Any] | None] = []
    for name in names:
        col = table.c[name]
        if isinstance(col.type, JSON):
            procs.append(_json_text)
        else:
            procs.append(col.type.bind_processor(dialect))
    out = (f"COPY {table.name} ({', '.join(names)}) FROM STDIN", names, procs)
    cache[ck] = out
    return out


@dataclass
class _Acct:
    customer_id: str
    asset: str
    balance: Decimal
    account_id: int | None  # None: not in the database yet
    required: bool = False  # the sequential path would have created it
    dirty: bool = False


@dataclass
class _Lot:
    lot_id: int
    key: AcctKey
    amount: Decimal
    remaining: Decimal
    expires_at: datetime | None
    earned_at: datetime | None = None
    reference: str | None = None
    new: bool = False
    dirty: bool = False


@dataclass
class _Coupon:
    row: dict[str, Any]
    new: bool
    value_changed: bool = False
    voided: bool = False
    # places that show the code (effects), patched if the generated code collides
    refs: list[tuple[Any, Any]] = field(default_factory=list)


class _Batch:
    def __init__(self, svc: LoyaltyContext, conn: Connection, now: datetime) -> None:
        self.svc = svc
        self.program = svc.program
        self.zone = svc.zone
        self.conn = conn
        self.now = now
        self.pg = conn.dialect.name == "postgresql"
        self.orders: dict[str, dict[str, Any]] = {}
        self.orders_by_customer: dict[str, dict[str, dict[str, Any]]] = {}
        self.new_orders: list[str] = []
        self.dirty_orders: set[str] = set()
        self.members: dict[str, dict[str, Any]] = {}
        self.dirty_members: set[str] = set()
        self.memberships: dict[str, list[Any]] = {}
        self.cards: dict[tuple[str, str], dict[str, Any]] = {}
        self.dirty_cards: set[tuple[str, str]] = set()
        self.accounts: dict[AcctKey, _Acct] = {}
        self.queried: set[AcctKey] = set()
        self.lots: dict[AcctKey, dict[int, _Lot]] = {}
        self.lots_loaded: set[AcctKey] = set()
        self.entries: list[tuple[_Acct, dict[str, Any]]] = []
        self.coupon_counts: dict[tuple[str, str], int] = {}
        self.coupons_by_order: dict[str, list[_Coupon]] = {}
        self.new_coupons: list[_Coupon] = []
        self.db_coupons: list[_Coupon] = []
        self.coupon_events: list[tuple[_Coupon, dict[str, Any]]] = []
        self.referral_registered: set[str] = set()
        self.stored_value: dict[tuple[str, str], StoredValueOnOrder] = {}
        #: earning customers merged with other accounts into one person → its accounts
        self.persons: dict[str, tuple[str, ...]] = {}
        #: a person's accounts outside the batch: their own tier and tier metric (read)
        self.outside: dict[str, tuple[str | None, Decimal]] = {}
        self._lot_ids: list[int] = []
        self._lot_next: int | None = None
        self.lot_budget = 16

    # -- helpers ---------------------------------------------------------------------------
    def _select(self, stmts: tuple[Any, Any], params: Mapping[str, Any]) -> list[Any]:
        """Run a locking read: ``stmts`` is (plain, ``FOR UPDATE``), see :func:`_locking`."""
        return list(self.conn.execute(stmts[1] if self.pg else stmts[0], params).all())

    def _insert_ignore(self, table: Any, rows: list[dict[str, Any]], *index: str) -> list[Any]:
        """``INSERT … ON CONFLICT DO NOTHING``; returns the primary keys inserted."""
        if not rows:
            return []
        stmt = _insert_ignore_stmt(self.conn.dialect.name, table, index, None)
        return list(self.conn.execute(stmt, rows).scalars().all())

    def _insert_ignore_rows(
        self, table: Any, rows: list[dict[str, Any]], index: tuple[str, ...], cols: tuple[str, ...]
    ) -> list[Any]:
        """``INSERT … ON CONFLICT DO NOTHING RETURNING cols``: the rows inserted, as the
        database stores them (a row this transaction inserted is its own: on PostgreSQL no
        other transaction can change or lock it, on SQLite the write lock is held)."""
        if not rows:
            return []
        stmt = _insert_ignore_stmt(self.conn.dialect.name, table, index, cols)
        return list(self.conn.execute(stmt, rows).all())

    def _bulk_update(
        self, table: Any, keys: Sequence[str], cols: Sequence[str], rows: list[dict[str, Any]]
    ) -> None:
        """Set ``cols`` on the rows matched by ``keys``; each dict maps column names to values.

        PostgreSQL: one ``UPDATE … FROM unnest(arrays)`` statement (one round trip, one plan)
        instead of a statement per row; SQLite (in-process): ``executemany``.
        """
        if not rows:
            return
        if not self.pg:
            stmt, names = _update_many_stmt(table, tuple(keys), tuple(cols))
            self.conn.execute(stmt, [{p: r[n] for p, n in names} for r in rows])
            return
        stmt, convert = _pg_update_many(self.conn.dialect, table, tuple(keys), tuple(cols))
        self.conn.execute(
            stmt,
            {
                p: [proc(r[name]) for r in rows] if proc else [r[name] for r in rows]
                for p, name, proc in convert
            },
        )

    def _insert_many(self, table: Any, rows: list[dict[str, Any]]) -> None:
        """Insert rows (same keys each): ``COPY … FROM STDIN`` on PostgreSQL, executemany on
        SQLite. Values go through the columns' own bind processing (Money, UTCDateTime)."""
        if not rows:
            return
        if not self.pg:
            self.conn.execute(_insert_stmt(table), rows)
            return
        sql, names, procs = _pg_copy(self.conn.dialect, table, frozenset(rows[0]))
        pairs = list(zip(names, procs, strict=True))
        raw: Any = self.conn.connection.driver_connection
        with raw.cursor() as cur, cur.copy(sql) as cp:
            for r in rows:
                cp.write_row([p(r[n]) if p else r[n] for n, p in pairs])

    # -- load ------------------------------------------------------------------------------
    def load(self, events: list[OrderEvent]) -> None:
        conn = self.conn
        customers = sorted({o.customer_id for o in events})
        order_ids = sorted({o.order_id for o in events})
        # 1. members: locked, created when missing
        self._ensure_members(customers)
        # 2. the batch's own orders, locked (after the members: events of one customer
        #    queue on the member row, so an order read here cannot be inserted meanwhile)
        #    with, in the same query, the customers' orders in the tier window (for a small
        #    batch; a large one reads the window separately, customer by customer chunk)
        tiers = self.program.tiers
        start = tier_window_start(tiers, self.now, self.zone) if tiers is not None else None
        window_inline = start is not None and len(order_ids) <= CHUNK and len(customers) <= CHUNK
        for ids in _chunks(order_ids):
            if window_inline:
                rows = self._select(
                    _ORDERS_AND_WINDOW,
                    {"ids": ids, "cs": customers, "start": start, "now": self.now},
                )
            else:
                rows = self._select(_ORDERS, {"ids": ids})
            for r in rows:
                self._add_order(dict(r._mapping))
        # the ledger's rows are keyed by reference (source and id): the query above read
        # every source's rows of these ids
        in_db = {o.ref for o in events if o.ref in self.orders}
        # which events will earn (first sight of an order, in a counted status)
        seen = set(in_db)
        earning: set[str] = set()
        reversing: set[str] = set()
        for o in events:
            if o.ref not in seen:
                seen.add(o.ref)
                if o.status in COUNTED:
                    earning.add(o.customer_id)
                    if o.refund_total > 0:
                        reversing.add(o.customer_id)
            elif o.refund_total > 0:
                reversing.add(o.customer_id)
        # 3. stamp cards of earning customers, locked, created when missing
        cards = [c.id for c in self.program.stamp_cards]
        if cards and earning:
            self._ensure_cards(sorted(earning), cards)
        # 4. accounts, locked in primary-key order
        assets = [POINTS, POINTS_DEBT]
        for k in cards:
            assets += [f"stamps:{k}", f"stamps_debt:{k}"]
        self._load_accounts(customers, assets)
        # 4b. stored value paid on the orders the batch refunds (given back in proportion):
        #     the customers' stored-value accounts, locked, then the payments' entries
        #     — every account that paid: a merged person pays from any of its accounts
        if self.program.stored_value.return_on_order_refund:
            pairs = sorted({(o.customer_id, o.ref) for o in events if o.refund_total > 0})
            if pairs:
                self._load_accounts(sorted({c for c, _ in pairs}), [SV_PAID, SV_BONUS])
                payers = stored_value_payers(conn, [ref for _, ref in pairs])
                paid = sorted({(c, ref) for ref, cs in payers.items() for c in cs})
                others = sorted({c for c, _ in paid} - {c for c, _ in pairs})
                if others:
                    self._load_accounts(others, [SV_PAID, SV_BONUS])
                self.stored_value = stored_value_on_orders(conn, paid)
        # 5. lots a debit may need: stamp accounts of earning customers (cards complete),
        #    points and stamps of customers with a refund
        want = [
            acct
            for (c, s), acct in self.accounts.items()
            if acct.account_id is not None
            and (
                (c in earning and s.startswith("stamps:"))
                or (c in reversing and (s == POINTS or s.startswith("stamps:")))
            )
        ]
        self._load_lots(want)
        # 6. orders in the tier window
        if start is not None and not window_inline:
            for cs in _chunks(customers):
                for r in conn.execute(_WINDOW, {"cs": cs, "start": start, "now": self.now}).all():
                    if order_ref(r.source, r.order_id) not in self.orders:
                        self._add_order(dict(r._mapping))
        # 7. coupons already issued, for templates with a per-customer limit
        reachable = {r.template for r in self.program.order_coupons} | {
            st.template for card in self.program.stamp_cards for st in card.rewards
        }
        limited = sorted(
            t.id
            for t in self.program.coupon_templates
            if t.max_per_customer is not None and t.id in reachable
        )
        if limited and earning:
            for cs in _chunks(sorted(earning)):
                for r in conn.execute(_COUPON_COUNTS, {"cs": cs, "ts": limited}).all():
                    self.coupon_counts[(r.template_id, r.issued_to)] = int(r.n)
        # 8. coupons issued by orders already stored that this batch may refund
        refunded = sorted({o.ref for o in events if o.refund_total > 0} & in_db)
        if refunded:
            for ids in _chunks(refunded):
                for r in conn.execute(_ORDER_COUPONS, {"ids": ids}).all():
                    cp = _Coupon(dict(r._mapping), new=False)
                    self.coupons_by_order.setdefault(r.source_ref, []).append(cp)
                    self.db_coupons.append(cp)
        # 9. memberships (benefits) and registered referrals (first orders)
        if self.program.membership_plans:
            for cs in _chunks(customers):
                for r in conn.execute(_MEMBERSHIPS, {"cs": cs}).all():
                    self.memberships.setdefault(r.customer_id, []).append(r)
        if self.program.referral is not None:
            firsts = sorted(c for c in earning if self.members[c]["paid_orders"] == 0)
            for cs in _chunks(firsts):
                self.referral_registered.update(
                    conn.execute(_REFERRALS_REGISTERED, {"cs": cs}).scalars()
                )
        # 10. the persons of earning customers merged with other accounts (huitouke.identity):
        #     the tier benefits at order time are the person's, so the other accounts' own
        #     tiers and tier metrics are read (not locked: the person's tier is computed on
        #     read, nothing is written to the other accounts)
        #     — and so is the paid membership: one bought on any account of the person
        if (tiers is not None or self.program.membership_plans) and earning:
            for c, accounts in person_accounts(conn, sorted(earning)).items():
                if len(accounts) > 1:
                    self.persons[c] = accounts
            others = sorted({a for ac in self.persons.values() for a in ac} - set(self.members))
            if self.program.membership_plans:
                outside = sorted(set(others) - set(customers))
                for cs in _chunks(outside):
                    for r in conn.execute(_MEMBERSHIPS, {"cs": cs}).all():
                        self.memberships.setdefault(r.customer_id, []).append(r)
            for cs in _chunks(others) if tiers is not None else ():
                own = dict(
                    conn.execute(
                        select(_m.customer_id, _m.tier).where(_m.customer_id.in_(cs))
                    ).all()
                )
                for a in cs:
                    assert tiers is not None
                    metric = window_metric(conn, tiers, self.zone, a, self.now)
                    self.outside[a] = (own.get(a), metric)
        self.lot_budget = max(16, len(events) * (1 + len(cards)))

    def load_card(self, customer_id: str, card: StampCard) -> None:
        """Load (and lock) what adding stamps to one card needs, outside an order: the member
        and the card (created when missing), the card's accounts and lots, and the coupons
        already issued of the ladder's templates that have a per-customer limit."""
        self._ensure_members([customer_id])
        self._ensure_cards([customer_id], [card.id])
        self._load_accounts([customer_id], [f"stamps:{card.id}", f"stamps_debt:{card.id}"])
        self._load_lots(
            [
                x
                for x in self.accounts.values()
                if x.account_id is not None and x.asset == f"stamps:{card.id}"
            ]
        )
        limited = sorted(
            {
                r.template
                for r in card.rewards
                if self.program.template(r.template).max_per_customer is not None
            }
        )
        if limited:
            c = lt.coupons.c
            for r in self.conn.execute(
                select(c.template_id, func.count().label("n"))
                .where(c.issued_to == customer_id, c.template_id.in_(limited))
                .group_by(c.template_id)
            ).all():
                self.coupon_counts[(r.template_id, customer_id)] = int(r.n)

    def day_stamped(self, customer_id: str, card_id: str, at: datetime, local_day: str) -> bool:
        """Whether the card already earned a stamp on ``local_day`` (the local day of
        ``at``) from an order or a visit: the card's last stamped day, a visit's entries
        (their reference names the day: ``visit:<day>:<key>``, on the card's stamp or owed-
        stamp account, so a visit that only settled owed stamps counts too), or an order of
        the customer placed that day that put stamps on this card (even if a refund took them
        back later) — stored, or applied earlier in this batch. Grants do not count. Read
        under the member's lock."""
        if self.cards[(customer_id, card_id)]["last_stamp_day"] == local_day:
            return True
        a, e = lt.accounts.c, lt.entries.c
        visit = self.conn.execute(
            select(e.entry_id)
            .select_from(lt.entries.join(lt.accounts, a.account_id == e.account_id))
            .where(
                a.customer_id == customer_id,
                a.asset.in_((f"stamps:{card_id}", f"stamps_debt:{card_id}")),
                e.reference.like(f"visit:{local_day}:%"),
            )
            .limit(1)
        ).first()
        if visit is not None:
            return True
        day = at.astimezone(self.zone).date()
        start = datetime.combine(day, time(0), tzinfo=self.zone)
        end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=self.zone)
        lo = lt.orders.c
        stored = self.conn.execute(
            select(lo.stamps).where(
                lo.customer_id == customer_id, lo.ordered_at >= start, lo.ordered_at < end
            )
        ).scalars()
        in_batch = (
            r["stamps"]
            for r in self.orders_by_customer.get(customer_id, {}).values()
            if start <= r["ordered_at"] < end
        )
        return any(
            int((stamps or {}).get(card_id, {}).get("stamps", 0)) > 0
            for stamps in (*stored, *in_batch)
        )

    def _ensure_members(self, customers: Sequence[str]) -> None:
        """Load and lock the members, creating the missing ones."""
        self._load_members(customers)
        missing = [c for c in customers if c not in self.members]
        if missing:
            inserted = self._insert_ignore_rows(
                lt.members,
                [
                    {
                        "customer_id": c,
                        "preferences": {},
                        "paid_orders": 0,
                        "created_at": self.now,
                        "updated_at": self.now,
                    }
                    for c in missing
                ],
                ("customer_id",),
                _MEMBER_COLUMNS,
            )
            # the rows inserted come back whole; only those another transaction created
            # meanwhile are read (and locked) again
            for r in inserted:
                self.members[r.customer_id] = dict(r._mapping)
            rest = [c for c in missing if c not in self.members]
            if rest:
                self._load_members(rest)

    def _ensure_cards(self, customers: Sequence[str], cards: Sequence[str]) -> None:
        """Load and lock the customers' stamp cards, creating the missing ones."""
        need = sorted((c, k) for c in customers for k in cards)
        self._load_cards(customers)
        absent = [p for p in need if p not in self.cards]
        if absent:
            inserted = self._insert_ignore_rows(
                lt.stamp_cards,
                [
                    {
                        "customer_id": c,
                        "card_id": k,
                        "cycle": 1,
                        "rewarded_upto": 0,
                        "completed": 0,
                        "updated_at": self.now,
                    }
                    for c, k in absent
                ],
                ("customer_id", "card_id"),
                _CARD_COLUMNS,
            )
            # as for members: only cards another transaction created meanwhile are read again
            for r in inserted:
                self.cards[(r.customer_id, r.card_id)] = dict(r._mapping)
            rest = sorted({c for c, k in absent if (c, k) not in self.cards})
            if rest:
                self._load_cards(rest)

    def _add_order(self, row: dict[str, Any]) -> None:
        row["stamps"] = dict(row.get("stamps") or {})
        ref = order_ref(row["source"], row["order_id"])
        self.orders[ref] = row
        self.orders_by_customer.setdefault(row["customer_id"], {})[ref] = row

    def _load_members(self, customers: Sequence[str]) -> None:
        for cs in _chunks(customers):
            for r in self._select(_MEMBERS, {"cs": cs}):
                self.members[r.customer_id] = dict(r._mapping)

    def _load_cards(self, customers: Sequence[str]) -> None:
        for cs in _chunks(customers):
            for r in self._select(_CARDS, {"cs": cs}):
                self.cards[(r.customer_id, r.card_id)] = dict(r._mapping)

    def _load_accounts(self, customers: Sequence[str], assets: Sequence[str]) -> None:
        want = {(c, s) for c in customers for s in assets}
        ss = sorted(set(assets))
        for cs in _chunks(customers):
            for r in self._select(_ACCOUNTS, {"cs": cs, "ss": ss}):
                key = (r.customer_id, r.asset)
                if key in want and key not in self.accounts:
                    self.accounts[key] = _Acct(r.customer_id, r.asset, r.balance, r.account_id)
        self.queried |= want

    def _load_lots(self, accts: list[_Acct]) -> None:
        todo = [x for x in accts if (x.customer_id, x.asset) not in self.lots_loaded]
        by_id = {x.account_id: (x.customer_id, x.asset) for x in todo}
        for x in todo:
            key = (x.customer_id, x.asset)
            self.lots_loaded.add(key)
            self.lots.setdefault(key, {})
        if not by_id:
            return
        for ids in _chunks(sorted(i for i in by_id if i is not None)):
            for r in self.conn.execute(_LOTS, {"ids": ids}).all():
                key = by_id[r.account_id]
                self.lots[key][r.lot_id] = _Lot(r.lot_id, key, r.amount, r.remaining, r.expires_at)

    # -- ledger in memory ----------------------------------------------------------------------
    def acct(self, customer_id: str, asset: str) -> _Acct:
        key = (customer_id, asset)
        if key not in self.accounts:
            if key not in self.queried:  # an asset outside the program's current cards
                self._load_accounts([customer_id], [asset])
            if key not in self.accounts:
                self.accounts[key] = _Acct(customer_id, asset, ZERO, None)
        return self.accounts[key]

    def post(
        self,
        acct: _Acct,
        delta: Decimal,
        *,
        kind: str,
        key: str,
        reference: str | None,
        lot_id: int | None = None,
        expires_at: datetime | None = None,
    ) -> None:
        if delta == 0:
            return
        before = acct.balance
        after = before + delta
        if after < 0:
            raise ConflictError(
                f"{acct.asset} balance {before} cannot cover {-delta}",
                code=f"{acct.asset.split(':')[0]}.insufficient",
                message_zh=f"余额 {before} 不足 {-delta}",
                details={"asset": acct.asset, "balance": str(before), "requested": str(-delta)},
            )
        self.entries.append(
            (
                acct,
                {
                    "idempotency_key": key,
                    "delta": delta,
                    "balance_before": before,
                    "balance_after": after,
                    "kind": kind,
                    "reference": reference,
                    "lot_id": lot_id,
                    "expires_at": expires_at,
                    "created_at": self.now,
                },
            )
        )
        acct.balance = after
        acct.dirty = acct.required = True

    def _next_lot_id(self) -> int:
        if self.pg:
            if not self._lot_ids:
                self._lot_ids = list(
                    self.conn.execute(_LOT_IDS_PG, {"n": self.lot_budget}).scalars()
                )
                self._lot_ids.reverse()
            return int(self._lot_ids.pop())
        if self._lot_next is None:
            top = self.conn.execute(_LOT_MAX).scalar_one()
            self._lot_next = int(top or 0) + 1
        n = self._lot_next
        self._lot_next += 1
        return n

    def credit_lot(
        self,
        acct: _Acct,
        amount: Decimal,
        *,
        kind: str,
        key: str,
        earned_at: datetime,
        expires_at: datetime | None,
        reference: str | None,
    ) -> int | None:
        if amount <= 0:
            return None
        lot_id = self._next_lot_id()
        k = (acct.customer_id, acct.asset)
        self.lots.setdefault(k, {})[lot_id] = _Lot(
            lot_id, k, amount, amount, expires_at, earned_at, reference, new=True
        )
        self.post(
            acct,
            amount,
            kind=kind,
            key=key,
            reference=reference,
            lot_id=lot_id,
            expires_at=expires_at,
        )
        return lot_id

    def debit_fifo(
        self,
        acct: _Acct,
        amount: Decimal,
        *,
        kind: str,
        key: str,
        reference: str | None,
        prefer: int | None = None,
        allow_partial: bool = False,
    ) -> tuple[Decimal, Decimal]:
        if amount <= 0:
            return ZERO, ZERO
        k = (acct.customer_id, acct.asset)
        if acct.account_id is not None:
            self._load_lots([acct])
        lots = self.lots.get(k, {})
        views = [LotView(x.lot_id, x.remaining, x.expires_at) for x in lots.values()]
        allocations, shortfall = allocate_fifo(views, amount, prefer=prefer)
        if shortfall > 0 and not allow_partial:
            raise ConflictError(
                f"{acct.asset} balance {acct.balance} cannot cover {amount}",
                code=f"{acct.asset.split(':')[0]}.insufficient",
                message_zh=f"余额 {acct.balance} 不足 {amount}",
                details={
                    "asset": acct.asset,
                    "balance": str(acct.balance),
                    "requested": str(amount),
                },
            )
        taken = ZERO
        for lot_id, take in allocations:
            lot = lots[lot_id]
            lot.remaining -= take
            lot.dirty = True
            self.post(
                acct, -take, kind=kind, key=f"{key}#{lot_id}", reference=reference, lot_id=lot_id
            )
            taken += take
        return taken, shortfall

    def earn_points(
        self, customer_id: str, points: Decimal, *, key: str, ref: str, earned_at: datetime
    ) -> tuple[Decimal, Decimal, int | None]:
        if points <= 0:
            return ZERO, ZERO, None
        pts = self.acct(customer_id, POINTS)
        pts.required = True
        debt = self.acct(customer_id, POINTS_DEBT)
        settle = min(points, debt.balance)
        self.post(debt, -settle, kind="debt_settled", key=f"{key}:debt", reference=ref)
        lot = self.credit_lot(
            pts,
            points - settle,
            kind="earn",
            key=key,
            earned_at=earned_at,
            expires_at=expiry_at(self.program.points_expiry, earned_at, self.zone),
            reference=ref,
        )
        return points - settle, settle, lot

    def take_back(
        self,
        customer_id: str,
        asset: str,
        debt_asset: str,
        amount: Decimal,
        *,
        key: str,
        ref: str,
        prefer: int | None,
    ) -> tuple[Decimal, Decimal]:
        if amount <= 0:
            return ZERO, ZERO
        acct = self.acct(customer_id, asset)
        acct.required = True
        debt = self.acct(customer_id, debt_asset)
        taken, shortfall = self.debit_fifo(
            acct,
            amount,
            kind="reversal",
            key=key,
            reference=ref,
            prefer=prefer,
            allow_partial=True,
        )
        self.post(debt, shortfall, kind="debt", key=f"{key}:debt", reference=ref)
        return taken, shortfall

    # -- coupons -------------------------------------------------------------------------------
    def issue(
        self,
        template: CouponTemplate,
        customer_id: str,
        *,
        key: str,
        source: str,
        source_ref: str | None,
        order_amount: Decimal | None = None,
    ) -> dict[str, Any] | None:
        ck = (template.id, customer_id)
        limit = template.max_per_customer
        if limit is not None and self.coupon_counts.get(ck, 0) >= limit:
            return None
        value = (
            coupon_value_for_order(template, order_amount or ZERO)
            if template.kind == "spend_back"
            else template.value
        )
        valid_from = self.now + timedelta(days=template.delay_days)
        row = {
            "code": codes.generate(),
            "template_id": template.id,
            "kind": template.kind,
            "holder_id": customer_id,
            "issued_to": customer_id,
            "status": "issued",
            "value": value,
            "percent": template.percent,
            "currency": self.program.currency,
            "valid_from": valid_from,
            "valid_until": valid_from + timedelta(days=template.valid_days),
            "issued_at": self.now,
            "source": source,
            "source_ref": source_ref,
            "transfers": 0,
            "issue_key": key,
        }
        cp = _Coupon(row, new=True)
        self.new_coupons.append(cp)
        self.coupon_counts[ck] = self.coupon_counts.get(ck, 0) + 1
        if source == "order" and source_ref is not None:
            self.coupons_by_order.setdefault(source_ref, []).append(cp)
        self._event(
            cp,
            kind="issued",
            old_status=None,
            new_status="issued",
            to_customer=customer_id,
            new_value=value,
            order_id=source_ref if source == "order" else None,
        )
        out = coupon_json({**row, "redeemed_order_id": None, "redeemed_at": None, "discount": None})
        cp.refs.append((out, "code"))
        return out

    def _event(self, cp: _Coupon, **values: Any) -> None:
        self.coupon_events.append((cp, {**values, "created_at": self.now}))

    # -- benefits and tiers ----------------------------------------------------------------
    def benefits(self, member: Mapping[str, Any], at: datetime) -> Decimal:
        """The points multiplier (the better of tier and active paid membership); the tier
        is the person's when the customer is merged with other accounts, and so is the paid
        membership (the one ending last that any of the person's accounts holds)."""
        tier_b: TierBenefits | None = None
        tier = self.person_tier(member)
        if self.program.tiers is not None and tier:
            lv = self.program.tiers.level(tier)
            tier_b = lv.benefits if lv else None
        plan_b: TierBenefits | None = None
        accounts = self.persons.get(member["customer_id"], (member["customer_id"],))
        active = [
            r
            for a in accounts
            for r in self.memberships.get(a, [])
            if r.starts_at <= at < r.ends_at
        ]
        if active:
            ms = max(active, key=lambda r: r.ends_at)
            try:
                plan_b = self.program.plan(ms.plan_id).benefits
            except NotFoundError:  # a plan that left the program gives nothing
                plan_b = None
        mult, _disc = best_benefits(tier_b, plan_b)
        return mult

    def tier_metric(self, customer_id: str) -> Decimal:
        tiers = self.program.tiers
        assert tiers is not None
        start = tier_window_start(tiers, self.now, self.zone)
        rows = [
            r
            for r in self.orders_by_customer.get(customer_id, {}).values()
            if r["earned"] and start <= r["ordered_at"] <= self.now
        ]
        if tiers.metric == "orders":
            return Decimal(sum(1 for r in rows if r["status"] in COUNTED))
        if tiers.metric == "spend":
            return sum((r["amount"] - r["refunded_amount"] for r in rows), ZERO)
        return sum((r["points_earned"] - r["points_reversed"] for r in rows), ZERO)

    def person_tier(self, member: Mapping[str, Any]) -> str | None:
        """The tier whose benefits an order of ``member`` gets: its own; for an account
        merged into a person (:mod:`huitouke.identity`), the person's — the higher of the
        accounts' own tiers and the tier their combined metric qualifies for, as the person
        view computes it (:mod:`huitouke.loyalty.persons`), with the batch's own earlier
        orders counted."""
        tiers = self.program.tiers
        accounts = self.persons.get(member["customer_id"])
        if tiers is None or accounts is None:
            return member["tier"]
        metric, own = ZERO, []
        for a in accounts:
            if a in self.members:
                own.append(self.members[a]["tier"])
                metric += self.tier_metric(a)
            else:
                t, m = self.outside.get(a, (None, ZERO))
                own.append(t)
                metric += m
        best = qualified_tier(tiers, metric)
        for t in own:
            if tiers.level(t) is not None and tiers.rank(t) > tiers.rank(best):
                best = t
        return best

    def tier_after_order(self, member: dict[str, Any], effects: dict[str, Any]) -> dict[str, Any]:
        tiers = self.program.tiers
        if tiers is None:
            return {}
        value = self.tier_metric(member["customer_id"])
        q = qualified_tier(tiers, value)
        cur = member["tier"] if tiers.level(member["tier"]) else None
        if cur is None or tiers.rank(q) > tiers.rank(cur):
            effects["tier"] = {"from": cur, "to": q, "metric": fmt(value)}
            return {
                "tier": q,
                "tier_since": self.now,
                "tier_valid_until": tier_period_end(tiers, self.now, self.zone),
                "tier_grace_until": None,
            }
        if tiers.rank(q) == tiers.rank(cur):
            return {
                "tier_valid_until": tier_period_end(tiers, self.now, self.zone),
                "tier_grace_until": None,
            }
        return {}

    # -- one event -------------------------------------------------------------------------
    def apply(self, o: OrderEvent, op_key: str) -> dict[str, Any]:
        effects = _skeleton(o, None)
        existing = self.orders.get(o.ref)
        if existing is not None and existing["customer_id"] != o.customer_id:
            raise ConflictError(
                f"order {o.order_id} belongs to customer {existing['customer_id']}, "
                f"not {o.customer_id}",
                code="order.customer_mismatch",
                message_zh=f"订单 {o.order_id} 属于顾客 {existing['customer_id']}",
                details={"order_id": o.order_id},
            )
        member = self.members[o.customer_id]
        if existing is None:
            earned = o.status in COUNTED
            state: dict[str, Any] = {
                "source": o.source,
                "order_id": o.order_id,
                "customer_id": o.customer_id,
                "ordered_at": o.ordered_at,
                "amount": o.amount,
                "currency": o.currency or self.program.currency,
                "status": "paid" if earned else o.status,
                "refunded_amount": ZERO,
                "earned": False,
                "first_paid": False,
                "points_earned": ZERO,
                "points_reversed": ZERO,
                "points_lot_id": None,
                "stamps": {},
                "updated_at": self.now,
            }
            if earned:
                state["first_paid"] = member["paid_orders"] == 0
                state["earned"] = True
                self._earn(o, member, op_key, state, effects)
            self._add_order(state)
            self.new_orders.append(o.ref)
            if earned:
                self._after_paid(o, member, op_key, state, effects)
            if earned and o.refund_total > 0:
                self._reverse(o, state, op_key, effects)
            elif not earned:
                effects["ignored"] = "not_paid"
        elif not existing["earned"]:
            # Refunded or cancelled before it was ever seen paid: that state is final.
            effects["ignored"] = "stale" if o.status in COUNTED else "no_change"
        elif o.refund_total > existing["refunded_amount"]:
            self._reverse(o, existing, op_key, effects)
        else:
            effects["ignored"] = (
                "stale" if o.refund_total < existing["refunded_amount"] else "no_change"
            )
        self._return_stored_value(o, op_key, effects)
        return effects

    def _return_stored_value(self, o: OrderEvent, op_key: str, effects: dict[str, Any]) -> None:
        """Give back the refunded share of the stored value paid on the order.

        The target is cumulative (everything on a full refund, else the share rounded half
        up to the currency's minor unit) and counts what any earlier give-back returned, so
        it does not depend on whether the order earned or on the arrival order of its
        states: a stale state's target is below what was already returned and gives nothing.
        """
        unit = currency_unit(self.program.currency)
        full = o.status in ("refunded", "cancelled")
        ref = f"order:{o.ref}"
        total = [ZERO, ZERO, ZERO]
        per: dict[str, dict[str, str | None]] = {}
        # the order's customer first, then every other account that paid (a merged
        # person's; each gets back its own share, on its own balances)
        paid = sorted(
            (c for c, r in self.stored_value if r == o.ref), key=lambda c: (c != o.customer_id, c)
        )
        for cid in paid:
            rec = self.stored_value[(cid, o.ref)]
            if rec.spent <= 0:
                continue
            give = rec.owed(o.amount, o.refund_total, full=full, unit=unit)
            if give <= 0:
                continue
            to_paid, to_bonus = stored_value_return_split(
                rec.spent_paid, rec.spent_bonus, rec.back_paid, rec.back_bonus, give, unit=unit
            )
            key = f"{op_key}:sv_return" if cid == o.customer_id else f"{op_key}:sv_return:{cid}"
            for asset, part in ((SV_PAID, to_paid), (SV_BONUS, to_bonus)):
                self.post(
                    self.acct(cid, asset),
                    part,
                    kind=SV_RETURN,
                    key=f"{key}:{asset.removeprefix('stored_')}",
                    reference=ref,
                )
            rec.back_paid += to_paid
            rec.back_bonus += to_bonus
            total = [total[0] + give, total[1] + to_paid, total[2] + to_bonus]
            per[cid] = {"amount": fmt(give), "paid": fmt(to_paid), "bonus": fmt(to_bonus)}
        if not per:
            return
        effects["stored_value_returned"] = {
            "amount": fmt(total[0]),
            "paid": fmt(total[1]),
            "bonus": fmt(total[2]),
        }
        if set(per) - {o.customer_id}:
            effects["stored_value_returned"]["accounts"] = per

    def _earn(
        self,
        o: OrderEvent,
        member: dict[str, Any],
        op_key: str,
        state: dict[str, Any],
        effects: dict[str, Any],
    ) -> None:
        mult = self.benefits(member, o.ordered_at)
        res = compute_earn(
            self.program.earn,
            o.amount,
            o.ordered_at,
            self.zone,
            lines=o.lines,
            member_multiplier=mult,
        )
        ref = f"order:{o.ref}"
        credited, settled, lot = self.earn_points(
            o.customer_id, res.points, key=f"{op_key}:points", ref=ref, earned_at=o.ordered_at
        )
        state["points_earned"] = res.points
        state["points_lot_id"] = lot
        effects["points_earned"] = fmt(credited)
        effects["points_debt_settled"] = fmt(settled)
        effects["campaigns"] = list(res.campaigns)
        local_day = o.ordered_at.astimezone(self.zone).date().isoformat()
        for card in self.program.stamp_cards:
            cs = self.cards[(o.customer_id, card.id)]
            last = cs["last_stamp_day"]
            # Every stamped day is on or before the card's last stamped day (it only moves
            # forward), so a later day is unstamped; an order placed before it (arriving
            # out of order) is checked against that day's orders and visits.
            if card.per == "visit" and last is not None and local_day < last:
                stamped = self.day_stamped(o.customer_id, card.id, o.ordered_at, local_day)
            else:
                stamped = last == local_day
            n = stamps_for_order(card, o.amount, already_stamped_today=stamped)
            if n <= 0:
                continue
            stamp, issued, lot_id = self.add_stamps(
                o.customer_id,
                card,
                n,
                key=f"{op_key}:stamps:{card.id}",
                ref=ref,
                earned_at=o.ordered_at,
                local_day=None if last is not None and last > local_day else local_day,
            )
            effects["coupons_issued"].extend(issued)
            state["stamps"][card.id] = {"stamps": n, "lot_id": lot_id, "reversed": 0}
            effects["stamps"].append(stamp)

    def add_stamps(
        self,
        customer_id: str,
        card: StampCard,
        n: int,
        *,
        key: str,
        ref: str,
        earned_at: datetime,
        local_day: str | None,
    ) -> tuple[dict[str, Any], list[dict[str, Any]], int | None]:
        """Put ``n`` stamps on a customer's card (orders, visits and grants all come here).

        Stamps owed (``stamps_debt:<card>``, from refunds of a completed card) are settled
        first; the rest is a lot expiring ``expire_days`` after ``earned_at``. Every ladder
        step reached pays its coupon once per card; at ``size`` the card completes (its stamps
        are used up) and the next card starts with the leftover. ``local_day`` (when given)
        becomes the card's last stamped day. Entry keys: ``key`` (the lot), ``key:debt``,
        ``key:done``, ``key:reward:<i>``. Returns (the stamp effect, coupons issued, lot id).
        """
        cs = self.cards[(customer_id, card.id)]
        acct = self.acct(customer_id, f"stamps:{card.id}")
        acct.required = True
        debt = self.acct(customer_id, f"stamps_debt:{card.id}")
        settle = min(Decimal(n), debt.balance)
        self.post(debt, -settle, kind="debt_settled", key=f"{key}:debt", reference=ref)
        add = int(Decimal(n) - settle)
        before = int(acct.balance)
        exp = earned_at + timedelta(days=card.expire_days) if card.expire_days else None
        lot_id = self.credit_lot(
            acct,
            Decimal(add),
            kind="stamp",
            key=key,
            earned_at=earned_at,
            expires_at=exp,
            reference=ref,
        )
        adv = stamp_advance(card, before, cs["rewarded_upto"], add)
        used = before + add - adv.balance
        if used > 0:
            self.debit_fifo(
                acct, Decimal(used), kind="card_completed", key=f"{key}:done", reference=ref
            )
        issued: list[dict[str, Any]] = []
        for i, (step, template_id) in enumerate(adv.rewards):
            c = self.issue(
                self.program.template(template_id),
                customer_id,
                key=f"{key}:reward:{i}",
                source="stamp_card",
                source_ref=f"{card.id}:{cs['cycle']}:{step}",
            )
            if c is not None:
                issued.append(c)
        cs.update(
            rewarded_upto=adv.rewarded_upto,
            cycle=cs["cycle"] + adv.completions,
            completed=cs["completed"] + adv.completions,
            updated_at=self.now,
        )
        if local_day is not None:
            cs["last_stamp_day"] = local_day
        self.dirty_cards.add((customer_id, card.id))
        rewards = [c["code"] for c in issued]
        for idx, c in enumerate(issued):
            self._ref_of(c).refs.append((rewards, idx))
        stamp = {
            "card": card.id,
            "added": n,
            "debt_settled": int(settle),
            "balance": int(acct.balance),
            "completed_cards": adv.completions,
            "rewards": rewards,
        }
        return stamp, issued, lot_id

    def _ref_of(self, coupon_json: dict[str, Any]) -> _Coupon:
        for cp in reversed(self.new_coupons):
            if any(container is coupon_json for container, _ in cp.refs):
                return cp
        raise AssertionError("coupon not issued in this batch")  # pragma: no cover

    def _after_paid(
        self,
        o: OrderEvent,
        member: dict[str, Any],
        op_key: str,
        state: dict[str, Any],
        effects: dict[str, Any],
    ) -> None:
        first = bool(state["first_paid"])
        for i, rule in enumerate(self.program.order_coupons):
            if o.amount < rule.min_order_amount or (rule.first_order_only and not first):
                continue
            c = self.issue(
                self.program.template(rule.template),
                o.customer_id,
                key=f"{op_key}:coupon:{i}",
                source="order",
                source_ref=o.ref,
                order_amount=o.amount,
            )
            if c is not None:
                effects["coupons_issued"].append(c)
        member["paid_orders"] += 1
        member["updated_at"] = self.now
        member.update(self.tier_after_order(member, effects))
        self.dirty_members.add(o.customer_id)
        if first and o.customer_id in self.referral_registered:
            self.referral_registered.discard(o.customer_id)
            effects["referral"] = attribute_referral(self.svc, self.conn, o, self.now)

    def _reverse(
        self, o: OrderEvent, state: dict[str, Any], op_key: str, effects: dict[str, Any]
    ) -> None:
        amount = state["amount"]
        refund = min(o.refund_total, amount)
        full = refund >= amount
        target = proportional_target(state["points_earned"], amount, refund)
        delta = target - state["points_reversed"]
        ref = f"order:{o.ref}"
        taken, short = self.take_back(
            o.customer_id,
            POINTS,
            POINTS_DEBT,
            delta,
            key=f"{op_key}:reverse",
            ref=ref,
            prefer=state["points_lot_id"],
        )
        effects["points_reversed"] = fmt(taken)
        effects["points_debt_added"] = fmt(short)
        stamps = dict(state["stamps"])
        if full:
            for card_id, info in stamps.items():
                todo = int(info["stamps"]) - int(info.get("reversed", 0))
                if todo <= 0:
                    continue
                t2, s2 = self.take_back(
                    o.customer_id,
                    f"stamps:{card_id}",
                    f"stamps_debt:{card_id}",
                    Decimal(todo),
                    key=f"{op_key}:reverse:stamps:{card_id}",
                    ref=ref,
                    prefer=info.get("lot_id"),
                )
                stamps[card_id] = {**info, "reversed": int(info.get("reversed", 0)) + todo}
                effects["stamps"].append(
                    {"card": card_id, "reversed": int(t2), "debt_added": int(s2)}
                )
        kept: list[str] = []
        for cp in sorted(self.coupons_by_order.get(o.ref, []), key=lambda x: x.row["code"]):
            row = cp.row
            if row["status"] != "issued":
                if row["status"] == "redeemed":
                    cp.refs.append((kept, len(kept)))
                    kept.append(row["code"])
                continue
            if full:
                row["status"] = "voided"
                cp.voided = True
                self._event(
                    cp,
                    kind="voided",
                    old_status="issued",
                    new_status="voided",
                    order_id=o.ref,
                )
                voided = effects["coupons_voided"]
                cp.refs.append((voided, len(voided)))
                voided.append(row["code"])
            elif row["kind"] == "spend_back" and row["value"] is not None:
                tpl = template_or_default(self.svc, SimpleNamespace(**row))
                new_value = (
                    coupon_value_for_order(tpl, amount - refund)
                    if tpl.kind == "spend_back"
                    else row["value"]
                )
                if new_value is not None and new_value < row["value"]:
                    old = row["value"]
                    row["value"] = new_value
                    cp.value_changed = True
                    self._event(
                        cp,
                        kind="adjusted",
                        old_status="issued",
                        new_status="issued",
                        order_id=o.ref,
                        old_value=old,
                        new_value=new_value,
                    )
                    adj = {"code": row["code"], "value": fmt(new_value)}
                    cp.refs.append((adj, "code"))
                    effects["coupons_adjusted"].append(adj)
        if kept:
            effects["coupons_kept"] = kept
        state.update(
            refunded_amount=refund,
            status="refunded" if full and o.status != "cancelled" else o.status,
            points_reversed=state["points_reversed"] + delta,
            stamps=stamps,
            updated_at=self.now,
        )
        if o.ref not in self.new_orders:
            self.dirty_orders.add(o.ref)
        if full and state.get("first_paid"):
            res = self.conn.execute(
                _REFERRAL_REJECT, {"cid": o.customer_id, "oid": o.ref, "now": self.now}
            )
            if res.rowcount:
                effects["referral"] = {"status": "rejected", "reason": "first_order_refunded"}

    # -- write -------------------------------------------------------------------------------
    def flush(self) -> None:
        conn = self.conn
        self._create_accounts()

        def acct_id(key: AcctKey) -> int:
            aid = self.accounts[key].account_id
            assert aid is not None
            return aid

        new_lots = [x for lots in self.lots.values() for x in lots.values() if x.new]
        new_lots.sort(key=lambda x: x.lot_id)
        if new_lots:
            self._insert_many(
                lt.lots,
                [
                    {
                        "lot_id": x.lot_id,
                        "account_id": acct_id(x.key),
                        "amount": x.amount,
                        "remaining": x.remaining,
                        "reference": x.reference,
                        "earned_at": x.earned_at,
                        "expires_at": x.expires_at,
                    }
                    for x in new_lots
                ],
            )
        moved = [x for lots in self.lots.values() for x in lots.values() if x.dirty and not x.new]
        self._bulk_update(
            lt.lots,
            ["lot_id"],
            ["remaining"],
            [{"lot_id": x.lot_id, "remaining": x.remaining} for x in moved],
        )
        self._insert_many(
            lt.entries, [{**e, "account_id": acct.account_id} for acct, e in self.entries]
        )
        self._bulk_update(
            lt.accounts,
            ["account_id"],
            ["balance", "updated_at"],
            [
                {"account_id": x.account_id, "balance": x.balance, "updated_at": self.now}
                for x in self.accounts.values()
                if x.dirty
            ],
        )
        self._insert_many(
            lt.orders, [{k: self.orders[i][k] for k in _ORDER_COLUMNS} for i in self.new_orders]
        )
        self._bulk_update(
            lt.orders,
            ["source", "order_id"],
            ["refunded_amount", "status", "points_reversed", "stamps", "updated_at"],
            [self.orders[i] for i in sorted(self.dirty_orders)],
        )
        self._bulk_update(
            lt.members,
            ["customer_id"],
            [
                "paid_orders",
                "tier",
                "tier_since",
                "tier_valid_until",
                "tier_grace_until",
                "updated_at",
            ],
            [self.members[cid] for cid in sorted(self.dirty_members)],
        )
        self._bulk_update(
            lt.stamp_cards,
            ["customer_id", "card_id"],
            ["rewarded_upto", "cycle", "completed", "last_stamp_day", "updated_at"],
            [self.cards[k] for k in sorted(self.dirty_cards)],
        )
        self._write_coupons()
        self._bulk_update(
            lt.coupons,
            ["code"],
            ["value"],
            [cp.row for cp in self.db_coupons if cp.value_changed],
        )
        voided = [cp for cp in self.db_coupons if cp.voided]
        if voided:
            conn.execute(_VOID_COUPON, [{"b_code": cp.row["code"]} for cp in voided])
        if self.coupon_events:
            conn.execute(
                _COUPON_EVENT_INSERT,
                [{**EVENT_BLANK, **ev, "code": cp.row["code"]} for cp, ev in self.coupon_events],
            )

    def _create_accounts(self) -> None:
        todo = sorted(
            (x for x in self.accounts.values() if x.account_id is None and x.required),
            key=lambda x: (x.customer_id, x.asset),
        )
        if not todo:
            return
        inserted = self._insert_ignore_rows(
            lt.accounts,
            [
                {
                    "customer_id": x.customer_id,
                    "asset": x.asset,
                    "balance": ZERO,
                    "updated_at": self.now,
                }
                for x in todo
            ],
            ("customer_id", "asset"),
            ("account_id", "customer_id", "asset"),
        )
        by_key = {(x.customer_id, x.asset): x for x in todo}
        # The accounts inserted come back with their ids (at a zero balance: this transaction's
        # own rows); only those another transaction created meanwhile are read and locked.
        for r in inserted:
            by_key[(r.customer_id, r.asset)].account_id = r.account_id
        rest = {k: x for k, x in by_key.items() if x.account_id is None}
        ss = sorted({x.asset for x in rest.values()})
        for cs in _chunks(sorted({x.customer_id for x in rest.values()})):
            for r in self._select(_ACCOUNTS, {"cs": cs, "ss": ss}):
                x = rest.get((r.customer_id, r.asset))
                if x is None:
                    continue
                if r.balance != 0:
                    raise ConflictError(
                        f"account {r.asset} of {r.customer_id} was created by a concurrent "
                        "transaction; run the batch again",
                        code="loyalty.concurrent_update",
                        message_zh="账户被并发事务创建,请重试本批次",
                        details={"customer_id": r.customer_id, "asset": r.asset},
                    )
                x.account_id = r.account_id
        if any(x.account_id is None for x in todo):  # pragma: no cover - row vanished
            raise StoreError(
                "an account created by this batch is missing", code="store.inconsistent"
            )

    def _write_coupons(self) -> None:
        if not self.new_coupons:
            return
        rows = [cp.row for cp in self.new_coupons]
        inserted = set(self._insert_ignore(lt.coupons, rows, "code"))
        for cp in self.new_coupons:
            if cp.row["code"] in inserted:
                continue
            for _ in range(5):  # a 55-bit random code collided: draw another
                code = codes.generate()
                if self._insert_ignore(lt.coupons, [{**cp.row, "code": code}], "code"):
                    break
            else:  # pragma: no cover
                raise ConflictError(
                    "could not generate a unique coupon code", code="coupon.code_collision"
                )
            cp.row["code"] = code
            for container, k in cp.refs:
                container[k] = code


def _parse_all(orders: Iterable[Mapping[str, Any]]) -> list[OrderEvent]:
    items = list(orders)
    out = []
    for i, raw in enumerate(items):
        try:
            out.append(parse_order(raw))
        except InputError as exc:
            if len(items) == 1:
                raise
            raise InputError(
                f"orders[{i}].{exc.message}",
                code=exc.code,
                message_zh=f"orders[{i}].{exc.message_zh}",
                details={**exc.details, "index": i},
            ) from exc
    return out


def apply_orders(
    svc: LoyaltyContext, conn: Connection, orders: Iterable[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """See :meth:`LoyaltyService.apply_orders`."""
    events = _parse_all(orders)
    if not events:
        return []
    now = svc.now()
    keys = [order_op_key(o) for o in events]
    batch = _Batch(svc, conn, now)
    # 1. claim every key at once
    first_of: dict[str, int] = {}
    for i, k in enumerate(keys):
        first_of.setdefault(k, i)
    claim_rows = [
        {
            "op_key": k,
            "kind": "order",
            "customer_id": events[i].customer_id,
            "result": None,
            "created_at": now,
        }
        for k, i in first_of.items()
    ]
    claimed: set[str] = set()
    for rows in _chunks(claim_rows):
        claimed.update(batch._insert_ignore(lt.operations, list(rows), "op_key"))
    prior: dict[str, dict[str, Any]] = {}
    older = sorted(set(first_of) - claimed)
    for ks in _chunks(older):
        for r in conn.execute(_OPERATION_RESULTS, {"ks": ks}).all():
            if r.result is None:  # pragma: no cover - only if the row vanished
                raise StoreError(
                    f"operation {r.op_key!r} is claimed but has no result",
                    code="store.inconsistent",
                )
            prior[r.op_key] = dict(r.result)
    if len(prior) != len(older):  # pragma: no cover
        raise StoreError("a claimed operation vanished", code="store.inconsistent")
    # 2. which events run now (first copy of a newly claimed key, in the program's currency)
    fresh = [i for k, i in sorted(first_of.items(), key=lambda kv: kv[1]) if k in claimed]
    stored: dict[str, dict[str, Any]] = {}
    active: list[int] = []
    for i in fresh:
        o = events[i]
        if o.currency and o.currency.upper() != svc.program.currency:
            stored[keys[i]] = _skeleton(o, "currency")
        else:
            active.append(i)
    if active:
        batch.load([events[i] for i in active])
        for i in active:
            try:
                stored[keys[i]] = batch.apply(events[i], keys[i])
            except HuitoukeError as exc:  # a conflict rejects the batch: say which event
                if len(events) > 1:
                    exc.details.setdefault("index", i)
                raise
        batch.flush()
    if stored:
        batch._bulk_update(
            lt.operations,
            ["op_key"],
            ["result"],
            [{"op_key": k, "result": v} for k, v in stored.items()],
        )
    out: list[dict[str, Any]] = []
    for i, k in enumerate(keys):
        if k in prior:
            out.append({**copy.deepcopy(prior[k]), "replayed": True})
        elif first_of[k] == i:
            out.append({**stored[k], "replayed": False})
        else:  # the same event twice in one batch: the later copy is a replay
            out.append({**copy.deepcopy(stored[k]), "replayed": True})
    return out


def ignored_effects(o: OrderEvent, why: str) -> dict[str, Any]:
    """The answer for an event that changes nothing, and why (``stale``: an older state of
    the order than the one recorded)."""
    return _skeleton(o, why)


def _skeleton(o: OrderEvent, ignored: str | None) -> dict[str, Any]:
    """The effects of an event before anything is applied (``ignored``: why nothing will be)."""
    return {
        "order_id": o.order_id,
        "customer_id": o.customer_id,
        "status": o.status,
        "points_earned": "0",
        "points_debt_settled": "0",
        "points_reversed": "0",
        "points_debt_added": "0",
        "stamps": [],
        "coupons_issued": [],
        "coupons_voided": [],
        "coupons_adjusted": [],
        "tier": None,
        "referral": None,
        "ignored": ignored,
    }


#: how far a visit may lie ahead of the service's clock (the till's clock runs a little fast)
VISIT_CLOCK_SKEW = timedelta(minutes=5)
#: the most stamps one grant may put on a card
MAX_GRANT = 1000


def add_stamps(
    svc: LoyaltyContext,
    conn: Connection,
    customer_id: str,
    card_id: str,
    *,
    idempotency_key: str,
    stamps: int | None = None,
    visited_at: datetime | str | None = None,
    reason: str | None = None,
) -> dict[str, Any]:
    """See :meth:`LoyaltyService.add_stamps`."""
    card = svc.program.stamp_card(card_id)
    now = svc.now()
    at = now if visited_at is None else aware(visited_at, "visited_at")
    if at > now + VISIT_CLOCK_SKEW:
        raise InputError(
            f"visited_at: {iso(at)} is in the future",
            code="input.invalid",
            message_zh=f"visited_at:{iso(at)} 晚于当前时间",
            details={"field": "visited_at"},
        )
    grant = stamps is not None
    if grant:
        if isinstance(stamps, bool) or not isinstance(stamps, int) or not 1 <= stamps <= MAX_GRANT:
            raise InputError(
                f"stamps: a whole number from 1 to {MAX_GRANT}",
                code="input.invalid",
                message_zh=f"stamps:须为 1 到 {MAX_GRANT} 的整数",
                details={"field": "stamps"},
            )
        if not reason:
            raise InputError(
                "reason: required when granting stamps",
                code="input.missing_field",
                message_zh="补章须填写原因 reason",
                details={"field": "reason"},
            )
    else:
        stamps_for_visit(card, already_stamped_today=False)  # the card counts visits at all
    op_key = f"stamps:{idempotency_key}"
    prior = claim(
        conn,
        op_key,
        "stamps",
        customer_id,
        now,
        request={
            "customer_id": customer_id,
            "card_id": card_id,
            "stamps": stamps,
            "visited_at": visited_at,
            "reason": reason,
        },
    )
    if prior is not None:
        return prior
    batch = _Batch(svc, conn, now)
    batch.load_card(customer_id, card)
    local_day = at.astimezone(svc.zone).date().isoformat()
    cs = batch.cards[(customer_id, card.id)]
    if grant:
        assert stamps is not None
        n = stamps
    else:
        n = stamps_for_visit(
            card, already_stamped_today=batch.day_stamped(customer_id, card.id, at, local_day)
        )
    result: dict[str, Any] = {
        "customer_id": customer_id,
        "card": card.id,
        "kind": "grant" if grant else "visit",
        "reason": reason or None,
        "visited_at": iso(at),
        "day": local_day,
        "added": 0,
        "debt_settled": 0,
        "balance": int(batch.acct(customer_id, f"stamps:{card.id}").balance),
        "completed_cards": 0,
        "rewards": [],
        "coupons_issued": [],
        "ignored": None,
    }
    if n > 0:
        ref = f"grant:{reason}" if grant else f"visit:{local_day}:{idempotency_key}"
        last = cs["last_stamp_day"]
        stamp, issued, _lot = batch.add_stamps(
            customer_id,
            card,
            n,
            key=op_key,
            ref=ref[:255],
            earned_at=at,
            # the card's last stamped day only moves forward (a visit recorded late for an
            # earlier day must not reopen the later day to order stamps)
            local_day=None if grant or (last is not None and last > local_day) else local_day,
        )
        result.update({k: v for k, v in stamp.items() if k != "card"}, coupons_issued=issued)
    else:
        result["ignored"] = "already_stamped_today"
    batch.flush()  # may patch a colliding coupon code in the result
    return finish(conn, op_key, result)
