"""Real `huitouke scheduler` (and `huitouke serve`) processes, with a fast clock where a test
needs hours to pass: a missed run is caught up once after a restart, a second scheduler on
SQLite is refused, two schedulers on PostgreSQL run a journey once, a 02:30 job runs once
on the spring-forward day, SIGTERM stops gracefully, `serve` runs the scheduler."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from huitouke.app.scheduler.tables import scheduler_runs
from huitouke.journeys.repo import set_enabled
from huitouke.journeys.service import run_journeys
from huitouke.journeys.tables import journey_run_days
from huitouke.messaging.tables import outbox
from huitouke.settings import Settings
from huitouke.store.db import Store
from journeys.test_service_store import BUILTIN, seed
from service.conftest import make_keys
from service.live import LiveServer

OTHERS_OFF = "loyalty.expiry=off; loyalty.tiers=off; loyalty.bonus_release=off; scheduler.prune=off"


@dataclass
class Proc:
    url: str
    log: Path
    env: dict[str, str] = field(default_factory=dict)
    args: tuple[str, ...] = ()
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Proc:
        env = {
            **os.environ,
            "HUITOUKE_DATABASE_URL": self.url,
            "HUITOUKE_LANG": "en",
            "HUITOUKE_SCHEDULER_TICK_SECONDS": "0.1",
            **self.env,
        }
        cmd = [sys.executable, "-m", "huitouke", "scheduler", *self.args]
        self.proc = subprocess.Popen(
            cmd, env=env, stdout=self.log.open("ab"), stderr=subprocess.STDOUT
        )
        return self

    def stop(self) -> int:
        """SIGTERM: the runs in flight finish, then the process exits 0."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout=60)
        self.proc = None
        return rc

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def procs() -> Iterator[list[Proc]]:
    started: list[Proc] = []
    yield started
    for p in started:
        p.kill()


