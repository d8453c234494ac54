"""The console's pages at scale: a PostgreSQL store of 1M customers and 10M orders, the
overview read from its snapshot, customer search by prefix — server time per page under a
bounded load on loopback against a real ``huitouke serve``.

Steps (``all`` runs both and drops the database at the end):

1. ``generate`` — a fresh database named ``snap_console_<random>`` next to
   ``HUITOUKE_TEST_POSTGRES_URL``, migrated by the store, then customers and orders written
   with COPY (bench/_console_pg_data.py says why this bypasses ``huitouke import`` and how
   the data is shaped after CDNOW and Online Retail); VACUUM ANALYZE.
2. ``run`` — on that database: ``huitouke snapshots refresh`` (timed: what an import or the
   schedule pays once), a console user and a read API key, a real ``huitouke serve`` (one
   worker), a signed-in session; then for every page of :data:`PAGES`, one after another,
   ``--clients`` concurrent keep-alive clients sending ``--requests`` requests in all (a
   closed loop: bounded, nothing queues beyond the clients) and, the same count again, one
   client at a time (the server's own time plus the loopback round trip). The baseline in
   the same run is ``GET /v1/metrics``: the live computation over every order, which the
   overview did on every request before snapshots (a few requests only: each reads all
   orders).

    python bench/bench_console_pg.py all --customers 1000000 --orders 10000000
    python bench/bench_console_pg.py generate --customers 1000000 --orders 10000000
    python bench/bench_console_pg.py run --database-url postgresql+psycopg://…/snap_console_x
    python bench/bench_console_pg.py drop --database-url postgresql+psycopg://…/snap_console_x

To measure another page, add a line to :data:`PAGES`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _bench_common import Connection, Result, Server, pg_database, run_async, settle
from _console_pg_data import generate, generate_journeys, generate_loyalty
from bench_service import tree_cpu_seconds
from huitouke.service.apikeys import create_api_key
from huitouke.service.users import create_user
from huitouke.store.db import Store

PASSWORD = "bench-console-pg-password"
ADMIN = os.environ.get(
    "HUITOUKE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


@dataclass(frozen=True)
class Page:
    """One console page: its name and the paths a request picks from (at random, seeded),
    made from a few sample rows of the store; ``auth`` is ``session`` or ``key``."""

    name: str
    paths: Callable[[Samples], list[str]]
    auth: str = "session"
    requests: int | None = None  # None: --requests
    clients: int | None = None  # None: --clients
    htmx: bool = False  # sent as htmx does (HX-Request): the fragment, not the whole page


@dataclass(frozen=True)
class Samples:
    ids: list[str]
    phones: list[str]
    emails: list[str]
    names: list[str]


def _prefixes(values: list[str], lengths: tuple[int, ...]) -> list[str]:
    return [v[:n] for v in values for n in lengths if len(v) >= n]


def _search_paths(s: Samples) -> list[str]:
    return [
        "/customers?q=" + quote(p)
        for p in _prefixes(s.ids, (3, 5, 8))
        + _prefixes(s.phones, (4, 7, 11))
        + _prefixes(s.emails, (3, 6))
        + _prefixes(s.names, (1, 2))
    ]


#: every page measured; add a line to measure another
PAGES: list[Page] = [
    Page("overview", lambda s: ["/"]),
    Page("overview_quarter", lambda s: ["/overview/fragment?period=quarter"]),
    Page("overview_week", lambda s: ["/overview/fragment?period=week"]),
    Page("customers", lambda s: ["/customers"]),
    Page("search", lambda s: _search_paths(s)),
    # the search as the page sends it while one types (htmx: the rows only)
    Page("search_htmx", _search_paths, htmx=True),
    Page("customer", lambda s: ["/customers/" + quote(i) for i in s.ids]),
    Page("users", lambda s: ["/users"]),
    Page("customers_filtered", lambda s: ["/customers?layer=lost&p_max=0.5"]),
    Page("segments", lambda s: ["/segments"]),
    Page("predictions", lambda s: ["/predictions"]),
    Page("loyalty", lambda s: ["/loyalty"]),
    Page("loyalty_redemption", lambda s: ["/loyalty/redemption?start=2026-10-01&end=2026-11-30"]),
    # the journeys list and a journey's page for the merchant's today read the
    # ``journey_results`` snapshot; another day is computed live (every assigned customer's
    # orders): a few requests only
    Page("journeys", lambda s: ["/journeys"]),
    Page("journey_results", lambda s: ["/journeys/winback_high"]),
    Page(
        "journey_results_past_day (live)",
        lambda s: ["/journeys/winback_high?as_of=2026-11-30"],
        requests=3,
        clients=1,
    ),
    Page("data", lambda s: ["/data"]),
    Page("settings", lambda s: ["/settings"]),
    Page("audit", lambda s: ["/audit"]),
    Page("tags", lambda s: ["/tags"]),
    Page("metrics_live (baseline)", lambda s: ["/v1/metrics"], auth="key", requests=2, clients=1),
    # what the loyalty page computed on every request before its snapshot
    Page(
        "loyalty_live (baseline)",
        lambda s: ["/v1/loyalty/summary"],
        auth="key",
        requests=5,
        clients=1,
    ),
]


def _samples(store: Store, n: int = 200) -> Samples:
    from sqlalchemy import text

    with store.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT customer_id, phone, email, name FROM customers "
                "TABLESAMPLE SYSTEM (1) REPEATABLE (7) LIMIT :n"
            ),
            {"n": n},
        ).all()
    return Samples(
        ids=[r[0] for r in rows],
        phones=[r[1] for r in rows if r[1]],
        emails=[r[2] for r in rows if r[2]],
        names=[r[3] for r in rows if r[3]],
    )


def _raw(host: str, path: str, *, cookie: str | None, key: str | None, htmx: bool = False) -> bytes:
    auth = f"Cookie: {cookie}\r\n" if cookie else f"Authorization: Bearer {key}\r\n"
    hx = "HX-Request: true\r\n" if htmx else ""
    return (f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{auth}{hx}Content-Length: 0\r\n\r\n").encode()


async def _drive(base: str, raws: list[bytes], clients: int, name: str) -> Result:
    host, _, port = base.removeprefix("http://").partition(":")
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for raw in raws:
        queue.put_nowait(raw)
    lat: list[float] = []
    statuses: dict[int, int] = {}
    errors = 0
    start = time.perf_counter()

    async def worker(conn: Connection) -> None:
        nonlocal errors
        while not queue.empty():
            raw = queue.get_nowait()
            t0 = time.perf_counter()
            try:
                status = await conn.request(raw)
            except (OSError, ValueError, asyncio.IncompleteReadError):
                conn.close()
                errors += 1
                continue
            statuses[status] = statuses.get(status, 0) + 1
            lat.append((time.perf_counter() - t0) * 1000)

    conns = [Connection(host, int(port)) for _ in range(clients)]
    try:
        await asyncio.gather(*(worker(c) for c in conns))
    finally:
        for c in conns:
            c.close()
    return Result(name, lat, statuses, time.perf_counter() - start, errors)


def _refresh(url: str, kinds: list[str] | None) -> float:
    env = {**os.environ, "HUITOUKE_DATABASE_URL": url}
    start = time.perf_counter()
    extra = [a for k in kinds or [] for a in ("--kind", k)]
    subprocess.run(
        [sys.executable, "-m", "huitouke", "snapshots", "refresh", *extra], env=env, check=True,
        timeout=3600,
    )  # fmt: skip
    return time.perf_counter() - start


def run(
    url: str, *, clients: int, requests: int, seed: int = 11, refresh: str = "all",
    pages: str = "",
) -> list[dict[str, object]]:  # fmt: skip
    """``refresh``: ``all`` kinds (timed), ``none`` (the snapshots the store has), or a
    comma-separated list of kinds; ``pages``: the names of :data:`PAGES` to measure (all)."""
    store = Store(url)
    store.migrate()  # the search indexes and the snapshot table, if the data came first
    settle(store)
    refresh_s = 0.0
    if refresh != "none":
        refresh_s = _refresh(url, None if refresh == "all" else refresh.split(","))
    print(f"snapshots refresh ({refresh}): {refresh_s:.1f} s", flush=True)
    from sqlalchemy import text

    with store.begin() as conn:
        conn.execute(text("DELETE FROM console_sessions"))
        conn.execute(text("DELETE FROM console_users WHERE name = 'bench'"))
        create_user(conn, name="bench", role="admin", password=PASSWORD, now=datetime.now(UTC))
        _, key = create_api_key(conn, scope="read", name="bench", now=datetime.now(UTC))
        n_orders = conn.execute(text("SELECT count(*) FROM orders")).scalar_one()
        n_customers = conn.execute(text("SELECT count(*) FROM customers")).scalar_one()
    samples = _samples(store)
    store.dispose()
    rng = random.Random(seed)
    rows: list[dict[str, object]] = []
    load_before = os.getloadavg()[0]
    with (
        Server(url, start_seconds=600) as server,
        httpx.Client(base_url=server.base, timeout=600) as client,
    ):
        page = client.get("/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert token
        signed = client.post(
            "/login",
            data={"name": "bench", "password": PASSWORD, "csrf_token": token.group(1)},
        )
        assert signed.status_code == 303, signed.status_code
        cookie = "; ".join(f"{k}={v}" for k, v in client.cookies.items())
        first = client.get("/")
        assert 'id="chart-rates"' in first.text and "snapshot-live" not in first.text
        host = server.base.removeprefix("http://")
        wanted = set(pages.split(",")) if pages else None
        for p in PAGES:
            if wanted is not None and p.name.split(" ")[0] not in wanted:
                continue
            paths = p.paths(samples)
            n = p.requests or requests
            picks = [rng.choice(paths) for _ in range(n)]
            auth = {"cookie": cookie, "key": None} if p.auth == "session" else {
                "cookie": None, "key": key}  # fmt: skip
            raws = [_raw(host, path, **auth, htmx=p.htmx) for path in picks]
            warm = run_async(_drive(server.base, raws[:1], 1, p.name))
            assert set(warm.statuses) == {200}, (p.name, warm.statuses)
            modes = [("concurrent", p.clients or clients), ("sequential", 1)]
            for mode, c in modes if modes[0][1] > 1 else modes[1:]:
                assert server.proc is not None
                cpu0 = tree_cpu_seconds(server.proc.pid)
                res = run_async(_drive(server.base, raws, c, p.name))
                res.server_cpu_s = tree_cpu_seconds(server.proc.pid) - cpu0
                row = {**res.row(), "page": p.name, "mode": mode, "clients": c}
                assert set(res.statuses) == {200} and not res.errors, row
                rows.append(row)
                print(
                    f"{p.name:26} {mode:10} clients={c:<2} n={len(res.latencies_ms):<4} "
                    f"p50={res.pct(50):8.1f} p95={res.pct(95):8.1f} p99={res.pct(99):8.1f} ms "
                    f"server CPU {row['server_cpu_ms_per_request']} ms/request "
                    f"load {os.getloadavg()[0]:.1f}",
                    flush=True,
                )
    print(
        json.dumps(
            {
                "orders": n_orders,
                "customers": n_customers,
                "snapshot_refresh_s": round(refresh_s, 1),
                "load_before": round(load_before, 1),
                "load_after": round(os.getloadavg()[0], 1),
                "rows": rows,
            }
        )
    )
    return rows


def _conninfo(url: str) -> str:
    from sqlalchemy.engine import make_url

    u = make_url(url)
    return (
        f"host={u.host or '127.0.0.1'} port={u.port or 5432} "
        f"user={u.username or 'postgres'} dbname={u.database}"
    )


def _extras(url: str, *, customers: int, members: int, assigned: int) -> dict[str, float]:
    """The loyalty ledger (the example shop program saved first) and a campaign's record."""
    import yaml

    from huitouke.loyalty.program import load_program
    from huitouke.loyalty.programs_repo import save_program

    shop = Path(__file__).resolve().parents[1] / "src/huitouke/loyalty/examples/shop.yaml"
    doc = yaml.safe_load(shop.read_text(encoding="utf-8"))
    store = Store(url)
    with store.begin() as conn:
        save_program(conn, load_program({**doc, "id": "default"}), now=datetime.now(UTC))
    store.dispose()
    took = generate_loyalty(_conninfo(url), members=min(members, customers))
    took.update(generate_journeys(_conninfo(url), customers=customers, assigned=assigned))
    return took


