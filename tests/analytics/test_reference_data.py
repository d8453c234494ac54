"""Every period metric, cohort and ladder figure against the independent reference
(tests/analytics/reference.py) on CDNOW and Online Retail."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest

from huitouke.analytics import Analytics

from . import reference as ref

EXACT = (
    "buyers",
    "orders",
    "returning_buyers",
    "new_buyers",
    "multi_buyers",
    "repeat_orders",
    "buyback_buyers",
)
RATES = (
    "customer_repurchase_rate",
    "in_period_repurchase_rate",
    "order_repurchase_rate",
    "buyback_rate",
    "returning_revenue_share",
)


def assert_periods_equal(got: pd.DataFrame, want: list[dict[str, Any]]) -> None:
    assert list(got["period"]) == [w["period"] for w in want]
    for g, w in zip(got.to_dict("records"), want, strict=True):
        where = g["period"]
        for c in EXACT:
            gv = None if pd.isna(g[c]) else int(g[c])
            assert gv == w[c], (where, c, gv, w[c])
        assert g["revenue"] == w["revenue"], (where, "revenue")
        assert isinstance(g["revenue"], Decimal)
        assert g["returning_revenue"] == w["returning_revenue"], (where, "returning_revenue")
        for c in RATES:
            if w[c] is None:
                assert g[c] is None, (where, c, g[c])
            else:
                assert g[c] == pytest.approx(w[c], rel=1e-12, abs=0), (where, c)
        assert bool(g["complete"]) == w["complete"], (where, "complete")
        assert g["buyback_null_reason"] == w["buyback_null_reason"], (where, "reason")
        if w["aov"] is None:
            assert g["aov"] is None
        else:
            assert abs(g["aov"] - w["aov"]) <= Decimal("0.00005"), (where, "aov")


@pytest.mark.parametrize("period", ["day", "week", "month", "quarter", "year"])
def test_cdnow_period_metrics_match_reference(
    cdnow: pa.Table, cdnow_pd: pd.DataFrame, period: str
) -> None:
    a = Analytics(cdnow, timezone="Asia/Shanghai")
    assert_periods_equal(
        a.period_metrics(period), ref.period_metrics(cdnow_pd, "Asia/Shanghai", period)
    )


@pytest.mark.parametrize(
    ("period", "cut"),
    [("month", date(1998, 1, 19)), ("week", date(1998, 1, 19)), ("quarter", date(1998, 2, 28))],
)
def test_cdnow_cut_mid_period_matches_reference(
    cdnow: pa.Table, cdnow_pd: pd.DataFrame, period: str, cut: date
) -> None:
    """An export that ends inside a period: that period is incomplete, and the buy-back rate
    of the period before it is unknown — never a drop."""
    a = Analytics(cdnow, timezone="Asia/Shanghai").until(cut)
    local = pd.to_datetime(cdnow_pd["ordered_at"], utc=True).dt.tz_convert("Asia/Shanghai")
    want = ref.period_metrics(
        cdnow_pd[local.dt.date <= cut], "Asia/Shanghai", period, coverage_end=cut
    )
    got = a.period_metrics(period)
    assert_periods_equal(got, want)
    assert not got["complete"].iloc[-1] and got["complete"].iloc[:-1].all()
    assert got["buyback_null_reason"].iloc[-2] == "next_period_incomplete"


def test_cdnow_coverage_past_the_last_order_matches_reference(
    cdnow: pa.Table, cdnow_pd: pd.DataFrame
) -> None:
    """Data said to cover July 1998 (an --as-of after the last order): June's buy-back is
    known, and is 0 — nobody bought in July."""
    a = Analytics(cdnow, timezone="Asia/Shanghai", coverage_end=date(1998, 7, 31))
    got = a.period_metrics("month")
    want = ref.period_metrics(cdnow_pd, "Asia/Shanghai", "month", coverage_end=date(1998, 7, 31))
    assert_periods_equal(got, want)
    assert got["buyback_rate"].iloc[-1] == 0.0 and got["complete"].all()


def test_cdnow_merge_same_day_matches_reference(cdnow: pa.Table, cdnow_pd: pd.DataFrame) -> None:
    a = Analytics(cdnow, timezone="Asia/Shanghai", merge_same_day=True)
    got = a.period_metrics("month")
    assert_periods_equal(
        got, ref.period_metrics(cdnow_pd, "Asia/Shanghai", "month", merge_same_day=True)
    )
    # CDNOW has same-day rows (one row per transaction), so merging must change the counts.
    plain = Analytics(cdnow, timezone="Asia/Shanghai").period_metrics("month")
    assert got["orders"].sum() < plain["orders"].sum()


def test_cdnow_known_totals(cdnow: pa.Table) -> None:
    """The data set's published size: 69,659 transactions of 23,570 customers."""
    pm = Analytics(cdnow, timezone="Asia/Shanghai").period_metrics("month")
    assert pm["orders"].sum() == 69_659
    assert pm["new_buyers"].sum() == 23_570
    assert pm["period"].iloc[0] == "1997-01" and pm["period"].iloc[-1] == "1998-06"


