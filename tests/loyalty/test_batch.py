"""The batch path: ``apply_orders`` in random batch sizes == the events one by one.

Three lanes replay the same random stream of order events (paid, partial and full refunds,
cancellations, orders first seen refunded, stale states, replays, other currencies, several
events of one customer in a batch) interleaved with other operations (points spent, coupons
redeemed, a paid membership bought, a referral registered, orders paid with stored value —
which refunds give back —, the clock moving):

- ``reference``: the sequential implementation as it was before batching
  (``reference_orders.ReferenceLoyalty``), one event per transaction;
- ``single``: ``apply_order`` one event per transaction;
- ``batch``: ``apply_orders`` over random slices of the stream, one transaction per slice.

The three ledgers must be identical up to ids, random coupon codes and the lane's id prefix:
balances, entries per account (keys, deltas, balances before/after, kinds, lots), lots,
orders, members, stamp cards, coupons and their events, referrals, stored results, and
every returned result. ``verify_ledger`` finds nothing, and replaying the whole stream as
one batch (and in slices) returns the stored results and changes nothing.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from huitouke.errors import HuitoukeError, InputError
from huitouke.loyalty import LoyaltyService, Program, load_program, verify_ledger
from huitouke.loyalty import tables as lt
from huitouke.store.db import Store

from .conftest import T0, Clock, example, order
from .reference_orders import ReferenceLoyalty

_run = itertools.count()
#: small numbers so that cards complete, limits bite and tiers move within a short stream
SMALL: dict[str, Any] = {
    "id": "small",
    "currency": "CNY",
    "earn": {"points_per_unit": 1, "unit": 10, "per_order": 2},
    "points_expiry": {"mode": "rolling_days", "days": 60},
    "tiers": {
        "metric": "orders",
        "window": "rolling",
        "window_days": 30,
        "grace_days": 5,
        "levels": [
            {"id": "a", "threshold": 0},
            {"id": "b", "threshold": 3, "benefits": {"points_multiplier": 2}},
        ],
    },
    "coupon_templates": [
        {"id": "t1", "kind": "fixed", "value": 5, "valid_days": 30},
        {"id": "sb", "kind": "spend_back", "share": 0.1, "valid_days": 30},
        {"id": "lim", "kind": "fixed", "value": 1, "valid_days": 30, "max_per_customer": 2},
    ],
    "order_coupons": [{"template": "sb"}, {"template": "lim"}],
    "stamp_cards": [
        {
            "id": "s",
            "per": "order",
            "size": 3,
            "expire_days": 20,
            "rewards": [{"stamps": 1, "template": "t1"}, {"stamps": 3, "template": "t1"}],
        }
    ],
    "referral": {"referred_reward": {"points": 5}, "refund_window_days": 3},
    # a bonus at once, spent first: stored-value payments take both balances
    "stored_value": {
        "spend_order": "bonus_first",
        "topup_rules": [{"min_amount": 50, "bonus_percent": 30}],
    },
}


def program_of(name: str) -> Program:
    prog = load_program(SMALL) if name == "small" else example(name)
    return prog if prog.timezone else prog.in_store_zone("Asia/Shanghai")


LANES = ("reference", "single", "batch")


def make_stream(rng: random.Random, program: str) -> list[tuple[Any, ...]]:
    """Order events and boundary operations (spend, redeem, membership, tick)."""
    customers = [f"k{i}" for i in range(rng.randint(2, 4))]
    items: list[tuple[Any, ...]] = [("referral", customers[0], customers[1])]
    orders: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    offset = timedelta(0)
    for i in range(rng.randint(20, 60)):
        r = rng.random()
        # about one visit a day (stamps per visit day), in the past of the clock
        at = T0 + offset - timedelta(days=90) + timedelta(hours=36 * i + rng.randint(0, 20))
        if r < 0.45 or not orders:
            amount = Decimal(rng.choice([30, 60, 100, 120, 250, 480, 900, 1500, 3100]))
            status, refunded = "paid", Decimal(0)
            x = rng.random()
            if x < 0.06:
                status, refunded = "refunded", amount
            elif x < 0.1:
                status = "cancelled"
            elif x < 0.15:
                status, refunded = "partially_refunded", (amount / 3).quantize(Decimal("0.01"))
            ev = order(f"o{i}", rng.choice(customers), amount, at=at, status=status)
            ev["refunded_amount"] = refunded
            if rng.random() < 0.05:
                ev["currency"] = "USD"
            orders.append(ev)
        elif r < 0.65:
            base = rng.choice(orders)
            part = Decimal(rng.choice([10, 25, 50, 75, 90])) / 100
            ev = dict(base, status="partially_refunded")
            ev["refunded_amount"] = (base["amount"] * part).quantize(Decimal("0.01"))
        elif r < 0.77:
            base = rng.choice(orders)
            ev = dict(base, status=rng.choice(["refunded", "cancelled"]))
            ev["refunded_amount"] = base["amount"]
        elif r < 0.8 and events:
            ev = dict(rng.choice(events))  # a replay
        else:
            op = rng.random()
            if op < 0.35:
                items.append(("spend", rng.choice(customers), rng.choice([1, 1, 2, 3])))
            elif op < 0.47:
                items.append(("redeem", rng.choice(customers), f"x{i}"))
            elif op < 0.59 and program == "shop":
                items.append(("membership", rng.choice(customers), f"m{i}"))
            elif op < 0.82:  # pay (part of) an order with stored value, topped up first
                base = rng.choice(orders)
                topup = rng.choice(["50", "100", "137.5"])
                pay = rng.choice(["20", "33.33", "47.5", "80.01"])
                items.append(("sv", base["customer_id"], base["order_id"], topup, pay, f"v{i}"))
            else:
                days = rng.choice([1, 3, 20, 120])
                offset += timedelta(days=days)
                items.append(("tick", days))
            continue
        events.append(ev)
        items.append(("order", ev))
    return items


def _prefixed(ev: dict[str, Any], p: str) -> dict[str, Any]:
    return dict(ev, order_id=p + ev["order_id"], customer_id=p + ev["customer_id"])


def run_lane(
    store: Store,
    svc: LoyaltyService,
    clock: Clock,
    items: list[tuple[Any, ...]],
    p: str,
    lane: str,
    rng: random.Random,
) -> list[Any]:
    """Run the stream; returns every outcome (results or error codes), in order."""
    clock.t = T0
    out: list[Any] = []
    pending: list[dict[str, Any]] = []

    def flush() -> None:
        while pending:
            n = rng.choice([1, 2, 3, 5, 8, len(pending)])
            chunk, pending[:] = pending[:n], pending[n:]
            with store.begin() as conn:
                out.extend(svc.apply_orders(conn, chunk))

    for item in items:
        kind = item[0]
        if kind == "order":
            ev = _prefixed(item[1], p)
            if lane == "batch":
                pending.append(ev)
                continue
            with store.begin() as conn:
                out.append(svc.apply_order(conn, ev))
            continue
        flush()
        try:
            with store.begin() as conn:
                out.append(_boundary(svc, conn, clock, item, p))
        except HuitoukeError as exc:
            out.append({"error": exc.code})
    flush()
    return out


def _boundary(
    svc: LoyaltyService, conn: sa.Connection, clock: Clock, item: tuple[Any, ...], p: str
) -> Any:
    kind = item[0]
    if kind == "tick":
        clock.advance(days=item[1])
        return {"tick": item[1]}
    if kind == "referral":
        code = svc.referral_code(conn, p + item[1])["code"]
        return svc.register_referral(conn, p + item[2], code)
    if kind == "spend":  # spend a share of the points (debts appear on later refunds)
        bal = Decimal(svc.balances(conn, p + item[1]).get("points", "0"))
        take = (bal / item[2]).to_integral_value()
        if take <= 0:
            return {"spent": "0"}
        return svc.adjust_points(
            conn, p + item[1], -take, reason="spend", idempotency_key=f"{p}spend{clock.t}{take}"
        )
    if kind == "redeem":  # the customer's oldest issued coupon, on a large order
        c = lt.coupons.c
        code = conn.execute(
            sa.select(c.code)
            .where(c.holder_id == p + item[1], c.status == "issued")
            .order_by(c.issued_at, c.issue_key)
            .limit(1)
        ).scalar()
        if code is None:
            return {"redeemed": None}
        clock.advance(days=2)  # past any delay_days
        return svc.redeem_coupon(
            conn, code, order_id=p + item[2], customer_id=p + item[1], order_amount="5000"
        )
    if kind == "sv":
        _, customer, order_id, topup, pay, key = item
        svc.topup(conn, p + customer, topup, idempotency_key=p + key)
        return svc.spend_stored_value(
            conn, p + customer, pay, order_id=p + order_id, idempotency_key=p + key
        )
    if kind == "membership":
        return svc.buy_membership(conn, p + item[1], "plus_month", idempotency_key=p + item[2])
    raise AssertionError(kind)  # pragma: no cover


# -- snapshot ------------------------------------------------------------------------------
def snapshot(store: Store, p: str) -> dict[str, Any]:
    """The lane's whole loyalty state, with ids, random codes and the prefix normalised."""
    with store.connect() as conn:
        a, e, lo, o = lt.accounts.c, lt.entries.c, lt.lots.c, lt.orders.c
        like = f"{p}%"
        accts = {
            r.account_id: (r.customer_id, r.asset, r.balance)
            for r in conn.execute(sa.select(lt.accounts).where(a.customer_id.like(like)))
        }
        lots = conn.execute(
            sa.select(lt.lots).where(lo.account_id.in_(list(accts))).order_by(lo.lot_id)
        ).all()
        lot_sig: dict[int, tuple[Any, ...]] = {}
        lots_out: dict[Any, list[Any]] = {}
        for r in lots:
            key = accts[r.account_id][:2]
            lst = lots_out.setdefault(key, [])
            lot_sig[r.lot_id] = (*key, len(lst))
            lst.append((r.amount, r.remaining, r.reference, r.earned_at, r.expires_at))
        entries: dict[Any, list[Any]] = {}
        for r in conn.execute(
            sa.select(lt.entries).where(e.account_id.in_(list(accts))).order_by(e.entry_id)
        ):
            entries.setdefault(accts[r.account_id][:2], []).append(
                (
                    _lot_key(r.idempotency_key, lot_sig),
                    r.delta,
                    r.balance_before,
                    r.balance_after,
                    r.kind,
                    r.reference,
                    lot_sig.get(r.lot_id) if r.lot_id is not None else None,
                    r.expires_at,
                    r.created_at,
                )
            )
        orders = {}
        for r in conn.execute(sa.select(lt.orders).where(o.customer_id.like(like))):
            d = dict(r._mapping)
            d["points_lot_id"] = lot_sig.get(d["points_lot_id"]) if d["points_lot_id"] else None
            d["stamps"] = {
                k: {**v, "lot_id": lot_sig.get(v["lot_id"]) if v.get("lot_id") else None}
                for k, v in (d["stamps"] or {}).items()
            }
            orders[d["order_id"]] = d
        members = {
            r.customer_id: {k: v for k, v in r._mapping.items() if k != "referral_code"}
            for r in conn.execute(sa.select(lt.members).where(lt.members.c.customer_id.like(like)))
        }
        cards = [
            dict(r._mapping)
            for r in conn.execute(
                sa.select(lt.stamp_cards)
                .where(lt.stamp_cards.c.customer_id.like(like))
                .order_by(lt.stamp_cards.c.customer_id, lt.stamp_cards.c.card_id)
            )
        ]
        cc = lt.coupons.c
        coupons = {
            r.issue_key: dict(r._mapping)
            for r in conn.execute(sa.select(lt.coupons).where(cc.issued_to.like(like)))
        }
        codes = {d["code"]: f"<{k.replace(p, '')}>" for k, d in coupons.items()}
        ce = lt.coupon_events.c
        events: dict[str, list[Any]] = {}
        for r in conn.execute(
            sa.select(lt.coupon_events).where(ce.code.in_(list(codes))).order_by(ce.event_id)
        ):
            events.setdefault(codes[r.code], []).append(
                {k: v for k, v in r._mapping.items() if k != "event_id"}
            )
        refs = [
            {k: v for k, v in r._mapping.items() if k != "code"}
            for r in conn.execute(
                sa.select(lt.referrals).where(lt.referrals.c.referred_id.like(like))
            )
        ]
        ops = {
            r.op_key: r.result
            for r in conn.execute(
                sa.select(lt.operations).where(lt.operations.c.op_key.like(f"order:{p}%"))
            )
        }
        state = {
            "balances": {v[:2]: v[2] for v in accts.values()},
            "entries": entries,
            "lots": lots_out,
            "orders": orders,
            "members": members,
            "cards": cards,
            "coupons": coupons,
            "coupon_events": events,
            "referrals": refs,
            "results": ops,
        }
        return normalise(state, p, codes)


