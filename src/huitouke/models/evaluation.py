"""Out-of-sample checks and model choice.

- :func:`evaluate_holdout`: predicted vs actual orders in a holdout period — in total,
  per customer (MAE, RMSE) and by calibration frequency (the classic "conditional
  expectations" table of Fader, Hardie & Lee 2005, fig. 4).
- :func:`select_model` / :func:`fit_model` (defined in :mod:`huitouke.models.selection`,
  re-exported here): fit the candidates, reject unusable fits and keep the best by BIC.
- :func:`next_order_calibration`: how well the next-order interval and P(no further
  order) match what customers then did.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from huitouke.errors import InputError
from huitouke.models._btyd import ContinuousBTYD
from huitouke.models.selection import MODELS, ModelSelection, fit_model, select_model

__all__ = [
    "MODELS",
    "HoldoutEvaluation",
    "ModelSelection",
    "NextOrderCalibration",
    "evaluate_holdout",
    "fit_model",
    "next_order_calibration",
    "select_model",
]

_SPLIT_COLUMNS = ("frequency_cal", "recency_cal", "T_cal", "frequency_holdout", "duration_holdout")


def _check_split(split: pd.DataFrame) -> None:
    missing = [c for c in _SPLIT_COLUMNS if c not in split.columns]
    if missing:
        raise InputError(
            f"`split` lacks columns {missing}; build it with calibration_and_holdout_summary",
            code="input.missing_column",
            message_zh=f"`split` 缺少列 {missing};请用 calibration_and_holdout_summary 生成",
            details={"columns": missing},
        )


@dataclass(frozen=True)
class HoldoutEvaluation:
    """Predicted vs actual orders in the holdout period."""

    model: str
    customers: int
    actual_total: float
    predicted_total: float
    mae: float
    rmse: float
    by_frequency: pd.DataFrame

    @property
    def aggregate_error(self) -> float:
        """(predicted − actual) / actual, over all customers."""
        return (self.predicted_total - self.actual_total) / self.actual_total


def evaluate_holdout(
    model: ContinuousBTYD, split: pd.DataFrame, max_frequency: int = 7
) -> HoldoutEvaluation:
    """Compare ``model``'s conditional expectations with the holdout orders in ``split``
    (the frame of :func:`~huitouke.models.calibration_and_holdout_summary`). Customers with
    ``max_frequency`` or more calibration repeat orders share the last row of the table."""
    _check_split(split)
    x = split["frequency_cal"].to_numpy(dtype=np.float64)
    pred = model.conditional_expected_purchases(
        split["duration_holdout"].to_numpy(dtype=np.float64),
        x,
        split["recency_cal"].to_numpy(dtype=np.float64),
        split["T_cal"].to_numpy(dtype=np.float64),
    )
    actual = split["frequency_holdout"].to_numpy(dtype=np.float64)
    err = pred - actual
    bins = np.minimum(x, max_frequency).astype(int)
    table = (
        pd.DataFrame({"frequency_cal": bins, "actual": actual, "predicted": pred})
        .groupby("frequency_cal")
        .agg(
            customers=("actual", "size"), actual=("actual", "mean"), predicted=("predicted", "mean")
        )
    )
    table.index = pd.Index(
        [f"{i}+" if i == max_frequency else str(i) for i in table.index], name="frequency_cal"
    )
    return HoldoutEvaluation(
        model=type(model).__name__,
        customers=int(x.size),
        actual_total=float(actual.sum()),
        predicted_total=float(pred.sum()),
        mae=float(np.mean(np.abs(err))),
        rmse=float(np.sqrt(np.mean(err**2))),
        by_frequency=table,
    )


@dataclass(frozen=True)
class NextOrderCalibration:
    """Forecast vs outcome of the next order in a holdout window of length ``window``.

    ``observed_coverage`` is the share of customers who ordered in the window whose first
    order fell inside their interval; ``expected_coverage`` is what the model itself
    expects for that share once the window cuts the distribution (the 80% interval of an
    untruncated distribution is not 80% of a truncated one).
    """

    coverage: float
    window: float
    customers: int
    ordered_in_window: int
    observed_coverage: float
    expected_coverage: float
    observed_no_order_share: float
    predicted_no_order_share: float
    mean_p_no_further_order: float


def next_order_calibration(
    model: ContinuousBTYD,
    split: pd.DataFrame,
    first_order: pd.Series,
    coverage: float = 0.8,
) -> NextOrderCalibration:
    """Check :meth:`next_order_distribution` against the first holdout order.

    ``first_order`` is the time from the end of calibration to each customer's first
    holdout order (NaN if none), aligned with ``split`` — see
    :func:`~huitouke.models.summary.first_holdout_order`.
    """
    _check_split(split)
    x = split["frequency_cal"].to_numpy(dtype=np.float64)
    tx = split["recency_cal"].to_numpy(dtype=np.float64)
    tt = split["T_cal"].to_numpy(dtype=np.float64)
    window = float(split["duration_holdout"].iloc[0])
    gap = first_order.reindex(split.index).to_numpy(dtype=np.float64)
    dist = model.next_order_distribution(x, tx, tt, coverage=coverage)
    lower = dist["lower"].to_numpy()
    upper = dist["upper"].to_numpy()
    alive = dist["p_alive"].to_numpy()
    ordered = ~np.isnan(gap)
    inside = ordered & (gap >= lower) & (gap <= upper)
    # the model's own probabilities of the same events
    h_lo, _ = model._next_order_cdf_given_alive(np.minimum(lower, window), x, tt)
    h_hi, _ = model._next_order_cdf_given_alive(np.minimum(upper, window), x, tt)
    h_w, _ = model._next_order_cdf_given_alive(np.full(x.shape, window), x, tt)
    p_inside = alive * np.maximum(h_hi - h_lo, 0.0)
    p_order = alive * h_w
    return NextOrderCalibration(
        coverage=coverage,
        window=window,
        customers=int(x.size),
        ordered_in_window=int(ordered.sum()),
        observed_coverage=float(inside.sum() / max(ordered.sum(), 1)),
        expected_coverage=float(p_inside.sum() / p_order.sum()),
        observed_no_order_share=float(1.0 - ordered.mean()),
        predicted_no_order_share=float(1.0 - p_order.mean()),
        mean_p_no_further_order=float(dist["p_no_further_order"].mean()),
    )
