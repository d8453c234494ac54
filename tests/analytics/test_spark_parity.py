"""The Spark engine against the DuckDB engine: every metric, cohort, ladder, cycle, RFM score,
layer and lifecycle computed on both from the same generated orders, equal row for row.

The orders carry the cases where engines differ if anything does: refunds (full and
partial), cancellations, several orders of one customer on one day and at one instant,
23:59/00:00 across month and year ends, the days DST starts and ends in America/New_York,
months without any order, customers with one order, ties in every RFM dimension, order
lines with and without a category. Spark runs in this process's JVM (``local[2]``, one
session for the whole run, see the ``spark`` fixture in tests/conftest.py).
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from huitouke.analytics import Analytics, LayerWindows
from huitouke.analytics.spark import SparkAnalytics
from huitouke.cli.main import app
from huitouke.core.orders import ORDERS_SCHEMA
from huitouke.errors import InputError
from huitouke.settings import get_settings

from .helpers import lines_table, order, orders_table

pytestmark = pytest.mark.spark

NY = "America/New_York"
AS_OF = date(2024, 6, 30)


def generated_orders(zone: str, *, seed: int = 13) -> tuple[pa.Table, pa.Table]:
    """About 400 orders of 90 customers over 2023–2024 (none in July 2023), with the edge
    cases of the module docstring, and their order lines."""
    rng = random.Random(seed)
    rows: list[dict[str, object]] = []
    n = 0

    def add(cust: str, when: str, amount: str, status: str = "paid", refunded: str = "0") -> None:
        nonlocal n
        n += 1
        rows.append(
            order(f"o{n:04d}", cust, when, amount, status=status, refunded=refunded, zone=zone)
        )

    for c in range(90):
        for _ in range(rng.choice([1, 1, 1, 2, 2, 3, 4, 6, 9])):
            while True:
                day = date(2023, 1, 1).toordinal() + rng.randrange(730)
                d = date.fromordinal(day)
                if (d.year, d.month) != (2023, 7):  # an empty month
                    break
            when = f"{d.isoformat()} {rng.randrange(24):02d}:{rng.choice([0, 15, 59]):02d}"
            amount = str(rng.choice([5, 19, 19, 40, 88]) + rng.choice([0, 0.5, 0.99]))
            roll = rng.random()
            if roll < 0.06:
                add(f"c{c:02d}", when, amount, "refunded", amount)
            elif roll < 0.10:
                add(f"c{c:02d}", when, amount, "cancelled")
            elif roll < 0.18:
                add(f"c{c:02d}", when, amount, "partially_refunded", "2.5")
            else:
                add(f"c{c:02d}", when, amount)
    # month and year ends: 23:59 and 00:00 local
    for cust, a, b in (
        ("edge_m", "2024-01-31 23:59", "2024-02-01 00:00"),
        ("edge_y", "2023-12-31 23:59", "2024-01-01 00:00"),
        ("edge_q", "2024-03-31 23:59", "2024-04-01 00:00"),
    ):
        add(cust, a, "30")
        add(cust, b, "31")
    # DST in New York: the skipped hour, the repeated hour, the days' last minutes
    add("edge_dst", "2024-03-10 01:59", "12")
    add("edge_dst", "2024-03-10 03:00", "13")
    add("edge_dst", "2024-11-03 01:30", "14")
    add("edge_dst", "2024-11-03 23:59", "15")
    add("edge_dst", "2024-11-04 00:00", "16")
    # several orders on one day (one cancelled), two at the same instant
    add("edge_day", "2024-05-05 09:00", "20")
    add("edge_day", "2024-05-05 18:00", "21")
    add("edge_day", "2024-05-05 20:00", "22", "cancelled")
    add("edge_day", "2024-05-20 10:00", "23")
    add("edge_day", "2024-05-20 10:00", "24")
    # a first order refunded in full: the second is the customer's first counted order
    add("edge_ref", "2024-02-10 10:00", "50", "refunded", "50")
    add("edge_ref", "2024-03-10 10:00", "51")
    add("edge_ref", "2024-04-10 10:00", "52", "partially_refunded", "51.99")
    orders = orders_table(rows)
    cats = ["tea", "coffee", "snacks", None, ""]
    lines = []
    for r in rows:
        for k in range(rng.choice([1, 1, 2])):
            lines.append((str(r["order_id"]), f"sku{k}", rng.choice(cats)))
    return orders, lines_table(lines)


def assert_same(duck: pd.DataFrame, spark: pd.DataFrame) -> None:
    """Equal row for row: the same columns, dtypes and values (floats to the last bit)."""
    pd.testing.assert_frame_equal(duck, spark, check_exact=True)


def pair(spark: Any, *, merge_same_day: bool) -> tuple[Analytics, Analytics]:
    orders, lines = generated_orders(NY)
    kw: dict[str, Any] = {
        "timezone": NY,
        "lines": lines,
        "merge_same_day": merge_same_day,
        "windows": LayerWindows(30, 60, 120, 240),
    }
    return Analytics(orders, **kw), SparkAnalytics(orders, session=spark, **kw)


@pytest.fixture(scope="module")
def engines(spark: Any) -> Iterator[tuple[Analytics, Analytics]]:
    duck, sp = pair(spark, merge_same_day=False)
    yield duck, sp
    duck.close()
    sp.close()


@pytest.mark.parametrize("kind", ["day", "week", "month", "quarter", "year"])
def test_period_metrics(engines: tuple[Analytics, Analytics], kind: str) -> None:
    duck, sp = engines
    d = duck.period_metrics(kind)
    assert (d["buyers"] == 0).any() or kind in ("quarter", "year")  # empty periods are in
    assert_same(d, sp.period_metrics(kind))


def test_range_and_json(engines: tuple[Analytics, Analytics]) -> None:
    duck, sp = engines
    assert_same(
        duck.range_metrics(date(2024, 1, 15), date(2024, 3, 14)),
        sp.range_metrics(date(2024, 1, 15), date(2024, 3, 14)),
    )
    assert duck.metrics_json("month") == sp.metrics_json("month")
    window = {"start": date(2023, 6, 1), "end": date(2023, 8, 31)}
    assert duck.metrics_json("week", **window) == sp.metrics_json("week", **window)


@pytest.mark.parametrize("value", ["customers", "share", "revenue"])
def test_cohorts(engines: tuple[Analytics, Analytics], value: str) -> None:
    duck, sp = engines
    assert_same(duck.cohorts(value), sp.cohorts(value))


def test_ladder(engines: tuple[Analytics, Analytics]) -> None:
    duck, sp = engines
    d = duck.ladder(6)
    assert d["median_days"].notna().any()
    assert_same(d, sp.ladder(6))


def test_category_cycles(engines: tuple[Analytics, Analytics]) -> None:
    duck, sp = engines
    d = duck.category_cycles()
    assert len(d) >= 3
    assert_same(d, sp.category_cycles())
    assert_same(duck.category_cycles(AS_OF), sp.category_cycles(AS_OF))


@pytest.mark.parametrize(
    "as_of", [AS_OF, date(2024, 12, 31), datetime(2024, 3, 10, 7, 30, tzinfo=UTC)]
)
def test_customers(engines: tuple[Analytics, Analytics], as_of: date) -> None:
    """Cycles, next expected dates, RFM scores and segments, layers and lifecycle stages."""
    duck, sp = engines
    d = duck.customers(as_of)
    assert d["r_score"].nunique() > 1 and d["layer"].nunique() > 1
    assert_same(d, sp.customers(as_of))


def test_customers_with_p_alive_and_segments(engines: tuple[Analytics, Analytics]) -> None:
    duck, sp = engines
    ids = duck.customers(AS_OF)["customer_id"]
    p_alive = pd.Series([(i * 37 % 100) / 100 for i in range(len(ids))], index=ids)
    d = duck.customers(AS_OF, p_alive=p_alive)
    assert d["lifecycle"].nunique() > 2
    assert_same(d, sp.customers(AS_OF, p_alive=p_alive))
    ds, ss = duck.segments(AS_OF), sp.segments(AS_OF)
    assert_same(ds["rfm"], ss["rfm"])
    assert_same(ds["layers"], ss["layers"])


def test_until(engines: tuple[Analytics, Analytics]) -> None:
    duck, sp = engines
    du, su = duck.until(date(2024, 3, 10)), sp.until(date(2024, 3, 10))
    assert su.engine == "spark" and su.coverage_end == date(2024, 3, 10)
    assert su.orders is not None and du.orders is not None
    assert su.orders.num_rows == du.orders.num_rows < duck.orders.num_rows
    assert_same(du.period_metrics("month"), su.period_metrics("month"))
    assert_same(du.customers(date(2024, 3, 10)), su.customers(date(2024, 3, 10)))
    su.close()


def test_shanghai_one_currency_of_two(spark: Any) -> None:
    orders, _ = generated_orders("Asia/Shanghai", seed=5)
    usd = orders_table(
        [order("u1", "c01", "2024-01-31 23:59", "9", currency="USD", zone="Asia/Shanghai")]
    )
    both = pa.concat_tables([orders, usd])
    with pytest.raises(InputError) as e:
        SparkAnalytics(both, timezone="Asia/Shanghai", session=spark)
    assert e.value.code == "input.mixed_currency"
    duck = Analytics(both, timezone="Asia/Shanghai", currency="CNY")
    sp = SparkAnalytics(both, timezone="Asia/Shanghai", currency="CNY", session=spark)
    assert_same(duck.period_metrics("month"), sp.period_metrics("month"))
    assert_same(duck.customers(AS_OF), sp.customers(AS_OF))
    assert_same(duck.ladder(), sp.ladder())
    sp.close()


def test_no_counted_orders(spark: Any) -> None:
    """Only refunded and cancelled orders: empty periods, no cohorts, no customers."""
    orders = orders_table(
        [
            order("1", "a", "2024-01-05", "10", status="refunded", refunded="10", zone=NY),
            order("2", "b", "2024-02-05", "10", status="cancelled", zone=NY),
        ]
    )
    duck, sp = Analytics(orders, timezone=NY), SparkAnalytics(orders, timezone=NY, session=spark)
    window = {"start": date(2024, 1, 1), "end": date(2024, 3, 31)}
    assert_same(duck.period_metrics("month", **window), sp.period_metrics("month", **window))
    assert sp.cohorts().empty and duck.cohorts().empty
    assert_same(duck.customers(AS_OF), sp.customers(AS_OF))
    assert_same(duck.ladder(), sp.ladder())
    sp.close()


def test_duplicate_ids_refused_alike(spark: Any) -> None:
    rows = [
        order("1", "a", "2024-01-05"),
        order("1", "b", "2024-01-06"),
        order("2", "c", "2024-01-07"),
    ]
    for make in (Analytics, lambda t, **kw: SparkAnalytics(t, session=spark, **kw)):
        with pytest.raises(InputError) as e:
            make(orders_table(rows), timezone=NY)
        assert e.value.code == "input.duplicate_order_id"
        assert e.value.details["duplicates"] == ["1"]


def test_parquet_read_by_spark(spark: Any, tmp_path: Path) -> None:
    """Orders Spark reads from a Parquet glob itself give what the Arrow table gives."""
    orders, _ = generated_orders(NY, seed=21)
    half = orders.num_rows // 2
    (tmp_path / "orders").mkdir()
    pq.write_table(orders.slice(0, half), tmp_path / "orders" / "part-0.parquet")
    pq.write_table(orders.slice(half), tmp_path / "orders" / "part-1.parquet")
    duck = Analytics(orders, timezone=NY)
    sp = SparkAnalytics(str(tmp_path / "orders" / "*.parquet"), timezone=NY, session=spark)
    assert sp.orders is None  # never loaded into this process
    assert duck.metrics_json("month") == sp.metrics_json("month")
    assert_same(duck.customers(AS_OF), sp.customers(AS_OF))
    assert_same(duck.until(AS_OF).ladder(), sp.until(AS_OF).ladder())
    sp.close()


def test_parquet_with_bad_rows_refused(spark: Any, tmp_path: Path) -> None:
    orders = orders_table([order("1", "a", "2024-01-05"), order("2", "b", "2024-01-06")])
    bad = orders.set_column(
        ORDERS_SCHEMA.get_field_index("status"), "status", pa.array(["paid", "shipped"])
    )
    pq.write_table(bad, tmp_path / "bad.parquet")
    with pytest.raises(InputError) as e:
        SparkAnalytics(str(tmp_path / "bad.parquet"), timezone=NY, session=spark)
    assert e.value.code == "input.bad_status"
    pq.write_table(orders.drop_columns(["currency"]), tmp_path / "lacking.parquet")
    with pytest.raises(InputError) as e:
        SparkAnalytics(str(tmp_path / "lacking.parquet"), timezone=NY, session=spark)
    assert e.value.code == "input.missing_column"


def test_cli_metrics_json_same_on_both_engines(
    spark: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`huitouke metrics PATH --engine spark --format json` prints what duckdb prints."""
    csv = tmp_path / "orders.csv"
    lines = ["order_id,customer_id,ordered_at,amount,status,refunded_amount"]
    orders, _ = generated_orders(NY, seed=3)
    for r in orders.to_pylist():
        local = r["ordered_at"].astimezone(ZoneInfo(NY))
        lines.append(
            f"{r['order_id']},{r['customer_id']},{local:%Y-%m-%d %H:%M:%S},"
            f"{r['amount']},{r['status']},{r['refunded_amount']}"
        )
    csv.write_text("\n".join(lines) + "\n", encoding="utf-8")
    monkeypatch.setenv("HUITOUKE_DATABASE_URL", f"sqlite:///{tmp_path / 'store.db'}")
    monkeypatch.setenv("HUITOUKE_TIMEZONE", NY)
    monkeypatch.setenv("HUITOUKE_SPARK_MASTER", "local[2]")
    get_settings.cache_clear()
    runner = CliRunner()
    out = {}
    for engine in ("duckdb", "spark"):
        res = runner.invoke(app, ["metrics", str(csv), "--format", "json", "--engine", engine])
        assert res.exit_code == 0, res.output
        out[engine] = res.stdout
    assert out["duckdb"] == out["spark"]
    assert json.loads(out["spark"])["periods"]
    for cmd in (
        ["ladder"],
        ["cohorts", "--value", "customers"],
        ["segments", "--as-of", "2024-06-30"],
    ):
        res = [
            runner.invoke(app, [*cmd, str(csv), "--format", "csv", "--engine", e])
            for e in ("duckdb", "spark")
        ]
        assert res[0].exit_code == res[1].exit_code == 0, res[1].output
        assert res[0].stdout == res[1].stdout
    get_settings.cache_clear()


