"""Where the Spark engine's time goes: the analytics of ``bench/bench_spark.py`` on Spark
``local[2]`` with Spark's event log on, then per SQL execution (each query or cached step)
its wall time, the CPU time and run time of its tasks and the Parquet records it read.

Task CPU is the work the executors did; wall time past it is time no task ran (planning,
code generation, JIT compilation on the driver) or tasks waiting for a core (the load).

Usage::

    python bench/profile_spark.py --orders 500000 --customers 100000 [--dir /tmp/spark-profile]

The orders are generated (seeded) into DIR once and the event log written under DIR;
nothing is timed under the bench lock (a profile, not a benchmark).
"""

from __future__ import annotations

import argparse
import glob
import io
import json
import os
import sys
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

ZONE = "Asia/Shanghai"
AS_OF = date(2024, 12, 31)


def run(parquet: str, events: str, out: str, partitions: str) -> dict[str, float]:
    from pyspark.sql import SparkSession

    from huitouke.analytics import LayerWindows
    from huitouke.analytics.spark import SparkAnalytics

    session = (
        SparkSession.builder.master("local[2]")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", partitions)
        .config("spark.driver.memory", "4g")
        .config("spark.eventLog.enabled", "true")
        .config("spark.eventLog.dir", events)
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    steps: dict[str, float] = {}

    def step(name: str, fn: Callable[[], Any]) -> Any:
        t = time.perf_counter()
        value = fn()
        steps[name] = time.perf_counter() - t
        return value

    a = step(
        "read + validate",
        lambda: SparkAnalytics(parquet, timezone=ZONE, windows=LayerWindows(), session=session),
    )
    step("counted orders", a.prepare)
    step("period metrics, month", lambda: a.metrics_json("month"))
    step("cohorts", lambda: a.cohorts("customers"))
    step("ladder", a.ladder)
    step("customers (written to Parquet)", lambda: a.write_customers(AS_OF, out))
    step("segments", lambda: a.segments(AS_OF))
    session.stop()
    return steps


def summarise(log: str) -> list[dict[str, Any]]:
    """Per SQL execution of a Spark event log (plain or zstd): wall s, task CPU s, task run
    s, Parquet records read, and the plan's first line."""
    raw = open(log, "rb")  # noqa: SIM115 (closed with the reader)
    stream: Any = raw
    if log.endswith(".zstd"):
        import zstandard

        stream = zstandard.ZstdDecompressor().stream_reader(raw)
    execs: dict[str, dict[str, Any]] = {}
    stage_exec: dict[int, str] = {}
    with io.TextIOWrapper(stream, encoding="utf-8") as lines:
        for line in lines:
            e = json.loads(line)
            kind = e["Event"]
            if kind.endswith("SQLExecutionStart"):
                plan = e.get("physicalPlanDescription", "").split("== Physical Plan ==\n")
                execs[str(e["executionId"])] = {
                    "start": e["time"],
                    "end": None,
                    "cpu": 0.0,
                    "run": 0.0,
                    "records": 0,
                    "plan": (plan[1].splitlines()[0] if len(plan) > 1 else "")[:60],
                }
            elif kind.endswith("SQLExecutionEnd"):
                execs[str(e["executionId"])]["end"] = e["time"]
            elif kind == "SparkListenerJobStart":
                x = (e.get("Properties") or {}).get("spark.sql.execution.id")
                for s in e["Stage IDs"]:
                    stage_exec[s] = str(x)
            elif kind == "SparkListenerTaskEnd":
                x = stage_exec.get(e["Stage ID"])
                m = e.get("Task Metrics") or {}
                if x in execs:
                    execs[x]["cpu"] += m.get("Executor CPU Time", 0) / 1e9
                    execs[x]["run"] += m.get("Executor Run Time", 0) / 1e3
                    execs[x]["records"] += (m.get("Input Metrics") or {}).get("Records Read", 0)
    rows = []
    for x, v in sorted(execs.items(), key=lambda kv: int(kv[0])):
        wall = (v["end"] - v["start"]) / 1000 if v["end"] else float("nan")
        rows.append(
            {
                "execution": int(x),
                "wall": wall,
                **{k: v[k] for k in ("cpu", "run", "records", "plan")},
            }
        )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--orders", type=int, default=500_000)
    ap.add_argument("--customers", type=int, default=100_000)
    ap.add_argument("--dir", default="/tmp/spark-profile")
    ap.add_argument("--shuffle-partitions", default="4")
    args = ap.parse_args()
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    from huitouke.analytics import write_synthetic_orders

    d = Path(args.dir)
    events = d / f"events-{int(time.time())}"
    events.mkdir(parents=True)
    parquet = d / f"orders-{args.orders}-{args.customers}.parquet"
    if not parquet.exists():
        write_synthetic_orders(str(parquet) + ".part", args.orders, args.customers, seed=1)
        os.replace(str(parquet) + ".part", parquet)
    load = os.getloadavg()[0]
    steps = run(str(parquet), str(events), str(d / "customers"), args.shuffle_partitions)
    (log,) = glob.glob(str(events / "*" / "events_*")) or glob.glob(str(events / "*"))
    rows = summarise(log)
    print(
        f"{args.orders:,} orders / {args.customers:,} customers, load average at start {load:.1f}"
    )
    for name, v in steps.items():
        print(f"| {name} | {v:.2f} s |")
    print("| SQL execution | wall (s) | task CPU (s) | task run (s) | Parquet records | plan |")
    for r in rows:
        if r["cpu"] or r["wall"] >= 0.5:
            print(
                f"| {r['execution']} | {r['wall']:.1f} | {r['cpu']:.2f} | {r['run']:.1f} | "
                f"{r['records']:,} | {r['plan']} |"
            )
    print(
        f"analytics {sum(steps.values()):.1f} s wall; tasks {sum(r['cpu'] for r in rows):.1f} s "
        f"CPU, {sum(r['run'] for r in rows):.1f} s run; {len(rows)} SQL executions"
    )


if __name__ == "__main__":
    main()
