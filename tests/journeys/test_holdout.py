"""Holdout assignment: uniform, stable, independent across journeys, any audience size."""

from __future__ import annotations

import numpy as np
from scipy import stats

from huitouke.journeys.holdout import customer_hashes, holdout_mask, holdout_uniform, is_holdout

SALT = "test-salt"


def test_uniform_and_share() -> None:
    ids = [f"c{i}" for i in range(200_000)]
    h = customer_hashes(ids, SALT)
    u = holdout_uniform("replenishment", h, SALT)
    assert ((u >= 0) & (u < 1)).all()
    # Kolmogorov–Smirnov against U(0,1): a biased hash fails this at this size
    assert stats.kstest(u, "uniform").pvalue > 0.001
    share = holdout_mask("replenishment", h, 0.1, SALT).mean()
    assert abs(share - 0.1) < 0.004  # 6 standard errors


def test_stable_and_pure() -> None:
    ids = ["a", "b", "c", "d"]
    m1 = holdout_mask("j", customer_hashes(ids, SALT), 0.5, SALT)
    m2 = holdout_mask("j", customer_hashes(list(reversed(ids)), SALT), 0.5, SALT)
    assert list(m1) == list(reversed(m2))
    assert [is_holdout("j", c, 0.5, SALT) for c in ids] == list(m1)


def test_journeys_are_independent() -> None:
    h = customer_hashes([f"c{i}" for i in range(100_000)], SALT)
    a = holdout_mask("journey_a", h, 0.2, SALT)
    b = holdout_mask("journey_b", h, 0.2, SALT)
    # independent 20% groups overlap on ~4%; the same hash would overlap on 20%
    assert abs((a & b).mean() - 0.04) < 0.005


def test_salt_reshuffles() -> None:
    ids = [f"c{i}" for i in range(10_000)]
    a = holdout_mask("j", customer_hashes(ids, "s1"), 0.5, "s1")
    b = holdout_mask("j", customer_hashes(ids, "s2"), 0.5, "s2")
    assert 0.4 < (a == b).mean() < 0.6


def test_any_audience_size() -> None:
    # one customer is either in or out, with the journey's share as its probability
    outs = [is_holdout("tiny", f"only-{i}", 0.25, SALT) for i in range(4000)]
    assert abs(np.mean(outs) - 0.25) < 0.03
    assert not holdout_mask("tiny", customer_hashes(["x"], SALT), 0.0, SALT)[0]
