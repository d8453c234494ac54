"""Pareto/NBD (Schmittlein, Morrison & Colombo 1987).

While alive a customer orders as a Poisson process with rate λ ~ Gamma(r, α); the
lifetime is exponential with rate μ ~ Gamma(s, β).

References
----------
- D. C. Schmittlein, D. G. Morrison, R. Colombo (1987), "Counting Your Customers: Who Are
  They and What Will They Do Next?", *Management Science* 33(1), 1–24.
- P. S. Fader, B. G. S. Hardie (2005), "A Note on Deriving the Pareto/NBD Model and
  Related Expressions" (eqs. 16–22 below: likelihood, P(alive), E[X(t)], conditional
  expectation), and "Deriving an Alternative Expression for the Pareto/NBD Likelihood"
  (2005) for the 2F1 form of the likelihood that this module replaces by its integral.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import digamma, gammaln, hyp2f1

from huitouke.models._base import FloatArray, _Data, _wsum, compress_rows, unique_codes
from huitouke.models._btyd import ContinuousBTYD, _horizon
from huitouke.models._special import gauss_legendre, log_nb_pmf, log_power_integral

__all__ = ["ParetoNBD"]

_NODES = 32


def _ratio_expm1(c: FloatArray | float, L: FloatArray) -> FloatArray:
    """``(1 − e^{−cL}) / c`` with its limit ``L`` at ``c = 0``."""
    c_arr = np.asarray(c, dtype=np.float64)
    small = np.abs(c_arr) < 1e-10
    safe = np.where(small, 1.0, c_arr)
    return np.asarray(np.where(small, L, -np.expm1(-safe * L) / safe), dtype=np.float64)


class ParetoNBD(ContinuousBTYD):
    """The Pareto/NBD model.

    The likelihood of one customer (Fader & Hardie 2005 note, eq. 18, written as the
    integral over the death time τ it comes from)::

        L = Γ(r+x) α^r β^s / Γ(r) · [ (α+T)^-(r+x) (β+T)^-s
                                     + s ∫_{t_x}^{T} (α+τ)^-(r+x) (β+τ)^-(s+1) dτ ]

    The integral equals the difference of two Gaussian hypergeometric functions
    ``₂F₁(r+s+x, s+1 or r+x; r+s+x+1; ·)`` of the published form, whose branch depends on
    α ≷ β and which overflows for large x. Here it is evaluated by Gauss–Legendre
    quadrature in log-time (see :func:`~huitouke.models._special.log_power_integral`),
    which has no branch, stays finite for any x, and gives the gradient in r, α, s, β by
    the same rule — so the fit uses analytic gradients.
    """

    _param_names: ClassVar[tuple[str, ...]] = ("r", "alpha", "s", "beta")
    _model_name = "Pareto/NBD"

    def _initial_params(self, data: _Data) -> list[FloatArray]:
        rate = self._rate_guess(data)
        _, _, t = data.columns
        mean_t = max(_wsum(t, data.weights) / float(data.weights.sum()), 1e-6)
        return [
            np.array([1.0, 1.0 / rate, 1.0, mean_t]),
            np.array([0.5, 0.5 / rate, 0.5, mean_t / 2]),
            np.array([2.0, 2.0 / rate, 2.0, 4 * mean_t]),
        ]

    def _loglik(
        self,
        params: FloatArray,
        columns: tuple[FloatArray, ...],
        cache: dict[str, Any] | None = None,
    ) -> tuple[FloatArray, FloatArray]:
        r, alpha, s, beta = params
        x, tx, T = columns
        # ∫_{t_x}^{T} = K(x, t_x) − K(x, T) with K(x, y) = ∫_y^{Y} for one anchor Y ≥ all T:
        # K is needed only on the distinct (x, t_x) and (x, T) pairs, far fewer than the
        # distinct (x, t_x, T) rows. The subtraction loses at most log10((Y−T)/(T−t_x))
        # digits, and only where this term is small next to the "alive" term.
        pairs = self._pairs(x, tx, T, cache)
        px, py, anchor, inv1, inv2 = pairs
        e1 = r + px
        log_k, q, log_a, log_b = log_power_integral(
            alpha, e1, beta, s + 1.0, py, np.full(py.shape, anchor), _NODES
        )
        dk = np.vstack(
            [
                -np.einsum("ij,ij->i", q, log_a),
                -e1 * np.einsum("ij,ij->i", q, np.exp(-log_a)),
                -np.einsum("ij,ij->i", q, log_b),
                -(s + 1.0) * np.einsum("ij,ij->i", q, np.exp(-log_b)),
            ]
        )
        lk1, lk2 = log_k[inv1], log_k[inv2]
        with np.errstate(divide="ignore", invalid="ignore"):
            rho = np.exp(lk2 - lk1)
            rho = np.where(np.isfinite(rho), np.minimum(rho, 1.0), 0.0)
            log_i = lk1 + np.log1p(-rho)
            di = (dk[:, inv1] - rho * dk[:, inv2]) / (1.0 - rho)
        empty = (T - tx) <= 0
        log_i = np.where(empty, -np.inf, log_i)
        di = np.where(empty, 0.0, di)

        e1r = r + x
        log_at = np.log(alpha + T)
        log_bt = np.log(beta + T)
        l_f = -e1r * log_at - s * log_bt
        l_2 = np.log(s) + log_i
        lse = np.logaddexp(l_f, l_2)
        w2 = np.exp(l_2 - lse)
        w1 = 1.0 - w2
        xu, xi = unique_codes(x, cache, "x")
        lx = (gammaln(r + xu) - gammaln(r))[xi]
        ll = lx + r * np.log(alpha) + s * np.log(beta) + lse
        d_r = (digamma(r + xu) - digamma(r))[xi] + np.log(alpha) - w1 * log_at + w2 * di[0]
        d_alpha = r / alpha - w1 * e1r / (alpha + T) + w2 * di[1]
        d_s = np.log(beta) - w1 * log_bt + w2 * (1.0 / s + di[2])
        d_beta = s / beta - w1 * s / (beta + T) + w2 * di[3]
        return ll, np.vstack([d_r, d_alpha, d_s, d_beta])

    @staticmethod
    def _pairs(
        x: FloatArray, tx: FloatArray, T: FloatArray, cache: dict[str, Any] | None
    ) -> tuple[FloatArray, FloatArray, float, NDArray[np.intp], NDArray[np.intp]]:
        if cache is not None and "pairs" in cache:
            found: tuple[FloatArray, FloatArray, float, NDArray[np.intp], NDArray[np.intp]] = cache[
                "pairs"
            ]
            return found
        n = x.size
        (px, py), _, inv = compress_rows(np.concatenate([x, x]), np.concatenate([tx, T]))
        out = (px, py, float(T.max()) * 1.0 + 1.0, inv[:n], inv[n:])
        if cache is not None:
            cache["pairs"] = out
        return out

    def _p(self) -> tuple[float, float, float, float]:
        v = self._require_fit()
        return float(v[0]), float(v[1]), float(v[2]), float(v[3])

    def probability_alive(
        self, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike
    ) -> FloatArray:
        """P(alive at T | x, t_x, T) — Fader & Hardie (2005 note) eq. 19: the share of the
        likelihood carried by "still alive at T"."""
        x, tx, tt = self._rfm(frequency, recency, T)
        r, alpha, s, beta = self._p()
        (ux, utx, ut), _, inv = compress_rows(x, tx, tt)
        log_i, _, _, _ = log_power_integral(alpha, r + ux, beta, s + 1.0, utx, ut, _NODES)
        l_f = -(r + ux) * np.log(alpha + ut) - s * np.log(beta + ut)
        log_odds = np.log(s) + log_i - l_f
        return np.asarray(np.exp(-np.logaddexp(0.0, log_odds))[inv], dtype=np.float64)

    def conditional_expected_purchases(
        self, t: ArrayLike, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike
    ) -> FloatArray:
        """E[orders in (T, T+t] | x, t_x, T] (Fader & Hardie 2005 note, eq. 22)::

            P(alive) · (r+x)(β+T) / ((α+T)(s−1)) · [1 − ((β+T)/(β+T+t))^(s−1)]

        with the limit ``(r+x)(β+T)/(α+T) · ln(1 + t/(β+T))`` at s = 1.
        """
        x, tx, tt = self._rfm(frequency, recency, T)
        r, alpha, s, beta = self._p()
        horizon = _horizon(t)
        alive = self.probability_alive(x, tx, tt)
        g = (
            (r + x)
            * (beta + tt)
            / (alpha + tt)
            * _ratio_expm1(s - 1.0, np.log1p(horizon / (beta + tt)))
        )
        return np.asarray(alive * g, dtype=np.float64)

    def expected_purchases(self, t: ArrayLike) -> FloatArray:
        """E[X(t)] for a customer just acquired (Fader & Hardie 2005 note, eq. 17)::

        rβ / (α(s−1)) · [1 − (β/(β+t))^(s−1)]
        """
        r, alpha, s, beta = self._p()
        horizon = np.atleast_1d(_horizon(t)).astype(np.float64)
        return r * beta / alpha * _ratio_expm1(s - 1.0, np.log1p(horizon / beta))

    def probability_of_purchases(self, k: ArrayLike, t: ArrayLike) -> FloatArray:
        """P(X(t) = k) for a customer just acquired.

        With ω = min(t, lifetime), X(t) | ω is NB(r, α/(α+ω)); the lifetime is
        Lomax(s, β). So P(X(t)=k) = NB(k; r, α/(α+t)) (β/(β+t))^s
        + ∫_0^t sβ^s (β+ω)^-(s+1) NB(k; r, α/(α+ω)) dω (Fader & Hardie 2005 note eq. 21
        in integral form), computed by Gauss–Legendre quadrature in log-time.
        """
        kk, tt = self._check_k_t(k, t)
        r, alpha, s, beta = self._p()
        shape = kk.shape
        kf, tf = kk.ravel(), tt.ravel()
        with np.errstate(divide="ignore"):
            alive_term = np.exp(
                log_nb_pmf(
                    kf, r, np.log(alpha) - np.log(alpha + tf), np.log(tf) - np.log(alpha + tf)
                )
                + s * (np.log(beta) - np.log(beta + tf))
            )
        c = min(alpha, beta)
        nodes, weights = gauss_legendre(64)
        y_lo = np.log(c)
        y_hi = np.log(c + tf)
        width = (y_hi - y_lo)[:, None]
        y = y_lo + width * (nodes[None, :] + 1.0) / 2.0
        omega = np.exp(y) - c
        with np.errstate(divide="ignore"):
            log_terms = (
                np.log(width / 2.0 * weights[None, :])
                + np.log(s)
                + s * np.log(beta)
                - (s + 1.0) * np.log(beta + omega)
                + log_nb_pmf(
                    kf[:, None],
                    r,
                    np.log(alpha) - np.log(alpha + omega),
                    np.log(omega) - np.log(alpha + omega),
                )
                + y
            )
            dead_term = np.where(tf > 0, np.exp(log_terms).sum(axis=1), 0.0)
        return np.asarray((alive_term + dead_term).reshape(shape), dtype=np.float64)

    def _eventual(self, x: FloatArray, T: FloatArray) -> FloatArray:
        """H(∞) = E[λ/(λ+μ)] for λ ~ Gamma(r+x, α+T), μ ~ Gamma(s, β+T): the chance that a
        customer alive at T orders again before dying. With B = X/(X+Y) ~ Beta(r', s)
        this is an Euler integral, so (for α' ≤ β', else by symmetry on μ/(λ+μ))::

            H(∞) = r'/(r'+s) · ₂F₁(1, s; r'+s+1; 1 − α'/β')
                 = 1 − s/(r'+s) · ₂F₁(1, r'; r'+s+1; 1 − β'/α')

        Both series have argument in [0, 1) and c − a − b > 0, so they converge up to 1.
        """
        r, alpha, s, beta = self._p()
        rp, ap, bp = r + x, alpha + T, beta + T
        lower = ap <= bp
        with np.errstate(all="ignore"):
            v1 = rp / (rp + s) * hyp2f1(1.0, s, rp + s + 1.0, 1.0 - ap / bp)
            v2 = 1.0 - s / (rp + s) * hyp2f1(1.0, rp, rp + s + 1.0, 1.0 - bp / ap)
        out = np.where(lower, v1, v2)
        bad = ~np.isfinite(out)
        if np.any(bad):
            # scipy's ₂F₁ gives up very near z = 1 with c − a − b small: integrate instead
            out[bad] = np.exp(
                self._log_h(np.full(int(bad.sum()), np.inf), x[bad], T[bad], nodes=96)
            )
        return np.asarray(np.clip(out, 0.0, 1.0), dtype=np.float64)

    def _log_h(self, u: FloatArray, x: FloatArray, T: FloatArray, nodes: int = 24) -> FloatArray:
        r, alpha, s, beta = self._p()
        rp, ap, bp = r + x, alpha + T, beta + T
        log_i, _, _, _ = log_power_integral(
            ap, rp + 1.0, bp, np.full(x.shape, s), np.zeros(x.shape), u, nodes
        )
        return np.asarray(np.log(rp) + rp * np.log(ap) + s * np.log(bp) + log_i, dtype=np.float64)

    def _next_order_cdf_given_alive(
        self, u: FloatArray, x: FloatArray, T: FloatArray
    ) -> tuple[FloatArray, FloatArray]:
        """H(u) = ∫_0^u (r+x)/(α+T+v) ((α+T)/(α+T+v))^(r+x) ((β+T)/(β+T+v))^s dv."""
        u = np.asarray(u, dtype=np.float64)
        x = np.asarray(x, dtype=np.float64)
        T = np.asarray(T, dtype=np.float64)
        eventual = self._eventual(x, T)
        finite = np.isfinite(u)
        h = eventual.copy()
        if np.any(finite):
            h[finite] = np.minimum(
                np.exp(self._log_h(u[finite], x[finite], T[finite])), eventual[finite]
            )
        return h, eventual

    def _next_order_quantile(self, q: FloatArray, x: FloatArray, T: FloatArray) -> FloatArray:
        """Bisection in log-time on ``H(u) = q·H(∞)``."""
        r, alpha, _, _ = self._p()
        eventual = self._eventual(x, T)
        target = np.log(q * eventual)
        scale = (alpha + T) / (r + x)
        lo = np.full(x.shape, -40.0)
        hi = np.full(x.shape, 60.0)
        for _ in range(56):
            mid = (lo + hi) / 2.0
            below = self._log_h(scale * np.exp(mid), x, T) < target
            lo = np.where(below, mid, lo)
            hi = np.where(below, hi, mid)
        out = scale * np.exp((lo + hi) / 2.0)
        return np.asarray(np.where(hi >= 60.0 - 1e-9, np.inf, out), dtype=np.float64)