UNORDERED = ("coupons_voided", "coupons_kept", "coupons_adjusted")


def _lot_key(key: str, lot_sig: dict[int, tuple[Any, ...]]) -> str:
    """Entry keys of lot debits end in ``#<lot id>``: name the lot by its place instead."""
    head, sep, tail = key.rpartition("#")
    return f"{head}#{lot_sig[int(tail)]}" if sep and tail.isdigit() else key


def normalise(v: Any, p: str, codes: dict[str, str]) -> Any:
    if isinstance(v, str):
        if v in codes:
            return codes[v]
        for code, name in codes.items():  # codes inside keys ("redeem:CODE:order")
            if code in v:
                v = v.replace(code, name)
        return v.replace(p, "")
    if isinstance(v, dict):
        out = {normalise(k, p, codes): normalise(x, p, codes) for k, x in v.items()}
        for k in UNORDERED:  # listed in code order, and codes are random
            if isinstance(out.get(k), list):
                out[k] = sorted(out[k], key=repr)
        return out
    if isinstance(v, list | tuple):
        return type(v)(normalise(x, p, codes) for x in v)
    return v


def coupon_codes(store: Store, p: str) -> dict[str, str]:
    with store.connect() as conn:
        c = lt.coupons.c
        return {
            r.code: f"<{r.issue_key.replace(p, '')}>"
            for r in conn.execute(sa.select(c.code, c.issue_key).where(c.issued_to.like(f"{p}%")))
        }


