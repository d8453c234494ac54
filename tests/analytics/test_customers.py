"""Customers (cycle, next expected date, RFM, layers, lifecycle), segments, category cycles and
reminders against the independent reference."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from huitouke.analytics import (
    LAYER_STRATEGY,
    RFM_GRID,
    Analytics,
    LayerWindows,
    LifecycleRules,
)
from huitouke.analytics.segments import layer_of, lifecycle_of, rfm_score, rfm_segment
from huitouke.errors import InputError

from . import reference as ref
from .helpers import lines_table, order, orders_table

COLS = (
    "orders",
    "days_since_last",
    "next_expected_source",
    "r_score",
    "f_score",
    "m_score",
    "rfm_segment",
    "layer",
    "lifecycle",
)


def _nn(values: pd.Series) -> list[object]:
    return [None if v is None or (isinstance(v, float) and np.isnan(v)) else v for v in values]


def assert_customers_equal(got: pd.DataFrame, want: pd.DataFrame) -> None:
    assert list(got["customer_id"]) == list(want["customer_id"])
    for c in COLS:
        diff = (got[c].to_numpy() != want[c].to_numpy()).nonzero()[0]
        assert len(diff) == 0, (
            c,
            got.iloc[diff[:3]].to_dict("records"),
            want.iloc[diff[:3]].to_dict("records"),
        )
    assert list(got["spend"]) == list(want["spend"])
    assert [None if v is None else float(v) for v in got["cycle_days"]] == _nn(want["cycle_days"])
    assert list(got["next_expected_date"]) == _nn(want["next_expected_date"])
    assert list(got["last_order_at"].dt.tz_convert("UTC")) == [
        pd.Timestamp(x) for x in want["last_order_at"]
    ]


@pytest.mark.parametrize("as_of", [date(1997, 9, 30), date(1998, 6, 30), date(1999, 3, 1)])
def test_cdnow_customers_match_reference(
    cdnow: pa.Table, cdnow_pd: pd.DataFrame, as_of: date
) -> None:
    a = Analytics(cdnow, windows=LayerWindows(), timezone="Asia/Shanghai")
    assert_customers_equal(a.customers(as_of), ref.customers(cdnow_pd, "Asia/Shanghai", as_of))


def test_cdnow_customers_zone_and_types(cdnow: pa.Table) -> None:
    got = Analytics(cdnow, windows=LayerWindows(), timezone="Asia/Shanghai").customers(
        date(1998, 6, 30)
    )
    assert len(got) == 23_570
    assert str(got["first_order_at"].dt.tz) == "Asia/Shanghai"
    # CDNOW dates are merchant-zone dates: midnight local
    assert (got["first_order_at"].dt.hour == 0).all()
    assert isinstance(got["spend"].iloc[0], Decimal)
    assert set(got["r_score"]) == {1, 2, 3, 4, 5}


def test_as_of_datetime_cuts_by_the_instant(cdnow: pa.Table) -> None:
    a = Analytics(cdnow, windows=LayerWindows(), timezone="Asia/Shanghai")
    by_day = a.customers(date(1997, 3, 31))
    # Orders at or before the instant count: 23:59:59 local on Mar 31 takes every Mar 31
    # order (CDNOW orders are at local midnight); 23:59 on Mar 30 leaves Mar 31's out.
    at = datetime(1997, 3, 31, 23, 59, 59, tzinfo=UTC) - timedelta(hours=8)
    by_instant = a.customers(at)
    assert by_instant["orders"].sum() == by_day["orders"].sum()
    earlier = a.customers(datetime(1997, 3, 30, 23, 59, tzinfo=UTC) - timedelta(hours=8))
    assert earlier["orders"].sum() < by_day["orders"].sum()
    with pytest.raises(InputError):
        a.customers(datetime(1997, 4, 1))  # naive


def _random_shop(seed: int, n_customers: int = 300) -> tuple[pa.Table, pa.Table]:
    rng = np.random.default_rng(seed)
    rows, lines = [], []
    oid = itertools.count(1)
    cats = ["coffee", "tea", "cups", None]
    for c in range(n_customers):
        n = int(rng.geometric(0.45))
        day = date(2023, 1, 1) + timedelta(days=int(rng.integers(0, 500)))
        for _ in range(n):
            i = next(oid)
            status = rng.choice(
                ["paid", "paid", "paid", "partially_refunded", "refunded", "cancelled"]
            )
            amount = Decimal(int(rng.integers(1, 500)))
            refunded = {"partially_refunded": amount / 2, "refunded": amount}.get(
                str(status), Decimal(0)
            )
            hour = int(rng.integers(0, 24))
            rows.append(
                order(
                    f"o{i:05d}",
                    f"c{c:04d}",
                    f"{day} {hour:02d}:{int(rng.integers(0, 60)):02d}",
                    amount,
                    status=str(status),
                    refunded=refunded,
                )
            )
            for k in range(int(rng.integers(1, 3))):
                lines.append((f"o{i:05d}", f"sku{k}", cats[int(rng.integers(0, 4))]))
            day += timedelta(days=int(rng.choice([0, 3, 10, 30, 61, 120])))
    return orders_table(rows), lines_table(lines)


@pytest.mark.parametrize("seed", [1, 2])
def test_generated_shop_with_lines_matches_reference(seed: int) -> None:
    orders, lines = _random_shop(seed)
    pdf, ldf = orders.to_pandas(), lines.to_pandas()
    a = Analytics(orders, lines=lines, windows=LayerWindows(), timezone="Asia/Shanghai")
    for as_of in (date(2023, 9, 1), date(2024, 6, 1)):
        got = a.customers(as_of)
        want = ref.customers(pdf, "Asia/Shanghai", as_of, lines=ldf)
        assert_customers_equal(got, want)
        assert list(got["main_category"]) == [
            None if pd.isna(x) else x for x in want["main_category"]
        ]
        assert {"own", "category"} <= set(got["next_expected_source"])
    cyc = a.category_cycles()
    want_c = ref.category_cycles(pdf, ldf, "Asia/Shanghai")
    assert sorted(cyc["category"]) == sorted(want_c)
    for r in cyc.to_dict("records"):
        assert (r["median_days"], r["n_gaps"]) == want_c[r["category"]]


def test_as_of_datetime_with_lines() -> None:
    """An instant as as_of with order lines: the category history is cut at the instant too
    (the category step carries each order's instant; it once lacked it and failed)."""
    orders, lines = _random_shop(3, n_customers=120)
    a = Analytics(orders, lines=lines, windows=LayerWindows(), timezone="Asia/Shanghai")
    # 23:59:59.999999 local on the day: every order of that day is in, as with the date
    end_of_day = datetime(2024, 6, 1, 16, tzinfo=UTC) - timedelta(microseconds=1)
    by_instant = a.customers(end_of_day)
    by_day = a.customers(date(2024, 6, 1))
    cols = ["customer_id", "orders", "main_category", "next_expected_date", "next_expected_source"]
    pd.testing.assert_frame_equal(by_instant[cols], by_day[cols])
    assert by_instant["main_category"].notna().any()
    cycles = a.category_cycles(end_of_day)
    pd.testing.assert_frame_equal(cycles, a.category_cycles(date(2024, 6, 1)))


def test_next_expected_date_sources() -> None:
    t = orders_table(
        [
            order("1", "a", "2024-01-01"),
            order("2", "a", "2024-01-11"),
            order("3", "a", "2024-01-31"),
            order("4", "b", "2024-01-20"),  # buys tea, whose cycle is 30 days (from c)
            order("5", "c", "2024-01-01"),
            order("6", "c", "2024-01-31"),
            order("7", "d", "2024-01-25"),  # no category → shop-wide
        ]
    )
    lines = lines_table(
        [
            ("1", "x", "coffee"),
            ("2", "x", "coffee"),
            ("3", "x", "coffee"),
            ("4", "t", "tea"),
            ("5", "t", "tea"),
            ("6", "t", "tea"),
            ("7", "z", None),
        ]
    )
    got = (
        Analytics(t, lines=lines, timezone="Asia/Shanghai")
        .customers(date(2024, 2, 1))
        .set_index("customer_id")
    )
    # a: gaps 10 and 20 → median 15 → Jan 31 + 15
    assert got.loc["a", "cycle_days"] == 15.0 and got.loc["a", "next_expected_date"] == date(
        2024, 2, 15
    )
    assert got.loc["b", "next_expected_source"] == "category" and got.loc[
        "b", "next_expected_date"
    ] == date(2024, 2, 19)
    # shop-wide: gaps 10, 20, 30 → 20
    assert got.loc["d", "next_expected_source"] == "shop" and got.loc[
        "d", "next_expected_date"
    ] == date(2024, 2, 14)
    # without lines, b falls back to the shop-wide cycle
    no_lines = (
        Analytics(t, timezone="Asia/Shanghai").customers(date(2024, 2, 1)).set_index("customer_id")
    )
    assert (
        no_lines.loc["b", "next_expected_source"] == "shop"
        and no_lines.loc["b", "main_category"] is None
    )
    due = Analytics(t, lines=lines, timezone="Asia/Shanghai").due_for_reminder(
        date(2024, 2, 10), days=7
    )
    assert list(due["customer_id"]) == ["d", "a"]  # Feb 14, Feb 15; b (Feb 19) is outside
    with pytest.raises(InputError):
        Analytics(t, timezone="Asia/Shanghai").category_cycles()


def test_layer_windows_and_strategy_table() -> None:
    t = orders_table(
        [
            order("1", "new", "2024-05-17"),  # 45 days before Jul 1 → still new
            order("2", "act", "2024-01-01"),
            order("3", "act", "2024-06-30"),
            order("4", "cool", "2024-04-02"),  # 90 days → cooling
            order("5", "high", "2024-01-03"),  # 180 days → high win-back
            order("6", "low", "2023-07-07"),  # 360 days → low win-back
            order("7", "lost", "2023-07-06"),  # 361 days → lost
        ]
    )
    a = Analytics(t, windows=LayerWindows(), timezone="Asia/Shanghai")
    got = a.customers(date(2024, 7, 1)).set_index("customer_id")["layer"].to_dict()
    assert got == {
        "new": "new",
        "act": "active",
        "cool": "cooling",
        "high": "high_winback",
        "low": "low_winback",
        "lost": "lost",
    }
    seg = a.segments(date(2024, 7, 1))
    # the SQL summary and the summary of a given customers frame agree
    via_frame = a.segments(date(2024, 7, 1), customers=a.customers(date(2024, 7, 1)))
    for part in ("rfm", "layers"):
        assert seg[part].equals(via_frame[part])
    layers = seg["layers"].set_index("layer")
    assert list(layers["customers"]) == [1, 1, 1, 1, 1, 1]
    assert layers.loc["new", "strategy_zh"] == LAYER_STRATEGY["new"]["zh"]
    assert "second order" in layers.loc["new", "strategy_en"]
    assert layers["share"].sum() == pytest.approx(1.0)
    assert seg["rfm"]["customers"].sum() == 6
    assert seg["rfm"]["revenue"].sum() == Decimal(70)
    # windows are configurable
    narrow = a.customers(date(2024, 7, 1), windows=LayerWindows(10, 20, 30, 40))
    assert set(narrow["layer"]) == {"active", "lost"}
    with pytest.raises(InputError):
        LayerWindows(50, 40, 180, 360)


def test_lifecycle_and_p_alive() -> None:
    rows = [order(f"m{i}", "mature", f"2024-0{i + 1}-01") for i in range(5)]
    rows += [order("g1", "grow", "2024-05-01"), order("g2", "grow", "2024-05-21")]
    rows += [
        order("d1", "decl", "2024-01-01"),
        order("d2", "decl", "2024-01-11"),
    ]  # cycle 10, 172 days ago
    rows += [order("n1", "acq", "2024-06-10")]
    t = orders_table(rows)
    a = Analytics(t, windows=LayerWindows(), timezone="Asia/Shanghai")
    got = a.customers(date(2024, 6, 21)).set_index("customer_id")["lifecycle"].to_dict()
    assert got == {"mature": "maturity", "grow": "growth", "decl": "decline", "acq": "acquisition"}
    p = pd.Series({"mature": 0.05, "grow": 0.3, "acq": 0.9})
    got = a.customers(date(2024, 6, 21), p_alive=p).set_index("customer_id")
    assert got["lifecycle"].to_dict() == {
        "mature": "lost",
        "grow": "decline",
        "decl": "decline",
        "acq": "acquisition",
    }
    assert got.loc["decl", "p_alive"] is None and got.loc["acq", "p_alive"] == 0.9


# --- the pure rules and their SQL agree -------------------------------------------------------------


def test_rfm_grid_is_complete_and_matches_the_documented_map() -> None:
    assert len(RFM_GRID) == 25
    for r, f in itertools.product(range(1, 6), range(1, 6)):
        assert rfm_segment(r, f) == ref.rf_name(r, f)
    assert [rfm_score(k, 10) for k in range(1, 11)] == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]


