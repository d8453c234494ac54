"""Association rules against an independent pair count, planted associations, hit rate."""

from __future__ import annotations

from datetime import datetime
from itertools import permutations

import pandas as pd
import pytest

from huitouke.journeys.associations import (
    Recommender,
    evaluate_hit_rate,
    mine_rules,
    synthetic_baskets,
)

SMALL = pd.DataFrame(
    [
        ("o1", "a", "2025-01-01", "milk"),
        ("o1", "a", "2025-01-01", "bread"),
        ("o2", "a", "2025-02-01", "butter"),
        ("o3", "b", "2025-01-05", "milk"),
        ("o3", "b", "2025-01-05", "bread"),
        ("o4", "b", "2025-03-01", "butter"),
        ("o4", "b", "2025-03-01", "milk"),
        ("o5", "c", "2025-01-09", "tea"),
    ],
    columns=["order_id", "customer_id", "ordered_at", "item"],
)


def test_basket_rules_match_a_plain_pair_count() -> None:
    rules = mine_rules(SMALL, kind="basket", min_count=1).set_index(["antecedent", "consequent"])
    orders = SMALL.groupby("order_id")["item"].apply(set)
    n = len(orders)
    for a, b in permutations(sorted(SMALL["item"].unique()), 2):
        both = sum(1 for s in orders if a in s and b in s)
        if both == 0:
            assert (a, b) not in rules.index
            continue
        with_a = sum(1 for s in orders if a in s)
        with_b = sum(1 for s in orders if b in s)
        r = rules.loc[(a, b)]
        assert r["count"] == both
        assert r["support"] == pytest.approx(both / n)
        assert r["confidence"] == pytest.approx(both / with_a)
        assert r["lift"] == pytest.approx((both / with_a) / (with_b / n))


def test_sequence_rules_count_next_orders() -> None:
    rules = mine_rules(SMALL, kind="sequence", min_count=1).set_index(["antecedent", "consequent"])
    # transitions: o1→o2 (a), o3→o4 (b): bread→butter twice, milk→butter twice, milk→milk once
    assert rules.loc[("bread", "butter"), "count"] == 2
    assert rules.loc[("milk", "butter"), "confidence"] == pytest.approx(1.0)
    assert rules.loc[("milk", "milk"), "count"] == 1
    assert ("butter", "milk") not in rules.index  # order matters
    assert rules.loc[("bread", "butter"), "support"] == pytest.approx(2 / 2)


def test_planted_associations_are_found_with_high_lift() -> None:
    b = synthetic_baskets(customers=1500)
    basket = mine_rules(b, kind="basket", min_count=20).set_index(["antecedent", "consequent"])
    seq = mine_rules(b, kind="sequence", min_count=20).set_index(["antecedent", "consequent"])
    for a, c in (("sku001", "sku002"), ("sku010", "sku011"), ("sku020", "sku021")):
        assert basket.loc[(a, c), "lift"] > 2.5 and basket.loc[(a, c), "confidence"] > 0.5
    for a, c in (("sku030", "sku031"), ("sku040", "sku041"), ("sku050", "sku051")):
        assert seq.loc[(a, c), "lift"] > 2.5 and seq.loc[(a, c), "confidence"] > 0.4
    # an unplanted pair of popular items has lift near 1
    assert basket.loc[("sku000", "sku003"), "lift"] < 2


def test_recommender_prefers_rules_and_beats_popularity_on_held_out_orders() -> None:
    b = synthetic_baskets()
    rec = Recommender.fit(b, kind="sequence", min_count=5)
    assert rec.recommend(["sku040"], k=1) == ["sku041"]
    assert rec.recommend([], k=2) == rec.popular[:2]
    res = evaluate_hit_rate(b, datetime(2025, 7, 1), k=3)
    assert res["cases"] > 500
    assert res["hit_rate_rules"] > res["hit_rate_popular"] + 0.02
