"""The analytics commands end to end: files through the importer, the configured store, and the
output formats."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from huitouke.analytics import Analytics
from huitouke.cli.main import app
from huitouke.settings import get_settings

from . import reference as ref
from .helpers import order, orders_table

runner = CliRunner()

CSV = """order_id,customer_id,ordered_at,amount,status
1,a,2024-01-31 23:59,10,paid
2,a,2024-02-01 00:00,20,paid
3,b,2024-02-03 10:00,5.5,paid
4,b,2024-02-04 10:00,7,refunded
5,c,2024-03-09 08:00,12.25,paid
6,a,2024-03-10 09:00,8,paid
7,c,2024-03-10 09:30,1,cancelled
"""

#: The same orders built directly (merchant zone Asia/Shanghai), independent of the importer.
ROWS = [
    order("1", "a", "2024-01-31 23:59", "10"),
    order("2", "a", "2024-02-01 00:00", "20"),
    order("3", "b", "2024-02-03 10:00", "5.5"),
    order("4", "b", "2024-02-04 10:00", "7", status="refunded", refunded="7"),
    order("5", "c", "2024-03-09 08:00", "12.25"),
    order("6", "a", "2024-03-10 09:00", "8"),
    order("7", "c", "2024-03-10 09:30", "1", status="cancelled"),
]


@pytest.fixture
def generic_csv(tmp_path: Path) -> Path:
    p = tmp_path / "orders.csv"
    p.write_text(CSV, encoding="utf-8")
    return p


@pytest.fixture(autouse=True)
def _settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("HUITOUKE_DATABASE_URL", f"sqlite:///{tmp_path / 'store.db'}")
    monkeypatch.setenv("HUITOUKE_TIMEZONE", "Asia/Shanghai")
    monkeypatch.setenv("HUITOUKE_LANG", "en")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def _invoke(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, (result.output, result.exception)
    return result.stdout


def test_metrics_json_from_a_generic_file(generic_csv: Path) -> None:
    pytest.importorskip("huitouke.importing")
    body = json.loads(_invoke("metrics", str(generic_csv), "--format", "json"))
    table = orders_table(ROWS)
    assert body == Analytics(table, timezone="Asia/Shanghai").metrics_json("month")
    want = ref.period_metrics(table.to_pandas(), "Asia/Shanghai", "month")
    assert [p["period"] for p in body["periods"]] == ["2024-01", "2024-02", "2024-03"]
    for got, w in zip(body["periods"], want, strict=True):
        assert got["buyers"] == w["buyers"] and got["orders"] == w["orders"]
        assert got["revenue"] == float(w["revenue"])
        assert got["customer_repurchase_rate"] == w["customer_repurchase_rate"]
        assert got["buyback_rate"] == w["buyback_rate"]
    assert body["periods"][-1]["buyback_rate"] is None
    for p in body["periods"]:
        for k in (
            "customer_repurchase_rate",
            "in_period_repurchase_rate",
            "order_repurchase_rate",
            "returning_revenue_share",
        ):
            assert p[k] is None or 0 <= p[k] <= 1


def test_metrics_csv_table_and_as_of(generic_csv: Path) -> None:
    pytest.importorskip("huitouke.importing")
    out = _invoke("metrics", str(generic_csv), "--format", "csv", "--period", "quarter")
    lines = out.strip().splitlines()
    assert lines[0].startswith("period,period_start,period_end,buyers,orders,revenue")
    assert lines[1].startswith("2024-Q1,2024-01-01,2024-03-31,3,5,55.75")
    assert "2024-02" in _invoke("metrics", str(generic_csv), "--format", "table")
    cut = json.loads(
        _invoke("metrics", str(generic_csv), "--format", "json", "--as-of", "2024-02-29")
    )
    assert [p["period"] for p in cut["periods"]] == ["2024-01", "2024-02"]
    assert cut["periods"][-1]["buyback_rate"] is None  # March does not exist yet on Feb 29


def _seed_store() -> None:
    from huitouke.store.db import open_store
    from huitouke.store.tables import orders

    store = open_store(get_settings().database_url)
    now = datetime.now(UTC)
    with store.begin() as conn:
        conn.execute(orders.insert(), [{**r, "updated_at": now} for r in ROWS])
    store.dispose()


def test_store_path_when_no_file_is_given() -> None:
    _seed_store()
    body = json.loads(_invoke("metrics", "--format", "json"))
    assert body == Analytics(orders_table(ROWS), timezone="Asia/Shanghai").metrics_json("month")
    customers = json.loads(_invoke("customers", "--format", "json", "--as-of", "2024-03-31"))
    by = {c["customer_id"]: c for c in customers}
    assert by["a"]["orders"] == 3 and by["a"]["spend"] == 38.0
    assert by["a"]["last_order_at"].startswith("2024-03-10T09:00:00+08:00")
    assert by["c"]["layer"] == "new" and by["c"]["lifecycle"] == "acquisition"
    assert by["b"]["layer"] == "cooling"  # 57 days since Feb 3
    assert set(by) == {"a", "b", "c"}


def test_customers_and_segments_export_to_excel_and_csv(tmp_path: Path) -> None:
    _seed_store()
    from openpyxl import load_workbook

    xlsx = tmp_path / "customers.xlsx"
    _invoke("customers", "--format", "xlsx", "--out", str(xlsx), "--as-of", "2024-03-31")
    ws = load_workbook(xlsx).active
    header = [c.value for c in ws[1]]
    assert header[:3] == ["customer_id", "orders", "spend"]
    assert {"next_expected_date", "rfm_segment", "layer", "lifecycle", "cycle_days"} <= set(header)
    assert ws.max_row == 4
    seg = tmp_path / "segments.xlsx"
    _invoke("segments", "--format", "xlsx", "--out", str(seg), "--as-of", "2024-03-31")
    wb = load_workbook(seg)
    assert wb.sheetnames == ["rfm", "layers"]
    csv_out = _invoke("segments", "--format", "csv", "--as-of", "2024-03-31")
    assert "# layers" in csv_out and "push the second order" in csv_out
    body = json.loads(_invoke("segments", "--format", "json", "--as-of", "2024-03-31"))
    assert sum(x["customers"] for x in body["layers"]) == 3
    due = json.loads(
        _invoke("customers", "--format", "json", "--as-of", "2024-03-31", "--due-within", "30")
    )
    assert all("2024-03-31" <= c["next_expected_date"] <= "2024-04-30" for c in due)


def test_cohorts_ladder_decompose(tmp_path: Path) -> None:
    _seed_store()
    coh = json.loads(_invoke("cohorts", "--format", "json", "--value", "customers"))
    assert coh[0] == {"cohort": "2024-01", "k0": 1, "k1": 1, "k2": 1}
    lad = json.loads(_invoke("ladder", "--format", "json", "--max-k", "2"))
    assert lad[0]["reached_k"] == 3 and lad[0]["reached_k_plus_1"] == 1
    visitors = tmp_path / "visitors.csv"
    visitors.write_text("period,visitors\n2024-01,100\n2024-02,50\n")
    dec = json.loads(_invoke("decompose", "--format", "json", "--visitors", str(visitors)))
    jan = dec[0]
    assert jan["visitors"] == 100 and jan["conversion"] == 0.01
    for row in dec:
        if row["visitors"]:
            product = row["visitors"] * row["conversion"] * row["aov"] * row["orders_per_buyer"]
            assert product == pytest.approx(row["revenue"])
    bad = tmp_path / "bad.csv"
    bad.write_text("period,visitors\n2024-01,many\n")
    result = runner.invoke(app, ["decompose", "--visitors", str(bad)])
    assert "line 2" in str(result.exception)


def test_churn_reasons_command_and_error_exit(tmp_path: Path) -> None:
    survey = tmp_path / "survey.csv"
    survey.write_text("customer_id,reason\na,price\nb,price\nc,quality\n")
    body = json.loads(_invoke("churn-reasons", str(survey), "--format", "json"))
    assert body[0] == {
        "reason": "price",
        "customers": 2,
        "share": 2 / 3,
        "share_pct": pytest.approx(200 / 3),
    }
    bad = tmp_path / "bad.csv"
    bad.write_text("who,why\na,price\n")
    proc = subprocess.run(
        [sys.executable, "-m", "huitouke", "churn-reasons", str(bad)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert "input.missing_column" in proc.stderr and "customer_id" in proc.stderr


def test_decimal_revenue_in_the_store_round_trip() -> None:
    _seed_store()
    from huitouke.store.db import open_store

    loaded = open_store(get_settings().database_url).load_orders()
    pm = Analytics(loaded, timezone="Asia/Shanghai").period_metrics("month")
    assert pm["revenue"].tolist() == [Decimal("10"), Decimal("25.5"), Decimal("20.25")]


def test_metrics_on_the_bundled_cdnow_file_match_the_reference(cdnow_pd) -> None:
    """The importer's CDNOW through the CLI gives the reference's numbers (dates are
    merchant-zone dates on both sides)."""
    pytest.importorskip("huitouke.importing")
    from huitouke.data import CDNOW_MASTER

    body = json.loads(_invoke("metrics", str(CDNOW_MASTER), "--format", "json"))
    want = ref.period_metrics(cdnow_pd, "Asia/Shanghai", "month")
    assert len(body["periods"]) == len(want) == 18
    for got, w in zip(body["periods"], want, strict=True):
        assert got["period"] == w["period"]
        for k in ("buyers", "orders", "returning_buyers", "new_buyers"):
            assert got[k] == w[k], (got["period"], k)
        for k in (
            "customer_repurchase_rate",
            "in_period_repurchase_rate",
            "order_repurchase_rate",
            "buyback_rate",
        ):
            assert got[k] == (None if w[k] is None else pytest.approx(w[k], rel=1e-12)), (
                got["period"],
                k,
            )
        assert got["revenue"] == pytest.approx(float(w["revenue"]), abs=0.005)


def _run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        [sys.executable, "-m", "huitouke", *args],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, **env},
    )


@pytest.mark.parametrize("command", ["metrics", "customers", "segments"])
def test_empty_or_missing_store_is_an_error_not_an_empty_answer(
    tmp_path: Path, command: str
) -> None:
    db = tmp_path / "missing.db"
    for lang, needle in (("en", "import first, or --sample"), ("zh", "中没有订单")):
        env = {"HUITOUKE_DATABASE_URL": f"sqlite:///{db}", "HUITOUKE_LANG": lang}
        proc = _run(command, "--format", "json", env=env)
        assert proc.returncode == 2, (proc.stdout, proc.stderr)
        assert proc.stdout == ""
        assert "input.no_orders" in proc.stderr and needle in proc.stderr
        assert f"sqlite:///{db}" in proc.stderr
        assert not db.exists(), "looking at the store must not create it"
    from huitouke.store.db import open_store

    open_store(f"sqlite:///{db}").dispose()  # migrated, but no orders
    proc = _run(command, "--format", "json", env={"HUITOUKE_DATABASE_URL": f"sqlite:///{db}"})
    assert proc.returncode == 2 and "input.no_orders" in proc.stderr, proc.stderr


def test_sample_option_of_the_analytics_commands(tmp_path: Path) -> None:
    body = json.loads(_invoke("metrics", "--sample", "--format", "json", "--period", "year"))
    assert [p["period"] for p in body["periods"]] == ["1997", "1998"]
    assert sum(p["orders"] for p in body["periods"]) == 69_659
    result = runner.invoke(app, ["metrics", "--sample", __file__])
    assert result.exit_code != 0


def test_customers_table_reads_in_the_chosen_language() -> None:
    """zh tables show segment, layer and lifecycle names and wall-clock times — not
    `champions` or ISO timestamps; files keep the codes."""
    _seed_store()
    args = ["customers", "--format", "table", "--as-of", "2024-03-31", "--no-predict"]
    zh = _invoke(*args, "--lang", "zh")
    assert "新顾客" in zh and "观察期" in zh and "获取期" in zh  # c: new; b: cooling
    assert "2024-03-10 09:00" in zh  # a's last order, Shanghai wall clock
    assert "T09:00" not in zh and "+08:00" not in zh
    for code in ("cooling", "acquisition", "new ", "own"):
        assert code not in zh, code
    en = _invoke(*args, "--lang", "en")
    assert "Cooling" in en and "Acquisition" in en and "2024-03-10 09:00" in en
    body = json.loads(_invoke("customers", "--format", "json", "--as-of", "2024-03-31"))
    assert {c["layer"] for c in body} >= {"new", "cooling"}  # machine formats keep codes
