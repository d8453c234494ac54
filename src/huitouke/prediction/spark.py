"""Predictions on Apache Spark: the per-customer summary computed by Spark, the fit on the
driver, the scoring back in Spark.

1. :func:`spark_summary` — the counted orders (paid or partially refunded, one currency)
   up to ``as_of``, a customer's orders on one local day merged into one, and per customer
   ``frequency``, ``recency``, ``T`` and ``monetary_value`` exactly as
   :func:`huitouke.models.summary_from_transactions` defines them, plus ``own_mean`` (the
   mean merged order value, the spend fallback). Days are the merchant's local days
   (``from_utc_timestamp`` in a session whose zone is UTC), as in
   :mod:`huitouke.prediction.transactions`.
2. :func:`fit_on_driver` — the summary collapsed **in Spark** to its distinct
   ``(frequency, recency, T)`` rows with their counts (and the distinct
   ``(frequency, monetary_value)`` rows of the repeat buyers for Gamma-Gamma); only those
   are collected, and the models are fitted with the counts as weights. The models
   compress their data to unique rows with weights themselves, so this is the same fit as
   on one row per customer (a test checks it).
3. :func:`score` — every customer scored in Spark by :class:`huitouke.prediction.scoring.Scorer`
   (the code :func:`~huitouke.prediction.predict` runs) in ``mapInArrow`` batches: P(alive),
   expected orders and spend, CLV and the next-order dates, the money exact ``decimal(18,2)``
   and the dates ``date``.
4. :func:`predict_by_shop` — one model per shop (the orders' ``source`` column or another)
   with ``applyInArrow``: each shop's summary rows go to one worker, which fits and scores.

Spark's Arrow UDFs (``mapInArrow``, ``applyInArrow``) are the pandas UDFs
(``mapInPandas``, ``applyInPandas``) without the conversion to pandas: PySpark 4.3 does not
support pandas 3, which this project uses, and the Arrow batches carry the exact decimals
and dates as they are. Workers import :mod:`huitouke` (on a cluster it must be installed on
the executors, see docs/scale.md).

Everything here takes a Spark DataFrame of the canonical orders
(:data:`huitouke.core.orders.ORDERS_SCHEMA`); reading them (Parquet, catalogue table, an
Arrow table) is :func:`huitouke.analytics.spark.orders_frame`'s job.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

import pyarrow as pa

from huitouke.core.orders import COUNTED_STATUSES
from huitouke.errors import HuitoukeError, InputError, ModelFitError
from huitouke.models.summary import unit_days
from huitouke.prediction.scoring import (
    COVERAGE,
    MODEL_LABELS,
    DriverFit,
    Prediction,
    Scorer,
    _arrow_backed,
    check_arguments,
    fit_counts,
    fit_spend,
    fit_weighted,
)

__all__ = [
    "SCORE_SCHEMA",
    "SparkPrediction",
    "fit_on_driver",
    "last_order_day",
    "predict_by_shop",
    "predict_spark",
    "refuse_bad_orders",
    "score",
    "spark_summary",
]

#: the Spark schema of the scores (the columns of ``predict_customers``)
SCORE_SCHEMA = (
    "customer_id string, frequency bigint, recency double, T double, p_alive double, "
    "expected_orders double, p_order_in_horizon double, expected_order_value decimal(18,2), "
    "expected_spend decimal(18,2), clv decimal(18,2), next_order_median date, "
    "next_order_low date, next_order_high date, p_no_further_order double, churn_risk string"
)

_FAILED = "huitouke-model-failed:"


def _counted(orders: Any, *, timezone: str, currency: str | None) -> tuple[Any, str]:
    """Counted orders as (customer_id, day, revenue) and their one currency."""
    from pyspark.sql import functions as F

    counted = orders.where(F.col("status").isin(list(COUNTED_STATUSES)))
    if currency is None:
        found = sorted(str(r[0]) for r in counted.select("currency").distinct().limit(2).collect())
        if len(found) > 1:
            all_ = sorted(str(r[0]) for r in counted.select("currency").distinct().collect())
            raise InputError(
                f"the orders are in several currencies {all_}; choose one (--currency)",
                code="input.mixed_currency",
                message_zh=f"订单含多种币种 {all_};请指定一种(--currency)",
                details={"currencies": all_},
            )
        currency = found[0] if found else ""
    else:
        counted = counted.where(F.col("currency") == F.lit(currency))
    return counted, currency


def _with_day(counted: Any, timezone: str, keys: list[str]) -> Any:
    from pyspark.sql import functions as F

    return counted.select(
        *keys,
        F.to_date(F.from_utc_timestamp(F.col("ordered_at"), timezone)).alias("day"),
        (F.col("amount") - F.col("refunded_amount")).alias("revenue"),
    )


def refuse_bad_orders(orders: Any) -> None:
    """The checks the importer and the analytics make, for orders Spark reads itself: no
    order id twice within a source, no empty required value, no unknown status (two Spark
    jobs). Raises the same errors as :class:`huitouke.analytics.Analytics`."""
    from pyspark.sql import functions as F

    from huitouke.core.orders import (
        ORDERS_SCHEMA,
        OrderStatus,
        duplicate_ids_error,
        null_value_error,
        unknown_status_error,
    )

    known = [st.value for st in OrderStatus]
    required = [f.name for f in ORDERS_SCHEMA if not f.nullable]
    row = orders.agg(
        *[F.sum(F.col(c).isNull().cast("int")).alias(c) for c in required],
        F.sum((~F.col("status").isin(known)).cast("int")).alias("_unknown"),
    ).collect()[0]
    for c in required:
        n = int(row[c] or 0)
        if n:
            raise null_value_error(c, n)
    if int(row["_unknown"] or 0):
        found = sorted(
            str(r[0])
            for r in orders.select("status")
            .distinct()
            .where(~F.col("status").isin(known))
            .collect()
        )
        raise unknown_status_error(found)
    dups = (
        orders.groupBy("source", "order_id")
        .count()
        .where(F.col("count") > 1)
        .orderBy("order_id", "source")
        .limit(5)
        .collect()
    )
    if dups:
        raise duplicate_ids_error([str(r["order_id"]) for r in dups])


def last_order_day(orders: Any, *, timezone: str, currency: str | None = None) -> date:
    """The merchant's local day of the last counted order (the default ``as_of``)."""
    from pyspark.sql import functions as F

    counted, _ = _counted(orders, timezone=timezone, currency=currency)
    last = _with_day(counted, timezone, []).agg(F.max("day")).collect()[0][0]
    if last is None:
        raise InputError(
            "there are no counted orders (paid or partially refunded) to predict from",
            code="input.no_orders",
            message_zh="没有可统计的订单(已支付或部分退款)可用于预测",
        )
    day: date = last
    return day


