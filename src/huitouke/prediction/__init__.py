"""Where merchants meet the prediction models: per-customer repurchase scores.

Glue from the canonical orders table to :mod:`huitouke.models`::

    from huitouke.prediction import predict_customers, holdout_tracking, alive_summary

    scores = predict_customers(orders, as_of=date(2026, 11, 23), timezone="Asia/Shanghai")
    # customer_id, frequency, recency, T, p_alive, expected_orders, p_order_in_horizon,
    # expected_order_value, expected_spend, clv, next_order_median/low/high,
    # p_no_further_order, churn_risk, model

- :func:`predict` / :func:`predict_customers` — fit (``auto`` = lowest BIC among the
  usable fits, see :mod:`huitouke.models.selection`) and score;
- :func:`evaluate_models` — hold out the last 30% of the history and check every model's
  predicted repeat orders and next-order interval coverage against what happened;
- :func:`alive_summary` — customers and value per churn-risk band (alive vs dormant);
- :func:`holdout_tracking` — calibration/holdout split at a date: actual vs predicted
  weekly and cumulative repeat transactions (the Fader–Hardie tracking plot);
- :func:`parse_horizon` — ``90d`` / ``12w`` / ``3m`` to days;
- :func:`policy_prediction` / :func:`policy_scores` — the one model policy of every
  per-customer view, and :func:`huitouke.prediction.customer_frame.customer_frame`, that
  view (the analytics' table with the policy's P(alive) in its lifecycle).

See docs/predict.md.
"""

from huitouke.prediction.evaluate import (
    DEFAULT_HOLDOUT_SHARE,
    HoldoutCheck,
    ModelCheck,
    evaluate_models,
)
from huitouke.prediction.horizon import parse_horizon
from huitouke.prediction.scoring import (
    CHURN_RISK_BANDS,
    MODEL_CHOICES,
    MODEL_LABELS,
    Prediction,
    alive_summary,
    churn_risk,
    churn_risk_label,
    policy_prediction,
    policy_scores,
    predict,
    predict_customers,
)
from huitouke.prediction.tracking import HoldoutTracking, holdout_tracking
from huitouke.prediction.transactions import counted_transactions

__all__ = [
    "CHURN_RISK_BANDS",
    "DEFAULT_HOLDOUT_SHARE",
    "MODEL_CHOICES",
    "MODEL_LABELS",
    "HoldoutCheck",
    "HoldoutTracking",
    "ModelCheck",
    "Prediction",
    "alive_summary",
    "churn_risk",
    "churn_risk_label",
    "counted_transactions",
    "evaluate_models",
    "holdout_tracking",
    "parse_horizon",
    "policy_prediction",
    "policy_scores",
    "predict",
    "predict_customers",
]
