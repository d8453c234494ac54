"""The model policy of the per-customer views on orders that stay in Spark.

:func:`spark_policy_prediction` is :func:`huitouke.prediction.policy_prediction` for a
Spark DataFrame of orders: the same data threshold
(:func:`~huitouke.prediction.transactions.require_enough_data`: 30 customers, 5 buying on
two days or more, counted on the Spark summary) and the same fit and scores
(:mod:`huitouke.prediction.spark`), collected into the
:class:`~huitouke.prediction.Prediction` the views take. A view that cannot use the model
gets the :class:`~huitouke.errors.ModelFitError` back (returned, not raised), as
:func:`~huitouke.prediction.customer_frame.customer_frame` takes it.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from huitouke.errors import ModelFitError
from huitouke.prediction import Prediction

__all__ = ["spark_policy_prediction"]


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
    from huitouke.prediction.transactions import MIN_CUSTOMERS, MIN_REPEAT_CUSTOMERS

    summary, _ = spark_summary(orders, timezone=timezone, as_of=as_of, currency=currency)
    counts = summary.agg(
        F.count(F.lit(1)).alias("n"),
        F.sum(F.when(F.col("frequency") > 0, 1).otherwise(0)).alias("repeat"),
    ).collect()[0]
    n, n_repeat = int(counts["n"] or 0), int(counts["repeat"] or 0)
    if n < MIN_CUSTOMERS or n_repeat < MIN_REPEAT_CUSTOMERS:
        return ModelFitError(
            f"too little data for a model: {n} customers, {n_repeat} with a repeat order "
            f"(needs at least {MIN_CUSTOMERS} and {MIN_REPEAT_CUSTOMERS})",
            code="model.too_little_data",
            message_zh=f"数据太少,无法建模:{n} 位顾客,其中 {n_repeat} 位有复购"
            f"(至少需要 {MIN_CUSTOMERS} 位和 {MIN_REPEAT_CUSTOMERS} 位)",
            details={"customers": n, "repeat_customers": n_repeat},
        )
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
