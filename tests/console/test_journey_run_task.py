"""A journey run started from the console is a background task (kind ``journey.run``): the
request answers at once with the task's progress; the same journey run again while its run
is queued or running is refused (409, the running one's progress); a task left behind by a
stopped process — before its writes or after them — is run again by the scheduler's
``tasks`` job, and the journey's day is still written once; a switched-off journey is not
run by a task left behind. ``POST /v1/journeys/run`` stays synchronous and leaves the
results snapshot to a background task. Through the production app, SQLite and PostgreSQL."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote

from sqlalchemy import func, select, update

from huitouke.app import tasks as tk
from huitouke.app.scheduler import Registry, run_job_now
from huitouke.app.snapshots import read_snapshot, refresh_snapshots
from huitouke.journeys.tables import journey_assignments
from huitouke.messaging.tables import outbox
from huitouke.store.task_tables import background_tasks
from huitouke.store.uow import run_write

from .conftest import Console, csrf_of, task_of, wait_task
from .test_journeys_console import _client, _seed, run_now

AS_OF = "2026-03-20"
KEY = "journey.run:second_order"


def _written(console: Console) -> tuple[int, int]:
    with console.store.connect() as conn:
        messages = conn.execute(select(func.count()).select_from(outbox)).scalar_one()
        assigned = conn.execute(select(func.count()).select_from(journey_assignments)).scalar_one()
    return int(messages), int(assigned)


def _left_behind(console: Console, *, claimed: bool, day: str = AS_OF) -> int:
    """A ``journey.run`` task whose process stopped: queued and never started, or started
    (claimed) and then silent past the lease."""
    past = datetime.now(UTC) - timedelta(minutes=5)
    task = tk.submit(
        console.store, "journey.run",
        {"journey_id": "second_order", "as_of": day, "run_by": "console otto"},
        key=KEY, by="otto", now=past,
    )  # fmt: skip
    if claimed:
        assert tk.claim(console.store, task.task_id, "a-process-that-died", now=past)
        run_write(
            console.store,
            lambda conn: conn.execute(
                update(background_tasks)
                .where(background_tasks.c.task_id == task.task_id)
                .values(heartbeat_at=past)
            ),
        )
    return task.task_id


def _tasks_job(console: Console) -> dict[str, Any]:
    out = run_job_now(console.store, console.settings, Registry.load(console.settings), "tasks")
    assert out.status == "succeeded", out
    return dict(out.result)


def test_the_run_is_a_task_refused_twice_at_once_and_rerun_by_the_scheduler(
    console: Console,
) -> None:
    _seed(console)
    c = _client(console)
    try:
        token = csrf_of(c)
        c.post("/journeys/second_order/enable", data={"csrf_token": token})
        # a run of this journey is queued (its process stopped before it started): a second
        # run is refused with the running one's progress, and nothing is written by either
        queued = _left_behind(console, claimed=False)
        refused = c.post(
            "/journeys/second_order/run", data={"as_of": AS_OF, "csrf_token": token},
            follow_redirects=False,
        )  # fmt: skip
        assert refused.status_code == 409 and 'id="task-refused"' in refused.text
        assert f'data-task="{queued}"' in refused.text
        assert _written(console) == (0, 0)

        # the scheduler's tasks job runs the task left behind: the day is written once
        assert _tasks_job(console) == {"ran": {str(queued): "succeeded"}}
        done = tk.get_task(console.store, queued)
        assert done.attempts == 1 and done.result["already_run"] is False
        messages, assigned = _written(console)
        assert messages > 0 and assigned > 0
        assert done.result["written"]["enqueued"] == messages
        assert done.result["written"]["assignments"] == assigned

        # the run's process died after its writes, before the snapshot was refreshed: taken
        # over, it writes nothing a second time and refreshes the snapshot
        [report] = refresh_snapshots(console.store, console.settings, kinds=["journey_results"])
        assert report.error is None
        with console.store.connect() as conn:
            before = read_snapshot(conn, "journey_results", _params(console))
        assert before is not None
        died = _left_behind(console, claimed=True)
        assert _tasks_job(console) == {"ran": {str(died): "succeeded"}}
        again = tk.get_task(console.store, died)
        assert again.attempts == 2 and again.result["already_run"] is True
        assert again.result["written"]["enqueued"] == 0
        assert again.result["refreshed"] == ["journey_results"]
        assert _written(console) == (messages, assigned)
        with console.store.connect() as conn:
            after = read_snapshot(conn, "journey_results", _params(console))
        assert after is not None and after.computed_at > before.computed_at

        # the console's button now: the same day adds nothing, the page says so
        page = run_now(c, "second_order", AS_OF, token)
        assert 'id="run-already"' in page
        assert _written(console) == (messages, assigned)

        # switched off meanwhile: a task left behind does not run it
        c.post("/journeys/second_order/disable", data={"csrf_token": token})
        off = _left_behind(console, claimed=False, day="2026-03-27")
        assert _tasks_job(console) == {"ran": {str(off): "failed"}}
        assert tk.get_task(console.store, off).error_code == "journey.not_found"
        assert _written(console) == (messages, assigned)
    finally:
        c.__exit__(None, None, None)


def test_the_request_answers_before_the_run_and_shows_its_progress(console: Console) -> None:
    _seed(console, n=8)
    c = _client(console)
    try:
        token = csrf_of(c)
        c.post("/journeys/second_order/enable", data={"csrf_token": token})
        r = c.post("/journeys/second_order/run", data={"as_of": AS_OF, "csrf_token": token})
        # followed: the task's page, with the kind and the way back to the journey
        assert r.status_code == 200 and 'id="task-status"' in r.text
        task_id = task_of(str(r.url.path))
        polled = re.search(r'hx-get="/tasks/\d+/status\?next=([^"]+)"', r.text)
        assert polled, r.text
        assert unquote(polled.group(1)) == f"/journeys/second_order?as_of={AS_OF}&run={task_id}"
        fragment = wait_task(c, task_id)
        assert 'id="run-done"' in fragment
        task = tk.get_task(console.store, int(task_id))
        assert task.kind == "journey.run" and task.created_by == "otto"
        assert task.params == {"journey_id": "second_order", "as_of": AS_OF,
                               "run_by": "console otto"}  # fmt: skip
        # the journey page shows a run's numbers only for a run of that journey
        page = c.get("/journeys/birthday", params={"run": task_id}).text
        assert 'id="run-result"' not in page
        page = c.get("/journeys/second_order", params={"run": task_id}).text
        assert 'id="run-result"' in page
        assert c.get("/journeys/second_order", params={"run": 999999}).status_code == 200
    finally:
        c.__exit__(None, None, None)


def test_the_api_run_stays_synchronous_and_refreshes_the_snapshot_in_the_background(
    console: Console,
) -> None:
    from huitouke.service.apikeys import create_api_key

    _seed(console, n=10)
    with console.store.begin() as conn:
        secret = create_api_key(conn, scope="operator", name="ops", now=datetime.now(UTC))[1]
    headers = {"Authorization": f"Bearer {secret}"}
    with console.client(holdout_salt="console-test", sms_sign_name="回头客小店") as c:
        assert c.post("/v1/journeys/second_order/enable", headers=headers).status_code == 200
        # no snapshot: no refresh task
        first = c.post(
            "/v1/journeys/run", json={"as_of": AS_OF, "dry_run": False}, headers=headers
        ).json()
        assert first["written"]["enqueued"] > 0 and first["results_refresh_task"] is None
        [report] = refresh_snapshots(console.store, console.settings, kinds=["journey_results"])
        assert report.error is None
        with console.store.connect() as conn:
            before = read_snapshot(conn, "journey_results", _params(console))
        assert before is not None
        # with one: the answer carries the refresh task's id, which recomputes it
        second = c.post(
            "/v1/journeys/run", json={"as_of": "2026-03-27", "dry_run": False}, headers=headers
        ).json()
        task_id = second["results_refresh_task"]
        assert isinstance(task_id, int)
        for _ in range(600):
            task = tk.get_task(console.store, task_id)
            if task.finished:
                break
            threading_wait(0.1)
        assert task.status == "succeeded" and task.kind == "snapshots.refresh"
        assert task.params == {"kinds": ["journey_results"]} and task.created_by == "api ops"
        with console.store.connect() as conn:
            after = read_snapshot(conn, "journey_results", _params(console))
        assert after is not None and after.computed_at > before.computed_at


def threading_wait(seconds: float) -> None:
    import threading

    threading.Event().wait(seconds)


def _params(console: Console) -> dict[str, Any]:
    from huitouke.app.snapshots import journey_results_params

    return journey_results_params(console.settings)


def test_the_preview_is_a_task_the_same_one_shown_while_it_runs_in_both_languages(
    console: Console,
) -> None:
    from huitouke.journeys.engine import reason_text

    _seed(console)
    c = _client(console)
    try:
        token = csrf_of(c)
        # a preview of this journey and day is queued (its process stopped): pressing
        # Preview again shows that one instead of starting a second
        past = datetime.now(UTC) - timedelta(minutes=5)
        left = tk.submit(
            console.store, "journey.preview", {"journey_id": "second_order", "as_of": AS_OF},
            key=f"journey.preview:second_order:{AS_OF}", by="otto", now=past,
        )  # fmt: skip
        r = c.post(
            "/journeys/second_order/preview", data={"as_of": AS_OF},
            headers={"HX-Request": "true", "X-CSRF-Token": token},
        )  # fmt: skip
        assert r.status_code == 200 and f'data-task="{left.task_id}"' in r.text
        assert 'hx-trigger="load delay:1s"' in r.text  # it polls itself
        assert _tasks_job(console) == {"ran": {str(left.task_id): "succeeded"}}
        assert _written(console) == (0, 0)  # a dry run writes nothing
        from huitouke.app.journey_runs import PREVIEW_FIELDS

        kept = tk.get_task(console.store, left.task_id).result  # what the page shows, no more
        assert kept["items"] and all(set(i) == set(PREVIEW_FIELDS) for i in kept["items"])
        en = wait_task(c, left.task_id)
        rows = re.findall(r'<tr data-status="(\w+)" data-reason="([^"]*)">(.*?)</tr>', en, re.S)
        assert rows and any(status == "planned" for status, _, _ in rows)
        assert all(reason_text(code, "en") in cells for _, code, cells in rows)
        c.post("/lang", data={"lang": "zh", "csrf_token": token, "next": "/journeys"})
        zh = wait_task(c, left.task_id)
        rows_zh = re.findall(r'<tr data-status="(\w+)" data-reason="([^"]*)">(.*?)</tr>', zh, re.S)
        assert [(s, code) for s, code, _ in rows_zh] == [(s, code) for s, code, _ in rows]
        assert all(reason_text(code, "zh") in cells for _, code, cells in rows_zh)
        assert reason_text("consent.missing", "zh") != reason_text("consent.missing", "en")
        # another day is another preview
        other = c.post(
            "/journeys/second_order/preview", data={"as_of": "2026-03-27"},
            headers={"HX-Request": "true", "X-CSRF-Token": token},
        )  # fmt: skip
        found = re.search(r'data-task="(\d+)"', other.text)
        assert found and int(found.group(1)) != left.task_id
        assert 'data-as-of="2026-03-27"' in wait_task(c, found.group(1))
    finally:
        c.__exit__(None, None, None)
