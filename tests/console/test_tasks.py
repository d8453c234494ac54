"""Background tasks started from the console: one at a time for the same work (refused
while one runs, in the app and on the page), progress recorded, a task left behind by a
stopped process taken over by the scheduler's ``tasks`` job and finished; the routes are
guarded. SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import update

from huitouke.app import tasks as tk
from huitouke.app.scheduler import Registry, run_job_now
from huitouke.errors import ConflictError
from huitouke.settings import Settings
from huitouke.store.db import Store
from huitouke.store.task_tables import background_tasks
from huitouke.store.uow import run_write

from .conftest import Console, csrf_of, sign_in, task_of, wait_task

RELEASE = threading.Event()
RAN: list[dict[str, Any]] = []


def _blocking(
    store: Store, settings: Settings, params: Mapping[str, Any], progress: tk.TaskProgress
) -> dict[str, Any]:
    """A task that reports progress, then waits until the test lets it finish."""
    progress(1, 4, "started")
    assert RELEASE.wait(60), "the test never released the task"
    progress(4, 4, "done")
    RAN.append(dict(params))
    return {"ok": True, "n": params.get("n")}


@pytest.fixture
def blocking() -> Iterator[None]:
    tk.register_task_kind("test.blocking", _blocking)
    RELEASE.clear()
    RAN.clear()
    yield
    RELEASE.set()
    tk.TASK_KINDS.pop("test.blocking", None)


def test_the_same_work_is_refused_while_it_runs_then_allowed(store: Store, blocking: None) -> None:
    settings = Settings(database_url=store.url)
    first = tk.submit(store, "test.blocking", {"n": 1}, key="k", by="otto")
    assert first.status == "queued"
    thread = tk.start(store, settings, first.task_id)
    for _ in range(200):
        if tk.get_task(store, first.task_id).done == 1:
            break
        threading.Event().wait(0.05)
    running = tk.get_task(store, first.task_id)
    assert running.status == "running" and running.done == 1 and running.total == 4
    assert running.stage == "started" and running.attempts == 1
    with pytest.raises(ConflictError) as refused:
        tk.submit(store, "test.blocking", {"n": 2}, key="k", by="ana")
    assert refused.value.code == "task.running"
    assert refused.value.details["task_id"] == first.task_id
    other = tk.submit(store, "test.blocking", {"n": 3}, key="another", by="ana")  # other work
    assert not tk.claim(store, first.task_id, "someone-else")  # one runner per task
    RELEASE.set()
    thread.join(30)
    done = tk.get_task(store, first.task_id)
    assert done.status == "succeeded" and done.result == {"ok": True, "n": 1}
    assert done.finished_at is not None and done.done == done.total == 4
    again = tk.submit(store, "test.blocking", {"n": 4}, key="k", by="otto")  # ended: allowed
    assert again.task_id not in (first.task_id, other.task_id)


def test_a_task_left_behind_is_taken_over_by_the_scheduler(store: Store, blocking: None) -> None:
    settings = Settings(database_url=store.url)
    RELEASE.set()  # the tasks run to their end here
    queued = tk.submit(
        store,
        "test.blocking",
        {"n": 1},
        key="a",
        by="otto",
        now=datetime.now(UTC) - timedelta(minutes=1),
    )  # fmt: skip  (its process stopped before it started)
    dead = tk.submit(store, "test.blocking", {"n": 2}, key="b", by="otto")
    assert tk.claim(store, dead.task_id, "a-process-that-died")
    fresh = tk.submit(store, "test.blocking", {"n": 3}, key="c", by="otto")
    assert tk.claim(store, fresh.task_id, "a-process-still-working")
    old = datetime.now(UTC) - timedelta(seconds=tk.LEASE_SECONDS + 5)
    run_write(
        store,
        lambda conn: conn.execute(
            update(background_tasks)
            .where(background_tasks.c.task_id == dead.task_id)
            .values(heartbeat_at=old)
        ),
    )
    out = run_job_now(store, settings, Registry.load(settings), "tasks")
    assert out.status == "succeeded"
    assert out.result == {"ran": {str(queued.task_id): "succeeded", str(dead.task_id): "succeeded"}}
    assert tk.get_task(store, dead.task_id).attempts == 2
    assert tk.get_task(store, fresh.task_id).status == "running"  # its heartbeat is alive
    assert sorted(r["n"] for r in RAN) == [1, 2]


def test_the_console_refuses_a_second_refresh_and_guards_the_task_pages(
    console: Console, client: Any, blocking: None
) -> None:
    # a refresh is under way (here: a task holding the refresh's key)
    busy = tk.submit(console.store, "test.blocking", {}, key="snapshots.refresh", by="otto")
    sign_in(client, "otto")
    token = csrf_of(client)
    refused = client.post("/snapshots/refresh", data={"csrf_token": token})
    assert refused.status_code == 409 and 'id="task-refused"' in refused.text
    assert f'data-task="{busy.task_id}"' in refused.text  # the running one's progress
    RELEASE.set()
    tk.run_task(console.store, console.settings, busy.task_id, "test")
    r = client.post(
        "/snapshots/refresh", data={"csrf_token": token, "kind": "overview", "next": "/"},
        follow_redirects=False,
    )  # fmt: skip
    assert r.status_code == 303, r.text
    assert "succeeded" in wait_task(client, task_of(r.headers["location"]))
    bad = client.post("/snapshots/refresh", data={"csrf_token": token, "kind": "nope"})
    assert bad.status_code == 422
    assert client.get("/tasks/999999").status_code == 404
    client.cookies.clear()
    assert client.get(f"/tasks/{busy.task_id}", follow_redirects=False).status_code == 303
    fragment = client.get(f"/tasks/{busy.task_id}/status", headers={"HX-Request": "true"})
    assert fragment.status_code == 401 and "HX-Redirect" in fragment.headers
    sign_in(client, "rita")  # a read user starts nothing and sees no task
    assert client.get(f"/tasks/{busy.task_id}").status_code == 403
    token = csrf_of(client)
    assert client.post("/snapshots/refresh", data={"csrf_token": token}).status_code == 403
