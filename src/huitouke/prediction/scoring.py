"""Per-customer repurchase scores: P(alive), expected orders and spend, CLV, next-order date.

The pipeline, vectorised end to end (no per-customer Python loop):

1. counted orders up to ``as_of`` (the merchant's local day, orders on that day included);
2. the RFM summary of :func:`huitouke.models.summary_from_transactions` in the chosen unit
   (days by default), a customer's orders on one local day merged into one as the BTYD
   models assume (``merge_same_day=False`` keeps them apart);
3. the order-count model: BG/NBD, Pareto/NBD, MBG/NBD or ``auto`` (the lowest BIC among
   the fits that pass :func:`huitouke.models.diagnose_fit`);
4. the Gamma-Gamma spend model on repeat buyers (Fader & Hardie 2013);
5. per customer: P(alive), expected orders in the horizon, P(≥1 order in the horizon),
   expected order value and spend, CLV, the next-order median and 80% interval as dates,
   P(no further order), a churn-risk band.

See docs/predict.md for the definitions and references.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from huitouke.errors import HuitoukeError, InputError, ModelFitError
from huitouke.i18n import t
from huitouke.models import (
    MODELS,
    GammaGamma,
    customer_lifetime_value,
    fit_model,
    select_model,
    summary_from_transactions,
)
from huitouke.models._btyd import ContinuousBTYD
from huitouke.models.summary import unit_days
from huitouke.prediction import messages as _messages  # noqa: F401  (registers texts)
from huitouke.prediction.transactions import (
    as_local_day,
    counted_transactions,
    require_enough_data,
)

__all__ = [
    "CHURN_RISK_BANDS",
    "MODEL_CHOICES",
    "MODEL_LABELS",
    "Prediction",
    "alive_summary",
    "churn_risk",
    "churn_risk_label",
    "policy_prediction",
    "policy_scores",
    "predict",
    "predict_customers",
]

#: ``--model`` choices
MODEL_CHOICES = ("auto", *MODELS)
MODEL_LABELS = {"bgnbd": "BG/NBD", "pnbd": "Pareto/NBD", "mbgnbd": "MBG/NBD"}

#: churn-risk bands on P(alive), highest first: (code, lower bound inclusive).
#: low ≥ 0.7 and high/lost < 0.3 match the report's alive / dormant split.
CHURN_RISK_BANDS: tuple[tuple[str, float], ...] = (
    ("low", 0.7),
    ("medium", 0.3),
    ("high", 0.1),
    ("lost", 0.0),
)
#: alive vs dormant groups of the bands
_STATUS = {"low": "alive", "medium": "uncertain", "high": "dormant", "lost": "dormant"}

#: days in an average month, the CLV discounting period
MONTH_DAYS = 365.25 / 12.0
#: the share of an order value's interval the next-order interval covers
COVERAGE = 0.8

_MONEY = pa.decimal128(18, 2)
_CENT = Decimal("0.01")


def churn_risk(p_alive: np.ndarray | pd.Series) -> np.ndarray:
    """Band codes ``low`` (P(alive) ≥ 0.7), ``medium`` (0.3–0.7), ``high`` (0.1–0.3),
    ``lost`` (< 0.1), as an object array."""
    p = np.asarray(p_alive, dtype=np.float64)
    codes = np.array([c for c, _ in CHURN_RISK_BANDS], dtype=object)
    bounds = np.array([b for _, b in CHURN_RISK_BANDS])
    # index of the first band whose lower bound the value reaches
    idx = np.argmax(p[:, None] >= bounds[None, :], axis=1)
    return codes[idx]


def churn_risk_label(code: str, lang: str = "zh") -> str:
    """The user-facing name of a churn-risk band code."""
    return t(f"prediction.risk.{code}", lang)


@dataclass(frozen=True)
class Prediction:
    """Everything :func:`predict` computed: the per-customer ``customers`` frame and the
    model behind it."""

    customers: pd.DataFrame
    model: str
    params: dict[str, float]
    log_likelihood: float
    comparison: pd.DataFrame | None
    fitted: ContinuousBTYD
    spend_source: str
    spend_params: dict[str, float]
    spend_note: str
    as_of: date
    horizon_days: int
    unit: str
    unit_days: float
    currency: str
    timezone: str
    margin: float
    discount_rate: float
    merge_same_day: bool
    extras: dict[str, Any] = field(default_factory=dict)
    #: why ``auto`` chose this model and rejected the others (en / zh); empty otherwise
    selection_reason: str = ""
    selection_reason_zh: str = ""
    #: the ridge penalty of the chosen fit (non-zero only when auto had to regularise)
    penalizer: float = 0.0

    @property
    def model_label(self) -> str:
        return MODEL_LABELS.get(self.model, self.model)

    def meta(self) -> dict[str, Any]:
        """The JSON-friendly description of the run (everything but the customer rows)."""
        comparison = None
        if self.comparison is not None:
            comparison = [
                {
                    "model": str(name),
                    "log_likelihood": _num(row["log_likelihood"]),
                    "aic": _num(row["aic"]),
                    "bic": _num(row["bic"]),
                    "penalizer": _num(row.get("penalizer", 0.0)),
                    "status": str(row.get("status", "")) or None,
                    "problem": str(row.get("problem", "")) or None,
                    "error": str(row["error"]) or None,
                    "error_zh": str(row.get("error_zh", "")) or None,
                }
                for name, row in self.comparison.iterrows()
            ]
        return {
            "model": self.model,
            "model_label": self.model_label,
            "params": self.params,
            "log_likelihood": self.log_likelihood,
            "comparison": comparison,
            "selection": {
                "reason": self.selection_reason or None,
                "reason_zh": self.selection_reason_zh or None,
                "penalizer": self.penalizer,
            },
            "horizon_days": self.horizon_days,
            "as_of": self.as_of.isoformat(),
            "timezone": self.timezone,
            "currency": self.currency,
            "unit": self.unit,
            "merge_same_day": self.merge_same_day,
            "spend_model": self.spend_source,
            "spend_params": self.spend_params,
            "margin": self.margin,
            "annual_discount_rate": self.discount_rate,
        }


def _num(v: Any) -> float | None:
    f = float(v)
    return None if math.isnan(f) else f


def _unit_name(unit: str | float) -> str:
    d = unit_days(unit)
    return "day" if d == 1.0 else "week" if d == 7.0 else f"{d:g} days"


def _money(values: np.ndarray) -> pa.Array:
    """Floats to exact Decimal money rounded half-even to cents, without a Python loop:
    integer cents, then a decimal cast and a scale by 0.01."""
    cents = np.rint(np.asarray(values, dtype=np.float64) * 100.0).astype(np.int64)
    as_dec = pa.array(cents, pa.int64()).cast(pa.decimal128(19, 0))
    scaled = pc.multiply(as_dec, pa.scalar(_CENT, pa.decimal128(3, 2)))
    return scaled.cast(_MONEY)


def _arrow_backed(t: pa.DataType) -> pd.ArrowDtype | None:
    return pd.ArrowDtype(t) if pa.types.is_decimal(t) or pa.types.is_date(t) else None


def _dates(as_of: date, offsets_days: np.ndarray) -> pa.Array:
    """``as_of`` + each offset (days, rounded up to a whole day, at least the next day) as
    ``date32``; offsets that are not finite or beyond year 9999 are null."""
    u = np.asarray(offsets_days, dtype=np.float64)
    epoch = (as_of - date(1970, 1, 1)).days
    limit = (date(9999, 12, 31) - as_of).days
    ok = np.isfinite(u) & (u <= limit)
    whole = np.where(ok, np.maximum(np.ceil(np.where(ok, u, 0.0)), 1.0), 0.0)
    whole = np.minimum(whole, limit).astype(np.int64)
    return pa.array(epoch + whole, pa.int32(), mask=~ok).cast(pa.date32())


def check_arguments(
    model: str, horizon_days: Any, margin: float | None, discount_rate: float | None
) -> tuple[float, float]:
    """Refuse a bad model name, horizon, margin or discount rate; ``(margin, discount_rate)``
    with the settings' defaults filled in. Shared by :func:`predict` and the Spark path."""
    if model not in MODEL_CHOICES:
        raise InputError(
            f"unknown model {model!r}; choose from {', '.join(MODEL_CHOICES)}",
            code="input.model_argument",
            message_zh=f"未知模型 {model!r};可选 {', '.join(MODEL_CHOICES)}",
            details={"argument": "model"},
        )
    if isinstance(horizon_days, bool) or not isinstance(horizon_days, int | np.integer):
        raise InputError(
            f"`horizon_days` must be a whole number of days, got {horizon_days!r}",
            code="input.bad_horizon",
            message_zh=f"`horizon_days` 必须是整数天,实际为 {horizon_days!r}",
            details={"argument": "horizon_days"},
        )
    if horizon_days < 1:
        raise InputError(
            f"`horizon_days` must be at least 1, got {horizon_days}",
            code="input.bad_horizon",
            message_zh=f"`horizon_days` 至少为 1,实际为 {horizon_days}",
            details={"argument": "horizon_days"},
        )
    if margin is None or discount_rate is None:
        from huitouke.settings import get_settings

        s = get_settings()
        margin = s.prediction_margin if margin is None else margin
        discount_rate = s.prediction_discount_rate if discount_rate is None else discount_rate
    if not (math.isfinite(margin) and 0.0 <= margin <= 1.0):
        raise InputError(
            f"`margin` must be a share between 0 and 1, got {margin!r}",
            code="input.bad_margin",
            message_zh=f"`margin`(毛利率)必须介于 0 和 1 之间,实际为 {margin!r}",
            details={"argument": "margin"},
        )
    if not (math.isfinite(discount_rate) and discount_rate >= 0.0):
        raise InputError(
            f"`discount_rate` must be a non-negative annual rate, got {discount_rate!r}",
            code="input.bad_discount_rate",
            message_zh=f"`discount_rate`(年折现率)必须为非负数,实际为 {discount_rate!r}",
            details={"argument": "discount_rate"},
        )
    return float(margin), float(discount_rate)


