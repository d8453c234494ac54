"""The report in a real headless Chromium: no console errors, every chart drawn, nothing
fetched from the network, a full-page screenshot kept under tests/artifacts/."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from .htmlparse import Report

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
CHARTS = [
    "chart-rates", "chart-buyers", "chart-cohorts", "chart-ladder", "chart-cycle", "chart-rfm",
    "chart-layers", "chart-due", "chart-alive", "chart-value", "chart-calendar", "chart-tracking",
]  # fmt: skip

PREDICTION_CHARTS = ["chart-alive", "chart-value", "chart-calendar", "chart-tracking"]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="headless browser test needs Debian's chromium at /usr/bin/chromium "
        "(scripts/test.sh installs it)",
    ),
]


def _open(path: Path, screenshot: Path, probe: str | None = None) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    console: list[tuple[str, str]] = []
    errors: list[str] = []
    requests: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("console", lambda m: console.append((m.type, m.text)))
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("request", lambda r: requests.append(r.url))
            page.goto(path.resolve().as_uri(), wait_until="load")
            page.wait_for_function(
                "document.querySelectorAll('.js-plotly-plot').length >= "
                "document.querySelectorAll('[data-figure]').length",
                timeout=60_000,
            )
            charts = page.evaluate(
                """() => Array.from(document.querySelectorAll('[data-figure]')).map(el => ({
                    id: el.id,
                    plotly: el.classList.contains('js-plotly-plot'),
                    svgs: el.querySelectorAll('svg.main-svg').length,
                    traces: el.querySelectorAll(
                        'g.trace, g.slice, .heatmaplayer image, .heatmaplayer g.hm').length,
                    marks: el.querySelectorAll(
                        'path.point, g.point path, path.js-line, .heatmaplayer image, g.slice path').length,
                    width: el.getBoundingClientRect().width,
                    height: el.getBoundingClientRect().height,
                }))"""
            )
            probed = page.evaluate(probe) if probe else None
            # print: the table of contents goes, the charts stay
            page.emulate_media(media="print")
            printed = page.evaluate(
                """() => ({
                    toc: getComputedStyle(document.querySelector('nav.toc')).display,
                    charts: Array.from(document.querySelectorAll('[data-figure]'))
                        .filter(el => getComputedStyle(el).display !== 'none').length,
                })"""
            )
            page.emulate_media(media="screen")
            title = page.title()
            lang = page.evaluate("document.documentElement.lang")
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()
    return {
        "console": console,
        "errors": errors,
        "requests": requests,
        "charts": charts,
        "title": title,
        "lang": lang,
        "printed": printed,
        "probe": probed,
    }


def _check(result: dict[str, Any], screenshot: Path, charts: list[str] | None = None) -> None:
    charts = CHARTS if charts is None else charts
    bad = [(t, m) for t, m in result["console"] if t in ("error", "warning", "assert")]
    assert bad == [], bad
    assert result["errors"] == []
    # only the file itself: no CDN, no fonts, no tiles
    assert all(u.startswith("file://") for u in result["requests"]), result["requests"]
    drawn = {c["id"]: c for c in result["charts"]}
    assert sorted(drawn) == sorted(charts)
    for cid, c in drawn.items():
        assert c["plotly"], f"{cid} was not turned into a plotly chart"
        assert c["svgs"] >= 1, f"{cid} has no main svg"
        assert c["traces"] >= 1, f"{cid} drew no trace"
        assert c["marks"] >= 1, f"{cid} drew no marks"
        assert c["width"] > 200 and c["height"] > 200, f"{cid} has no room: {c}"
    assert screenshot.exists() and screenshot.stat().st_size > 50_000
    assert result["printed"] == {"toc": "none", "charts": len(charts)}


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_sample_report_draws_in_chromium(sample_html: dict[str, Path], lang: str) -> None:
    shot = ARTIFACTS / f"report_{lang}.png"
    result = _open(sample_html[lang], shot)
    _check(result, shot)
    assert result["lang"] == {"zh": "zh-CN", "en": "en"}[lang]
    assert result["title"].startswith({"zh": "回头客复购报告", "en": "Repurchase report"}[lang])


@pytest.mark.slow
def test_readme_main_job_in_chromium(tmp_path: Path) -> None:
    """`huitouke report --sample --out …` — the README's main job — end to end."""
    out = tmp_path / "out" / "report.html"
    res = subprocess.run(
        [sys.executable, "-m", "huitouke", "report", "--sample", "--lang", "zh", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "HUITOUKE_DATABASE_URL": f"sqlite:///{tmp_path / 'unused.db'}"},
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip().splitlines()[-1] == str(out.resolve())
    shot = ARTIFACTS / "report_cli_sample.png"
    _check(_open(out, shot), shot)


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_store_report_with_reminders_draws_in_chromium(
    reminders_store: dict[str, Any], tmp_path: Path, lang: str
) -> None:
    """`huitouke report` on a store where journeys ran: the reminders section and its
    uplift chart draw with no console error, next to the other sections."""
    from .reminders_store import REPORT_AS_OF

    out = tmp_path / f"report_reminders_{lang}.html"
    res = subprocess.run(
        [
            sys.executable, "-m", "huitouke", "report", "--as-of", REPORT_AS_OF.isoformat(),
            "--lang", lang, "--no-predictions", "--out", str(out),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "HUITOUKE_DATABASE_URL": reminders_store["url"]},
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    report = Report(out.read_text(encoding="utf-8"))
    assert len(report.data["reminders"]["journeys"]) == 2
    shot = ARTIFACTS / f"report_reminders_{lang}.png"
    result = _open(out, shot)
    expected = [c for c in CHARTS if c not in PREDICTION_CHARTS] + ["chart-uplift"]
    _check(result, shot, expected)
    uplift = next(c for c in result["charts"] if c["id"] == "chart-uplift")
    assert uplift["marks"] >= 2  # one point per journey


#: what the browser drew for the incomplete month
PARTIAL_PROBE = """() => {
    const buyers = document.getElementById('chart-buyers');
    const rates = document.getElementById('chart-rates');
    const lines = Array.from(rates.querySelectorAll('.scatterlayer path.js-line'));
    const dashed = lines.filter(p => {
        const d = getComputedStyle(p).strokeDasharray;
        return d && d !== 'none';
    }).length;
    const hatched = Array.from(buyers.querySelectorAll('g.trace.bars path')).filter(
        p => (p.style.fill || '').includes('url(')).length;
    const cell = document.querySelector('#table-metrics td.partial');
    const foot = document.getElementById('table-metrics-footnote');
    const note = document.getElementById('partial-note');
    return {
        patterns: buyers.querySelectorAll('pattern').length,
        hatched: hatched,
        bars: buyers.querySelectorAll('g.trace.bars path').length,
        dashed: dashed,
        lines: lines.length,
        cell: cell ? cell.textContent.trim() : null,
        footnote: foot && getComputedStyle(foot).display !== 'none' ? foot.textContent : null,
        note: note && note.getBoundingClientRect().height > 0 ? note.textContent : null,
    };
}"""


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_partial_month_is_marked_in_chromium(tmp_path: Path, lang: str) -> None:
    """An export ending 2025-01-19: January's bars are hatched, its line segments dashed, its
    table row starred with a footnote, and the note above the cards says why."""
    import partial_export as shop

    src = tmp_path / "orders.csv"
    src.write_text(shop.csv_text(shop.EXPORT_END), encoding="utf-8")
    out = tmp_path / f"report_partial_{lang}.html"
    res = subprocess.run(
        [
            sys.executable, "-m", "huitouke", "report", str(src), "--lang", lang,
            "--timezone", "Asia/Shanghai", "--no-predictions", "--out", str(out),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    shot = ARTIFACTS / f"report_partial_{lang}.png"
    result = _open(out, shot, PARTIAL_PROBE)
    _check(result, shot, [c for c in CHARTS if c not in PREDICTION_CHARTS])
    probe = result["probe"]
    assert probe["patterns"] >= 1, probe
    # two stacked series: one hatched bar each, the two complete months plain
    assert probe["bars"] == 6 and probe["hatched"] == 2, probe
    # five rates drawn solid (two of them dotted/dashed by design) up to December, and the
    # four with a January value continued dashed (December's buy-back rate is unknown)
    assert probe["lines"] == 9 and probe["dashed"] == 2 + 4, probe
    assert probe["cell"] == "2025-01 *"
    assert probe["footnote"] and "2025" in probe["footnote"]
    assert probe["note"] and "2025-01" in probe["note"] and "2024-12" in probe["note"]


# --- static checks of the page (no browser needed, but kept next to the browser checks) -----


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_no_external_references(sample_html: dict[str, Path], lang: str) -> None:
    html = sample_html[lang].read_text(encoding="utf-8")
    report = Report(html)
    external = [u for u in report.urls if re.match(r"^(https?:)?//", u)]
    assert external == []
    assert "<link" not in html
    assert not re.search(r"<script[^>]+src=", html)
    assert not re.search(r"url\(\s*['\"]?(https?:)?//", html)
    assert "@import" not in html
    # plotly.js is inlined whole
    assert "Plotly" in html and len(html) > 3_000_000
