"""The console's Data page through the production app on a real store (SQLite and
PostgreSQL): an export uploaded, imported by the use case ``huitouke import`` runs (the same
counts), its progress and summary, the rejects file, the import history (with imports made
on the command line), the store's zone and currency; the upload limit; who may do what."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from huitouke.service.uploads import wait_for

from .conftest import Console, cli, csrf_of, sign_in

BAD_ROWS = 2


def sample_export(n_customers: int = 40, *, today: date | None = None) -> str:
    """A generic export: order id, customer, time, amount, status, phone, SMS consent; most
    customers buy two or three times; two rows are bad (an amount, a date)."""
    today = today or date(2026, 6, 1)
    lines = ["order_id,customer_id,ordered_at,amount,status,phone,consent_sms"]
    k = 0
    for i in range(n_customers):
        for j in range(1 + (i % 3)):
            day = today - timedelta(days=200 - 45 * j - (i % 30))
            k += 1
            lines.append(
                f"T{k:05d},c{i:03d},{day.isoformat()} 10:{i % 60:02d}:00,{50 + i + 10 * j}.50,"
                f"paid,1380000{i:04d},{'yes' if i % 4 else 'no'}"
            )
    lines.append("T99998,c900,2026-01-05 10:00:00,abc,paid,13900000000,yes")
    lines.append("T99999,c901,not-a-date,10.00,paid,13900000001,yes")
    return "\n".join(lines) + "\n"


def _client(console: Console, user: str = "otto", **settings: Any) -> Any:
    c = console.client(**settings)
    c.__enter__()
    assert sign_in(c, user).status_code == 303
    return c


def _upload(c: Any, token: str, text: str, name: str = "orders export.csv") -> Any:
    return c.post(
        "/data/imports",
        data={"csrf_token": token},
        files={"file": (name, text.encode("utf-8"), "text/csv")},
        follow_redirects=False,
    )


def test_data_routes_need_a_session_a_role_and_the_token(console: Console) -> None:
    with console.client() as c:
        for path in ("/data", "/data/imports/abc", "/data/imports/abc/rejects.csv"):
            r = c.get(path, follow_redirects=False)
            assert r.status_code == 303 and r.headers["location"].startswith("/login"), path
            h = c.get(path, headers={"HX-Request": "true"}, follow_redirects=False)
            assert h.status_code == 401, path
        r = _upload(c, "x", sample_export(3))
        assert r.status_code == 303 and r.headers["location"].startswith("/login")
    c = _client(console, "rita")
    try:
        page = c.get("/data")
        assert page.status_code == 200 and 'id="upload-form"' not in page.text
        assert _upload(c, csrf_of(c), sample_export(3)).status_code == 403
        assert c.get("/data/imports/abc/rejects.csv").status_code == 403
    finally:
        c.__exit__(None, None, None)
    c = _client(console, "otto")
    try:
        assert _upload(c, "", sample_export(3)).status_code == 403
        assert _upload(c, "wrong", sample_export(3)).status_code == 403
        with console.store.connect() as conn:
            from sqlalchemy import func, select

            from huitouke.service.tables import console_imports

            assert conn.execute(select(func.count()).select_from(console_imports)).scalar() == 0
        assert c.get("/data/imports/nope").status_code == 404
    finally:
        c.__exit__(None, None, None)


def test_upload_imports_as_the_cli_does_with_summary_rejects_and_history(
    console: Console, tmp_path: Path
) -> None:
    text = sample_export()
    c = _client(console)
    try:
        token = csrf_of(c)
        page = c.get("/data").text
        assert 'id="shop-zone">Asia/Shanghai<' in page and 'id="currency">CNY<' in page
        assert "Nothing has been imported yet." in page
        r = _upload(c, token, text)
        assert r.status_code == 303
        import_id = r.headers["location"].rsplit("/", 1)[1]
        wait_for(import_id)
        done = c.get(f"/data/imports/{import_id}")
        assert done.status_code == 200 and 'data-status="done"' in done.text
        summary = dict(re.findall(r'<dd data-key="(\w+)">([^<]*)</dd>', done.text))
        assert re.search(r'id="import-preset">generic<', done.text)
        # the same file through `huitouke import` into another store: the same counts
        other = f"sqlite:///{tmp_path / 'cli.db'}"
        export = tmp_path / "orders export.csv"
        export.write_text(text, encoding="utf-8")
        out = cli(other, "import", str(export), "--json")
        assert out.returncode == 0, out.stderr
        expected = json.loads(out.stdout)
        flat = expected.get("summary", expected)
        assert int(summary["rows_read"].replace(",", "")) == flat["rows_read"]
        assert int(summary["orders_inserted"].replace(",", "")) == flat["orders_inserted"]
        assert int(summary["rows_rejected"]) == flat["rows_rejected"] == BAD_ROWS
        reasons = dict(
            re.findall(
                r'<tr data-reason="([^"]+)"><td><code>[^<]*</code></td><td class="num">(\d+)<',
                done.text,
            )
        )
        assert sum(int(v) for v in reasons.values()) == BAD_ROWS
        # the rejects file: the two bad rows with their reasons, as the CLI writes them
        rejects = c.get(f"/data/imports/{import_id}/rejects.csv")
        assert rejects.status_code == 200
        assert rejects.headers["content-type"].startswith("text/csv")
        assert "orders%20export.rejects.csv" in rejects.headers["content-disposition"]
        rows = list(csv.DictReader(io.StringIO(rejects.content.decode("utf-8-sig"))))
        assert len(rows) == BAD_ROWS
        assert {r["reason_code"] for r in rows} == set(reasons)
        assert {r["value"] for r in rows} == {"abc", "not-a-date"}
        # the polling fragment of a finished import stops polling
        frag = c.get(f"/data/imports/{import_id}", headers={"HX-Request": "true"})
        assert "<html" not in frag.text and "hx-trigger" not in frag.text
        # history: who, when, which file, preset, counts — and an import made on the CLI
        again = cli(
            console.settings.database_url, "import", str(export), "--source", "shop2",
            "--rejects", str(tmp_path / "again.rejects.csv"),
        )  # fmt: skip
        assert again.returncode == 0, again.stderr
        page = c.get("/data").text
        rows_html = re.findall(r"<tr data-import=.*?</tr>", page, re.S)
        assert len(rows_html) == 2
        cli_row, console_row = rows_html
        assert "command line" in cli_row and "orders export.csv" in cli_row
        assert f'data-import="{import_id}"' in console_row
        for cell in ("otto", "orders export.csv", "generic", str(BAD_ROWS)):
            assert cell in console_row, cell
        assert "CNY" in page
    finally:
        c.__exit__(None, None, None)


def test_a_bad_file_is_reported_and_nothing_is_stored(console: Console) -> None:
    c = _client(console)
    try:
        r = _upload(c, csrf_of(c), "just,a,header\n", name="empty.csv")
        import_id = r.headers["location"].rsplit("/", 1)[1]
        wait_for(import_id)
        page = c.get(f"/data/imports/{import_id}").text
        assert 'data-status="failed"' in page and "[import." in page
        from sqlalchemy import func, select

        from huitouke.store.tables import orders

        with console.store.connect() as conn:
            assert conn.execute(select(func.count()).select_from(orders)).scalar() == 0
        assert c.get(f"/data/imports/{import_id}/rejects.csv").status_code == 404
    finally:
        c.__exit__(None, None, None)


def test_an_upload_over_the_limit_is_refused_before_it_is_read(console: Console) -> None:
    c = _client(console, request_max_bytes=1024, console_upload_max_bytes=4096)
    try:
        token = csrf_of(c)
        small = sample_export(20)
        assert 1024 < len(small.encode()) < 4096
        ok = _upload(c, token, small)  # over the API's limit, within the upload limit
        assert ok.status_code == 303
        wait_for(ok.headers["location"].rsplit("/", 1)[1])
        r = _upload(c, token, sample_export(200))
        assert r.status_code == 413 and r.json()["error"]["code"] == "request.too_large"
    finally:
        c.__exit__(None, None, None)


def test_htmx_upload_answers_the_polling_fragment(console: Console) -> None:
    c = _client(console)
    try:
        r = c.post(
            "/data/imports",
            data={"csrf_token": csrf_of(c)},
            files={"file": ("a.csv", sample_export(5).encode(), "text/csv")},
            headers={"HX-Request": "true"},
        )
        assert r.status_code == 200 and 'id="import-status"' in r.text and "<html" not in r.text
        found = re.search(r'data-import="(\w+)"', r.text)
        assert found
        wait_for(found.group(1))
        page = c.get("/data", headers={"Accept-Language": "zh-CN"}).text
        assert "a.csv" in page
    finally:
        c.__exit__(None, None, None)
