"""Fixtures of the report tests: a small hand-checked order file and the bundled CDNOW
report (built once per session — the master file takes a few seconds)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

#: Orders in Asia/Shanghai wall time. Hand-computed monthly metrics are in
#: test_report_numbers.py; B's orders straddle the January/February boundary at midnight,
#: C's refunded and D's cancelled orders must not count.
SMALL_CSV = """order_id,customer_id,ordered_at,amount,status
o1,A,2024-01-05 10:00:00,100.00,paid
o2,A,2024-01-20 12:00:00,50.00,paid
o3,B,2024-01-31 23:30:00,60.00,paid
o4,A,2024-02-10 09:00:00,80.00,paid
o5,B,2024-02-01 00:10:00,70.00,paid
o6,C,2024-02-15 15:00:00,40.00,paid
o7,C,2024-02-16 15:00:00,30.00,refunded
o8,D,2024-02-20 08:00:00,90.00,cancelled
o9,E,2024-03-03 11:00:00,20.00,paid
o10,A,2024-03-04 18:00:00,10.00,paid
"""


@pytest.fixture
def small_csv(tmp_path: Path) -> Path:
    path = tmp_path / "orders.csv"
    path.write_text(SMALL_CSV, encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def sample_data() -> dict[str, Any]:
    """The report document on the bundled CDNOW master, as `huitouke report --sample` builds it."""
    from huitouke.cli.report_cmd import load_report_orders
    from huitouke.report import build_report_data

    loaded = load_report_orders(
        None, preset=None, timezone="Asia/Shanghai", sample=True, database_url="sqlite://"
    )
    return build_report_data(
        loaded.orders, timezone="Asia/Shanghai", source=loaded.source, lines=loaded.lines
    )


@pytest.fixture(scope="session")
def sample_html(
    sample_data: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    """The sample report rendered in both languages, as files."""
    from huitouke.report import render_html

    out = tmp_path_factory.mktemp("report")
    paths = {}
    for lang in ("zh", "en"):
        p = out / f"report_{lang}.html"
        p.write_text(render_html(sample_data, lang), encoding="utf-8")
        paths[lang] = p
    return paths


@pytest.fixture(scope="session")
def reminders_store(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A SQLite store where two reminder journeys really ran (see reminders_store.py)."""
    from .reminders_store import build_reminders_store

    work = tmp_path_factory.mktemp("reminders")
    url = f"sqlite:///{work / 'store.db'}"
    return {"url": url, **build_reminders_store(url, work)}