def spark_summary(
    orders: Any,
    *,
    timezone: str,
    as_of: date,
    currency: str | None = None,
    unit: str | float = "D",
    by: str | None = None,
) -> tuple[Any, str]:
    """``(summary, currency)``: one row per customer (per ``by`` and customer) with
    ``frequency``, ``recency``, ``T``, ``monetary_value`` (see the module docstring) and
    ``own_mean``, same-day orders merged. Nothing is computed until the frame is used."""
    from pyspark.sql import functions as F

    from huitouke.prediction.transactions import _check_zone

    _check_zone(timezone)
    days = unit_days(unit)
    counted, cur = _counted(orders, timezone=timezone, currency=currency)
    keys = ([by] if by else []) + ["customer_id"]
    per_day = (
        _with_day(counted, timezone, keys)
        .where(F.col("day") <= F.lit(as_of))
        .groupBy(*keys, "day")
        .agg(F.sum("revenue").alias("revenue"))
    )
    per_customer = per_day.groupBy(*keys).agg(
        F.min("day").alias("first"),
        F.max("day").alias("last"),
        F.count(F.lit(1)).alias("n"),
        F.sum("revenue").alias("total"),
        F.min_by("revenue", "day").alias("first_revenue"),
    )
    freq = (F.col("n") - 1).cast("double")
    summary = per_customer.select(
        *keys,
        freq.alias("frequency"),
        (F.datediff("last", "first").cast("double") / F.lit(days)).alias("recency"),
        (F.datediff(F.lit(as_of), "first").cast("double") / F.lit(days)).alias("T"),
        F.when(
            F.col("n") > 1,
            (F.col("total") - F.col("first_revenue")).cast("double") / freq,
        )
        .otherwise(F.lit(0.0))
        .alias("monetary_value"),
        (F.col("total").cast("double") / F.col("n").cast("double")).alias("own_mean"),
    )
    return summary, cur


