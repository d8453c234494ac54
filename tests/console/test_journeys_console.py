"""The console's Journeys pages through the production app (``create_app``) on a real store:
the list, a journey started from a segment, editing with line and field errors, switching
on and off, the dry run with reasons and rendered messages, running, the outbox with retry,
and results equal to ``huitouke journeys results`` — plus who may do what (no session, a
role too low, no CSRF token)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import select, update
from typer.testing import CliRunner

from huitouke.journeys.drafts import draft_journey_yaml, segment_audience
from huitouke.journeys.loader import load_journey_text
from huitouke.messaging.tables import outbox
from huitouke.store.tables import orders

from .conftest import Console, csrf_of, sign_in, task_of, wait_task

AS_OF = "2026-03-20"


def _seed(console: Console, n: int = 30) -> None:
    from journeys.test_service_store import seed

    seed(console.store, n=n)


def _client(console: Console, user: str = "otto") -> Any:
    c = console.client(
        holdout_salt="console-test", sms_sign_name="回头客小店", secret_key=SecretStr("s3")
    )
    c.__enter__()
    assert sign_in(c, user).status_code == 303
    return c


def run_now(c: Any, journey_id: str, as_of: str, token: str) -> str:
    """Press *Run now*: the answer is at once the run's progress page (a background task);
    wait for it as the page does, then open where it returns: the journey with the run's
    numbers. Returns that page."""
    r = c.post(
        f"/journeys/{journey_id}/run", data={"as_of": as_of, "csrf_token": token},
        follow_redirects=False,
    )  # fmt: skip
    assert r.status_code == 303, r.text
    location = r.headers["location"]
    task_id = task_of(location)
    fragment = wait_task(c, task_id)
    assert 'data-status="succeeded"' in fragment, fragment
    from urllib.parse import parse_qs, urlsplit

    [next_path] = parse_qs(urlsplit(location).query)["next"]
    status = c.get(
        f"/tasks/{task_id}/status", params={"next": next_path}, headers={"HX-Request": "true"}
    )
    back = status.headers["HX-Redirect"]  # the page returns to the journey, with the run
    assert back == f"/journeys/{journey_id}?as_of={as_of}&run={task_id}"
    page = c.get(back)
    assert page.status_code == 200 and 'id="run-result"' in page.text
    return page.text


def preview(c: Any, journey_id: str, as_of: str, token: str) -> str:
    """Press *Preview* (htmx): the answer is the dry run's progress, a background task, which
    polls itself until it has turned into the preview. Returns the finished fragment."""
    r = c.post(
        f"/journeys/{journey_id}/preview", data={"as_of": as_of},
        headers={"HX-Request": "true", "X-CSRF-Token": token},
    )  # fmt: skip
    assert r.status_code == 200 and "<html" not in r.text, r.text
    found = re.search(r'id="task-status" data-task="(\d+)"', r.text)
    assert found, r.text
    fragment = wait_task(c, found.group(1))
    assert 'data-status="succeeded"' in fragment and 'id="preview-body"' in fragment, fragment
    assert "<html" not in fragment
    return fragment


# -- the audience language knows the segments the Segments page links with ---------------------


@pytest.mark.parametrize(
    "spec,field",
    [("rfm:champions", "rfm_segments"), ("layer:high_winback", "layers"),
     ("lifecycle:decline", "lifecycles")],
)  # fmt: skip
def test_a_segment_is_an_audience_and_a_valid_draft(spec: str, field: str) -> None:
    name = spec.split(":")[1]
    assert getattr(segment_audience(spec), field) == [name]
    j = load_journey_text(draft_journey_yaml(spec))
    assert getattr(j.audience, field) == [name]


@pytest.mark.parametrize("spec", ["rfm:nobody", "tier:gold", "champions", "layer:"])
def test_an_unknown_segment_is_refused_naming_what_is_known(spec: str) -> None:
    from huitouke.errors import InputError

    with pytest.raises(InputError) as err:
        segment_audience(spec)
    assert err.value.code == "journey.bad_segment"


# -- security ---------------------------------------------------------------------------------------

READ_ROUTES = ["/journeys", "/journeys/second_order"]
OPERATOR_GETS = [
    "/journeys/new",
    "/journeys/new?segment=rfm:champions",
    "/journeys/second_order/edit",
]
POSTS = [
    ("/journeys/new", {"definition": draft_journey_yaml(None)}),
    ("/journeys/validate", {"definition": draft_journey_yaml(None)}),
    ("/journeys/second_order/edit", {"definition": "id: second_order"}),
    ("/journeys/second_order/enable", {}),
    ("/journeys/second_order/disable", {}),
    ("/journeys/second_order/preview", {"as_of": AS_OF}),
    ("/journeys/second_order/run", {"as_of": AS_OF}),
    ("/journeys/second_order/outbox/retry", {}),
]


def test_every_journeys_route_needs_a_session(console: Console) -> None:
    with console.client() as c:
        for path in READ_ROUTES + OPERATOR_GETS:
            r = c.get(path, follow_redirects=False)
            assert r.status_code == 303 and r.headers["location"].startswith("/login?next="), path
            h = c.get(path, headers={"HX-Request": "true"}, follow_redirects=False)
            assert h.status_code == 401 and h.headers["HX-Redirect"].startswith("/login"), path
        for path, data in POSTS:
            r = c.post(path, data=data, follow_redirects=False)
            assert r.status_code == 303 and r.headers["location"].startswith("/login"), path


def test_read_users_see_but_cannot_act(console: Console) -> None:
    c = _client(console, "rita")
    try:
        for path in READ_ROUTES:
            assert c.get(path).status_code == 200, path
        page = c.get("/journeys").text
        assert 'id="new-journey"' not in page
        for path in OPERATOR_GETS:
            assert c.get(path).status_code == 403, path
        token = csrf_of(c)
        for path, data in POSTS:
            r = c.post(path, data={**data, "csrf_token": token}, follow_redirects=False)
            assert r.status_code == 403, path
    finally:
        c.__exit__(None, None, None)


def test_changes_without_the_csrf_token_are_refused(console: Console) -> None:
    c = _client(console, "otto")
    try:
        for path, data in POSTS:
            r = c.post(path, data=data, follow_redirects=False)
            assert r.status_code == 403, path
            r = c.post(path, data=data, headers={"X-CSRF-Token": "wrong"}, follow_redirects=False)
            assert r.status_code == 403, path
        from huitouke.journeys.repo import enabled_journeys

        with console.store.connect() as conn:
            assert enabled_journeys(conn) == []
    finally:
        c.__exit__(None, None, None)


# -- the work ---------------------------------------------------------------------------------------


def test_new_journey_from_a_segment_check_save_enable(console: Console) -> None:
    c = _client(console)
    try:
        token = csrf_of(c)
        page = c.get("/journeys/new", params={"segment": "layer:high_winback"})
        assert page.status_code == 200 and 'id="from-segment"' in page.text
        text = re.search(r"<textarea[^>]*>(.*?)</textarea>", page.text, re.S)
        assert text
        import html

        definition = html.unescape(text.group(1))
        assert "high_winback" in definition
        # errors name their line and field, before anything is saved
        bad = definition.replace("template: remind", "template: nope")
        checked = c.post("/journeys/validate", data={"definition": bad, "csrf_token": token})
        assert checked.status_code == 200
        assert 'data-field="steps.0.template"' in checked.text and "line " in checked.text
        refused = c.post("/journeys/new", data={"definition": bad, "csrf_token": token})
        assert refused.status_code == 422 and 'data-field="steps.0.template"' in refused.text
        ok = c.post("/journeys/validate", data={"definition": definition, "csrf_token": token})
        assert "layer-high-winback-reminder" in ok.text and "error" not in ok.text
        saved = c.post(
            "/journeys/new",
            data={"definition": definition, "csrf_token": token},
            follow_redirects=False,
        )
        assert saved.status_code == 303
        assert saved.headers["location"] == "/journeys/layer-high-winback-reminder"
        again = c.post("/journeys/new", data={"definition": definition, "csrf_token": token})
        assert again.status_code == 409
        # saved as the journey store (REST, CLI) keeps it: switched off
        from huitouke.journeys.repo import all_journeys

        with console.store.connect() as conn:
            row = next(
                r for r in all_journeys(conn) if r["journey"].id == "layer-high-winback-reminder"
            )
        assert row["enabled"] is False and row["journey"].audience.layers == ["high_winback"]
        listed = c.get("/journeys").text
        assert 'data-journey="layer-high-winback-reminder" data-enabled="0"' in listed
        c.post(
            "/journeys/layer-high-winback-reminder/enable",
            data={"csrf_token": token},
            follow_redirects=False,
        )
        assert (
            'data-journey="layer-high-winback-reminder" data-enabled="1"' in c.get("/journeys").text
        )
        # an edit keeps the state; the id cannot change
        edited = definition.replace("holdout: 0.1", "holdout: 0.2")
        r = c.post(
            "/journeys/layer-high-winback-reminder/edit",
            data={"definition": edited, "csrf_token": token},
            follow_redirects=False,
        )
        assert r.status_code == 303
        with console.store.connect() as conn:
            row = next(
                r for r in all_journeys(conn) if r["journey"].id == "layer-high-winback-reminder"
            )
        assert row["enabled"] is True and row["journey"].holdout == 0.2
        renamed = edited.replace("id: layer-high-winback-reminder", "id: other")
        r = c.post(
            "/journeys/layer-high-winback-reminder/edit",
            data={"definition": renamed, "csrf_token": token},
        )
        assert r.status_code == 422 and 'data-field="id"' in r.text
        assert c.get("/journeys/new", params={"segment": "rfm:nobody"}).status_code == 422
    finally:
        c.__exit__(None, None, None)


def _cli(console: Console, monkeypatch: pytest.MonkeyPatch, *args: str) -> Any:
    from huitouke.cli.main import app
    from huitouke.settings import get_settings

    monkeypatch.setenv("HUITOUKE_DATABASE_URL", console.settings.database_url)
    monkeypatch.setenv("HUITOUKE_LANG", "en")
    monkeypatch.setenv("HUITOUKE_HOLDOUT_SALT", "console-test")
    get_settings.cache_clear()
    try:
        r = CliRunner().invoke(app, list(args))
    finally:
        get_settings.cache_clear()
    assert r.exit_code == 0, r.output
    return json.loads(r.output)


def test_preview_run_outbox_retry_and_results_equal_the_cli(
    console: Console, monkeypatch: pytest.MonkeyPatch
) -> None:
    _seed(console)
    c = _client(console)
    try:
        token = csrf_of(c)
        # a journey that is off is previewed but not run
        off = c.post(
            "/journeys/second_order/preview", data={"as_of": AS_OF, "csrf_token": token},
            follow_redirects=False,
        )  # fmt: skip
        assert off.status_code == 303  # without htmx: to the task's page, which shows it
        task_page = c.get(off.headers["location"])
        assert task_page.status_code == 200
        assert 'id="preview-body"' in wait_task(c, task_of(off.headers["location"]))
        refused = c.post("/journeys/second_order/run", data={"as_of": AS_OF, "csrf_token": token})
        assert refused.status_code == 409
        c.post("/journeys/second_order/enable", data={"csrf_token": token})
        pv = preview(c, "second_order", AS_OF, token)
        # who is in and who is out, and why: the dry run of the CLI
        dry = _cli(
            console, monkeypatch, "journeys", "run", "--as-of", AS_OF, "--dry-run",
            "--format", "json", "--journey", "second_order",
        )  # fmt: skip
        shown = re.findall(r'<tr data-status="(\w+)" data-reason="([^"]*)">', pv)
        expected = sorted((i["status"], i["reason_code"]) for i in dry["items"])
        assert sorted(shown) == expected
        assert {"consent.missing", "unsubscribed"} <= {r for _, r in shown}
        # the rendered messages, one per planned step
        planned = sum(1 for i in dry["items"] if i["status"] == "planned")
        assert planned > 0
        assert pv.count('<div class="message-text">') == planned
        assert "回头客小店" in pv or "Thanks" in pv
        with console.store.connect() as conn:
            assert conn.execute(select(outbox.c.message_id)).first() is None
        # run: the same numbers the dry run planned are written, once
        ran = run_now(c, "second_order", AS_OF, token)
        assert 'id="run-already"' not in ran
        with console.store.connect() as conn:
            ids = [r[0] for r in conn.execute(select(outbox.c.message_id))]
        assert len(ids) == planned
        assert "Last run: 2026-03-20" in ran
        listed = c.get("/journeys").text  # the last run per journey, "—" for one never run
        row = re.search(r'<tr data-journey="second_order".*?</tr>', listed, re.S)
        assert row and "<td>2026-03-20</td>" in row.group(0), listed[:3000]
        other = re.search(r'<tr data-journey="winback_high".*?</tr>', listed, re.S)
        assert other and "<td>—</td>" in other.group(0)
        again = run_now(c, "second_order", AS_OF, token)
        assert 'id="run-already"' in again  # the day was run: nothing written again
        with console.store.connect() as conn:
            assert len(conn.execute(select(outbox.c.message_id)).all()) == planned
        # the outbox: send most, fail two; the failures show with their reason and retry
        now = datetime(2026, 3, 20, 3, tzinfo=UTC)
        with console.store.begin() as conn:
            conn.execute(
                update(outbox)
                .where(outbox.c.message_id.in_(ids[2:]))
                .values(status="sent", sent_at=now, delivered_at=now)
            )
            conn.execute(
                update(outbox)
                .where(outbox.c.message_id.in_(ids[:2]))
                .values(status="dead", reason_code="provider.rejected", attempts=5)
            )
            conn.execute(
                orders.insert(),
                [
                    {
                        "order_id": f"later{i}",
                        "customer_id": f"c{i}",
                        "ordered_at": datetime(2026, 3, 22, 4, tzinfo=UTC),
                        "amount": 120,
                        "currency": "CNY",
                        "status": "paid",
                        "refunded_amount": 0,
                        "updated_at": now,
                    }
                    for i in range(0, 30, 3)
                ],
            )
        page = c.get("/journeys/second_order", params={"as_of": "2026-04-30"}).text
        assert re.search(r'data-status="dead">[^<]*<b>2</b>', page)
        assert page.count("provider.rejected") == 2
        one = c.post(
            "/journeys/second_order/outbox/retry",
            data={"message_id": ids[0], "csrf_token": token},
        )
        assert one.status_code == 200 and 'id="notice"' in one.text
        with console.store.connect() as conn:
            states = dict(
                conn.execute(
                    select(outbox.c.message_id, outbox.c.status).where(
                        outbox.c.message_id.in_(ids[:2])
                    )
                ).all()
            )
        assert states == {ids[0]: "queued", ids[1]: "dead"}
        not_ours = c.post(
            "/journeys/second_order/outbox/retry",
            data={"message_id": "nope", "csrf_token": token},
        )
        assert not_ours.status_code == 422
        c.post("/journeys/second_order/outbox/retry", data={"csrf_token": token})
        with console.store.connect() as conn:
            assert (
                conn.execute(
                    select(outbox.c.status).where(outbox.c.message_id == ids[1])
                ).scalar_one()
                == "queued"
            )
        # results: the numbers of `huitouke journeys results` for the same day
        cli = _cli(console, monkeypatch, "journeys", "results", "--as-of", "2026-04-30",
                   "--format", "json")  # fmt: skip
        [expected_row] = [r for r in cli["journeys"] if r["journey_id"] == "second_order"]
        page = c.get("/journeys/second_order", params={"as_of": "2026-04-30"}).text
        values = dict(re.findall(r'data-key="(\w+)" data-value="([^"]*)"', page))
        import html

        assert (
            int(re.search(r'data-key="audience">(\d+)<', page).group(1)) == expected_row["audience"]
        )
        assert float(values["incremental_repurchase"]) == expected_row["incremental_repurchase"]
        assert (
            json.loads(html.unescape(values["incremental_ci95"]))
            == expected_row["incremental_ci95"]
        )
        assert values["incremental_revenue"] == expected_row["incremental_revenue"]
        assert values["cost"] == expected_row["cost"]
        assert (values["roi"] == "None" and expected_row["roi"] is None) or float(
            values["roi"]
        ) == expected_row["roi"]
        assert expected_row["treatment_measured"] > 0 and expected_row["converted_treatment"] > 0
        # the list shows the state, the counts and the last run
        listed = c.get("/journeys").text
        row = re.search(r'<tr data-journey="second_order".*?</tr>', listed, re.S)
        assert row and 'data-enabled="1"' in row.group(0)
        assert f"<td>{AS_OF}</td>" in row.group(0)  # the last run's day
    finally:
        c.__exit__(None, None, None)


def test_pages_in_chinese(console: Console) -> None:
    _seed(console, n=4)
    c = _client(console)
    try:
        token = csrf_of(c)
        c.post("/lang", data={"lang": "zh", "csrf_token": token, "next": "/journeys"})
        page = c.get("/journeys").text
        assert "旅程" in page and "上次运行" in page
        detail = c.get("/journeys/second_order").text
        assert "发件箱" in detail and "预览(试运行)" in detail
    finally:
        c.__exit__(None, None, None)
