"""Analytics benchmark: full analytics at scale, and monthly metrics side by side.

1. **Full analytics** of N orders / C customers (default 10M / 2M): period metrics by month,
   the cohort matrix, the purchase ladder and customers with RFM, layers and lifecycle (plus
   the segment summaries), run in a child process that reports its wall time and peak RSS
   (``ru_maxrss``). The orders are generated with seeded numpy straight into Arrow, written
   to Parquet, and read back by the child (the input table counts in its memory).
2. **Side by side on M orders** (default 1M, M/5 customers), the same monthly metrics
   (buyers, orders, revenue, returning buyers, customer / in-period / order repurchase rate,
   buy-back rate, returning revenue share) computed four ways and checked to agree:
   ``huitouke`` (``Analytics(orders).period_metrics("month")``, input validation included),
   one hand-written DuckDB query, pandas the tutorial way (pivot_table of orders per
   customer × month, ``map`` for repurchase flags, a row-wise ``apply`` for the buy-back
   rate — the recipe of the widely copied CDNOW tutorials), and pandas vectorised
   (groupby only), for reference.

Usage::

    python bench/bench_analytics.py            # 10M / 2M full, 1M side by side
    python bench/bench_analytics.py --quick    # 1M / 200k full, 100k side by side
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

ZONE = "Asia/Shanghai"
COUNTED = ("paid", "partially_refunded")


# --- 1. full analytics in a child process -----------------------------------------------------------


def child_full(parquet: str, as_of: str) -> dict[str, Any]:
    from huitouke.analytics import Analytics, LayerWindows

    orders = pq.read_table(parquet)
    steps: dict[str, float] = {}
    cpu_steps: dict[str, float] = {}
    t0 = time.perf_counter()
    c0 = time.process_time()

    def step(name: str, fn: Callable[[], Any]) -> Any:
        t, c = time.perf_counter(), time.process_time()
        out = fn()
        steps[name] = round(time.perf_counter() - t, 3)
        cpu_steps[name] = round(time.process_time() - c, 3)
        return out

    a = step("validate", lambda: Analytics(orders, timezone=ZONE, windows=LayerWindows()))
    step("prepare_counted_orders", a.prepare)
    pm = step("period_metrics_month", lambda: a.period_metrics("month"))
    step("cohorts", lambda: a.cohorts("share"))
    step("ladder", lambda: a.ladder(5))
    cust = step("customers_rfm_layers", lambda: a.customers(date.fromisoformat(as_of)))
    step("segments", lambda: a.segments(date.fromisoformat(as_of)))
    total = time.perf_counter() - t0
    return {
        "orders": orders.num_rows,
        "customers": len(cust),
        "periods": len(pm),
        "seconds": round(total, 2),
        # CPU seconds of all threads: on a shared machine the wall time also measures the
        # neighbours; CPU time / cores is what an idle machine's wall time tends to.
        "cpu_seconds": round(time.process_time() - c0, 2),
        "steps": steps,
        "cpu_steps": cpu_steps,
        "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
    }


def run_full(n_orders: int, n_customers: int, tmp: Path) -> dict[str, Any]:
    from huitouke.analytics import synthetic_orders

    t = time.perf_counter()
    orders = synthetic_orders(n_orders, n_customers, seed=42)
    path = tmp / "orders.parquet"
    pq.write_table(orders, path)
    gen = time.perf_counter() - t
    del orders
    proc = subprocess.run(
        [sys.executable, __file__, "--child-full", str(path), "--as-of", "2025-01-01"],
        capture_output=True,
        text=True,
        check=True,
    )
    out: dict[str, Any] = json.loads(proc.stdout)
    out["generate_seconds"] = round(gen, 2)
    return out


# --- 2. side by side -------------------------------------------------------------------------------

HAND_SQL = f"""
WITH o AS (
    SELECT customer_id, amount - refunded_amount AS rev,
           CAST(date_trunc('month', ordered_at AT TIME ZONE '{ZONE}') AS DATE) AS m,
           ROW_NUMBER() OVER (PARTITION BY customer_id ORDER BY ordered_at, order_id) AS seq
    FROM orders
    WHERE status IN ('paid', 'partially_refunded')
),
cm AS (
    SELECT m, customer_id, COUNT(*) AS n, SUM(rev) AS rev,
           MAX(CASE WHEN seq > 1 THEN 1 ELSE 0 END) AS ret,
           SUM(CASE WHEN seq > 1 THEN rev ELSE 0 END) AS rrev
    FROM o GROUP BY m, customer_id
),
mm AS (
    SELECT m, COUNT(*) AS buyers, SUM(n) AS orders, SUM(rev) AS revenue, SUM(ret) AS returning_buyers,
           SUM(CASE WHEN n >= 2 THEN 1 ELSE 0 END) AS multi, SUM(n - 1) AS repeat_orders,
           SUM(rrev) AS rrev
    FROM cm GROUP BY m
),
bb AS (
    SELECT a.m, COUNT(*) AS back
    FROM cm a JOIN cm b ON b.customer_id = a.customer_id AND b.m = a.m + INTERVAL 1 MONTH
    GROUP BY a.m
)
SELECT strftime(mm.m, '%Y-%m') AS period, buyers, orders, revenue, returning_buyers,
       returning_buyers / buyers AS customer_repurchase_rate,
       multi / buyers AS in_period_repurchase_rate,
       repeat_orders / orders AS order_repurchase_rate,
       CASE WHEN mm.m < (SELECT MAX(m) FROM mm) THEN COALESCE(back, 0) / buyers END AS buyback_rate,
       CAST(rrev AS DOUBLE) / CAST(revenue AS DOUBLE) AS returning_revenue_share