@dataclass(frozen=True)
class FittedPolicy:
    """The order-count model chosen and fitted on the RFM summary, and why."""

    model: ContinuousBTYD
    name: str
    comparison: pd.DataFrame | None
    reason: str
    reason_zh: str
    penalizer: float


def fit_counts(
    x: np.ndarray,
    tx_: np.ndarray,
    T: np.ndarray,
    *,
    model: str,
    horizon: float,
    day: date,
    weights: np.ndarray | None = None,
) -> FittedPolicy:
    """Fit ``model`` (or choose one with ``auto``) on the summary rows; ``weights`` counts
    identical customers (the fit compresses to unique rows with weights either way, so
    unique rows with their counts give exactly the fit of the customers' rows)."""
    if not np.any(x > 0):
        n = int(x.size if weights is None else np.sum(weights))
        raise ModelFitError(
            f"none of the {n} customers has a repeat order by {day.isoformat()}: "
            "a repurchase model needs some repeat buyers",
            code="model.not_identified",
            message_zh=f"截至 {day.isoformat()},{n} 位客户都没有复购,无法拟合复购模型",
            details={"customers": n},
        )
    if model == "auto":
        # rejects degenerate fits and falls back by BIC (huitouke.models.selection)
        selection = select_model(x, tx_, T, horizon=horizon, weights=weights)
        return FittedPolicy(
            selection.model,
            selection.name,
            selection.table,
            selection.reason,
            selection.reason_zh,
            selection.penalizer,
        )
    return FittedPolicy(fit_model(model, x, tx_, T, weights), model, None, "", "", 0.0)


