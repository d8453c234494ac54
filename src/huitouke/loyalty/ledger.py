"""The append-only ledger: accounts, entries, lots, idempotent operations, verification.

Rules every writer here follows:

- a balance changes only through :func:`post`, which writes one ``loyalty_entries`` row
  (UNIQUE idempotency key, delta, balance before and after) and updates the cached
  balance; the database refuses a negative balance (``CHECK (balance >= 0)``);
- accounts touched by one operation are locked in primary-key order (``SELECT … FOR
  UPDATE ORDER BY account_id`` on PostgreSQL) so two operations never deadlock;
- an operation starts by claiming its idempotency key in ``loyalty_operations`` with
  ``INSERT … ON CONFLICT DO NOTHING``. That write comes first on purpose: on SQLite it takes
  the database's write lock before anything is read, so the reads that follow cannot be
  stale; on PostgreSQL a concurrent duplicate waits for the first to commit and then sees
  its stored result.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, bindparam, func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from huitouke.errors import ConflictError, InputError, StoreError
from huitouke.i18n import t
from huitouke.loyalty import tables as lt
from huitouke.loyalty.rules import LotView, allocate_fifo

__all__ = [
    "Account",
    "Discrepancy",
    "claim",
    "credit_lot",
    "debit_fifo",
    "finish",
    "insert_ignore",
    "lock_accounts",
    "lots_of",
    "post",
    "record_correction",
    "request_hash",
    "verify_ledger",
]

ZERO = Decimal(0)


# Statements on the hot paths are built once, with bind parameters, and reused: SQLAlchemy
# then skips building the statement and its cache key on every call (most of the Python
# time of a small unit of work), and only binds the parameters.
@functools.cache
def _insert_ignore_stmt(dialect: str, table: Any, index: tuple[str, ...]) -> Any:
    if dialect == "postgresql":
        stmt: Any = postgresql.insert(table).on_conflict_do_nothing(
            index_elements=list(index) or None
        )
    else:
        stmt = sqlite.insert(table).on_conflict_do_nothing(index_elements=list(index) or None)
    # RETURNING tells what was inserted on every driver (rowcount is -1 on some).
    return stmt.returning(next(iter(table.primary_key.columns)))


def insert_ignore(
    conn: Connection, table: Any, values: dict[str, Any] | list[dict[str, Any]], *index: str
) -> int:
    """``INSERT … ON CONFLICT DO NOTHING``; returns how many rows were inserted."""
    res = conn.execute(_insert_ignore_stmt(conn.dialect.name, table, index), values)
    return len(res.all())


_op = lt.operations.c
_OP_RESULT = select(_op.result, _op.request_hash).where(_op.op_key == bindparam("k"))
_OP_FINISH = (
    update(lt.operations)
    .where(_op.op_key == bindparam("k"))
    .values(result=bindparam("r", type_=_op.result.type))
)


# -- operations ----------------------------------------------------------------------------
def _canonical(v: Any) -> Any:
    if isinstance(v, Decimal):
        return format(v.normalize(), "f") if v.is_finite() else str(v)
    if isinstance(v, datetime):
        return v.isoformat()
    if isinstance(v, Mapping):
        return {str(k): _canonical(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_canonical(x) for x in v]
    return v


def request_hash(kind: str, request: Mapping[str, Any]) -> str:
    """The fingerprint of a request (its kind and payload; ``10`` and ``10.00`` alike)."""
    text = json.dumps([kind, _canonical(request)], sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def claim(
    conn: Connection,
    op_key: str,
    kind: str,
    customer_id: str | None,
    now: datetime,
    *,
    request: Mapping[str, Any] | None = None,
    reused: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any] | None:
    """Claim ``op_key`` for this unit of work; returns the stored result if it already ran.

    ``request`` (the payload of a call whose key the caller chose) is fingerprinted with the
    operation: the same key sent again with another payload is refused with 422
    ``idempotency.key_reused`` rather than answered with the first result, which would tell
    the caller that an operation it never made had succeeded (as Stripe does). Operations
    claimed before fingerprints were kept (``request_hash`` NULL) are answered as before.
    ``reused`` (optional) sees the stored result first and may raise a more specific error.
    """
    fingerprint = None if request is None else request_hash(kind, request)
    inserted = insert_ignore(
        conn,
        lt.operations,
        {
            "op_key": op_key,
            "kind": kind,
            "customer_id": customer_id,
            "result": None,
            "created_at": now,
            "request_hash": fingerprint,
        },
        "op_key",
    )
    if inserted:
        return None
    row = conn.execute(_OP_RESULT, {"k": op_key}).first()
    if row is None or row.result is None:  # pragma: no cover - only if the row vanished
        raise StoreError(
            f"operation {op_key!r} is claimed but has no result", code="store.inconsistent"
        )
    if fingerprint is not None and row.request_hash not in (None, fingerprint):
        if reused is not None:
            reused(dict(row.result))
        key = op_key.split(":", 1)[-1]
        raise InputError(
            t("loyalty.key_reused", "en", key=key),
            code="idempotency.key_reused",
            message_zh=t("loyalty.key_reused", "zh", key=key),
            details={"idempotency_key": key, "operation": kind},
        )
    result = dict(row.result)
    result["replayed"] = True
    return result


def finish(conn: Connection, op_key: str, result: dict[str, Any]) -> dict[str, Any]:
    stored = {k: v for k, v in result.items() if k != "replayed"}
    conn.execute(_OP_FINISH, {"k": op_key, "r": stored})
    return {**stored, "replayed": False}


def record_correction(
    conn: Connection,
    op_key: str,
    *,
    customer_id: str,
    asset: str,
    delta: Decimal,
    balance_after: Decimal,
    reason: str,
    actor: str | None,
    now: datetime,
) -> None:
    """One row of the corrections' audit trail (``loyalty_corrections``) for an operator's
    adjustment of a balance, in the adjustment's own unit of work."""
    conn.execute(
        lt.corrections.insert(),
        {
            "op_key": op_key,
            "customer_id": customer_id,
            "asset": asset,
            "delta": delta,
            "balance_after": balance_after,
            "reason": reason[:255],
            "actor": (actor or "unspecified")[:160],
            "created_at": now,
        },
    )


