"""Property tests: random sequences of earn, spend, refund, expire, transfer, redeem, replay.

Invariants after every sequence (on SQLite and PostgreSQL):
- Σ entries == cached balance for every account, Σ lots == balance, the entry chain holds;
- no balance is negative (the database would refuse it anyway);
- no coupon is redeemed twice, and a coupon's holder is who the gifts say;
- replaying any earlier operation returns the same result and writes nothing;
- points: balance − debt == earned − reversed − spent − expired (nothing silently lost).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from huitouke.errors import ConflictError, HuitoukeError
from huitouke.loyalty import LoyaltyService, verify_ledger
from huitouke.loyalty import tables as lt
from huitouke.store.db import Store

from .conftest import Clock, order

PROGRAM: dict[str, Any] = {
    "id": "prop",
    "earn": {"points_per_unit": 1, "unit": 1, "per_order": 1},
    "points_expiry": {"mode": "rolling_days", "days": 20},
    "redemption": {"points_per_currency_unit": 10},
    "coupon_templates": [
        {"id": "t", "kind": "fixed", "value": 5, "valid_days": 15, "max_transfers": 2}
    ],
    "stamp_cards": [
        {
            "id": "s",
            "per": "order",
            "size": 3,
            "expire_days": 10,
            "rewards": [{"stamps": 3, "template": "t"}],
        }
    ],
}

op = st.one_of(
    st.tuples(st.just("earn"), st.integers(1, 400)),
    st.tuples(st.just("refund"), st.integers(0, 50), st.sampled_from(["part", "full"])),
    st.tuples(st.just("spend"), st.integers(1, 300)),
    st.tuples(st.just("spend_all")),
    st.tuples(st.just("expire"), st.integers(1, 25)),
    st.tuples(st.just("issue"), st.sampled_from(["a", "b"])),
    st.tuples(st.just("gift"), st.integers(0, 50), st.sampled_from(["a", "b", "c"])),
    st.tuples(st.just("redeem"), st.integers(0, 50), st.sampled_from(["a", "b", "c"])),
    st.tuples(st.just("replay"), st.integers(0, 50)),
)

_run = itertools.count()


def _count(conn: sa.Connection, table: sa.Table) -> int:
    return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def _check(
    store: Store,
    make_svc: Callable[[Any], LoyaltyService],
    clock: Clock,
    ops: list[tuple[Any, ...]],
) -> None:
    run = next(_run)
    cust = {k: f"r{run}-{k}" for k in ("a", "b", "c")}
    svc = make_svc(PROGRAM).bound(store)
    orders: list[tuple[str, Decimal, Decimal]] = []  # (order id, amount, refunded)
    coupons: list[str] = []
    holders: dict[str, str] = {}
    done: list[tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any], dict[str, Any]]] = []
    spent = Decimal(0)

    def call(fn: Callable[..., Any], *args: Any, **kw: Any) -> dict[str, Any] | None:
        try:
            res = fn(*args, **kw)
        except HuitoukeError as exc:
            assert isinstance(exc, ConflictError | HuitoukeError)
            return None
        done.append((fn, args, kw, res))
        return res  # type: ignore[no-any-return]

    for i, step in enumerate(ops):
        kind = step[0]
        if kind == "earn":
            oid = f"r{run}-o{i}"
            amt = Decimal(step[1])
            call(svc.apply_order, order(oid, cust["a"], amt, at=clock()))
            orders.append((oid, amt, Decimal(0)))
        elif kind == "refund" and orders:
            j = step[1] % len(orders)
            oid, amt, refunded = orders[j]
            new = amt if step[2] == "full" else min(amt, refunded + (amt / 3).quantize(Decimal(1)))
            status = "refunded" if new >= amt else "partially_refunded"
            call(
                svc.apply_order, order(oid, cust["a"], amt, at=clock(), status=status, refunded=new)
            )
            orders[j] = (oid, amt, new)
        elif kind == "spend":
            res = call(svc.redeem_points, cust["a"], step[1], idempotency_key=f"r{run}-s{i}")
            if res is not None:
                spent += Decimal(step[1])
        elif kind == "spend_all":
            with store.connect() as conn:
                everything = Decimal(svc.service.balances(conn, cust["a"]).get("points", "0"))
            if everything > 0 and call(
                svc.redeem_points, cust["a"], everything, idempotency_key=f"r{run}-s{i}"
            ):
                spent += everything
        elif kind == "expire":
            clock.advance(days=step[1])
            svc.expire(clock())
        elif kind == "issue":
            res = call(svc.issue_coupon, "t", cust[step[1]], idempotency_key=f"r{run}-i{i}")
            assert res is not None
            coupons.append(res["code"])
            holders[res["code"]] = cust[step[1]]
        elif kind == "gift" and coupons:
            code = coupons[step[1] % len(coupons)]
            res = call(
                svc.gift_coupon, code, holders[code], cust[step[2]], idempotency_key=f"r{run}-g{i}"
            )
            if res is not None:
                holders[code] = cust[step[2]]
        elif kind == "redeem" and coupons:
            code = coupons[step[1] % len(coupons)]
            call(
                svc.redeem_coupon,
                code,
                order_id=f"r{run}-x{i}",
                customer_id=cust[step[2]],
                redemption_id=f"r{run}-x{i}",
            )
        elif kind == "replay" and done:
            fn, args, kw, first = done[step[1] % len(done)]
            with store.connect() as conn:
                before = (_count(conn, lt.entries), _count(conn, lt.coupon_events))
            again = fn(*args, **kw)
            with store.connect() as conn:
                after = (_count(conn, lt.entries), _count(conn, lt.coupon_events))
            assert after == before
            assert {k: v for k, v in again.items() if k != "replayed"} == {
                k: v for k, v in first.items() if k != "replayed"
            }

    with store.connect() as conn:
        assert verify_ledger(conn) == []
        a = lt.accounts.c
        assert conn.execute(sa.select(sa.func.count()).where(a.balance < 0)).scalar_one() == 0
        c = lt.coupons.c
        for code, holder in holders.items():
            assert conn.execute(sa.select(c.holder_id).where(c.code == code)).scalar_one() == holder
        # points accounting: nothing is silently lost
        lo, e = lt.orders.c, lt.entries.c
        earned, reversed_ = conn.execute(
            sa.select(
                sa.func.coalesce(sa.func.sum(lo.points_earned), 0),
                sa.func.coalesce(sa.func.sum(lo.points_reversed), 0),
            ).where(lo.customer_id == cust["a"])
        ).one()
        expired = conn.execute(
            sa.select(sa.func.coalesce(sa.func.sum(e.delta), 0))
            .select_from(lt.entries.join(lt.accounts, a.account_id == e.account_id))
            .where(a.customer_id == cust["a"], a.asset == "points", e.kind == "expire")
        ).scalar_one()
        bal = svc.service.balances(conn, cust["a"])
    net = Decimal(bal.get("points", "0")) - Decimal(bal.get("points_debt", "0"))
    assert net == Decimal(earned) - Decimal(reversed_) - spent + Decimal(expired)


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=st.lists(op, max_size=30))
def test_random_sequences_keep_the_invariants_sqlite(
    sqlite_url: str,
    make_svc: Callable[[Any], LoyaltyService],
    clock: Clock,
    ops: list[tuple[Any, ...]],
) -> None:
    store = _store(sqlite_url)
    try:
        _check(store, make_svc, clock, ops)
    finally:
        store.dispose()


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=st.lists(op, max_size=25))
def test_random_sequences_keep_the_invariants_postgres(
    postgres_url: str,
    make_svc: Callable[[Any], LoyaltyService],
    clock: Clock,
    ops: list[tuple[Any, ...]],
) -> None:
    store = _store(postgres_url)
    try:
        _check(store, make_svc, clock, ops)
    finally:
        store.dispose()


_migrated: set[str] = set()


def _store(url: str) -> Store:
    s = Store(url)
    if url not in _migrated:
        s.migrate()
        _migrated.add(url)
    return s


def test_replayed_expire_is_harmless(
    store: Store, make_svc: Callable[[Any], LoyaltyService], clock: Clock
) -> None:
    svc = make_svc(PROGRAM).bound(store)
    svc.apply_order(order("o1", "a", "50", at=clock()))
    t = clock.advance(days=21)
    assert svc.expire(t)["points"] == "51"
    assert svc.expire(t)["points"] == "0"
    assert svc.expire(t - timedelta(days=1))["lots"] == 0