def test_sql_rules_equal_the_pure_rules() -> None:
    """Every (orders, days, cycle) combination around the boundaries through the SQL engine
    against :func:`layer_of` and :func:`lifecycle_of`."""
    as_of = date(2025, 1, 1)
    w = LayerWindows()
    rows, expect = [], {}
    i = 0
    for n in (1, 2, 5):
        for days in (0, 44, 45, 46, 89, 90, 91, 179, 180, 181, 359, 360, 361, 700):
            for gap in (0, 7, 40):
                i += 1
                cid = f"c{i}"
                last = as_of - timedelta(days=days)
                for k in range(n):
                    rows.append(order(f"{cid}-{k}", cid, last - timedelta(days=gap * (n - 1 - k))))
                cycle = None if n == 1 else float(gap)
                expect[cid] = (layer_of(n, days, w), cycle)
    t = orders_table(rows)
    got = (
        Analytics(t, windows=w, timezone="Asia/Shanghai").customers(as_of).set_index("customer_id")
    )
    for cid, (layer, cycle) in expect.items():
        row = got.loc[cid]
        assert row["layer"] == layer, cid
        used = row["used_cycle"]
        assert row["lifecycle"] == lifecycle_of(
            int(row["orders"]), int(row["days_since_last"]), used, w, LifecycleRules()
        ), cid
        assert row["cycle_days"] == cycle
