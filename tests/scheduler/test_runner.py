"""The scheduler loop on the real store (SQLite and PostgreSQL), driven by a clock the test
moves: a missed run is caught up once, a failing job is recorded and the others go on,
a 02:30 job runs once on the spring-forward day, each run holds its job's lock."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from huitouke.app.scheduler import Job, JobContext, Registry, Scheduler, run_job_now
from huitouke.app.scheduler.history import list_runs
from huitouke.app.scheduler.locks import Lease, advisory_key, job_lock
from huitouke.app.scheduler.schedule import parse_schedule
from huitouke.app.scheduler.tables import scheduler_runs
from huitouke.errors import HuitoukeError
from huitouke.settings import Settings
from huitouke.store.db import Store


class Clock:
    def __init__(self, t: datetime) -> None:
        self.t = t

    def __call__(self) -> datetime:
        return self.t


def registry(zone: str, **jobs: tuple[str, Callable[[JobContext], Any]]) -> Registry:
    made = {
        n.replace("_", "."): Job(n.replace("_", "."), spec, fn) for n, (spec, fn) in jobs.items()
    }
    return Registry(
        jobs=made, schedules={n: parse_schedule(j.schedule, zone) for n, j in made.items()}
    )


def drive(sched: Scheduler) -> list[str]:
    started = sched.tick()
    for f in list(sched.running.values()):
        f.result()
    return started


def runs(store: Store, job: str) -> list[Mapping[str, Any]]:
    with store.connect() as conn:
        return list(
            conn.execute(
                select(scheduler_runs).where(scheduler_runs.c.job == job).order_by("run_id")
            ).mappings()
        )


def test_a_missed_run_is_caught_up_once_after_downtime(store: Store) -> None:
    calls: list[datetime | None] = []
    reg = registry("Asia/Shanghai", tick=("every 1m", lambda ctx: calls.append(ctx.slot)))
    clock = Clock(datetime(2027, 1, 1, 0, 0, 30, tzinfo=UTC))
    s = Scheduler(store, Settings(), reg, clock=clock)
    s.load_history()
    assert drive(s) == ["tick"]  # never run: its latest slot
    clock.t += timedelta(seconds=20)
    assert drive(s) == []  # same slot
    clock.t += timedelta(seconds=20)
    assert drive(s) == ["tick"]  # the next one, on time
    s.close()

    # down for three slots (00:02, 00:03, 00:04); a new process reads the history
    clock.t = datetime(2027, 1, 1, 0, 4, 50, tzinfo=UTC)
    s2 = Scheduler(store, Settings(), reg, clock=clock)
    s2.load_history()
    assert drive(s2) == ["tick"]
    assert drive(s2) == []
    s2.close()
    rows = runs(store, "tick")
    assert [(r["slot"].strftime("%H:%M"), r["trigger"], r["status"]) for r in rows] == [
        ("00:00", "schedule", "succeeded"),
        ("00:01", "schedule", "succeeded"),
        ("00:04", "catch_up", "succeeded"),
    ]
    assert len(calls) == 3 and all(r["duration_ms"] is not None for r in rows)


def test_a_failing_job_is_recorded_with_its_error_and_the_scheduler_goes_on(
    store: Store,
) -> None:
    done: list[str] = []

    def boom(ctx: JobContext) -> None:
        raise RuntimeError("the provider is down")

    def coded(ctx: JobContext) -> None:
        raise HuitoukeError("bad thing", code="demo.bad", message_zh="坏事")

    reg = registry(
        "Asia/Shanghai",
        boom=("every 1m", boom),
        coded=("every 1m", coded),
        fine=("every 1m", lambda ctx: done.append("x") or {"n": len(done)}),
    )
    clock = Clock(datetime(2027, 1, 1, 0, 0, 30, tzinfo=UTC))
    s = Scheduler(store, Settings(), reg, clock=clock)
    stop = threading.Event()
    loop = threading.Thread(target=s.run, args=(stop,))
    s.settings = Settings(scheduler_tick_seconds=0.05)
    loop.start()
    try:
        for _ in range(3):
            deadline = datetime.now(UTC) + timedelta(seconds=20)
            want = len(done) + 1
            while len(done) < want and datetime.now(UTC) < deadline:
                stop.wait(0.05)
            clock.t += timedelta(minutes=1)
    finally:
        stop.set()
        loop.join()
    assert len(done) == 3  # the loop kept going around the failing jobs
    failed = list_runs(store, job="boom", failed=True)
    assert len(failed) == 3
    assert failed[0]["error_code"] == "scheduler.job_error"
    assert failed[0]["error"] == "RuntimeError: the provider is down"
    zh = list_runs(store, job="coded", lang="zh")
    assert zh[0]["status"] == "failed" and zh[0]["error_code"] == "demo.bad"
    assert zh[0]["error"] == "坏事"
    assert list_runs(store, job="fine")[0]["result"] == {"n": 3}


def test_a_0230_job_runs_once_on_the_spring_forward_day(store: Store) -> None:
    ny = "America/New_York"
    reg = registry(ny, nightly=("cron 30 2 * * *", lambda ctx: None))
    clock = Clock(datetime(2027, 3, 13, 3, tzinfo=UTC))  # 12 March, 22:00 EST
    s = Scheduler(store, Settings(timezone=ny), reg, clock=clock)
    s.load_history()
    while clock.t < datetime(2027, 3, 16, 12, tzinfo=UTC):
        drive(s)
        clock.t += timedelta(minutes=10)
    s.close()
    slots = [r["slot"] for r in runs(store, "nightly")]
    # the first is 12 March's (never run before: its latest slot), then one a day
    assert slots == [
        datetime(2027, 3, 12, 7, 30, tzinfo=UTC),
        datetime(2027, 3, 13, 7, 30, tzinfo=UTC),
        datetime(2027, 3, 14, 7, 30, tzinfo=UTC),  # 03:30 EDT: 02:30 does not exist that day
        datetime(2027, 3, 15, 6, 30, tzinfo=UTC),
        datetime(2027, 3, 16, 6, 30, tzinfo=UTC),
    ]


def test_a_job_lock_is_held_for_the_run_and_a_second_taker_is_refused(store: Store) -> None:
    seen: list[bool] = []

    def probe(ctx: JobContext) -> None:
        with job_lock(store, "probe", "someone-else", 30) as got:
            seen.append(got)

    reg = registry("UTC", probe=("every 1m", probe))
    out = run_job_now(store, Settings(), reg, "probe")
    assert out.status == "succeeded" and seen == [False]
    with job_lock(store, "probe", "someone-else", 30) as got:  # released after the run
        assert got
        with pytest.raises(HuitoukeError) as e:
            run_job_now(store, Settings(), reg, "probe")
        assert e.value.code == "scheduler.job_running"
    assert [r["trigger"] for r in runs(store, "probe")] == ["manual"]


def test_advisory_keys_are_stable_64_bit() -> None:
    k = advisory_key("journeys")
    assert k == advisory_key("journeys") != advisory_key("outbox")
    assert -(2**63) <= k < 2**63
    # pinned: a key that changed between versions would let an old and a new process both run
    assert k == -5893710333382443387


def test_on_sqlite_a_second_scheduler_is_refused_until_the_lease_expires(
    sqlite_url: str,
) -> None:
    store = Store(sqlite_url)
    store.migrate()
    reg = registry("UTC", t=("every 1m", lambda ctx: None))
    a = Scheduler(store, Settings(scheduler_lease_seconds=0.5), reg)
    b = Scheduler(store, Settings(scheduler_lease_seconds=0.5), reg)
    assert a.acquire()
    assert not b.acquire()
    err = b.refuse()
    assert err.code == "scheduler.already_running" and a.holder in err.message
    threading.Event().wait(0.7)  # a died without renewing: its lease is taken over
    assert b.acquire()
    assert not Lease(store, "scheduler", a.holder, 0.5).renew()
    b.close()
    a.pool.shutdown()
    store.dispose()


def test_a_run_whose_process_died_is_recorded_as_interrupted(store: Store) -> None:
    started = datetime(2027, 1, 1, tzinfo=UTC)
    with store.begin() as conn:
        conn.execute(
            scheduler_runs.insert().values(
                job="t", slot=started, trigger="schedule", status="running",
                started_at=started, host="gone", pid=1,
            )
        )  # fmt: skip
    reg = registry("UTC", t=("every 1m", lambda ctx: None))
    assert run_job_now(store, Settings(), reg, "t").status == "succeeded"
    dead, manual = runs(store, "t")
    assert (dead["status"], dead["error_code"]) == ("failed", "scheduler.interrupted")
    assert dead["finished_at"] is not None and manual["trigger"] == "manual"


def test_stopping_waits_for_the_runs_in_flight(store: Store) -> None:
    began = threading.Event()

    def slow(ctx: JobContext) -> dict[str, str]:
        began.set()
        threading.Event().wait(1.0)
        return {"done": "yes"}

    reg = registry("UTC", slow=("every 1h", slow))
    s = Scheduler(store, Settings(scheduler_tick_seconds=0.05), reg)
    stop = threading.Event()
    loop = threading.Thread(target=s.run, args=(stop,))
    loop.start()
    assert began.wait(30)
    stop.set()  # what SIGTERM does
    loop.join()
    (row,) = runs(store, "slow")
    assert row["status"] == "succeeded" and row["result"] == {"done": "yes"}
    assert row["duration_ms"] >= 900


def test_a_standby_scheduler_takes_over_when_the_lease_expires(sqlite_url: str) -> None:
    store = Store(sqlite_url)
    store.migrate()
    ran = threading.Event()
    reg = registry("UTC", t=("every 1h", lambda ctx: ran.set()))
    holder = Lease(store, "scheduler", "the-other-one", 0.6)
    assert holder.acquire()
    s = Scheduler(store, Settings(scheduler_tick_seconds=0.05, scheduler_lease_seconds=0.6), reg)
    stop = threading.Event()
    loop = threading.Thread(target=s.run, args=(stop,), kwargs={"standby": True})
    loop.start()
    assert not ran.wait(0.3)  # standing by while the other holds it
    assert ran.wait(30)  # the other stopped renewing: its lease expired and was taken
    stop.set()
    loop.join()
    store.dispose()


def test_skips_for_the_same_reason_fold_into_one_row(store: Store) -> None:
    from huitouke.app.scheduler import JobSkipped

    reason = {"code": "demo.off"}

    def maybe(ctx: JobContext) -> dict[str, int]:
        if reason["code"]:
            raise JobSkipped("nothing to do", code=reason["code"])
        return {"ok": 1}

    reg = registry("UTC", job=("every 1m", maybe))
    clock = Clock(datetime(2027, 1, 1, 0, 0, 30, tzinfo=UTC))
    s = Scheduler(store, Settings(), reg, clock=clock)
    s.load_history()
    for code in ("demo.off", "demo.off", "demo.off", "demo.other", None, "demo.off"):
        reason["code"] = code
        drive(s)
        clock.t += timedelta(minutes=1)
    run_job_now(store, Settings(), reg, "job")  # by hand: kept apart from the scheduled rows
    s.close()
    rows = runs(store, "job")
    assert [
        (r["status"], r["error_code"], (r["result"] or {}).get("skipped_in_a_row")) for r in rows
    ] == [
        ("skipped", "demo.off", 3),
        ("skipped", "demo.other", 1),
        ("succeeded", None, None),
        ("skipped", "demo.off", 1),
        ("skipped", "demo.off", 1),
    ]
    assert rows[0]["slot"] == datetime(2027, 1, 1, 0, 2, tzinfo=UTC)  # the latest of the three
    assert rows[0]["result"]["since"].startswith("2027-01-01T00:00:30")
    assert rows[-1]["slot"] is None


def test_pruning_forgets_old_runs_but_never_a_jobs_latest_slot(store: Store) -> None:
    from huitouke.app.scheduler.history import prune_runs

    old = datetime(2026, 1, 1, tzinfo=UTC)
    rows = [
        {"job": "a", "slot": old + timedelta(minutes=i), "status": "succeeded"} for i in range(3)
    ] + [
        {"job": "b", "slot": old, "status": "succeeded"},
        {"job": "b", "slot": None, "status": "failed"},  # by hand, old: forgotten
        {"job": "c", "slot": old + timedelta(days=60), "status": "succeeded"},  # recent: kept
    ]
    with store.begin() as conn:
        for r in rows:
            at = r["slot"] or old
            conn.execute(
                scheduler_runs.insert().values(
                    **r, trigger="schedule" if r["slot"] else "manual",
                    started_at=at, host="h", pid=1,
                )
            )  # fmt: skip
        deleted = prune_runs(conn, old + timedelta(days=61), keep_days=30)
    assert deleted == 3
    with store.connect() as conn:
        left = {(r.job, r.slot) for r in conn.execute(select(scheduler_runs))}
    assert left == {
        ("a", old + timedelta(minutes=2)),
        ("b", old),
        ("c", old + timedelta(days=60)),
    }


def test_pruning_forgets_the_background_tasks_that_ended_long_ago(store: Store) -> None:
    """The console's background tasks: those that succeeded or failed more than the kept
    days ago are forgotten by the ``scheduler.prune`` job; queued, running and recent ones
    stay."""
    from huitouke.app.scheduler.registry import JobContext, Registry
    from huitouke.settings import Settings
    from huitouke.store.task_tables import background_tasks as bt

    now = datetime(2026, 6, 1, tzinfo=UTC)
    old, recent = now - timedelta(days=31), now - timedelta(days=29)
    rows = [
        ("succeeded", old), ("failed", old), ("succeeded", recent), ("running", None),
        ("queued", None),
    ]  # fmt: skip
    with store.begin() as conn:
        for i, (status, ended) in enumerate(rows):
            conn.execute(
                bt.insert().values(
                    kind="snapshots.refresh", params={}, status=status, done=0, total=1,
                    created_by="t", created_at=(ended or now) - timedelta(hours=1),
                    finished_at=ended, attempts=1, active_key=None if ended else f"k{i}",
                )
            )  # fmt: skip
    settings = Settings(database_url=store.url, scheduler_history_days=30)
    job = Registry.load(settings).get("tasks.prune")
    ctx = JobContext(store, settings, now, now, "schedule", "test")
    result = job.fn(ctx)
    assert result["deleted"] == 2
    with store.connect() as conn:
        left = sorted((r.status, r.finished_at) for r in conn.execute(select(bt)))
    assert left == sorted([("succeeded", recent), ("running", None), ("queued", None)])
