"""Predictions on Spark against the in-process path (:func:`huitouke.prediction.predict`):
the summary, the fit from weighted distinct rows, the ``mapInArrow`` scoring, the CLI
(``predict --engine spark``, ``--table``, Parquet output) and the per-shop models.

Tolerance. Both paths fit on the same distinct (frequency, recency, T) rows (integers and
whole days: bit-identical on both sides, and the models sort their distinct rows, so the
row order Spark returns does not matter): the order-count model is the same fit to the
last bit, and P(alive), expected orders and the next-order dates are computed by the same
code from the same inputs (checked to 1e-9 relative, dates exactly). The one difference is
the repeat buyers' mean order value: pandas sums float64 amounts order by order, Spark sums
the exact decimals and converts once, so the two differ by a few units in the last place.
The Gamma-Gamma optimiser, stopping at a gradient tolerance, turns that into ≈3e-8
relative in its parameters (measured on this data; checked to 1e-6), far below a cent of
an order value — but a value within that of a half cent rounds either way: money columns
are checked to one cent.
"""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from huitouke.analytics.spark import orders_frame
from huitouke.cli.main import app
from huitouke.errors import InputError
from huitouke.models import summary_from_transactions
from huitouke.prediction import predict
from huitouke.prediction.spark import predict_by_shop, predict_spark, spark_summary
from huitouke.prediction.transactions import counted_transactions
from huitouke.settings import get_settings

from .conftest import ZONE, orders_table
from .parity import DATES, MONEY, assert_close

pytestmark = pytest.mark.spark

AS_OF = date(1997, 12, 31)


@pytest.fixture(scope="module")
def orders(cdnow_orders: pa.Table) -> pa.Table:
    """The CDNOW sample plus the cases the summary must get right: a full refund, a
    cancellation, a partial refund, two orders on one local day and orders either side of
    local midnight (Shanghai is UTC+8: 15:59 UTC is 23:59 local)."""
    extra = orders_table(
        [
            ("x1", "edge", "1997-01-05T15:59:00", "10.00", "paid", "0", "USD"),
            ("x2", "edge", "1997-01-05T16:00:00", "20.00", "paid", "0", "USD"),
            ("x3", "edge", "1997-02-05T03:00:00", "30.00", "paid", "0", "USD"),
            ("x4", "edge", "1997-02-05T09:00:00", "12.50", "partially_refunded", "2.50", "USD"),
            ("x5", "edge", "1997-03-01T09:00:00", "99.00", "refunded", "99.00", "USD"),
            ("x6", "edge", "1997-03-02T09:00:00", "99.00", "cancelled", "0", "USD"),
            ("x7", "edge", "1998-03-02T09:00:00", "99.00", "paid", "0", "USD"),
        ]
    )
    return pa.concat_tables([cdnow_orders, extra.cast(cdnow_orders.schema)])


@pytest.fixture(scope="module")
def reference(orders: pa.Table) -> Any:
    return predict(orders, as_of=AS_OF, timezone=ZONE, margin=0.3, discount_rate=0.1)


def test_summary_in_spark_is_the_models_summary(spark: Any, orders: pa.Table) -> None:
    tx, _ = counted_transactions(orders, timezone=ZONE, until=AS_OF)
    ref = summary_from_transactions(
        tx, date_col="day", observation_end=pd.Timestamp(AS_OF), amount_col="amount"
    )
    got, cur = spark_summary(orders_frame(spark, orders), timezone=ZONE, as_of=AS_OF)
    assert cur == "USD"
    g = got.toPandas().set_index("customer_id").sort_index()
    assert g.index.tolist() == ref.index.tolist()
    for c in ("frequency", "recency", "T"):
        assert g[c].tolist() == ref[c].tolist(), c  # whole days: exact
    np.testing.assert_allclose(g["monetary_value"], ref["monetary_value"], rtol=1e-12)
    # the edge customer: 3 local days up to as_of (23:59 and 00:00 are two days; the
    # refund and the cancellation do not count), the 1998 order is after as_of
    edge = g.loc["edge"]
    assert (edge["frequency"], edge["recency"], edge["T"]) == (2.0, 31.0, 360.0)
    assert edge["monetary_value"] == pytest.approx((20.0 + 30.0 + 10.0) / 2)


def test_predict_on_spark_equals_predict(spark: Any, orders: pa.Table, reference: Any) -> None:
    run = predict_spark(
        orders_frame(spark, orders), as_of=AS_OF, timezone=ZONE, margin=0.3, discount_rate=0.1
    )
    # only distinct rows left Spark for the fit, and they weigh every customer
    assert run.fit.customers == len(reference.customers)
    assert run.fit.distinct_rows < run.fit.customers
    got = run.to_prediction()
    assert got.model == reference.model
    for k, v in reference.params.items():
        assert got.params[k] == pytest.approx(v, rel=1e-12)
    assert got.log_likelihood == pytest.approx(reference.log_likelihood, rel=1e-12)
    assert got.spend_source == reference.spend_source == "gamma_gamma"
    for k, v in reference.spend_params.items():
        assert got.spend_params[k] == pytest.approx(v, rel=1e-6)
    _meta_close(got.meta(), reference.meta())
    assert_close(reference.customers, got.customers)