def check_stream(store: Store, program: str, seed: int) -> None:
    run = next(_run)
    rng = random.Random(seed)
    items = make_stream(rng, program)
    prog = program_of(program)
    clock = Clock()
    svcs: dict[str, LoyaltyService] = {
        "reference": ReferenceLoyalty(prog, clock=clock),
        "single": LoyaltyService(prog, clock=clock),
        "batch": LoyaltyService(prog, clock=clock),
    }
    outs, snaps = {}, {}
    for lane in LANES:
        p = f"r{run}{lane[0]}-"
        raw = run_lane(store, svcs[lane], clock, items, p, lane, random.Random(seed + 1))
        outs[lane] = normalise(raw, p, coupon_codes(store, p))
        snaps[lane] = snapshot(store, p)
    with store.connect() as conn:
        assert verify_ledger(conn) == []
    for lane in ("single", "batch"):
        assert snaps[lane] == snaps["reference"], lane
        assert outs[lane] == outs["reference"], lane
    # replaying the stream (as one batch, then in slices) returns the stored results
    p = f"r{run}b-"
    evs = [_prefixed(it[1], p) for it in items if it[0] == "order"]
    svc = svcs["batch"]
    with store.begin() as conn:
        again = svc.apply_orders(conn, evs)
    assert all(r["replayed"] for r in again)
    stored = snaps["batch"]["results"]
    codes = coupon_codes(store, p)
    for ev, r in zip(evs, normalise(again, p, codes), strict=True):
        assert {k: v for k, v in r.items() if k != "replayed"} in stored.values(), ev
    with store.begin() as conn:
        for i in range(0, len(evs), 4):
            assert all(r["replayed"] for r in svc.apply_orders(conn, evs[i : i + 4]))
    assert snapshot(store, p) == snaps["batch"]


