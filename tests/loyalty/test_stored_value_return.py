"""Stored value given back when an order paid with it is refunded: the pure split, the
explicit operation, and order events that give back the refunded share by themselves — on
SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from huitouke.errors import ConflictError, InputError, NotFoundError
from huitouke.loyalty import LoyaltyService
from huitouke.loyalty import tables as lt
from huitouke.loyalty.rules import (
    currency_unit,
    stored_value_return_split,
    stored_value_return_target,
)
from huitouke.store.db import Store

from .conftest import assert_ledger_ok, order

Make = Callable[[Any], LoyaltyService]
D = Decimal
CENT = D("0.01")
#: stored value with a bonus released at once (30 %), spent paid first
PROGRAM: dict[str, Any] = {
    "id": "sv",
    "stored_value": {"topup_rules": [{"min_amount": 100, "bonus_percent": 50}]},
}


# -- the pure rules ------------------------------------------------------------------------
def test_currency_unit_follows_iso_4217() -> None:
    assert currency_unit("CNY") == CENT and currency_unit("JPY") == D(1)
    assert currency_unit("KWD") == D("0.001")


def test_split_follows_the_payment_and_the_remainder_goes_to_paid() -> None:
    # paid 70, bonus 30; giving back 10 returns 3 bonus (floor of 30 %) and 7 paid
    assert stored_value_return_split(D(70), D(30), D(0), D(0), D(10), unit=CENT) == (D(7), D(3))
    # 1 cent at a time: the bonus share is 0.3 ¢ → rounded down to 0, the cent goes to paid,
    # until the cumulative share reaches a whole cent (after 4 cents: 1.2 → 1)
    back_p, back_b, parts = D(0), D(0), []
    for _ in range(4):
        p, b = stored_value_return_split(D(70), D(30), back_p, back_b, CENT, unit=CENT)
        back_p, back_b = back_p + p, back_b + b
        parts.append(b)
    assert parts == [0, 0, 0, CENT] and back_p + back_b == 4 * CENT
    # giving back all that is left returns exactly what was taken, whatever came before
    assert stored_value_return_split(
        D(70), D(30), back_p, back_b, D(100) - 4 * CENT, unit=CENT
    ) == (
        D(70) - back_p,
        D(30) - back_b,
    )
    # JPY has no minor unit: 1 yen of 3 (1 paid, 2 bonus) → 0 bonus (0.67 rounded down)
    assert stored_value_return_split(D(1), D(2), D(0), D(0), D(1), unit=D(1)) == (D(1), D(0))
    with pytest.raises(ConflictError) as e:
        stored_value_return_split(D(70), D(30), D(60), D(30), D("10.01"), unit=CENT)
    assert e.value.code == "stored_value.return_exceeds_spend"
    with pytest.raises(InputError):
        stored_value_return_split(D(70), D(30), D(0), D(0), D(0), unit=CENT)


def test_target_is_the_refunded_share_rounded_half_up() -> None:
    t = stored_value_return_target
    assert t(D(150), D(300), D(100), full=False, unit=CENT) == D(50)
    assert t(D(100), D(300), D(100), full=False, unit=CENT) == D("33.33")
    assert t(D(100), D(300), D(200), full=False, unit=CENT) == D("66.67")
    assert t(D(100), D(300), D(0), full=False, unit=CENT) == 0
    assert t(D(100), D(300), D(300), full=False, unit=CENT) == D(100)
    assert t(D(100), D(0), D(0), full=True, unit=CENT) == D(100)  # cancelled: all of it


money = st.integers(1, 500_000).map(lambda c: D(c) / 100)  # up to 5,000.00, in cents
money4 = st.integers(1, 50_000_000).map(lambda c: D(c) / 10_000)  # 4 decimal places


@settings(max_examples=300, deadline=None)
@given(paid=money, bonus=money, cuts=st.lists(st.integers(1, 1000), min_size=1, max_size=8))
def test_split_on_the_cent_grid_tracks_the_exact_share(paid: D, bonus: D, cuts: list[int]) -> None:
    """Amounts in whole cents: after every give-back the bonus returned in total is exactly
    the payment's bonus share of what came back, rounded down to the cent."""
    spent = paid + bonus
    back_p = back_b = D(0)
    total = sum(cuts)
    for i, c in enumerate(cuts):
        left = spent - back_p - back_b
        amt = left if i == len(cuts) - 1 else min(left, (spent * c / total).quantize(CENT))
        if amt <= 0:
            continue
        p, b = stored_value_return_split(paid, bonus, back_p, back_b, amt, unit=CENT)
        assert p >= 0 and b >= 0 and p + b == amt
        back_p, back_b = back_p + p, back_b + b
        returned = back_p + back_b
        assert back_b == (bonus * returned / spent).quantize(CENT, rounding="ROUND_FLOOR")
    assert (back_p, back_b) == (paid, bonus)