@dataclass(frozen=True)
class Scorer:
    """Everything needed to score summary rows once the models are fitted — picklable, so
    the Spark path ships it to its workers and scores there with the very same code."""

    model: ContinuousBTYD
    name: str
    spend: GammaGamma | None
    day: date
    horizon: float
    days_per_unit: float
    margin: float
    discount_rate: float
    coverage: float

    def score(
        self,
        customer_id: pa.Array,
        x: np.ndarray,
        tx_: np.ndarray,
        T: np.ndarray,
        monetary_value: np.ndarray,
        own_mean: np.ndarray | None,
    ) -> pa.Table:
        """The per-customer columns of :func:`predict_customers` (without ``model``) for
        these summary rows; ``own_mean`` is the fallback order value without Gamma-Gamma."""
        m = self.model
        horizon = self.horizon
        expected = np.asarray(m.conditional_expected_purchases(horizon, x, tx_, T))
        p_any = np.asarray(m.probability_of_any_purchase(horizon, x, tx_, T))
        dist = m.next_order_distribution(x, tx_, T, coverage=self.coverage)
        p_alive = dist["p_alive"].to_numpy()
        if self.spend is not None:
            value = np.asarray(
                self.spend.conditional_expected_average_profit(x, monetary_value),
                dtype=np.float64,
            )
        else:
            assert own_mean is not None
            value = np.asarray(own_mean, dtype=np.float64)
        monthly = (1.0 + self.discount_rate) ** (1.0 / 12.0) - 1.0
        clv = customer_lifetime_value(
            m,
            x,
            tx_,
            T,
            value,
            horizon=horizon,
            period=MONTH_DAYS / self.days_per_unit,
            discount_rate=monthly,
            margin=self.margin,
        )
        for name, arr in (("P(alive)", p_alive), ("expected orders", expected), ("CLV", clv)):
            if not np.all(np.isfinite(arr)):
                label = MODEL_LABELS.get(self.name, self.name)
                raise ModelFitError(
                    f"the fitted {label} model gives non-finite {name} on these data; "
                    "try another --model",
                    code="model.not_finite",
                    message_zh=f"拟合的 {label} 模型在这份数据上给出非有限的 {name};请换一个模型",
                )
        to_days = self.days_per_unit
        day = self.day
        return pa.table(
            {
                "customer_id": customer_id,
                "frequency": pa.array(x.astype(np.int64)),
                "recency": pa.array(tx_, pa.float64()),
                "T": pa.array(T, pa.float64()),
                "p_alive": pa.array(p_alive, pa.float64()),
                "expected_orders": pa.array(expected, pa.float64()),
                "p_order_in_horizon": pa.array(p_any, pa.float64()),
                "expected_order_value": _money(value),
                "expected_spend": _money(value * expected),
                "clv": _money(clv),
                "next_order_median": _dates(day, dist["median"].to_numpy() * to_days),
                "next_order_low": _dates(day, dist["lower"].to_numpy() * to_days),
                "next_order_high": _dates(day, dist["upper"].to_numpy() * to_days),
                "p_no_further_order": pa.array(dist["p_no_further_order"].to_numpy()),
                "churn_risk": pa.array(churn_risk(p_alive), pa.string()),
            }
        )


