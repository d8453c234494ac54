"""How good are the predictions on this shop? A calibration/holdout check on its own orders.

The counted orders up to ``as_of`` are split in time: the last ``holdout_share`` of the span
from the first order day to ``as_of`` (default 30%) is the *holdout*, the rest the
*calibration* period. Every candidate model (BG/NBD, Pareto/NBD, MBG/NBD) is fitted on the
calibration period of the customers first seen in it — through
:func:`huitouke.models.select_model`, so the same fits ``auto`` would judge — and then
compared with what those customers actually did in the holdout:

- **repeat orders**: each customer's conditional expectation of orders in the holdout,
  summed, against the actual count (every holdout order of a calibration customer is a
  repeat order; with same-day merging, days with orders), and the error
  ``(predicted − actual) / actual``;
- **next-order interval coverage**: of the customers who ordered in the holdout, the share
  whose first holdout order fell inside their next-order interval (80% by default),
  beside the share the model itself expects once the holdout window cuts the
  distribution (:func:`huitouke.models.next_order_calibration`).

The check reports; it does not change the choice of ``auto`` (lowest BIC among the usable
fits on all the data): see docs/predict.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from huitouke.errors import InputError, ModelFitError
from huitouke.models import (
    evaluate_holdout,
    first_holdout_order,
    next_order_calibration,
    select_model,
)
from huitouke.prediction.scoring import COVERAGE, MODEL_LABELS
from huitouke.prediction.split import calibration_split
from huitouke.prediction.transactions import as_local_day

__all__ = ["DEFAULT_HOLDOUT_SHARE", "HoldoutCheck", "ModelCheck", "evaluate_models"]

#: share of the order history's span held out by default
DEFAULT_HOLDOUT_SHARE = 0.3


@dataclass(frozen=True)
class ModelCheck:
    """One candidate's holdout result. ``status``: ``chosen`` (what ``auto`` picks on the
    calibration data), ``accepted``, ``rejected`` (fitted but unusable; numbers shown when
    finite) or ``failed`` (no fit). ``penalized`` marks a regularised refit."""

    model: str
    status: str
    penalized: bool
    reason: str
    reason_zh: str
    bic: float | None
    params: dict[str, float]
    predicted: float | None
    actual: int
    error: float | None
    coverage_observed: float | None
    coverage_expected: float | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "model_label": MODEL_LABELS.get(self.model, self.model),
            "status": self.status,
            "penalized": self.penalized,
            "reason": self.reason or None,
            "reason_zh": self.reason_zh or None,
            "bic": self.bic,
            "params": self.params,
            "predicted_repeat_orders": self.predicted,
            "actual_repeat_orders": self.actual,
            "error": self.error,
            "coverage_observed": self.coverage_observed,
            "coverage_expected": self.coverage_expected,
        }


@dataclass(frozen=True)
class HoldoutCheck:
    """Result of :func:`evaluate_models`."""

    calibration_end: date
    holdout_end: date
    holdout_share: float
    customers: int
    ordered_in_holdout: int
    actual_repeat_orders: int
    coverage: float
    models: list[ModelCheck] = field(default_factory=list)
    note: str = ""
    note_zh: str = ""

    @property
    def holdout_days(self) -> int:
        return (self.holdout_end - self.calibration_end).days

    @property
    def chosen(self) -> ModelCheck | None:
        return next((m for m in self.models if m.status == "chosen"), None)

    def to_dict(self) -> dict[str, Any]:
        chosen = self.chosen
        return {
            "calibration_end": self.calibration_end.isoformat(),
            "holdout_end": self.holdout_end.isoformat(),
            "holdout_days": self.holdout_days,
            "holdout_share": self.holdout_share,
            "customers": self.customers,
            "ordered_in_holdout": self.ordered_in_holdout,
            "actual_repeat_orders": self.actual_repeat_orders,
            "coverage": self.coverage,
            "auto_model": None if chosen is None else chosen.model,
            "note": self.note or None,
            "note_zh": self.note_zh or None,
            "models": [m.to_dict() for m in self.models],
        }


def _finite(v: float) -> float | None:
    return float(v) if math.isfinite(v) else None


def evaluate_models(
    orders: pa.Table,
    *,
    timezone: str,
    as_of: Any = None,
    holdout_share: float = DEFAULT_HOLDOUT_SHARE,
    unit: str | float = "D",
    currency: str | None = None,
    merge_same_day: bool = True,
    coverage: float = COVERAGE,
) -> HoldoutCheck:
    """Hold out the last ``holdout_share`` of the history up to ``as_of`` (default: the
    last order day) and check every model on it; see the module docstring."""
    if not (isinstance(holdout_share, int | float) and 0.0 < holdout_share < 1.0):
        raise InputError(
            f"`holdout_share` must be a share between 0 and 1 (exclusive), got {holdout_share!r}",
            code="input.bad_split",
            message_zh=f"`holdout_share`(留出比例)必须介于 0 和 1 之间,实际为 {holdout_share!r}",
            details={"argument": "holdout_share"},
        )

    def share_of_span(first_day: date, end: date) -> date:
        span = (end - first_day).days
        held = round(span * holdout_share)
        cal_end = end - timedelta(days=held)
        if held < 1 or cal_end <= first_day:
            raise InputError(
                f"the order history ({first_day.isoformat()} to {end.isoformat()}, {span} days) "
                f"is too short to hold out {holdout_share:.0%} of it",
                code="input.bad_split",
                message_zh=f"订单历史({first_day.isoformat()} 至 {end.isoformat()},共 {span} 天)"
                f"太短,无法留出其中的 {holdout_share:.0%}",
                details={"first_day": first_day.isoformat(), "as_of": end.isoformat()},
            )
        return cal_end

    cut = calibration_split(
        orders,
        timezone=timezone,
        until=None if as_of is None else as_local_day(as_of, timezone),
        calibration_end=share_of_span,
        unit=unit,
        currency=currency,
        merge_same_day=merge_same_day,
    )
    tx, split, cal_end, end = cut.tx, cut.summary, cut.calibration_end, cut.holdout_end
    days_per_unit = cut.days_per_unit
    gap = first_holdout_order(
        tx, pd.Timestamp(cal_end), pd.Timestamp(end), date_col="day", unit=days_per_unit
    )
    actual = int(split["frequency_holdout"].sum())
    ordered = int((split["frequency_holdout"] > 0).sum())
    base: dict[str, Any] = {
        "calibration_end": cal_end,
        "holdout_end": end,
        "holdout_share": float(holdout_share),
        "customers": len(split),
        "ordered_in_holdout": ordered,
        "actual_repeat_orders": actual,
        "coverage": coverage,
    }
    x = split["frequency_cal"].to_numpy()
    tx_, T = split["recency_cal"].to_numpy(), split["T_cal"].to_numpy()
    window = float(split["duration_holdout"].iloc[0])
    try:
        if not np.any(x > 0):
            raise ModelFitError(
                f"no customer has a repeat order by {cal_end.isoformat()}",
                code="model.not_identified",
                message_zh=f"截至 {cal_end.isoformat()} 没有客户复购",
            )
        sel = select_model(x, tx_, T, horizon=window)
    except ModelFitError as exc:
        return HoldoutCheck(**base, note=exc.message, note_zh=exc.message_zh)

    checks = []
    for key, row in sel.table.iterrows():
        name, _, pen = str(key).partition("+")
        m = sel.fits.get(str(key))
        predicted = err = cov_obs = cov_exp = None
        if m is not None:
            with np.errstate(all="ignore"):
                ev = evaluate_holdout(m, split)
                predicted = _finite(ev.predicted_total)
                if predicted is not None and actual > 0:
                    err = (predicted - actual) / actual
                try:
                    cal = next_order_calibration(m, split, gap, coverage=coverage)
                    if ordered:
                        cov_obs = _finite(cal.observed_coverage)
                        cov_exp = _finite(cal.expected_coverage)
                except (FloatingPointError, ValueError, ZeroDivisionError):
                    pass
        checks.append(
            ModelCheck(
                model=name,
                status=str(row["status"]),
                penalized=bool(pen),
                reason=str(row["error"]),
                reason_zh=str(row["error_zh"]),
                bic=_finite(float(row["bic"])),
                params={} if m is None else {k: float(v) for k, v in m.params_.items()},
                predicted=predicted,
                actual=actual,
                error=err,
                coverage_observed=cov_obs,
                coverage_expected=cov_exp,
            )
        )
    return HoldoutCheck(**base, models=checks)
