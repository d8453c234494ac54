"""Customer lifetime value: discounted expected margin over a horizon.

For a customer with history (x, t_x, T), an order-count model M and an expected value per
order s (from :class:`~huitouke.models.GammaGamma` or any other estimate)::

    CLV = margin · s · Σ_{k=1}^{K} (E[X(kΔ)] − E[X((k−1)Δ)]) / (1 + d)^k

where E[X(u)] is M's conditional expectation of orders in the next u, Δ the length of
one discounting period, K = ⌈horizon / Δ⌉ (the last period is shortened to end at the
horizon) and d the discount rate per period. This is the discrete form of the
"discounted expected residual transactions" of Fader, Hardie & Lee (2005b), "RFM and CLV:
Using Iso-Value Curves for Customer Base Analysis", and the one ``lifetimes`` uses, so
the two can be compared.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike

from huitouke.errors import InputError
from huitouke.models._base import FloatArray, as_float_array, compress_rows
from huitouke.models._btyd import ContinuousBTYD

__all__ = ["customer_lifetime_value"]


def _positive(value: float, name: str, *, allow_zero: bool = False) -> float:
    v = float(value)
    ok = math.isfinite(v) and (v >= 0 if allow_zero else v > 0)
    if not ok:
        raise InputError(
            f"`{name}` must be a {'non-negative' if allow_zero else 'positive'} number, got {value!r}",
            code="input.model_argument",
            message_zh=f"`{name}` 必须是{'非负' if allow_zero else '正'}数,实际为 {value!r}",
            details={"argument": name},
        )
    return v


def customer_lifetime_value(
    model: ContinuousBTYD,
    frequency: ArrayLike,
    recency: ArrayLike,
    T: ArrayLike,
    expected_spend: ArrayLike,
    *,
    horizon: float,
    period: float,
    discount_rate: float,
    margin: float = 1.0,
) -> FloatArray:
    """Discounted expected margin per customer over ``horizon``.

    ``horizon`` and ``period`` are in the model's time unit (e.g. weeks: ``horizon=52,
    period=52/12`` for a year in months); ``discount_rate`` is per ``period`` (e.g. 0.01
    a month); ``margin`` is the share of spend kept as profit (1.0 = revenue).
    ``expected_spend`` is a scalar or one value per customer.
    """
    h = _positive(horizon, "horizon")
    step = _positive(period, "period")
    d = _positive(discount_rate, "discount_rate", allow_zero=True)
    mg = _positive(margin, "margin", allow_zero=True)
    x = as_float_array(frequency, "frequency")
    tx = as_float_array(recency, "recency")
    tt = as_float_array(T, "T")
    spend = np.broadcast_to(as_float_array(expected_spend, "expected_spend"), x.shape)
    # the expectation depends on the history only: evaluate it once per distinct history
    (ux, utx, ut), _, inv = compress_rows(x, tx, tt)
    n_steps = math.ceil(h / step - 1e-12)
    total = np.zeros(ux.shape)
    previous = np.zeros(ux.shape)
    for k in range(1, n_steps + 1):
        current = model.conditional_expected_purchases(min(k * step, h), ux, utx, ut)
        total += (current - previous) / (1.0 + d) ** k
        previous = current
    return np.asarray(mg * spend * total[inv], dtype=np.float64)
