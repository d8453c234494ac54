"""BG/NBD (Fader, Hardie & Lee 2005) and MBG/NBD (Batislam, Denizel & Filiztekin 2007).

Both models: while alive, a customer orders as a Poisson process with rate λ ~
Gamma(r, α); after each order (BG/NBD) — or also right after the first one, at time 0
(MBG/NBD) — the customer drops out with probability p ~ Beta(a, b).

References
----------
- P. S. Fader, B. G. S. Hardie, K. L. Lee (2005), "'Counting Your Customers' the Easy
  Way: An Alternative to the Pareto/NBD Model", *Marketing Science* 24(2), 275–284;
  equation numbers below refer to it (eq. 6 likelihood, eq. 8 P(X(t)=x), eq. 9 E[X(t)],
  eq. 10 conditional expectation) and to Fader & Hardie's note "Computing P(alive) using
  the BG/NBD model" (2008).
- E. P. Batislam, M. Denizel, A. Filiztekin (2007), "Empirical validation and comparison
  of models for customer base analysis", *International Journal of Research in
  Marketing* 24(3), 201–209 (the MBG/NBD).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import betaln, digamma, gammaln

from huitouke.models._base import FloatArray, _Data, compress_rows, unique_codes
from huitouke.models._btyd import ContinuousBTYD, _horizon
from huitouke.models._special import (
    beta_geometric_expectation,
    log_nb_pmf,
    negative_binomial_sf,
)

__all__ = ["BGNBD", "MBGNBD"]


def _dot(u: FloatArray, v: FloatArray) -> float:
    """Σ u·v without BLAS (see :func:`huitouke.models._base._wsum`)."""
    return float(np.einsum("i,i->", u, v))


class _BetaGeo(ContinuousBTYD):
    """BG/NBD when ``_shift == 0``, MBG/NBD when ``_shift == 1``.

    With ``d = _shift`` the likelihood of one customer is (FHL 2005 eq. 6; Batislam et
    al. 2007 eq. 5)::

        L = Γ(r+x) α^r / Γ(r) · [ B(a, b+x+d)/B(a,b) · (α+T)^-(r+x)
                                + 1{x+d>0} B(a+1, b+x+d−1)/B(a,b) · (α+t_x)^-(r+x) ]

    evaluated as a log-sum-exp of the two terms.
    """

    _param_names: ClassVar[tuple[str, ...]] = ("r", "alpha", "a", "b")
    _shift: ClassVar[int] = 0

    def _initial_params(self, data: _Data) -> list[FloatArray]:
        rate = self._rate_guess(data)
        return [
            np.array([1.0, 1.0 / rate, 1.0, 1.0]),
            np.array([0.3, 0.3 / rate, 0.8, 2.5]),
            np.array([3.0, 3.0 / rate, 2.0, 8.0]),
        ]

    def _x_terms(self, params: FloatArray, xu: FloatArray) -> tuple[FloatArray, ...]:
        """The parts of a row's log-likelihood and gradient that depend on x alone, on the
        distinct values ``xu`` — shared by :meth:`_loglik` and :meth:`_loglik_sum`.

        Returns ``(c1, c2, lx, base_r, da1, db1, db2)``: the log Beta ratios of the two
        terms (``c2 = −inf`` where the second term is absent), ``lx = log Γ(r+x) α^r/Γ(r)``,
        and the x-only parts of ∂/∂r, ∂/∂a and ∂/∂b of the two terms.
        """
        r, alpha, a, b = params
        xd = xu + float(self._shift)
        has2 = xd > 0
        xm = np.where(has2, xd, 1.0)
        lbab = betaln(a, b)
        c1 = betaln(a, b + xd) - lbab
        c2 = np.where(has2, betaln(a + 1, b + xm - 1) - lbab, -np.inf)
        psi_ab = digamma(a + b)
        psi_abx = digamma(a + b + xd)
        psi_b = digamma(b)
        log_alpha = np.log(alpha)
        lx = gammaln(r + xu) - gammaln(r) + r * log_alpha
        base_r = digamma(r + xu) - digamma(r) + log_alpha
        da1 = psi_ab - psi_abx
        db1 = digamma(b + xd) - psi_b + psi_ab - psi_abx
        db2 = np.where(has2, digamma(b + xm - 1), 0.0) - psi_b + psi_ab - psi_abx
        return c1, c2, lx, base_r, da1, db1, db2

    def _loglik(
        self,
        params: FloatArray,
        columns: tuple[FloatArray, ...],
        cache: dict[str, Any] | None = None,
    ) -> tuple[FloatArray, FloatArray]:
        r, alpha, a, _ = params
        x, tx, T = columns
        # special functions depend on x alone and logs on T or t_x alone: evaluate them on
        # the few distinct values and gather, so a row costs a handful of flops
        xu, xi = unique_codes(x, cache, "x")
        tu, ti = unique_codes(T, cache, "T")
        su, si = unique_codes(tx, cache, "tx")
        c1, c2, lx, base_r, da1, db1, db2 = self._x_terms(params, xu)

        rx = (r + xu)[xi]
        log_at = np.log(alpha + tu)[ti]
        log_atx = np.log(alpha + su)[si]
        t1 = c1[xi] - rx * log_at
        t2 = c2[xi] - rx * log_atx
        lse = np.logaddexp(t1, t2)
        w2 = np.exp(t2 - lse)
        w1 = 1.0 - w2
        ll = lx[xi] + lse
        d_r = base_r[xi] - w1 * log_at - w2 * log_atx
        d_alpha = r / alpha - rx * (w1 / (alpha + T) + w2 / (alpha + tx))
        d_a = da1[xi] + w2 / a
        d_b = w1 * db1[xi] + w2 * db2[xi]
        return ll, np.vstack([d_r, d_alpha, d_a, d_b])

    def _loglik_sum(self, params: FloatArray, data: _Data) -> tuple[float, FloatArray]:
        """The total of :meth:`_loglik` and its gradient, grouped to spare per-row work.

        With ``t1 = c1(x) − (r+x)·log(α+T)`` and ``z = t2 − t1 = (c2 − c1)(x) + (r+x)·D``,
        ``D = log(α+T) − log(α+t_x)``, a row's log-likelihood is
        ``lx(x) + t1 + softplus(z)`` and the second term's share is ``w2 = sigmoid(z)``.
        Every part that depends on x alone or T alone is summed per distinct value (weights
        pre-aggregated once per fit); per row only ``z``, one ``exp`` and one ``log1p``
        remain, and the gradient needs only ``Σ w·w2·(…)``.
        """
        r, alpha, a, _ = params
        x = data.columns[0]
        w = data.weights
        xu, xi, tu, ti, su, si, w_x, w_t, wx_t = self._grouped(data)
        c1, c2, lx, base_r, da1, db1, db2 = self._x_terms(params, xu)
        log_at = np.log(alpha + tu)
        log_as = np.log(alpha + su)
        inv_at = 1.0 / (alpha + tu)
        inv_as = 1.0 / (alpha + su)
        rw_t = r * w_t + wx_t  # Σ w·(r+x) per distinct T

        # per row: z, softplus(z) and sigmoid(z) from one exp and one log1p
        rx = x + r
        dlog = log_at[ti]
        dlog -= log_as[si]
        z = rx * dlog
        z += (c2 - c1)[xi]
        e = np.abs(z)
        np.negative(e, out=e)
        np.exp(e, out=e)
        sp = np.log1p(e)
        sp += np.maximum(z, 0.0)
        inv = e + 1.0
        np.reciprocal(inv, out=inv)
        w2 = np.where(z >= 0.0, inv, e * inv)
        ww2 = w2
        ww2 *= w
        dinv = inv_at[ti]
        dinv -= inv_as[si]

        total = float(w_x @ (lx + c1) - rw_t @ log_at + _dot(w, sp))
        s_ww2 = float(ww2.sum())
        by_x = np.bincount(xi, weights=ww2, minlength=xu.size)
        g_r = float(w_x @ base_r - w_t @ log_at + _dot(ww2, dlog))
        g_alpha = float(r / alpha * w.sum() - rw_t @ inv_at + np.einsum("i,i,i->", ww2, rx, dinv))
        g_a = float(w_x @ da1 + s_ww2 / a)
        g_b = float(w_x @ db1 + by_x @ (db2 - db1))
        return total, np.array([g_r, g_alpha, g_a, g_b])

    def _grouped(self, data: _Data) -> tuple[Any, ...]:
        """Distinct values of x, T and t_x, each row's codes and the weights summed per
        distinct x and T — data-only, computed once per fit."""
        found = data.cache.get("betageo_grouped")
        if found is not None:
            return tuple(found)
        x, tx, T = data.columns
        w = data.weights
        xu, xi = unique_codes(x, data.cache, "x")
        tu, ti = unique_codes(T, data.cache, "T")
        su, si = unique_codes(tx, data.cache, "tx")
        out = (
            xu,
            xi,
            tu,
            ti,
            su,
            si,
            np.bincount(xi, weights=w, minlength=xu.size),
            np.bincount(ti, weights=w, minlength=tu.size),
            np.bincount(ti, weights=w * x, minlength=tu.size),
        )
        data.cache["betageo_grouped"] = out
        return out

    def _p(self) -> tuple[float, float, float, float]:
        v = self._require_fit()
        return float(v[0]), float(v[1]), float(v[2]), float(v[3])

    def probability_alive(
        self, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike
    ) -> FloatArray:
        """P(alive at T | x, t_x, T) (FHL 2005 eq. 6 ratio; Fader & Hardie 2008 note)::

        1 / (1 + 1{x+d>0} a/(b+x+d−1) · ((α+T)/(α+t_x))^(r+x))
        """
        x, tx, tt = self._rfm(frequency, recency, T)
        r, alpha, a, b = self._p()
        xd = x + self._shift
        has2 = xd > 0
        with np.errstate(divide="ignore", invalid="ignore"):
            log_odds = (
                np.log(a)
                - np.log(b + np.where(has2, xd, 1.0) - 1.0)
                + (r + x) * (np.log(alpha + tt) - np.log(alpha + tx))
            )
        log_odds = np.where(has2, log_odds, -np.inf)
        # 1 / (1 + e^z) without overflow
        return np.asarray(np.exp(-np.logaddexp(0.0, log_odds)), dtype=np.float64)

    def _alive_g(self, t: FloatArray, x: FloatArray, T: FloatArray) -> FloatArray:
        """Expected orders in the next ``t`` for a customer alive at ``T``."""
        r, alpha, a, b = self._p()
        t, x, T = np.broadcast_arrays(t, x, T)
        flat = [np.ascontiguousarray(v, dtype=np.float64).ravel() for v in (t, x, T)]
        if flat[0].size > 4096:
            (ut, ux, uT), _, inv = compress_rows(*flat)
        else:
            ut, ux, uT = flat
            inv = np.arange(flat[0].size)
        g = beta_geometric_expectation(
            ut, r + ux, alpha + uT, np.full(ut.shape, a), b + ux + self._shift
        )
        return g[inv].reshape(t.shape)

    def conditional_expected_purchases(
        self, t: ArrayLike, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike
    ) -> FloatArray:
        """E[orders in (T, T+t] | x, t_x, T] (FHL 2005 eq. 10; Batislam et al. 2007 eq. 8).

        Computed as P(alive) × E over the posteriors λ ~ Gamma(r+x, α+T) and
        p ~ Beta(a, b+x+d) of ``(1 − e^{−λpt})/p``; see
        :func:`~huitouke.models._special.beta_geometric_expectation` for the stable
        hypergeometric form.
        """
        x, tx, tt = self._rfm(frequency, recency, T)
        horizon = _horizon(t)
        alive = self.probability_alive(x, tx, tt)
        return np.asarray(alive * self._alive_g(horizon, x, tt), dtype=np.float64)

    def expected_purchases(self, t: ArrayLike) -> FloatArray:
        """E[X(t)] for a customer just acquired at time 0 (FHL 2005 eq. 9)."""
        _r, _alpha, a, b = self._p()
        horizon = np.atleast_1d(_horizon(t)).astype(np.float64)
        zero = np.zeros(horizon.shape)
        alive0 = 1.0 if self._shift == 0 else b / (a + b)
        return np.asarray(alive0 * self._alive_g(horizon, zero, zero), dtype=np.float64)

    def probability_of_purchases(self, k: ArrayLike, t: ArrayLike) -> FloatArray:
        """P(X(t) = k) for a customer just acquired (FHL 2005 eq. 8)::

        B(a, b+k+d)/B(a,b) · NB(k; r, α/(α+t))
        + 1{k+d>0} B(a+1, b+k+d−1)/B(a,b) · P(NB(r, α/(α+t)) ≥ k)
        """
        kk, tt = self._check_k_t(k, t)
        r, alpha, a, b = self._p()
        d = self._shift
        kd = kk + d
        log_p = np.log(alpha) - np.log(alpha + tt)
        with np.errstate(divide="ignore"):
            log_1mp = np.log(tt) - np.log(alpha + tt)
        first = np.exp(betaln(a, b + kd) - betaln(a, b) + log_nb_pmf(kk, r, log_p, log_1mp))
        has2 = kd > 0
        coef = np.exp(betaln(a + 1, b + np.where(has2, kd, 1.0) - 1) - betaln(a, b))
        second = np.where(has2, coef * negative_binomial_sf(kk, r, alpha / (alpha + tt)), 0.0)
        return np.asarray(first + second, dtype=np.float64)

    def _next_order_cdf_given_alive(
        self, u: FloatArray, x: FloatArray, T: FloatArray
    ) -> tuple[FloatArray, FloatArray]:
        r, alpha, _, _ = self._p()
        with np.errstate(divide="ignore"):
            h = -np.expm1(-(r + x) * np.log1p(u / (alpha + T)))
        return np.where(np.isinf(u), 1.0, h), np.ones(np.shape(x))

    def _next_order_quantile(self, q: FloatArray, x: FloatArray, T: FloatArray) -> FloatArray:
        # Lomax(r+x, α+T) quantile
        r, alpha, _, _ = self._p()
        with np.errstate(over="ignore"):
            return np.asarray((alpha + T) * np.expm1(-np.log1p(-q) / (r + x)), dtype=np.float64)


class BGNBD(_BetaGeo):
    """The beta-geometric/NBD model of Fader, Hardie & Lee (2005).

    >>> m = BGNBD().fit(frequency, recency, T)        # doctest: +SKIP
    >>> m.params_                                     # doctest: +SKIP
    {'r': 0.2426, 'alpha': 4.4136, 'a': 0.7929, 'b': 2.4259}
    """

    _model_name = "BG/NBD"
    _shift = 0


class MBGNBD(_BetaGeo):
    """The modified BG/NBD of Batislam, Denizel & Filiztekin (2007).

    Like BG/NBD, but a customer may also drop out right after the first order, so a
    customer with no repeat order is not certainly alive.
    """

    _model_name = "MBG/NBD"
    _shift = 1
