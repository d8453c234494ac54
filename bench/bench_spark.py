"""The analytics on DuckDB and on Spark ``local[2]`` side by side, on the same generated orders.

N orders / C customers (default 1M / 200k) are generated with seeded numpy
(``huitouke.analytics.synthetic_orders``) and written to Parquet. Each engine runs in a child
process of its own: monthly metrics (``metrics_json``), the cohort matrix, the ladder,
customers with RFM / layers / lifecycle and the segment summaries. DuckDB reads the Parquet
file into Arrow; Spark reads it itself (``SparkAnalytics(path)``), in a JVM the child starts
(its start-up is reported apart). Wall time per step, the children's CPU seconds (the JVM
included) and peak RSS are reported, and the results of both are checked equal (the JSON,
the cohort matrix, the ladder and every customer row). The Spark/DuckDB ratio is of the
analytics steps, without the JVM start.

Usage::

    python bench/bench_spark.py                 # 1M / 200k
    python bench/bench_spark.py --orders 100000 --customers 20000
    python bench/bench_spark.py --engines duckdb --orders 10000000 --customers 2000000 \
        --memory-limit 16GB                      # DuckDB alone at a larger scale
    python bench/bench_spark.py --scoring 1000000   # predictions: Spark scoring customers/s
    python bench/bench_spark.py --scale --orders 100000000 --customers 20000000 \
        --engines duckdb --memory-limit 12GB --data /tmp/huitouke-100m
    python bench/bench_spark.py --predict --customers 20000000 --engines duckdb,spark \
        --memory-limit 12GB --spark-driver-memory 6g --data /tmp/huitouke-predict

``--scale`` is the path for data larger than memory: the orders are generated in row groups
(:func:`huitouke.analytics.write_synthetic_orders`, never all in memory) into ``--data``
(a directory under /tmp, regenerated when its file is missing, deleted by hand when done;
never committed), DuckDB reads the Parquet itself (``Analytics(path)``: ``read_parquet``,
``memory_limit`` and spilling), and both engines write the customer rows to Parquet
(``write_customers``) instead of returning them; the customer files are compared by DuckDB
(``EXCEPT ALL`` both ways), the rest as without ``--scale``.

``--scoring C`` generates 3·C orders of C customers and runs the predictions on Spark
``local[2]`` (:func:`huitouke.prediction.spark.predict_spark`): the summary and the fit,
then the ``mapInArrow`` scoring of every customer into Spark's no-op sink, twice (the first
run includes starting the Python workers and their imports), timed apart,
beside the same :class:`~huitouke.prediction.scoring.Scorer` on the same summary in this
one Python process (one core) as the baseline.

``--predict`` runs the command users run, ``huitouke predict ORDERS.parquet --format parquet
--out …``, once per engine on the same generated Parquet (``--customers`` C, ``--orders``
default 5·C, generated in row groups into ``--data`` like ``--scale``): Spark ``local[2]``
(``HUITOUKE_SPARK_MASTER``; driver memory and shuffle partitions through
``PYSPARK_SUBMIT_ARGS``) and DuckDB reading the Parquet itself
(``HUITOUKE_DUCKDB_MEMORY_LIMIT``). The phases are timed from the command's progress lines
on stderr (orders read; validation, summary and fit done; scores written), the CPU seconds
and resident memory of its process tree (the JVM included) sampled every second. The two
engines' score files are then compared by DuckDB, customer by customer.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
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

import pandas as pd
import pyarrow.parquet as pq

ZONE = "Asia/Shanghai"
AS_OF = date(2024, 12, 31)


def child(engine: str, parquet: str, out: str) -> None:
    from huitouke.analytics import Analytics, LayerWindows

    steps: dict[str, float] = {}
    results: dict[str, Any] = {}

    def step(name: str, fn: Callable[[], Any]) -> Any:
        t = time.perf_counter()
        value = fn()
        steps[name] = time.perf_counter() - t
        return value

    windows = LayerWindows()
    scale = os.environ.get("BENCH_SCALE") == "1"
    limit = os.environ.get("BENCH_DUCKDB_MEMORY_LIMIT")
    if engine == "spark":
        from pyspark.sql import SparkSession

        from huitouke.analytics.spark import SparkAnalytics

        session = step(
            "start Spark (JVM)",
            lambda: (
                SparkSession.builder.master("local[2]")
                .config("spark.ui.enabled", "false")
                .config("spark.ui.showConsoleProgress", "false")
                .config("spark.sql.shuffle.partitions", "4")
                .config("spark.driver.memory", os.environ.get("BENCH_SPARK_DRIVER", "4g"))
                .getOrCreate()
            ),
        )
        session.sparkContext.setLogLevel("ERROR")
        a = step(
            "read + validate",
            lambda: SparkAnalytics(parquet, timezone=ZONE, windows=windows, session=session),
        )
    elif scale:  # DuckDB reads the Parquet itself, spilling past the memory limit
        a = step(
            "read + validate",
            lambda: Analytics(parquet, timezone=ZONE, windows=windows, memory_limit=limit),
        )
    else:
        a = step(
            "read + validate",
            lambda: Analytics(
                pq.read_table(parquet), timezone=ZONE, windows=windows, memory_limit=limit
            ),
        )
    step("counted orders", lambda: a.prepare())
    results["metrics"] = step("period metrics, month", lambda: a.metrics_json("month"))
    results["cohorts"] = step("cohorts", lambda: a.cohorts("customers"))
    results["ladder"] = step("ladder", lambda: a.ladder())
    if scale:
        # kept beside the orders (the journeys bench reads the DuckDB one as its frame)
        data = Path(os.environ.get("BENCH_DATA") or Path(out).parent)
        target = str(data / f"{engine}-customers-{Path(parquet).stem}.parquet")
        results["customer_rows"] = step(
            "customers, RFM, layers, lifecycle",
            lambda: a.write_customers(AS_OF, target),
        )
        results["customers_file"] = target
    else:
        results["customers"] = step("customers, RFM, layers, lifecycle", lambda: a.customers(AS_OF))
    results["segments"] = step("segments", lambda: a.segments(AS_OF))
    jvm: dict[str, float] = {}
    if engine == "spark":
        jvm = _proc_usage(session.sparkContext._gateway.proc.pid)
    with open(out, "wb") as fh:
        pickle.dump({"steps": steps, "results": results, "jvm": jvm}, fh)


def _proc_usage(pid: int) -> dict[str, float]:
    """CPU seconds and peak RSS (GiB) of a running process, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    hwm = 0.0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            hwm = int(line.split()[1]) / 1024**2
    return {"cpu": cpu, "peak_rss_gib": hwm}