# -- accounts ------------------------------------------------------------------------------
@dataclass
class Account:
    account_id: int
    customer_id: str
    asset: str
    balance: Decimal


_acc = lt.accounts.c
# IN on both columns (not an OR of ANDs) so the UNIQUE (customer_id, asset) index is used;
# the few extra combinations it may match are filtered out by the caller.
_LOCK_ACCOUNTS = (
    select(_acc.account_id, _acc.customer_id, _acc.asset, _acc.balance)
    .where(
        _acc.customer_id.in_(bindparam("cs", expanding=True)),
        _acc.asset.in_(bindparam("ss", expanding=True)),
    )
    .order_by(_acc.account_id)
)
_LOCK_ACCOUNTS_PG = _LOCK_ACCOUNTS.with_for_update()
_ENTRY_INSERT = lt.entries.insert()
_SET_BALANCE = (
    update(lt.accounts)
    .where(_acc.account_id == bindparam("aid"))
    .values(
        balance=bindparam("bal", type_=_acc.balance.type),
        updated_at=bindparam("at", type_=_acc.updated_at.type),
    )
)


def lock_accounts(
    conn: Connection,
    keys: Iterable[tuple[str, str]],
    now: datetime,
    *,
    optional: Iterable[tuple[str, str]] = (),
) -> dict[tuple[str, str], Account]:
    """Get or create the (customer, asset) accounts and lock them in primary-key order.

    Accounts in ``optional`` are locked when they exist but not created: a missing one
    comes back as an unsaved zero-balance :class:`Account` (``account_id == 0``) that
    :func:`post` creates on its first non-zero entry.
    """
    opt = set(optional)
    wanted = sorted(set(keys) | opt)
    if not wanted:
        return {}
    stmt = _LOCK_ACCOUNTS_PG if conn.dialect.name == "postgresql" else _LOCK_ACCOUNTS

    def select_locked(pairs: list[tuple[str, str]]) -> list[Any]:
        params = {"cs": sorted({c for c, _ in pairs}), "ss": sorted({s for _, s in pairs})}
        want = set(pairs)
        return [r for r in conn.execute(stmt, params).all() if (r.customer_id, r.asset) in want]

    found = {
        (r.customer_id, r.asset): Account(r.account_id, r.customer_id, r.asset, r.balance)
        for r in select_locked(wanted)
    }
    missing = [k for k in wanted if k not in found and k not in opt]
    for k in opt:
        if k not in found:
            found[k] = Account(0, k[0], k[1], ZERO)
    if missing:
        insert_ignore(
            conn,
            lt.accounts,
            [
                {"customer_id": c, "asset": s, "balance": ZERO, "updated_at": now}
                for c, s in missing
            ],
            "customer_id",
            "asset",
        )
        for r in select_locked(missing):
            found[(r.customer_id, r.asset)] = Account(
                r.account_id, r.customer_id, r.asset, r.balance
            )
    return found


