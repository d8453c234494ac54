"""Numerically careful special-function helpers shared by the models."""

from __future__ import annotations

from functools import cache

import numpy as np
from numpy.typing import NDArray
from scipy.special import betainc, gammaln, hyp2f1, logsumexp

FloatArray = NDArray[np.float64]

__all__ = [
    "beta_geometric_expectation",
    "gauss_legendre",
    "log_power_integral",
    "negative_binomial_sf",
]

#: integrands are cut where they have fallen by e^-_CUT from their start
_CUT = 45.0


@cache
def gauss_legendre(n: int) -> tuple[FloatArray, FloatArray]:
    nodes, weights = np.polynomial.legendre.leggauss(n)
    return nodes.astype(np.float64), weights.astype(np.float64)


def log_power_integral(
    alpha: float | FloatArray,
    e1: FloatArray,
    beta: float | FloatArray,
    e2: FloatArray | float,
    lo: FloatArray,
    hi: FloatArray,
    n_nodes: int = 40,
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """``log ∫_lo^hi (α+τ)^-e1 (β+τ)^-e2 dτ`` by Gauss–Legendre quadrature.

    The integral is taken in ``y = log(c + τ)`` with ``c = min(α, β)``: both factors are
    then analytic in a strip of half-width π around the interval, so the rule converges
    geometrically however close ``α`` and ``β`` come to the interval. The range is cut where
    the integrand has fallen by e^-45, which keeps large exponents (x in the thousands)
    resolved. Returns ``(log I, q, log(α+τ), log(β+τ))`` with the normalised node weights
    ``q`` (rows × nodes), so a caller can form the gradient
    ``∂ log I/∂θ = Σ q ∂ log f(τ)/∂θ`` with the same rule. ``log I`` is −inf where
    ``hi <= lo``.
    """
    alpha_a = np.asarray(alpha, dtype=np.float64)
    beta_a = np.asarray(beta, dtype=np.float64)
    e1 = np.asarray(e1, dtype=np.float64)
    e2a = np.asarray(e2, dtype=np.float64)
    c = np.minimum(alpha_a, beta_a)
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        cut1 = (alpha_a + lo) * np.exp(np.minimum(_CUT / e1, 700.0)) - alpha_a
        cut2 = (beta_a + lo) * np.exp(np.minimum(_CUT / e2a, 700.0)) - beta_a
    upper = np.minimum(hi, np.minimum(cut1, cut2))
    y_lo = np.log(c + lo)
    y_hi = np.log(c + upper)
    width = np.maximum(y_hi - y_lo, 0.0)
    nodes, weights = gauss_legendre(n_nodes)
    y = y_lo[:, None] + width[:, None] * (nodes[None, :] + 1.0) / 2.0
    ey = np.exp(-y)
    c_col = np.reshape(c, (-1, 1)) if c.ndim else c
    da = (np.reshape(alpha_a, (-1, 1)) if alpha_a.ndim else alpha_a) - c_col
    db = (np.reshape(beta_a, (-1, 1)) if beta_a.ndim else beta_a) - c_col
    log_a = y + np.log1p(da * ey)
    log_b = y + np.log1p(db * ey)
    e2col = np.reshape(e2a, (-1, 1)) if e2a.ndim else e2a
    with np.errstate(divide="ignore"):
        log_w = np.log(width[:, None] / 2.0 * weights[None, :])
    terms = log_w - e1[:, None] * log_a - e2col * log_b + y
    log_i = logsumexp(terms, axis=1)
    empty = width <= 0
    log_i = np.where(empty, -np.inf, log_i)
    with np.errstate(invalid="ignore"):
        q = np.exp(terms - log_i[:, None])
    q[empty] = 0.0
    return log_i, q, log_a, log_b


def negative_binomial_sf(k: FloatArray, r: FloatArray | float, p: FloatArray) -> FloatArray:
    """``P(N >= k)`` for ``N ~ NB(r, p)`` with pmf ``Γ(r+n)/(Γ(r) n!) p^r (1-p)^n``.

    ``1 − Σ_{j<k} pmf(j) = I_{1-p}(k, r)`` (regularised incomplete beta), which is exact
    and free of the cancellation of the finite sum. ``P(N >= 0) = 1``.
    """
    k = np.asarray(k, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        out = betainc(np.maximum(k, 1.0), r, 1.0 - p)
    return np.where(k <= 0, 1.0, out)


def _bg_core(
    t: FloatArray, rp: FloatArray, ap: FloatArray, a: FloatArray, bp: FloatArray
) -> FloatArray:
    c = a + bp - 1.0
    log1mz = np.log(ap) - np.log(ap + t)
    z = t / (ap + t)
    f = hyp2f1(c - rp, a - 1.0, c, z)
    # 1 - (1-z)^(a-1) F, written to keep the small-z digits
    bracket = -np.expm1((a - 1.0) * log1mz) - np.exp((a - 1.0) * log1mz) * (f - 1.0)
    return c / (a - 1.0) * bracket


def beta_geometric_expectation(
    t: FloatArray, rp: FloatArray, ap: FloatArray, a: FloatArray, bp: FloatArray, _depth: int = 0
) -> FloatArray:
    """``E[(1 − e^{−λ p t}) / p]`` for ``λ ~ Gamma(r', α')``, ``p ~ Beta(a, b')``.

    This is the expected number of purchases in the next ``t`` of a customer who is alive
    now, under the BG/NBD and MBG/NBD processes (the building block of Fader, Hardie & Lee
    2005, eqs. 9–10, and Batislam et al. 2007). It equals
    ``C/(a−1) [1 − (α'/(α'+t))^{r'} ₂F₁(r', b'; C; z)]`` with ``C = a + b' − 1`` and
    ``z = t/(α'+t)``; we evaluate the Euler-transformed
    ``C/(a−1) [1 − (1−z)^{a−1} ₂F₁(C−r', a−1; C; z)]`` whose ₂F₁ has bounded parameters
    however large the frequency is, so it neither overflows nor cancels catastrophically.
    Where ``C`` is near or below 0 (``a + b < 1``, lifetimes #442) we split
    ``Beta(a, b') = b'/(a+b') Beta(a, b'+1) + a/(a+b') Beta(a+1, b')``; at ``a = 1`` (a
    removable singularity) we average the values at ``1 ± 1e-4``.
    """
    t, rp, ap, a, bp = (
        np.asarray(v, dtype=np.float64) for v in np.broadcast_arrays(t, rp, ap, a, bp)
    )
    out = np.zeros(t.shape)
    positive = t > 0
    c = a + bp - 1.0
    split = positive & (c < 0.5) & (_depth < 4)
    if np.any(split):
        s = split
        w1 = bp[s] / (a[s] + bp[s])
        out[s] = w1 * beta_geometric_expectation(
            t[s], rp[s], ap[s], a[s], bp[s] + 1.0, _depth + 1
        ) + (1.0 - w1) * beta_geometric_expectation(
            t[s], rp[s], ap[s], a[s] + 1.0, bp[s], _depth + 1
        )
    rest = positive & ~split
    if np.any(rest):
        tt, rr, aa_, a_, bb = t[rest], rp[rest], ap[rest], a[rest], bp[rest]
        near = np.abs(a_ - 1.0) < 1e-4
        val = np.empty(tt.shape)
        far = ~near
        with np.errstate(all="ignore"):
            val[far] = _bg_core(tt[far], rr[far], aa_[far], a_[far], bb[far])
            if np.any(near):
                h = 1e-4
                lo = _bg_core(tt[near], rr[near], aa_[near], np.full(near.sum(), 1.0 - h), bb[near])
                hi = _bg_core(tt[near], rr[near], aa_[near], np.full(near.sum(), 1.0 + h), bb[near])
                val[near] = (lo + hi) / 2.0
        # scipy's ₂F₁ fails once a, b' pass ~1e4 (data with no drop-out heterogeneity send
        # them to ~1e6); Beta(a, b') is then a point mass at p = a/(a+b') up to O(1/(a+b'))
        bad = ~np.isfinite(val) & (a_ + bb > 1e3)
        if np.any(bad):
            p0 = a_[bad] / (a_[bad] + bb[bad])
            val[bad] = -np.expm1(-rr[bad] * np.log1p(p0 * tt[bad] / aa_[bad])) / p0
        out[rest] = val
    return out


def log_nb_pmf(
    k: FloatArray, r: float | FloatArray, log_p: FloatArray, log_1mp: FloatArray
) -> FloatArray:
    """log pmf of the negative binomial ``Γ(r+k)/(Γ(r) k!) p^r (1−p)^k``."""
    with np.errstate(invalid="ignore"):
        tail = np.where(k > 0, k * log_1mp, 0.0)
    return gammaln(r + k) - gammaln(r) - gammaln(k + 1.0) + r * log_p + tail
