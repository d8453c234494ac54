"""`huitouke predict --evaluate`: the holdout check on the shop's own orders, every number
recomputed here from the raw file with pandas — the split day, the actual repeat orders in
the holdout, each model's predicted total and its next-order interval coverage."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from huitouke.cli.main import app
from huitouke.errors import InputError
from huitouke.models import MODELS

from .shop_files import read_days, write_shop_csv

runner = CliRunner()


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An ordinary shop with customers who differ in how often they buy."""
    path = tmp_path_factory.mktemp("shop") / "orders.csv"
    return write_shop_csv(path, seed=11, customers=2500, p_repeat=0.45, rate_shape=0.6)


def _evaluate(path: Path, *extra: str) -> dict:
    result = runner.invoke(
        app, ["predict", str(path), "--evaluate", "--format", "json", "--lang", "en", *extra]
    )
    assert result.exit_code == 0, (result.output, result.exception)
    return json.loads(result.stdout)


def _reference(path: Path, share: float) -> dict:
    """Split, calibration summary and holdout facts straight from the CSV."""
    days = read_days(path).drop_duplicates()  # same-day orders merged, as the models assume
    first, end = days["day"].min(), days["day"].max()
    held = round((end - first).days * share)
    cal_end = end - timedelta(days=held)
    cal = days[days["day"] <= cal_end]
    g = cal.groupby("customer_id")["day"]
    summary = pd.DataFrame(
        {
            "x": g.size() - 1,
            "tx": (g.max() - g.min()).dt.days,
            "T": (cal_end - g.min()).dt.days,
        }
    ).astype(float)
    hold = days[(days["day"] > cal_end) & days["customer_id"].isin(summary.index)]
    first_gap = (hold.groupby("customer_id")["day"].min() - cal_end).dt.days.astype(float)
    return {
        "cal_end": cal_end.date(),
        "held": held,
        "summary": summary,
        "actual": len(hold),
        "first_gap": first_gap.reindex(summary.index),
    }


def test_holdout_numbers_match_an_independent_computation(shop: Path) -> None:
    body = _evaluate(shop)
    ev = body["evaluation"]
    ref = _reference(shop, 0.3)
    assert ev["calibration_end"] == ref["cal_end"].isoformat()
    assert ev["holdout_days"] == ref["held"] and ev["holdout_share"] == 0.3
    assert ev["customers"] == len(ref["summary"])
    assert ev["actual_repeat_orders"] == ref["actual"] > 0
    assert ev["ordered_in_holdout"] == int(ref["first_gap"].notna().sum())
    assert [m["model"] for m in ev["models"]] == ["bgnbd", "pnbd", "mbgnbd"]
    assert sum(m["status"] == "chosen" for m in ev["models"]) == 1
    s = ref["summary"]
    x, tx, T = (s[c].to_numpy() for c in ("x", "tx", "T"))
    gap = ref["first_gap"].to_numpy()
    ordered = ~np.isnan(gap)
    checked = 0
    for m in ev["models"]:
        assert m["actual_repeat_orders"] == ref["actual"]
        if m["predicted_repeat_orders"] is None:
            assert m["status"] in ("rejected", "failed")
            continue
        model = MODELS[m["model"]]().set_params(**m["params"])
        predicted = float(np.sum(model.conditional_expected_purchases(ref["held"], x, tx, T)))
        assert m["predicted_repeat_orders"] == pytest.approx(predicted, rel=1e-9)
        assert m["error"] == pytest.approx((predicted - ref["actual"]) / ref["actual"])
        dist = model.next_order_distribution(x, tx, T, coverage=0.8)
        lo, hi = dist["lower"].to_numpy(), dist["upper"].to_numpy()
        inside = ordered & (gap >= lo) & (gap <= hi)
        assert m["coverage_observed"] == pytest.approx(inside.sum() / ordered.sum())
        assert 0 < m["coverage_expected"] <= 1
        checked += 1
    assert checked >= 2


def test_holdout_share_is_configurable_and_checked(shop: Path) -> None:
    ev = _evaluate(shop, "--holdout-share", "0.5")["evaluation"]
    ref = _reference(shop, 0.5)
    assert ev["calibration_end"] == ref["cal_end"].isoformat()
    assert ev["actual_repeat_orders"] == ref["actual"]
    for bad in ("0", "1", "1.5"):
        result = runner.invoke(app, ["predict", str(shop), "--evaluate", "--holdout-share", bad])
        assert isinstance(result.exception, InputError)
        assert result.exception.code == "input.bad_split"


def test_evaluation_table_on_stderr(shop: Path) -> None:
    result = runner.invoke(app, ["predict", str(shop), "--evaluate", "--lang", "zh"])
    assert result.exit_code == 0, result.output
    assert "留出期检验" in result.stderr and "自动选中" in result.stderr
    assert "实际复购" in result.stderr


def test_report_shows_the_holdout_check(shop: Path) -> None:
    from huitouke.cli.report_cmd import load_report_orders
    from huitouke.report import build_report_data, render_html

    loaded = load_report_orders(
        shop, preset=None, timezone="Asia/Shanghai", sample=False, database_url="sqlite://"
    )
    data = build_report_data(
        loaded.orders, timezone="Asia/Shanghai", source=loaded.source, lines=loaded.lines
    )
    pred = data["predictions"]
    assert pred["status"] == "ok", pred
    ev = pred["evaluation"]
    ref = _reference(shop, 0.3)
    assert ev["status"] == "ok" and ev["actual_repeat_orders"] == ref["actual"]
    assert pred["selection"]["reason"]
    for lang, needle in (("en", "Holdout check"), ("zh", "留出期检验")):
        html = render_html(data, lang)
        assert 'id="table-pred-holdout"' in html and needle in html
        assert ("Why: " if lang == "en" else "选择理由") in html
