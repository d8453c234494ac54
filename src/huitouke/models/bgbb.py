"""BG/BB: the discrete-time "buy till you die" model (Fader, Hardie & Shang 2010).

For businesses whose orders happen at discrete occasions (a yearly fund drive, weekly
classes, monthly boxes): in each of ``n`` opportunities an alive customer buys with
probability p ~ Beta(α, β) and, before each opportunity, drops out with probability
θ ~ Beta(γ, δ).

Reference: P. S. Fader, B. G. S. Hardie, J. Shang (2010), "Customer-Base Analysis in a
Discrete-Time Noncontractual Setting", *Marketing Science* 29(6), 1086–1108. Equation
numbers below refer to it (eq. 5 likelihood, eq. 8 P(X(n)=x), eq. 9 E[X(n)], eq. 11
P(alive), eq. 13 conditional expectation).
"""

from __future__ import annotations

from typing import Any, ClassVar, Self

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import betaln, digamma, gammaln, logsumexp

from huitouke.errors import InputError
from huitouke.models._base import (
    FittedModel,
    FloatArray,
    _bad,
    _Data,
    as_float_array,
    check_integer,
    check_nonnegative,
    check_same_length,
    compress_rows,
    validate_weights,
)

__all__ = ["BGBB"]


def _validate(
    frequency: ArrayLike, recency: ArrayLike, n_periods: ArrayLike
) -> tuple[FloatArray, FloatArray, FloatArray]:
    x = as_float_array(frequency, "frequency")
    tx = as_float_array(recency, "recency")
    n = as_float_array(n_periods, "n_periods")
    if n.size == 1 and x.size > 1:
        n = np.full(x.size, n[0])
    check_same_length(frequency=x, recency=tx, n_periods=n)
    for arr, name in ((x, "frequency"), (tx, "recency"), (n, "n_periods")):
        check_nonnegative(arr, name)
        check_integer(arr, name)
    if np.any(tx > n):
        raise _bad(
            "recency",
            "must not exceed `n_periods`",
            "不能大于 `n_periods`",
            int(np.flatnonzero(tx > n)[0]),
        )
    if np.any(x > tx):
        raise _bad(
            "frequency",
            "must not exceed `recency` (the period of the last order)",
            "不能大于 `recency`(最后一次购买所在期)",
            int(np.flatnonzero(x > tx)[0]),
        )
    if np.any((x == 0) & (tx > 0)):
        raise _bad(
            "recency",
            "must be 0 where `frequency` is 0",
            "在 `frequency` 为 0 时必须为 0",
            int(np.flatnonzero((x == 0) & (tx > 0))[0]),
        )
    return x, tx, n