def fit_on_driver(
    summary: Any,
    *,
    model: str,
    day: date,
    horizon_days: int,
    unit: str | float = "D",
    margin: float,
    discount_rate: float,
    coverage: float = COVERAGE,
) -> DriverFit:
    """Collapse ``summary`` in Spark to distinct rows with counts, collect those and fit
    (:func:`~huitouke.prediction.scoring.fit_weighted`)."""
    from pyspark.sql import functions as F

    rfm = summary.groupBy("frequency", "recency", "T").agg(F.count(F.lit(1)).alias("w"))
    spend_rows = (
        summary.where((F.col("frequency") > 0) & (F.col("monetary_value") > 0))
        .groupBy("frequency", "monetary_value")
        .agg(F.count(F.lit(1)).alias("w"))
    )
    return fit_weighted(
        rfm.toArrow(),
        lambda: spend_rows.toArrow(),
        model=model,
        day=day,
        horizon_days=horizon_days,
        unit=unit,
        margin=margin,
        discount_rate=discount_rate,
        coverage=coverage,
    )


def _score_batch(scorer: Scorer, batch: pa.RecordBatch) -> pa.RecordBatch:
    try:
        table = scorer.score(
            batch.column("customer_id"),
            batch.column("frequency").to_numpy(zero_copy_only=False),
            batch.column("recency").to_numpy(zero_copy_only=False),
            batch.column("T").to_numpy(zero_copy_only=False),
            batch.column("monetary_value").to_numpy(zero_copy_only=False),
            batch.column("own_mean").to_numpy(zero_copy_only=False),
        )
    except HuitoukeError as exc:  # carried to the driver inside Spark's worker error
        raise RuntimeError(f"{_FAILED}{exc.code}:{exc.message}") from exc
    out = table.combine_chunks().to_batches()
    return out[0] if out else pa.RecordBatch.from_pylist([], schema=table.schema)


def score(summary: Any, scorer: Scorer) -> Any:
    """The scores of every customer of ``summary`` as a Spark DataFrame (``mapInArrow``)."""

    def run(batches: Any) -> Any:
        for batch in batches:
            if batch.num_rows:
                yield _score_batch(scorer, batch)

    cols = summary.select("customer_id", "frequency", "recency", "T", "monetary_value", "own_mean")
    return cols.mapInArrow(run, SCORE_SCHEMA)


def _model_error(exc: Exception) -> ModelFitError | None:
    text = str(exc)
    if _FAILED not in text:
        return None
    code, _, message = text.split(_FAILED, 1)[1].split("\n", 1)[0].partition(":")
    return ModelFitError(message, code=code, message_zh=message)


def run_job(action: Any) -> Any:
    """Run a Spark action on the scores; a model error raised in a worker comes back as
    the :class:`ModelFitError` it was."""
    try:
        return action()
    except Exception as exc:
        err = _model_error(exc)
        if err is not None:
            raise err from None
        raise