def predict(
    orders: pa.Table,
    *,
    as_of: Any,
    timezone: str,
    model: str = "auto",
    horizon_days: int = 90,
    unit: str | float = "D",
    currency: str | None = None,
    merge_same_day: bool = True,
    margin: float | None = None,
    discount_rate: float | None = None,
    coverage: float = COVERAGE,
) -> Prediction:
    """Fit the chosen model on the counted orders up to ``as_of`` and score every customer.

    ``as_of`` is the merchant's local day (a ``date``, ``YYYY-MM-DD`` or an aware
    datetime); orders on that day count and the forecasts start after it. ``margin``
    (share of spend kept) and ``discount_rate`` (annual) default to the settings
    ``prediction_margin`` and ``prediction_discount_rate``. See
    :func:`predict_customers` for the columns.
    """
    margin, discount_rate = check_arguments(model, horizon_days, margin, discount_rate)
    days_per_unit = unit_days(unit)
    day = as_local_day(as_of, timezone)

    tx, cur = counted_transactions(orders, timezone=timezone, currency=currency, until=day)
    if tx.empty:
        raise InputError(
            f"there are no counted orders on or before {day.isoformat()}",
            code="input.no_orders",
            message_zh=f"{day.isoformat()} 及之前没有可统计的订单",
            details={"as_of": day.isoformat()},
        )
    summary = summary_from_transactions(
        tx,
        date_col="day",
        observation_end=pd.Timestamp(day),
        unit=days_per_unit,
        merge_same_day=merge_same_day,
        amount_col="amount",
    )
    x = summary["frequency"].to_numpy()
    tx_ = summary["recency"].to_numpy()
    T = summary["T"].to_numpy()
    horizon = horizon_days / days_per_unit
    fitted = fit_counts(x, tx_, T, model=model, horizon=horizon, day=day)
    m, chosen = fitted.model, fitted.name

    mv = summary["monetary_value"].to_numpy()
    spend, spend_source, spend_params, spend_note = fit_spend(x, mv)
    own_mean = None
    if spend is None:
        if merge_same_day:
            per_order = tx.groupby(["customer_id", "day"], sort=False)["amount"].sum()
            own = per_order.groupby(level="customer_id").mean()
        else:
            own = tx.groupby("customer_id")["amount"].mean()
        own_mean = own.reindex(summary.index).to_numpy(dtype=np.float64)
    scorer = Scorer(m, chosen, spend, day, horizon, days_per_unit, margin, discount_rate, coverage)
    table = scorer.score(
        pa.array(summary.index.astype(str).to_numpy(), pa.string()), x, tx_, T, mv, own_mean
    )
    # money and dates stay Arrow-backed (exact decimal128 / date32): a million customers
    # would otherwise cost millions of Python Decimal and date objects; elements still come
    # out as Decimal and datetime.date
    frame = table.to_pandas(types_mapper=_arrow_backed)
    frame["model"] = chosen
    frame.attrs.update(
        {"model": chosen, "params": dict(m.params_), "as_of": day.isoformat(), "currency": cur}
    )
    return Prediction(
        customers=frame,
        model=chosen,
        params={k: float(v) for k, v in m.params_.items()},
        log_likelihood=float(m.log_likelihood_),
        comparison=fitted.comparison,
        fitted=m,
        spend_source=spend_source,
        spend_params=spend_params,
        spend_note=spend_note,
        as_of=day,
        horizon_days=int(horizon_days),
        unit=_unit_name(unit),
        unit_days=days_per_unit,
        currency=cur,
        timezone=timezone,
        margin=float(margin),
        discount_rate=float(discount_rate),
        merge_same_day=merge_same_day,
        selection_reason=fitted.reason,
        selection_reason_zh=fitted.reason_zh,
        penalizer=fitted.penalizer,
    )


