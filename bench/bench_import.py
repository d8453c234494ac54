"""Import throughput: `huitouke` vs the naive pandas way, side by side in one run.

Generates an order CSV (order_id, customer_id, ordered_at, amount, status, currency,
channel; 1,000,000 rows by default, 100,000 with --quick), then times

* huitouke: ``import_file`` into a fresh SQLite store (parse with pyarrow.csv, vectorised
  validation, the later-state upsert, customers, the batch record — one transaction);
* baseline: ``pandas.read_csv`` + ``DataFrame.to_sql`` into a fresh SQLite file (no
  validation, no upsert, no customers: the least a naive loader does);

and the same two into PostgreSQL when a URL is given (--postgres-url or
HUITOUKE_TEST_POSTGRES_URL; a scratch database is created and dropped).

With ``--contacts`` every row also carries the buyer's phone (a Chinese mobile number for
nine customers in ten, some written ``138 0013 8000``) and e-mail (three in ten), and the
huitouke import is timed twice side by side: as the doors run it (the buyers' hashed
matching keys written in the same unit of work, :mod:`huitouke.identity`) and without the
keys (the import before keys on write) — the ratio is the cost of the keys.

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


def generate(path: Path, n: int, seed: int = 42, *, contacts: bool = False) -> None:
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
    if contacts:
        table = _with_contacts(table, customer_id, rng)
    pacsv.write_csv(table, path, write_options=pacsv.WriteOptions(quoting_style="none"))


def _with_contacts(table: pa.Table, customer_id: pa.Array, rng: Any) -> pa.Table:
    """The buyer's phone and e-mail per row, the same for every order of a customer."""
    k = pc.cast(pc.utf8_slice_codeunits(customer_id, 1), pa.int64()).to_numpy()
    mobile = 13_000_000_000 + (k * 7_919) % 6_000_000_000  # 130…189 blocks
    spaced = (k % 4) == 0
    digits = pa.array(mobile).cast(pa.string())
    written = pc.if_else(
        pa.array(spaced),
        pc.binary_join_element_wise(
            pc.utf8_slice_codeunits(digits, 0, 3), pc.utf8_slice_codeunits(digits, 3, 7),
            pc.utf8_slice_codeunits(digits, 7), " ",
        ),
        digits,
    )  # fmt: skip
    phone = pc.if_else(pa.array((k % 10) != 9), written, pa.nulls(len(k), pa.string()))
    email = pc.if_else(
        pa.array((k % 10) < 3),
        pc.binary_join_element_wise(customer_id, "example.com", "@"),
        pa.nulls(len(k), pa.string()),
    )
    return table.append_column("phone", phone).append_column("email", email)


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


def run_huitouke(url: str, csv: Path, *, keys: bool = True) -> tuple[float, int]:
    import huitouke.app.imports as imports
    from huitouke.store.db import Store

    store = Store(url)
    store.migrate()
    writer = imports.key_writer
    if not keys:  # the import as it was before the keys were written on import
        imports.key_writer = lambda settings: None  # type: ignore[assignment,return-value]
    try:
        label = "huitouke" if keys else "huitouke_no_keys"
        secs, summary = timed(lambda: imports.import_file(store, csv, progress=False), label)
        n = store.load_orders().num_rows
        assert n == summary.orders_inserted, (n, summary)
        return secs, n
    finally:
        imports.key_writer = writer
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
    ap.add_argument(
        "--contacts",
        action="store_true",
        help="rows carry phone and e-mail; time the import with and without identity keys",
    )
    args = ap.parse_args(argv)
    n = 100_000 if args.quick else args.rows
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="huitouke-bench-") as tmp:
        d = Path(tmp)
        csv = d / f"orders_{n}.csv"
        gen_s, _ = timed(lambda: generate(csv, n, contacts=args.contacts))
        print(
            f"generated {n:,} rows ({csv.stat().st_size / 1e6:.1f} MB) in {gen_s:.1f}s",
            file=sys.stderr,
        )

        def pair(backend: str, url_a: str, url_b: str) -> None:
            if args.contacts:  # keys on write: the import with and without them
                with_keys, rows = run_huitouke(url_a, csv)
                without, _ = run_huitouke(url_b, csv, keys=False)
                results.append(
                    {
                        "backend": backend,
                        "rows": rows,
                        "with_keys_s": round(with_keys, 2),
                        "without_keys_s": round(without, 2),
                        "ratio": round(with_keys / without, 3),
                        "with_keys_cpu_s": round(CPU["huitouke"], 2),
                        "without_keys_cpu_s": round(CPU["huitouke_no_keys"], 2),
                        "load_average_1m": round(os.getloadavg()[0], 1),
                    }
                )
                return
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
    elif args.contacts:
        print(
            "| backend | rows | import with keys | CPU s | without keys | CPU s | ratio | load avg |"
        )
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
        for r in results:
            print(
                f"| {r['backend']} | {r['rows']:,} | {r['with_keys_s']:.2f} s | "
                f"{r['with_keys_cpu_s']:.2f} | {r['without_keys_s']:.2f} s | "
                f"{r['without_keys_cpu_s']:.2f} | {r['ratio']:.3f} | {r['load_average_1m']} |"
            )
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
