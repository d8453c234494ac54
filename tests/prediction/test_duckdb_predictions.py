"""Predictions with DuckDB reading the Parquet orders itself
(:mod:`huitouke.prediction.duckdb_engine`) against the in-process path
(:func:`huitouke.prediction.predict`): the summary, the fit from weighted distinct rows, the
scoring batch by batch, ``huitouke predict FILE.parquet`` — and, marked ``spark``, against
Spark on the same Parquet. Tolerances: see tests/prediction/parity.py."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from huitouke.analytics import synthetic_orders
from huitouke.analytics.backends import DuckDBBackend
from huitouke.analytics.engine import refuse_duplicate_ids, register_parquet_orders
from huitouke.cli.analytics_cmd import arrow_of
from huitouke.cli.main import app
from huitouke.errors import InputError, ModelFitError
from huitouke.models import summary_from_transactions
from huitouke.prediction import predict
from huitouke.prediction.duckdb_engine import (
    SUMMARY_TABLE,
    duckdb_summary,
    last_order_day,
    predict_duckdb,
)
from huitouke.prediction.transactions import counted_transactions
from huitouke.settings import get_settings

from .conftest import orders_table
from .parity import DATES, MONEY, assert_close

NY = "America/New_York"  # daylight saving time: 23 and 25-hour days
AS_OF = date(2023, 12, 31)

#: the cases the summary must get right, in New York's zone (UTC-5, UTC-4 in summer)
EDGE_ROWS = [
    # same local day across the spring change (2023-03-12 02:00 EST → 03:00 EDT): 01:59 EST
    # and 23:59 EDT are one day, 23:30 the evening before is another
    ("e1", "dst", "2023-03-12T04:30:00", "10.00", "paid", "0", "USD"),
    ("e2", "dst", "2023-03-12T06:59:00", "20.00", "paid", "0", "USD"),
    ("e3", "dst", "2023-03-13T03:59:00", "30.00", "paid", "0", "USD"),
    # the autumn change: 01:30 EDT and 01:30 EST on 5 November, one local day
    ("e4", "dst", "2023-11-05T05:30:00", "40.00", "paid", "0", "USD"),
    ("e5", "dst", "2023-11-05T06:30:00", "50.00", "partially_refunded", "5.00", "USD"),
    # month and year edges: 23:59 on 31 December and 00:00 on 1 January local
    ("m1", "edge", "2023-01-01T04:59:00", "11.00", "paid", "0", "USD"),
    ("m2", "edge", "2023-01-01T05:00:00", "12.00", "paid", "0", "USD"),
    ("m3", "edge", "2023-03-01T04:59:00", "13.00", "paid", "0", "USD"),  # 28 Feb 23:59
    ("m4", "edge", "2023-03-01T05:00:00", "14.00", "paid", "0", "USD"),  # 1 Mar 00:00
    # a refunded first order does not count: the first day is the next one
    ("r1", "refund", "2023-02-01T15:00:00", "99.00", "refunded", "99.00", "USD"),
    ("r2", "refund", "2023-02-02T15:00:00", "25.00", "paid", "0", "USD"),
    ("r3", "refund", "2023-04-02T15:00:00", "99.00", "cancelled", "0", "USD"),
    ("r4", "refund", "2023-05-02T15:00:00", "35.00", "paid", "0", "USD"),
    # the last local day of the observation counts, the next one does not
    ("l1", "last", "2023-06-01T15:00:00", "15.00", "paid", "0", "USD"),
    ("l2", "last", "2024-01-01T04:59:00", "16.00", "paid", "0", "USD"),  # 31 Dec 23:59
    ("l3", "last", "2024-01-01T05:00:00", "17.00", "paid", "0", "USD"),  # 1 Jan 00:00
]


@pytest.fixture(scope="module")
def orders() -> pa.Table:
    """Seeded synthetic orders (refunds, partial refunds, cancellations, customers with
    several orders a day) over 2022–2024 plus :data:`EDGE_ROWS`, in USD."""
    base = synthetic_orders(12_000, 2_500, seed=7, currency="USD")
    extra = orders_table(EDGE_ROWS).cast(base.schema)
    return pa.concat_tables([base, extra])


@pytest.fixture(scope="module")
def parquet(orders: pa.Table, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("duck") / "orders.parquet"
    pq.write_table(orders, path)
    return path


@pytest.fixture
def con(parquet: Path) -> Iterator[DuckDBBackend]:
    backend = DuckDBBackend()
    register_parquet_orders(backend, parquet)
    refuse_duplicate_ids(backend)
    yield backend
    backend.close()


def _summary_frame(con: DuckDBBackend) -> pd.DataFrame:
    table = con.query(f"SELECT * FROM {SUMMARY_TABLE} ORDER BY customer_id")
    return table.to_pandas().set_index("customer_id")


def test_summary_in_duckdb_is_the_models_summary(orders: pa.Table, con: DuckDBBackend) -> None:
    tx, _ = counted_transactions(orders, timezone=NY, until=AS_OF)
    ref = summary_from_transactions(
        tx, date_col="day", observation_end=pd.Timestamp(AS_OF), amount_col="amount"
    )
    assert duckdb_summary(con, timezone=NY, as_of=AS_OF) == "USD"
    got = _summary_frame(con)
    assert got.index.tolist() == ref.index.tolist()
    for c in ("frequency", "recency", "T"):
        assert got[c].tolist() == ref[c].tolist(), c  # whole days: exact
    np.testing.assert_allclose(got["monetary_value"], ref["monetary_value"], rtol=1e-12)
    # the DST customer: 11 Mar, 12 Mar (01:59 EST and 23:59 EDT), 5 Nov (both 01:30)
    dst = got.loc["dst"]
    assert (dst["frequency"], dst["recency"], dst["T"]) == (2.0, 239.0, 295.0)
    assert dst["monetary_value"] == pytest.approx((50.0 + 85.0) / 2)
    assert dst["own_mean"] == pytest.approx((10.0 + 50.0 + 85.0) / 3)
    edge = got.loc["edge"]  # 31 Dec 2022, 1 Jan, 28 Feb, 1 Mar: four days
    assert (edge["frequency"], edge["recency"]) == (3.0, 60.0)
    refund = got.loc["refund"]  # the refunded and the cancelled orders do not count
    assert (refund["frequency"], refund["recency"], refund["T"]) == (1.0, 89.0, 332.0)
    assert got.loc["last"]["frequency"] == 1.0  # 31 Dec counts, 1 Jan is after as_of
    # weeks: the same days over 7
    duckdb_summary(con, timezone=NY, as_of=AS_OF, unit="W")
    weeks = _summary_frame(con)
    np.testing.assert_allclose(weeks["T"], ref["T"] / 7.0, rtol=1e-15)


def test_predict_in_duckdb_equals_predict(orders: pa.Table, con: DuckDBBackend) -> None:
    ref = predict(orders, as_of=AS_OF, timezone=NY, margin=0.3, discount_rate=0.1)
    run = predict_duckdb(con, as_of=AS_OF, timezone=NY, margin=0.3, discount_rate=0.1)
    # only distinct rows left DuckDB for the fit, and they weigh every customer
    assert run.fit.customers == len(ref.customers)
    assert run.fit.distinct_rows < run.fit.customers
    got = run.to_prediction()
    assert got.model == ref.model
    for k, v in ref.params.items():
        assert got.params[k] == pytest.approx(v, rel=1e-12)
    assert got.log_likelihood == pytest.approx(ref.log_likelihood, rel=1e-12)
    assert got.spend_source == ref.spend_source == "gamma_gamma"
    for k, v in ref.spend_params.items():
        assert got.spend_params[k] == pytest.approx(v, rel=1e-6)
    meta, want = got.meta(), ref.meta()
    assert meta.keys() == want.keys()
    for k in meta:
        if k not in ("params", "spend_params"):
            assert meta[k] == want[k], k
    assert_close(ref.customers, got.customers)
    assert got.customers.attrs == {**ref.customers.attrs, "params": got.customers.attrs["params"]}


def test_scoring_in_small_batches_and_weeks(orders: pa.Table, con: DuckDBBackend) -> None:
    ref = predict(
        orders, as_of=AS_OF, timezone=NY, unit="W", model="pnbd", margin=0.3, discount_rate=0.1
    )
    run = predict_duckdb(
        con,
        as_of=AS_OF,
        timezone=NY,
        unit="W",
        model="pnbd",
        margin=0.3,
        discount_rate=0.1,
        batch_rows=97,
    )
    sizes = [t.num_rows for t in run.batches()]
    assert max(sizes) == 97 and sum(sizes) == len(ref.customers) and len(sizes) > 10
    assert_close(ref.customers, run.to_prediction().customers)


def test_as_of_default_currency_and_refusals(
    orders: pa.Table, con: DuckDBBackend, tmp_path: Path
) -> None:
    # the default as-of: the last counted order's local day (1 Jan 2025 00:00 UTC is
    # still 31 Dec in New York); the in-process path agrees
    from huitouke.prediction.transactions import last_order_day as in_process

    assert last_order_day(con, timezone=NY) == in_process(orders, timezone=NY)
    # a currency that no counted order is in: no orders
    with pytest.raises(InputError) as err:
        predict_duckdb(con, as_of=AS_OF, timezone=NY, currency="EUR")
    assert err.value.code == "input.no_orders"
    with pytest.raises(InputError) as err:
        predict_duckdb(con, as_of=AS_OF, timezone="Mars/Olympus")
    assert err.value.code == "input.bad_timezone"

    def backend_of(table: pa.Table, name: str) -> DuckDBBackend:
        path = tmp_path / name
        pq.write_table(table, path)
        b = DuckDBBackend()
        register_parquet_orders(b, path)
        return b

    # a second currency among counted orders must be chosen; among refunded ones it is not
    # counted (as in the in-process path)
    eur = orders_table(
        [
            ("eur1", "x", "2023-05-01T09:00:00", "10.00", "paid", "0", "EUR"),
            ("eur2", "y", "2023-05-01T09:00:00", "10.00", "refunded", "10.00", "GBP"),
        ]
    ).cast(orders.schema)
    b = backend_of(pa.concat_tables([orders, eur]), "eur.parquet")
    try:
        with pytest.raises(InputError) as err:
            predict_duckdb(b, as_of=AS_OF, timezone=NY)
        assert err.value.code == "input.mixed_currency"
        assert err.value.details["currencies"] == ["EUR", "USD"]
        run = predict_duckdb(b, as_of=AS_OF, timezone=NY, currency="USD", margin=0.3)
        ref = predict(
            pa.concat_tables([orders, eur]), as_of=AS_OF, timezone=NY, currency="USD", margin=0.3
        )
        assert_close(ref.customers, run.to_prediction().customers)
    finally:
        b.close()
    # a refund larger than the order: refused as the in-process summary refuses it
    bad = orders_table(
        [("neg", "x", "2023-05-01T09:00:00", "10.00", "partially_refunded", "12.00", "USD")]
    ).cast(orders.schema)
    b = backend_of(pa.concat_tables([orders, bad]), "neg.parquet")
    try:
        with pytest.raises(InputError) as err:
            predict_duckdb(b, as_of=AS_OF, timezone=NY)
        assert err.value.code == "input.bad_amount"
        assert err.value.details["order_id"] == "neg"
        with pytest.raises(InputError) as err:
            predict(pa.concat_tables([orders, bad]), as_of=AS_OF, timezone=NY)
        assert err.value.code == "input.bad_amount"
    finally:
        b.close()
    # nobody buys twice: the model is not identified, as in the in-process path
    once = orders_table(
        [(f"o{i}", f"c{i}", "2023-05-01T09:00:00", "10.00", "paid", "0", "USD") for i in range(40)]
    )
    b = backend_of(once, "once.parquet")
    try:
        with pytest.raises(ModelFitError) as fit_err:
            predict_duckdb(b, as_of=AS_OF, timezone=NY)
        assert fit_err.value.code == "model.not_identified"
    finally:
        b.close()


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("HUITOUKE_PREDICTION_MARGIN", "0.3")
    monkeypatch.setenv("HUITOUKE_PREDICTION_DISCOUNT_RATE", "0.1")
    monkeypatch.setenv("HUITOUKE_DUCKDB_MEMORY_LIMIT", "500MB")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def _no_importer(monkeypatch: pytest.MonkeyPatch) -> None:
    """The Parquet path must not read the orders into this process."""
    import huitouke.importing

    def refuse(*a: Any, **k: Any) -> Any:
        raise AssertionError("the orders were read into the process")

    monkeypatch.setattr(huitouke.importing, "read_orders", refuse)


def _rows(text: str) -> tuple[dict[str, Any], pd.DataFrame]:
    body = json.loads(text)
    rows = pd.DataFrame(body.pop("customers"))
    for c in MONEY:
        rows[c] = rows[c].map(lambda v: None if v is None else Decimal(str(v)))
    for c in DATES:
        rows[c] = [None if v is None else date.fromisoformat(v) for v in rows[c]]
    return body, rows


def test_cli_predict_parquet_reads_in_duckdb(
    orders: pa.Table,
    parquet: Path,
    cli_env: None,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    ref = predict(orders, as_of=AS_OF, timezone=NY, margin=0.3, discount_rate=0.1)
    _no_importer(monkeypatch)
    runner = CliRunner()
    base = ["predict", str(parquet), "--as-of", AS_OF.isoformat(), "--timezone", NY]
    res = runner.invoke(app, [*base, "--format", "json", "--lang", "en"])
    assert res.exit_code == 0, res.output
    meta, rows = _rows(res.stdout)
    assert meta["model"] == ref.model and meta["as_of"] == AS_OF.isoformat()
    assert meta["currency"] == "USD" and meta["merge_same_day"] is True
    assert rows.pop("churn_risk_label").notna().all()
    assert_close(ref.customers, rows)
    assert f"{orders.num_rows:,}" in res.stderr

    # Parquet out: written batch by batch, the columns and types of the in-process file
    target = tmp_path / "scores.parquet"
    res = runner.invoke(app, [*base, "--format", "parquet", "--out", str(target)])
    assert res.exit_code == 0, res.output
    written = pq.read_table(target)
    assert written.schema.remove_metadata() == arrow_of(ref.customers).schema
    assert_close(ref.customers, written.to_pandas(types_mapper=_exact))

    # the default as-of is the last counted order's local day, as in the in-process path
    from huitouke.prediction.transactions import last_order_day as in_process

    res = runner.invoke(app, ["predict", str(parquet), "--timezone", NY, "--format", "json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["as_of"] == in_process(orders, timezone=NY).isoformat()

    # CSV and --top go through the same rows
    res = runner.invoke(app, [*base, "--format", "csv", "--top", "5"])
    assert res.exit_code == 0, res.output
    assert len(res.stdout.strip().splitlines()) == 6


def test_cli_parquet_refuses_what_the_analytics_refuse(
    orders: pa.Table, cli_env: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _no_importer(monkeypatch)
    twice = tmp_path / "twice.parquet"
    pq.write_table(pa.concat_tables([orders, orders.slice(0, 1)]), twice)
    res = CliRunner().invoke(app, ["predict", str(twice), "--timezone", NY])
    assert isinstance(res.exception, InputError)
    assert res.exception.code == "input.duplicate_order_id"


def _exact(t: pa.DataType) -> pd.ArrowDtype | None:
    return pd.ArrowDtype(t) if pa.types.is_decimal(t) or pa.types.is_date(t) else None


@pytest.mark.spark
def test_duckdb_and_spark_agree_on_the_same_parquet(
    spark: Any, parquet: Path, con: DuckDBBackend
) -> None:
    from huitouke.analytics.spark import orders_frame
    from huitouke.prediction.spark import predict_spark

    duck = predict_duckdb(con, as_of=AS_OF, timezone=NY, margin=0.3, discount_rate=0.1)
    on_spark = predict_spark(
        orders_frame(spark, str(parquet)),
        as_of=AS_OF,
        timezone=NY,
        margin=0.3,
        discount_rate=0.1,
    )
    assert duck.fit.distinct_rows == on_spark.fit.distinct_rows
    assert duck.fit.customers == on_spark.fit.customers
    d, s = duck.to_prediction(), on_spark.to_prediction()
    assert d.model == s.model
    for k, v in d.params.items():
        assert s.params[k] == pytest.approx(v, rel=1e-12)
    assert_close(d.customers, s.customers)
