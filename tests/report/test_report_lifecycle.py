"""The report's lifecycle stages are those of `huitouke customers`: one per-customer view
with one model policy (its P(alive) moves customers to decline / lost), for the same file
and for the same store, through the installed CLI's commands."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from huitouke.analytics.segments import LIFECYCLE_STAGES
from huitouke.cli.main import app
from huitouke.data import CDNOW_SAMPLE
from huitouke.settings import get_settings

from .htmlparse import Report

runner = CliRunner()
ZONE = "Asia/Shanghai"


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    monkeypatch.setenv("HUITOUKE_DATABASE_URL", f"sqlite:///{tmp_path / 'store.db'}")
    monkeypatch.setenv("HUITOUKE_TIMEZONE", ZONE)
    monkeypatch.setenv("HUITOUKE_LANG", "en")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def _run(*args: str) -> str:
    r = runner.invoke(app, list(args))
    assert r.exit_code == 0, r.output
    return r.stdout


def _cli_stages(*source: str) -> dict[str, int]:
    rows = json.loads(_run("customers", *source, "--format", "json"))
    return dict(Counter(str(row["lifecycle"]) for row in rows))


def _report_stages(tmp_path: Path, *source: str) -> dict[str, int]:
    out = tmp_path / "report.html"
    _run("report", *source, "--out", str(out))
    data = Report(out.read_text(encoding="utf-8")).data
    assert data["predictions"]["status"] == "ok"
    return {r["key"]: r["customers"] for r in data["lifecycle"] if r["customers"]}


def _without_model(*source: str) -> dict[str, int]:
    rows = json.loads(_run("customers", *source, "--format", "json", "--no-predict"))
    return dict(Counter(str(row["lifecycle"]) for row in rows))


def test_report_lifecycle_equals_the_customers_command_for_a_file(tmp_path: Path) -> None:
    source = (str(CDNOW_SAMPLE), "--preset", "cdnow", "--as-of", "1998-06-30")
    cli = _cli_stages(*source)
    assert set(cli) <= set(LIFECYCLE_STAGES)
    assert _report_stages(tmp_path, *source) == cli
    # the model's P(alive) matters here: without it the stages would be others
    assert _without_model(*source) != cli


def test_report_lifecycle_equals_the_customers_command_for_a_store(tmp_path: Path) -> None:
    _run("import", str(CDNOW_SAMPLE), "--preset", "cdnow")
    cli = _cli_stages("--as-of", "1998-06-30")
    assert sum(cli.values()) == 2357
    assert _report_stages(tmp_path, "--as-of", "1998-06-30") == cli
