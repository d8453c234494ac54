"""The DuckDB engine reading orders from Parquet itself (``read_parquet``, nothing in this
process) against the same orders given as an Arrow table: every result equal.

The orders are the parity suite's (refunds, cancellations, several orders on one day and at
one instant, 23:59/00:00 across month and year ends, the DST days of America/New_York,
an empty month), written as one file and as a glob of parts; plus the chunked generator
of the scale benchmark, with a memory limit small enough to make DuckDB spill.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from huitouke.analytics import Analytics, LayerWindows, write_synthetic_orders
from huitouke.analytics.backends import check_memory_limit
from huitouke.cli.main import app
from huitouke.core.orders import ORDERS_SCHEMA
from huitouke.errors import InputError

from .helpers import order, orders_table
from .test_spark_parity import AS_OF, NY, generated_orders

WINDOWS = LayerWindows(30, 60, 120, 240)


def same(a: pd.DataFrame, b: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(a, b, check_exact=True)


def check_equal(mem: Analytics, disk: Analytics, as_of: date) -> None:
    assert disk.orders is None  # never loaded into this process
    assert mem.metrics_json("month") == disk.metrics_json("month")
    for kind in ("day", "week", "quarter"):
        same(mem.period_metrics(kind), disk.period_metrics(kind))
    same(
        mem.range_metrics(date(2024, 1, 31), date(2024, 3, 10)),
        disk.range_metrics(date(2024, 1, 31), date(2024, 3, 10)),
    )
    for value in ("share", "revenue", "customers"):
        same(mem.cohorts(value), disk.cohorts(value))
    same(mem.ladder(), disk.ladder())
    same(mem.customers(as_of), disk.customers(as_of))
    ms, ds = mem.segments(as_of), disk.segments(as_of)
    same(ms["rfm"], ds["rfm"])
    same(ms["layers"], ds["layers"])
    ids = mem.customers(as_of)["customer_id"]
    p_alive = pd.Series([(i * 37 % 100) / 100 for i in range(len(ids))], index=ids)
    same(mem.customers(as_of, p_alive=p_alive), disk.customers(as_of, p_alive=p_alive))


@pytest.mark.parametrize("merge", [False, True])
def test_file_equals_arrow(tmp_path: Path, merge: bool) -> None:
    orders, _ = generated_orders(NY)
    pq.write_table(orders, tmp_path / "orders.parquet")
    kw: dict[str, Any] = {"timezone": NY, "merge_same_day": merge, "windows": WINDOWS}
    with (
        Analytics(orders, **kw) as mem,
        Analytics(str(tmp_path / "orders.parquet"), **kw) as disk,
    ):
        check_equal(mem, disk, AS_OF)
        # until(): the files' orders placed before the day after, filtered as DuckDB reads
        mu, du = mem.until(date(2024, 3, 10)), disk.until(date(2024, 3, 10))
        assert du.orders is None and du.coverage_end == date(2024, 3, 10)
        assert mu.metrics_json("month") == du.metrics_json("month")
        same(mu.customers(date(2024, 3, 10)), du.customers(date(2024, 3, 10)))
        same(mu.until(date(2024, 2, 1)).ladder(), du.until(date(2024, 2, 1)).ladder())


def test_glob_directory_and_no_source_column(tmp_path: Path) -> None:
    """Parts read as a glob or as their directory; a file without ``source`` is the default
    source's, as an Arrow table without it is."""
    orders, _ = generated_orders("Asia/Shanghai", seed=21)
    half = orders.num_rows // 2
    parts = tmp_path / "orders"
    parts.mkdir()
    bare = orders.drop_columns(["source"])
    pq.write_table(bare.slice(0, half), parts / "part-0.parquet")
    pq.write_table(bare.slice(half), parts / "part-1.parquet")
    with Analytics(orders, timezone="Asia/Shanghai") as mem:
        for source in (str(parts / "*.parquet"), str(parts), parts):
            with Analytics(source, timezone="Asia/Shanghai") as disk:
                assert mem.metrics_json("month") == disk.metrics_json("month")
                same(mem.customers(AS_OF), disk.customers(AS_OF))


