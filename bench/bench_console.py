"""Server time of the console's pages against a real `huitouke serve`, side by side with the
REST metrics endpoint on the same store.

The store is a SQLite file with the bundled CDNOW master imported (69,659 orders of 23,570
customers) and one console user. One client on loopback, one request at a time (bounded:
``--requests`` per route, nothing in parallel), so each figure is the server's time for one
page plus the loopback round trip:

1. ``metrics`` — ``GET /v1/metrics`` with an API key: the orders read once and the metrics
   computed (the baseline: what the overview cannot avoid without a snapshot);
2. ``overview`` — ``GET /`` signed in: the same metrics, cohorts and ladder from the same
   read, the charts' options built and the page rendered;
3. ``fragment`` — ``GET /overview/fragment?period=quarter`` (the htmx period switch);
4. ``search`` — ``GET /customers?q=0001`` (prefix search, 50 rows at most);
5. ``customer`` — ``GET /customers/00018`` (profile, orders, loyalty balances, and its
   predictions, messages and consent history);
6. ``segments`` — ``GET /segments``, ``predictions`` — ``GET /predictions``, ``filtered`` —
   ``GET /customers?layer=lost&p_max=0.5`` (a page of 50 of the matches and their count),
   all read from the customer facts snapshot. Its refresh
   (``refresh_customer_facts``: the customer frame with the model fit and the holdout
   check, then the rows written) is timed once beside ``huitouke segments`` on the same
   store.

    python bench/bench_console.py                 # 20 requests per route
    python bench/bench_console.py --requests 50
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _bench_common import Server
from huitouke.data import CDNOW_MASTER
from huitouke.service.apikeys import create_api_key
from huitouke.service.users import create_user
from huitouke.store.db import Store

PASSWORD = "bench-console-password"


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=20)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="huitouke_bench_console_"))
    url = f"sqlite:///{work / 'shop.db'}"
    env = {**os.environ, "HUITOUKE_DATABASE_URL": url}
    subprocess.run(
        [sys.executable, "-m", "huitouke", "import", str(CDNOW_MASTER), "--preset", "cdnow"],
        env=env,
        check=True,
        capture_output=True,
        timeout=600,
    )
    from huitouke.app.customer_facts import refresh_customer_facts
    from huitouke.settings import Settings

    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "huitouke", "segments", "--format", "json"],
        env=env, check=True, capture_output=True, timeout=600,
    )  # fmt: skip
    cli_segments = time.perf_counter() - start
    store = Store(url)
    start = time.perf_counter()
    refresh_customer_facts(store, Settings(database_url=url))
    refresh = time.perf_counter() - start
    with store.begin() as conn:
        create_user(conn, name="bench", role="operator", password=PASSWORD, now=datetime.now(UTC))
        _, key = create_api_key(conn, scope="read", name="bench", now=datetime.now(UTC))
    store.dispose()

    load_before = f"{os.getloadavg()[0]:.1f}"
    routes = {
        "metrics": "/v1/metrics",
        "overview": "/",
        "fragment": "/overview/fragment?period=quarter",
        "search": "/customers?q=0001",
        "customer": "/customers/00018",
        "segments": "/segments",
        "predictions": "/predictions",
        "filtered": "/customers?layer=lost&p_max=0.5",
    }
    with Server(url) as server, httpx.Client(base_url=server.base, timeout=120) as client:
        page = client.get("/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert token
        signed = client.post(
            "/login",
            data={"name": "bench", "password": PASSWORD, "csrf_token": token.group(1)},
            follow_redirects=True,
        )
        assert signed.status_code == 200 and 'id="chart-rates"' in signed.text, signed.status_code
        headers = {"Authorization": f"Bearer {key}"}
        times: dict[str, list[float]] = {}
        for name, path in routes.items():
            client.get(path, headers=headers if name == "metrics" else None)  # warm
            times[name] = []
        # interleaved, so a change in the machine's load hits every route alike
        for _ in range(args.requests):
            for name, path in routes.items():
                start = time.perf_counter()
                r = client.get(path, headers=headers if name == "metrics" else None)
                times[name].append((time.perf_counter() - start) * 1000)
                assert r.status_code == 200, (name, r.status_code)
    base = statistics.median(times["metrics"])
    print(f"load average before/after: {load_before} / {os.getloadavg()[0]:.1f}")
    print(f"{args.requests} requests per route, one at a time, CDNOW master (69,659 orders)")
    print(f"{'route':12} {'p50 ms':>8} {'p95 ms':>8} {'p50 / metrics':>14}")
    for name, values in times.items():
        p50 = statistics.median(values)
        print(f"{name:12} {p50:8.1f} {_pct(values, 0.95):8.1f} {p50 / base:14.2f}")
    print(
        f"snapshot refresh {refresh:.1f} s; `huitouke segments` (process, no model) "
        f"{cli_segments:.1f} s; ratio {refresh / cli_segments:.2f}"
    )


if __name__ == "__main__":
    main()
