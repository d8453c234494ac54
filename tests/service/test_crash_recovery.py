"""Crash safety: SIGKILL the server at random moments while a stream of order events is
being posted (the sender retries what was not acknowledged, as any at-least-once feed
does). Afterwards every account's ledger sums to its cached balance, the state equals that
of a run without crashes, and re-sending the whole stream changes nothing."""

from __future__ import annotations

import random
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from huitouke.loyalty import tables as lt
from huitouke.loyalty.ledger import verify_ledger
from huitouke.store import tables as st
from huitouke.store.db import Store

from .conftest import make_keys
from .live import LiveServer
from .test_orders_api import install_shop_program

KILLS = 3


def event_stream(seed: int = 11, customers: int = 40, orders: int = 120) -> list[dict[str, Any]]:
    """Paid orders over the last 20 days, then partial and full refunds of some of them,
    in time order (a refund always follows its payment)."""
    rng = random.Random(seed)
    start = datetime.now(UTC) - timedelta(days=20)
    timed: list[tuple[datetime, int, dict[str, Any]]] = []
    for i in range(orders):
        at = start + timedelta(minutes=rng.randrange(0, 20 * 24 * 60))
        amount = f"{rng.randrange(2000, 60000) / 100:.2f}"
        base = {
            "order_id": f"o{i:04d}",
            "customer_id": f"c{rng.randrange(customers):03d}",
            "ordered_at": at.isoformat(),
            "amount": amount,
            "currency": "CNY",
        }
        timed.append((at, 0, {**base, "status": "paid"}))
        roll = rng.random()
        later = at + timedelta(hours=rng.randrange(1, 72))
        if roll < 0.3:
            part = f"{float(amount) * rng.choice((0.25, 0.5)):.2f}"
            timed.append(
                (later, 1, {**base, "status": "partially_refunded", "refunded_amount": part})
            )
            if rng.random() < 0.4:
                timed.append((later + timedelta(hours=5), 2, {**base, "status": "refunded"}))
        elif roll < 0.45:
            timed.append((later, 2, {**base, "status": "refunded"}))
    timed.sort(key=lambda x: (x[0], x[1]))
    return [e for _, _, e in timed]


def snapshot(store: Store) -> dict[str, Any]:
    with store.connect() as conn:
        a = lt.accounts.c
        balances = sorted(
            (r.customer_id, r.asset, str(r.balance))
            for r in conn.execute(sa.select(a.customer_id, a.asset, a.balance)).all()
        )
        o = st.orders.c
        orders = sorted(
            (r.order_id, r.customer_id, r.status, str(r.amount), str(r.refunded_amount))
            for r in conn.execute(
                sa.select(o.order_id, o.customer_id, o.status, o.amount, o.refunded_amount)
            ).all()
        )
        c = lt.coupons.c
        coupons = sorted(
            (r.holder_id, r.template_id, r.status, str(r.value))
            for r in conn.execute(sa.select(c.holder_id, c.template_id, c.status, c.value)).all()
        )
        entries = conn.execute(sa.select(sa.func.count()).select_from(lt.entries)).scalar_one()
        tiers = sorted(
            (r.customer_id, r.tier, r.paid_orders)
            for r in conn.execute(
                sa.select(lt.members.c.customer_id, lt.members.c.tier, lt.members.c.paid_orders)
            ).all()
        )
    return {
        "balances": balances,
        "orders": orders,
        "coupons": coupons,
        "entries": entries,
        "tiers": tiers,
    }


class Progress:
    """Acknowledged events, counted across senders."""

    def __init__(self) -> None:
        self.n = 0
        self._lock = threading.Lock()

    def add(self) -> None:
        with self._lock:
            self.n += 1