def balances(conn: Connection, customer_id: str) -> dict[str, Decimal]:
    """Every cached balance of one customer, by asset (no lock: a read)."""
    a = lt.accounts.c
    rows = conn.execute(select(a.asset, a.balance).where(a.customer_id == customer_id)).all()
    return {r.asset: r.balance for r in rows}


# -- entries -------------------------------------------------------------------------------
def post(
    conn: Connection,
    acct: Account,
    delta: Decimal,
    *,
    kind: str,
    key: str,
    now: datetime,
    reference: str | None = None,
    lot_id: int | None = None,
    expires_at: datetime | None = None,
) -> None:
    """Write one ledger entry and move the cached balance by ``delta`` (the account is locked)."""
    if delta == 0:
        return
    if acct.account_id == 0:  # an optional account met its first entry: create it now
        created = lock_accounts(conn, [(acct.customer_id, acct.asset)], now)[
            (acct.customer_id, acct.asset)
        ]
        acct.account_id, acct.balance = created.account_id, created.balance
    before = acct.balance
    after = before + delta
    if after < 0:
        raise ConflictError(
            f"{acct.asset} balance {before} cannot cover {-delta}",
            code=f"{acct.asset.split(':')[0]}.insufficient",
            message_zh=f"余额 {before} 不足 {-delta}",
            details={"asset": acct.asset, "balance": str(before), "requested": str(-delta)},
        )
    conn.execute(
        _ENTRY_INSERT,
        {
            "idempotency_key": key,
            "account_id": acct.account_id,
            "delta": delta,
            "balance_before": before,
            "balance_after": after,
            "kind": kind,
            "reference": reference,
            "lot_id": lot_id,
            "expires_at": expires_at,
            "created_at": now,
        },
    )
    conn.execute(_SET_BALANCE, {"aid": acct.account_id, "bal": after, "at": now})
    acct.balance = after


def credit_lot(
    conn: Connection,
    acct: Account,
    amount: Decimal,
    *,
    kind: str,
    key: str,
    now: datetime,
    earned_at: datetime,
    expires_at: datetime | None,
    reference: str | None = None,
) -> int | None:
    """Credit an expiring asset: a new lot plus its entry. Returns the lot id."""
    if amount <= 0:
        return None
    res = conn.execute(
        lt.lots.insert().returning(lt.lots.c.lot_id),
        {
            "account_id": acct.account_id,
            "amount": amount,
            "remaining": amount,
            "reference": reference,
            "earned_at": earned_at,
            "expires_at": expires_at,
        },
    )
    lot_id = int(res.scalar_one())
    post(
        conn,
        acct,
        amount,
        kind=kind,
        key=key,
        now=now,
        reference=reference,
        lot_id=lot_id,
        expires_at=expires_at,
    )
    return lot_id


def lots_of(conn: Connection, account_id: int) -> list[LotView]:
    lo = lt.lots.c
    rows = conn.execute(
        select(lo.lot_id, lo.remaining, lo.expires_at).where(
            lo.account_id == account_id, lo.remaining > 0
        )
    ).all()
    return [LotView(r.lot_id, r.remaining, r.expires_at) for r in rows]


def debit_fifo(
    conn: Connection,
    acct: Account,
    amount: Decimal,
    *,
    kind: str,
    key: str,
    now: datetime,
    reference: str | None = None,
    prefer: int | None = None,
    allow_partial: bool = False,
) -> tuple[Decimal, Decimal]:
    """Spend ``amount`` of an expiring asset, earliest-expiring lots first.

    One entry per lot touched (key ``{key}#{lot_id}``). Returns ``(taken, shortfall)``;
    without ``allow_partial`` a shortfall raises ``<asset>.insufficient`` and nothing is taken.
    """
    if amount <= 0:
        return ZERO, ZERO
    allocations, shortfall = allocate_fifo(lots_of(conn, acct.account_id), amount, prefer=prefer)
    if shortfall > 0 and not allow_partial:
        asset = acct.asset.split(":")[0]
        raise ConflictError(
            f"{acct.asset} balance {acct.balance} cannot cover {amount}",
            code=f"{asset}.insufficient",
            message_zh=f"余额 {acct.balance} 不足 {amount}",
            details={"asset": acct.asset, "balance": str(acct.balance), "requested": str(amount)},
        )
    taken = ZERO
    lo = lt.lots.c
    for lot_id, take in allocations:
        conn.execute(
            update(lt.lots).where(lo.lot_id == lot_id).values(remaining=lo.remaining - take)
        )
        post(
            conn,
            acct,
            -take,
            kind=kind,
            key=f"{key}#{lot_id}",
            now=now,
            reference=reference,
            lot_id=lot_id,
        )
        taken += take
    return taken, shortfall


