"""The fast paths of the BG/NBD fit give the numbers of the plain ones: the grouped
log-likelihood sum vs the per-row one, the pilot-started fit vs a cold start, and
whole-number row compression vs hashing."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from huitouke.models import BGNBD, MBGNBD, _base
from huitouke.models._base import _Data, _wsum, compress_rows
from huitouke.models.simulate import simulate_bgnbd


def _spread(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    ages = rng.integers(1, 547, n).astype(np.float64)
    return simulate_bgnbd(n, 0.243, 30.87, 0.793, 2.43, ages, rng, resolution=1.0)


@pytest.mark.parametrize("cls", [BGNBD, MBGNBD])
@pytest.mark.parametrize(
    "params", [(0.243, 30.87, 0.793, 2.43), (5.0, 0.5, 20.0, 0.1), (1e-3, 1e4, 1e-3, 1e3)]
)
def test_grouped_sum_equals_per_row_sum(cls: type[BGNBD], params: tuple[float, ...]) -> None:
    x, tx, t = _spread(20_000, 3)
    (ux, utx, ut), w, _ = compress_rows(x, tx, t)
    data = _Data((ux, utx, ut), w)
    m = cls()
    p = np.array(params)
    with np.errstate(all="ignore"):
        ll, grad = m._loglik(p, data.columns, data.cache)
        total, g = m._loglik_sum(p, data)
    assert total == pytest.approx(_wsum(ll, w), rel=1e-10)
    np.testing.assert_allclose(g, [_wsum(gi, w) for gi in grad], rtol=1e-8, atol=1e-8)


def test_pilot_start_reaches_the_cold_start_optimum(monkeypatch: pytest.MonkeyPatch) -> None:
    x, tx, t = _spread(300_000, 5)
    (ux, _, _), _, _ = compress_rows(x, tx, t)
    assert ux.size > _base._PILOT_ROWS  # the pilot runs
    warm = BGNBD().fit(x, tx, t)
    monkeypatch.setattr(_base, "_PILOT_ROWS", 10**9)
    cold = BGNBD().fit(x, tx, t)
    assert warm.n_iterations_ < cold.n_iterations_
    for k in cold.params_:
        assert warm.params_[k] == pytest.approx(cold.params_[k], rel=1e-5)
    assert warm.log_likelihood_ == pytest.approx(cold.log_likelihood_, rel=1e-12)


@pytest.mark.parametrize("fractional", [False, True])
def test_whole_number_compression_matches_hashing(fractional: bool) -> None:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 6, 50_000).astype(np.float64)
    t = rng.integers(0, 80, 50_000).astype(np.float64)
    if fractional:
        t[::7] += 0.5
    (ux, ut), w, inv = compress_rows(x, t)
    ref = pd.DataFrame({"x": x, "t": t}).drop_duplicates().sort_values(["x", "t"])  # sorted
    np.testing.assert_array_equal(np.column_stack([ux, ut]), ref.to_numpy())
    np.testing.assert_array_equal(ux[inv], x)
    np.testing.assert_array_equal(ut[inv], t)
    assert w.sum() == x.size


def test_penalised_fit_information_includes_the_penalty() -> None:
    """Nobody drops out: unpenalised, a runs to 0; the penalised fit is finite and its
    information matrix (with the penalty's curvature) is positive definite, so auto can use
    it. Without the penalty term the unpenalised curvature there is singular."""
    from huitouke.models import diagnose_fit

    rng = np.random.default_rng(2)
    ages = rng.integers(30, 400, 4000).astype(np.float64)
    x, tx, t = simulate_bgnbd(4000, 0.8, 60.0, 1e-4, 5.0, ages, rng, resolution=1.0)
    problem = diagnose_fit(BGNBD().fit(x, tx, t), x, tx, t)
    assert problem is not None and problem.code == "parameter_bound"
    m = BGNBD(penalizer=1e-3).fit(x, tx, t)
    assert diagnose_fit(m, x, tx, t) is None
    np.linalg.cholesky(m.covariance_)
    assert all(np.isfinite(v) and v > 0 for v in m.standard_errors_.values())