SETTINGS = settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=False,
)


@pytest.mark.parametrize("program", ["small", "hotpot", "shop"])
@SETTINGS
@given(seed=st.integers(0, 2**31))
def test_batch_equals_one_by_one(store: Store, program: str, seed: int) -> None:
    check_stream(store, program, seed)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_batch_equals_one_by_one_fixed_seeds(store: Store, seed: int) -> None:
    """Fixed seeds on the cafe program (stamps per order, a 3-step ladder)."""
    check_stream(store, "cafe", seed)


def test_one_customer_whole_story_in_one_batch(
    store: Store, make_svc: Callable[[Any], LoyaltyService]
) -> None:
    """Paid, a ladder of stamps, a tier upgrade, a partial then a full refund of an order of
    the same batch, a replay inside the batch: all in one apply_orders call."""
    svc = make_svc("hotpot")
    day = timedelta(days=1)
    evs = [order(f"o{i}", "c1", "400", at=T0 - 10 * day + i * day) for i in range(5)]
    evs.append(dict(evs[1], status="partially_refunded", refunded_amount=Decimal("100")))
    evs.append(dict(evs[1], status="refunded", refunded_amount=Decimal("400")))
    evs.append(dict(evs[0]))  # replay inside the batch
    evs.append(dict(evs[5]))  # a stale state after the full refund: replayed (same key)
    with store.begin() as conn:
        res = svc.apply_orders(conn, evs)
    assert [r["replayed"] for r in res] == [False] * 7 + [True, True]
    assert res[7] == {**res[0], "replayed": True}
    # 5 visits: rewards at 2 and 4 stamps, spend 2000 → silver at the 3rd order (1200)
    assert [len(r["coupons_issued"]) for r in res[:5]] == [0, 1, 0, 1, 0]
    assert res[2]["tier"] == {"from": "member", "to": "silver", "metric": "1200"}
    assert res[5]["points_reversed"] == "10"
    assert res[6]["points_reversed"] == "30"
    assert res[6]["stamps"] == [{"card": "visits", "reversed": 1, "debt_added": 0}]
    with store.connect() as conn:
        assert verify_ledger(conn) == []
        bal = svc.balances(conn, "c1")
    # 40 + 40 + 48 + 48 + 48 (silver ×1.2 from the 4th order on; the 3rd earned before
    # its own upgrade) − 40 reversed
    assert bal["points"] == str(40 + 40 + 40 + 48 + 48 - 40)
    assert bal["stamps:visits"] == "4"