def test_generated_at_scale_with_spilling(tmp_path: Path) -> None:
    """The scale benchmark's chunked generator (several row groups) read with a memory limit
    small enough that DuckDB spills to the temporary directory: the results of the Arrow
    table of the same file; write_customers writes the rows customers() returns."""
    path = tmp_path / "orders.parquet"
    groups = write_synthetic_orders(str(path), 60_000, 12_000, seed=3, row_group=25_000)
    assert groups == 3 and pq.ParquetFile(path).metadata.num_row_groups == 3
    table = pq.read_table(path)
    assert table.num_rows == 60_000
    assert pa.compute.count_distinct(table.column("customer_id")).as_py() == 12_000
    assert set(table.column("status").to_pylist()) == {
        "paid",
        "partially_refunded",
        "refunded",
        "cancelled",
    }
    spill = tmp_path / "spill"
    as_of = date(2024, 12, 31)
    with (
        Analytics(table, timezone="Asia/Shanghai") as mem,
        Analytics(
            str(path), timezone="Asia/Shanghai", memory_limit="40MB", temp_directory=str(spill)
        ) as disk,
    ):
        limit = disk._backend.query("SELECT current_setting('memory_limit') AS m")  # type: ignore[attr-defined]
        assert limit.to_pylist()[0]["m"] in ("38.1 MiB", "40.0 MB", "38.1MiB")
        assert mem.metrics_json("month") == disk.metrics_json("month")
        same(mem.cohorts("customers"), disk.cohorts("customers"))
        same(mem.ladder(), disk.ladder())
        frame = mem.customers(as_of)
        n = disk.write_customers(as_of, str(tmp_path / "customers.parquet"))
        assert n == len(frame) > 11_000  # some have no counted order
        written = pq.read_table(tmp_path / "customers.parquet")
        same(disk._customer_frame(written), frame)
        ms, ds = mem.segments(as_of), disk.segments(as_of)
        same(ms["rfm"], ds["rfm"])
        same(ms["layers"], ds["layers"])


def test_bad_files_refused(tmp_path: Path) -> None:
    orders = orders_table([order("1", "a", "2024-01-05"), order("2", "b", "2024-01-06")])
    cases: dict[str, tuple[pa.Table, str]] = {
        "status": (
            orders.set_column(
                ORDERS_SCHEMA.get_field_index("status"), "status", pa.array(["paid", "shipped"])
            ),
            "input.bad_status",
        ),
        "lacking": (orders.drop_columns(["currency"]), "input.missing_column"),
        "empty": (
            orders.set_column(
                ORDERS_SCHEMA.get_field_index("customer_id"),
                "customer_id",
                pa.array(["a", None], pa.string()),
            ),
            "input.null_value",
        ),
        "naive": (
            orders.set_column(
                ORDERS_SCHEMA.get_field_index("ordered_at"),
                "ordered_at",
                orders.column("ordered_at").cast(pa.timestamp("us")),
            ),
            "input.bad_column_type",
        ),
        "dup": (pa.concat_tables([orders, orders]), "input.duplicate_order_id"),
    }
    for name, (table, code) in cases.items():
        pq.write_table(table, tmp_path / f"{name}.parquet")
        with pytest.raises(InputError) as e:
            Analytics(str(tmp_path / f"{name}.parquet"), timezone=NY)
        assert e.value.code == code, name
    (tmp_path / "text.parquet").write_text("not parquet")
    for missing in ("text.parquet", "nowhere.parquet"):
        with pytest.raises(InputError) as e:
            Analytics(str(tmp_path / missing), timezone=NY)
        assert e.value.code == "input.bad_file"
    with pytest.raises(InputError) as e:
        check_memory_limit("lots")
    assert e.value.code == "input.bad_memory_limit"
    with pytest.raises(InputError):
        Analytics(orders, timezone=NY, memory_limit="12 apples")


