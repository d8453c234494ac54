"""Each model recovers known parameters from data simulated from its own process."""

from __future__ import annotations

import numpy as np
import pytest

from huitouke.models import BGBB, BGNBD, MBGNBD, GammaGamma, ParetoNBD
from huitouke.models.simulate import (
    simulate_bgbb,
    simulate_bgnbd,
    simulate_gamma_gamma,
    simulate_pnbd,
)

N = 60_000


def _within(model: BGNBD, truth: dict[str, float], z: float = 4.5) -> None:
    """Every estimate within z standard errors of the truth (and the SEs are sane)."""
    for name, value in truth.items():
        se = model.standard_errors_[name]
        assert 0 < se < 0.5 * value, (name, se)
        assert abs(model.params_[name] - value) < z * se, (name, model.params_[name], value, se)
    lo_hi = model.confidence_intervals(0.999)
    for name, value in truth.items():
        assert (
            lo_hi[name][0] < value < lo_hi[name][1]
            or abs(model.params_[name] - value) < z * model.standard_errors_[name]
        )


def _ages(rng: np.random.Generator) -> np.ndarray:
    return (273 - rng.integers(0, 84, N)) / 7


@pytest.mark.slow
def test_bgnbd_recovers_parameters() -> None:
    rng = np.random.default_rng(11)
    truth = {"r": 0.5, "alpha": 6.0, "a": 0.8, "b": 2.5}
    x, tx, t = simulate_bgnbd(N, *truth.values(), _ages(rng), rng)
    _within(BGNBD().fit(x, tx, t), truth)


@pytest.mark.slow
def test_mbgnbd_recovers_parameters() -> None:
    rng = np.random.default_rng(12)
    truth = {"r": 0.5, "alpha": 6.0, "a": 0.8, "b": 2.5}
    x, tx, t = simulate_bgnbd(N, *truth.values(), _ages(rng), rng, modified=True)
    _within(MBGNBD().fit(x, tx, t), truth)


@pytest.mark.slow
def test_pareto_nbd_recovers_parameters() -> None:
    rng = np.random.default_rng(13)
    truth = {"r": 0.6, "alpha": 10.0, "s": 0.8, "beta": 12.0}
    x, tx, t = simulate_pnbd(N, *truth.values(), _ages(rng), rng)
    _within(ParetoNBD().fit(x, tx, t), truth)


@pytest.mark.slow
def test_bgbb_recovers_parameters() -> None:
    rng = np.random.default_rng(14)
    truth = {"alpha": 1.2, "beta": 0.75, "gamma": 0.66, "delta": 2.8}
    x, tx, n = simulate_bgbb(N, *truth.values(), 8, rng)
    _within(BGBB().fit(x, tx, n), truth)


@pytest.mark.slow
def test_gamma_gamma_recovers_parameters() -> None:
    rng = np.random.default_rng(15)
    truth = {"p": 6.0, "q": 3.8, "gamma": 15.0}
    x = rng.integers(1, 8, N).astype(float)
    m = simulate_gamma_gamma(x, *truth.values(), rng)
    _within(GammaGamma().fit(x, m), truth)


def test_simulated_daily_data_fit_close_to_truth_quickly() -> None:
    """Whole-day resolution (as real order dates) biases the estimates only slightly."""
    rng = np.random.default_rng(16)
    x, tx, t = simulate_bgnbd(
        20_000, 0.243, 4.41, 0.793, 2.43, _ages(rng)[:20_000], rng, resolution=1 / 7
    )
    m = BGNBD().fit(x, tx, t)
    assert m.params_["r"] == pytest.approx(0.243, rel=0.15)
    assert m.params_["a"] == pytest.approx(0.793, rel=0.3)
