"""Redeem latency of the REST service under 50 concurrent clients on loopback.

Target (issue "Loyalty ledger and the REST service"): redeem p99 < 50 ms with 50 concurrent
clients, on SQLite and on PostgreSQL. A real `huitouke serve` process (uvicorn) runs on
127.0.0.1; a bounded load generator (asyncio on uvloop, one keep-alive connection per
client, at most ``--clients`` requests in flight, a fixed request count and a time limit)
sends:

1. ``health`` — ``GET /health`` (HTTP + framework + one trivial statement): the floor of
   the stack, the baseline the redeem figures are compared with side by side;
2. ``redeem`` — ``POST /v1/coupons/{code}/redeem`` of distinct valid coupons (every one
   succeeds: auth, idempotency claim, coupon checks, conditional update, event row);
3. ``contended`` — redemptions of 100 codes, many attempts each (exactly one per code
   succeeds, the rest get 409 ``coupon.already_redeemed``).

Two load shapes: *closed loop* (each client sends its next request as soon as the last one
returns: the saturation throughput, where latency ≈ clients / throughput) and *open loop*
at fixed arrival rates swept by ``--rates`` (latency measured from each request's scheduled
send time, so a stalled server cannot hide its queue — no coordinated omission). The sweep
reports the highest rate at which the redeem p99 stays under 50 ms.

The store is seeded with ``--members`` customers holding coupons before the run (context:
Open Loyalty's public issues report failures near 69k customers). Both the server's CPU per
request and the whole machine's (server + database + load generator) are reported: unlike
latency, they barely depend on what else the machine is doing.

    python bench/bench_service.py                  # SQLite + PostgreSQL (if configured)
    python bench/bench_service.py --quick          # fewer requests
    HUITOUKE_BENCH_POSTGRES_URL=postgresql://postgres@127.0.0.1:5432/postgres python bench/bench_service.py
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _bench_common import Server, drive, pg_database, run_async, settle
from huitouke.loyalty import tables as lt
from huitouke.loyalty.program import load_program
from huitouke.loyalty.programs_repo import save_program
from huitouke.loyalty.service import LoyaltyService
from huitouke.service.apikeys import create_api_key
from huitouke.settings import Settings
from huitouke.store import tables as st
from huitouke.store.db import Store

EXAMPLE = (
    Path(__file__).resolve().parents[1] / "src" / "huitouke" / "loyalty" / "examples" / "shop.yaml"
)
TARGET_P99_MS = 50.0


# -- store ----------------------------------------------------------------------------------------
def seed(store: Store, members: int, coupons: int) -> tuple[str, list[tuple[str, str]]]:
    """Program, an operator key, ``members`` customers, ``coupons`` fixed coupons (one per
    customer, round robin). Returns (key, [(code, holder)])."""
    now = datetime.now(UTC)
    doc = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    program = load_program({**doc, "id": "default"}).in_store_zone(Settings().timezone)
    with store.begin() as conn:
        save_program(conn, program, now=now)
        key = create_api_key(conn, scope="operator", name="bench", now=now)[1]
    chunk = 20_000
    for start in range(0, members, chunk):
        ids = [f"m{i:07d}" for i in range(start, min(members, start + chunk))]
        with store.begin() as conn:
            conn.execute(
                st.customers.insert(),
                [
                    {
                        "customer_id": c,
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
                lt.members.insert(),
                [
                    {
                        "customer_id": c,
                        "preferences": {},
                        "paid_orders": 0,
                        "created_at": now,
                        "updated_at": now,
                    }
                    for c in ids
                ],
            )
    svc = LoyaltyService(program)
    out: list[tuple[str, str]] = []
    with store.begin() as conn:
        for i in range(coupons):
            holder = f"m{i % members:07d}"
            c = svc.issue_coupon(conn, "fixed20", holder, idempotency_key=f"bench-{i}")
            out.append((c["code"], holder))
    return key, out


# -- server ---------------------------------------------------------------------------------------
def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc), to report CPU per request: a
    figure that, unlike latency, does not depend on what else the machine is running."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    tick = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / tick


def tree_cpu_seconds(pid: int) -> float:
    """CPU time of a process and its live descendants (the uvicorn workers)."""
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        total += cpu_seconds(p)
        for tasks in Path(f"/proc/{p}/task").glob("*/children"):
            with contextlib.suppress(OSError):  # the process may just have exited
                todo += [int(c) for c in tasks.read_text().split()]
    return total


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent busy (Linux /proc/stat): server, database, load
    generator and anything else — the cost of a request on the whole machine."""
    try:
        first = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return float("nan")
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in first[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def run_backend(label: str, url: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    store = Store(url)
    store.migrate()
    n = args.requests
    contended_codes = 100
    warm = 300
    t = time.perf_counter()
    key, coupons = seed(store, args.members, n * (1 + len(args.rates)) + warm + contended_codes)
    print(
        f"[{label}] seeded {args.members} members, {len(coupons)} coupons in {time.perf_counter() - t:.1f}s",
        file=sys.stderr,
    )
    settle(store)
    store.dispose()
    hot = coupons[-contended_codes:]
    pool = iter(coupons[:-contended_codes])

    def redeems(k: int, tag: str) -> list[tuple[str, str, dict[str, Any] | None]]:
        return [
            ("POST", f"/v1/coupons/{c}/redeem", {"order_id": f"{tag}-{c}", "customer_id": h})
            for c, h in (next(pool) for _ in range(k))
        ]

    rows: list[dict[str, Any]] = []
    with Server(url, args.workers) as srv:
        assert srv.proc is not None
        base = srv.base
        health = [("GET", "/health", None)] * n
        rng = random.Random(1)
        contended = [
            ("POST", f"/v1/coupons/{c}/redeem", {"order_id": f"h-{c}-{k}", "customer_id": h})
            for c, h in hot
            for k in range(max(2, n // contended_codes))
        ]
        rng.shuffle(contended)
        # warm-up, not measured: imports, compiled statements, pooled connections — a
        # service that has been up for a while has all of them
        for reqs in (health[:warm], redeems(warm, "w")):
            run_async(
                drive(base, key, reqs, clients=args.clients, rate=None, time_limit=60, name="w")
            )
        phases: list[tuple[str, float | None, str, list[Any]]] = [
            ("closed", None, "health", health),
            ("closed", None, "redeem", redeems(n, "c")),
            ("closed", None, "contended", contended),
        ]
        for rate in args.rates:
            phases.append((f"open@{rate:g}/s", rate, "health", health))
            phases.append((f"open@{rate:g}/s", rate, "redeem", redeems(n, f"r{rate:g}")))
        for shape, rate, name, reqs in phases:
            cpu0, busy0 = tree_cpu_seconds(srv.proc.pid), machine_busy_seconds()
            res = run_async(
                drive(
                    base,
                    key,
                    reqs,
                    clients=args.clients,
                    rate=rate,
                    time_limit=args.time_limit,
                    name=name,
                )
            )
            res.server_cpu_s = tree_cpu_seconds(srv.proc.pid) - cpu0
            res.machine_busy_s = machine_busy_seconds() - busy0
            row = {"backend": label, "shape": shape, "rate": rate, **res.row()}
            rows.append(row)
            print(json.dumps(row), file=sys.stderr)
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--quick", action="store_true", help="1,000 requests per phase, 10k members")
    p.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    p.add_argument("--requests", type=int, default=None, help="requests per phase (default 4,000)")
    p.add_argument(
        "--members", type=int, default=None, help="customers in the store (default 100,000)"
    )
    p.add_argument("--clients", type=int, default=50)
    p.add_argument(
        "--rates",
        default="100,200,300,400",
        help="open-loop arrival rates to sweep, requests/s for all clients together "
        "(comma-separated; empty: closed loop only)",
    )
    p.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    p.add_argument(
        "--pg-synchronous-commit",
        choices=("on", "off", "both"),
        default="on",
        help="PostgreSQL: wait for each commit's WAL flush (on, the durable default) or not "
        "(off: a diagnostic that separates the disk's flush latency from the service's)",
    )
    p.add_argument("--time-limit", type=float, default=120.0, help="seconds per phase")
    p.add_argument("--json", type=Path, default=None, help="write the rows here")
    args = p.parse_args(argv)
    args.rates = [float(x) for x in args.rates.split(",") if x.strip()]
    args.requests = args.requests or (1000 if args.quick else 4000)
    args.members = args.members or (10_000 if args.quick else 100_000)

    rows: list[dict[str, Any]] = []
    if args.backend in ("sqlite", "both"):
        with tempfile.TemporaryDirectory() as tmp:
            rows += run_backend("sqlite", f"sqlite:///{tmp}/bench.db", args)
    if args.backend in ("postgres", "both"):
        admin = os.environ.get("HUITOUKE_BENCH_POSTGRES_URL") or os.environ.get(
            "HUITOUKE_TEST_POSTGRES_URL"
        )
        if not admin:
            print("PostgreSQL skipped: set HUITOUKE_BENCH_POSTGRES_URL", file=sys.stderr)
        else:
            modes = (
                ["on", "off"]
                if args.pg_synchronous_commit == "both"
                else [args.pg_synchronous_commit]
            )
            for mode in modes:
                url, drop = pg_database(admin, synchronous_commit=mode)
                label = "postgres" if mode == "on" else "postgres, synchronous_commit=off"
                try:
                    rows += run_backend(label, url, args)
                finally:
                    drop()

    print(
        f"\nredeem latency, {args.clients} concurrent clients, loopback, {args.workers} worker(s)"
    )
    print(
        "| backend | load | phase | requests | statuses | req/s | p50 ms | p95 ms | p99 ms "
        "| max ms | p99 / 50 ms target | p99 / health p99 | server CPU ms/req | machine CPU ms/req |"
    )
    print("|---|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        base = next(
            (
                x
                for x in rows
                if x["backend"] == r["backend"]
                and x["shape"] == r["shape"]
                and x["phase"] == "health"
            ),
            None,
        )
        ratio = r["p99_ms"] / base["p99_ms"] if base and base["p99_ms"] else float("nan")
        print(
            f"| {r['backend']} | {r['shape']} | {r['phase']} | {r['requests']:,} | "
            f"{', '.join(f'{k}: {v:,}' for k, v in r['statuses'].items())} | "
            f"{r['throughput_rps']:,} | {r['p50_ms']} | {r['p95_ms']} | {r['p99_ms']} | "
            f"{r['max_ms']} | {r['p99_ms'] / TARGET_P99_MS:.2f} | {ratio:.2f} | "
            f"{r['server_cpu_ms_per_request']} | {r['machine_cpu_ms_per_request']} |"
        )
    print(f"\nhighest swept arrival rate with redeem p99 < {TARGET_P99_MS:g} ms:")
    for backend in dict.fromkeys(r["backend"] for r in rows):
        ok = [
            r["rate"]
            for r in rows
            if r["backend"] == backend
            and r["phase"] == "redeem"
            and r["rate"]
            and r["p99_ms"] < TARGET_P99_MS
            and r["throughput_rps"] >= 0.97 * r["rate"]
        ]
        print(f"- {backend}: {f'{max(ok):g} requests/s' if ok else 'none of the swept rates'}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
