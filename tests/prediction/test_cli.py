"""`huitouke predict` end to end on the bundled CDNOW sample: JSON, CSV and table output
against the library, horizons, the configured store, and clear errors with exit codes."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from datetime import date
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest
from typer.testing import CliRunner

from huitouke.cli.main import app, main
from huitouke.prediction import predict

from .conftest import ZONE

runner = CliRunner()

COLUMNS = [
    "customer_id",
    "frequency",
    "recency",
    "T",
    "p_alive",
    "expected_orders",
    "p_order_in_horizon",
    "expected_order_value",
    "expected_spend",
    "clv",
    "next_order_median",
    "next_order_low",
    "next_order_high",
    "p_no_further_order",
    "churn_risk",
    "churn_risk_label",
    "model",
]


def _invoke(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, (result.output, result.exception)
    return result.stdout


def _fail(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exc:
        main(list(args))
    return int(exc.value.code or 0), capsys.readouterr().err


@pytest.fixture(scope="module")
def auto_json(cdnow_path: Path) -> dict:
    result = runner.invoke(
        app,
        [
            "predict",
            str(cdnow_path),
            "--preset",
            "cdnow",
            "--timezone",
            ZONE,
            "--format",
            "json",
            "--as-of",
            "1997-09-30",
            "--lang",
            "en",
        ],
    )
    assert result.exit_code == 0, (result.output, result.exception)
    return json.loads(result.stdout)


def test_json_shape_and_numbers_match_the_library(auto_json: dict, cdnow_orders: pa.Table) -> None:
    body = auto_json
    assert list(body)[:5] == ["model", "params", "horizon_days", "as_of", "model_label"]
    assert body["horizon_days"] == 90 and body["as_of"] == "1997-09-30"
    assert body["currency"] == "USD" and body["unit"] == "day" and body["merge_same_day"] is True
    # auto picks the lowest BIC of the three
    bic = {row["model"]: row["bic"] for row in body["comparison"]}
    assert set(bic) == {"bgnbd", "pnbd", "mbgnbd"}
    assert body["model"] == min(bic, key=lambda k: bic[k])
    customers = body["customers"]
    assert len(customers) == 2357 and list(customers[0]) == COLUMNS
    lib = predict(cdnow_orders, as_of=date(1997, 9, 30), timezone=ZONE, model=body["model"])
    assert body["params"] == pytest.approx(lib.params, rel=1e-9)
    ref = lib.customers.set_index("customer_id")
    for row in customers[::150]:
        r = ref.loc[row["customer_id"]]
        assert row["p_alive"] == pytest.approx(r["p_alive"], rel=1e-9)
        assert row["expected_orders"] == pytest.approx(r["expected_orders"], rel=1e-9)
        assert row["clv"] == float(r["clv"]) and row["expected_spend"] == float(r["expected_spend"])
        assert row["next_order_median"] == (
            None if pd.isna(r["next_order_median"]) else r["next_order_median"].isoformat()
        )
        assert row["churn_risk_label"] in {
            "Low churn risk",
            "Medium churn risk",
            "High churn risk",
            "Lost",
        }
    summary = body["summary"]
    assert [s["band"] for s in summary] == ["low", "medium", "high", "lost"]
    assert sum(s["customers"] for s in summary) == 2357


def test_csv_to_a_file_matches_json(cdnow_path: Path, auto_json: dict, tmp_path: Path) -> None:
    out = tmp_path / "scores.csv"
    result = runner.invoke(
        app,
        [
            "predict",
            str(cdnow_path),
            "--preset",
            "cdnow",
            "--timezone",
            ZONE,
            "--format",
            "csv",
            "--as-of",
            "1997-09-30",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert result.stdout == "" and str(out) in result.stderr
    text = out.read_text(encoding="utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert list(rows[0]) == COLUMNS and len(rows) == 2357
    by_id = {c["customer_id"]: c for c in auto_json["customers"]}
    for row in rows[::200]:
        j = by_id[row["customer_id"]]
        assert float(row["p_alive"]) == pytest.approx(j["p_alive"], rel=1e-12)
        assert row["clv"] == f"{j['clv']:.2f}"
        assert row["next_order_low"] == (j["next_order_low"] or "")
    assert "scored 2,357 customers" in result.stderr and "chose" in result.stderr


def test_table_top_and_horizons(cdnow_path: Path) -> None:
    base = ["predict", str(cdnow_path), "--preset", "cdnow", "--model", "bgnbd", "--unit", "week"]
    result = runner.invoke(app, base)
    assert result.exit_code == 0, result.output
    assert "Repurchase prediction (BG/NBD, next 90 days, as of 1998-06-30)" in result.stdout
    assert "showing the top 20 of 2,357" in result.stderr
    top = json.loads(_invoke(*base, "--format", "json", "--top", "5", "--horizon", "12w"))
    assert top["horizon_days"] == 84 and top["as_of"] == "1998-06-30" and top["unit"] == "week"
    clv = [c["clv"] for c in top["customers"]]
    assert len(clv) == 5 and clv == sorted(clv, reverse=True)
    months = json.loads(_invoke(*base, "--format", "json", "--top", "1", "--horizon", "3m"))
    assert months["horizon_days"] == 92  # 1998-06-30 → 1998-09-30
    zh = runner.invoke(app, [*base, "--lang", "zh", "--top", "3"])
    assert "复购预测" in zh.stdout and "流失风险" in zh.stdout


def test_from_the_configured_store(cdnow_path: Path, cdnow_orders: pa.Table) -> None:
    _invoke("import", str(cdnow_path), "--preset", "cdnow", "--timezone", ZONE)
    body = json.loads(
        _invoke("predict", "--format", "json", "--model", "bgnbd", "--as-of", "1997-09-30")
    )
    lib = predict(cdnow_orders, as_of=date(1997, 9, 30), timezone=ZONE, model="bgnbd")
    assert len(body["customers"]) == 2357
    assert body["params"] == pytest.approx(lib.params, rel=1e-9)


@pytest.mark.parametrize(
    ("args", "code", "text"),
    [
        (["--horizon", "90x"], 2, "--horizon '90x'"),
        (["--horizon", "0d"], 2, "between 1 day"),
        (["--model", "lifetimes"], 2, "--model must be one of auto, bgnbd, pnbd, mbgnbd"),
        (["--format", "xml"], 2, "--format must be one of"),
        (["--as-of", "30/09/1997"], 2, "expected a date YYYY-MM-DD"),
        (["--as-of", "1996-01-01"], 2, "no counted orders on or before 1996-01-01"),
        (["--unit", "month"], 2, "--unit must be day or week"),
        (["--top", "0"], 2, "--top must be at least 1"),
        (["--margin", "2"], 2, "margin"),
        (["--currency", "EUR"], 2, "no counted orders"),
        (["--timezone", "Mars/Base"], 2, "time zone"),
    ],
)
def test_bad_input_exits_with_a_clear_message(
    capsys: pytest.CaptureFixture[str], cdnow_path: Path, args: list[str], code: int, text: str
) -> None:
    status, err = _fail(capsys, "predict", str(cdnow_path), "--preset", "cdnow", *args)
    assert status == code, err
    assert text in err and "error [input." in err


def test_a_model_that_cannot_fit_exits_6(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    one_timers = tmp_path / "orders.csv"
    one_timers.write_text(
        "order_id,customer_id,ordered_at,amount\n"
        + "".join(f"{i},c{i},2024-01-{1 + i % 28:02d} 10:00,10\n" for i in range(50)),
        encoding="utf-8",
    )
    status, err = _fail(capsys, "predict", str(one_timers), "--format", "json")
    assert status == 6 and "model.not_identified" in err and "repeat order" in err


def test_the_installed_command(cdnow_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "huitouke",
            "predict",
            str(cdnow_path),
            "--preset",
            "cdnow",
            "--model",
            "bgnbd",
            "--format",
            "csv",
            "--top",
            "3",
            "--timezone",
            ZONE,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert lines[0].split(",") == COLUMNS and len(lines) == 4
    missing = runner.invoke(app, ["predict", "no-such-file.csv"])
    assert missing.exit_code == 2 and "no-such-file.csv" in missing.output
