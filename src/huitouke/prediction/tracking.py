"""Holdout tracking: does the model fitted on the past predict what customers then did?

The orders are split at ``calibration_end`` (a local day, included in the calibration).
The model is fitted on the calibration period of the customers first seen by then (the
cohort) and compared with their orders up to ``holdout_end`` in two ways:

- **tracking** (Fader, Hardie & Lee 2005, fig. 2–3): week by week, the cohort's actual
  repeat transactions vs the model's unconditional expectation
  ``Σ_f n_f · (E[X(a_f(w))] − E[X(a_f(w−1))])``, where ``n_f`` customers were acquired on
  day ``f`` and ``a_f(w)`` is their age at the end of week ``w`` — weekly and cumulative;
- **conditional** (:func:`huitouke.models.evaluate_holdout`): each customer's expected
  holdout orders given their calibration history vs what they did (total, MAE, and by
  calibration frequency).

Weeks run from the cohort's first order day; the last week may be shorter.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from huitouke.errors import InputError, ModelFitError
from huitouke.models import (
    HoldoutEvaluation,
    evaluate_holdout,
    fit_model,
    select_model,
)
from huitouke.models._btyd import ContinuousBTYD
from huitouke.prediction.scoring import MODEL_CHOICES, MODEL_LABELS
from huitouke.prediction.split import calibration_split
from huitouke.prediction.transactions import as_local_day

__all__ = ["HoldoutTracking", "holdout_tracking"]


@dataclass(frozen=True)
class HoldoutTracking:
    """Result of :func:`holdout_tracking`. ``weekly`` has one row per week: ``week``
    (1-based), ``week_start``, ``week_end`` (dates), ``period`` (calibration / holdout /
    both), ``actual``, ``predicted``, ``cumulative_actual``, ``cumulative_predicted``."""

    model: str
    params: dict[str, float]
    fitted: ContinuousBTYD
    calibration_end: date
    holdout_end: date
    customers: int
    weekly: pd.DataFrame
    evaluation: HoldoutEvaluation

    @property
    def holdout_actual(self) -> int:
        """Repeat transactions of the cohort in the holdout."""
        return round(self.evaluation.actual_total)

    @property
    def holdout_predicted(self) -> float:
        """The model's conditional expectation of them."""
        return self.evaluation.predicted_total

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form (dates ISO, numbers plain)."""
        rows: list[dict[Any, Any]] = self.weekly.to_dict("records")
        return {
            "model": self.model,
            "model_label": MODEL_LABELS.get(self.model, self.model),
            "params": self.params,
            "calibration_end": self.calibration_end.isoformat(),
            "holdout_end": self.holdout_end.isoformat(),
            "customers": self.customers,
            "holdout_actual": self.holdout_actual,
            "holdout_predicted": round(self.holdout_predicted, 3),
            "holdout_error": round(self.evaluation.aggregate_error, 6)
            if self.evaluation.actual_total
            else None,
            "mae": round(self.evaluation.mae, 6),
            "weeks": [
                {
                    "week": int(r["week"]),
                    "week_start": r["week_start"].isoformat(),
                    "week_end": r["week_end"].isoformat(),
                    "period": str(r["period"]),
                    "actual": int(r["actual"]),
                    "predicted": round(float(r["predicted"]), 4),
                    "cumulative_actual": int(r["cumulative_actual"]),
                    "cumulative_predicted": round(float(r["cumulative_predicted"]), 4),
                }
                for r in rows
            ],
        }


def holdout_tracking(
    orders: pa.Table,
    *,
    timezone: str,
    calibration_end: Any = None,
    holdout_end: Any = None,
    model: str = "auto",
    unit: str | float = "D",
    currency: str | None = None,
    merge_same_day: bool = True,
) -> HoldoutTracking:
    """Split the counted orders at ``calibration_end`` (default: the middle of the span),
    fit ``model`` on the calibration period and track it through ``holdout_end`` (default:
    the last order day). See the module docstring."""
    if model not in MODEL_CHOICES:
        raise InputError(
            f"unknown model {model!r}; choose from {', '.join(MODEL_CHOICES)}",
            code="input.model_argument",
            message_zh=f"未知模型 {model!r};可选 {', '.join(MODEL_CHOICES)}",
            details={"argument": "model"},
        )

    def given_or_middle(first_day: date, end: date) -> date:
        if calibration_end is None:
            return date.fromordinal(first_day.toordinal() + (end - first_day).days // 2)
        cal_end = as_local_day(calibration_end, timezone, "calibration_end")
        if not first_day <= cal_end < end:
            raise InputError(
                f"`calibration_end` {cal_end.isoformat()} must fall on or after the first order "
                f"day {first_day.isoformat()} and before `holdout_end` {end.isoformat()}",
                code="input.bad_split",
                message_zh=f"`calibration_end` {cal_end.isoformat()} 必须在首单日 "
                f"{first_day.isoformat()} 当天或之后,且早于 `holdout_end` {end.isoformat()}",
                details={"calibration_end": cal_end.isoformat(), "holdout_end": end.isoformat()},
            )
        return cal_end

    cut = calibration_split(
        orders,
        timezone=timezone,
        until=None if holdout_end is None else as_local_day(holdout_end, timezone, "holdout_end"),
        calibration_end=given_or_middle,
        unit=unit,
        currency=currency,
        merge_same_day=merge_same_day,
    )
    tx, split, cal_end, end = cut.tx, cut.summary, cut.calibration_end, cut.holdout_end
    days_per_unit = cut.days_per_unit
    x = split["frequency_cal"].to_numpy()
    if not np.any(x > 0):
        raise ModelFitError(
            f"no customer has a repeat order by {cal_end.isoformat()}; move `calibration_end` later",
            code="model.not_identified",
            message_zh=f"截至 {cal_end.isoformat()} 没有客户复购;请把 `calibration_end` 往后移",
        )
    tx_, T = split["recency_cal"].to_numpy(), split["T_cal"].to_numpy()
    if model == "auto":
        sel = select_model(x, tx_, T)
        m, chosen = sel.model, sel.name
    else:
        m, chosen = fit_model(model, x, tx_, T), model
    evaluation = evaluate_holdout(m, split)
    weekly = _weekly(tx, split.index, m, end, days_per_unit, cal_end, merge_same_day)
    return HoldoutTracking(
        model=chosen,
        params={k: float(v) for k, v in m.params_.items()},
        fitted=m,
        calibration_end=cal_end,
        holdout_end=end,
        customers=len(split),
        weekly=weekly,
        evaluation=evaluation,
    )


def _weekly(
    tx: pd.DataFrame,
    cohort: pd.Index,
    m: ContinuousBTYD,
    end: date,
    days_per_unit: float,
    cal_end: date,
    merge_same_day: bool,
) -> pd.DataFrame:
    rows = tx[tx["customer_id"].isin(cohort)][["customer_id", "day"]]
    if merge_same_day:
        rows = rows.drop_duplicates()
    rows = rows.sort_values(["customer_id", "day"], kind="stable")
    start = rows["day"].min()
    end_ts = pd.Timestamp(end)
    n_weeks = math.ceil(((end_ts - start).days + 1) / 7)
    # a repeat transaction is every row of a customer after their first
    is_repeat = rows["customer_id"].duplicated(keep="first").to_numpy()
    week_idx = ((rows["day"] - start).dt.days.to_numpy() // 7)[is_repeat]
    actual = np.bincount(week_idx, minlength=n_weeks)[:n_weeks].astype(np.int64)

    firsts = rows.loc[~is_repeat, "day"]
    per_day = firsts.value_counts()
    offset = (per_day.index - start).days.to_numpy(dtype=np.float64)
    counts = per_day.to_numpy(dtype=np.float64)
    last_day = np.minimum(np.arange(n_weeks) * 7.0 + 6.0, float((end_ts - start).days))
    # age (in the model's unit) at the end of each week's last day; orders on that day count
    age = np.clip(last_day[None, :] - offset[:, None], 0.0, None) / days_per_unit
    flat, inverse = np.unique(age.ravel(), return_inverse=True)
    cum = np.asarray(m.expected_purchases(flat))[inverse].reshape(age.shape)
    cumulative_predicted = counts @ cum
    predicted = np.diff(np.concatenate([[0.0], cumulative_predicted]))

    week_start = start + pd.to_timedelta(np.arange(n_weeks) * 7, unit="D")
    week_end = start + pd.to_timedelta(last_day, unit="D")
    cal_ts = pd.Timestamp(cal_end)
    period = np.where(
        week_end <= cal_ts, "calibration", np.where(week_start > cal_ts, "holdout", "both")
    )
    return pd.DataFrame(
        {
            "week": np.arange(1, n_weeks + 1),
            "week_start": week_start.date,
            "week_end": week_end.date,
            "period": period,
            "actual": actual,
            "predicted": predicted,
            "cumulative_actual": np.cumsum(actual),
            "cumulative_predicted": cumulative_predicted,
        }
    )