def test_cli_reads_parquet_in_duckdb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`metrics`, `cohorts`, `ladder`, `segments` and `customers` on a Parquet file with the
    canonical columns: DuckDB reads it itself and prints what the importer's table gives."""
    from huitouke.settings import get_settings

    orders, _ = generated_orders(NY, seed=8)
    path = tmp_path / "orders.parquet"
    pq.write_table(orders, path)
    monkeypatch.setenv("HUITOUKE_DATABASE_URL", f"sqlite:///{tmp_path / 'none.db'}")
    monkeypatch.setenv("HUITOUKE_DUCKDB_MEMORY_LIMIT", "200MB")
    monkeypatch.setenv("HUITOUKE_DUCKDB_TEMP_DIRECTORY", str(tmp_path / "spill"))
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        common = ["--timezone", NY, "--format", "json"]
        res = runner.invoke(app, ["metrics", str(path), *common])
        assert res.exit_code == 0, res.output
        with Analytics(
            orders, timezone=NY, merge_same_day=get_settings().merge_same_day_orders
        ) as a:
            assert json.loads(res.stdout)["periods"] == a.metrics_json("month")["periods"]
        for cmd in (["cohorts"], ["ladder"], ["segments", "--as-of", "2024-06-30"]):
            res = runner.invoke(app, [*cmd, str(path), *common])
            assert res.exit_code == 0, res.output
            assert json.loads(res.stdout)
        res = runner.invoke(
            app, ["customers", str(path), *common, "--as-of", "2024-06-30", "--no-predict"]
        )
        assert res.exit_code == 0, res.output
        assert len(json.loads(res.stdout)) == orders_table_customers(orders, date(2024, 6, 30))
    finally:
        get_settings.cache_clear()


def orders_table_customers(orders: pa.Table, as_of: date) -> int:
    with Analytics(orders, timezone=NY) as a:
        return len(a.customers(as_of))


def test_customers_predictions_on_parquet_equal_the_in_process_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`customers --predict` on a Parquet PATH: the model's summary is computed in DuckDB
    (the orders never enter the process) and every customer's prediction columns equal
    those of the in-process path on the same orders."""
    from huitouke.prediction.customer_frame import PREDICTION_COLUMNS, customer_frame
    from huitouke.settings import get_settings

    orders, _ = generated_orders(NY, seed=11)
    path = tmp_path / "orders.parquet"
    pq.write_table(orders, path)
    monkeypatch.setenv("HUITOUKE_DATABASE_URL", f"sqlite:///{tmp_path / 'none.db'}")
    get_settings.cache_clear()
    day = date(2024, 6, 30)
    try:
        res = CliRunner().invoke(
            app,
            ["customers", str(path), "--timezone", NY, "--format", "json",
             "--as-of", day.isoformat(), "--predict"],
        )  # fmt: skip
        assert res.exit_code == 0, res.output
        got = {r["customer_id"]: r for r in json.loads(res.stdout)}
        with Analytics(
            orders, timezone=NY, merge_same_day=get_settings().merge_same_day_orders
        ) as a:
            view = customer_frame(a, orders, as_of=day, timezone=NY)
    finally:
        get_settings.cache_clear()
    assert view.error is None
    want = json.loads(view.frame.to_json(orient="records", date_format="iso"))
    assert len(got) == len(want) > 50
    numeric = ("p_alive", "expected_orders", "expected_spend", "clv")
    for w in want:
        g = got[w["customer_id"]]
        for col in PREDICTION_COLUMNS:
            a_, b_ = g.get(col), w.get(col)
            if col in numeric and a_ is not None and b_ is not None:
                assert float(a_) == pytest.approx(float(b_), rel=1e-9, abs=1e-9), col
            else:
                assert str(a_)[:10] == str(b_)[:10], (col, a_, b_)


def test_customers_predictions_on_a_small_parquet_fall_back_visibly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Too few customers for a model, on the DuckDB path too: the rows come without
    predictions and with the note saying why (as the in-process path does)."""
    from huitouke.settings import get_settings

    orders, _ = generated_orders(NY, seed=11)
    path = tmp_path / "small.parquet"
    pq.write_table(orders.slice(0, 12), path)
    monkeypatch.setenv("HUITOUKE_DATABASE_URL", f"sqlite:///{tmp_path / 'none.db'}")
    get_settings.cache_clear()
    try:
        res = CliRunner().invoke(
            app,
            ["customers", str(path), "--timezone", NY, "--format", "json", "--predict",
             "--lang", "en"],
        )  # fmt: skip
    finally:
        get_settings.cache_clear()
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)
    assert rows and all(r["p_alive"] is None for r in rows)
    assert "too little data" in rows[0]["prediction_note"]
