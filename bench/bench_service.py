"""Redeem latency of the REST service under 50 concurrent clients on loopback.

Target (issue "Loyalty ledger and the REST service"): redeem p99 < 50 ms with 50 concurrent
clients, on SQLite and on PostgreSQL. A real `huitouke serve` process (uvicorn) runs on
127.0.0.1; a bounded load generator (asyncio + httpx, at most ``--clients`` requests in
flight, a fixed request count and a time limit) sends:

1. ``health`` — ``GET /health`` (HTTP + framework + one trivial statement): the floor of
   the stack, the baseline the redeem figures are compared with side by side;
2. ``redeem`` — ``POST /v1/coupons/{code}/redeem`` of distinct valid coupons (every one
   succeeds: auth, idempotency claim, coupon checks, conditional update, event row);
3. ``contended`` — redemptions of 100 codes, many attempts each (exactly one per code
   succeeds, the rest get 409 ``coupon.already_redeemed``).

Two load shapes: *closed loop* (each client sends its next request as soon as the last one
returns: the saturation throughput, where latency = clients / throughput) and *open loop*
at a fixed arrival rate (``--rate``; latency measured from each request's scheduled send
time, so a stalled server cannot hide its queue — no coordinated omission).

The store is seeded with ``--members`` customers holding coupons before the run (context:
Open Loyalty's public issues report failures near 69k customers).

    python bench/bench_service.py                  # SQLite + PostgreSQL (if configured)
    python bench/bench_service.py --quick          # fewer requests
    HUITOUKE_BENCH_POSTGRES_URL=postgresql://postgres@127.0.0.1:5432/postgres python bench/bench_service.py
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import yaml

from huitouke.loyalty import tables as lt
from huitouke.loyalty.program import load_program
from huitouke.loyalty.programs_repo import save_program
from huitouke.loyalty.service import LoyaltyService
from huitouke.service.apikeys import create_api_key
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
    program = load_program({**doc, "id": "default"})
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
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    url: str
    workers: int
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Server:
        env = {**os.environ, "HUITOUKE_DATABASE_URL": self.url}
        self.log = tempfile.NamedTemporaryFile(prefix="bench_service_", suffix=".log", delete=False)
        self.proc = subprocess.Popen(
            [
                sys.executable, "-m", "huitouke", "serve", "--host", "127.0.0.1",
                "--port", str(self.port), "--workers", str(self.workers),
                "--no-access-log", "--log-level", "warning",
            ],
            env=env, stdout=self.log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.2)
        raise RuntimeError(f"server did not start; log: {self.log.name}")

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc), to report CPU per request: a
    figure that, unlike latency, does not depend on what else the machine is running."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    tick = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / tick


# -- load generator -------------------------------------------------------------------------------
@dataclass
class Result:
    name: str
    latencies_ms: list[float]
    statuses: dict[int, int]
    seconds: float
    errors: int
    server_cpu_s: float = float("nan")

    def pct(self, q: float) -> float:
        xs = sorted(self.latencies_ms)
        if not xs:
            return float("nan")
        i = min(len(xs) - 1, max(0, math.ceil(q / 100 * len(xs)) - 1))  # nearest rank
        return xs[i]

    def row(self) -> dict[str, Any]:
        n = len(self.latencies_ms)
        return {
            "phase": self.name,
            "requests": n,
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "errors": self.errors,
            "throughput_rps": round(n / self.seconds, 1) if self.seconds else None,
            "p50_ms": round(self.pct(50), 2),
            "p95_ms": round(self.pct(95), 2),
            "p99_ms": round(self.pct(99), 2),
            "max_ms": round(max(self.latencies_ms), 2) if n else None,
            "server_cpu_ms_per_request": round(self.server_cpu_s * 1000 / n, 2) if n else None,
        }


async def drive(
    base: str,
    key: str,
    requests: list[tuple[str, str, dict[str, Any] | None]],
    *,
    clients: int,
    rate: float | None,
    time_limit: float,
    name: str,
) -> Result:
    """Send ``requests`` with at most ``clients`` in flight (closed loop), or at ``rate``
    per second (open loop); stop issuing after ``time_limit`` seconds."""
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    headers = {"Authorization": f"Bearer {key}"}
    lat: list[float] = []
    statuses: dict[int, int] = {}
    errors = 0
    queue: asyncio.Queue[tuple[int, tuple[str, str, dict[str, Any] | None]]] = asyncio.Queue()
    for item in enumerate(requests):
        queue.put_nowait(item)
    async with httpx.AsyncClient(
        base_url=base, headers=headers, limits=limits, timeout=60
    ) as client:
        start = time.perf_counter()
        stop_at = start + time_limit

        async def worker() -> None:
            nonlocal errors
            while not queue.empty():
                i, (method, path, body) = queue.get_nowait()
                scheduled = start + i / rate if rate else None
                if scheduled is not None:
                    delay = scheduled - time.perf_counter()
                    if delay > 0:
                        await asyncio.sleep(delay)
                if time.perf_counter() > stop_at:
                    return
                t0 = scheduled if scheduled is not None else time.perf_counter()
                try:
                    r = await client.request(method, path, json=body)
                    statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
                except httpx.HTTPError:
                    errors += 1
                    continue
                lat.append((time.perf_counter() - t0) * 1000)

        await asyncio.gather(*(worker() for _ in range(clients)))
        seconds = time.perf_counter() - start
    return Result(name, lat, statuses, seconds, errors)


def run_backend(label: str, url: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    store = Store(url)
    store.migrate()
    n = args.requests
    contended_codes = 100
    t = time.perf_counter()
    key, coupons = seed(store, args.members, n + contended_codes)
    print(
        f"[{label}] seeded {args.members} members, {len(coupons)} coupons in {time.perf_counter() - t:.1f}s",
        file=sys.stderr,
    )
    store.dispose()
    free, hot = coupons[:n], coupons[n:]
    rows: list[dict[str, Any]] = []
    with Server(url, args.workers) as srv:
        base = f"http://127.0.0.1:{srv.port}"
        shapes: list[tuple[str, float | None]] = [("closed", None)]
        if args.rate:
            shapes.append((f"open@{args.rate:g}/s", args.rate))
        health = [("GET", "/health", None)] * n
        redeem = [
            ("POST", f"/v1/coupons/{c}/redeem", {"order_id": f"b-{c}", "customer_id": h})
            for c, h in free
        ]
        rng = random.Random(1)
        contended = [
            ("POST", f"/v1/coupons/{c}/redeem", {"order_id": f"h-{c}-{k}", "customer_id": h})
            for c, h in hot
            for k in range(max(2, n // contended_codes))
        ]
        rng.shuffle(contended)
        # warm-up (imports, caches, connections), not measured
        asyncio.run(
            drive(
                base,
                key,
                health[:200],
                clients=args.clients,
                rate=None,
                time_limit=30,
                name="warmup",
            )
        )
        for shape, rate in shapes:
            # open-loop phases use fresh halves of the coupons so every redeem still succeeds
            if rate is None:
                phases = [
                    ("health", health),
                    ("redeem", redeem[: n // 2] if args.rate else redeem),
                    ("contended", contended),
                ]
            else:
                phases = [("health", health), ("redeem", redeem[n // 2 :])]
            for name, reqs in phases:
                assert srv.proc is not None
                cpu0 = cpu_seconds(srv.proc.pid)
                res = asyncio.run(
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
                res.server_cpu_s = cpu_seconds(srv.proc.pid) - cpu0
                row = {"backend": label, "shape": shape, **res.row()}
                rows.append(row)
                print(json.dumps(row), file=sys.stderr)
    return rows


def pg_database(admin: str) -> tuple[str, Any]:
    import psycopg
    from sqlalchemy.engine import make_url

    name = f"huitouke_bench_{uuid.uuid4().hex[:10]}"
    base = make_url(admin)
    conninfo = f"host={base.host or '127.0.0.1'} port={base.port or 5432} user={base.username or 'postgres'} dbname={base.database or 'postgres'}"
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    url = base.set(drivername="postgresql+psycopg", database=name).render_as_string(
        hide_password=False
    )
    return url, drop


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--quick", action="store_true", help="1,000 requests per phase, 10k members")
    p.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    p.add_argument("--requests", type=int, default=None, help="requests per phase (default 5,000)")
    p.add_argument(
        "--members", type=int, default=None, help="customers in the store (default 100,000)"
    )
    p.add_argument("--clients", type=int, default=50)
    p.add_argument(
        "--rate",
        type=float,
        default=100.0,
        help="open-loop arrival rate, all clients together (0: skip)",
    )
    p.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    p.add_argument("--time-limit", type=float, default=120.0, help="seconds per phase")
    p.add_argument("--json", type=Path, default=None, help="write the rows here")
    args = p.parse_args(argv)
    args.requests = args.requests or (1000 if args.quick else 5000)
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
            url, drop = pg_database(admin)
            try:
                rows += run_backend("postgres", url, args)
            finally:
                drop()

    print(
        f"\nredeem latency, {args.clients} concurrent clients, loopback, {args.workers} worker(s)"
    )
    print(
        "| backend | load | phase | requests | statuses | req/s | p50 ms | p95 ms | p99 ms "
        "| p99 / 50 ms target | p99 / health p99 | server CPU ms/req |"
    )
    print("|---|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|")
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
            f"| {r['backend']} | {r['shape']} | {r['phase']} | {r['requests']} | "
            f"{', '.join(f'{k}: {v}' for k, v in r['statuses'].items())} | {r['throughput_rps']} | "
            f"{r['p50_ms']} | {r['p95_ms']} | {r['p99_ms']} | {r['p99_ms'] / TARGET_P99_MS:.2f} | {ratio:.2f} | "
            f"{r['server_cpu_ms_per_request']} |"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