def scoring_child(parquet: str, out: str) -> None:
    """Predictions on Spark local[2]: summary + fit, then the scoring alone."""
    import numpy as np
    import pyarrow as pa
    from pyspark.sql import SparkSession

    from huitouke.analytics.spark import orders_frame
    from huitouke.prediction.spark import predict_spark, spark_summary

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    session = (
        SparkSession.builder.master("local[2]")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.driver.memory", "4g")
        .config("spark.sql.session.timeZone", "UTC")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    steps: dict[str, float] = {}
    t = time.perf_counter()
    orders = orders_frame(session, parquet)
    run = predict_spark(orders, as_of=AS_OF, timezone=ZONE, margin=0.3, discount_rate=0.1)
    steps["summary + fit (driver)"] = time.perf_counter() - t
    t = time.perf_counter()
    run.scores.write.format("noop").mode("overwrite").save()
    steps["scoring, first run (Python workers start)"] = time.perf_counter() - t
    t = time.perf_counter()
    run.scores.write.format("noop").mode("overwrite").save()
    steps["scoring (mapInArrow)"] = time.perf_counter() - t
    # the same summary collected, for the baseline in this process
    table = spark_summary(orders, timezone=ZONE, as_of=AS_OF)[0].toArrow()
    t = time.perf_counter()
    run.fit.scorer.score(
        table.column("customer_id"),
        table.column("frequency").to_numpy(),
        table.column("recency").to_numpy(),
        table.column("T").to_numpy(),
        table.column("monetary_value").to_numpy(),
        table.column("own_mean").to_numpy(),
    )
    steps["scoring in one process (1 core)"] = time.perf_counter() - t
    result = {
        "steps": steps,
        "customers": run.fit.customers,
        "distinct_rows": run.fit.distinct_rows,
        "model": run.model,
        "summary_rows": int(np.int64(table.num_rows)),
        "arrow": pa.__version__,
    }
    with open(out, "wb") as fh:
        pickle.dump(result, fh)


def scoring_main(customers: int) -> None:
    from huitouke.analytics import synthetic_orders

    with tempfile.TemporaryDirectory() as d:
        parquet = str(Path(d) / "orders.parquet")
        pq.write_table(synthetic_orders(3 * customers, customers, seed=1), parquet)
        out = str(Path(d) / "scoring.pickle")
        load = os.getloadavg()[0]
        t = time.perf_counter()
        subprocess.run(
            [sys.executable, __file__, "--scoring-child", parquet, out],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        wall = time.perf_counter() - t
        with open(out, "rb") as fh:
            r = pickle.load(fh)
    s = r["steps"]
    spark_rate = r["customers"] / s["scoring (mapInArrow)"]
    local_rate = r["customers"] / s["scoring in one process (1 core)"]
    print(
        f"{date.today()}, {os.cpu_count()} cores, {3 * customers:,} orders / "
        f"{r['customers']:,} customers ({r['distinct_rows']:,} distinct (x, t_x, T) rows "
        f"collected for the fit), model {r['model']}, load average at start {load:.1f}"
    )
    for k, v in s.items():
        print(f"| {k} | {v:.2f} s |")
    print(
        f"Spark local[2] scoring: {spark_rate:,.0f} customers/s = {spark_rate / 2:,.0f} per core; "
        f"in one process: {local_rate:,.0f} customers/s (1 core); child wall {wall:.1f} s"
    )


def _tree_usage(root: int) -> tuple[float, float]:
    """CPU seconds and resident GiB of ``root`` and its descendants (the JVM), from /proc."""
    parents: dict[int, int] = {}
    stats: dict[int, list[str]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(entry)] = int(fields[1])
        stats[int(entry)] = fields
    tree = {root}
    grew = True
    while grew:
        grew = False
        for pid, ppid in parents.items():
            if ppid in tree and pid not in tree:
                tree.add(pid)
                grew = True
    ticks = os.sysconf("SC_CLK_TCK")
    page = os.sysconf("SC_PAGE_SIZE")
    cpu = sum((int(stats[p][11]) + int(stats[p][12])) / ticks for p in tree if p in stats)
    rss = sum(int(stats[p][21]) * page for p in tree if p in stats) / 1024**3
    return cpu, rss


def predict_cli(engine: str, parquet: str, out: str, env: dict[str, str]) -> dict[str, Any]:
    """``huitouke predict PARQUET --engine ENGINE --format parquet --out OUT``, its phases
    timed from the progress lines (en) it writes to stderr."""
    import shutil
    import threading

    if os.path.isdir(out):
        shutil.rmtree(out)
    elif os.path.exists(out):
        os.remove(out)
    cli = str(Path(sys.executable).with_name("huitouke"))
    cmd = [
        cli,
        "predict",
        parquet,
        "--engine",
        engine,
        "--as-of",
        AS_OF.isoformat(),
        "--timezone",
        ZONE,
        "--format",
        "parquet",
        "--out",
        out,
        "--lang",
        "en",
    ]
    print("$ " + " ".join(cmd), flush=True)
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    usage = {"cpu": 0.0, "peak_rss_gib": 0.0}

    def sample() -> None:
        while proc.poll() is None:
            cpu, rss = _tree_usage(proc.pid)
            usage["cpu"] = max(usage["cpu"], cpu)
            usage["peak_rss_gib"] = max(usage["peak_rss_gib"], rss)
            time.sleep(1.0)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    marks: dict[str, float] = {}
    customers = 0
    lines = []
    assert proc.stderr is not None
    for line in proc.stderr:
        now = time.perf_counter() - t0
        lines.append(line.rstrip())
        if line.startswith("read "):
            marks["read"] = now
        elif " fitted on " in line:
            marks["fitted"] = now
            customers = int(line.split(" fitted on ", 1)[1].split(" ", 1)[0].replace(",", ""))
        elif line.strip() == out:
            marks["written"] = now
    proc.wait()
    wall = time.perf_counter() - t0
    sampler.join()
    if proc.returncode != 0 or len(marks) != 3:
        raise SystemExit(f"{engine}: exit {proc.returncode}\n" + "\n".join(lines[-30:]))
    return {
        "steps": {
            "start + read the orders' count": marks["read"],
            "validate + summary + collapse + fit": marks["fitted"] - marks["read"],
            "scoring + writing Parquet": marks["written"] - marks["fitted"],
        },
        "wall": wall,
        "customers": customers,
        "log": lines,
        **usage,
    }


def same_scores(duck: str, spark: str) -> dict[str, int]:
    """Customers whose scores differ between the two files (beyond the tolerance of
    tests/prediction/parity.py), counted by DuckDB."""
    import duckdb

    def rel(path: str) -> str:
        return (
            f"read_parquet('{path}/*.parquet')"
            if Path(path).is_dir()
            else f"read_parquet('{path}')"
        )

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    row = con.execute(
        f"""SELECT COUNT(*) AS customers,
            COUNT(*) FILTER (d.customer_id IS NULL OR s.customer_id IS NULL) AS missing,
            COUNT(*) FILTER (d.frequency <> s.frequency OR d.churn_risk <> s.churn_risk
                OR d.model <> s.model) AS counts,
            COUNT(*) FILTER (abs(d.p_alive - s.p_alive) > 1e-9 * abs(d.p_alive)
                OR abs(d.expected_orders - s.expected_orders) > 1e-9 * abs(d.expected_orders))
                AS floats,
            COUNT(*) FILTER (abs(d.clv - s.clv) > 0.01
                OR abs(d.expected_spend - s.expected_spend) > 0.01) AS money,
            COUNT(*) FILTER (d.next_order_median IS DISTINCT FROM s.next_order_median
                OR d.next_order_low IS DISTINCT FROM s.next_order_low
                OR d.next_order_high IS DISTINCT FROM s.next_order_high) AS dates
        FROM {rel(duck)} d FULL JOIN {rel(spark)} s USING (customer_id)"""
    ).fetchall()[0]
    con.close()
    names = ("customers", "missing", "counts", "floats", "money", "dates")
    return dict(zip(names, (int(v) for v in row), strict=True))


def predict_main(args: argparse.Namespace) -> None:
    from huitouke.analytics import write_synthetic_orders

    customers = args.customers
    orders = args.orders_given or 5 * customers
    data = Path(args.data or tempfile.gettempdir())
    data.mkdir(parents=True, exist_ok=True)
    parquet = str(data / f"orders-{orders}-{customers}.parquet")
    if not Path(parquet).exists():
        t = time.perf_counter()
        write_synthetic_orders(parquet + ".part", orders, customers, seed=1)
        os.replace(parquet + ".part", parquet)
        print(
            f"generated {orders:,} orders / {customers:,} customers in "
            f"{time.perf_counter() - t:.1f} s: {parquet} "
            f"({Path(parquet).stat().st_size / 1024**3:.2f} GiB)",
            flush=True,
        )
    env = dict(os.environ)
    env["HUITOUKE_SPARK_MASTER"] = "local[2]"
    env["PYSPARK_SUBMIT_ARGS"] = (
        f"--driver-memory {args.spark_driver_memory} "
        "--conf spark.sql.shuffle.partitions=8 pyspark-shell"
    )
    if args.memory_limit:
        env["HUITOUKE_DUCKDB_MEMORY_LIMIT"] = args.memory_limit
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    runs: dict[str, dict[str, Any]] = {}
    outs: dict[str, str] = {}
    for engine in engines:
        outs[engine] = str(data / f"scores-{engine}-{customers}.parquet")
        load = os.getloadavg()
        r = predict_cli(engine, parquet, outs[engine], env)
        r["load"] = (load, os.getloadavg())
        runs[engine] = r
        score = r["steps"]["scoring + writing Parquet"]
        print(
            f"{engine}: {r['customers']:,} customers; wall {r['wall']:.1f} s, CPU "
            f"{r['cpu']:.1f} s (process tree), peak RSS {r['peak_rss_gib']:.2f} GiB; load "
            f"{load[0]:.1f} → {os.getloadavg()[0]:.1f}",
            flush=True,
        )
        for k, v in r["steps"].items():
            print(f"  | {k} | {v:.2f} |", flush=True)
        print(
            f"  scoring + writing: {r['customers'] / score:,.0f} customers/s "
            f"({r['customers'] / score / 2:,.0f} per core of 2)",
            flush=True,
        )
    print(
        f"{date.today()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{orders:,} orders / {customers:,} customers"
    )
    if len(runs) == 2:
        diff = same_scores(outs["duckdb"], outs["spark"])
        print(f"scores compared: {diff}")
        d, s = runs["duckdb"], runs["spark"]
        key = "scoring + writing Parquet"
        print(
            f"ratio Spark / DuckDB: wall {s['wall'] / d['wall']:.1f}x, scoring + writing "
            f"{s['steps'][key] / d['steps'][key]:.1f}x, CPU {s['cpu'] / max(d['cpu'], 1e-9):.1f}x"
        )
    print(json.dumps({e: {k: v for k, v in r.items() if k != "log"} for e, r in runs.items()}))


def run_child(engine: str, parquet: str, tmp: Path) -> dict[str, Any]:
    out = str(tmp / f"{engine}.pickle")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    subprocess.run(
        [sys.executable, __file__, "--child", engine, parquet, out],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    with open(out, "rb") as fh:
        data: dict[str, Any] = pickle.load(fh)
    data["wall"] = wall
    data["cpu"] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    data["peak_rss_gib"] = after.ru_maxrss / 1024**2  # the largest child so far (KiB → GiB)
    return data


def same_files(a: str, b: str) -> None:
    """Two engines' customer Parquet (a file, or Spark's directory of parts) hold the same
    rows: DuckDB counts the rows of each that the other lacks."""
    import duckdb

    def rel(path: str) -> str:
        return (
            f"read_parquet('{path}/*.parquet')"
            if Path(path).is_dir()
            else f"read_parquet('{path}')"
        )

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    for x, y in ((a, b), (b, a)):
        n = con.execute(f"SELECT COUNT(*) FROM (FROM {rel(x)} EXCEPT ALL FROM {rel(y)})").fetchone()
        assert n is not None and n[0] == 0, f"{n[0] if n else '?'} customer rows differ"
    con.close()


def same(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert a["metrics"] == b["metrics"], "metrics differ"
    pd.testing.assert_frame_equal(a["cohorts"], b["cohorts"], check_exact=True)
    pd.testing.assert_frame_equal(a["ladder"], b["ladder"], check_exact=True)
    if "customers_file" in a:
        assert a["customer_rows"] == b["customer_rows"], "customer counts differ"
        same_files(a["customers_file"], b["customers_file"])
    else:
        pd.testing.assert_frame_equal(a["customers"], b["customers"], check_exact=True)
    for k in ("rfm", "layers"):
        pd.testing.assert_frame_equal(a["segments"][k], b["segments"][k], check_exact=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--orders", type=int, default=None)
    ap.add_argument("--customers", type=int, default=200_000)
    ap.add_argument("--child", nargs=3, metavar=("ENGINE", "PARQUET", "OUT"))
    ap.add_argument("--engines", default="duckdb,spark", help="duckdb, spark or both")
    ap.add_argument("--memory-limit", default=None, help="DuckDB memory_limit, e.g. 16GB")
    ap.add_argument("--scoring", type=int, default=None, metavar="CUSTOMERS")
    ap.add_argument("--scoring-child", nargs=2, metavar=("PARQUET", "OUT"))
    ap.add_argument("--scale", action="store_true", help="larger than memory (see above)")
    ap.add_argument("--data", default=None, help="with --scale: directory of the orders file")
    ap.add_argument("--spark-driver-memory", default="4g")
    ap.add_argument("--predict", action="store_true", help="huitouke predict, both engines")
    args = ap.parse_args()
    args.orders_given = args.orders
    if args.orders is None:
        args.orders = 1_000_000
    if args.predict:
        predict_main(args)
        return
    if args.child:
        child(*args.child)
        return
    if args.scoring_child:
        scoring_child(*args.scoring_child)
        return
    if args.scoring:
        scoring_main(args.scoring)
        return
    if args.memory_limit:
        os.environ["BENCH_DUCKDB_MEMORY_LIMIT"] = args.memory_limit
    os.environ["BENCH_SPARK_DRIVER"] = args.spark_driver_memory
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    from huitouke.analytics import synthetic_orders, write_synthetic_orders

    if args.scale:
        os.environ["BENCH_SCALE"] = "1"
    with tempfile.TemporaryDirectory(dir=args.data) as d:
        tmp = Path(d)
        if args.scale:
            data = Path(args.data or d)
            os.environ["BENCH_DATA"] = str(data)
            parquet = str(data / f"orders-{args.orders}-{args.customers}.parquet")
            if not Path(parquet).exists():
                t = time.perf_counter()
                write_synthetic_orders(parquet + ".part", args.orders, args.customers, seed=1)
                os.replace(parquet + ".part", parquet)
                print(
                    f"generated {args.orders:,} orders / {args.customers:,} customers in "
                    f"{time.perf_counter() - t:.1f} s: {parquet} "
                    f"({Path(parquet).stat().st_size / 1024**3:.2f} GiB)",
                    flush=True,
                )
        else:
            parquet = str(tmp / "orders.parquet")
            pq.write_table(synthetic_orders(args.orders, args.customers, seed=1), parquet)
        load = os.getloadavg()[0]
        gen = time.perf_counter()
        runs = {e: run_child(e, parquet, tmp) for e in engines}
        if len(runs) == 2:
            same(runs["duckdb"]["results"], runs["spark"]["results"])
    if "spark" not in runs:
        d = runs["duckdb"]
        print(
            f"{date.today()}, {os.cpu_count()} cores, {args.orders:,} orders / "
            f"{args.customers:,} customers, DuckDB alone (memory_limit "
            f"{args.memory_limit or 'default'}), load average at start {load:.1f}"
        )
        for n, v in d["steps"].items():
            print(f"| {n} | {v:.2f} |")
        print(
            f"| **analytics** | **{sum(d['steps'].values()):.2f}** |\nduckdb: process wall "
            f"{d['wall']:.1f} s, CPU {d['cpu']:.1f} s, peak RSS {d['peak_rss_gib']:.2f} GiB "
            f"(run {time.perf_counter() - gen:.0f} s)"
        )
        return
    if "duckdb" not in runs:
        s, jvm = runs["spark"], runs["spark"]["jvm"]
        print(
            f"{date.today()}, {os.cpu_count()} cores, {args.orders:,} orders / "
            f"{args.customers:,} customers, Spark local[2] alone, load average at start "
            f"{load:.1f}"
        )
        for n, v in s["steps"].items():
            print(f"| {n} | {v:.2f} |")
        print(
            f"spark: process wall {s['wall']:.1f} s, JVM CPU {jvm['cpu']:.1f} s, "
            f"JVM peak RSS {jvm['peak_rss_gib']:.2f} GiB"
        )
        print(json.dumps({"spark": s["steps"]}))
        return
    names = list(runs["spark"]["steps"])
    print(
        f"{date.today()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{args.orders:,} orders / {args.customers:,} customers, load average at start "
        f"{load:.1f}; results equal: yes"
    )
    print("| step | DuckDB (s) | Spark local[2] (s) |")
    print("|---|---:|---:|")
    for n in names:
        d_s = runs["duckdb"]["steps"].get(n)
        print(f"| {n} | {'—' if d_s is None else f'{d_s:.2f}'} | {runs['spark']['steps'][n]:.2f} |")
    work = {
        e: sum(v for k, v in runs[e]["steps"].items() if k != "start Spark (JVM)") for e in runs
    }
    print(f"| **analytics (no JVM start)** | **{work['duckdb']:.2f}** | **{work['spark']:.2f}** |")
    d = runs["duckdb"]
    print(
        f"duckdb: process wall {d['wall']:.1f} s, CPU {d['cpu']:.1f} s, "
        f"peak RSS {d['peak_rss_gib']:.2f} GiB"
    )
    s, jvm = runs["spark"], runs["spark"]["jvm"]
    print(
        f"spark: process wall {s['wall']:.1f} s, JVM CPU "
        f"{jvm['cpu']:.1f} s, JVM peak RSS {jvm['peak_rss_gib']:.2f} GiB"
    )
    print(f"ratio Spark / DuckDB (analytics steps): {work['spark'] / work['duckdb']:.1f}x")
    print(json.dumps({e: runs[e]["steps"] for e in runs}))


if __name__ == "__main__":
    main()
