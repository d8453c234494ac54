"""Issue 10 §2: an export that ends in the middle of a month. Read naively, December's
回购率 reads 12.2% (true 21.0%) and January's 复购率 2.0% (true 7.1%); the partial month must
be marked, and a buy-back rate whose next month is partial must be null with a reason.

The export is a generic CSV read through the real command (tests/partial_export.py)."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest
from typer.testing import CliRunner

import partial_export as shop
from huitouke.analytics.compare import headline
from huitouke.cli.main import app
from huitouke.settings import get_settings

runner = CliRunner()


@pytest.fixture(autouse=True)
def _settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("HUITOUKE_DATABASE_URL", f"sqlite:///{tmp_path / 'store.db'}")
    monkeypatch.setenv("HUITOUKE_TIMEZONE", "Asia/Shanghai")
    monkeypatch.setenv("HUITOUKE_LANG", "zh")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def _write(tmp_path: Path, until: date | None) -> Path:
    p = tmp_path / ("export.csv" if until else "full.csv")
    p.write_text(shop.csv_text(until), encoding="utf-8")
    return p


def _metrics(*args: str) -> dict:
    res = runner.invoke(app, ["metrics", *args, "--format", "json"])
    assert res.exit_code == 0, (res.output, res.exception)
    return json.loads(res.stdout)


def test_export_ending_mid_january_marks_january_and_holds_back_decembers_buyback(
    tmp_path: Path,
) -> None:
    body = _metrics(str(_write(tmp_path, shop.EXPORT_END)))
    assert body["coverage_end"] == "2025-01-19"
    nov, dec, jan = body["periods"]
    assert (nov["period"], dec["period"], jan["period"]) == ("2024-11", "2024-12", "2025-01")
    assert (nov["complete"], dec["complete"], jan["complete"]) == (True, True, False)
    # the naive numbers are still the facts of the partial month, but marked as partial…
    assert jan["in_period_repurchase_rate"] == pytest.approx(shop.JANUARY_RATE_NAIVE)
    # …and December's buy-back rate, which would read 12.2%, is null with the reason
    assert dec["buyback_rate"] is None
    assert dec["buyback_null_reason"] == "next_period_incomplete"
    assert nov["buyback_rate"] == pytest.approx(shop.NOVEMBER_BUYBACK)
    assert nov["buyback_null_reason"] is None
    # the headline never uses the partial month or the 12.2%
    head = body["headline"]
    assert head["period"] == "2024-12" and head["previous_period"] == "2024-11"
    assert head["buyback_period"] == "2024-11"
    assert head["metrics"]["buyback_rate"]["value"] == pytest.approx(shop.NOVEMBER_BUYBACK)


def test_the_same_shop_once_january_is_complete_shows_the_true_rates(tmp_path: Path) -> None:
    full = str(_write(tmp_path, None))
    body = _metrics(full, "--as-of", "2025-01-31")
    _nov, dec, jan = body["periods"]
    assert jan["complete"] is True
    assert dec["buyback_rate"] == pytest.approx(shop.DECEMBER_BUYBACK_TRUE)  # 21.0%
    assert jan["in_period_repurchase_rate"] == pytest.approx(shop.JANUARY_RATE_TRUE)  # 7.1%
    head = body["headline"]
    assert head["period"] == "2025-01" and head["buyback_period"] == "2024-12"
    m = head["metrics"]["in_period_repurchase_rate"]
    assert m["previous"] == 0.0 and m["vs_previous"] == pytest.approx(0.071)
    assert m["change_kind"] == "points"
    # the full history without --as-of ends on 27 January: January still partial
    assert _metrics(full)["periods"][-1]["complete"] is False


def test_table_marks_the_partial_month_with_a_footnote(tmp_path: Path) -> None:
    res = runner.invoke(app, ["metrics", str(_write(tmp_path, shop.EXPORT_END)), "--lang", "zh"])
    assert res.exit_code == 0, res.output
    assert "2025-01 *" in res.stdout and "2024-12 *" not in res.stdout
    assert "不完整" in res.stdout and "2025-01-19" in res.stdout
    res = runner.invoke(app, ["metrics", str(_write(tmp_path, shop.EXPORT_END)), "--lang", "en"])
    assert "incomplete period" in res.stdout.lower() and "2025-01 *" in res.stdout


def test_csv_and_xlsx_carry_the_flags(tmp_path: Path) -> None:
    from openpyxl import load_workbook

    export = str(_write(tmp_path, shop.EXPORT_END))
    res = runner.invoke(app, ["metrics", export, "--format", "csv"])
    header, *rows = res.stdout.strip().splitlines()
    assert header.endswith(",complete,buyback_null_reason")
    assert rows[1].endswith(",True,next_period_incomplete")
    out = tmp_path / "metrics.xlsx"
    res = runner.invoke(app, ["metrics", export, "--format", "xlsx", "--out", str(out)])
    assert res.exit_code == 0, res.output
    ws = load_workbook(out).active
    values = [[c.value for c in row] for row in ws.iter_rows()]
    assert values[0][0] == "period" and "complete" in values[0]
    col = values[0].index("complete")
    assert [r[col] for r in values[1:]] == [True, True, False]
    rate = values[0].index("buyback_rate")
    assert values[1][rate] == pytest.approx(shop.NOVEMBER_BUYBACK) and values[2][rate] is None


def test_headline_compares_with_the_previous_and_the_same_period_a_year_ago() -> None:
    def p(label: str, start: str, rate: float | None, complete: bool = True) -> dict:
        return {
            "period": label,
            "period_start": start,
            "complete": complete,
            "buyers": 10,
            "in_period_repurchase_rate": rate,
            "buyback_rate": rate,
        }

    periods = [
        p("2023-12", "2023-12-01", 0.05),
        p("2024-11", "2024-11-01", 0.08),
        p("2024-12", "2024-12-01", 0.10),
        p("2025-01", "2025-01-01", 0.01, complete=False),
    ]
    periods[-2]["buyback_rate"] = None  # January not complete
    periods[-1]["buyback_rate"] = None
    h = headline(periods, "month")
    assert (h["period"], h["previous_period"], h["year_ago_period"]) == (
        "2024-12",
        "2024-11",
        "2023-12",
    )
    r = h["metrics"]["in_period_repurchase_rate"]
    assert r["vs_previous"] == pytest.approx(0.02) and r["vs_year_ago"] == pytest.approx(0.05)
    assert h["buyback_period"] == "2024-11" and h["buyback_year_ago_period"] is None
    assert h["metrics"]["buyers"]["vs_previous"] == 0.0
    # weeks: 52 weeks back keeps the weekday; days: 29 February → 28 February
    w = headline([p("2024-W03", "2024-01-15", 0.1), p("2025-W03", "2025-01-13", 0.2)], "week")
    assert w["year_ago_period"] == "2024-W03"
    d = headline([p("2023-02-28", "2023-02-28", 0.1), p("2024-02-29", "2024-02-29", 0.2)], "day")
    assert d["year_ago_period"] == "2023-02-28"