@settings(max_examples=300, deadline=None)
@given(paid=money4 | st.just(D(0)), bonus=money4, amounts=st.lists(money4, max_size=8))
def test_split_off_the_grid_stays_within_what_was_taken(
    paid: D, bonus: D, amounts: list[D]
) -> None:
    spent = paid + bonus
    back_p = back_b = D(0)
    for a in amounts:
        left = spent - back_p - back_b
        amt = min(a, left)
        if amt <= 0:
            break
        p, b = stored_value_return_split(paid, bonus, back_p, back_b, amt, unit=CENT)
        assert p >= 0 and b >= 0 and p + b == amt
        back_p, back_b = back_p + p, back_b + b
        assert back_p <= paid and back_b <= bonus
    left = spent - back_p - back_b
    if left > 0:
        p, b = stored_value_return_split(paid, bonus, back_p, back_b, left, unit=CENT)
        assert (back_p + p, back_b + b) == (paid, bonus)


# -- the explicit operation ----------------------------------------------------------------
def _sv(svc: Any, store: Store, customer: str = "c1") -> dict[str, str]:
    with store.connect() as conn:
        return dict(svc.service.customer_loyalty(conn, customer)["stored_value"])


def _pay(svc: Any, customer: str, order_id: str, topup: str, pay: str, key: str) -> Any:
    svc.topup(customer, topup, idempotency_key=f"t-{key}")
    return svc.spend_stored_value(customer, pay, order_id=order_id, idempotency_key=key)


def test_reverse_gives_back_in_proportion_and_never_more(store: Store, make_svc: Make) -> None:
    svc = make_svc(PROGRAM).bound(store)
    s = _pay(svc, "c1", "o1", "100", "120", "s1")  # 100 paid + 50 bonus; pays 100 + 20
    assert (s["from_paid"], s["from_bonus"]) == ("100", "20")
    r = svc.reverse_stored_value_spend("c1", "o1", "30", idempotency_key="r1")
    # 20/120 of 30 = 5 bonus, 25 paid
    assert (r["to_paid"], r["to_bonus"], r["spent"], r["returned"]) == ("25", "5", "120", "30")
    assert r["balances"] == {"paid": "25", "bonus": "35", "pending_bonus": "0"}
    assert svc.reverse_stored_value_spend("c1", "o1", "30", idempotency_key="r1") == {
        **r,
        "replayed": True,
    }
    with pytest.raises(ConflictError) as e:
        svc.reverse_stored_value_spend("c1", "o1", "90.01", idempotency_key="r2")
    assert e.value.code == "stored_value.return_exceeds_spend"
    assert e.value.details == {"spent": "120", "returned": "30", "requested": "90.01"}
    rest = svc.reverse_stored_value_spend("c1", "o1", idempotency_key="r3")  # all that is left
    assert (rest["amount"], rest["to_paid"], rest["to_bonus"]) == ("90", "75", "15")
    assert _sv(svc, store) == {"paid": "100", "bonus": "50", "pending_bonus": "0"}
    with pytest.raises(ConflictError):
        svc.reverse_stored_value_spend("c1", "o1", idempotency_key="r4")
    for cust, oid in (("c1", "o2"), ("c2", "o1")):  # another order, another customer
        with pytest.raises(NotFoundError) as nf:
            svc.reverse_stored_value_spend(cust, oid, idempotency_key="r5")
        assert nf.value.code == "stored_value.spend_not_found"
    with store.connect() as conn:
        e_, a = lt.entries.c, lt.accounts.c
        rows = conn.execute(
            sa.select(a.asset, e_.kind, e_.delta, e_.reference, e_.idempotency_key)
            .select_from(lt.entries.join(lt.accounts, a.account_id == e_.account_id))
            .where(e_.kind == "spend_reversal")
            .order_by(e_.entry_id)
        ).all()
        ops = conn.execute(
            sa.select(lt.operations.c.op_key).where(lt.operations.c.kind == "sv_reverse")
        ).scalars()
        assert sorted(ops) == ["sv_reverse:r1", "sv_reverse:r3"]  # failures stored nothing
    assert [(r.asset, r.delta, r.reference, r.idempotency_key) for r in rows] == [
        ("stored_paid", D(25), "order:o1", "sv_reverse:r1:paid"),
        ("stored_bonus", D(5), "order:o1", "sv_reverse:r1:bonus"),
        ("stored_paid", D(75), "order:o1", "sv_reverse:r3:paid"),
        ("stored_bonus", D(15), "order:o1", "sv_reverse:r3:bonus"),
    ]
    assert_ledger_ok(store)


