"""Common surface of the continuous-time "buy till you die" models.

BG/NBD, MBG/NBD and Pareto/NBD all take ``(frequency, recency, T)`` — repeat orders, age
at the last order and age at the end of the observation, in one time unit of the caller's
choice — and answer the same questions. Subclasses supply the likelihood and a few
closed forms; this class supplies fitting, validation and the next-order distribution.
"""

from __future__ import annotations

from typing import Self

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from huitouke.errors import InputError, ModelFitError
from huitouke.models._base import (
    FittedModel,
    FloatArray,
    _Data,
    _wsum,
    as_float_array,
    compress_rows,
    validate_rfm,
    validate_weights,
)

__all__ = ["ContinuousBTYD"]


def _horizon(t: ArrayLike, name: str = "t") -> FloatArray:
    arr = np.asarray(t, dtype=np.float64)
    if not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise InputError(
            f"`{name}` must be a non-negative, finite time span",
            code="input.model_argument",
            message_zh=f"`{name}` 必须是非负的有限时长",
            details={"argument": name},
        )
    return arr


class ContinuousBTYD(FittedModel):
    """Base of BG/NBD, MBG/NBD and Pareto/NBD."""

    def fit(
        self,
        frequency: ArrayLike,
        recency: ArrayLike,
        T: ArrayLike,
        weights: ArrayLike | None = None,
    ) -> Self:
        """Maximum-likelihood fit; returns ``self``.

        ``frequency`` = number of repeat orders, ``recency`` = age at the last order (0 if
        no repeat order), ``T`` = age at the end of the calibration period, all in one
        time unit (days, weeks…). ``weights`` counts identical customers (optional).
        Identical rows are merged before fitting, so raw per-customer arrays are fine.
        """
        x, tx, t = validate_rfm(frequency, recency, T)
        w = validate_weights(weights, x.size)
        (ux, utx, ut), uw, _ = compress_rows(x, tx, t, weights=w)
        keep = uw > 0
        if not np.any(ux[keep] > 0):
            raise ModelFitError(
                f"{self._model_name}: no customer has a repeat order, so the purchase rate "
                "cannot be estimated; use a longer calibration period or more customers",
                code="model.not_identified",
                message_zh=f"{self._model_name}:没有任何客户复购,无法估计购买率;请延长校准期或增加客户",
            )
        data = _Data((ux[keep], utx[keep], ut[keep]), uw[keep])
        return self._fit_data(data)

    def _rate_guess(self, data: _Data) -> float:
        x, _, t = data.columns
        w = data.weights
        total_t = _wsum(t, w)
        rate = (_wsum(x, w) + 0.5 * float(w.sum())) / max(total_t, 1e-9)
        return max(rate, 1e-9)

    # -- predictions every model provides ------------------------------------------------
    def probability_alive(
        self, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike
    ) -> FloatArray:
        raise NotImplementedError

    def conditional_expected_purchases(
        self, t: ArrayLike, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike
    ) -> FloatArray:
        raise NotImplementedError

    def expected_purchases(self, t: ArrayLike) -> FloatArray:
        raise NotImplementedError

    def probability_of_purchases(self, k: ArrayLike, t: ArrayLike) -> FloatArray:
        raise NotImplementedError

    def _next_order_cdf_given_alive(
        self, u: FloatArray, x: FloatArray, T: FloatArray
    ) -> tuple[FloatArray, FloatArray]:
        """``(H(u), H(∞))``: probability that a customer alive at ``T`` orders again within
        ``u`` (resp. ever)."""
        raise NotImplementedError

    def _next_order_quantile(self, q: FloatArray, x: FloatArray, T: FloatArray) -> FloatArray:
        """Time ``u`` with ``H(u) = q · H(∞)``: quantile of the time to the next order given
        that there is one."""
        raise NotImplementedError

    def _rfm(
        self, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike
    ) -> tuple[FloatArray, FloatArray, FloatArray]:
        self._require_fit()
        return validate_rfm(frequency, recency, T)

    def probability_of_any_purchase(
        self, t: ArrayLike, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike
    ) -> FloatArray:
        """P(at least one order in the next ``t``) given the customer's history."""
        x, tx, tt = self._rfm(frequency, recency, T)
        horizon = np.broadcast_to(_horizon(t), x.shape).astype(np.float64)
        alive = self.probability_alive(x, tx, tt)
        h, _ = self._next_order_cdf_given_alive(horizon, x, tt)
        return np.clip(alive * h, 0.0, 1.0)

    def next_order_distribution(
        self,
        frequency: ArrayLike,
        recency: ArrayLike,
        T: ArrayLike,
        coverage: float = 0.8,
    ) -> pd.DataFrame:
        """Distribution of the time from ``T`` to each customer's next order.

        Returns one row per customer with

        - ``p_alive`` — P(still a customer at ``T``);
        - ``p_no_further_order`` — P(the customer never orders again):
          ``1 − P(alive)·H(∞)``, where ``H`` is the time-to-next-order CDF of a customer alive
          at ``T`` (``H(∞) = 1`` for BG/NBD and MBG/NBD, where drop-out happens only right
          after an order; ``< 1`` for Pareto/NBD, where the customer may die first);
        - ``median``, ``lower``, ``upper`` — the median and the central ``coverage``
          interval of the time to the next order *given that there is one*, in the time
          unit of the inputs, counted from ``T``. Add them to the end of the observation
          to get dates.

        Given alive, the next order of BG/NBD and MBG/NBD customers comes after a
        Lomax(r+x, α+T) time (the gamma posterior of λ mixed over an exponential wait), so
        the quantiles are closed-form; Pareto/NBD needs a one-dimensional integral.
        """
        if not 0 < coverage < 1:
            raise InputError(
                f"`coverage` must be between 0 and 1, got {coverage}",
                code="input.model_argument",
                message_zh=f"`coverage` 必须介于 0 和 1 之间,实际为 {coverage}",
                details={"argument": "coverage"},
            )
        x, tx, tt = self._rfm(frequency, recency, T)
        alive = self.probability_alive(x, tx, tt)
        (ux, ut), _, inv = compress_rows(x, tt)
        tail = (1.0 - coverage) / 2.0
        qs = np.array([0.5, tail, 1.0 - tail])
        n = ux.size
        rep_x = np.tile(ux, 3)
        rep_t = np.tile(ut, 3)
        rep_q = np.repeat(qs, n)
        quant = self._next_order_quantile(rep_q, rep_x, rep_t).reshape(3, n)
        _, h_inf = self._next_order_cdf_given_alive(np.full(n, np.inf), ux, ut)
        p_none = 1.0 - alive * h_inf[inv]
        return pd.DataFrame(
            {
                "p_alive": alive,
                "p_no_further_order": np.clip(p_none, 0.0, 1.0),
                "median": quant[0][inv],
                "lower": quant[1][inv],
                "upper": quant[2][inv],
            }
        )

    def _check_k_t(self, k: ArrayLike, t: ArrayLike) -> tuple[FloatArray, FloatArray]:
        self._require_fit()
        kk = as_float_array(k, "k")
        if np.any(kk < 0) or np.any(kk != np.round(kk)):
            raise InputError(
                "`k` must hold non-negative whole numbers",
                code="input.model_argument",
                message_zh="`k` 必须是非负整数",
                details={"argument": "k"},
            )
        tt = _horizon(t)
        kb, tb = np.broadcast_arrays(kk, tt)
        return kb.astype(np.float64), tb.astype(np.float64)
