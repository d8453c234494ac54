"""Cross-check against ``lifetimes`` (archived; used only as a peer on arrays)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from huitouke.models import BGBB, BGNBD, MBGNBD, GammaGamma, ParetoNBD, customer_lifetime_value

lifetimes = pytest.importorskip("lifetimes", reason="lifetimes (dev peer) not installed")

warnings.filterwarnings("ignore", module="lifetimes")


def _cal(split: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return (
        split["frequency_cal"].to_numpy(),
        split["recency_cal"].to_numpy(),
        split["T_cal"].to_numpy(),
    )


@pytest.mark.parametrize(
    ("ours", "theirs", "names"),
    [
        (BGNBD, "BetaGeoFitter", ("r", "alpha", "a", "b")),
        (MBGNBD, "ModifiedBetaGeoFitter", ("r", "alpha", "a", "b")),
    ],
)
def test_beta_geometric_models_agree(
    cdnow_split: pd.DataFrame, ours: type, theirs: str, names: tuple[str, ...]
) -> None:
    x, tx, t = _cal(cdnow_split)
    m = ours().fit(x, tx, t)
    peer = getattr(lifetimes, theirs)().fit(x, tx, t)
    for name in names:
        assert m.params_[name] == pytest.approx(peer.params_[name], rel=2e-3)
    # predictions with the same parameters must agree to rounding
    peer.params_ = pd.Series(m.params_)
    np.testing.assert_allclose(
        m.probability_alive(x, tx, t), peer.conditional_probability_alive(x, tx, t), rtol=1e-9
    )
    np.testing.assert_allclose(
        m.conditional_expected_purchases(39, x, tx, t),
        peer.conditional_expected_number_of_purchases_up_to_time(39, x, tx, t),
        rtol=1e-8,
    )
    horizons = np.array([1.0, 10.0, 39.0, 78.0])
    np.testing.assert_allclose(
        m.expected_purchases(horizons),
        peer.expected_number_of_purchases_up_to_time(horizons),
        rtol=1e-8,
    )
    for k in range(4):
        assert m.probability_of_purchases(k, 39)[0] == pytest.approx(
            float(np.squeeze(peer.probability_of_n_purchases_up_to_time(39, k))), rel=1e-8
        )


def test_pareto_nbd_agrees(cdnow_split: pd.DataFrame) -> None:
    x, tx, t = _cal(cdnow_split)
    m = ParetoNBD().fit(x, tx, t)
    (ux, utx, ut), w = _unique(x, tx, t)
    peer = lifetimes.ParetoNBDFitter().fit(ux, utx, ut, weights=w)
    for name in ("r", "alpha", "s", "beta"):
        assert m.params_[name] == pytest.approx(peer.params_[name], rel=5e-3)
    peer.params_ = pd.Series(m.params_)
    peer_ll = float(
        lifetimes.ParetoNBDFitter._conditional_log_likelihood(
            tuple(m.params_.values()), x, tx, t
        ).sum()
    )
    assert m.log_likelihood_ == pytest.approx(peer_ll, abs=1e-6)
    np.testing.assert_allclose(
        m.probability_alive(x, tx, t), peer.conditional_probability_alive(x, tx, t), rtol=1e-9
    )
    np.testing.assert_allclose(
        m.conditional_expected_purchases(39, x, tx, t),
        peer.conditional_expected_number_of_purchases_up_to_time(39, x, tx, t),
        rtol=1e-8,
    )
    np.testing.assert_allclose(
        m.expected_purchases([5.0, 39.0]),
        peer.expected_number_of_purchases_up_to_time(np.array([5.0, 39.0])),
        rtol=1e-8,
    )
    # lifetimes has no unconditional Pareto/NBD pmf; the pmf is checked for consistency
    # with E[X(t)] in test_predictions.py


def _unique(*cols: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    frame = pd.DataFrame({f"c{i}": c for i, c in enumerate(cols)})
    counts = frame.value_counts().reset_index()
    return [counts[f"c{i}"].to_numpy() for i in range(len(cols))], counts["count"].to_numpy()


def test_bgbb_agrees(donations: pd.DataFrame) -> None:
    d = donations
    m = BGBB().fit(d["frequency"], d["recency"], d["periods"], d["weights"])
    peer = lifetimes.BetaGeoBetaBinomFitter().fit(
        d["frequency"], d["recency"], d["periods"], weights=d["weights"]
    )
    for name in ("alpha", "beta", "gamma", "delta"):
        assert m.params_[name] == pytest.approx(peer.params_[name], rel=1e-4)
    peer.params_ = pd.Series(m.params_)
    np.testing.assert_allclose(
        m.probability_alive(d["frequency"], d["recency"], d["periods"]),
        peer.conditional_probability_alive(1, d["frequency"], d["recency"], d["periods"]),
        rtol=1e-9,
    )
    np.testing.assert_allclose(
        m.conditional_expected_purchases(5, d["frequency"], d["recency"], d["periods"]),
        peer.conditional_expected_number_of_purchases_up_to_time(
            5, d["frequency"], d["recency"], d["periods"]
        ),
        rtol=1e-9,
    )


def test_gamma_gamma_and_clv_agree(cdnow_split: pd.DataFrame) -> None:
    x, tx, t = _cal(cdnow_split)
    value = cdnow_split["monetary_value_cal"].to_numpy()
    rep = x > 0
    gg = GammaGamma().fit(x[rep], value[rep])
    peer = lifetimes.GammaGammaFitter().fit(x[rep], value[rep])
    assert gg.params_["p"] == pytest.approx(peer.params_["p"], rel=1e-3)
    assert gg.params_["q"] == pytest.approx(peer.params_["q"], rel=1e-3)
    assert gg.params_["gamma"] == pytest.approx(peer.params_["v"], rel=1e-3)
    peer.params_ = pd.Series({"p": gg.params_["p"], "q": gg.params_["q"], "v": gg.params_["gamma"]})
    np.testing.assert_allclose(
        gg.conditional_expected_average_profit(x, value),
        peer.conditional_expected_average_profit(pd.Series(x), pd.Series(value)),
        rtol=1e-10,
    )
    bg = BGNBD().fit(x, tx, t)
    peer_bg = lifetimes.BetaGeoFitter()
    peer_bg.params_ = pd.Series(bg.params_)
    peer_bg.predict = peer_bg.conditional_expected_number_of_purchases_up_to_time
    # lifetimes: 12 months of 4.345 weeks, 1% a month
    theirs = peer.customer_lifetime_value(
        peer_bg,
        pd.Series(x),
        pd.Series(tx),
        pd.Series(t),
        pd.Series(value),
        time=12,
        discount_rate=0.01,
        freq="W",
    )
    ours = customer_lifetime_value(
        bg,
        x,
        tx,
        t,
        gg.conditional_expected_average_profit(x, value),
        horizon=12 * 4.345,
        period=4.345,
        discount_rate=0.01,
    )
    np.testing.assert_allclose(ours, np.asarray(theirs), rtol=1e-8)
