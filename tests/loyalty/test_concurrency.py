"""Concurrent redemptions at the ledger level: exactly one success per code, on both backends."""

from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

from huitouke.errors import ConflictError
from huitouke.loyalty import LoyaltyService
from huitouke.store.db import Store

from .conftest import assert_ledger_ok, order

PROGRAM: dict[str, Any] = {
    "id": "p",
    "coupon_templates": [{"id": "t", "kind": "fixed", "value": 10, "valid_days": 30}],
    "earn": {"points_per_unit": 1},
}


def test_many_threads_redeeming_the_same_codes(
    store: Store, make_svc: Callable[[Any], LoyaltyService]
) -> None:
    svc = make_svc(PROGRAM).bound(store)
    n_codes, n_threads, attempts = 20, 8, 40
    codes = [
        svc.issue_coupon("t", f"c{i % 5}", idempotency_key=f"k{i}")["code"] for i in range(n_codes)
    ]
    holder = {code: f"c{i % 5}" for i, code in enumerate(codes)}
    wins: Counter[str] = Counter()
    conflicts: Counter[str] = Counter()
    errors: list[BaseException] = []
    lock = threading.Lock()
    barrier = threading.Barrier(n_threads)

    def worker(t: int) -> None:
        rng = random.Random(t)
        barrier.wait()
        for a in range(attempts):
            code = rng.choice(codes)
            try:
                svc.redeem_coupon(
                    code, order_id=f"t{t}-{a}", customer_id=holder[code], redemption_id=f"t{t}-{a}"
                )
            except ConflictError as exc:
                with lock:
                    conflicts[exc.code] += 1
            except BaseException as exc:  # pragma: no cover - reported below
                with lock:
                    errors.append(exc)
            else:
                with lock:
                    wins[code] += 1

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(n_threads)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    tried = {random.Random(t).choice(codes) for t in range(n_threads)}  # at least these
    assert sum(wins.values()) + sum(conflicts.values()) == n_threads * attempts
    assert set(conflicts) <= {"coupon.already_redeemed"}
    # 320 attempts over 20 codes: every code is tried, and each is won exactly once
    assert tried <= set(wins)
    assert sorted(wins.values()) == [1] * n_codes
    assert_ledger_ok(store)


def test_concurrent_order_events_and_replays_keep_the_ledger_exact(
    store: Store, make_svc: Callable[[Any], LoyaltyService]
) -> None:
    svc = make_svc(PROGRAM).bound(store)
    events = [order(f"o{i}", f"c{i % 3}", str(10 + i)) for i in range(30)]
    refunds = [
        order(f"o{i}", f"c{i % 3}", str(10 + i), status="refunded", refunded=str(10 + i))
        for i in range(0, 30, 3)
    ]
    errors: list[BaseException] = []

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        stream = events + refunds
        rng.shuffle(stream)
        for ev in stream:
            try:
                svc.apply_order(ev)
            except BaseException as exc:  # pragma: no cover
                errors.append(exc)

    threads = [threading.Thread(target=worker, args=(s,)) for s in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    with store.connect() as conn:
        total = sum(
            int(svc.service.customer_loyalty(conn, f"c{k}")["points_balance"]) for k in range(3)
        )
        debts = sum(
            int(svc.service.balances(conn, f"c{k}").get("points_debt", "0")) for k in range(3)
        )
    kept = sum(10 + i for i in range(30) if i % 3)
    assert total - debts == kept
    assert_ledger_ok(store)


def test_concurrent_visits_give_one_stamp_per_day(
    store: Store, make_svc: Callable[[Any], LoyaltyService]
) -> None:
    """Threads recording visits (each its own key) for two customers on three days, in
    interleaved day order: one stamp per customer and local day."""
    from datetime import timedelta

    from .conftest import T0

    svc = make_svc("cafe").bound(store)
    days = [T0 - timedelta(days=d) for d in range(3)]
    errors: list[BaseException] = []
    added: list[int] = []
    lock = threading.Lock()
    barrier = threading.Barrier(4)

    def worker(t: int) -> None:
        barrier.wait()
        for i in range(12):
            day, cust = days[(i + t) % 3], f"c{i % 2}"
            try:
                r = svc.add_stamps(cust, "coffee", idempotency_key=f"{t}-{i}", visited_at=day)
            except BaseException as exc:  # pragma: no cover - reported below
                with lock:
                    errors.append(exc)
                continue
            with lock:
                added.append(r["added"])

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    assert len(added) == 48 and sum(added) == 2 * 3  # two customers, three days
    with store.connect() as conn:
        assert [
            svc.service.customer_loyalty(conn, c)["stamp_cards"][0]["stamps"] for c in ("c0", "c1")
        ] == [3, 3]
    assert_ledger_ok(store)