def fit_spend(
    x: np.ndarray, mv: np.ndarray, weights: np.ndarray | None = None
) -> tuple[GammaGamma | None, str, dict[str, float], str]:
    """The spend model of the expected value of one future order.

    Gamma-Gamma (Fader & Hardie 2013, eq. 5): ``(γ + m_x·x)·p / (p·x + q − 1)``, fitted on
    repeat buyers with a positive mean repeat value. When it cannot be used (too few
    repeat buyers, q ≤ 1), None: each customer's own mean order value (first order
    included) is used instead. With same-day merging an "order" is a day's orders, so the
    value is per merged order, matching the expected order count. ``weights`` counts
    identical (x, mv) rows. Returns ``(model or None, source, params, note)``.
    """
    fit_rows = (x > 0) & (mv > 0)
    w = None if weights is None else np.asarray(weights, dtype=np.float64)[fit_rows]
    n_fit = int(fit_rows.sum()) if w is None else int(w.sum())
    try:
        if n_fit < 3:
            raise ModelFitError(
                f"only {n_fit} repeat buyers with a positive spend",
                code="model.too_little_data",
            )
        gg = GammaGamma().fit(x[fit_rows], mv[fit_rows], w)
        value = np.asarray(gg.conditional_expected_average_profit(x, mv), dtype=np.float64)
        if not np.all(np.isfinite(value)):
            raise ModelFitError("non-finite expected spend", code="model.not_finite")
        return gg, "gamma_gamma", {k: float(v) for k, v in gg.params_.items()}, ""
    except HuitoukeError as exc:
        return None, "own_mean", {}, exc.message


