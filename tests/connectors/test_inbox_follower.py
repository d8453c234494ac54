"""``HUITOUKE_WEBHOOK_APPLY=scheduler``: the workers of ``huitouke serve`` only store and
answer; the scheduler's process applies the deliveries as they arrive (the inbox follower).
Each delivery applied once with the follower and a sweep at the same rows; what is the
``connectors.inbox`` job's (older than a minute at the start, refunds, a paused
connector's) left to it; and a real ``huitouke serve --workers 2`` on PostgreSQL, whose
workers leave the deliveries pending with the scheduler off and whose scheduler applies
them when on."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from huitouke.app import connectors as uc
from huitouke.app.scheduler.inbox import InboxFollower
from huitouke.connectors.tables import connector_inbox, connectors
from huitouke.settings import Settings
from huitouke.store.db import Store
from service.live import LiveServer

from .conftest import snapshot
from .fakes import T0
from .test_applier import _add, _headers, _inbox, _stream
from .test_webhooks import rest_order

pytestmark = pytest.mark.timeout(180)


def _store_only(store: Store, settings: Settings, bodies: list[bytes], **kw: Any) -> None:
    for body in bodies:
        uc.receive_webhook(store, settings, "shop1", _headers(body, **kw), body)


def _wait(store: Store, done: Any, seconds: float = 60) -> list[dict[str, Any]]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        rows = _inbox(store)
        if done(rows):
            return rows
        time.sleep(0.05)
    raise AssertionError(f"not done in {seconds} s: {[r['status'] for r in _inbox(store)]}")


def test_the_follower_applies_each_arrival_once_beside_a_sweep(
    settings: Settings, store: Store
) -> None:
    _add(store, settings)
    settings = settings.model_copy(update={"webhook_apply_poll_seconds": 0.02})
    follower = InboxFollower(store, settings, lambda: datetime.now(UTC), batch=7)
    follower.start()
    try:
        bodies = _stream()
        errors: list[BaseException] = []

        def sweep() -> None:  # the connectors.inbox job (or a retry) at the same rows
            try:
                for _ in range(5):
                    uc.apply_pending(
                        store, settings, received_before=datetime.now(UTC) + timedelta(1)
                    )
            except BaseException as exc:  # reported below
                errors.append(exc)

        th = threading.Thread(target=sweep)
        _store_only(store, settings, bodies[:10])
        th.start()
        _store_only(store, settings, bodies[10:])
        th.join(120)
        assert not errors, errors
        rows = _wait(store, lambda rows: all(r["status"] == "applied" for r in rows))
    finally:
        follower.stop(30)
    assert len(rows) == 20
    assert [r["attempts"] for r in rows] == [1] * 20  # never applied twice
    got = snapshot(store, "shop1")
    assert len(got["orders"]) == 10
    assert {o[1] for o in got["orders"].values()} == {"partially_refunded"}
    assert follower.errors == 0 and follower.rounds > 0


def test_what_is_the_jobs_stays_pending(settings: Settings, store: Store) -> None:
    """Arrived over a minute before the follower started, a refund delivery (its order is
    fetched from the platform), a paused connector's: left pending for the job."""
    _add(store, settings)
    old = json.dumps(rest_order(1, T0 + timedelta(hours=1))).encode()
    _store_only(store, settings, [old])
    later = datetime.now(UTC) + timedelta(minutes=2)  # the follower starts two minutes on
    follower = InboxFollower(
        store, settings.model_copy(update={"webhook_apply_poll_seconds": 0.02}), lambda: later
    )
    follower.start()
    try:
        refund = json.dumps({"id": 5, "order_id": 1001, "created_at": T0.isoformat()}).encode()
        _store_only(store, settings, [refund], topic="refunds/create")
        with store.begin() as conn:  # a paused connector
            conn.execute(update(connectors).values(status="paused"))
        time.sleep(0.3)
        with store.connect() as conn:
            later_row = conn.execute(
                connector_inbox.insert()
                .values(
                    connector="shop1", object_id="9", updated_at=T0, topic="orders/create",
                    body=json.dumps(rest_order(9, T0)), received_at=later, status="pending",
                    attempts=0,
                )
                .returning(connector_inbox.c.inbox_id)
            ).scalar_one()  # fmt: skip
            conn.commit()
        time.sleep(0.5)
        assert follower.handled == 0
        with store.begin() as conn:  # active again: the new arrival is applied, the rest not
            conn.execute(update(connectors).values(status="active"))
        rows = _wait(
            store,
            lambda rows: [r["status"] for r in rows if r["inbox_id"] == later_row] == ["applied"],
        )
    finally:
        follower.stop(30)
    by_id = {r["inbox_id"]: r for r in rows}
    assert [r["status"] for i, r in by_id.items() if i != later_row] == ["pending", "pending"]
    assert {r["topic"] for i, r in by_id.items() if i != later_row} == {
        "orders/create",
        "refunds/create",
    }