@dataclass(frozen=True)
class SparkPrediction:
    """A Spark run: the scores (a lazy Spark DataFrame) and the run's description."""

    scores: Any
    fit: DriverFit
    as_of: date
    horizon_days: int
    unit: str | float
    currency: str
    timezone: str

    @property
    def model(self) -> str:
        return self.fit.scorer.name

    def to_prediction(self) -> Prediction:
        """Collect the scores into the :class:`Prediction` :func:`predict` gives (sorted
        by customer id, the same columns and types)."""
        table = run_job(lambda: self.scores.orderBy("customer_id").toArrow())
        frame = table.to_pandas(types_mapper=_arrow_backed)
        frame["model"] = self.fit.scorer.name
        return self.fit.prediction(
            frame, as_of=self.as_of, horizon_days=self.horizon_days, unit=self.unit,
            currency=self.currency, timezone=self.timezone,
        )  # fmt: skip

    def write_parquet(self, path: str) -> None:
        """Write the scores (with ``model``) as Parquet at ``path`` — a directory of part
        files, as Spark writes — without collecting them."""
        from pyspark.sql import functions as F

        frame = self.scores.withColumn("model", F.lit(self.model))
        run_job(lambda: frame.write.mode("overwrite").parquet(path))


def predict_spark(
    orders: Any,
    *,
    as_of: date | None,
    timezone: str,
    model: str = "auto",
    horizon_days: int = 90,
    unit: str | float = "D",
    currency: str | None = None,
    merge_same_day: bool = True,
    margin: float | None = None,
    discount_rate: float | None = None,
    coverage: float = COVERAGE,
) -> SparkPrediction:
    """:func:`huitouke.prediction.predict` on a Spark DataFrame of orders: the summary in
    Spark, the fit on the driver from weighted distinct rows, the scores a lazy Spark
    DataFrame. ``as_of`` None is the last counted order's day. Same-day orders are always
    merged (``merge_same_day=False`` is refused: which of a customer's orders on their
    first day is "the first" depends on the input's row order, which Spark does not keep)."""
    if not merge_same_day:
        raise InputError(
            "the Spark engine merges a customer's orders on one day (--merge-same-day); "
            "use --engine duckdb for --no-merge-same-day",
            code="input.conflicting_options",
            message_zh="Spark 引擎总是合并同一天的订单;--no-merge-same-day 请用 --engine duckdb",
            details={"option": "--no-merge-same-day"},
        )
    margin_, rate = check_arguments(model, horizon_days, margin, discount_rate)
    refuse_bad_orders(orders)
    day = (
        as_of if as_of is not None else last_order_day(orders, timezone=timezone, currency=currency)
    )
    summary, cur = spark_summary(orders, timezone=timezone, as_of=day, currency=currency, unit=unit)
    summary = summary.cache()
    fit = fit_on_driver(
        summary,
        model=model,
        day=day,
        horizon_days=horizon_days,
        unit=unit,
        margin=margin_,
        discount_rate=rate,
        coverage=coverage,
    )
    return SparkPrediction(score(summary, fit.scorer), fit, day, horizon_days, unit, cur, timezone)


#: the schema of :func:`predict_by_shop`'s rows: the shop, the scores, the model and a note
def _shop_schema(by: str) -> str:
    return f"{by} string, {SCORE_SCHEMA}, model string, note string"