def test_same_day_orders_merged(spark: Any) -> None:
    """With same-day merging (another counted step) every kind of result, once."""
    duck, sp = pair(spark, merge_same_day=True)
    for kind in ("day", "month"):
        assert_same(duck.period_metrics(kind), sp.period_metrics(kind))
    assert_same(duck.cohorts("customers"), sp.cohorts("customers"))
    assert_same(duck.ladder(6), sp.ladder(6))
    assert_same(duck.category_cycles(), sp.category_cycles())
    d = duck.customers(AS_OF)
    unmerged = Analytics(duck.orders, timezone=NY).customers(AS_OF)
    assert d["orders"].sum() < unmerged["orders"].sum()  # merging did merge
    assert_same(d, sp.customers(AS_OF))
    sp.close()


def test_money_survives_as_decimal(engines: tuple[Analytics, Analytics]) -> None:
    _, sp = engines
    spend = sp.customers(AS_OF)["spend"]
    assert all(isinstance(v, Decimal) for v in spend)


def test_report_data_same_on_spark(spark: Any) -> None:
    """Every number of the report (`huitouke report --engine spark`) comes out the same."""
    from huitouke.report import build_report_data

    orders, lines = generated_orders(NY)
    kw: dict[str, Any] = {
        "timezone": NY,
        "source": {"kind": "file", "label": "orders.csv"},
        "lines": lines,
        "predictions": False,
    }
    duck = build_report_data(orders, **kw)
    on_spark = build_report_data(orders, spark=spark, **kw)
    duck.pop("generated_at")
    on_spark.pop("generated_at")
    assert duck == on_spark


def test_spark_types_cover_the_orders_schema() -> None:
    """Every column of the canonical orders table is cast when Spark reads Parquet."""
    from huitouke.analytics import spark as spark_engine

    assert list(spark_engine._SPARK_TYPES) == ORDERS_SCHEMA.names


def test_parquet_without_source_is_one_source(spark: Any, tmp_path: Path) -> None:
    """Parquet written before order sources (no ``source`` column) reads as the default
    source's orders, as an Arrow table without the column does."""
    orders, _ = generated_orders(NY, seed=5)
    pq.write_table(orders.drop_columns(["source"]), tmp_path / "old.parquet")
    duck = Analytics(orders.drop_columns(["source"]), timezone=NY)
    sp = SparkAnalytics(str(tmp_path / "old.parquet"), timezone=NY, session=spark)
    assert duck.metrics_json("month") == sp.metrics_json("month")
    sp.close()
