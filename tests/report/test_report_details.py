"""Issue 10 §4 report details: "the next 7 days" are 7 days, the last histogram bar is
labelled "≥ X", and the RFM "new" and the layer "new" counts are explained side by side."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from .htmlparse import Report, parse_number
from .test_report_numbers import run_cli

#: as of 2024-03-20 (the last order). Cycles: X 6 days (next 03-22), Y 6 days (next 03-26,
#: the 7th day), W 7 days (next 03-27, the 8th day: not due), Z one order (the shop's
#: median gap, 6 days: next 03-26).
DUE_CSV = """order_id,customer_id,ordered_at,amount,status
x1,X,2024-03-10 10:00:00,30.00,paid
x2,X,2024-03-16 10:00:00,30.00,paid
y1,Y,2024-03-14 10:00:00,30.00,paid
y2,Y,2024-03-20 09:00:00,30.00,paid
w1,W,2024-03-13 10:00:00,30.00,paid
w2,W,2024-03-20 10:00:00,30.00,paid
z1,Z,2024-03-20 11:00:00,30.00,paid
"""


@pytest.fixture(scope="module")
def due_report(tmp_path_factory: pytest.TempPathFactory) -> Report:
    tmp = tmp_path_factory.mktemp("details")
    src = tmp / "orders.csv"
    src.write_text(DUE_CSV, encoding="utf-8")
    out = tmp / "r.html"
    res = run_cli(
        "report", str(src), "--lang", "zh", "--out", str(out), "--timezone", "Asia/Shanghai",
        "--no-predictions",
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    return Report(out.read_text(encoding="utf-8"))


def test_next_seven_days_are_seven_days(due_report: Report) -> None:
    due = due_report.data["due"]
    assert (due["start"], due["end"], due["days"]) == ("2024-03-20", "2024-03-26", 7)
    assert [d["date"] for d in due["by_day"]] == [f"2024-03-{d}" for d in range(20, 27)]
    assert sorted(c["customer_id"] for c in due["customers"]) == ["X", "Y", "Z"]  # not W
    assert due["count"] == 3 and parse_number(due_report.kpis["due"]) == 3
    chart = json.loads(due_report.scripts["chart-due-json"])
    assert len(chart["data"][0]["x"]) == 7
    assert "3月20日" in due_report.kpi_block("due") and "3月26日" in due_report.kpi_block("due")


def test_last_histogram_bar_is_open_ended(sample_data: dict[str, Any]) -> None:
    from huitouke.report import render_html

    report = Report(render_html(sample_data, "en"))
    bars = json.loads(report.scripts["chart-cycle-json"])["data"][0]
    last = sample_data["cycle"]["histogram"]["edges"][-1]
    assert bars["customdata"][-1] == f"≥ {last:.0f}"
    assert bars["text"][-1] == f"≥ {last:.0f}" and set(bars["text"][:-1]) == {""}
    assert re.fullmatch(r"\d+–\d+", bars["customdata"][0])
    pred = json.loads(report.scripts["chart-value-json"])["data"][0]
    assert pred["customdata"][-1].startswith("≥ ") and pred["text"][-1].startswith("≥ ")


@pytest.fixture(scope="module")
def shop_data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The report document of the mid-January export (tests/partial_export.py), read the
    way `huitouke report FILE` reads it."""
    import partial_export as shop
    from huitouke.cli.analytics_cmd import load_orders
    from huitouke.report import build_report_data

    src = tmp_path_factory.mktemp("shop") / "orders.csv"
    src.write_text(shop.csv_text(), encoding="utf-8")
    loaded = load_orders(src, preset=None, timezone="Asia/Shanghai")
    return build_report_data(
        loaded.orders,
        timezone="Asia/Shanghai",
        source={"kind": "file", "label": src.name},
        predictions=False,
    )


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_the_two_new_counts_are_explained_side_by_side(
    shop_data: dict[str, Any], lang: str
) -> None:
    from huitouke.report import render_html

    html = render_html(shop_data, lang)
    rfm_new = next(r["customers"] for r in shop_data["rfm"] if r["key"] == "new")
    layer_new = next(r["customers"] for r in shop_data["layers"] if r["key"] == "new")
    assert rfm_new != layer_new  # why the note is needed
    for section in ("rfm", "layers"):
        body = html.split(f'<section class="card" id="{section}">', 1)[1].split("</section>", 1)[0]
        note = next(p for p in re.findall(r'<p class="stat">(.*?)</p>', body, re.S) if "R = 5" in p)
        assert f"{rfm_new:,}" in note and f"{layer_new:,}" in note, note
        assert "45" in note
