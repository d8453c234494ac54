"""holdout_tracking on the CDNOW sample: the published split (39 + 39 weeks) and an
independent recount of the weekly repeat transactions."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from huitouke.errors import InputError
from huitouke.models import BGNBD, calibration_and_holdout_summary, evaluate_holdout
from huitouke.prediction import holdout_tracking, parse_horizon
from huitouke.prediction.horizon import add_months

from .conftest import ZONE


@pytest.fixture(scope="module")
def tracking(cdnow_orders: pa.Table):
    return holdout_tracking(
        cdnow_orders,
        timezone=ZONE,
        calibration_end=date(1997, 9, 30),
        holdout_end=date(1998, 6, 30),
        model="bgnbd",
        unit="W",
    )


def test_published_split(tracking, cdnow_raw: pd.DataFrame) -> None:
    # 2,357 customers, 1,882 repeat transactions in weeks 40–78 (same-day merged)
    assert tracking.customers == 2357
    assert tracking.holdout_actual == 1882
    assert tracking.params["r"] == pytest.approx(0.2426, abs=5e-5)
    split = calibration_and_holdout_summary(
        cdnow_raw, "1997-09-30", "1998-06-30", date_col="date", unit="W"
    )
    m = BGNBD().fit(split["frequency_cal"], split["recency_cal"], split["T_cal"])
    direct = evaluate_holdout(m, split)
    assert tracking.holdout_predicted == pytest.approx(direct.predicted_total, rel=1e-9)
    assert tracking.evaluation.mae == pytest.approx(direct.mae, rel=1e-9)


def test_weekly_actuals_match_an_independent_count(tracking, cdnow_raw: pd.DataFrame) -> None:
    w = tracking.weekly
    assert len(w) == 78
    assert (w["period"] == "calibration").sum() == 39 and (w["period"] == "holdout").sum() == 39
    assert w["week_start"].iloc[0] == date(1997, 1, 1) and w["week_end"].iloc[-1] == date(
        1998, 6, 30
    )
    days = cdnow_raw[["customer_id", "date"]].drop_duplicates().sort_values(["customer_id", "date"])
    first = days.groupby("customer_id")["date"].transform("min")
    repeats = days[days["date"] > first]
    week = (repeats["date"] - pd.Timestamp("1997-01-01")).dt.days // 7
    expected = week.value_counts().reindex(range(78), fill_value=0).to_numpy()
    np.testing.assert_array_equal(w["actual"].to_numpy(), expected)
    assert w["cumulative_actual"].iloc[38] == 2457  # the calibration's repeat transactions
    np.testing.assert_array_equal(w["cumulative_actual"], np.cumsum(expected))


def test_predicted_curve_is_the_unconditional_expectation(
    tracking, cdnow_raw: pd.DataFrame
) -> None:
    w = tracking.weekly
    m = tracking.fitted
    firsts = cdnow_raw.groupby("customer_id")["date"].min()
    # at the end of calibration every customer is T_cal old: Σ E[X(T)]
    T = (pd.Timestamp("1997-09-30") - firsts).dt.days.to_numpy() / 7
    assert w["cumulative_predicted"].iloc[38] == pytest.approx(
        float(m.expected_purchases(T).sum()), rel=1e-9
    )
    T_end = (pd.Timestamp("1998-06-30") - firsts).dt.days.to_numpy() / 7
    assert w["cumulative_predicted"].iloc[-1] == pytest.approx(
        float(m.expected_purchases(T_end).sum()), rel=1e-9
    )
    assert (w["predicted"] >= 0).all()
    np.testing.assert_allclose(np.cumsum(w["predicted"]), w["cumulative_predicted"], rtol=1e-12)
    body = tracking.to_dict()
    assert body["holdout_actual"] == 1882 and len(body["weeks"]) == 78
    assert body["weeks"][0]["week_start"] == "1997-01-01"


def test_default_split_and_errors(cdnow_orders: pa.Table) -> None:
    t = holdout_tracking(cdnow_orders, timezone=ZONE, model="bgnbd")
    span = (date(1998, 6, 30) - date(1997, 1, 1)).days
    assert t.calibration_end == date.fromordinal(date(1997, 1, 1).toordinal() + span // 2)
    assert t.holdout_end == date(1998, 6, 30)
    with pytest.raises(InputError, match="calibration_end"):
        holdout_tracking(cdnow_orders, timezone=ZONE, calibration_end="1998-07-01")
    with pytest.raises(InputError, match="unknown model"):
        holdout_tracking(cdnow_orders, timezone=ZONE, model="nbd")


@pytest.mark.parametrize(
    ("text", "as_of", "days"),
    [
        ("90d", None, 90),
        ("90", None, 90),
        ("12w", None, 84),
        ("1W", None, 7),
        ("3m", date(2026, 11, 23), 92),
        ("1m", date(2024, 1, 31), 29),  # to 2024-02-29
        ("12m", date(2023, 3, 1), 366),
        ("1m", None, 30),
    ],
)
def test_horizons_parse(text: str, as_of: date | None, days: int) -> None:
    assert parse_horizon(text, as_of) == days


@pytest.mark.parametrize("text", ["", "d", "90x", "-5d", "1.5w", "0d", "99999d", "ninety"])
def test_bad_horizons(text: str) -> None:
    with pytest.raises(InputError, match="--horizon") as exc:
        parse_horizon(text)
    assert exc.value.code == "input.bad_horizon"


def test_add_months_clamps_the_day() -> None:
    assert add_months(date(2023, 1, 31), 1) == date(2023, 2, 28)
    assert add_months(date(2023, 12, 15), 1) == date(2024, 1, 15)
    assert add_months(date(2024, 3, 31), -1) == date(2024, 2, 29)


def test_the_holdout_check_and_tracking_split_alike(cdnow_orders: pa.Table) -> None:
    """Both holdout checks stand on one split (prediction.split): at the same calibration
    end they take the same customers and the same holdout orders, and refuse the same
    empty history with the same error."""
    from huitouke.prediction import evaluate_models
    from huitouke.prediction.split import calibration_split

    end = date(1998, 6, 30)
    check = evaluate_models(cdnow_orders, timezone=ZONE, as_of=end, holdout_share=0.5)
    tracked = holdout_tracking(
        cdnow_orders,
        timezone=ZONE,
        calibration_end=check.calibration_end,
        holdout_end=end,
        model="bgnbd",
    )
    assert check.holdout_end == tracked.holdout_end == end
    assert check.customers == tracked.customers
    assert check.actual_repeat_orders == tracked.holdout_actual
    cut = calibration_split(
        cdnow_orders, timezone=ZONE, until=end, calibration_end=lambda first, _end: first
    )
    assert cut.first_day == date(1997, 1, 1) and cut.holdout_end == end
    assert len(cut.summary) == (cut.tx["day"] == pd.Timestamp(cut.first_day)).pipe(
        lambda on_first: cut.tx.loc[on_first, "customer_id"].nunique()
    )
    before = date(1990, 1, 1)
    with pytest.raises(InputError) as a:
        evaluate_models(cdnow_orders, timezone=ZONE, as_of=before)
    with pytest.raises(InputError) as b:
        holdout_tracking(cdnow_orders, timezone=ZONE, holdout_end=before)
    assert a.value.code == b.value.code == "input.no_orders"
    assert a.value.message == b.value.message
