"""Gamma-Gamma model of spend per order (Fader & Hardie 2013).

The value of each of a customer's orders is Gamma(p, ν); ν varies across customers as
Gamma(q, γ). Spend is assumed independent of the order process, so the model pairs with
any of the order-count models for CLV.

Reference: P. S. Fader, B. G. S. Hardie (2013), "The Gamma-Gamma Model of Monetary
Value" (note); eq. 1 is the density of the mean spend used as likelihood, eq. 5 the
conditional expectation. Also Fader, Hardie & Lee (2005), "RFM and CLV: Using Iso-Value
Curves for Customer Base Analysis", *Journal of Marketing Research* 42(4).
"""

from __future__ import annotations

from typing import Any, ClassVar, Self

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import digamma, gammaln

from huitouke.errors import InputError
from huitouke.models._base import (
    FittedModel,
    FloatArray,
    _bad,
    _Data,
    _wsum,
    as_float_array,
    check_integer,
    check_same_length,
    compress_rows,
    validate_weights,
)

__all__ = ["GammaGamma"]


class GammaGamma(FittedModel):
    """Gamma-Gamma spend model.

    Fit on customers with at least one repeat order: ``frequency`` = number of repeat
    orders x, ``monetary_value`` = mean value m_x of those orders. The likelihood of one
    customer (Fader & Hardie 2013, eq. 1)::

        f(m_x | x) = Γ(px+q) / (Γ(px) Γ(q)) · γ^q m_x^(px−1) x^(px) / (γ + m_x x)^(px+q)
    """

    _param_names: ClassVar[tuple[str, ...]] = ("p", "q", "gamma")
    _model_name = "Gamma-Gamma"

    def fit(
        self,
        frequency: ArrayLike,
        monetary_value: ArrayLike,
        weights: ArrayLike | None = None,
    ) -> Self:
        """Maximum-likelihood fit on customers with ``frequency > 0``; returns ``self``."""
        x = as_float_array(frequency, "frequency")
        m = as_float_array(monetary_value, "monetary_value")
        check_same_length(frequency=x, monetary_value=m)
        check_integer(x, "frequency")
        if np.any(x <= 0):
            raise _bad(
                "frequency",
                "must be at least 1: fit the Gamma-Gamma model on repeat buyers only",
                "必须至少为 1:Gamma-Gamma 模型只用有复购的客户拟合",
                int(np.flatnonzero(x <= 0)[0]),
            )
        if np.any(m <= 0):
            raise _bad(
                "monetary_value",
                "must be positive",
                "必须为正数",
                int(np.flatnonzero(m <= 0)[0]),
            )
        w = validate_weights(weights, x.size)
        (ux, um), uw, _ = compress_rows(x, m, weights=w)
        keep = uw > 0
        return self._fit_data(_Data((ux[keep], um[keep]), uw[keep]))

    def _initial_params(self, data: _Data) -> list[FloatArray]:
        _, m = data.columns
        mean = _wsum(m, data.weights) / float(data.weights.sum())
        return [
            np.array([1.0, 2.0, mean]),
            np.array([5.0, 3.0, 3 * mean]),
            np.array([0.5, 1.5, mean / 2]),
        ]

    def _loglik(
        self,
        params: FloatArray,
        columns: tuple[FloatArray, ...],
        cache: dict[str, Any] | None = None,
    ) -> tuple[FloatArray, FloatArray]:
        p, q, g = params
        x, m = columns
        px = p * x
        log_xm_g = np.log(x * m + g)
        ll = (
            gammaln(px + q)
            - gammaln(px)
            - gammaln(q)
            + q * np.log(g)
            + (px - 1.0) * np.log(m)
            + px * np.log(x)
            - (px + q) * log_xm_g
        )
        psi = digamma(px + q)
        d_p = x * (psi - digamma(px) + np.log(m) + np.log(x) - log_xm_g)
        d_q = psi - digamma(q) + np.log(g) - log_xm_g
        d_g = q / g - (px + q) / (x * m + g)
        return ll, np.vstack([d_p, d_q, d_g])

    def conditional_expected_average_profit(
        self, frequency: ArrayLike, monetary_value: ArrayLike
    ) -> FloatArray:
        """E[value of an order | x, m_x] (Fader & Hardie 2013, eq. 5)::

            (γ + m_x x) p / (px + q − 1)

        a weighted mean of the population mean ``pγ/(q−1)`` and the customer's own mean.
        For x = 0 it is the population mean. Needs q > 1.
        """
        v = self._require_fit()
        p, q, g = (float(t) for t in v)
        x = as_float_array(frequency, "frequency")
        m = as_float_array(monetary_value, "monetary_value")
        check_same_length(frequency=x, monetary_value=m)
        if q <= 1:
            raise InputError(
                f"expected spend is infinite for q = {q:.4g} <= 1; the spend data are too "
                "heavy-tailed for the Gamma-Gamma model",
                code="model.undefined",
                message_zh=f"q = {q:.4g} <= 1 时期望消费为无穷;消费数据尾部过重,不适合 Gamma-Gamma 模型",
            )
        m = np.where(x > 0, m, 0.0)
        return np.asarray((g + m * x) * p / (p * x + q - 1.0), dtype=np.float64)

    def expected_average_profit(self) -> float:
        """Population mean value of an order, ``pγ/(q−1)``."""
        v = self._require_fit()
        p, q, g = (float(t) for t in v)
        return p * g / (q - 1.0) if q > 1 else float("inf")