class BGBB(FittedModel):
    """Beta-geometric/beta-Bernoulli model.

    ``fit(frequency, recency, n_periods, weights=None)`` with ``frequency`` = number of
    repeat transactions x, ``recency`` = the opportunity of the last one t_x (0 if none)
    and ``n_periods`` = number of opportunities n. The likelihood (eq. 5)::

        L = B(α+x, β+n−x)/B(α,β) · B(γ, δ+n)/B(γ,δ)
            + Σ_{i=0}^{n−t_x−1} B(α+x, β+t_x−x+i)/B(α,β) · B(γ+1, δ+t_x+i)/B(γ,δ)

    evaluated as a log-sum-exp over its terms.
    """

    _param_names: ClassVar[tuple[str, ...]] = ("alpha", "beta", "gamma", "delta")
    _model_name = "BG/BB"

    def fit(
        self,
        frequency: ArrayLike,
        recency: ArrayLike,
        n_periods: ArrayLike,
        weights: ArrayLike | None = None,
    ) -> Self:
        """Maximum-likelihood fit; returns ``self``."""
        x, tx, n = _validate(frequency, recency, n_periods)
        w = validate_weights(weights, x.size)
        (ux, utx, un), uw, _ = compress_rows(x, tx, n, weights=w)
        keep = uw > 0
        return self._fit_data(_Data((ux[keep], utx[keep], un[keep]), uw[keep]))

    def _initial_params(self, data: _Data) -> list[FloatArray]:
        return [
            np.array([1.0, 1.0, 1.0, 1.0]),
            np.array([0.5, 0.5, 0.5, 2.0]),
            np.array([2.0, 2.0, 2.0, 5.0]),
        ]

    def _terms(
        self, params: FloatArray, x: FloatArray, tx: FloatArray, n: FloatArray
    ) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
        """Log terms (rows × (1 + max i)) of the likelihood and the arguments their
        gradients need: column 0 is "alive through n", column 1+i "died after t_x+i"."""
        al, be, ga, de = params
        imax = int(np.max(n - tx)) if n.size else 0
        i = np.arange(imax, dtype=np.float64)[None, :]
        valid = i < (n - tx)[:, None]
        lab = betaln(al, be)
        lgd = betaln(ga, de)
        t0 = betaln(al + x, be + n - x) - lab + betaln(ga, de + n) - lgd
        ti_idx = tx[:, None] + i  # t_x + i
        ti = (
            betaln(al + x[:, None], be + ti_idx - x[:, None])
            - lab
            + betaln(ga + 1.0, de + ti_idx)
            - lgd
        )
        ti = np.where(valid, ti, -np.inf)
        terms = np.concatenate([t0[:, None], ti], axis=1)
        # the "number of opportunities seen" of each term: n for column 0, t_x+i else
        seen = np.concatenate([n[:, None], np.where(valid, ti_idx, 0.0)], axis=1)
        died = np.concatenate([np.zeros((x.size, 1)), np.ones(ti.shape)], axis=1)
        return terms, seen, died, np.concatenate([np.ones((x.size, 1)), valid], axis=1)

    def _loglik(
        self,
        params: FloatArray,
        columns: tuple[FloatArray, ...],
        cache: dict[str, Any] | None = None,
    ) -> tuple[FloatArray, FloatArray]:
        al, be, ga, de = params
        x, tx, n = columns
        terms, seen, died, _ = self._terms(params, x, tx, n)
        ll = logsumexp(terms, axis=1)
        q = np.exp(terms - ll[:, None])
        xc = x[:, None]
        # d/dα of B(α+x, β+m−x)/B(α,β) in log: ψ(α+x) − ψ(α+β+m) − ψ(α) + ψ(α+β)
        psi_abm = digamma(al + be + seen)
        d_al = digamma(al + xc) - psi_abm - digamma(al) + digamma(al + be)
        d_be = digamma(be + seen - xc) - psi_abm - digamma(be) + digamma(al + be)
        # column 0: B(γ, δ+n); columns i: B(γ+1, δ+t_x+i)
        psi_gdm = digamma(ga + died + de + seen)
        d_ga = digamma(ga + died) - psi_gdm - digamma(ga) + digamma(ga + de)
        d_de = digamma(de + seen) - psi_gdm - digamma(de) + digamma(ga + de)
        grads = [np.nansum(q * g, axis=1) for g in (d_al, d_be, d_ga, d_de)]
        return ll, np.vstack(grads)

    def _p(self) -> tuple[float, float, float, float]:
        v = self._require_fit()
        return float(v[0]), float(v[1]), float(v[2]), float(v[3])

    def _loglik_rows(self, x: FloatArray, tx: FloatArray, n: FloatArray) -> FloatArray:
        params = self._require_fit()
        terms, _, _, _ = self._terms(params, x, tx, n)
        return np.asarray(logsumexp(terms, axis=1), dtype=np.float64)

    def probability_alive(
        self, frequency: ArrayLike, recency: ArrayLike, n_periods: ArrayLike
    ) -> FloatArray:
        """P(alive at opportunity n+1 | x, t_x, n) (eq. 11)::

        B(α+x, β+n−x)/B(α,β) · B(γ, δ+n+1)/B(γ,δ) / L
        """
        x, tx, n = _validate(frequency, recency, n_periods)
        al, be, ga, de = self._p()
        (ux, utx, un), _, inv = compress_rows(x, tx, n)
        num = (
            betaln(al + ux, be + un - ux)
            - betaln(al, be)
            + betaln(ga, de + un + 1)
            - betaln(ga, de)
        )
        return np.asarray(np.exp(num - self._loglik_rows(ux, utx, un))[inv], dtype=np.float64)

    def conditional_expected_purchases(
        self, t: ArrayLike, frequency: ArrayLike, recency: ArrayLike, n_periods: ArrayLike
    ) -> FloatArray:
        """E[transactions in the next ``t`` opportunities | x, t_x, n] (eq. 13)::

            B(α+x+1, β+n−x)/B(α,β) · δ/(γ−1) · Γ(γ+δ)/Γ(1+δ)
            · [Γ(1+δ+n)/Γ(γ+δ+n) − Γ(1+δ+n+t)/Γ(γ+δ+n+t)] / L

        (γ = 1 is a removable singularity, handled by averaging γ = 1 ± 1e-4).
        """
        x, tx, n = _validate(frequency, recency, n_periods)
        horizon = as_float_array(t, "t")
        if np.any(horizon < 0):
            raise _bad(
                "t", "must not be negative", "不能为负数", int(np.flatnonzero(horizon < 0)[0])
            )
        al, be, ga, de = self._p()
        xb, txb, nb, hb = np.broadcast_arrays(x, tx, n, horizon)
        log_l = self._loglik_rows(xb.ravel(), txb.ravel(), nb.ravel())
        pre = betaln(al + xb.ravel() + 1, be + nb.ravel() - xb.ravel()) - betaln(al, be) - log_l

        def core(g: float) -> FloatArray:
            nn, hh = nb.ravel(), hb.ravel()
            a_ = gammaln(1 + de + nn) - gammaln(g + de + nn)
            b_ = gammaln(1 + de + nn + hh) - gammaln(g + de + nn + hh)
            return np.asarray(
                np.exp(pre + np.log(de) + gammaln(g + de) - gammaln(1 + de) + a_)
                * (-np.expm1(b_ - a_))
                / (g - 1.0),
                dtype=np.float64,
            )

        out = (core(1 - 1e-4) + core(1 + 1e-4)) / 2 if abs(ga - 1) < 1e-4 else core(ga)
        return out.reshape(xb.shape)

    def expected_purchases(self, t: ArrayLike) -> FloatArray:
        """E[X(n)] for a new customer over ``n`` opportunities (eq. 9)."""
        horizon = np.atleast_1d(as_float_array(t, "t"))
        zero = np.zeros(horizon.shape)
        return self.conditional_expected_purchases(horizon, zero, zero, zero)

    def probability_of_purchases(self, k: ArrayLike, n_periods: ArrayLike) -> FloatArray:
        """P(X(n) = k) for a new customer (eq. 8)::

        C(n,k) B(α+k, β+n−k)/B(α,β) · B(γ, δ+n)/B(γ,δ)
        + Σ_{i=k}^{n−1} C(i,k) B(α+k, β+i−k)/B(α,β) · B(γ+1, δ+i)/B(γ,δ)
        """
        self._require_fit()
        kk = as_float_array(k, "k")
        nn = as_float_array(n_periods, "n_periods")
        check_integer(kk, "k")
        check_integer(nn, "n_periods")
        if np.any(kk < 0) or np.any(nn < 0):
            raise InputError(
                "`k` and `n_periods` must be non-negative",
                code="input.model_argument",
                message_zh="`k` 和 `n_periods` 必须非负",
                details={"argument": "k"},
            )
        al, be, ga, de = self._p()
        kb, nb = (np.asarray(v, dtype=np.float64).ravel() for v in np.broadcast_arrays(kk, nn))
        shape = np.broadcast_shapes(kk.shape, nn.shape)

        def log_comb(a: FloatArray, b: FloatArray) -> FloatArray:
            return np.asarray(
                gammaln(a + 1) - gammaln(b + 1) - gammaln(a - b + 1), dtype=np.float64
            )

        with np.errstate(invalid="ignore"):
            first = np.where(
                kb <= nb,
                np.exp(
                    log_comb(nb, np.minimum(kb, nb))
                    + betaln(al + kb, be + np.maximum(nb - kb, 0))
                    - betaln(al, be)
                    + betaln(ga, de + nb)
                    - betaln(ga, de)
                ),
                0.0,
            )
            imax = int(nb.max()) if nb.size else 0
            i = np.arange(imax, dtype=np.float64)[None, :]
            valid = (i >= kb[:, None]) & (i < nb[:, None])
            ic = np.where(valid, i, kb[:, None])
            terms = (
                log_comb(ic, kb[:, None])
                + betaln(al + kb[:, None], be + ic - kb[:, None])
                - betaln(al, be)
                + betaln(ga + 1, de + ic)
                - betaln(ga, de)
            )
            second = np.where(valid, np.exp(terms), 0.0).sum(axis=1)
        return np.asarray((first + second).reshape(shape), dtype=np.float64)
