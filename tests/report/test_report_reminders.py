"""The reminders section: journey and insert-campaign results of the store, equal to
`huitouke journeys results --format json`; absent on files and the sample; a note when the
store has none."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from .htmlparse import Report, parse_number
from .reminders_store import REPORT_AS_OF, build_reminders_store
from .test_report_numbers import _close, run_cli

AS_OF = REPORT_AS_OF.isoformat()


def _cli_results(url: str) -> dict[str, Any]:
    res = run_cli(
        "journeys", "results", "--as-of", AS_OF, "--format", "json",
        env={"HUITOUKE_DATABASE_URL": url},
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    return dict(json.loads(res.stdout))


def _report(url: str, out: Path, lang: str, *extra: str) -> Report:
    res = run_cli(
        "report", "--as-of", AS_OF, "--lang", lang, "--out", str(out), "--no-predictions", *extra,
        env={"HUITOUKE_DATABASE_URL": url},
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    return Report(out.read_text(encoding="utf-8"))


def _check_visible(report: Report, rem: dict[str, Any]) -> None:
    """Every visible cell of the section shows the embedded number."""
    journeys = rem["journeys"]
    reach = report.table("table-journeys-reach")
    assert len(reach) == len(journeys)
    for row, j in zip(reach, journeys, strict=True):
        for key in (
            "audience", "treatment", "holdout", "in_window", "sent", "delivered", "clicked",
            "converted_treatment", "converted_holdout", "attributed_orders",
        ):  # fmt: skip
            assert parse_number(row[key]) == j[key], (j["journey_id"], key)
    effect = report.table("table-journeys-effect")
    for row, j in zip(effect, journeys, strict=True):
        for key in ("conversion_treatment", "conversion_holdout", "incremental_repurchase", "roi"):
            assert _close(row[key], j[key], "pct"), (j["journey_id"], key, row[key])
        assert _close(row["ci_low"], j["incremental_ci95"][0], "pct")
        assert _close(row["ci_high"], j["incremental_ci95"][1], "pct")
        for key in (
            "incremental_revenue", "sms_cost", "coupon_cost", "cost",
            "cost_per_incremental_customer",
        ):  # fmt: skip
            assert _close(row[key], j[key], "num"), (j["journey_id"], key, row[key])
    inserts = report.table("table-inserts")
    for row, c in zip(inserts, rem["insert_campaigns"], strict=True):
        assert row["campaign_id"] == c["campaign_id"]
        for key in ("printed", "claimed", "converted", "coupons_redeemed"):
            assert parse_number(row[key]) == c[key]
        assert _close(row["revenue"], c["revenue"], "num")
        assert _close(row["coupon_cost"], c["coupon_cost"], "num")


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_reminders_section_equals_journeys_results(
    reminders_store: dict[str, Any], tmp_path: Path, lang: str
) -> None:
    url = reminders_store["url"]
    cli = _cli_results(url)
    report = _report(url, tmp_path / "r.html", lang)
    rem = report.data["reminders"]
    assert rem["as_of"] == cli["as_of"] == AS_OF
    assert rem["journeys"] == cli["journeys"]
    assert rem["insert_campaigns"] == cli["insert_campaigns"]
    assert [j["journey_id"] for j in rem["journeys"]] == ["care_note", "coupon_push"]
    # the store's story, independently of the code under test
    push = next(j for j in rem["journeys"] if j["journey_id"] == "coupon_push")
    assert sum(j["sent"] for j in rem["journeys"]) == reminders_store["sent"]
    assert push["coupons_redeemed"] == reminders_store["coupons_redeemed"] > 0
    assert Decimal(push["coupon_cost"]) == 10 * push["coupons_redeemed"]  # 10.00 coupons
    assert Decimal(push["cost"]) == Decimal(push["sms_cost"]) + Decimal(push["coupon_cost"])
    [cards] = rem["insert_campaigns"]
    assert (cards["printed"], cards["claimed"], cards["coupons_redeemed"]) == (4, 2, 1)
    assert cards["coupon_cost"] == "10.00"
    # the page: title, journey names in the language, the chart and the tables
    title = {"zh": "复购提醒效果", "en": "Reminders and their effect"}[lang]
    assert '<section class="card" id="reminders">' in report.html and title in report.html
    assert {"zh": "新客第二单券", "en": "New-customer coupon"}[lang] in report.html
    _check_visible(report, rem)
    assert "0.045 CNY" in report.html  # the SMS price per segment in full, not rounded to cents
    fig = json.loads(report.scripts["chart-uplift-json"])
    [trace] = fig["data"]
    assert trace["x"] == [j["incremental_repurchase"] for j in rem["journeys"]]
    lows = [x - m for x, m in zip(trace["x"], trace["error_x"]["arrayminus"], strict=True)]
    highs = [x + p for x, p in zip(trace["x"], trace["error_x"]["array"], strict=True)]
    assert lows == pytest.approx([j["incremental_ci95"][0] for j in rem["journeys"]])
    assert highs == pytest.approx([j["incremental_ci95"][1] for j in rem["journeys"]])


def test_reminders_section_on_postgresql(postgres_url: str, tmp_path: Path) -> None:
    """The same journeys on PostgreSQL: the report and the CLI agree there too."""
    build_reminders_store(postgres_url, tmp_path)
    cli = _cli_results(postgres_url)
    rem = _report(postgres_url, tmp_path / "r.html", "en").data["reminders"]
    assert rem["journeys"] == cli["journeys"] and rem["insert_campaigns"] == cli["insert_campaigns"]
    assert {j["journey_id"] for j in rem["journeys"]} == {"care_note", "coupon_push"}


def test_no_reminders_section_for_files_and_the_sample(
    small_csv: Path, tmp_path: Path, sample_data: dict[str, Any]
) -> None:
    """Journey results belong to a store: a report on a file or the sample has no section."""
    report = _report(
        f"sqlite:///{tmp_path / 'unused.db'}", tmp_path / "r.html", "en", str(small_csv)
    )
    assert "reminders" not in report.data
    assert 'id="reminders"' not in report.html and "Reminders and their effect" not in report.html
    assert "reminders" not in sample_data


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_store_without_journeys_says_so(tmp_path: Path, lang: str) -> None:
    from huitouke.store.db import open_store
    from huitouke.store.tables import orders

    url = f"sqlite:///{tmp_path / 'store.db'}"
    store = open_store(url)
    at = datetime(2026, 3, 1, 4, tzinfo=UTC)
    with store.begin() as conn:
        conn.execute(
            orders.insert(),
            [
                {
                    "order_id": f"o{i}",
                    "customer_id": f"c{i % 3}",
                    "ordered_at": at.replace(day=1 + i),
                    "amount": Decimal("50"),
                    "currency": "CNY",
                    "status": "paid",
                    "refunded_amount": Decimal(0),
                    "updated_at": at,
                }
                for i in range(6)
            ],
        )
    store.dispose()
    report = _report(url, tmp_path / "r.html", lang)
    rem = report.data["reminders"]
    assert rem["journeys"] == [] and rem["insert_campaigns"] == []
    assert 'id="reminders"' in report.html
    note = {
        "zh": "这个数据库里还没有运行过提醒旅程",
        "en": "No reminder journey has run on this store yet",
    }[lang]
    assert note in report.html
    assert 'id="chart-uplift"' not in report.html and "table-journeys-reach" not in report.html


def test_open_windows_are_not_charted(reminders_store: dict[str, Any]) -> None:
    """On the run day every window is open: the section says so instead of a chart."""
    from huitouke.report import render_html
    from huitouke.report.reminders import reminders_from_store

    from .reminders_store import RUN_DAY

    rem = reminders_from_store(
        reminders_store["url"],
        RUN_DAY,
        window_days=7,
        timezone="Asia/Shanghai",
        price_per_segment=Decimal("0.045"),
        currency="CNY",
    )
    assert all(j["incremental_repurchase"] is None for j in rem["journeys"])
    assert sum(j["in_window"] for j in rem["journeys"]) == 60
    base = _minimal_document()
    for lang, text in (("en", "still open"), ("zh", "归因窗口都还没有结束")):
        report = Report(render_html({**base, "reminders": rem}, lang))
        assert text in report.html and 'id="chart-uplift"' not in report.html
        assert len(report.table("table-journeys-effect")) == 2
        assert all(
            r["incremental_repurchase"] == "—" for r in report.table("table-journeys-effect")
        )


def _minimal_document() -> dict[str, Any]:
    """A report document on a tiny order table (no predictions)."""
    import pyarrow as pa

    from huitouke.core.orders import ORDERS_SCHEMA
    from huitouke.report import build_report_data

    at = datetime(2026, 3, 1, 4, tzinfo=UTC)
    n = 4
    table = pa.Table.from_pydict(
        {
            "order_id": [f"o{i}" for i in range(n)],
            "customer_id": [f"c{i % 2}" for i in range(n)],
            "ordered_at": [at.replace(day=1 + i) for i in range(n)],
            "amount": [Decimal("10")] * n,
            "currency": ["CNY"] * n,
            "status": ["paid"] * n,
            "refunded_amount": [Decimal(0)] * n,
            "channel": [None] * n,
            "source": ["default"] * n,
        },
        schema=ORDERS_SCHEMA,
    )
    return build_report_data(
        table, timezone="Asia/Shanghai", source={"kind": "store", "label": "x"}, predictions=False
    )
