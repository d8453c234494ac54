"""Distinct rows with their counts as weights give the fit of the rows themselves — what the
Spark path relies on when it collects only the distinct (frequency, recency, T) rows."""

from __future__ import annotations

import numpy as np
import pytest

from huitouke.models import GammaGamma, select_model
from huitouke.models.simulate import simulate_bgnbd


def _unique(*cols: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    rows, counts = np.unique(np.column_stack(cols), axis=0, return_counts=True)
    return [rows[:, i] for i in range(rows.shape[1])], counts.astype(np.float64)


def test_weighted_distinct_rows_fit_like_the_expanded_rows() -> None:
    rng = np.random.default_rng(5)
    T0 = rng.integers(30, 360, 4000).astype(np.float64)
    x, tx, T = simulate_bgnbd(4000, 0.25, 30.0, 0.8, 2.5, T0, rng, resolution=1.0)
    full = select_model(x, tx, T, horizon=90.0)
    (ux, utx, uT), w = _unique(x, tx, T)
    assert ux.size < x.size / 2  # the data do compress
    weighted = select_model(ux, utx, uT, horizon=90.0, weights=w)
    assert weighted.name == full.name
    assert weighted.model.params_ == full.model.params_
    assert weighted.model.log_likelihood_ == full.model.log_likelihood_
    assert weighted.table.equals(full.table)

    rng = np.random.default_rng(1)
    fx = rng.integers(1, 5, 3000).astype(np.float64)
    mv = np.round(rng.gamma(3.0, 20.0, 3000), 0) + 1.0
    (gx, gm), gw = _unique(fx, mv)
    a = GammaGamma().fit(fx, mv)
    b = GammaGamma().fit(gx, gm, gw)
    assert a.params_ == pytest.approx(b.params_, rel=0, abs=0)
