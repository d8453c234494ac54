"""Journeys on a customers frame read from Parquet: the whole frame loaded into the process
(``frame_from_parquet(path)``, the baseline) against the audience filters pushed down to
DuckDB (``frame_from_parquet(path, journeys=…)``), each in a child process of its own.

The frame is the analytics' per-customer rows (``Analytics(path).write_customers``) of
generated orders — or a frame file given with ``--frame`` (the scale bench's
``duckdb-customers-….parquet``). The journeys (``--journeys``, built-in ids) default to the
ones whose audiences select by layer: the win-back journeys and replenishment, all switched
on, evaluated without a contact gate on a day of the data. (A journey without audience
filters — the post-purchase care — or with a wide one reads nearly every customer.)
Reported per child: wall time of reading and of evaluating, the rows read, peak RSS; the
planned rows of both are checked equal.

    python bench/bench_frame_pushdown.py --orders 1000000 --customers 200000
    python bench/bench_frame_pushdown.py --frame /tmp/huitouke-100m/…/duckdb-customers.parquet \\
        --modes pushdown
"""

from __future__ import annotations

import argparse
import os
import pickle
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

AS_OF = date(2024, 12, 31)
ZONE = "Asia/Shanghai"
DEFAULT = "winback_high,winback_low,winback_low_promotion,replenishment"


def journeys() -> list[Any]:
    from huitouke.journeys.loader import builtin_journeys

    ids = os.environ.get("BENCH_JOURNEYS", DEFAULT).split(",")
    return [j.model_copy(update={"enabled": True}) for j in builtin_journeys() if j.id in ids]


def child(mode: str, frame_path: str, out: str) -> None:
    from huitouke.journeys.engine import EvaluationContext, evaluate
    from huitouke.journeys.integration import frame_from_parquet

    js = journeys()
    t = time.perf_counter()
    frame = frame_from_parquet(frame_path, journeys=js if mode == "pushdown" else None, as_of=AS_OF)
    read = time.perf_counter() - t
    t = time.perf_counter()
    plan = evaluate(js, frame, EvaluationContext(timezone=ZONE), AS_OF)
    evaluated = time.perf_counter() - t
    planned = plan.planned()[["journey_id", "customer_id", "step_id", "occurrence"]]
    planned = planned.astype(str).sort_values(list(planned.columns)).reset_index(drop=True)
    with open(out, "wb") as fh:
        pickle.dump(
            {"read": read, "evaluate": evaluated, "rows": len(frame), "planned": planned}, fh
        )


def run(mode: str, frame_path: str, tmp: Path) -> dict[str, Any]:
    out = str(tmp / f"{mode}.pickle")
    t = time.perf_counter()
    # one child per mode, so its peak RSS is its own (ru_maxrss of the waited child)
    proc = subprocess.Popen([sys.executable, __file__, "--child", mode, frame_path, out])
    _, status, usage = os.wait4(proc.pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, f"{mode} failed"
    wall = time.perf_counter() - t
    with open(out, "rb") as fh:
        data: dict[str, Any] = pickle.load(fh)
    data["wall"] = wall
    data["peak_rss_gib"] = usage.ru_maxrss / 1024**2
    return data


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--orders", type=int, default=1_000_000)
    ap.add_argument("--customers", type=int, default=200_000)
    ap.add_argument("--frame", default=None, help="a customers frame Parquet to read")
    ap.add_argument("--modes", default="whole,pushdown")
    ap.add_argument("--journeys", default=DEFAULT, help="built-in journey ids")
    ap.add_argument("--child", nargs=3, metavar=("MODE", "FRAME", "OUT"))
    args = ap.parse_args()
    if args.child:
        child(*args.child)
        return
    os.environ["BENCH_JOURNEYS"] = args.journeys
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        frame_path = args.frame
        if frame_path is None:
            from huitouke.analytics import Analytics, write_synthetic_orders

            orders = str(tmp / "orders.parquet")
            write_synthetic_orders(orders, args.orders, args.customers, seed=1)
            frame_path = str(tmp / "customers.parquet")
            with Analytics(orders, timezone=ZONE) as a:
                a.write_customers(AS_OF, frame_path)
        load = os.getloadavg()[0]
        res = {m: run(m, frame_path, tmp) for m in modes}
        import pyarrow.dataset as ds

        total = ds.dataset(frame_path, format="parquet").count_rows()

    if len(res) == 2:
        import pandas as pd

        pd.testing.assert_frame_equal(res["whole"]["planned"], res["pushdown"]["planned"])
    print(
        f"{date.today()}, {os.cpu_count()} cores, frame {frame_path} ({total:,} customers), "
        f"journeys {args.journeys}, load average at start {load:.1f}"
        + ("; planned rows equal: yes" if len(res) == 2 else "")
    )
    print("| mode | rows read | read (s) | evaluate (s) | wall (s) | peak RSS (GiB) | planned |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for m, r in res.items():
        print(
            f"| {m} | {r['rows']:,} | {r['read']:.2f} | {r['evaluate']:.2f} | {r['wall']:.1f} "
            f"| {r['peak_rss_gib']:.2f} | {len(r['planned']):,} |"
        )


if __name__ == "__main__":
    sys.exit(main())
