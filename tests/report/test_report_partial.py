"""Issue 10 §2 in the report: an export ending 2025-01-19 made the 回购率 card read 12.2%
(true 21.0%) and the table show January's 复购率 2.0% (true 7.1%) with nothing marking
January as incomplete. The cards now use the last complete month (and the last month whose
buy-back rate is known), say which, and compare with the month before and a year before; the
table, the charts and a note mark the partial month."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

import partial_export as shop

from .htmlparse import Report, parse_number
from .test_report_numbers import run_cli


def _report(tmp_path: Path, lang: str, until: date | None, *extra: str) -> Report:
    src = tmp_path / f"orders-{until}.csv"
    src.write_text(shop.csv_text(until), encoding="utf-8")
    out = tmp_path / f"report-{lang}-{until}.html"
    res = run_cli(
        "report", str(src), "--lang", lang, "--out", str(out), "--timezone", "Asia/Shanghai",
        "--no-predictions", *extra,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    return Report(out.read_text(encoding="utf-8"))


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_cards_skip_the_partial_month_and_say_which_month_they_show(
    tmp_path: Path, lang: str
) -> None:
    report = _report(tmp_path, lang, shop.EXPORT_END)
    # 回购率: never December's 12.2% against a partial January; November's known 25.0%
    bb = parse_number(report.kpis["buyback_rate"])
    assert bb == pytest.approx(shop.NOVEMBER_BUYBACK, abs=0.0005)
    assert bb != pytest.approx(shop.DECEMBER_BUYBACK_NAIVE, abs=0.0005)
    assert "2024-11" in report.kpi_block("buyback_rate")
    # 复购率 and 老客占比: December, the last complete month, named on the card
    rate = report.kpi_block("in_period_repurchase_rate")
    assert "2024-12" in rate and "2025-01" not in rate
    assert parse_number(report.kpis["in_period_repurchase_rate"]) == 0.0
    share = report.kpi_block("returning_buyer_share")
    assert parse_number(report.kpis["returning_buyer_share"]) == pytest.approx(0.1)
    # compared with November: +10.0 percentage points
    assert ("较上月 +10.0 个百分点" if lang == "zh" else "+10.0 pp vs previous month") in share
    # the note says why, the table marks January and explains the mark
    note = report.html.split('id="partial-note">', 1)[1].split("</p>", 1)[0]
    assert "2025-01" in note and "2024-12" in note and "2024-11" in note
    rows = report.table("table-metrics")
    assert [r["period"] for r in rows] == ["2024-11", "2024-12", "2025-01 *"]
    assert rows[1]["buyback_rate"] == "—"  # December's buy-back rate: January is partial
    assert parse_number(rows[2]["in_period_repurchase_rate"]) == pytest.approx(
        shop.JANUARY_RATE_NAIVE, abs=0.0005
    )
    assert 'id="table-metrics-footnote"' in report.html
    data = report.data["metrics"]
    assert [p["complete"] for p in data["periods"]] == [True, True, False]
    assert data["periods"][1]["buyback_null_reason"] == "next_period_incomplete"


def test_charts_hatch_and_dash_the_partial_month(tmp_path: Path) -> None:
    report = _report(tmp_path, "zh", shop.EXPORT_END)
    buyers = json.loads(report.scripts["chart-buyers-json"])
    bars = [t for t in buyers["data"] if t["type"] == "bar"]
    assert bars and all(t["marker"]["pattern"]["shape"] == ["", "", "/"] for t in bars)
    rates = json.loads(report.scripts["chart-rates-json"])
    partial = [t for t in rates["data"] if t.get("meta") == "partial"]
    solid = [t for t in rates["data"] if t.get("meta") != "partial"]
    assert partial and all(t["line"]["dash"] == "dash" for t in partial)
    rate = next(t for t in solid if t["legendgroup"] == "in_period_repurchase_rate")
    assert rate["y"][-1] is None  # the solid line stops at December
    tail = next(t for t in partial if t["legendgroup"] == "in_period_repurchase_rate")
    assert tail["y"][0] is None and tail["y"][-1] == pytest.approx(shop.JANUARY_RATE_NAIVE)
    assert any(s.get("name") == "partial" for s in rates["layout"]["shapes"])


def test_once_january_is_complete_the_cards_show_the_true_rates(tmp_path: Path) -> None:
    report = _report(tmp_path, "zh", None, "--as-of", "2025-01-31")
    assert parse_number(report.kpis["buyback_rate"]) == pytest.approx(
        shop.DECEMBER_BUYBACK_TRUE, abs=0.0005
    )  # 21.0%
    assert parse_number(report.kpis["in_period_repurchase_rate"]) == pytest.approx(
        shop.JANUARY_RATE_TRUE, abs=0.0005
    )  # 7.1%
    assert "2025-01" in report.kpi_block("in_period_repurchase_rate")
    assert "较上月 +7.1 个百分点" in report.kpi_block("in_period_repurchase_rate")
    assert 'id="partial-note"' not in report.html
    assert 'id="table-metrics-footnote"' not in report.html
    assert [r["period"] for r in report.table("table-metrics")][-1] == "2025-01"