def _fit_and_score_shop(
    table: pa.Table,
    *,
    by: str,
    model: str,
    day: date,
    horizon_days: int,
    unit: str | float,
    margin: float,
    discount_rate: float,
    coverage: float,
) -> pa.Table:
    """One shop's summary rows in, its scores out (null scores and a note when the shop's
    data cannot carry a model)."""
    from huitouke.prediction.transactions import MIN_CUSTOMERS, MIN_REPEAT_CUSTOMERS

    shop = table.column(by)[0].as_py()
    x = table.column("frequency").to_numpy(zero_copy_only=False)
    tx_ = table.column("recency").to_numpy(zero_copy_only=False)
    T = table.column("T").to_numpy(zero_copy_only=False)
    mv = table.column("monetary_value").to_numpy(zero_copy_only=False)
    own = table.column("own_mean").to_numpy(zero_copy_only=False)
    days = unit_days(unit)
    schema = pa.schema(
        [
            (by, pa.string()),
            *[(f.name, f.type) for f in _SCORE_ARROW],
            ("model", pa.string()),
            ("note", pa.string()),
        ]
    )
    n = table.num_rows
    try:
        n_repeat = int((x > 0).sum())
        if n < MIN_CUSTOMERS or n_repeat < MIN_REPEAT_CUSTOMERS:
            raise ModelFitError(
                f"too little data for a model: {n} customers, {n_repeat} with a repeat order "
                f"(needs at least {MIN_CUSTOMERS} and {MIN_REPEAT_CUSTOMERS})",
                code="model.too_little_data",
            )
        # the shop's distinct rows with their counts, as on the driver for one shop
        fitted = fit_counts(x, tx_, T, model=model, horizon=horizon_days / days, day=day)
        spend, _, _, _ = fit_spend(x, mv)
        scorer = Scorer(
            fitted.model,
            fitted.name,
            spend,
            day,
            horizon_days / days,
            days,
            margin,
            discount_rate,
            coverage,
        )
        scores = scorer.score(table.column("customer_id"), x, tx_, T, mv, own)
        cols = {
            by: pa.array([shop] * n, pa.string()),
            **{c: scores.column(c) for c in scores.column_names},
            "model": pa.array([fitted.name] * n, pa.string()),
            "note": pa.nulls(n, pa.string()),
        }
        return pa.table(cols, schema=schema)
    except HuitoukeError as exc:
        label = MODEL_LABELS.get(model, model)
        empty = {f.name: pa.nulls(n, f.type) for f in schema}
        empty[by] = pa.array([shop] * n, pa.string())
        empty["customer_id"] = table.column("customer_id").combine_chunks()
        empty["note"] = pa.array([f"[{exc.code}] {label}: {exc.message}"] * n, pa.string())
        return pa.table(empty, schema=schema)


_SCORE_ARROW = pa.schema(
    [
        ("customer_id", pa.string()),
        ("frequency", pa.int64()),
        ("recency", pa.float64()),
        ("T", pa.float64()),
        ("p_alive", pa.float64()),
        ("expected_orders", pa.float64()),
        ("p_order_in_horizon", pa.float64()),
        ("expected_order_value", pa.decimal128(18, 2)),
        ("expected_spend", pa.decimal128(18, 2)),
        ("clv", pa.decimal128(18, 2)),
        ("next_order_median", pa.date32()),
        ("next_order_low", pa.date32()),
        ("next_order_high", pa.date32()),
        ("p_no_further_order", pa.float64()),
        ("churn_risk", pa.string()),
    ]
)


def predict_by_shop(
    orders: Any,
    *,
    as_of: date,
    timezone: str,
    by: str = "source",
    model: str = "auto",
    horizon_days: int = 90,
    unit: str | float = "D",
    currency: str | None = None,
    margin: float | None = None,
    discount_rate: float | None = None,
    coverage: float = COVERAGE,
) -> Any:
    """One model per shop (the value of column ``by``, the orders' ``source`` by default):
    each shop's customers are fitted and scored on one worker (``applyInArrow``). A lazy
    Spark DataFrame: ``by``, the score columns, ``model`` and ``note`` (why a shop has no
    scores: below the data threshold of
    :func:`~huitouke.prediction.transactions.require_enough_data`, or no model fits)."""
    if by not in orders.columns:
        raise InputError(
            f"the orders have no column {by!r} to split the shops by",
            code="input.missing_column",
            message_zh=f"订单没有用于区分店铺的列 {by!r}",
            details={"column": by},
        )
    margin_, rate = check_arguments(model, horizon_days, margin, discount_rate)
    refuse_bad_orders(orders)
    summary, _ = spark_summary(
        orders, timezone=timezone, as_of=as_of, currency=currency, unit=unit, by=by
    )
    summary = summary.withColumn(by, summary[by].cast("string"))

    def run(table: pa.Table) -> pa.Table:
        return _fit_and_score_shop(
            table,
            by=by,
            model=model,
            day=as_of,
            horizon_days=horizon_days,
            unit=unit,
            margin=margin_,
            discount_rate=rate,
            coverage=coverage,
        )

    return summary.groupBy(by).applyInArrow(run, _shop_schema(by))