# -- verification --------------------------------------------------------------------------
@dataclass(frozen=True)
class Discrepancy:
    """One broken ledger invariant."""

    problem: str  # balance_mismatch, lots_mismatch, entry_chain, coupon_redeemed_twice
    account_id: int | None
    customer_id: str | None
    asset: str | None
    expected: str
    actual: str


def _is_lot_asset(asset: str) -> bool:
    return asset == "points" or asset.startswith("stamps:")


def verify_ledger(
    conn: Connection, *, customer_ids: Sequence[str] | None = None
) -> list[Discrepancy]:
    """Check the ledger's invariants; an empty list means everything holds.

    - for every account, Σ entries.delta == cached balance;
    - for lot-tracked assets (points, stamps), Σ lots.remaining == cached balance;
    - each entry's ``balance_before`` is the previous entry's ``balance_after``;
    - no coupon has more than one redemption event.
    """
    a, e, lo = lt.accounts.c, lt.entries.c, lt.lots.c
    out: list[Discrepancy] = []
    sums = (
        select(e.account_id, func.coalesce(func.sum(e.delta), 0).label("total"))
        .group_by(e.account_id)
        .subquery()
    )
    q = select(a.account_id, a.customer_id, a.asset, a.balance, sums.c.total).select_from(
        lt.accounts.outerjoin(sums, sums.c.account_id == a.account_id)
    )
    if customer_ids is not None:
        q = q.where(a.customer_id.in_(list(customer_ids)))
    for r in conn.execute(q).all():
        # SUM keeps the Money type, so the total comes back as an exact Decimal.
        total = Decimal(r.total) if r.total is not None else ZERO
        if total != r.balance:
            out.append(
                Discrepancy(
                    "balance_mismatch",
                    r.account_id,
                    r.customer_id,
                    r.asset,
                    str(r.balance),
                    str(total),
                )
            )
    lot_sums = (
        select(lo.account_id, func.coalesce(func.sum(lo.remaining), 0).label("total"))
        .group_by(lo.account_id)
        .subquery()
    )
    q2 = select(a.account_id, a.customer_id, a.asset, a.balance, lot_sums.c.total).select_from(
        lt.accounts.outerjoin(lot_sums, lot_sums.c.account_id == a.account_id)
    )
    if customer_ids is not None:
        q2 = q2.where(a.customer_id.in_(list(customer_ids)))
    for r in conn.execute(q2).all():
        if not _is_lot_asset(r.asset):
            continue
        total = Decimal(r.total) if r.total is not None else ZERO
        if total != r.balance:
            out.append(
                Discrepancy(
                    "lots_mismatch",
                    r.account_id,
                    r.customer_id,
                    r.asset,
                    str(r.balance),
                    str(total),
                )
            )
    prev = (
        func.lag(e.balance_after)
        .over(partition_by=e.account_id, order_by=e.entry_id)
        .label("prev_after")
    )
    chain = select(e.entry_id, e.account_id, e.balance_before, prev).subquery()
    q3 = select(
        chain.c.entry_id, chain.c.account_id, chain.c.balance_before, chain.c.prev_after
    ).where(chain.c.prev_after.is_not(None), chain.c.prev_after != chain.c.balance_before)
    if customer_ids is not None:
        q3 = q3.where(
            chain.c.account_id.in_(
                select(a.account_id).where(a.customer_id.in_(list(customer_ids)))
            )
        )
    for r3 in conn.execute(q3).all():
        out.append(
            Discrepancy(
                "entry_chain", r3.account_id, None, None, str(r3.prev_after), str(r3.balance_before)
            )
        )
    ce = lt.coupon_events.c
    q4 = (
        select(ce.code, func.count().label("n"))
        .where(ce.kind == "redeemed")
        .group_by(ce.code)
        .having(func.count() > 1)
    )
    for r in conn.execute(q4).all():
        out.append(Discrepancy("coupon_redeemed_twice", None, None, r.code, "1", str(r.n)))
    return out
