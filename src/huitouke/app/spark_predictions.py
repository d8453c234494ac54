"""The model policy of the per-customer views on orders that stay in Spark — or in DuckDB.

:func:`spark_policy_prediction` is :func:`huitouke.prediction.policy_prediction` for a
Spark DataFrame of orders: the same data threshold
(:func:`~huitouke.prediction.transactions.require_enough_data`: 30 customers, 5 buying on
two days or more, counted on the Spark summary) and the same fit and scores
(:mod:`huitouke.prediction.spark`), collected into the
:class:`~huitouke.prediction.Prediction` the views take. A view that cannot use the model
gets the :class:`~huitouke.errors.ModelFitError` back (returned, not raised), as
:func:`~huitouke.prediction.customer_frame.customer_frame` takes it.
:func:`duckdb_policy_prediction` is the same for orders DuckDB reads itself (a Parquet
PATH): the summary computed there (:mod:`huitouke.prediction.duckdb_engine`), so the orders
never enter the process.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from huitouke.errors import ModelFitError
from huitouke.prediction import Prediction
from huitouke.prediction.transactions import too_little_data

__all__ = ["duckdb_policy_prediction", "spark_policy_prediction"]


def duckdb_policy_prediction(
    con: Any,
    *,
    as_of: date,
    timezone: str,
    model: str = "auto",
    horizon_days: int = 90,
    currency: str | None = None,
) -> Prediction | ModelFitError:
    """On the relation ``orders`` of ``con`` (a DuckDB backend reading Parquet itself). The
    summary is computed once, by the prediction; the threshold is read from it after."""
    from huitouke.prediction.duckdb_engine import SUMMARY_TABLE, predict_duckdb

    failed: ModelFitError | None = None
    try:
        run = predict_duckdb(
            con,
            as_of=as_of,
            timezone=timezone,
            model=model,
            horizon_days=horizon_days,
            currency=currency,
        )
    except ModelFitError as exc:  # the summary table is there: it is made before the fit
        failed = exc
    counts = con.query(
        f"SELECT COUNT(*) AS n, COUNT(*) FILTER (WHERE frequency > 0) AS r FROM {SUMMARY_TABLE}"
    ).to_pylist()[0]
    refused = too_little_data(int(counts["n"] or 0), int(counts["r"] or 0))
    if refused is not None:
        return refused
    if failed is not None:
        return failed
    return run.to_prediction()


def spark_policy_prediction(
    orders: Any,
    *,
    as_of: date,
    timezone: str,
    model: str = "auto",
    horizon_days: int = 90,
    currency: str | None = None,
) -> Prediction | ModelFitError:
    from pyspark.sql import functions as F

    from huitouke.prediction.spark import predict_spark, spark_summary

    summary, _ = spark_summary(orders, timezone=timezone, as_of=as_of, currency=currency)
    counts = summary.agg(
        F.count(F.lit(1)).alias("n"),
        F.sum(F.when(F.col("frequency") > 0, 1).otherwise(0)).alias("repeat"),
    ).collect()[0]
    refused = too_little_data(int(counts["n"] or 0), int(counts["repeat"] or 0))
    if refused is not None:
        return refused
    try:
        return predict_spark(
            orders,
            as_of=as_of,
            timezone=timezone,
            model=model,
            horizon_days=horizon_days,
            currency=currency,
        ).to_prediction()
    except ModelFitError as exc:
        return exc
