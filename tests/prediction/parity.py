"""The comparison of two engines' per-customer predictions (see the tolerance note of
test_spark_predictions.py: counts, dates and bands equal, floats to 1e-9 relative, money to
one cent)."""

from __future__ import annotations

import numpy as np
import pandas as pd

FLOATS = ("recency", "T", "p_alive", "expected_orders", "p_order_in_horizon", "p_no_further_order")
MONEY = ("expected_order_value", "expected_spend", "clv")
DATES = ("next_order_median", "next_order_low", "next_order_high")


def assert_close(ref: pd.DataFrame, got: pd.DataFrame) -> None:
    assert list(got.columns) == list(ref.columns)
    assert got["customer_id"].tolist() == ref["customer_id"].tolist()
    assert got["frequency"].tolist() == ref["frequency"].tolist()
    assert got["churn_risk"].tolist() == ref["churn_risk"].tolist()
    assert got["model"].tolist() == ref["model"].tolist()
    for c in FLOATS:
        np.testing.assert_allclose(
            got[c].to_numpy(float), ref[c].to_numpy(float), rtol=1e-9, atol=0, err_msg=c
        )
    for c in MONEY:
        diff = (got[c].astype(float) - ref[c].astype(float)).abs().max()
        assert diff <= 0.0100001, (c, diff)
    for c in DATES:
        assert got[c].tolist() == ref[c].tolist(), c