def test_several_payments_on_one_order_count_together(store: Store, make_svc: Make) -> None:
    svc = make_svc(PROGRAM).bound(store)
    _pay(svc, "c1", "o1", "100", "40", "s1")  # 40 paid
    svc.spend_stored_value("c1", "80", order_id="o1", idempotency_key="s2")  # 60 paid + 20 bonus
    svc.spend_stored_value("c1", "10", order_id="o9", idempotency_key="s3")  # another order
    r = svc.reverse_stored_value_spend("c1", "o1", idempotency_key="r")
    assert (r["spent"], r["to_paid"], r["to_bonus"]) == ("120", "100", "20")
    assert_ledger_ok(store)


# -- order events --------------------------------------------------------------------------
def test_refund_events_give_back_the_refunded_share(store: Store, make_svc: Make) -> None:
    svc = make_svc(PROGRAM).bound(store)
    svc.apply_order(order("o1", amount="300"))
    _pay(svc, "c1", "o1", "100", "120", "s1")  # 100 paid + 20 bonus
    part = svc.apply_order(order("o1", amount="300", status="partially_refunded", refunded="100"))
    # a third of 120 = 40: 20/120 of it bonus (6.66… → 6.66), the rest paid
    assert part["stored_value_returned"] == {"amount": "40", "paid": "33.34", "bonus": "6.66"}
    # an operator gives back 10 more by hand; the full refund gives back the rest, exactly
    svc.reverse_stored_value_spend("c1", "o1", "10", idempotency_key="r")
    full = svc.apply_order(order("o1", amount="300", status="refunded", refunded="300"))
    assert full["stored_value_returned"]["amount"] == "70"
    assert _sv(svc, store) == {"paid": "100", "bonus": "50", "pending_bonus": "0"}
    # a late, older state gives nothing back (what it would give came back already)
    stale = svc.apply_order(order("o1", amount="300", status="partially_refunded", refunded="150"))
    assert stale["ignored"] == "stale" and "stored_value_returned" not in stale
    assert_ledger_ok(store)


def test_hand_given_back_share_is_counted_by_the_event(store: Store, make_svc: Make) -> None:
    svc = make_svc(PROGRAM).bound(store)
    svc.apply_order(order("o1", amount="200"))
    _pay(svc, "c1", "o1", "100", "100", "s1")  # all paid
    svc.reverse_stored_value_spend("c1", "o1", "30", idempotency_key="r")
    half = svc.apply_order(order("o1", amount="200", status="partially_refunded", refunded="100"))
    assert half["stored_value_returned"] == {"amount": "20", "paid": "20", "bonus": "0"}
    assert _sv(svc, store)["paid"] == "50"  # 100 topped up, 100 paid, 30 + 20 back
    assert_ledger_ok(store)


def test_an_order_first_seen_cancelled_still_gives_back(store: Store, make_svc: Make) -> None:
    svc = make_svc(PROGRAM).bound(store)
    _pay(svc, "c1", "o1", "100", "90", "s1")  # 90 paid
    r = svc.apply_order(order("o1", amount="90", status="cancelled"))
    assert r["ignored"] == "not_paid" and r["points_earned"] == "0"
    assert r["stored_value_returned"] == {"amount": "90", "paid": "90", "bonus": "0"}
    assert svc.apply_order(order("o1", amount="90", status="cancelled"))["replayed"] is True
    assert _sv(svc, store)["paid"] == "100"
    assert_ledger_ok(store)


def test_a_payment_recorded_after_the_refund_comes_back_at_once(
    store: Store, make_svc: Make
) -> None:
    """The till reported the refund before the stored-value payment: the payment gives back
    the refunded share itself, and the order's later events count it."""
    svc = make_svc(PROGRAM).bound(store)
    svc.apply_order(order("o1", amount="300"))
    svc.apply_order(order("o1", amount="300", status="partially_refunded", refunded="100"))
    s = _pay(svc, "c1", "o1", "100", "120", "s1")  # 100 paid + 20 bonus, after the refund
    assert (s["from_paid"], s["from_bonus"]) == ("100", "20")
    # a third of 120, as the refund event would have given had the payment come first
    assert s["returned_at_once"] == {"amount": "40", "paid": "33.34", "bonus": "6.66"}
    assert s["balances"] == {"paid": "33.34", "bonus": "36.66", "pending_bonus": "0"}
    again = _pay(svc, "c1", "o1", "100", "120", "s1")
    assert again == {**s, "replayed": True}  # the same answer, nothing given twice
    full = svc.apply_order(order("o1", amount="300", status="refunded", refunded="300"))
    assert full["stored_value_returned"]["amount"] == "80"  # the rest, counted once
    assert _sv(svc, store) == {"paid": "100", "bonus": "50", "pending_bonus": "0"}
    assert_ledger_ok(store)


