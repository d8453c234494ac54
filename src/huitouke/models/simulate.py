"""Simulate customers from each model's own story — for tests, benchmarks and teaching.

Every function takes a seeded :class:`numpy.random.Generator` and is vectorised. With
``resolution`` set (e.g. ``1/7`` for whole days when the unit is weeks) event times and
``T`` are rounded down to that grid, as real order dates are.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from huitouke.models._base import FloatArray

__all__ = ["simulate_bgbb", "simulate_bgnbd", "simulate_gamma_gamma", "simulate_pnbd"]


def _grid(values: FloatArray, resolution: float | None) -> FloatArray:
    if resolution is None:
        return values
    return np.asarray(np.floor(values / resolution + 1e-9) * resolution, dtype=np.float64)


def _last_event_time(
    x: FloatArray, n_events: FloatArray, window: FloatArray, rng: np.random.Generator
) -> FloatArray:
    """Time of the x-th of n_events uniform points on (0, window): window · Beta(x, n−x+1)."""
    pos = x > 0
    out = np.zeros(x.shape)
    out[pos] = window[pos] * rng.beta(x[pos], n_events[pos] - x[pos] + 1.0)
    return out


def simulate_bgnbd(
    n: int,
    r: float,
    alpha: float,
    a: float,
    b: float,
    T: ArrayLike,
    rng: np.random.Generator,
    *,
    modified: bool = False,
    resolution: float | None = None,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """``(frequency, recency, T)`` of ``n`` customers from the BG/NBD process (MBG/NBD with
    ``modified=True``: the drop-out coin is also tossed right after the first order)."""
    t_end = np.broadcast_to(np.asarray(T, dtype=np.float64), (n,)).copy()
    t_end = _grid(t_end, resolution)
    lam = rng.gamma(r, 1.0 / alpha, n)
    p = rng.beta(a, b, n)
    n_events = rng.poisson(lam * t_end).astype(np.float64)
    # purchases made before the fatal toss: geometric on {1, 2, …} (BG) or {0, 1, …} (MBG)
    budget = rng.geometric(np.clip(p, 1e-300, 1.0)).astype(np.float64) - (1.0 if modified else 0.0)
    x = np.minimum(budget, n_events)
    tx = _grid(_last_event_time(x, n_events, t_end, rng), resolution)
    return x, np.minimum(tx, t_end), t_end


def simulate_pnbd(
    n: int,
    r: float,
    alpha: float,
    s: float,
    beta: float,
    T: ArrayLike,
    rng: np.random.Generator,
    *,
    resolution: float | None = None,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """``(frequency, recency, T)`` of ``n`` customers from the Pareto/NBD process."""
    t_end = _grid(np.broadcast_to(np.asarray(T, dtype=np.float64), (n,)).copy(), resolution)
    lam = rng.gamma(r, 1.0 / alpha, n)
    mu = rng.gamma(s, 1.0 / beta, n)
    life = rng.exponential(1.0 / np.maximum(mu, 1e-300))
    window = np.minimum(life, t_end)
    x = rng.poisson(lam * window).astype(np.float64)
    tx = _grid(_last_event_time(x, x, window, rng), resolution)
    return x, np.minimum(tx, t_end), t_end


def simulate_bgbb(
    n: int,
    alpha: float,
    beta: float,
    gamma: float,
    delta: float,
    n_periods: int,
    rng: np.random.Generator,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """``(frequency, recency, n_periods)`` of ``n`` customers from the BG/BB process."""
    p = rng.beta(alpha, beta, n)
    theta = rng.beta(gamma, delta, n)
    alive = np.ones(n, dtype=bool)
    x = np.zeros(n)
    tx = np.zeros(n)
    for period in range(1, n_periods + 1):
        alive &= rng.random(n) >= theta
        buy = alive & (rng.random(n) < p)
        x += buy
        tx[buy] = period
    return x, tx, np.full(n, float(n_periods))


def simulate_gamma_gamma(
    frequency: ArrayLike, p: float, q: float, gamma: float, rng: np.random.Generator
) -> FloatArray:
    """Mean order value of customers with the given numbers of orders (all > 0)."""
    x = np.asarray(frequency, dtype=np.float64)
    nu = rng.gamma(q, 1.0 / gamma, x.size)
    # the mean of x Gamma(p, ν) values is Gamma(px, xν)
    return np.asarray(rng.gamma(p * x, 1.0 / (x * nu)), dtype=np.float64)