def _meta_close(a: dict[str, Any], b: dict[str, Any]) -> bool:
    assert a.keys() == b.keys()
    for k in a:
        if k in ("spend_params", "params"):
            for p in a[k]:
                assert a[k][p] == pytest.approx(b[k][p], rel=1e-6)
        else:
            assert a[k] == b[k], k
    return True


def test_spark_refuses_unmerged_days_and_duplicate_ids(
    spark: Any, orders: pa.Table, tmp_path: Path
) -> None:
    with pytest.raises(InputError) as err:
        predict_spark(orders_frame(spark, orders), as_of=AS_OF, timezone=ZONE, merge_same_day=False)
    assert err.value.code == "input.conflicting_options"
    # Parquet that Spark reads itself is checked as the importer checks a file
    twice = tmp_path / "twice.parquet"
    pq.write_table(pa.concat_tables([orders, orders.slice(0, 1)]), twice)
    with pytest.raises(InputError) as err:
        predict_spark(orders_frame(spark, str(twice)), as_of=AS_OF, timezone=ZONE)
    assert err.value.code == "input.duplicate_order_id"


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("HUITOUKE_SPARK_MASTER", "local[2]")
    monkeypatch.setenv("HUITOUKE_PREDICTION_MARGIN", "0.3")
    monkeypatch.setenv("HUITOUKE_PREDICTION_DISCOUNT_RATE", "0.1")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def _json_frame(text: str) -> tuple[dict[str, Any], pd.DataFrame]:
    body = json.loads(text)
    rows = pd.DataFrame(body.pop("customers"))
    for c in MONEY:
        rows[c] = rows[c].map(Decimal)
    for c in DATES:
        rows[c] = [None if v is None else date.fromisoformat(v) for v in rows[c]]
    return body, rows


def test_cli_predict_engine_spark_json_parquet_and_table(
    spark: Any, orders: pa.Table, cli_env: None, tmp_path: Path
) -> None:
    path = tmp_path / "orders.parquet"
    pq.write_table(orders, path)
    runner = CliRunner()
    base = ["predict", "--as-of", AS_OF.isoformat(), "--format", "json", "--timezone", ZONE]
    out = {}
    for engine in ("duckdb", "spark"):
        res = runner.invoke(app, [*base, str(path), "--engine", engine])
        assert res.exit_code == 0, res.output
        out[engine] = _json_frame(res.stdout)
        by_file = res.stdout
    (meta_d, rows_d), (meta_s, rows_s) = out["duckdb"], out["spark"]
    assert_close(rows_d.drop(columns="churn_risk_label"), rows_s.drop(columns="churn_risk_label"))
    assert rows_d["churn_risk_label"].tolist() == rows_s["churn_risk_label"].tolist()
    assert [s["customers"] for s in meta_d["summary"]] == [
        s["customers"] for s in meta_s["summary"]
    ]
    _meta_close(
        {k: v for k, v in meta_s.items() if k != "summary"},
        {k: v for k, v in meta_d.items() if k != "summary"},
    )

    # Parquet: a file from the in-process path, a directory of parts from Spark
    written = {}
    for engine in ("duckdb", "spark"):
        target = tmp_path / f"scores-{engine}.parquet"
        res = runner.invoke(
            app,
            [
                *base[:3],
                "--format",
                "parquet",
                "--out",
                str(target),
                "--timezone",
                ZONE,
                str(path),
                "--engine",
                engine,
            ],
        )
        assert res.exit_code == 0, res.output
        written[engine] = pq.read_table(target).sort_by("customer_id")
    assert [(f.name, f.type) for f in written["spark"].schema] == [
        (f.name, f.type) for f in written["duckdb"].schema
    ]
    assert_close(
        written["duckdb"].to_pandas(types_mapper=_exact),
        written["spark"].to_pandas(types_mapper=_exact),
    )

    # a table of the Spark catalogue (here a temporary view) instead of a file
    spark.read.parquet(str(path)).createOrReplaceTempView("huitouke_test_orders")
    try:
        res = runner.invoke(app, [*base, "--engine", "spark", "--table", "huitouke_test_orders"])
        assert res.exit_code == 0, res.output
        assert json.loads(res.stdout)["customers"] == json.loads(by_file)["customers"]
        res = runner.invoke(app, [*base, "--table", "huitouke_test_orders"])
        assert isinstance(res.exception, InputError)
        assert res.exception.code == "input.conflicting_options"
        res = runner.invoke(app, [*base, "--engine", "spark", "--table", "no_such_table"])
        assert isinstance(res.exception, InputError) and res.exception.code == "input.bad_table"
    finally:
        spark.catalog.dropTempView("huitouke_test_orders")