@pytest.mark.parametrize("status", ["refunded", "cancelled"])
def test_a_payment_on_an_order_refunded_in_full_all_comes_back(
    store: Store, make_svc: Make, status: str
) -> None:
    svc = make_svc(PROGRAM).bound(store)
    svc.apply_order(order("o1", amount="90", status=status, refunded="90"))
    s = _pay(svc, "c1", "o1", "100", "90", "s1")
    assert s["returned_at_once"] == {"amount": "90", "paid": "90", "bonus": "0"}
    assert _sv(svc, store)["paid"] == "100"
    assert_ledger_ok(store)


def test_a_payment_gives_nothing_back_without_a_refund_of_its_order(
    store: Store, make_svc: Make
) -> None:
    svc = make_svc(PROGRAM).bound(store)
    svc.apply_order(order("o1", amount="300"))  # paid, not refunded
    svc.apply_order(order("o2", "c2", amount="300", status="refunded", refunded="300"))
    assert _pay(svc, "c1", "o1", "100", "50", "s1")["returned_at_once"] is None
    assert _pay(svc, "c1", "o2", "100", "50", "s2")["returned_at_once"] is None  # c2's order
    assert _pay(svc, "c1", "o3", "100", "50", "s3")["returned_at_once"] is None  # unknown
    doc = {**PROGRAM, "stored_value": {**PROGRAM["stored_value"], "return_on_order_refund": False}}
    off = make_svc(doc).bound(store)
    off.apply_order(order("o4", amount="100", status="refunded", refunded="100"))
    assert _pay(off, "c1", "o4", "100", "50", "s4")["returned_at_once"] is None
    assert_ledger_ok(store)


def test_the_program_can_leave_stored_value_to_the_operator(store: Store, make_svc: Make) -> None:
    doc = {**PROGRAM, "stored_value": {**PROGRAM["stored_value"], "return_on_order_refund": False}}
    svc = make_svc(doc).bound(store)
    svc.apply_order(order("o1", amount="100"))
    _pay(svc, "c1", "o1", "100", "100", "s1")
    r = svc.apply_order(order("o1", amount="100", status="refunded", refunded="100"))
    assert "stored_value_returned" not in r
    assert svc.reverse_stored_value_spend("c1", "o1", idempotency_key="r")["amount"] == "100"
    assert_ledger_ok(store)


def test_batch_gives_back_as_one_by_one(store: Store, make_svc: Make) -> None:
    """Two lanes: the refund events one by one and in one batch, after the same payments."""
    results = {}
    for lane in ("one", "batch"):
        svc = make_svc(PROGRAM)
        bound = svc.bound(store)
        c = f"{lane}-c"
        evs = [order(f"{lane}-o{i}", c, amount=str(100 + 10 * i)) for i in range(3)]
        bound.apply_orders(evs)
        _pay(bound, c, f"{lane}-o0", "100", "100", f"{lane}-s0")
        bound.spend_stored_value(c, "45.5", order_id=f"{lane}-o1", idempotency_key=f"{lane}-s1")
        refunds = [
            dict(evs[0], status="partially_refunded", refunded_amount=D("33.33")),
            dict(evs[1], status="refunded", refunded_amount=evs[1]["amount"]),
            dict(evs[0], status="partially_refunded", refunded_amount=D("66.67")),
            dict(evs[0], status="partially_refunded", refunded_amount=D("50")),  # stale
            dict(evs[0], status="cancelled", refunded_amount=evs[0]["amount"]),
        ]
        if lane == "one":
            out = [bound.apply_order(ev) for ev in refunds]
        else:
            out = bound.apply_orders(refunds)
        results[lane] = [r.get("stored_value_returned") for r in out]
        with store.connect() as conn:
            results[f"{lane}-sv"] = svc.customer_loyalty(conn, c)["stored_value"]
    assert results["one"] == results["batch"]
    assert [r and r["amount"] for r in results["one"]] == ["33.33", "45.5", "33.34", None, "33.33"]
    assert (
        results["one-sv"]
        == results["batch-sv"]
        == {
            "paid": "100",
            "bonus": "50",
            "pending_bonus": "0",
        }
    )
    assert_ledger_ok(store)