FROM mm LEFT JOIN bb ON bb.m = mm.m
ORDER BY mm.m
"""


def hand_duckdb(orders: pa.Table) -> pd.DataFrame:
    import duckdb

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.register("orders", orders)
    df = con.sql(HAND_SQL).to_arrow_table().to_pandas()
    con.close()
    return df


def huitouke_engine(orders: pa.Table) -> pd.DataFrame:
    from huitouke.analytics import Analytics

    with Analytics(orders, timezone=ZONE) as a:
        return a.period_metrics("month")


def _tutorial_frame(orders: pa.Table) -> pd.DataFrame:
    df = orders.to_pandas()
    df = df[df["status"].isin(COUNTED)].copy()
    df["revenue"] = df["amount"].astype(float) - df["refunded_amount"].astype(float)
    df["order_dt"] = df["ordered_at"].dt.tz_convert(ZONE).dt.tz_localize(None)
    df["month"] = df["order_dt"].dt.to_period("M")
    df = df.sort_values(["customer_id", "order_dt", "order_id"])
    df["nth"] = df.groupby("customer_id").cumcount() + 1
    return df


def pandas_tutorial(orders: pa.Table) -> pd.DataFrame:
    """The tutorial recipe: groupby for totals, pivot_table + map for 复购率, a row-wise
    apply for 回购率."""
    df = _tutorial_frame(orders)
    g = df.groupby("month")
    out = pd.DataFrame(
        {
            "buyers": g["customer_id"].nunique(),
            "orders": g["order_id"].count(),
            "revenue": g["revenue"].sum(),
        }
    )
    old = df[df["nth"] > 1]
    out["returning_buyers"] = old.groupby("month")["customer_id"].nunique()
    out["customer_repurchase_rate"] = out["returning_buyers"] / out["buyers"]
    pivot = df.pivot_table(
        index="customer_id", columns="month", values="order_id", aggfunc="count"
    ).fillna(0)
    purchase_r = pivot.map(lambda x: 1 if x > 1 else np.nan if x == 0 else 0)
    out["in_period_repurchase_rate"] = purchase_r.sum() / purchase_r.count()
    out["order_repurchase_rate"] = (pivot - 1).clip(lower=0).sum() / pivot.sum()
    purchase = pivot.map(lambda x: 1 if x > 0 else 0)

    def purchase_back(row: pd.Series) -> pd.Series:
        status: list[float] = []
        for i in range(len(row) - 1):
            if row.iloc[i] == 1:
                status.append(1 if row.iloc[i + 1] == 1 else 0)
            else:
                status.append(np.nan)
        status.append(np.nan)
        return pd.Series(status, index=row.index)

    back = purchase.apply(purchase_back, axis=1)
    out["buyback_rate"] = back.sum() / back.count()
    out["returning_revenue_share"] = old.groupby("month")["revenue"].sum() / out["revenue"]
    out.index = out.index.astype(str)
    return out.reset_index(names="period")


def pandas_vectorised(orders: pa.Table) -> pd.DataFrame:
    """What a careful pandas user writes: groupby only, no pivot, no apply."""
    df = _tutorial_frame(orders)
    df["is_ret"] = df["nth"] > 1
    df["m"] = df["order_dt"].dt.year * 12 + df["order_dt"].dt.month
    cm = df.groupby(["m", "customer_id"]).agg(n=("order_id", "size"), ret=("is_ret", "any"))
    per = cm.groupby(level=0)
    out = pd.DataFrame(
        {
            "buyers": per.size(),
            "orders": per["n"].sum(),
            "returning_buyers": per["ret"].sum(),
            "multi": (cm["n"] >= 2).groupby(level=0).sum(),
        }
    )
    out["revenue"] = df.groupby("m")["revenue"].sum()
    out["rrev"] = df[df["is_ret"]].groupby("m")["revenue"].sum()
    keys = cm.index.to_frame(index=False)
    nxt = pd.MultiIndex.from_arrays([keys["m"] + 1, keys["customer_id"]])
    keys["back"] = nxt.isin(cm.index)
    out["back"] = keys.groupby("m")["back"].sum()
    out["customer_repurchase_rate"] = out["returning_buyers"] / out["buyers"]
    out["in_period_repurchase_rate"] = out["multi"] / out["buyers"]
    out["order_repurchase_rate"] = (out["orders"] - out["buyers"]) / out["orders"]
    out["buyback_rate"] = out["back"] / out["buyers"]
    out.loc[out.index.max(), "buyback_rate"] = np.nan
    out["returning_revenue_share"] = out["rrev"] / out["revenue"]
    out["period"] = [f"{(m - 1) // 12:04d}-{(m - 1) % 12 + 1:02d}" for m in out.index]
    return out.reset_index(drop=True)


CHECK = (
    "buyers",
    "orders",
    "returning_buyers",
    "customer_repurchase_rate",
    "in_period_repurchase_rate",
    "order_repurchase_rate",
    "buyback_rate",
    "returning_revenue_share",
)


def _agree(name: str, got: pd.DataFrame, want: pd.DataFrame) -> None:
    assert list(got["period"]) == list(want["period"]), name
    for c in CHECK:
        a = pd.to_numeric(got[c], errors="coerce").astype(float).to_numpy()
        b = pd.to_numeric(want[c], errors="coerce").astype(float).to_numpy()
        assert np.allclose(a, b, rtol=1e-9, equal_nan=True), (name, c)
    a = np.array([float(x) for x in got["revenue"]])
    b = np.array([float(x) for x in want["revenue"]])
    assert np.allclose(a, b, rtol=1e-9), (name, "revenue")


def best_of(fn: Callable[[], Any], reps: int) -> tuple[float, Any]:
    best, out = float("inf"), None
    for _ in range(reps):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def run_side_by_side(n_orders: int, reps: int) -> dict[str, Any]:
    from huitouke.analytics import synthetic_orders

    orders = synthetic_orders(n_orders, max(1, n_orders // 5), seed=7)
    t_engine, engine = best_of(lambda: huitouke_engine(orders), reps)
    t_hand, hand = best_of(lambda: hand_duckdb(orders), reps)
    t_vec, vec = best_of(lambda: pandas_vectorised(orders), 1)
    t_tut, tut = best_of(lambda: pandas_tutorial(orders), 1)
    for name, df in (("duckdb", hand), ("pandas tutorial", tut), ("pandas vectorised", vec)):
        _agree(name, df, engine)
    return {
        "orders": n_orders,
        "huitouke_s": round(t_engine, 3),
        "hand_duckdb_s": round(t_hand, 3),
        "pandas_tutorial_s": round(t_tut, 2),
        "pandas_vectorised_s": round(t_vec, 2),
        "speedup_vs_pandas_tutorial": round(t_tut / t_engine, 1),
        "speedup_vs_pandas_vectorised": round(t_vec / t_engine, 1),
        "huitouke_over_hand_duckdb": round(t_engine / t_hand, 2),
        "results_agree": True,
    }


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--quick", action="store_true", help="1M/200k full, 100k side by side")
    p.add_argument("--orders", type=int, default=None, help="orders for the full run")
    p.add_argument("--customers", type=int, default=None, help="customers for the full run")
    p.add_argument("--side-orders", type=int, default=None, help="orders for the side-by-side")
    p.add_argument("--reps", type=int, default=3, help="repetitions (best of) for the fast ways")
    p.add_argument("--skip-full", action="store_true")
    p.add_argument("--skip-side", action="store_true")
    p.add_argument("--child-full", help=argparse.SUPPRESS)
    p.add_argument("--as-of", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child_full:
        print(json.dumps(child_full(args.child_full, args.as_of)))
        return
    n = args.orders or (1_000_000 if args.quick else 10_000_000)
    c = args.customers or n // 5
    m = args.side_orders or (100_000 if args.quick else 1_000_000)
    report: dict[str, Any] = {
        "machine": f"{os.cpu_count()} cores, {platform.system()} {platform.machine()}, "
        f"Python {platform.python_version()}",
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }
    if not args.skip_full:
        with tempfile.TemporaryDirectory() as tmp:
            report["full"] = run_full(n, c, Path(tmp))
        report["full"]["target"] = "≤ 15 s and ≤ 4 GiB peak RSS at 10M orders / 2M customers"
    if not args.skip_side:
        report["side_by_side"] = run_side_by_side(m, args.reps)
        report["side_by_side"]["target"] = (
            "≥ 20× pandas tutorial; ≤ 3× the hand-written DuckDB query"
        )
    report["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(report, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