def test_cdnow_range_metrics_match_reference(cdnow: pa.Table, cdnow_pd: pd.DataFrame) -> None:
    a = Analytics(cdnow, timezone="Asia/Shanghai")
    for start, end in [
        (date(1997, 2, 10), date(1997, 5, 3)),
        (date(1998, 4, 1), date(1998, 6, 30)),
    ]:
        got = a.range_metrics(start, end).iloc[0]
        want = ref.range_metrics(cdnow_pd, "Asia/Shanghai", start, end)
        assert got["period"] == f"{start}..{end}"
        for c in ("buyers", "orders", "returning_buyers", "complete"):
            assert got[c] == want[c], c
        if want["buyback_rate"] is None:
            assert got["buyback_rate"] is None
        else:
            assert got["buyback_rate"] == pytest.approx(want["buyback_rate"], rel=1e-12)


def test_cdnow_cohorts_match_reference(cdnow: pa.Table, cdnow_pd: pd.DataFrame) -> None:
    a = Analytics(cdnow, timezone="Asia/Shanghai")
    cust, share, rev = ref.cohorts(cdnow_pd, "Asia/Shanghai")
    got_c, got_s, got_r = a.cohorts("customers"), a.cohorts("share"), a.cohorts("revenue")
    assert list(got_c.index) == list(cust.index)
    last = 1998 * 12 + 5  # June 1998, the last month of data
    for cohort in cust.index:
        y, m = map(int, cohort.split("-"))
        for k in got_c.columns:
            g = got_c.loc[cohort, k]
            if y * 12 + m - 1 + k > last:
                assert g is None and got_s.loc[cohort, k] is None, (cohort, k)
                continue
            if k not in cust.columns:
                assert g == 0
                continue
            assert g == cust.loc[cohort, k], (cohort, k)
            assert got_s.loc[cohort, k] == pytest.approx(share.loc[cohort, k], rel=1e-12)
            want_rev = rev.loc[cohort, k]
            assert got_r.loc[cohort, k] == (Decimal(0) if pd.isna(want_rev) else want_rev)
    # CDNOW is one acquisition cohort (first orders in 1997-01..03) followed for 18 months:
    # the triangle ends for the 1997-03 cohort at k = 15 (June 1998).
    assert list(got_c.index) == ["1997-01", "1997-02", "1997-03"]
    assert got_c.loc["1997-03", 15] > 0 and got_c.loc["1997-03", 16] is None
    assert sum(got_c[0]) == 23_570


def test_cdnow_ladder_matches_reference(cdnow: pa.Table, cdnow_pd: pd.DataFrame) -> None:
    got = Analytics(cdnow, timezone="Asia/Shanghai").ladder(5).to_dict("records")
    want = ref.ladder(cdnow_pd, "Asia/Shanghai", 5)
    for g, w in zip(got, want, strict=True):
        assert (g["k"], g["reached_k"], g["reached_k_plus_1"]) == (
            w["k"],
            w["reached_k"],
            w["reached_k_plus_1"],
        )
        assert g["share"] == pytest.approx(w["share"], rel=1e-12)
        assert g["median_days"] == pytest.approx(w["median_days"])
    assert got[0]["reached_k"] == 23_570


@pytest.mark.parametrize("period", ["week", "month", "quarter"])
def test_online_retail_period_metrics_match_reference(online_retail: pa.Table, period: str) -> None:
    a = Analytics(online_retail, timezone="Europe/London")
    want = ref.period_metrics(online_retail.to_pandas(), "Europe/London", period)
    assert_periods_equal(a.period_metrics(period), want)


def test_online_retail_ladder_and_cohorts(online_retail: pa.Table) -> None:
    pdf = online_retail.to_pandas()
    a = Analytics(online_retail, timezone="Europe/London")
    for g, w in zip(a.ladder().to_dict("records"), ref.ladder(pdf, "Europe/London"), strict=True):
        assert g["reached_k_plus_1"] == w["reached_k_plus_1"]
        assert g["median_days"] == pytest.approx(w["median_days"])
    cust, _, _ = ref.cohorts(pdf, "Europe/London")
    got = a.cohorts("customers")
    assert [got.loc[c, 0] for c in cust.index] == list(cust[0])
    assert got.loc[:, 0].sum() == 4338  # the data set's customers
