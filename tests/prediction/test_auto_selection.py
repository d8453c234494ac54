"""`--model auto` on ordinary shop data: degenerate fits are rejected with a reason, auto
falls back to the next usable model (or to a regularised refit), and says why — in the CLI,
its JSON, the report and the `customers` table. Before this, these shops exited with
`model.not_finite` (MBG/NBD chosen by BIC with r ≈ 1e6, α ≈ 6e7)."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from huitouke.cli.main import app
from huitouke.errors import ModelFitError
from huitouke.models import BGNBD, MBGNBD, diagnose_fit, select_model
from huitouke.models.selection import PARAMETER_CEILING

from .shop_files import write_shop_csv

runner = CliRunner()


@pytest.fixture(scope="module")
def fallback_shop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """MBG/NBD has the lowest BIC but runs to r ≈ 1.4e6: BG/NBD must be chosen."""
    path = tmp_path_factory.mktemp("shop") / "orders.csv"
    return write_shop_csv(path, seed=5, customers=3000, p_repeat=0.15, rate_shape=50)


@pytest.fixture(scope="module")
def degenerate_shop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every candidate degenerates unpenalised: auto must refit with the ridge penalty."""
    path = tmp_path_factory.mktemp("shop") / "orders.csv"
    return write_shop_csv(path, seed=6, customers=3000, p_repeat=0.2, rate_shape=100)


def _predict_json(path: Path, *extra: str) -> tuple[dict, str]:
    result = runner.invoke(app, ["predict", str(path), "--format", "json", "--lang", "en", *extra])
    assert result.exit_code == 0, (result.output, result.exception)
    return json.loads(result.stdout), result.stderr


def test_degenerate_fit_is_rejected_and_auto_falls_back(fallback_shop: Path) -> None:
    body, err = _predict_json(fallback_shop)
    rows = {r["model"]: r for r in body["comparison"]}
    # MBG/NBD is the best by BIC but degenerate (r and α run off together; where the
    # optimiser stops decides which rule names it first): rejected, with the reason
    assert rows["mbgnbd"]["bic"] < rows["bgnbd"]["bic"]
    assert rows["mbgnbd"]["status"] == "rejected"
    assert rows["mbgnbd"]["problem"] in ("parameter_bound", "singular_hessian")
    assert rows["mbgnbd"]["error"] and rows["mbgnbd"]["error_zh"]
    assert body["model"] == "bgnbd" and rows["bgnbd"]["status"] == "chosen"
    assert all(PARAMETER_CEILING >= v > 0 for v in body["params"].values())
    # why, in the JSON and on stderr
    reason = body["selection"]["reason"]
    assert reason.startswith("BG/NBD: the lowest BIC") and "MBG/NBD rejected" in reason
    assert "MBG/NBD rejected" in err and "auto chose BG/NBD" in err
    assert body["selection"]["reason_zh"].startswith("BG/NBD:可用拟合中 BIC 最低")
    # usable numbers for every customer
    assert all(math.isfinite(c["expected_orders"]) for c in body["customers"])


def test_all_degenerate_refits_with_penalty_and_says_so(degenerate_shop: Path) -> None:
    body, _ = _predict_json(degenerate_shop)
    rows = {r["model"]: r for r in body["comparison"]}
    assert {rows[m]["status"] for m in ("bgnbd", "pnbd", "mbgnbd")} == {"rejected"}
    assert body["selection"]["penalizer"] > 0
    chosen = [k for k, r in rows.items() if r["status"] == "chosen"]
    assert chosen == [f"{body['model']}+penalized"]
    assert "ridge penalty" in body["selection"]["reason"]
    assert all(1e-6 <= v <= PARAMETER_CEILING for v in body["params"].values())
    expected = sum(c["expected_orders"] for c in body["customers"])
    assert 0 < expected < 3000


def test_explicit_degenerate_model_still_fails_clearly(degenerate_shop: Path) -> None:
    result = runner.invoke(app, ["predict", str(degenerate_shop), "--model", "mbgnbd"])
    assert isinstance(result.exception, ModelFitError)
    assert result.exception.code == "model.not_finite" and result.exception.exit_code == 6


def test_customers_keeps_prediction_columns_with_a_note(degenerate_shop: Path) -> None:
    """A model that cannot be used leaves the prediction columns empty with a note on every
    row — never silently missing columns."""
    result = runner.invoke(
        app,
        ["customers", str(degenerate_shop), "--model", "mbgnbd", "--format", "csv", "--lang", "en"],
    )
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout.lstrip("\ufeff"))))
    assert rows and {"p_alive", "expected_orders", "clv", "prediction_note"} <= set(rows[0])
    assert all(r["p_alive"] == "" for r in rows)
    assert all("model.not_finite" in r["prediction_note"] for r in rows)
    assert "no model could be fitted" in result.stderr

    # auto on the same shop fills them in
    result = runner.invoke(app, ["customers", str(degenerate_shop), "--format", "csv"])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout.lstrip("\ufeff"))))
    assert "prediction_note" not in rows[0] and all(r["p_alive"] != "" for r in rows)


def test_diagnose_fit_rules() -> None:
    x = np.array([0.0, 1, 2, 0, 3])
    tx = np.array([0.0, 10, 30, 0, 50])
    T = np.array([60.0, 60, 60, 60, 60])
    # the fit: r = 1.04e6, α = 6.56e7
    m = MBGNBD().set_params(r=1.04e6, alpha=6.56e7, a=0.5, b=2.0)
    problem = diagnose_fit(m, x, tx, T)
    assert problem is not None and problem.code == "parameter_bound"
    # reasonable parameters but no information matrix: singular
    m = BGNBD().set_params(r=0.5, alpha=10.0, a=0.8, b=2.5)
    problem = diagnose_fit(m, x, tx, T)
    assert problem is not None and problem.code == "singular_hessian"
    m.covariance_ = np.eye(4)
    assert diagnose_fit(m, x, tx, T) is None
    # a buying rate of 500 a day where the shop shows 6 repeat orders in 300 days
    m = BGNBD().set_params(r=5.0, alpha=0.01, a=0.01, b=50.0)
    m.covariance_ = np.eye(4)
    problem = diagnose_fit(m, x, tx, T)
    assert problem is not None and problem.code == "implausible"
    assert "repeat orders" in problem.reason and problem.reason_zh


def test_no_usable_model_lists_every_reason() -> None:
    """No repeat buyer: nothing is identified, and the error says so per model."""
    with pytest.raises(ModelFitError) as exc:
        select_model([0, 0, 0], [0, 0, 0], [30, 40, 50])
    assert exc.value.code == "model.no_usable_model"
    assert "no model could be fitted" in exc.value.message
    for label in ("BG/NBD", "Pareto/NBD", "MBG/NBD", "(penalized)"):
        assert label in exc.value.message
    assert set(exc.value.details["candidates"]) >= {"bgnbd", "pnbd", "mbgnbd"}
