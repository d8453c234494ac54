"""Uplift intervals against hand-computed and published values; signed link tokens."""

from __future__ import annotations

import math

import pytest

from huitouke.errors import InputError
from huitouke.measurement.links import make_link_token, tracked_url, verify_link_token
from huitouke.measurement.stats import diff_proportions, wilson


def test_newcombe_published_examples() -> None:
    # Newcombe (1998), Table II, method 10
    r = diff_proportions(56, 70, 48, 80)
    assert r.diff == pytest.approx(0.2)
    assert (round(r.low, 4), round(r.high, 4)) == (0.0524, 0.3339)
    r = diff_proportions(9, 10, 3, 10)
    assert (round(r.low, 4), round(r.high, 4)) == (0.1705, 0.8090)


def test_wald_by_hand() -> None:
    # 0.2 ± 1.959964·√(0.8·0.2/70 + 0.6·0.4/80)
    half = 1.959964 * math.sqrt(0.8 * 0.2 / 70 + 0.6 * 0.4 / 80)
    r = diff_proportions(56, 70, 48, 80, method="wald")
    assert r.low == pytest.approx(0.2 - half, abs=1e-6) and r.high == pytest.approx(
        0.2 + half, abs=1e-6
    )


def test_wilson_by_hand_and_edges() -> None:
    # x=0, n=10: upper = z²/(n+z²) = 3.8415/13.8415
    lo, hi = wilson(0, 10)
    assert lo == 0 and hi == pytest.approx(3.841459 / 13.841459, abs=1e-6)
    assert diff_proportions(1, 0, 1, 5).diff is None
    r = diff_proportions(0, 3, 0, 4)  # tiny groups still give an interval
    assert r.diff == 0 and r.low < 0 < r.high


def test_link_tokens_round_trip_and_refuse_tampering() -> None:
    claim = dict(
        journey_id="j",
        customer_id="c-1",
        step_id="s",
        occurrence="2026-01-01",
        url="https://shop.example/p/1",
    )
    tok = make_link_token("secret", **claim)
    got = verify_link_token(tok, "secret")
    assert (got.journey_id, got.customer_id, got.url) == ("j", "c-1", "https://shop.example/p/1")
    with pytest.raises(InputError) as info:
        verify_link_token(tok, "other-secret")
    assert info.value.code == "link.invalid"
    # any altered character is refused (the payload is sealed: encrypted and signed)
    for i in range(len(tok)):
        forged = tok[:i] + ("A" if tok[i] != "A" else "B") + tok[i + 1 :]
        with pytest.raises(InputError):
            verify_link_token(forged, "secret")
    with pytest.raises(InputError):
        verify_link_token("garbage", "secret")
    assert tracked_url("http://h:8000/", "secret", **claim).startswith("http://h:8000/r/")