def _exact(t: pa.DataType) -> pd.ArrowDtype | None:
    return pd.ArrowDtype(t) if pa.types.is_decimal(t) or pa.types.is_date(t) else None


def test_cli_analytics_from_a_catalogue_table_and_customers_as_parquet(
    spark: Any, orders: pa.Table, cli_env: None, tmp_path: Path
) -> None:
    path = tmp_path / "orders.parquet"
    pq.write_table(orders, path)
    spark.read.parquet(str(path)).createOrReplaceTempView("huitouke_test_orders2")
    runner = CliRunner()
    try:
        by_file = runner.invoke(
            app, ["metrics", str(path), "--format", "json", "--engine", "spark", "--timezone", ZONE]
        )
        by_table = runner.invoke(
            app,
            [
                "metrics",
                "--table",
                "huitouke_test_orders2",
                "--format",
                "json",
                "--engine",
                "spark",
                "--timezone",
                ZONE,
            ],
        )
        assert by_file.exit_code == by_table.exit_code == 0, by_table.output
        assert by_file.stdout == by_table.stdout
        files = {}
        for engine in ("duckdb", "spark"):
            target = tmp_path / f"customers-{engine}.parquet"
            res = runner.invoke(
                app,
                [
                    "customers",
                    str(path),
                    "--as-of",
                    AS_OF.isoformat(),
                    "--timezone",
                    ZONE,
                    "--format",
                    "parquet",
                    "--out",
                    str(target),
                    "--engine",
                    engine,
                ],
            )
            assert res.exit_code == 0, res.output
            files[engine] = pq.read_table(target).to_pandas().sort_values("customer_id")
        d, s = files["duckdb"], files["spark"]
        assert list(d.columns) == list(s.columns)
        # the analytics' columns are equal, the predictions to the module's tolerance
        same = [
            c for c in d.columns if c not in ("p_alive", "expected_orders", "expected_spend", "clv")
        ]
        pd.testing.assert_frame_equal(
            d[same].reset_index(drop=True), s[same].reset_index(drop=True)
        )
        np.testing.assert_allclose(s["p_alive"], d["p_alive"], rtol=1e-9)
    finally:
        spark.catalog.dropTempView("huitouke_test_orders2")


def test_one_model_per_shop(spark: Any, orders: pa.Table, cli_env: None, tmp_path: Path) -> None:
    """Two shops in one orders table: each shop's scores equal predict() on its orders
    alone; a shop below the data threshold gets a note instead of scores."""
    shop = pa.array(
        [
            "shop_b" if c[-1].isdigit() and int(c[-1]) % 2 else "shop_a"
            for c in orders.column("customer_id").to_pylist()
        ]
    )
    two = orders.set_column(orders.schema.get_field_index("source"), "source", shop)
    tiny = orders_table([("t1", "solo", "1997-03-01T09:00:00", "10.00", "paid", "0", "USD")]).cast(
        orders.schema
    )
    tiny = tiny.set_column(tiny.schema.get_field_index("source"), "source", pa.array(["shop_c"]))
    both = pa.concat_tables([two, tiny])
    got = (
        predict_by_shop(
            orders_frame(spark, both), as_of=AS_OF, timezone=ZONE, margin=0.3, discount_rate=0.1
        )
        .toArrow()
        .to_pandas(types_mapper=_exact)
    )
    assert sorted(got["source"].unique()) == ["shop_a", "shop_b", "shop_c"]
    for name in ("shop_a", "shop_b"):
        alone = two.filter(pc.equal(two.column("source"), name))
        ref = predict(alone, as_of=AS_OF, timezone=ZONE, margin=0.3, discount_rate=0.1).customers
        rows = got[got["source"] == name].sort_values("customer_id").reset_index(drop=True)
        assert rows["note"].isna().all()
        assert_close(ref, rows.drop(columns=["source", "note"]))
    c = got[got["source"] == "shop_c"]
    assert c["customer_id"].tolist() == ["solo"] and c["p_alive"].isna().all()
    assert "model.too_little_data" in c["note"].iloc[0]

    # the CLI: predict --engine spark --per-shop source (JSON rows of every shop)
    path = tmp_path / "shops.parquet"
    pq.write_table(both, path)
    res = CliRunner().invoke(
        app,
        [
            "predict",
            str(path),
            "--engine",
            "spark",
            "--per-shop",
            "source",
            "--format",
            "json",
            "--as-of",
            AS_OF.isoformat(),
            "--timezone",
            ZONE,
        ],
    )
    assert res.exit_code == 0, res.output
    rows = pd.DataFrame(json.loads(res.stdout))
    want = got.sort_values(["source", "customer_id"]).reset_index(drop=True)
    assert rows["source"].tolist() == want["source"].tolist()
    assert rows["customer_id"].tolist() == want["customer_id"].tolist()
    np.testing.assert_allclose(
        rows["p_alive"].to_numpy(float), want["p_alive"].to_numpy(float, na_value=np.nan)
    )
