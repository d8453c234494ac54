"""One per-customer view with one model policy — used by ``huitouke customers`` (through
:mod:`huitouke.app.customer_frame`), the report and, for P(alive), the journeys' frame.

:func:`customer_frame` joins the analytics' per-customer table (orders, spend, cycle, RFM,
layer, lifecycle) with the repurchase model's scores. The model policy is one function,
:func:`huitouke.prediction.policy_prediction`: :func:`huitouke.prediction.predict` with
``model="auto"`` by default (the usable fit of lowest BIC, see
:mod:`huitouke.models.selection`) on the counted orders up to ``as_of`` — the same run as
``huitouke predict``, the journeys' frame and the report's predictions — and its P(alive)
feeds the lifecycle stage (decline / lost on low P(alive)), so the lifecycle is computed
from the same model everywhere the frame is used.

Below the data threshold (:func:`huitouke.prediction.transactions.require_enough_data`:
30 customers, 5 of them buying on two days or more) and when no model can be fitted, the
lifecycle comes from the analytics alone, the prediction columns stay, empty, and
``prediction_note`` says why on every row: never a silently missing column.

It lives with the model policy, below the report and the application layer, so that the
report (which may not import :mod:`huitouke.app`) and the doors use the same function. A
caller that also needs the full run (the report's predictions section) passes the
:func:`~huitouke.prediction.policy_prediction` it made, and the model is fitted once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

import pandas as pd
import pyarrow as pa

from huitouke.errors import ModelFitError
from huitouke.prediction.scoring import Prediction, policy_prediction

__all__ = ["PREDICTION_COLUMNS", "CustomerFrame", "customer_frame"]

#: the model's columns in the frame (besides ``customer_id``)
PREDICTION_COLUMNS = (
    "p_alive",
    "expected_orders",
    "expected_spend",
    "clv",
    "next_order_median",
    "next_order_low",
    "next_order_high",
    "p_no_further_order",
    "churn_risk",
)


@dataclass(frozen=True)
class CustomerFrame:
    """The frame, the model used (None when none could be fitted) and, then, why."""

    frame: pd.DataFrame
    model: str | None
    error: ModelFitError | None = None

    def note(self, lang: str) -> str | None:
        if self.error is None:
            return None
        head = "模型无法拟合,预测列为空" if lang == "zh" else "no model could be fitted"
        return f"{head}: [{self.error.code}] {self.error.localized(lang)}"


def customer_frame(
    analytics: Any,
    orders: pa.Table,
    *,
    as_of: date,
    timezone: str,
    model: str = "auto",
    horizon_days: int = 90,
    currency: str | None = None,
    predictions: bool = True,
    lang: str = "en",
    run: Prediction | ModelFitError | None = None,
) -> CustomerFrame:
    """``analytics.customers(as_of)`` with the model's P(alive) in its lifecycle and, with
    ``predictions``, the :data:`PREDICTION_COLUMNS` (see the module docstring). ``run`` is
    the caller's own :func:`policy_prediction` for the same arguments (or the error it
    raised), to spare a second fit."""
    if not predictions:
        return CustomerFrame(analytics.customers(as_of), None)
    try:
        if isinstance(run, ModelFitError):
            raise run
        if run is None:
            run = policy_prediction(
                orders,
                as_of=as_of,
                timezone=timezone,
                model=model,
                horizon_days=horizon_days,
                currency=currency,
            )
        scores = run.customers
    except ModelFitError as exc:
        frame = analytics.customers(as_of)
        out = CustomerFrame(frame, None, exc)
        for col in PREDICTION_COLUMNS:
            frame[col] = None
        frame["prediction_note"] = out.note(lang)
        return out
    frame = analytics.customers(as_of, p_alive=scores.set_index("customer_id")["p_alive"])
    # the analytics echo P(alive) back; the model's own columns replace the echo
    frame = frame.drop(columns=[c for c in PREDICTION_COLUMNS if c in frame.columns])
    frame = frame.merge(scores[["customer_id", *PREDICTION_COLUMNS]], on="customer_id", how="left")
    return CustomerFrame(frame, str(scores["model"].iloc[0]) if len(scores) else model)
