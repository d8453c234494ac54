"""Generated edge cases: refunds, cancellations, duplicates, same-day orders, month ends in the
merchant's zone, one-order customers, empty periods and the seed's worked example."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from huitouke.analytics import Analytics
from huitouke.errors import InputError

from . import reference as ref
from .helpers import order, orders_table
from .test_reference_data import assert_periods_equal


def test_seed_example_order_repurchase_rate_is_30_percent() -> None:
    """BRIEF: 100 orders, 20 customers bought a second time, 10 of them a third → 30%."""
    rows = []
    n = 0

    def add(cust: str, times: int) -> None:
        nonlocal n
        for i in range(times):
            n += 1
            rows.append(order(f"o{n:03d}", cust, f"2024-03-{i + 1:02d} 12:00"))

    for c in range(50):
        add(f"single{c}", 1)
    for c in range(10):
        add(f"twice{c}", 2)
    for c in range(10):
        add(f"thrice{c}", 3)
    t = orders_table(rows)
    assert t.num_rows == 100
    m = Analytics(t, timezone="Asia/Shanghai").period_metrics("month").iloc[0]
    assert (m["orders"], m["buyers"], m["repeat_orders"]) == (100, 70, 30)
    assert m["order_repurchase_rate"] == pytest.approx(0.30)
    assert m["in_period_repurchase_rate"] == pytest.approx(20 / 70)
    # Everyone's first order ever is in March, but 20 made a non-first order in March.
    assert m["customer_repurchase_rate"] == pytest.approx(20 / 70)
    assert m["new_buyers"] == 70


def test_refunds_and_cancellations() -> None:
    t = orders_table(
        [
            order("a1", "a", "2024-01-05 10:00", "100", status="refunded", refunded="100"),
            order("a2", "a", "2024-01-06 10:00", "80", status="partially_refunded", refunded="30"),
            order("b1", "b", "2024-01-07 10:00", "40", status="cancelled"),
            order("b2", "b", "2024-02-07 10:00", "60"),
            order("a3", "a", "2024-02-08 10:00", "20"),
        ]
    )
    jan, feb = Analytics(t, timezone="Asia/Shanghai").period_metrics("month").to_dict("records")
    # Only a2 counts in January, with revenue 80 − 30.
    assert (jan["buyers"], jan["orders"], jan["revenue"]) == (1, 1, Decimal("50"))
    assert jan["returning_buyers"] == 0  # a's refunded order was not a counted first order
    # February: b's cancelled order does not make b2 a repeat; a3 is a's second counted order.
    assert (feb["buyers"], feb["orders"], feb["returning_buyers"]) == (2, 2, 1)
    assert feb["returning_revenue"] == Decimal("20")
    assert feb["returning_revenue_share"] == pytest.approx(20 / 80)
    # The data end on 8 February: February is partial, so January's buy-back is not known…
    assert feb["complete"] is False and jan["complete"] is True
    assert jan["buyback_rate"] is None
    assert jan["buyback_null_reason"] == "next_period_incomplete"
    # …until the data are said to cover February.
    jan, feb = (
        Analytics(t, timezone="Asia/Shanghai", coverage_end=date(2024, 2, 29))
        .period_metrics("month")
        .to_dict("records")
    )
    assert jan["buyback_rate"] == 1.0 and feb["buyback_rate"] is None
    assert feb["complete"] is True and jan["buyback_null_reason"] is None


def test_duplicate_order_ids_are_refused() -> None:
    t = orders_table([order("x", "a", "2024-01-01"), order("x", "a", "2024-01-01")])
    with pytest.raises(InputError) as err:
        Analytics(t, timezone="Asia/Shanghai")
    assert err.value.code == "input.duplicate_order_id"
    assert err.value.details["duplicates"] == ["x"]


def test_several_orders_on_one_day_and_merging() -> None:
    rows = [
        order("1", "a", "2024-05-01 09:00", "10"),
        order("2", "a", "2024-05-01 18:00", "15"),
        order("3", "a", "2024-05-01 23:59", "5", status="cancelled"),
        order("4", "b", "2024-05-02 10:00", "7"),
    ]
    plain = Analytics(orders_table(rows), timezone="Asia/Shanghai").period_metrics("day")
    assert list(plain["orders"]) == [2, 1]
    assert plain.iloc[0]["customer_repurchase_rate"] == 1.0  # a's 2nd order is a repeat
    merged = Analytics(
        orders_table(rows), merge_same_day=True, timezone="Asia/Shanghai"
    ).period_metrics("day")
    assert list(merged["orders"]) == [1, 1]
    assert merged.iloc[0]["revenue"] == Decimal("25")
    assert merged.iloc[0]["customer_repurchase_rate"] == 0.0


@pytest.mark.parametrize(
    ("zone", "late", "early"),
    [
        # 23:59 on Jan 31 and 00:00 on Feb 1 in Shanghai are both Jan 31 in UTC.
        ("Asia/Shanghai", "2024-01-31 23:59", "2024-02-01 00:00"),
        # New York: 00:00 Feb 1 local is 05:00 UTC; 23:59 Jan 31 local is Feb 1 04:59 UTC.
        ("America/New_York", "2024-01-31 23:59", "2024-02-01 00:00"),
    ],
)
def test_month_ends_cut_in_the_merchant_zone(zone: str, late: str, early: str) -> None:
    t = orders_table(
        [order("1", "a", late, "10", zone=zone), order("2", "b", early, "20", zone=zone)]
    )
    jan, feb = Analytics(t, timezone=zone).period_metrics("month").to_dict("records")
    assert (jan["period"], jan["orders"], jan["revenue"]) == ("2024-01", 1, Decimal("10"))
    assert (feb["period"], feb["orders"], feb["revenue"]) == ("2024-02", 1, Decimal("20"))
    # Cut in UTC instead, both would fall in one month for one of the zones:
    utc = Analytics(t, timezone="UTC").period_metrics("month")
    assert list(utc["orders"]) != [1, 1] or zone == "UTC"


def test_dst_day_boundaries() -> None:
    """Europe/London: 00:30 local on the day clocks go forward is still that day."""
    t = orders_table(
        [
            order("1", "a", "2024-03-31 00:30", zone="Europe/London"),
            order("2", "a", "2024-03-31 23:30", zone="Europe/London"),
            order("3", "a", "2024-10-27 01:30", zone="Europe/London"),
        ]
    )
    d = Analytics(t, timezone="Europe/London").period_metrics("day")
    by = dict(zip(d["period"], d["orders"], strict=True))
    assert by["2024-03-31"] == 2 and by["2024-10-27"] == 1 and by["2024-04-01"] == 0


def test_empty_periods_have_zeros_and_undefined_rates() -> None:
    t = orders_table([order("1", "a", "2024-01-10"), order("2", "a", "2024-04-10")])
    rows = Analytics(t, timezone="Asia/Shanghai").period_metrics("month").to_dict("records")
    assert [r["period"] for r in rows] == ["2024-01", "2024-02", "2024-03", "2024-04"]
    feb = rows[1]
    assert (feb["buyers"], feb["orders"], feb["revenue"], feb["aov"]) == (0, 0, Decimal(0), None)
    for c in (
        "customer_repurchase_rate",
        "order_repurchase_rate",
        "buyback_rate",
        "returning_revenue_share",
    ):
        assert feb[c] is None
    assert rows[0]["buyback_rate"] == 0.0  # January's buyer did not buy in (empty) February
    assert rows[3]["customer_repurchase_rate"] == 1.0
    assert rows[3]["buyback_rate"] is None  # the last period


def test_start_end_restrict_the_periods_but_not_the_history() -> None:
    t = orders_table(
        [
            order("1", "a", "2024-01-10"),
            order("2", "a", "2024-03-10"),
            order("3", "a", "2024-04-10"),
            order("4", "a", "2024-05-10"),
        ]
    )
    rows = (
        Analytics(t, timezone="Asia/Shanghai")
        .period_metrics("month", start=date(2024, 3, 1), end=date(2024, 4, 30))
        .to_dict("records")
    )
    assert [r["period"] for r in rows] == ["2024-03", "2024-04"]
    assert rows[0]["returning_buyers"] == 1  # January's order is history
    # May is in the data but not all of it (the data end on 10 May)
    assert rows[1]["buyback_rate"] is None
    assert rows[1]["buyback_null_reason"] == "next_period_incomplete"
    rows = (
        Analytics(t, timezone="Asia/Shanghai", coverage_end=date(2024, 5, 31))
        .period_metrics("month", start=date(2024, 3, 1), end=date(2024, 4, 30))
        .to_dict("records")
    )
    assert rows[1]["buyback_rate"] == 1.0  # all of May is covered: April's buy-back is known


def test_period_labels() -> None:
    t = orders_table([order("1", "a", "2024-12-30 10:00"), order("2", "a", "2025-01-02 10:00")])
    a = Analytics(t, timezone="Asia/Shanghai")
    assert list(a.period_metrics("week")["period"]) == ["2025-W01"]
    assert list(a.period_metrics("quarter")["period"]) == ["2024-Q4", "2025-Q1"]
    assert list(a.period_metrics("year")["period"]) == ["2024", "2025"]
    assert list(a.period_metrics("day")["period"])[:2] == ["2024-12-30", "2024-12-31"]
    with pytest.raises(InputError):
        a.period_metrics("fortnight")


def test_one_order_customers_and_no_orders() -> None:
    t = orders_table([order("1", "a", "2024-01-10"), order("2", "b", "2024-01-11")])
    m = Analytics(t, timezone="Asia/Shanghai").period_metrics("month").iloc[0]
    assert (m["customer_repurchase_rate"], m["order_repurchase_rate"]) == (0.0, 0.0)
    empty = orders_table([order("1", "a", "2024-01-10", status="cancelled")])
    a = Analytics(empty, timezone="Asia/Shanghai")
    assert a.period_metrics("month").empty
    assert a.metrics_json()["periods"] == []
    assert a.customers(date(2024, 2, 1)).empty


def test_mixed_currencies_need_a_choice() -> None:
    t = orders_table(
        [
            order("1", "a", "2024-01-10", currency="CNY"),
            order("2", "a", "2024-01-11", "5", currency="USD"),
        ]
    )
    with pytest.raises(InputError) as err:
        Analytics(t, timezone="Asia/Shanghai")
    assert err.value.code == "input.mixed_currency"
    usd = Analytics(t, currency="USD", timezone="Asia/Shanghai").period_metrics("month").iloc[0]
    assert (usd["orders"], usd["revenue"], usd["returning_buyers"]) == (1, Decimal("5"), 0)


def test_bad_input_is_named() -> None:
    t = orders_table([order("1", "a", "2024-01-10")])
    with pytest.raises(InputError) as err:
        Analytics(t.drop_columns(["status"]), timezone="Asia/Shanghai")
    assert "status" in str(err.value)
    with pytest.raises(InputError):
        Analytics(t, timezone="Mars/Olympus")
    bad = t.set_column(5, "status", __import__("pyarrow").array(["shipped"]))
    with pytest.raises(InputError) as err:
        Analytics(bad, timezone="Asia/Shanghai")
    assert err.value.code == "input.bad_status"


def test_metrics_json_contract() -> None:
    t = orders_table(
        [
            order("1", "a", "2024-01-10", "10.005"),
            order("2", "a", "2024-02-10", "20"),
            order("3", "b", "2024-02-11", "1.50"),
        ]
    )
    body = Analytics(t, timezone="Asia/Shanghai", coverage_end=date(2024, 2, 29)).metrics_json(
        "month"
    )
    import json

    json.dumps(body)  # plain JSON types only
    jan, feb = body["periods"]
    required = {
        "period",
        "buyers",
        "orders",
        "revenue",
        "returning_buyers",
        "customer_repurchase_rate",
        "in_period_repurchase_rate",
        "order_repurchase_rate",
        "buyback_rate",
        "returning_revenue_share",
        "aov",
        "complete",
        "buyback_null_reason",
    }
    assert required <= set(jan)
    assert body["coverage_end"] == "2024-02-29"
    assert (jan["complete"], feb["complete"]) == (True, True)
    assert feb["buyback_null_reason"] == "next_period_incomplete"
    assert jan["revenue"] == 10.0 and feb["revenue"] == 21.5  # rounded half-even to cents
    assert jan["buyback_rate"] == 1.0 and feb["buyback_rate"] is None
    assert feb["customer_repurchase_rate"] == 0.5
    assert feb["aov"] == 10.75


def test_edge_mix_matches_reference() -> None:
    rows = [
        order("1", "a", "2024-01-31 23:59", "10"),
        order("2", "a", "2024-02-01 00:00", "11"),
        order("3", "b", "2024-02-01 00:00", "12", status="partially_refunded", refunded="2"),
        order("4", "c", "2024-02-02", "13", status="refunded", refunded="13"),
        order("5", "c", "2024-04-02", "14"),
        order("6", "b", "2024-04-02 08:00", "15"),
        order("7", "b", "2024-04-02 08:00", "16"),
        order("8", "d", "2024-04-03", "0"),
    ]
    t = orders_table(rows)
    for kind in ("day", "week", "month"):
        for merge in (False, True):
            got = Analytics(t, merge_same_day=merge, timezone="Asia/Shanghai").period_metrics(kind)
            assert_periods_equal(
                got, ref.period_metrics(t.to_pandas(), "Asia/Shanghai", kind, merge)
            )


def test_revenue_decomposition_identity() -> None:
    t = orders_table(
        [
            order("1", "a", "2024-01-10", "10"),
            order("2", "a", "2024-01-11", "20.5"),
            order("3", "b", "2024-01-12", "7"),
            order("4", "b", "2024-03-12", "3", status="partially_refunded", refunded="1"),
        ]
    )
    a = Analytics(t, timezone="Asia/Shanghai")
    rows = a.revenue_decomposition("month", visitors={"2024-01": 400}).to_dict("records")
    jan, feb, mar = rows
    assert (jan["visitors"], jan["conversion"], jan["orders_per_buyer"]) == (400, 2 / 400, 1.5)
    assert type(jan["visitors"]) is int
    assert jan["aov"] * 3 == jan["revenue"] == Decimal("37.5")
    assert float(jan["aov"]) * 400 * jan["conversion"] * jan["orders_per_buyer"] == pytest.approx(
        37.5
    )
    assert feb["aov"] is None and feb["revenue"] == 0
    # without visitors the identity is buyers × AOV × orders per buyer
    assert mar["visitors"] is None and mar["conversion"] is None
    assert float(mar["aov"]) * mar["buyers"] * mar["orders_per_buyer"] == pytest.approx(2.0)
    with pytest.raises(InputError):
        a.revenue_decomposition("month", visitors={"2024-01": -1})