@dataclass(frozen=True)
class DriverFit:
    """A fit made in this process from distinct summary rows with their counts (the rows an
    engine that computes the summary itself — Spark, DuckDB over Parquet — collects)."""

    scorer: Scorer
    comparison: pd.DataFrame | None
    reason: str
    reason_zh: str
    penalizer: float
    spend_source: str
    spend_params: dict[str, float]
    spend_note: str
    customers: int
    distinct_rows: int

    def prediction(
        self,
        frame: pd.DataFrame,
        *,
        as_of: date,
        horizon_days: int,
        unit: str | float,
        currency: str,
        timezone: str,
    ) -> Prediction:
        """The engine's collected scores (``frame``, sorted by customer id, ``model`` last)
        as the :class:`Prediction` :func:`~huitouke.prediction.predict` gives."""
        s = self.scorer
        frame.attrs.update(
            {
                "model": s.name,
                "params": dict(s.model.params_),
                "as_of": as_of.isoformat(),
                "currency": currency,
            }
        )
        return Prediction(
            customers=frame,
            model=s.name,
            params={k: float(v) for k, v in s.model.params_.items()},
            log_likelihood=float(s.model.log_likelihood_),
            comparison=self.comparison,
            fitted=s.model,
            spend_source=self.spend_source,
            spend_params=self.spend_params,
            spend_note=self.spend_note,
            as_of=as_of,
            horizon_days=horizon_days,
            unit=_unit_name(unit),
            unit_days=s.days_per_unit,
            currency=currency,
            timezone=timezone,
            margin=s.margin,
            discount_rate=s.discount_rate,
            merge_same_day=True,
            selection_reason=self.reason,
            selection_reason_zh=self.reason_zh,
            penalizer=self.penalizer,
        )


def fit_weighted(
    rows: pa.Table,
    spend_rows: Callable[[], pa.Table],
    *,
    model: str,
    day: date,
    horizon_days: int,
    unit: str | float = "D",
    margin: float,
    discount_rate: float,
    coverage: float = COVERAGE,
) -> DriverFit:
    """Fit the order-count model on ``rows`` — the distinct ``(frequency, recency, T)`` of
    the summary with their counts ``w`` — and Gamma-Gamma on ``spend_rows()``, the distinct
    ``(frequency, monetary_value)`` of the repeat buyers with a positive value and their
    counts. The models compress their data to unique rows with weights themselves, so this
    is the fit of one row per customer. ``spend_rows`` is called once the counts are fitted
    (an engine computes it only then)."""
    days = unit_days(unit)
    if rows.num_rows == 0:
        raise InputError(
            f"there are no counted orders on or before {day.isoformat()}",
            code="input.no_orders",
            message_zh=f"{day.isoformat()} 及之前没有可统计的订单",
            details={"as_of": day.isoformat()},
        )
    x = rows.column("frequency").to_numpy()
    tx_ = rows.column("recency").to_numpy()
    T = rows.column("T").to_numpy()
    w = rows.column("w").to_numpy().astype(np.float64)
    horizon = horizon_days / days
    fitted = fit_counts(x, tx_, T, model=model, horizon=horizon, day=day, weights=w)
    spend_table = spend_rows()
    spend, source, params, note = fit_spend(
        spend_table.column("frequency").to_numpy(),
        spend_table.column("monetary_value").to_numpy(),
        spend_table.column("w").to_numpy().astype(np.float64),
    )
    scorer = Scorer(
        fitted.model, fitted.name, spend, day, horizon, days, margin, discount_rate, coverage
    )
    return DriverFit(
        scorer,
        fitted.comparison,
        fitted.reason,
        fitted.reason_zh,
        fitted.penalizer,
        source,
        params,
        note,
        int(w.sum()),
        rows.num_rows,
    )


def predict_customers(
    orders: pa.Table,
    *,
    as_of: Any,
    timezone: str,
    model: str = "auto",
    horizon_days: int = 90,
    unit: str | float = "D",
    currency: str | None = None,
    merge_same_day: bool = True,
    margin: float | None = None,
    discount_rate: float | None = None,
) -> pd.DataFrame:
    """One row per customer with a counted order on or before ``as_of``, sorted by id.

    Columns:

    - ``customer_id``; ``frequency`` (repeat orders), ``recency`` (age at the last order)
      and ``T`` (age at ``as_of``) in ``unit`` (days by default);
    - ``p_alive`` — P(still a customer at ``as_of``);
    - ``expected_orders`` — expected orders in the ``horizon_days`` after ``as_of``;
    - ``p_order_in_horizon`` — P(at least one order in the horizon);
    - ``expected_order_value`` (Decimal, cents; the money columns are Arrow-backed
      ``decimal128(18, 2)`` and the dates ``date32``, whose elements are ``Decimal`` and
      ``datetime.date``) — Gamma-Gamma conditional expected value
      of an order (or the customer's own mean order value when Gamma-Gamma cannot be
      fitted); ``expected_spend`` = that × ``expected_orders``, rounded to cents;
    - ``clv`` (Decimal) — margin × expected order value × expected orders in the horizon,
      discounted monthly at the annual ``discount_rate``;
    - ``next_order_median``, ``next_order_low``, ``next_order_high`` (``datetime.date`` in
      the merchant's zone) — ``as_of`` + the median and the central 80% interval of the
      time to the next order *given that there is one* (rounded up to whole days); None
      when beyond any calendar;
    - ``p_no_further_order`` — P(the customer never orders again);
    - ``churn_risk`` — ``low`` / ``medium`` / ``high`` / ``lost`` on P(alive)
      (:data:`CHURN_RISK_BANDS`; :func:`churn_risk_label` gives the zh/en name);
    - ``model`` — the model used (``bgnbd``, ``pnbd`` or ``mbgnbd``).

    ``frame.attrs`` holds ``model``, ``params``, ``as_of`` and ``currency``; call
    :func:`predict` for the full run (comparison table, spend model…).
    """
    return predict(
        orders,
        as_of=as_of,
        timezone=timezone,
        model=model,
        horizon_days=horizon_days,
        unit=unit,
        currency=currency,
        merge_same_day=merge_same_day,
        margin=margin,
        discount_rate=discount_rate,
    ).customers


