"""`huitouke customers` carries the model's columns, equal to the library's scores."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pyarrow as pa
import pytest
from typer.testing import CliRunner

from huitouke.cli.main import app
from huitouke.prediction import predict_customers

from .conftest import ZONE

runner = CliRunner()


def _customers(cdnow_path: Path, *extra: str) -> list[dict[str, object]]:
    r = runner.invoke(
        app,
        [
            "customers",
            str(cdnow_path),
            "--preset",
            "cdnow",
            "--timezone",
            ZONE,
            "--as-of",
            "1998-06-30",
            "--format",
            "json",
            *extra,
        ],
    )
    assert r.exit_code == 0, r.output
    rows: list[dict[str, object]] = json.loads(r.stdout)
    return rows


def test_customers_include_predictions_equal_to_library(
    cdnow_path: Path, cdnow_orders: pa.Table
) -> None:
    rows = _customers(cdnow_path, "--model", "bgnbd", "--horizon", "90d")
    scores = predict_customers(
        cdnow_orders, as_of=date(1998, 6, 30), timezone=ZONE, model="bgnbd", horizon_days=90
    ).set_index("customer_id")
    assert len(rows) == len(scores) == 2357
    for row in rows[:50]:
        ref = scores.loc[row["customer_id"]]
        assert row["p_alive"] == pytest.approx(float(ref["p_alive"]), rel=1e-9)
        assert row["expected_orders"] == pytest.approx(float(ref["expected_orders"]), rel=1e-9)
        assert row["next_order_median"] == str(ref["next_order_median"])
        assert row["churn_risk"] == ref["churn_risk"]


def test_no_predict_leaves_the_model_columns_out(cdnow_path: Path) -> None:
    rows = _customers(cdnow_path, "--no-predict")
    assert "p_alive" not in rows[0]
    assert {"rfm_segment", "layer", "lifecycle", "next_expected_date"} <= set(rows[0])
