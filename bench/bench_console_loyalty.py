"""Server time of the console's loyalty pages against a real `huitouke serve`, side by side
with ``GET /v1/loyalty/summary`` (the same function, answered as JSON) on the same store.

The store is a SQLite file (or PostgreSQL with ``--postgres URL``) with the example shop
program and a synthetic ledger written straight into the loyalty tables: ``--members``
members spread over the three tiers, each with a points account and one entry earning it,
every fifth with stored value (paid, bonus, pending bonus) and two coupons per member, one
in three redeemed — rows as the use cases write them, so the reads are the real ones. One
client on loopback, one request at a time, routes interleaved:

1. ``summary`` — ``GET /v1/loyalty/summary`` with an API key (the baseline);
2. ``loyalty`` — ``GET /loyalty`` signed in: the same summary, charts and page rendered;
3. ``redemption`` — ``GET /loyalty/redemption`` (the htmx period reload);
4. ``program`` — ``GET /loyalty/program`` (the program document and its forms).

    python bench/bench_console_loyalty.py                      # 100,000 members
    python bench/bench_console_loyalty.py --members 20000 --requests 30
"""

from __future__ import annotations

import argparse
import os
import random
import re
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _bench_common import Server, pg_database
from huitouke.loyalty import tables as lt
from huitouke.loyalty.program import load_program
from huitouke.loyalty.programs_repo import save_program
from huitouke.service.apikeys import create_api_key
from huitouke.service.users import create_user
from huitouke.store.db import Store

PASSWORD = "bench-console-password"
SHOP = (
    Path(__file__).resolve().parents[1] / "src" / "huitouke" / "loyalty" / "examples" / "shop.yaml"
)


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def seed(store: Store, members: int, now: datetime) -> None:
    rng = random.Random(7)
    doc = yaml.safe_load(SHOP.read_text(encoding="utf-8"))
    with store.begin() as conn:
        save_program(conn, load_program({**doc, "id": "default"}), now=now)
    batch = 5000
    account_id = 0
    for lo in range(0, members, batch):
        ids = [f"m{i:07d}" for i in range(lo, min(members, lo + batch))]
        mrows, arows, erows, crows = [], [], [], []
        for cid in ids:
            at = now - timedelta(days=rng.randrange(0, 120), minutes=rng.randrange(0, 1440))
            mrows.append({"customer_id": cid, "tier": rng.choice(["v1", "v1", "v2", "v3", None]),
                          "preferences": {}, "paid_orders": 1, "created_at": at, "updated_at": at})  # fmt: skip
            assets = [("points", Decimal(rng.randrange(1, 3000)))]
            if rng.random() < 0.2:
                assets += [("stored_paid", Decimal("200")), ("stored_bonus", Decimal("20")),
                           ("stored_bonus_pending", Decimal("180"))]  # fmt: skip
            for asset, bal in assets:
                account_id += 1
                arows.append({"account_id": account_id, "customer_id": cid, "asset": asset,
                              "balance": bal, "updated_at": at})  # fmt: skip
                erows.append({"idempotency_key": f"seed:{account_id}", "account_id": account_id,
                              "delta": bal, "balance_before": Decimal(0), "balance_after": bal,
                              "kind": "earn" if asset == "points" else "topup", "created_at": at})  # fmt: skip
            for k in range(2):
                redeemed = rng.random() < 1 / 3
                crows.append({
                    "code": f"{cid}{k}", "template_id": "fixed20", "kind": "fixed", "holder_id": cid,
                    "issued_to": cid, "status": "redeemed" if redeemed else "issued",
                    "value": Decimal(20), "percent": None, "currency": "CNY", "valid_from": at,
                    "valid_until": at + timedelta(days=60), "issued_at": at, "source": "manual",
                    "source_ref": None, "transfers": 0, "issue_key": f"seed:{cid}:{k}",
                    "redeemed_at": at + timedelta(days=1) if redeemed else None,
                    "redemption_id": f"r:{cid}:{k}" if redeemed else None,
                })  # fmt: skip
        with store.begin() as conn:
            conn.execute(lt.members.insert(), mrows)
            conn.execute(lt.accounts.insert(), arows)
            conn.execute(lt.entries.insert(), erows)
            conn.execute(lt.coupons.insert(), crows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--postgres", help="an admin URL: run on a fresh PostgreSQL database")
    args = parser.parse_args()
    drop = None
    if args.postgres:
        url, drop = pg_database(args.postgres, prefix="huitouke_bench_loy")
    else:
        work = Path(tempfile.mkdtemp(prefix="huitouke_bench_loyalty_"))
        url = f"sqlite:///{work / 'shop.db'}"
    try:
        store = Store(url)
        store.migrate()
        now = datetime.now(UTC)
        started = time.perf_counter()
        seed(store, args.members, now)
        seeded = time.perf_counter() - started
        with store.begin() as conn:
            create_user(conn, name="bench", role="admin", password=PASSWORD, now=now)
            _, key = create_api_key(conn, scope="read", name="bench", now=now)
        store.dispose()
        load_before = f"{os.getloadavg()[0]:.1f}"
        routes = {
            "summary": "/v1/loyalty/summary",
            "loyalty": "/loyalty",
            "redemption": "/loyalty/redemption",
            "program": "/loyalty/program",
        }
        with Server(url) as server, httpx.Client(base_url=server.base, timeout=300) as client:
            page = client.get("/login")
            token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
            assert token
            signed = client.post(
                "/login",
                data={"name": "bench", "password": PASSWORD, "csrf_token": token.group(1),
                      "next": "/loyalty"},
                follow_redirects=True,
            )  # fmt: skip
            assert signed.status_code == 200 and 'id="chart-tiers"' in signed.text
            headers = {"Authorization": f"Bearer {key}"}
            times: dict[str, list[float]] = {}
            for name, path in routes.items():
                client.get(path, headers=headers if name == "summary" else None)  # warm
                times[name] = []
            for _ in range(args.requests):
                for name, path in routes.items():
                    start = time.perf_counter()
                    r = client.get(path, headers=headers if name == "summary" else None)
                    times[name].append((time.perf_counter() - start) * 1000)
                    assert r.status_code == 200, (name, r.status_code)
    finally:
        if drop is not None:
            drop()
    base = statistics.median(times["summary"])
    backend = "PostgreSQL" if args.postgres else "SQLite"
    print(f"load average before/after: {load_before} / {os.getloadavg()[0]:.1f}")
    print(f"{backend}, {args.members:,} members (seeded in {seeded:.0f} s), {args.requests} "
          "requests per route, one at a time")  # fmt: skip
    print(f"{'route':11} {'p50 ms':>8} {'p95 ms':>8} {'p50 / summary':>14}")
    for name, values in times.items():
        p50 = statistics.median(values)
        print(f"{name:11} {p50:8.1f} {_pct(values, 0.95):8.1f} {p50 / base:14.2f}")


if __name__ == "__main__":
    main()
