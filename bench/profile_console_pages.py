"""Where a console page's server time goes, per request, on a store made by
``bench_console_pg.py generate`` (any size): the route's own CPU time (thread CPU inside
the endpoint, no profiler), the SQL statements it sends with their time, and the plan of
every statement that reads ``orders`` (``EXPLAIN ANALYZE``: a ``Seq Scan`` or a row count
that grows with the store is work that scales with orders). In process, through
``create_app`` and a signed-in session: no HTTP server, no load generator — the question is
what one request costs the server, not how it behaves under load (bench_console_pg.py).

    python bench/bench_console_pg.py generate --customers 40000 --orders 400000 \\
        --members 40000 --assigned 5000
    python bench/profile_console_pages.py --database-url postgresql+psycopg://…/snap_console_x

``customer_big`` is the customer with the most orders (the page lists the newest 100).
Profiling at small scale needs no bench lock; timed figures recorded in BENCHMARKS.md do.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import event, text

from huitouke.service.users import create_user
from huitouke.settings import Settings
from huitouke.store.db import Store

PASSWORD = "profile-password-123"
#: page name → path (``{id}``: a sampled customer, ``{big}``: the one with most orders)
PAGES = {
    "overview": "/",
    "overview_week": "/overview/fragment?period=week",
    "overview_quarter": "/overview/fragment?period=quarter",
    "customer": "/customers/{id}",
    "customer_big": "/customers/{big}",
    "journeys": "/journeys",
    "journey": "/journeys/winback_high",
}


def _endpoint_cpu() -> list[float]:
    """Record each sync endpoint's thread CPU time (FastAPI runs it in the thread pool)."""
    import fastapi.routing as routing

    spent: list[float] = []
    original = routing.run_in_threadpool

    async def timed(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        def run(*a: Any, **k: Any) -> Any:
            t0 = time.thread_time()
            try:
                return func(*a, **k)
            finally:
                spent.append(time.thread_time() - t0)

        return await original(run, *args, **kwargs)

    routing.run_in_threadpool = timed  # type: ignore[assignment]
    return spent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--pages", default=",".join(PAGES))
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--refresh", action="store_true", help="refresh the snapshots first")
    args = parser.parse_args()
    spent = _endpoint_cpu()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient
    from huitouke.service import create_app

    store = Store(args.database_url)
    settings = Settings(database_url=args.database_url, lang="en")
    if args.refresh:
        from huitouke.app.snapshots import refresh_snapshots

        for r in refresh_snapshots(store, settings):
            print(f"refreshed {r.kind} in {r.seconds:.1f} s {r.error or ''}", flush=True)
    with store.begin() as conn:
        conn.execute(text("DELETE FROM console_users WHERE name = 'profile'"))
        create_user(conn, name="profile", role="admin", password=PASSWORD, now=datetime.now(UTC))
        n_orders = conn.execute(text("SELECT count(*) FROM orders")).scalar_one()
        ids = list(
            conn.execute(
                text("SELECT customer_id FROM customers TABLESAMPLE SYSTEM (5) REPEATABLE (7)")
            ).scalars()
        )[:200]
        big = conn.execute(
            text(
                "SELECT customer_id FROM orders GROUP BY customer_id ORDER BY count(*) DESC LIMIT 1"
            )
        ).scalar_one()
    statements: list[tuple[float, str, Any]] = []

    @event.listens_for(store.engine, "before_cursor_execute")
    def _before(conn: Any, cursor: Any, statement: str, params: Any, *rest: Any) -> None:
        conn.info["profile_t0"] = time.perf_counter()

    @event.listens_for(store.engine, "after_cursor_execute")
    def _after(conn: Any, cursor: Any, statement: str, params: Any, *rest: Any) -> None:
        statements.append((time.perf_counter() - conn.info["profile_t0"], statement, params))

    client = TestClient(create_app(settings, store), base_url="http://127.0.0.1")
    login = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', login.text)
    assert token, login.text
    signed = client.post(
        "/login",
        data={"name": "profile", "password": PASSWORD, "csrf_token": token.group(1)},
        follow_redirects=False,
    )
    assert signed.status_code == 303, signed.text
    print(f"store: {n_orders:,} orders", flush=True)
    for name in args.pages.split(","):
        template = PAGES[name]
        paths = [
            template.replace("{id}", ids[i % len(ids)]).replace("{big}", big)
            for i in range(args.requests)
        ]
        assert client.get(paths[0]).status_code == 200, name  # warm
        spent.clear()
        statements.clear()
        for path in paths:
            r = client.get(path)
            assert r.status_code == 200, (path, r.status_code)
        cpu = spent[-args.requests :]
        per = len(statements) / args.requests
        sql_ms = 1000 * sum(s[0] for s in statements) / args.requests
        print(
            f"{name:18} endpoint CPU p50 {1000 * statistics.median(cpu):6.1f} ms, "
            f"max {1000 * max(cpu):6.1f} ms; {per:.0f} statements/request, "
            f"{sql_ms:.1f} ms SQL/request (wall, client side)",
            flush=True,
        )
        seen: set[str] = set()
        with store.engine.connect() as conn:
            cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
            for _, statement, params in statements:
                key = " ".join(statement.split())
                if " orders" not in key or key in seen:
                    continue
                seen.add(key)
                cursor.execute("EXPLAIN (ANALYZE, FORMAT TEXT) " + statement, params)
                plan = [row[0] for row in cursor.fetchall()]
                nodes = [p.strip() for p in plan if "Scan" in p or "Execution Time" in p]
                print(f"    {key[:110]}", flush=True)
                for node in nodes:
                    print(f"        {node[:140]}", flush=True)
    store.dispose()


if __name__ == "__main__":
    sys.exit(main())
