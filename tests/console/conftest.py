"""Fixtures of the console tests: a migrated store per backend, console users of each role
made through the users use case, a movable clock, and an in-process client of the
production app (``create_app``) that signs in through the real sign-in form."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from huitouke.data import CDNOW_SAMPLE
from huitouke.service.users import create_user
from huitouke.settings import Settings
from huitouke.store.db import Store

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

PASSWORDS = {
    "ana": "ana-admin-password-1",
    "otto": "otto-operator-pass-2",
    "rita": "rita-reads-only-pw-3",
}
ROLES = {"ana": "admin", "otto": "operator", "rita": "read"}


class Clock:
    """A clock the test moves by hand (the app's ``clock``)."""

    def __init__(self) -> None:
        self.now = datetime(2026, 6, 1, 2, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


_HASHES: dict[str, str] = {}


def make_users(store: Store, now: datetime) -> None:
    """The three users, as ``create_user`` makes them. Argon2 is slow by design (most of a
    second on a busy machine), so the first call makes them with ``create_user`` and later
    ones store the same rows with the hashes it made."""
    from huitouke.service.tables import console_users

    with store.begin() as conn:
        for name, role in ROLES.items():
            if name not in _HASHES:
                create_user(conn, name=name, role=role, password=PASSWORDS[name], now=now)
                _HASHES[name] = conn.execute(
                    select(console_users.c.password_hash).where(console_users.c.name == name)
                ).scalar_one()
                continue
            conn.execute(
                console_users.insert().values(
                    name=name, role=role, password_hash=_HASHES[name], lang=None,
                    created_at=now, password_changed_at=now, disabled_at=None,
                    failed_logins=0, locked_until=None, last_login_at=None,
                )
            )  # fmt: skip


def login_token(client: TestClient, next_path: str = "/") -> str:
    page = client.get("/login", params={"next": next_path})
    assert page.status_code == 200, page.text
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert found
    return found.group(1)


def sign_in(client: TestClient, name: str, password: str | None = None, next_path: str = "/"):  # type: ignore[no-untyped-def]
    token = login_token(client, next_path)
    return client.post(
        "/login",
        data={
            "name": name,
            "password": PASSWORDS[name] if password is None else password,
            "csrf_token": token,
            "next": next_path,
        },
        follow_redirects=False,
    )


def csrf_of(client: TestClient) -> str:
    """The session's CSRF token, as the pages carry it."""
    page = client.get("/")
    assert page.status_code == 200, page.text
    found = re.search(r'"X-CSRF-Token": "([^"]+)"', page.text)
    assert found
    return found.group(1)


def wait_task(client: TestClient, task_id: int | str, *, seconds: float = 300) -> str:
    """Poll a background task's status fragment, as the page does with htmx, until the task
    has finished; returns the fragment (its ``data-status`` is ``succeeded`` or ``failed``).
    Bounded: fails after ``seconds``."""
    import time

    deadline = time.monotonic() + seconds
    while True:
        r = client.get(f"/tasks/{task_id}/status")
        assert r.status_code == 200, r.text
        status = re.search(r'id="task-status" data-task="\d+" data-status="(\w+)"', r.text)
        assert status, r.text
        if status.group(1) in ("succeeded", "failed"):
            return r.text
        assert time.monotonic() < deadline, f"task {task_id} still {status.group(1)}"
        time.sleep(0.2)


def task_of(location: str) -> str:
    """The task id of a ``/tasks/{id}?next=…`` redirect."""
    found = re.match(r"/tasks/(\d+)", location)
    assert found, location
    return found.group(1)


@dataclass
class Console:
    settings: Settings
    store: Store
    clock: Clock

    def client(self, **settings: object) -> TestClient:
        from huitouke.service import create_app

        s = self.settings.model_copy(update=settings) if settings else self.settings
        app = create_app(s, self.store, clock=self.clock)
        return TestClient(app, raise_server_exceptions=True, base_url="http://127.0.0.1")


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def console(store_url: str, store: Store, clock: Clock) -> Console:
    make_users(store, clock.now)
    settings = Settings(
        database_url=store_url,
        lang="en",
        console_lockout_failures=3,
        console_lockout_minutes=15,
        console_login_rate_max=6,
        console_login_rate_window_seconds=300,
    )
    return Console(settings, store, clock)


@pytest.fixture
def client(console: Console) -> Iterator[TestClient]:
    with console.client() as c:
        yield c


def cli(url: str, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "huitouke", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "HUITOUKE_DATABASE_URL": url, "HUITOUKE_LANG": "en"},
    )


@pytest.fixture(scope="session")
def shop(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A SQLite store with the bundled CDNOW sample imported by `huitouke import`, and the
    JSON `huitouke metrics` prints for it (month and quarter)."""
    work = tmp_path_factory.mktemp("shop")
    url = f"sqlite:///{work / 'shop.db'}"
    done = cli(url, "import", str(CDNOW_SAMPLE), "--preset", "cdnow")
    assert done.returncode == 0, done.stderr
    store = Store(url)
    make_users(store, datetime.now(UTC))
    metrics = {}
    for period in ("month", "quarter"):
        out = cli(url, "metrics", "--format", "json", "--period", period)
        assert out.returncode == 0, out.stderr
        metrics[period] = json.loads(out.stdout)
    store.dispose()
    return {"url": url, "metrics": metrics}