def _generate(
    customers: int, orders: int, *, members: int, assigned: int
) -> tuple[str, Callable[[], None]]:
    url, drop = pg_database(ADMIN, prefix="snap_console")
    print(f"database: {url}", flush=True)
    store = Store(url)
    store.migrate()
    store.dispose()
    start = time.perf_counter()
    took = generate(_conninfo(url), customers=customers, orders=orders)
    took.update(_extras(url, customers=customers, members=members, assigned=assigned))
    store = Store(url)
    settle(store)
    store.dispose()
    took["total_s"] = time.perf_counter() - start
    print(json.dumps({k: round(v, 1) for k, v in took.items()}), flush=True)
    return url, drop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("step", choices=["all", "generate", "extras", "run", "drop"])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--orders", type=int, default=10_000_000)
    parser.add_argument("--members", type=int, default=1_000_000, help="loyalty members")
    parser.add_argument(
        "--assigned", type=int, default=100_000, help="customers assigned to a journey"
    )
    parser.add_argument("--database-url")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument(
        "--refresh", default="all", help="snapshot kinds refreshed before timing: all, none, "
        "or kinds separated by commas",
    )  # fmt: skip
    parser.add_argument("--pages", default="", help="page names to measure (default: all)")
    args = parser.parse_args()
    if args.step == "generate":
        _generate(args.customers, args.orders, members=args.members, assigned=args.assigned)
        return
    if args.step in ("run", "drop", "extras"):
        if not args.database_url or "/snap_console_" not in args.database_url:
            parser.error("--database-url of a snap_console_… database is required")
        if args.step == "extras":
            took = _extras(
                args.database_url, customers=args.customers, members=args.members,
                assigned=args.assigned,
            )  # fmt: skip
            store = Store(args.database_url)
            settle(store)
            store.dispose()
            print(json.dumps({k: round(v, 1) for k, v in took.items()}), flush=True)
        elif args.step == "run":
            run(
                args.database_url, clients=args.clients, requests=args.requests,
                refresh=args.refresh, pages=args.pages,
            )  # fmt: skip
        else:
            from sqlalchemy.engine import make_url

            name = make_url(args.database_url).database
            import psycopg

            with psycopg.connect(_conninfo(ADMIN), autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        return
    url, drop = _generate(args.customers, args.orders, members=args.members, assigned=args.assigned)
    try:
        run(url, clients=args.clients, requests=args.requests)
    finally:
        drop()


if __name__ == "__main__":
    main()
