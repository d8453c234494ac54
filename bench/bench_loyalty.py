"""Order events per second through the loyalty earn rules, with 1M members.

Target (issue "Loyalty ledger and the REST service"): >= 1,000 order events/s on SQLite and
on PostgreSQL with 1,000,000 members. Every event goes through the whole order use case:
idempotency claim, points (lot + entry + balance), hotpot stamp card, tier re-evaluation
over the rolling window, order facts, stored result. The store is pre-populated with N
customers, each with a loyalty member row and a points account holding a lot, by bulk inserts.

Side by side in one run, on the same 1M-member store:

- ``single``: ``apply_order``, one event per unit of work on a long-lived connection (what
  ``POST /v1/orders`` does for each request) — the baseline;
- ``batch``: ``apply_orders`` over batches of ``--batch`` events, one unit of work each;

and the batch path's ratio to the single path and to the 1,000 events/s target. Both streams
draw customers at random from the members, so a batch holds some repeated customers.

``--rest`` measures the same two paths through HTTP instead: a real ``huitouke serve``
process (one worker) on the populated store, the hotpot program saved as the service's
program, and one client sending one request at a time — ``POST /v1/orders/batch`` with
``--batch`` events per request against ``POST /v1/orders``, one event per request (each
request one unit of work: the order upsert plus its loyalty effects). Then ``--clients``
concurrent clients post single events (``POST /v1/orders``, closed loop, the lean load
generator of ``bench_service``), side by side with group commit on (the default) and off
(``HUITOUKE_ORDERS_GROUP_COMMIT_MAX=1``: one unit of work per event): events/s and p99.

    python bench/bench_loyalty.py                       # SQLite + PostgreSQL, 1M members
    python bench/bench_loyalty.py --quick               # 50k members, fewer events
    python bench/bench_loyalty.py --quick --rest        # the REST endpoints, 50k members
    python bench/bench_loyalty.py --rest --clients 50   # ... 1M members, 50 concurrent clients
    HUITOUKE_BENCH_POSTGRES_URL=postgresql://postgres@127.0.0.1:5432/postgres python bench/bench_loyalty.py
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import insert

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _bench_common import Server, drive, pg_database, run_async, settle
from huitouke.loyalty import LoyaltyService, load_program
from huitouke.loyalty import tables as lt
from huitouke.store import tables as st
from huitouke.store.db import Store

EXAMPLE = (
    Path(__file__).resolve().parents[1]
    / "src"
    / "huitouke"
    / "loyalty"
    / "examples"
    / "hotpot.yaml"
)
T0 = datetime(2026, 11, 1, 4, 0, tzinfo=UTC)
TARGET = 1000.0


def populate(store: Store, n: int, chunk: int = 20_000) -> float:
    """Bulk-insert n customers, members and funded points accounts; returns seconds."""
    t = time.perf_counter()
    now = T0 - timedelta(days=30)
    for start in range(0, n, chunk):
        ids = [f"m{i:07d}" for i in range(start, min(n, start + chunk))]
        with store.begin() as conn:
            conn.execute(
                insert(st.customers),
                [
                    {
                        "customer_id": c,
                        "phone": None,
                        "tags": [],
                        "attributes": {},
                        "consent": {},
                        "created_at": now,
                        "updated_at": now,
                    }
                    for c in ids
                ],
            )
            conn.execute(
                insert(lt.members),
                [
                    {
                        "customer_id": c,
                        "tier": "member",
                        "tier_since": now,
                        "tier_valid_until": now + timedelta(days=365),
                        "preferences": {},
                        "paid_orders": 1,
                        "created_at": now,
                        "updated_at": now,
                    }
                    for c in ids
                ],
            )
            conn.execute(
                insert(lt.accounts),
                [
                    {
                        "customer_id": c,
                        "asset": "points",
                        "balance": Decimal(100),
                        "updated_at": now,
                    }
                    for c in ids
                ],
            )
            # account ids follow insertion order: the first of this chunk is start + 1
            first = start + 1
            conn.execute(
                insert(lt.lots),
                [
                    {
                        "account_id": first + k,
                        "amount": Decimal(100),
                        "remaining": Decimal(100),
                        "reference": "seed",
                        "earned_at": now,
                        "expires_at": now + timedelta(days=365),
                    }
                    for k in range(len(ids))
                ],
            )
            conn.execute(
                insert(lt.entries),
                [
                    {
                        "idempotency_key": f"seed:{c}",
                        "account_id": first + k,
                        "delta": Decimal(100),
                        "balance_before": Decimal(0),
                        "balance_after": Decimal(100),
                        "kind": "earn",
                        "reference": "seed",
                        "created_at": now,
                    }
                    for k, c in enumerate(ids)
                ],
            )
    return time.perf_counter() - t


def events(n_members: int, n_events: int, seed: int = 7) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    out = []
    for i in range(n_events):
        at = T0 + timedelta(seconds=30 * i)
        out.append(
            {
                "order_id": f"e{seed}-{i}",
                "customer_id": f"m{rng.randrange(n_members):07d}",
                "ordered_at": at,
                "amount": Decimal(rng.randrange(50, 600)),
                "currency": "CNY",
                "status": "paid",
                "refunded_amount": Decimal(0),
            }
        )
    return out


def json_events(evs: list[dict[str, Any]], start: datetime) -> list[dict[str, Any]]:
    """The events as REST bodies, moved to end just before ``start`` (the server's clock is
    the real one, and a future order would fall outside the tier window)."""
    shift = start - (evs[-1]["ordered_at"] + timedelta(minutes=1)) if evs else timedelta(0)
    return [
        {
            **ev,
            "ordered_at": (ev["ordered_at"] + shift).isoformat(),
            "amount": str(ev["amount"]),
            "refunded_amount": str(ev["refunded_amount"]),
        }
        for ev in evs
    ]


def run_events(store: Store, svc: LoyaltyService, evs: list[dict[str, Any]]) -> float:
    """One transaction per event on a long-lived connection (as a pooled service would)."""
    t = time.perf_counter()
    with store.connect() as conn:
        for ev in evs:
            with conn.begin():
                svc.apply_order(conn, ev)
    return len(evs) / (time.perf_counter() - t)


def run_batches(store: Store, svc: LoyaltyService, evs: list[dict[str, Any]], size: int) -> float:
    """``apply_orders`` over consecutive slices of ``size`` events, one transaction each."""
    t = time.perf_counter()
    with store.connect() as conn:
        for i in range(0, len(evs), size):
            with conn.begin():
                res = svc.apply_orders(conn, evs[i : i + size])
            assert not any(r["replayed"] for r in res)
    return len(evs) / (time.perf_counter() - t)


def fresh(backend: str, pg_admin: str | None) -> tuple[Store, Any]:
    if backend == "sqlite":
        d = tempfile.mkdtemp(prefix="huitouke-bench-")
        s = Store(f"sqlite:///{d}/bench.db")
        s.migrate()
        return s, None
    assert pg_admin is not None
    url, drop_db = pg_database(pg_admin, prefix="huitouke_bench_loyalty")
    s = Store(url)
    s.migrate()

    def drop() -> None:
        s.dispose()
        drop_db()

    return s, drop


def bench(
    backend: str, members: int, n_single: int, n_batch: int, size: int, pg_admin: str | None
) -> dict[str, Any]:
    program = load_program(EXAMPLE).in_store_zone("Asia/Shanghai")
    svc = LoyaltyService(program, clock=lambda: T0 + timedelta(days=1))
    out: dict[str, Any] = {"backend": backend, "members": members}
    store, drop = fresh(backend, pg_admin)
    try:
        out["populate_s"] = populate(store, members)
        settle(store)
        run_events(store, svc, events(members, 200, seed=1))  # warm-up
        run_batches(store, svc, events(members, 2 * size, seed=3), size)
        out["single_eps"] = run_events(store, svc, events(members, n_single, seed=2))
        out["batch_eps"] = run_batches(store, svc, events(members, n_batch, seed=4), size)
        from huitouke.loyalty import verify_ledger

        with store.connect() as conn:
            sample = [f"m{i:07d}" for i in range(0, members, max(1, members // 2000))]
            sample += [e["customer_id"] for e in events(members, n_batch, seed=4)[:2000]]
            out["discrepancies"] = len(verify_ledger(conn, customer_ids=sample))
    finally:
        if drop:
            drop()
        else:
            store.dispose()
    return out


def bench_rest(
    backend: str,
    members: int,
    n_single: int,
    n_batch: int,
    size: int,
    pg_admin: str | None,
    clients: int,
    n_concurrent: int,
) -> dict[str, Any]:
    """``POST /v1/orders/batch`` against ``POST /v1/orders`` on a real server process."""
    from huitouke.loyalty import save_program, verify_ledger
    from huitouke.service.apikeys import create_api_key

    out: dict[str, Any] = {"backend": backend, "members": members}
    store, drop = fresh(backend, pg_admin)
    try:
        out["populate_s"] = populate(store, members)
        settle(store)
        now = datetime.now(UTC)
        with store.begin() as conn:
            save_program(conn, load_program(EXAMPLE).model_copy(update={"id": "default"}), now=now)
            key = create_api_key(conn, scope="operator", name="bench", now=now)[1]
        url = store.engine.url.render_as_string(hide_password=False)
        with Server(url) as srv:
            out.update(_rest_runs(srv.base, key, members, n_single, n_batch, size, now))
            out["group"] = _concurrent_singles(srv.base, key, members, clients, n_concurrent, 5)
        with Server(url, env={"HUITOUKE_ORDERS_GROUP_COMMIT_MAX": "1"}) as srv:
            out["alone"] = _concurrent_singles(srv.base, key, members, clients, n_concurrent, 6)
        with store.connect() as conn:
            sample = [e["customer_id"] for e in events(members, n_batch, seed=4)[:2000]]
            sample += [e["customer_id"] for e in events(members, n_concurrent, seed=5)[:1000]]
            out["discrepancies"] = len(verify_ledger(conn, customer_ids=sample))
    finally:
        if drop:
            drop()
        else:
            store.dispose()
    return out


def _rest_runs(
    base: str, key: str, members: int, n_single: int, n_batch: int, size: int, now: datetime
) -> dict[str, float]:
    import httpx

    out: dict[str, float] = {}
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=base, headers=headers, timeout=120) as client:

        def single(evs: list[dict[str, Any]]) -> float:
            t = time.perf_counter()
            for ev in evs:
                r = client.post("/v1/orders", json=ev)
                assert r.status_code == 200, r.text
            return len(evs) / (time.perf_counter() - t)

        def batched(evs: list[dict[str, Any]]) -> float:
            t = time.perf_counter()
            for i in range(0, len(evs), size):
                r = client.post("/v1/orders/batch", json={"events": evs[i : i + size]})
                assert r.status_code == 200, r.text
                assert r.json()["replayed"] == 0
            return len(evs) / (time.perf_counter() - t)

        single(json_events(events(members, 100, seed=1), now))  # warm-up
        batched(json_events(events(members, 2 * size, seed=3), now))
        out["single_eps"] = single(json_events(events(members, n_single, seed=2), now))
        t = time.perf_counter()
        out["batch_eps"] = batched(json_events(events(members, n_batch, seed=4), now))
        out["batch_request_s"] = (time.perf_counter() - t) / -(-n_batch // size)
    return out


def _concurrent_singles(
    base: str, key: str, members: int, clients: int, n: int, seed: int
) -> dict[str, float]:
    """``n`` single events from ``clients`` concurrent clients (closed loop): events/s, p99."""
    now = datetime.now(UTC)
    warm = [("POST", "/v1/orders", ev) for ev in json_events(events(members, 200, seed + 100), now)]
    run_async(drive(base, key, warm, clients=clients, rate=None, time_limit=60, name="warm"))
    evs = [("POST", "/v1/orders", ev) for ev in json_events(events(members, n, seed), now)]
    r = run_async(drive(base, key, evs, clients=clients, rate=None, time_limit=600, name="orders"))
    assert r.errors == 0 and r.statuses == {200: n}, (r.errors, r.statuses)
    return {"eps": n / r.seconds, "p50_ms": r.pct(50), "p99_ms": r.pct(99)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--members", type=int, default=1_000_000)
    ap.add_argument("--events", type=int, default=20_000, help="events through apply_orders")
    ap.add_argument("--single-events", type=int, default=1_000, help="events through apply_order")
    ap.add_argument("--batch", type=int, default=500, help="events per apply_orders call")
    ap.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    ap.add_argument("--quick", action="store_true", help="50k members, fewer events")
    ap.add_argument(
        "--rest",
        action="store_true",
        help="through a `huitouke serve` process: POST /v1/orders/batch vs POST /v1/orders",
    )
    ap.add_argument("--clients", type=int, default=50, help="--rest: concurrent clients")
    ap.add_argument(
        "--concurrent-events", type=int, default=10_000, help="--rest: events they post"
    )
    args = ap.parse_args(argv)
    if args.quick:
        args.members, args.events, args.single_events = 50_000, 4_000, 300
        args.concurrent_events = 3_000
    pg = os.environ.get("HUITOUKE_BENCH_POSTGRES_URL") or os.environ.get(
        "HUITOUKE_TEST_POSTGRES_URL"
    )
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    if args.rest:
        return main_rest(args, backends, pg)
    print(
        "| backend | members | apply_orders events/s (batch) | apply_order events/s | "
        "batch vs single | vs target 1,000/s | populate (s) | ledger sample ok |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for b in backends:
        if b == "postgres" and not pg:
            print("| postgres | — | skipped: set HUITOUKE_BENCH_POSTGRES_URL | | | | | |")
            continue
        r = bench(b, args.members, args.single_events, args.events, args.batch, pg)
        ok = r["discrepancies"] == 0
        print(
            f"| {b} | {r['members']:,} | {r['batch_eps']:,.0f} ({args.batch}/call) "
            f"| {r['single_eps']:,.0f} | {r['batch_eps'] / r['single_eps']:.1f}× "
            f"| {r['batch_eps'] / TARGET:.2f}× | {r['populate_s']:.0f} | {'yes' if ok else 'NO'} |",
            flush=True,
        )
    return 0


def main_rest(args: argparse.Namespace, backends: list[str], pg: str | None) -> int:
    rows: list[tuple[str, dict[str, Any]]] = []
    print(
        "| backend | members | POST /v1/orders/batch events/s | s per batch request "
        "| POST /v1/orders events/s | batch vs single | populate (s) | ledger sample ok |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for b in backends:
        if b == "postgres" and not pg:
            print("| postgres | — | skipped: set HUITOUKE_BENCH_POSTGRES_URL | | | | | |")
            continue
        r = bench_rest(
            b,
            args.members,
            args.single_events,
            args.events,
            args.batch,
            pg,
            args.clients,
            args.concurrent_events,
        )
        ok = r["discrepancies"] == 0
        print(
            f"| {b} | {r['members']:,} | {r['batch_eps']:,.0f} ({args.batch}/request) "
            f"| {r['batch_request_s']:.2f} | {r['single_eps']:,.0f} "
            f"| {r['batch_eps'] / r['single_eps']:.1f}× | {r['populate_s']:.0f} "
            f"| {'yes' if ok else 'NO'} |",
            flush=True,
        )
        rows.append((b, r))
    print(
        f"\n{args.clients} concurrent clients, {args.concurrent_events:,} single events each "
        "way (POST /v1/orders, closed loop):\n"
    )
    print(
        "| backend | group commit events/s | p50 / p99 ms | one unit per event events/s "
        "| p50 / p99 ms | group vs one per event |"
    )
    print("|---|---|---|---|---|---|")
    for b, r in rows:
        g, a = r["group"], r["alone"]
        print(
            f"| {b} | {g['eps']:,.0f} | {g['p50_ms']:.0f} / {g['p99_ms']:.0f} | {a['eps']:,.0f} "
            f"| {a['p50_ms']:.0f} / {a['p99_ms']:.0f} | {g['eps'] / a['eps']:.1f}× |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