def post_all(
    base_url: str, key: str, events: list[dict[str, Any]], progress: Progress | None = None
) -> int:
    """Post every event in order; an event whose answer never came is sent again once the
    server answers (at-least-once). Returns how many sends failed in transport."""
    failures = 0
    with httpx.Client(
        base_url=base_url, headers={"Authorization": f"Bearer {key}"}, timeout=30
    ) as client:
        i = 0
        while i < len(events):
            try:
                r = client.post("/v1/orders", json=events[i])
            except httpx.TransportError:
                failures += 1
                deadline = time.monotonic() + 120
                while time.monotonic() < deadline:
                    try:
                        if httpx.get(f"{base_url}/health", timeout=1).status_code == 200:
                            break
                    except httpx.TransportError:
                        time.sleep(0.05)
                continue
            assert r.status_code == 200, (events[i], r.text)
            i += 1
            if progress is not None:
                progress.add()
    return failures


def post_concurrently(
    base_url: str, key: str, events: list[dict[str, Any]], senders: int, progress: Progress
) -> int:
    """``senders`` feeds at once, each with the events of its customers in stream order
    (what matters to a customer's ledger is the order of that customer's events), so the
    server commits events of several feeds together (group commit)."""
    lanes: list[list[dict[str, Any]]] = [[] for _ in range(senders)]
    for ev in events:
        lanes[int(ev["customer_id"][1:]) % senders].append(ev)
    failures = [0] * senders

    def run(i: int) -> None:
        failures[i] = post_all(base_url, key, lanes[i], progress)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(senders)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(failures)


@pytest.mark.slow
@pytest.mark.parametrize("senders", [1, 6], ids=["one-feed", "six-feeds"])
def test_sigkill_mid_stream_loses_nothing_and_replay_changes_nothing(
    store: Store, store_url: str, tmp_path: Path, sqlite_url: str, senders: int
) -> None:
    install_shop_program(store)
    key = make_keys(store).operator
    events = event_stream()
    server = LiveServer(store_url, tmp_path / "server.log").start()
    rng = random.Random(5)
    kills: list[int] = []
    progress = Progress()
    # kill points: after a random number of acknowledged events, plus a random few ms so the
    # kill lands inside the next request (parsing, in the transaction, or answering)
    targets = sorted(rng.sample(range(20, len(events) - 20), KILLS))

    def killer() -> None:
        for target in targets:
            while progress.n < target:
                time.sleep(0.001)
            time.sleep(rng.uniform(0, 0.02))
            server.kill()  # SIGKILL: no shutdown, no rollback by the server, nothing flushed
            kills.append(progress.n)
            server.start()

    k = threading.Thread(target=killer)
    k.start()
    try:
        transport_failures = post_concurrently(server.base_url, key, events, senders, progress)
    finally:
        k.join()
    try:
        assert len(kills) == KILLS and all(n < len(events) for n in kills)
        with store.connect() as conn:
            assert verify_ledger(conn) == []
        crashed = snapshot(store)
        assert len(crashed["orders"]) == len({e["order_id"] for e in events})

        # Re-sending the whole stream changes nothing: not a balance, not an entry.
        post_all(server.base_url, key, events)
        assert snapshot(store) == crashed
        with store.connect() as conn:
            assert verify_ledger(conn) == []
    finally:
        server.stop()

    # The same stream into a fresh SQLite store without crashes gives the same state.
    ref_store = Store(sqlite_url.replace("huitouke.db", "reference.db"))
    ref_store.migrate()
    install_shop_program(ref_store)
    ref_key = make_keys(ref_store).operator
    ref = LiveServer(ref_store.url, tmp_path / "reference.log").start()
    try:
        assert post_all(ref.base_url, ref_key, events) == 0
    finally:
        ref.stop()
    expected = snapshot(ref_store)
    assert crashed["balances"] == expected["balances"]
    assert crashed["orders"] == expected["orders"]
    assert crashed["coupons"] == expected["coupons"]
    assert crashed["tiers"] == expected["tiers"]
    assert crashed["entries"] == expected["entries"]
    # every kill interrupted the feed: at least one request went unanswered each time
    assert transport_failures >= KILLS
