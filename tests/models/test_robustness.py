"""Extreme inputs, property tests, input validation and fit failures."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from huitouke.errors import InputError, ModelFitError
from huitouke.models import BGBB, BGNBD, MBGNBD, GammaGamma, ParetoNBD, summary_from_transactions

EXTREME_X = np.array([0.0, 1.0, 50.0, 1000.0, 10_000.0, 10_000.0, 3.0, 0.0])
EXTREME_TX = np.array([0.0, 0.0, 10.0, 39.0, 38.0, 0.001, 39.0, 0.0])
EXTREME_T = np.array([39.0, 39.0, 39.0, 39.0, 39.0, 39.0, 39.0, 0.0])


def _models() -> list[BGNBD]:
    return [
        BGNBD().set_params(r=0.24, alpha=4.4, a=0.79, b=2.4),
        BGNBD().set_params(r=0.24, alpha=4.4, a=0.3, b=0.4),  # a + b < 1 (lifetimes #442)
        BGNBD().set_params(r=2.0, alpha=1e-4, a=1.0, b=3.0),  # a = 1 exactly, tiny alpha
        BGNBD().set_params(r=0.5, alpha=1e6, a=5.0, b=0.05),  # huge alpha
        MBGNBD().set_params(r=0.5, alpha=6.0, a=0.2, b=0.3),
        ParetoNBD().set_params(r=0.55, alpha=10.6, s=0.61, beta=11.7),
        ParetoNBD().set_params(r=0.55, alpha=1e-3, s=3.0, beta=1e4),  # alpha << beta
        ParetoNBD().set_params(r=5.0, alpha=1e5, s=0.01, beta=1e-3),  # alpha >> beta
        ParetoNBD().set_params(r=0.5, alpha=5.0, s=1.0, beta=5.0),  # s = 1, alpha = beta
    ]


@pytest.mark.parametrize("model", _models(), ids=lambda m: repr(m))
def test_extremes_stay_finite(model: BGNBD) -> None:
    with np.errstate(over="raise", invalid="raise"):
        alive = model.probability_alive(EXTREME_X, EXTREME_TX, EXTREME_T)
        expected = model.conditional_expected_purchases(52.0, EXTREME_X, EXTREME_TX, EXTREME_T)
        new = model.expected_purchases([0.0, 1.0, 1e4])
    assert np.all(np.isfinite(alive)) and np.all((alive >= 0) & (alive <= 1))
    assert np.all(np.isfinite(expected)) and np.all(expected >= 0)
    assert np.all(np.isfinite(new)) and new[0] == 0.0
    dist = model.next_order_distribution(EXTREME_X, EXTREME_TX, EXTREME_T)
    assert not dist.isna().any().any()
    ll, grad = model._loglik(
        np.array(list(model.params_.values())),
        (EXTREME_X, np.minimum(EXTREME_TX, EXTREME_T), EXTREME_T),
    )
    assert np.all(np.isfinite(ll)) and np.all(np.isfinite(grad))


def test_heavy_buyer_expectation_is_sensible() -> None:
    """x = 10,000 orders in 39 weeks, last one at T: about 256 a week, alive."""
    m = BGNBD().set_params(r=0.24, alpha=4.4, a=0.79, b=2.4)
    e = m.conditional_expected_purchases(1.0, [10_000.0], [39.0], [39.0])[0]
    assert 200 < e < 260
    p = ParetoNBD().set_params(r=0.55, alpha=10.6, s=0.61, beta=11.7)
    assert 200 < p.conditional_expected_purchases(1.0, [10_000.0], [39.0], [39.0])[0] < 260


continuous = st.sampled_from(_models())
history = st.tuples(st.integers(0, 500), st.floats(0.0, 1.0), st.floats(0.0, 400.0)).map(
    lambda v: (float(v[0]), 0.0 if v[0] == 0 else v[1] * v[2], v[2])
)


@settings(max_examples=150, deadline=None)
@given(continuous, history, st.floats(0.0, 200.0), st.floats(0.0, 200.0))
def test_properties(model: BGNBD, h: tuple[float, float, float], t1: float, t2: float) -> None:
    x, tx, t = h
    alive = model.probability_alive([x], [tx], [t])[0]
    assert 0.0 <= alive <= 1.0
    lo, hi = sorted((t1, t2))
    e_lo = model.conditional_expected_purchases(lo, [x], [tx], [t])[0]
    e_hi = model.conditional_expected_purchases(hi, [x], [tx], [t])[0]
    assert 0.0 <= e_lo <= e_hi * (1 + 1e-9) + 1e-12
    p_lo = model.probability_of_any_purchase(lo, [x], [tx], [t])[0]
    p_hi = model.probability_of_any_purchase(hi, [x], [tx], [t])[0]
    assert 0.0 <= p_lo <= p_hi + 1e-9 <= 1.0 + 1e-9
    # a longer silence never makes a customer more likely to be alive
    if t > tx + 1:
        assert model.probability_alive([x], [tx], [t + 10])[0] <= alive + 1e-12


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 6), st.integers(0, 6), st.integers(1, 12))
def test_bgbb_properties(x: int, tx: int, n: int) -> None:
    x = min(x, n)
    tx = min(max(tx, x), n) if x > 0 else 0
    m = BGBB().set_params(alpha=1.2, beta=0.75, gamma=0.66, delta=2.78)
    alive = m.probability_alive([x], [tx], [n])[0]
    assert 0 <= alive <= 1
    e = m.conditional_expected_purchases(np.array([1.0, 5.0, 20.0]), [x], [tx], [n])
    assert np.all(np.diff(e) >= 0) and e[0] >= 0


def test_bad_arguments_are_named() -> None:
    m = BGNBD()
    with pytest.raises(InputError, match="`recency` must not exceed `T`"):
        m.fit([1, 2], [5.0, 1.0], [4.0, 3.0])
    with pytest.raises(InputError, match="`frequency` must not be negative"):
        m.fit([-1, 2], [0.0, 1.0], [4.0, 3.0])
    with pytest.raises(InputError, match="`frequency` must hold whole numbers"):
        m.fit([1.5, 2], [1.0, 1.0], [4.0, 3.0])
    with pytest.raises(InputError, match="same length"):
        m.fit([1, 2], [1.0], [4.0, 3.0])
    with pytest.raises(InputError, match="`T` has a missing"):
        m.fit([1, 2], [1.0, 1.0], [np.nan, 3.0])
    with pytest.raises(InputError, match="`recency` must be 0 where `frequency` is 0"):
        m.fit([0, 2], [1.0, 1.0], [4.0, 3.0])
    with pytest.raises(InputError, match="`weights`"):
        m.fit([1, 2], [1.0, 1.0], [4.0, 3.0], weights=[1.0])
    with pytest.raises(InputError, match="`monetary_value` must be positive"):
        GammaGamma().fit([1, 2], [0.0, 3.0])
    with pytest.raises(InputError, match="`frequency` must be at least 1"):
        GammaGamma().fit([0, 2], [1.0, 3.0])
    with pytest.raises(ModelFitError, match="not fitted"):
        BGNBD().probability_alive([1], [1], [2])
    with pytest.raises(InputError, match="`coverage`"):
        BGNBD().set_params(r=1, alpha=1, a=1, b=1).next_order_distribution(
            [1], [1], [2], coverage=1.5
        )


def test_unidentifiable_data_raise_a_helpful_fit_error() -> None:
    # nobody ever repeats: the purchase rate runs to zero
    with pytest.raises(ModelFitError, match="no customer has a repeat order") as info:
        BGNBD().fit(np.zeros(500), np.zeros(500), np.linspace(1, 50, 500))
    assert info.value.code == "model.not_identified"


def test_summary_builder_conventions() -> None:
    orders = pd.DataFrame(
        {
            "customer_id": ["a", "a", "a", "a", "b", "c"],
            "ordered_at": [
                pd.Timestamp(v)
                for v in (
                    "2024-01-01",
                    "2024-01-01 18:00",
                    "2024-01-08",
                    "2024-01-22",
                    "2024-01-15",
                    "2024-02-01",
                )
            ],
            "amount": [10.0, 5.0, 20.0, 40.0, 7.0, 9.0],
        }
    )
    s = summary_from_transactions(orders, observation_end="2024-01-29", unit="W")
    assert list(s.index) == ["a", "b"]  # c ordered after the end
    assert s.loc["a", "frequency"] == 2  # the two 1 January orders are merged
    assert s.loc["a", "recency"] == pytest.approx(3.0)
    assert s.loc["a", "T"] == pytest.approx(4.0)
    assert s.loc["a", "monetary_value"] == pytest.approx(30.0)  # mean of repeat orders
    assert s.loc["b", "frequency"] == 0 and s.loc["b", "monetary_value"] == 0
    unmerged = summary_from_transactions(
        orders, observation_end="2024-01-29", unit="D", merge_same_day=False
    )
    assert unmerged.loc["a", "frequency"] == 3 and unmerged.loc["a", "T"] == 28
    with pytest.raises(InputError, match="'amount_eur'"):
        summary_from_transactions(orders, amount_col="amount_eur")
    with pytest.raises(InputError, match="row 1"):
        summary_from_transactions(orders.assign(amount=[1.0, -2.0, 1.0, 1.0, 1.0, 1.0]))
