"""Property tests: on random order sets the engine equals the reference, rates stay in [0, 1],
returning ≤ buyers and the period orders add up to the counted orders."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from huitouke.analytics import Analytics
from huitouke.core.orders import COUNTED_STATUSES

from . import reference as ref
from .helpers import order, orders_table
from .test_reference_data import assert_periods_equal

START = datetime(2023, 12, 1)

order_rows = st.lists(
    st.tuples(
        st.integers(0, 7),  # customer
        st.integers(0, 120 * 24 * 4),  # quarter-hours since START (local)
        st.integers(0, 50_000),  # cents
        st.sampled_from(["paid", "paid", "paid", "partially_refunded", "refunded", "cancelled"]),
    ),
    min_size=1,
    max_size=40,
)


def _table(rows: list[tuple[int, int, int, str]], zone: str):
    out = []
    for i, (c, q, cents, status) in enumerate(rows):
        amount = Decimal(cents) / 100
        refunded = {
            "partially_refunded": (amount / 3).quantize(Decimal("0.0001")),
            "refunded": amount,
        }.get(status, Decimal(0))
        when = START + timedelta(minutes=15 * q)
        out.append(
            order(f"o{i:03d}", f"c{c}", when, amount, status=status, refunded=refunded, zone=zone)
        )
    return orders_table(out)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=order_rows,
    kind=st.sampled_from(["day", "week", "month", "quarter"]),
    zone=st.sampled_from(["Asia/Shanghai", "America/Los_Angeles", "UTC"]),
    merge=st.booleans(),
    extra_days=st.one_of(st.none(), st.integers(0, 100)),
)
def test_random_orders_match_reference_and_invariants(rows, kind, zone, merge, extra_days) -> None:
    t = _table(rows, zone)
    a = Analytics(t, timezone=zone, merge_same_day=merge)
    cover = None
    if extra_days is not None and a.date_span is not None:
        # the data said to cover some days past the last order (an --as-of after it)
        cover = a.date_span[1] + timedelta(days=extra_days)
        a.coverage_end = cover
    got = a.period_metrics(kind)
    want = ref.period_metrics(t.to_pandas(), zone, kind, merge, coverage_end=cover)
    assert_periods_equal(got, want)
    counted = sum(1 for r in rows if r[3] in COUNTED_STATUSES)
    if not merge:
        assert int(got["orders"].sum()) == counted
    assert (got["returning_buyers"] <= got["buyers"]).all()
    assert (got["multi_buyers"] <= got["buyers"]).all()
    for c in (
        "customer_repurchase_rate",
        "in_period_repurchase_rate",
        "order_repurchase_rate",
        "buyback_rate",
        "returning_revenue_share",
    ):
        assert all(v is None or 0.0 <= v <= 1.0 for v in got[c]), c
    if len(got) and cover is None:
        assert got["buyback_rate"].iloc[-1] is None
    # every customer's first counted order is new in exactly one period
    assert int(got["new_buyers"].sum()) == len({r[0] for r in rows if r[3] in COUNTED_STATUSES})
