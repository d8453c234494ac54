"""Import throughput: `huitouke` vs the naive pandas way, side by side in one run.

Generates an order CSV (order_id, customer_id, ordered_at, amount, status, currency,
channel; 1,000,000 rows by default, 100,000 with --quick), then times

* huitouke: ``import_file`` into a fresh SQLite store (parse with pyarrow.csv, vectorised
  validation, the later-state upsert, customers, the batch record — one transaction);
* baseline: ``pandas.read_csv`` + ``DataFrame.to_sql`` into a fresh SQLite file (no
  validation, no upsert, no customers: the least a naive loader does);

and the same two into PostgreSQL when a URL is given (--postgres-url or
HUITOUKE_TEST_POSTGRES_URL; a scratch database is created and dropped).

Usage::

    python bench/bench_import.py            # 1M rows
    python bench/bench_import.py --quick    # 100k rows
    python bench/bench_import.py --repeat 3 # three side-by-side pairs (a shared machine is noisy)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv


def generate(path: Path, n: int, seed: int = 42) -> None:
    rng = np.random.default_rng(seed)
    order_id = pc.binary_join_element_wise("o", pa.array(np.arange(n)).cast(pa.string()), "")
    customers = max(1, n // 5)
    customer_id = pc.binary_join_element_wise(
        "c", pa.array(rng.integers(0, customers, n)).cast(pa.string()), ""
    )
    secs = rng.integers(1_672_531_200, 1_735_689_600, n)  # 2023-01-01 .. 2025-01-01
    ts = pa.array(secs * 1_000_000, pa.timestamp("us")).cast(pa.string())
    ts = pc.utf8_slice_codeunits(ts, 0, 19)
    cents = rng.integers(100, 100_000, n)
    amount = pc.binary_join_element_wise(
        pa.array(cents // 100).cast(pa.string()),
        pc.utf8_lpad(pa.array(cents % 100).cast(pa.string()), 2, "0"),
        ".",
    )
    status = pa.array(rng.choice(np.array(["paid"] * 18 + ["refunded", "cancelled"]), n))
    channel = pa.array(rng.choice(np.array(["tmall", "wechat", "store"]), n))
    table = pa.table(
        {
            "order_id": order_id,
            "customer_id": customer_id,
            "ordered_at": ts,
            "amount": amount,
            "status": status,
            "currency": pa.repeat(pa.scalar("CNY"), n),
            "channel": channel,
        }
    )
    pacsv.write_csv(table, path, write_options=pacsv.WriteOptions(quoting_style="none"))


CPU: dict[str, float] = {}


def timed(fn: Callable[[], Any], label: str = "") -> tuple[float, Any]:
    """Wall seconds (and, under ``label``, this process's CPU seconds, all threads)."""
    c0 = time.process_time()
    t0 = time.perf_counter()
    out = fn()
    wall = time.perf_counter() - t0
    if label:
        CPU[label] = time.process_time() - c0
    return wall, out


def run_huitouke(url: str, csv: Path) -> tuple[float, int]:
    from huitouke.app.imports import import_file
    from huitouke.store.db import Store

    store = Store(url)
    store.migrate()
    try:
        secs, summary = timed(lambda: import_file(store, csv, progress=False), "huitouke")
        n = store.load_orders().num_rows
        assert n == summary.orders_inserted, (n, summary)
        return secs, n
    finally:
        store.dispose()


def run_pandas(url: str, csv: Path) -> tuple[float, int]:
    import pandas as pd
    from sqlalchemy import create_engine, text

    engine = create_engine(url)

    def load() -> int:
        df = pd.read_csv(csv)
        df.to_sql("orders_naive", engine, if_exists="append", index=False, chunksize=50_000)
        return len(df)

    try:
        secs, n = timed(load, "pandas")
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM orders_naive")).scalar() == n
        return secs, n
    finally:
        engine.dispose()


@contextmanager
def scratch_postgres(admin: str) -> Iterator[str]:
    import psycopg
    from sqlalchemy.engine import make_url

    base = make_url(admin)
    name = f"huitouke_bench_{uuid.uuid4().hex[:10]}"
    info = (
        f"host={base.host or '127.0.0.1'} port={base.port or 5432} "
        f"user={base.username or 'postgres'} dbname={base.database or 'postgres'}"
    )
    if base.password:
        info += f" password={base.password}"
    with psycopg.connect(info, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield base.set(drivername="postgresql+psycopg", database=name).render_as_string(
            hide_password=False
        )
    finally:
        with psycopg.connect(info, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--quick", action="store_true", help="100,000 rows")
    ap.add_argument("--postgres-url", default=os.environ.get("HUITOUKE_TEST_POSTGRES_URL"))
    ap.add_argument("--no-postgres", action="store_true")
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    ap.add_argument("--repeat", type=int, default=1, help="side-by-side pairs per backend")
    args = ap.parse_args(argv)
    n = 100_000 if args.quick else args.rows
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="huitouke-bench-") as tmp:
        d = Path(tmp)
        csv = d / f"orders_{n}.csv"
        gen_s, _ = timed(lambda: generate(csv, n))
        print(
            f"generated {n:,} rows ({csv.stat().st_size / 1e6:.1f} MB) in {gen_s:.1f}s",
            file=sys.stderr,
        )

        def pair(backend: str, url_a: str, url_b: str) -> None:
            ours, rows = run_huitouke(url_a, csv)
            base, _ = run_pandas(url_b, csv)
            results.append(
                {
                    "backend": backend,
                    "rows": rows,
                    "huitouke_s": round(ours, 2),
                    "huitouke_rows_per_s": round(rows / ours),
                    "pandas_to_sql_s": round(base, 2),
                    "pandas_rows_per_s": round(rows / base),
                    "speedup": round(base / ours, 2),
                    "huitouke_cpu_s": round(CPU["huitouke"], 2),
                    "pandas_cpu_s": round(CPU["pandas"], 2),
                    "load_average_1m": round(os.getloadavg()[0], 1),
                }
            )

        for i in range(args.repeat):
            pair("sqlite", f"sqlite:///{d / f'ours{i}.db'}", f"sqlite:///{d / f'naive{i}.db'}")
            for f in d.glob("*.db*"):
                f.unlink()
        if args.postgres_url and not args.no_postgres:
            for _ in range(args.repeat):
                with (
                    scratch_postgres(args.postgres_url) as a,
                    scratch_postgres(args.postgres_url) as b,
                ):
                    pair("postgresql", a, b)
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print(
            "| backend | rows | huitouke import | rows/s | CPU s | pandas read_csv + to_sql "
            "| rows/s | CPU s | speed-up | load avg |"
        )
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for r in results:
            print(
                f"| {r['backend']} | {r['rows']:,} | {r['huitouke_s']:.2f} s | "
                f"{r['huitouke_rows_per_s']:,} | {r['huitouke_cpu_s']:.2f} | "
                f"{r['pandas_to_sql_s']:.2f} s | {r['pandas_rows_per_s']:,} | "
                f"{r['pandas_cpu_s']:.2f} | {r['speedup']:.2f}× | {r['load_average_1m']} |"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