def wait_for(cond: Callable[[], Any], timeout: float = 90, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = cond()
        if got:
            return got
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def runs_of(store: Store, job: str) -> list[Any]:
    with store.connect() as conn:
        return list(
            conn.execute(
                select(scheduler_runs)
                .where(scheduler_runs.c.job == job)
                .order_by(scheduler_runs.c.slot)
            ).mappings()
        )


def test_a_restart_after_three_missed_slots_catches_up_once_and_sqlite_has_one_scheduler(
    sqlite_url: str, tmp_path: Path, procs: list[Proc]
) -> None:
    store = Store(sqlite_url)
    store.migrate()
    env = {
        "HUITOUKE_SCHEDULER_SCHEDULES": f"outbox=off; journeys=off; {OTHERS_OFF}; "
        "scheduler.prune=every 1m",
        "HUITOUKE_SCHEDULER_CLOCK_START": "2030-01-01T00:00:00+00:00",
        "HUITOUKE_SCHEDULER_CLOCK_SPEED": "30",  # a slot every 2 s
    }
    a = Proc(sqlite_url, tmp_path / "a.log", env)
    procs.append(a.start())
    wait_for(lambda: len(runs_of(store, "scheduler.prune")) >= 3, what="three slots")
    assert a.stop() == 0
    before = runs_of(store, "scheduler.prune")
    assert all(r["status"] == "succeeded" for r in before)
    last = before[-1]["slot"]
    # down for three slots: the next process's clock starts 3.5 slots later, at real speed
    env_b = {
        **env,
        "HUITOUKE_SCHEDULER_CLOCK_START": (last + timedelta(minutes=3, seconds=30)).isoformat(),
        "HUITOUKE_SCHEDULER_CLOCK_SPEED": "1",
    }
    b = Proc(sqlite_url, tmp_path / "b.log", env_b)
    procs.append(b.start())
    wait_for(lambda: len(runs_of(store, "scheduler.prune")) > len(before), what="catch-up")
    # a second scheduler on the same SQLite store is refused, naming the holder
    second = subprocess.run(
        [sys.executable, "-m", "huitouke", "scheduler"],
        env={**os.environ, "HUITOUKE_DATABASE_URL": sqlite_url, "HUITOUKE_LANG": "en", **env_b},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert second.returncode == 4, second.stderr
    assert "scheduler.already_running" in second.stderr
    time.sleep(1.0)
    assert b.stop() == 0
    after = runs_of(store, "scheduler.prune")[len(before) :]
    assert [(r["slot"], r["trigger"], r["status"]) for r in after] == [
        (last + timedelta(minutes=3), "catch_up", "succeeded")
    ]
    assert "scheduler stopped" in (tmp_path / "b.log").read_text()
    store.dispose()


def test_a_0230_job_runs_once_on_the_spring_forward_day_in_a_real_process(
    sqlite_url: str, tmp_path: Path, procs: list[Proc]
) -> None:
    store = Store(sqlite_url)
    store.migrate()
    env = {
        "HUITOUKE_TIMEZONE": "America/New_York",
        "HUITOUKE_SCHEDULER_SCHEDULES": "outbox=off; journeys=off; loyalty.tiers=off; "
        "loyalty.bonus_release=off; scheduler.prune=off; loyalty.expiry=cron 30 2 * * *",
        "HUITOUKE_SCHEDULER_CLOCK_START": "2027-03-14T01:00:00-05:00",
        "HUITOUKE_SCHEDULER_CLOCK_SPEED": "1800",  # half an hour a second
    }
    p = Proc(sqlite_url, tmp_path / "dst.log", env)
    procs.append(p.start())
    on_day = datetime(2027, 3, 14, 7, 30, tzinfo=UTC)  # 03:30 EDT
    wait_for(lambda: any(r["slot"] == on_day for r in runs_of(store, "loyalty.expiry")))
    time.sleep(3)  # another 90 minutes of the fast clock: past 05:00 EDT
    assert p.stop() == 0
    # no loyalty program: each run is skipped with the reason, and skips for one reason fold
    # into one row that counts them: 13 March's slot (never run before: the latest at start),
    # then 14 March's, once
    (row,) = runs_of(store, "loyalty.expiry")
    assert row["error_code"] == "loyalty.no_program" and row["slot"] == on_day
    assert row["result"]["skipped_in_a_row"] == 2
    store.dispose()


def seed_today(store: Store, n: int) -> date:
    """Customers whose first order was 7 days ago in the merchant's zone (Shanghai), so the
    second-order journey is due today in real time; returns today."""
    from decimal import Decimal
    from zoneinfo import ZoneInfo

    from huitouke.store.tables import customers, orders

    zone = ZoneInfo("Asia/Shanghai")
    today = datetime.now(zone).date()
    ordered = datetime.combine(today - timedelta(days=7), dtime(12), tzinfo=zone)
    now = datetime.now(UTC)
    with store.begin() as conn:
        conn.execute(
            customers.insert(),
            [
                {
                    "customer_id": f"c{i}", "name": f"顾客{i}", "phone": f"1380000{i:04d}",
                    "tags": [], "attributes": {}, "consent": {"sms": True},
                    "created_at": now, "updated_at": now,
                }
                for i in range(n)
            ],
        )  # fmt: skip
        conn.execute(
            orders.insert(),
            [
                {
                    "order_id": f"o{i}", "customer_id": f"c{i}", "ordered_at": ordered,
                    "amount": Decimal("88.00"), "currency": "CNY", "status": "paid",
                    "refunded_amount": Decimal(0), "updated_at": now,
                }
                for i in range(n)
            ],
        )  # fmt: skip
    return today


@pytest.mark.postgres
def test_two_schedulers_on_postgresql_run_a_journey_once(
    postgres_url: str, tmp_path: Path, procs: list[Proc]
) -> None:
    from huitouke.journeys.repo import save_journey

    store = Store(postgres_url)
    store.migrate()
    today = seed_today(store, 30)
    # the second-order journey, due from midnight: both schedulers race for it in real time
    journey = BUILTIN["second_order"].model_copy(update={"holdout": 0.0})
    journey = journey.model_copy(
        update={"trigger": journey.trigger.model_copy(update={"at": dtime(0)})}
    )
    with store.begin() as conn:
        save_journey(conn, journey, enabled=True)
    s = Settings(database_url=postgres_url)
    dry = run_journeys(store, [journey], today, settings=s, dry_run=True)
    expected = int((dry.plan.rows["status"] == "planned").sum())
    assert expected == 30
    env = {"HUITOUKE_SCHEDULER_SCHEDULES": f"outbox=every 0.5s; journeys=every 1s; {OTHERS_OFF}"}
    a = Proc(postgres_url, tmp_path / "a.log", env).start()
    b = Proc(postgres_url, tmp_path / "b.log", env).start()
    procs.extend([a, b])

    def outbox_count() -> int:
        with store.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(outbox)).scalar_one())

    def both_ran() -> bool:  # (the outbox's skips, no channel here, fold into one row)
        return len({r["pid"] for r in runs_of(store, "journeys")}) == 2

    wait_for(lambda: outbox_count() > 0, what="the journey's messages")
    wait_for(both_ran, what="both schedulers taking slots")
    time.sleep(3)  # several more journeys slots in both processes
    assert a.stop() == 0 and b.stop() == 0

    assert outbox_count() == expected
    with store.connect() as conn:
        days = conn.execute(select(journey_run_days)).mappings().all()
    assert [(d["journey_id"], d["run_day"]) for d in days] == [("second_order", today)]
    journeys = runs_of(store, "journeys")
    assert [r["result"]["run"] for r in journeys if r["result"]["run"]] == [["second_order"]]
    slots = [(r["job"], r["slot"]) for job in ("outbox", "journeys") for r in runs_of(store, job)]
    assert len(slots) == len(set(slots))  # each slot once, by one process or the other

    # a run by hand the same day: the journey is not run twice
    manual = subprocess.run(
        [sys.executable, "-m", "huitouke", "scheduler", "run", "journeys"],
        env={**os.environ, "HUITOUKE_DATABASE_URL": postgres_url, "HUITOUKE_LANG": "en", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert manual.returncode == 0, manual.stderr
    cli = subprocess.run(
        [sys.executable, "-m", "huitouke", "journeys", "run", "--as-of", today.isoformat()],
        env={**os.environ, "HUITOUKE_DATABASE_URL": postgres_url, "HUITOUKE_LANG": "en"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert cli.returncode == 0, cli.stderr
    assert f"already run for {today.isoformat()}, not run again: second_order" in cli.stderr
    assert outbox_count() == expected
    store.dispose()


def test_serve_runs_the_scheduler_and_the_api_shows_its_runs(
    sqlite_url: str, tmp_path: Path
) -> None:
    store = Store(sqlite_url)
    store.migrate()
    keys = make_keys(store)
    server = LiveServer(
        sqlite_url,
        tmp_path / "serve.log",
        env={
            "HUITOUKE_SCHEDULER": "on",
            "HUITOUKE_SCHEDULER_TICK_SECONDS": "0.1",
            "HUITOUKE_SCHEDULER_SCHEDULES": f"outbox=every 0.5s; journeys=off; {OTHERS_OFF}",
        },
    ).start()
    try:
        h = {"Authorization": f"Bearer {keys.read}"}

        def outbox_runs() -> list[Any]:
            r = httpx.get(f"{server.base_url}/v1/scheduler/runs?job=outbox", headers=h)
            assert r.status_code == 200, r.text
            rows = list(r.json())
            done = rows and (rows[0]["result"] or {}).get("skipped_in_a_row", 0) >= 3
            return rows if done else []

        runs = wait_for(outbox_runs, what="runs through the API")
        # no channel configured: three skips and more, for the same reason, in one row
        assert len(runs) == 1
        assert runs[0]["status"] == "skipped"
        assert runs[0]["error_code"] == "settings.channel_missing"
        jobs = httpx.get(f"{server.base_url}/v1/scheduler/jobs", headers=h).json()
        by = {j["name"]: j for j in jobs}
        assert by["outbox"]["schedule"] == "every 0.5s" and by["outbox"]["last_run"]
        assert by["journeys"]["enabled"] is False and by["journeys"]["next_run"] is None
    finally:
        server.stop()
    # stopped gracefully: the lease is given back, a scheduler can start at once
    from huitouke.app.scheduler.tables import scheduler_leases

    with store.connect() as conn:
        assert conn.execute(select(scheduler_leases)).first() is None
    store.dispose()


def test_a_failing_journey_is_recorded_and_the_scheduler_keeps_running(
    sqlite_url: str, tmp_path: Path, procs: list[Proc]
) -> None:
    from huitouke.journeys.model import Journey
    from huitouke.journeys.repo import save_journey

    store = Store(sqlite_url)
    store.migrate()
    seed(store, n=6)
    data = BUILTIN["second_order"].model_copy(update={"holdout": 0.0}).model_dump(mode="json")
    data["id"] = "broken_thanks"
    data["templates"]["thanks"]["zh"]["body"] = "{{ customer.nickname }},感谢光临"
    data["templates"]["thanks"]["en"]["body"] = "{{ customer.nickname }}, thanks"
    with store.begin() as conn:
        save_journey(conn, Journey.model_validate(data), enabled=True)
        set_enabled(conn, "second_order", True)
    env = {
        "HUITOUKE_SCHEDULER_SCHEDULES": f"outbox=every 0.5s; journeys=every 1s; {OTHERS_OFF}",
        "HUITOUKE_SCHEDULER_CLOCK_START": "2026-03-20T11:00:00+08:00",
    }
    p = Proc(sqlite_url, tmp_path / "fail.log", env)
    procs.append(p.start())

    def failed_twice() -> bool:
        return sum(r["status"] == "failed" for r in runs_of(store, "journeys")) >= 2

    wait_for(failed_twice, what="the broken journey failing at two slots")

    def outbox_skips() -> int:  # no channel: the outbox's skips fold into one row
        rows = runs_of(store, "outbox")
        return int(rows[-1]["result"]["skipped_in_a_row"]) if rows and rows[-1]["result"] else 0

    n_outbox = outbox_skips()
    wait_for(lambda: outbox_skips() > n_outbox + 2, what="the loop going on")
    assert p.stop() == 0
    journeys = runs_of(store, "journeys")
    fails = [r for r in journeys if r["status"] == "failed"]
    assert {r["error_code"] for r in fails} == {"template.missing_field"}
    assert all("broken_thanks" in r["error"] and "nickname" in r["error"] for r in fails)
    # the good journey was written once, at the first slot, beside the failure
    assert [r["result"]["run"] for r in fails] == [["second_order"]] + [[]] * (len(fails) - 1)
    assert all(r["result"]["failed"] == {"broken_thanks": "template.missing_field"} for r in fails)
    with store.connect() as conn:
        days = {d.journey_id for d in conn.execute(select(journey_run_days))}
    assert days == {"second_order"}
    store.dispose()