def alive_summary(customers: pd.DataFrame, lang: str | None = None) -> pd.DataFrame:
    """Alive vs dormant: one row per churn-risk band (low, medium, high, lost) with
    ``status`` (alive / uncertain / dormant), ``p_alive_from`` / ``p_alive_to``,
    ``customers``, ``share``, and the sums of ``expected_orders``, ``expected_spend`` and
    ``clv`` (Decimal). With ``lang``, a ``label`` column in that language."""
    need = ("churn_risk", "expected_orders", "expected_spend", "clv")
    missing = [c for c in need if c not in customers.columns]
    if missing:
        raise InputError(
            f"`customers` lacks columns {missing}; pass the frame of predict_customers",
            code="input.missing_column",
            message_zh=f"`customers` 缺少列 {missing};请传入 predict_customers 的结果",
            details={"columns": missing},
        )
    n = len(customers)
    grouped = customers.groupby("churn_risk", sort=False)
    counts = grouped.size()
    orders = grouped["expected_orders"].sum()
    spend = grouped["expected_spend"].sum()
    clv = grouped["clv"].sum()
    rows = []
    upper = 1.0
    for code, lower in CHURN_RISK_BANDS:
        row: dict[str, Any] = {
            "band": code,
            "status": _STATUS[code],
            "p_alive_from": lower,
            "p_alive_to": upper,
            "customers": int(counts.get(code, 0)),
            "share": float(counts.get(code, 0)) / n if n else 0.0,
            "expected_orders": float(orders.get(code, 0.0)),
            "expected_spend": Decimal(spend.get(code, Decimal("0"))),
            "clv": Decimal(clv.get(code, Decimal("0"))),
        }
        if lang is not None:
            row["label"] = churn_risk_label(code, lang)
        rows.append(row)
        upper = lower
    return pd.DataFrame(rows)


def policy_prediction(
    orders: pa.Table,
    *,
    as_of: date,
    timezone: str,
    model: str = "auto",
    horizon_days: int = 90,
    currency: str | None = None,
) -> Prediction:
    """The one model policy of every per-customer view (``huitouke customers``, the
    journeys' frame, the report): :func:`predict` once the data pass
    :func:`~huitouke.prediction.transactions.require_enough_data`. Raises
    :class:`~huitouke.errors.ModelFitError` below that threshold or when no model can be
    fitted."""
    require_enough_data(orders, timezone=timezone, currency=currency, until=as_of)
    return predict(
        orders,
        as_of=as_of,
        timezone=timezone,
        model=model,
        horizon_days=horizon_days,
        currency=currency,
    )


def policy_scores(
    orders: pa.Table,
    *,
    as_of: date,
    timezone: str,
    model: str = "auto",
    horizon_days: int = 90,
    currency: str | None = None,
) -> pd.DataFrame:
    """The per-customer scores of :func:`policy_prediction`."""
    return policy_prediction(
        orders,
        as_of=as_of,
        timezone=timezone,
        model=model,
        horizon_days=horizon_days,
        currency=currency,
    ).customers
