"""predict / predict_customers against the models called directly on an independent
summary of the raw CDNOW file, plus counting, zone and bad-input rules."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from huitouke.errors import InputError, ModelFitError
from huitouke.models import (
    BGNBD,
    GammaGamma,
    ParetoNBD,
    customer_lifetime_value,
    select_model,
    summary_from_transactions,
)
from huitouke.prediction import (
    CHURN_RISK_BANDS,
    alive_summary,
    churn_risk,
    churn_risk_label,
    predict,
    predict_customers,
)

from .conftest import ZONE, orders_table

CAL_END = date(1997, 9, 30)


@pytest.fixture(scope="module")
def reference(cdnow_raw: pd.DataFrame) -> pd.DataFrame:
    """Weekly summary of the calibration period straight from the file."""
    return summary_from_transactions(
        cdnow_raw, date_col="date", observation_end="1997-09-30", unit="W"
    )


@pytest.fixture(scope="module")
def bgnbd_weeks(cdnow_orders: pa.Table):
    return predict(
        cdnow_orders,
        as_of=CAL_END,
        timezone=ZONE,
        model="bgnbd",
        unit="W",
        horizon_days=273,
        margin=0.3,
        discount_rate=0.1,
    )


def test_bgnbd_reproduces_the_published_fit(bgnbd_weeks) -> None:
    # Fader, Hardie & Lee (2005): r 0.2426, α 4.4136, a 0.7929, b 2.4259, LL −9582.43
    p = bgnbd_weeks.params
    assert p["r"] == pytest.approx(0.2426, abs=5e-5)
    assert p["alpha"] == pytest.approx(4.4136, abs=5e-4)
    assert p["a"] == pytest.approx(0.7929, abs=5e-5)
    assert p["b"] == pytest.approx(2.4259, abs=5e-4)
    assert bgnbd_weeks.log_likelihood == pytest.approx(-9582.43, abs=0.01)
    # Gamma-Gamma on the 946 repeat buyers: p 6.25, q 3.74, γ 15.44
    g = bgnbd_weeks.spend_params
    assert bgnbd_weeks.spend_source == "gamma_gamma"
    assert (g["p"], g["q"], g["gamma"]) == pytest.approx((6.25, 3.74, 15.44), abs=5e-3)
    df = bgnbd_weeks.customers
    assert len(df) == 2357 and int(df["frequency"].sum()) == 2457
    # the published conditional expectation: x=2, t_x=30.43, T=38.86, next 39 weeks → 1.226
    row = df[df["customer_id"] == "00004"].iloc[0]
    assert (row["frequency"], row["recency"], row["T"]) == pytest.approx(
        (2, 30.4286, 38.8571), abs=1e-4
    )
    assert row["expected_orders"] == pytest.approx(1.226, abs=5e-4)


def test_scores_equal_the_models_called_directly(bgnbd_weeks, reference: pd.DataFrame) -> None:
    df = bgnbd_weeks.customers.set_index("customer_id")
    ref = reference.loc[df.index]
    x, tx, T = (ref[c].to_numpy() for c in ("frequency", "recency", "T"))
    np.testing.assert_allclose(df["recency"], tx, atol=1e-12)
    np.testing.assert_allclose(df["T"], T, atol=1e-12)

    m = BGNBD().fit(x, tx, T)
    h = 273 / 7
    np.testing.assert_allclose(df["p_alive"], m.probability_alive(x, tx, T), rtol=1e-6)
    expected = m.conditional_expected_purchases(h, x, tx, T)
    np.testing.assert_allclose(df["expected_orders"], expected, rtol=1e-6)
    np.testing.assert_allclose(
        df["p_order_in_horizon"], m.probability_of_any_purchase(h, x, tx, T), rtol=1e-6
    )

    mv = ref["monetary_value"].to_numpy()
    rep = (x > 0) & (mv > 0)
    gg = GammaGamma().fit(x[rep], mv[rep])
    value = gg.conditional_expected_average_profit(x, mv)
    cents = lambda v: np.array([float(d) for d in v])  # noqa: E731
    np.testing.assert_allclose(cents(df["expected_order_value"]), np.round(value, 2), atol=0.0051)
    np.testing.assert_allclose(cents(df["expected_spend"]), value * expected, atol=0.0051)
    assert all(isinstance(v, Decimal) and v == v.quantize(Decimal("0.01")) for v in df["clv"])

    monthly = 1.1 ** (1 / 12) - 1
    clv = customer_lifetime_value(
        m, x, tx, T, value, horizon=h, period=365.25 / 12 / 7, discount_rate=monthly, margin=0.3
    )
    np.testing.assert_allclose(cents(df["clv"]), clv, atol=0.0051)
    # discounting and margin make CLV smaller than the horizon's revenue
    assert (cents(df["clv"]) <= cents(df["expected_spend"]) * 0.3 + 0.01).all()

    dist = m.next_order_distribution(x, tx, T, coverage=0.8)
    for col, q in (
        ("next_order_median", "median"),
        ("next_order_low", "lower"),
        ("next_order_high", "upper"),
    ):
        days = dist[q].to_numpy() * 7
        got = df[col].to_numpy()
        for i in range(0, len(days), 97):
            if pd.isna(got[i]):
                assert not days[i] <= (date.max - CAL_END).days  # beyond any calendar
                continue
            assert got[i] == CAL_END + timedelta(days=max(1, math.ceil(days[i])))
    np.testing.assert_allclose(df["p_no_further_order"], dist["p_no_further_order"], atol=1e-12)
    assert (df["model"] == "bgnbd").all()


def test_dates_are_ordered_and_after_as_of(bgnbd_weeks) -> None:
    df = bgnbd_weeks.customers
    ok = df["next_order_high"].notna()
    assert ok.sum() > 900  # BG/NBD one-timers' 90% points run past any calendar
    sub = df[ok]
    assert (sub["next_order_low"] <= sub["next_order_median"]).all()
    assert (sub["next_order_median"] <= sub["next_order_high"]).all()
    assert (sub["next_order_low"] > CAL_END).all()


def test_auto_picks_the_lowest_bic(cdnow_orders: pa.Table, cdnow_raw: pd.DataFrame) -> None:
    p = predict(cdnow_orders, as_of=CAL_END, timezone=ZONE, model="auto")
    s = summary_from_transactions(cdnow_raw, date_col="date", observation_end="1997-09-30")
    sel = select_model(s["frequency"], s["recency"], s["T"])
    assert p.model == sel.name == str(p.comparison["bic"].idxmin())
    np.testing.assert_allclose(p.comparison["bic"], sel.table["bic"], rtol=1e-9)
    assert set(p.comparison.index) == {"bgnbd", "pnbd", "mbgnbd"}
    assert (p.customers["model"] == p.model).all()
    assert p.unit == "day" and p.horizon_days == 90
    # named models are fitted as named
    pn = predict_customers(cdnow_orders, as_of=CAL_END, timezone=ZONE, model="pnbd", unit="W")
    ref = ParetoNBD().fit(
        *(
            summary_from_transactions(
                cdnow_raw, date_col="date", observation_end="1997-09-30", unit="W"
            )[c]
            for c in ("frequency", "recency", "T")
        )
    )
    assert pn.attrs["params"]["r"] == pytest.approx(ref.params_["r"], rel=1e-6)
    assert (pn["model"] == "pnbd").all()


def test_as_of_cuts_later_orders(cdnow_orders: pa.Table, cdnow_raw: pd.DataFrame) -> None:
    df = predict_customers(
        cdnow_orders, as_of="1997-03-31", timezone=ZONE, model="bgnbd", horizon_days=30
    )
    expected_customers = cdnow_raw.loc[cdnow_raw["date"] <= "1997-03-31", "customer_id"].nunique()
    assert len(df) == expected_customers
    assert df["T"].max() == (date(1997, 3, 31) - date(1997, 1, 1)).days


def test_churn_bands_and_labels() -> None:
    p = np.array([1.0, 0.7, 0.6999, 0.3, 0.2999, 0.1, 0.0999, 0.0])
    assert list(churn_risk(p)) == ["low", "low", "medium", "medium", "high", "high", "lost", "lost"]
    assert [c for c, _ in CHURN_RISK_BANDS] == ["low", "medium", "high", "lost"]
    assert churn_risk_label("lost", "zh") == "已流失"
    assert churn_risk_label("high", "en") == "High churn risk"


def test_alive_summary_adds_up(bgnbd_weeks) -> None:
    df = bgnbd_weeks.customers
    summ = alive_summary(df, "en")
    assert list(summ["band"]) == ["low", "medium", "high", "lost"]
    assert summ["customers"].sum() == len(df)
    assert summ["share"].sum() == pytest.approx(1.0)
    assert sum(summ["clv"], Decimal(0)) == sum(df["clv"], Decimal(0))
    assert summ["expected_orders"].sum() == pytest.approx(df["expected_orders"].sum())
    low = summ.set_index("band").loc["low"]
    assert low["customers"] == int((df["p_alive"] >= 0.7).sum()) and low["status"] == "alive"
    dormant = summ[summ["status"] == "dormant"]["customers"].sum()
    assert dormant == int((df["p_alive"] < 0.3).sum())
    with pytest.raises(InputError, match="churn_risk"):
        alive_summary(df.drop(columns=["churn_risk"]))


# --- counting rules, zones and bad input on small hand-made tables --------------------------------


AS_OF = "1998-06-30"


@pytest.fixture
def shop(cdnow_orders: pa.Table):
    """The CDNOW orders plus hand-made rows (USD, times in UTC)."""

    def build(extra: list[tuple] | None = None) -> pa.Table:
        return pa.concat_tables([cdnow_orders, orders_table(extra or [])])

    return build


def test_only_counted_orders_and_revenue_after_refunds(shop) -> None:
    base = shop()
    extra = [
        ("x1", "zz", "1997-02-01T02:00:00", "100", "paid", "0", "USD"),
        ("x2", "zz", "1997-03-01T02:00:00", "100", "cancelled", "0", "USD"),
        ("x3", "zz", "1997-04-01T02:00:00", "100", "refunded", "100", "USD"),
        ("x4", "zz", "1997-05-01T02:00:00", "100", "partially_refunded", "40", "USD"),
    ]
    df = predict_customers(shop(extra), as_of="1998-06-30", timezone=ZONE, model="bgnbd")
    zz = df.set_index("customer_id").loc["zz"]
    # cancelled and fully refunded orders do not count; the partial refund counts
    assert zz["frequency"] == 1 and zz["recency"] == (date(1997, 5, 1) - date(1997, 2, 1)).days
    assert len(df) == len(set(base.column("customer_id").to_pylist())) + 1


def test_days_are_the_merchants_local_days(shop) -> None:
    # 16:30 UTC is 00:30 the next day in Shanghai and still the same day in London
    extra = [
        ("y1", "yy", "1997-02-01T01:00:00", "30", "paid", "0", "USD"),
        ("y2", "yy", "1997-02-10T16:30:00", "30", "paid", "0", "USD"),
    ]
    orders = shop(extra)
    sh = predict_customers(orders, as_of="1998-06-30", timezone="Asia/Shanghai", model="bgnbd")
    ld = predict_customers(orders, as_of="1998-06-30", timezone="Europe/London", model="bgnbd")
    assert sh.set_index("customer_id").loc["yy", "recency"] == 10
    assert ld.set_index("customer_id").loc["yy", "recency"] == 9
    # an aware datetime as_of is read in the merchant's zone
    aware = datetime(1998, 6, 29, 17, 0, tzinfo=UTC)  # 1998-06-30 01:00 in Shanghai
    again = predict_customers(orders, as_of=aware, timezone="Asia/Shanghai", model="bgnbd")
    assert again["T"].max() == sh["T"].max()


def test_same_day_orders_merge_by_default(shop) -> None:
    extra = [
        ("s1", "ss", "1997-02-01T02:00:00", "10", "paid", "0", "USD"),
        ("s2", "ss", "1997-02-01T03:00:00", "15", "paid", "0", "USD"),
        ("s3", "ss", "1997-03-01T02:00:00", "20", "paid", "0", "USD"),
    ]
    orders = shop(extra)
    merged = predict_customers(orders, as_of="1998-06-30", timezone=ZONE, model="bgnbd")
    apart = predict_customers(
        orders, as_of="1998-06-30", timezone=ZONE, model="bgnbd", merge_same_day=False
    )
    assert merged.set_index("customer_id").loc["ss", "frequency"] == 1
    assert apart.set_index("customer_id").loc["ss", "frequency"] == 2


def test_spend_falls_back_to_own_mean_when_gamma_gamma_cannot_fit(cdnow_orders: pa.Table) -> None:
    # every order worth the same: Gamma-Gamma's spread parameters are not identified
    idx = cdnow_orders.schema.get_field_index("amount")
    same = pa.array([Decimal("12.5")] * cdnow_orders.num_rows, pa.decimal128(18, 4))
    orders = cdnow_orders.set_column(idx, "amount", same)
    p = predict(orders, as_of=AS_OF, timezone=ZONE, model="bgnbd", merge_same_day=False)
    assert p.spend_source == "own_mean" and p.spend_note
    assert set(p.customers["expected_order_value"]) == {Decimal("12.50")}
    # merged, an "order" is a day's orders: 00314 bought twice on 1997-01-13
    merged = predict(orders, as_of=AS_OF, timezone=ZONE, model="bgnbd")
    value = merged.customers.set_index("customer_id")["expected_order_value"]
    assert value.min() == Decimal("12.50") and value["00314"] > Decimal("12.50")


def test_bad_input_errors(shop) -> None:
    orders = shop()
    with pytest.raises(InputError, match="unknown model 'lifetimes'"):
        predict_customers(orders, as_of="1998-06-30", timezone=ZONE, model="lifetimes")
    with pytest.raises(InputError, match="horizon_days"):
        predict_customers(orders, as_of="1998-06-30", timezone=ZONE, horizon_days=0)
    with pytest.raises(InputError, match="margin"):
        predict_customers(orders, as_of="1998-06-30", timezone=ZONE, margin=1.5)
    with pytest.raises(InputError, match="discount_rate"):
        predict_customers(orders, as_of="1998-06-30", timezone=ZONE, discount_rate=-0.1)
    with pytest.raises(InputError, match="time zone"):
        predict_customers(orders, as_of="1998-06-30", timezone="Mars/Olympus")
    with pytest.raises(InputError, match="as_of"):
        predict_customers(orders, as_of="30/06/1998", timezone=ZONE)
    with pytest.raises(InputError, match="time zone"):
        predict_customers(orders, as_of=datetime(1998, 6, 30), timezone=ZONE)
    with pytest.raises(InputError, match="no counted orders on or before 1996-12-31"):
        predict_customers(orders, as_of="1996-12-31", timezone=ZONE)
    with pytest.raises(InputError, match="lacks columns"):
        predict_customers(orders.drop(["status"]), as_of="1998-06-30", timezone=ZONE)
    mixed = shop([("u1", "u", "1997-02-01T02:00:00", "10", "paid", "0", "CNY")])
    with pytest.raises(InputError, match="several currencies"):
        predict_customers(mixed, as_of="1998-06-30", timezone=ZONE)
    one = predict_customers(mixed, as_of="1998-06-30", timezone=ZONE, currency="USD", model="bgnbd")
    assert "u" not in set(one["customer_id"])
    single = orders_table(
        [(f"o{i}", f"c{i}", "1997-02-01T02:00:00", "10", "paid", "0", "USD") for i in range(40)]
    )
    with pytest.raises(ModelFitError, match="repeat order"):
        predict_customers(single, as_of="1998-06-30", timezone=ZONE)


def test_settings_supply_margin_and_discount_rate(
    monkeypatch: pytest.MonkeyPatch, cdnow_orders: pa.Table
) -> None:
    from huitouke.settings import get_settings

    base = predict(cdnow_orders, as_of=CAL_END, timezone=ZONE, model="bgnbd")
    assert (base.margin, base.discount_rate) == (1.0, 0.10)
    monkeypatch.setenv("HUITOUKE_PREDICTION_MARGIN", "0.5")
    monkeypatch.setenv("HUITOUKE_PREDICTION_DISCOUNT_RATE", "0")
    get_settings.cache_clear()
    half = predict(cdnow_orders, as_of=CAL_END, timezone=ZONE, model="bgnbd")
    assert (half.margin, half.discount_rate) == (0.5, 0.0)
    # no discounting: CLV = margin × expected spend over the horizon (up to cent rounding)
    clv = np.array([float(v) for v in half.customers["clv"]])
    spend = np.array([float(v) for v in half.customers["expected_spend"]])
    np.testing.assert_allclose(clv, 0.5 * spend, atol=0.011)


def test_expectations_stay_finite_when_drop_out_has_no_heterogeneity() -> None:
    # data whose drop-out probability is the same for everyone send BG/NBD's a and b to
    # ~1e6, where scipy's ₂F₁ fails; the expectation then tends to the fixed-p formula
    m = BGNBD().set_params(r=0.17, alpha=11.2, a=2.7e6, b=4.2e6)
    x = np.array([0.0, 1.0, 2.0, 10.0])
    tx = np.array([0.0, 185.0, 29.0, 300.0])
    T = np.array([400.0, 644.0, 413.0, 320.0])
    got = m.conditional_expected_purchases(90.0, x, tx, T)
    assert np.all(np.isfinite(got))
    p0 = 2.7e6 / (2.7e6 + 4.2e6 + x)
    limit = -np.expm1(-(0.17 + x) * np.log1p(p0 * 90.0 / (11.2 + T))) / p0
    np.testing.assert_allclose(got, m.probability_alive(x, tx, T) * limit, rtol=1e-5)
    # and it joins the exact formula smoothly where both work (a + b ≈ 2,500)
    small = BGNBD().set_params(r=0.17, alpha=11.2, a=1000.0, b=1500.0)
    exact = small.conditional_expected_purchases(90.0, x, tx, T)
    p1 = 1000.0 / (2500.0 + x)
    approx = -np.expm1(-(0.17 + x) * np.log1p(p1 * 90.0 / (11.2 + T))) / p1
    np.testing.assert_allclose(exact, small.probability_alive(x, tx, T) * approx, rtol=1e-3)