def test_bad_event_names_its_index(store: Store, make_svc: Callable[[Any], LoyaltyService]) -> None:
    svc = make_svc("hotpot")
    evs = [order("o1", "c1", "100"), dict(order("o2", "c1", "100"), amount="ten")]
    with pytest.raises(InputError) as ei, store.begin() as conn:
        svc.apply_orders(conn, evs)
    assert "orders[1].amount" in ei.value.message
    assert ei.value.details["index"] == 1
    with store.begin() as conn:
        assert svc.apply_orders(conn, []) == []


def test_concurrent_batches_keep_the_ledger_exact(
    store: Store, make_svc: Callable[[Any], LoyaltyService]
) -> None:
    """Threads sending the same events in different batches and orders: each event applies
    once, the ledger verifies, and the totals are what one sequential pass gives."""
    import threading

    svc = make_svc(SMALL)
    bound = svc.bound(store)
    events = [order(f"o{i}", f"c{i % 4}", str(20 + i)) for i in range(40)]
    refunds = [
        order(f"o{i}", f"c{i % 4}", str(20 + i), status="refunded", refunded=str(20 + i))
        for i in range(0, 40, 5)
    ]
    errors: list[BaseException] = []

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        stream = events + refunds
        rng.shuffle(stream)
        while stream:
            n = rng.randint(1, 7)
            chunk, stream = stream[:n], stream[n:]
            try:
                bound.apply_orders(chunk)
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

    threads = [threading.Thread(target=worker, args=(s,)) for s in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    with store.connect() as conn:
        assert verify_ledger(conn) == []
        n_ops = conn.execute(sa.select(sa.func.count()).select_from(lt.operations)).scalar_one()
        n_orders = conn.execute(sa.select(sa.func.count()).select_from(lt.orders)).scalar_one()
    assert n_orders == 40
    assert n_ops == len(events) + len(refunds)