@pytest.mark.postgres
def test_serve_workers_answer_and_the_scheduler_applies(postgres_url: str, tmp_path: Path) -> None:
    from huitouke.core.secretbox import new_key

    enc = new_key()
    settings = Settings(database_url=postgres_url, lang="en", encryption_keys=enc)
    store = Store(postgres_url)
    store.migrate()
    env = {"HUITOUKE_ENCRYPTION_KEYS": enc, "HUITOUKE_WEBHOOK_APPLY": "scheduler"}
    try:
        _add(store, settings)
        bodies = _stream()
        log = tmp_path / "serve.log"
        # the scheduler off: the workers store and answer, nobody applies
        server = LiveServer(postgres_url, log, workers=2, env=env).start()
        try:
            for body in bodies[:10]:
                r = httpx.post(
                    f"{server.base_url}/v1/connectors/shop1/webhook",
                    content=body, headers=_headers(body), timeout=30,
                )  # fmt: skip
                assert r.status_code == 200 and r.json()["status"] == "pending", r.text
            time.sleep(1.0)
            assert {r["status"] for r in _inbox(store)} == {"pending"}
        finally:
            server.stop()
        # the scheduler on (in serve's parent process), HUITOUKE_WEBHOOK_APPLY left at its
        # default (auto: two workers on PostgreSQL with the scheduler → the follower)
        on_env = {"HUITOUKE_ENCRYPTION_KEYS": enc, "HUITOUKE_SCHEDULER": "on"}
        on = LiveServer(postgres_url, log, workers=2, env=on_env).start()
        try:
            for body in bodies[10:]:
                r = httpx.post(
                    f"{on.base_url}/v1/connectors/shop1/webhook",
                    content=body, headers=_headers(body), timeout=30,
                )  # fmt: skip
                assert r.status_code == 200, r.text
            rows = _wait(
                store, lambda rows: all(r["status"] == "applied" for r in rows[10:]), seconds=90
            )
        finally:
            on.stop()
        # the ten stored while nobody applied arrived under a minute before the scheduler
        # started: the follower applied them too
        assert [r["status"] for r in rows] == ["applied"] * 20
        assert [r["attempts"] for r in rows] == [1] * 20
        assert {o[1] for o in snapshot(store, "shop1")["orders"].values()} == {"partially_refunded"}
        said = log.read_text()
        assert "webhook deliveries are stored, not applied: HUITOUKE_WEBHOOK_APPLY" in said
        assert "webhook deliveries are applied by the scheduler's process" in said
    finally:
        store.dispose()


@pytest.mark.parametrize(
    "chosen,url,workers,scheduler,expected",
    [
        ("auto", "postgresql+psycopg://h/db", 2, "on", "scheduler"),
        ("auto", "postgresql+psycopg://h/db", 1, "on", "service"),  # one process does all
        ("auto", "postgresql+psycopg://h/db", 4, "off", "service"),  # nobody would apply
        ("auto", "sqlite:///shop.db", 2, "on", "service"),  # SQLite: one writer at a time
        ("service", "postgresql+psycopg://h/db", 2, "on", "service"),
        ("scheduler", "sqlite:///shop.db", 1, "off", "scheduler"),  # as asked, with a warning
    ],
)
def test_auto_is_the_follower_only_where_it_helps(
    chosen: str, url: str, workers: int, scheduler: str, expected: str
) -> None:
    from huitouke.cli.service_cmd import _webhook_apply

    settings = Settings(webhook_apply=chosen, scheduler=scheduler)
    assert _webhook_apply(settings, url, workers) == expected
