"""The scheduler loop: wake every tick, run each job's latest due slot once, under its lock.

Why a small loop of our own around APScheduler's cron arithmetic rather than APScheduler's
``BackgroundScheduler``: what this product needs from a scheduler is exactly what
APScheduler 3's scheduler leaves to the application — a lock so that two processes never
run one job (its job stores have none; two schedulers on one job store both fire), a run
history with durations and errors that the CLI and the API read (its job store keeps only
the next fire time, as a pickle), and "a missed run is caught up once" that survives a
restart (its ``coalesce`` and ``misfire_grace_time`` work on the job store's next fire
time, which a memory store forgets and a SQLAlchemy store pickles with the function). With
the history table and the locks ours, the loop left is ~100 lines; the part worth a
library — cron fields and daylight-saving time — is APScheduler's ``CronTrigger``
(:mod:`huitouke.app.scheduler.schedule`).

Each tick, for every job that is not running in this process: the latest slot at or before
now; if it is later than the last slot handled (read from the history at start), it is run
— once, whatever the number of slots missed while the scheduler was down (recorded as
``catch_up`` then). A run takes the job's lock (:mod:`~huitouke.app.scheduler.locks`),
checks under it that no process ran the slot already, records itself as ``running``, calls
the job and records how it ended. A job that raises is recorded as ``failed`` with its
error; the scheduler goes on.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from huitouke.app.scheduler.history import finish_run, last_slots, start_run
from huitouke.app.scheduler.inbox import InboxFollower
from huitouke.app.scheduler.locks import Lease, job_lock
from huitouke.app.scheduler.registry import Job, JobContext, JobFailed, JobSkipped, Registry
from huitouke.app.scheduler.schedule import Schedule
from huitouke.errors import ConfigError, ConflictError, HuitoukeError
from huitouke.settings import Settings
from huitouke.store.db import Store
from huitouke.store.uow import run_read

__all__ = ["Scheduler", "holder_name", "run_job_now", "scheduler_clock"]

log = logging.getLogger("huitouke.scheduler")

Clock = Callable[[], datetime]


def holder_name() -> str:
    """``host:pid:random`` — who holds a lease or ran a job."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def scheduler_clock(settings: Settings) -> Clock:
    """The scheduler's clock: real time, or — for drills and tests only — a clock that
    starts at ``HUITOUKE_SCHEDULER_CLOCK_START`` and runs ``HUITOUKE_SCHEDULER_CLOCK_SPEED``
    times as fast."""
    if not settings.scheduler_clock_start:
        return lambda: datetime.now(UTC)
    try:
        start = datetime.fromisoformat(settings.scheduler_clock_start)
    except ValueError:
        start = None
    if start is None or start.tzinfo is None:
        raise ConfigError(
            f"HUITOUKE_SCHEDULER_CLOCK_START={settings.scheduler_clock_start!r} is not an ISO "
            "instant with an offset",
            code="settings.invalid",
            message_zh=f"HUITOUKE_SCHEDULER_CLOCK_START={settings.scheduler_clock_start!r} "
            "不是带时区偏移的 ISO 时间",
        )
    speed = settings.scheduler_clock_speed
    t0 = time.monotonic()
    from datetime import timedelta

    return lambda: (start + timedelta(seconds=(time.monotonic() - t0) * speed)).astimezone(UTC)


@dataclass
class RunOutcome:
    run_id: int | None
    status: str
    error_code: str | None = None
    error: str | None = None
    error_zh: str | None = None
    result: Any = None


def _execute(
    store: Store,
    settings: Settings,
    job: Job,
    *,
    slot: datetime | None,
    trigger: str,
    clock: Clock,
    holder: str,
) -> RunOutcome:
    """Under the job's lock already: record the run, call the job, record how it ended."""
    host, _, _ = holder.partition(":")
    started = clock()
    run_id = start_run(
        store, job=job.name, slot=slot, trigger=trigger, now=started, host=host, pid=os.getpid()
    )
    if run_id is None:
        return RunOutcome(None, "taken")
    ctx = JobContext(
        store=store, settings=settings, now=started, slot=slot, trigger=trigger, holder=holder,
        run_id=run_id,
    )  # fmt: skip
    t0 = time.perf_counter()
    out = RunOutcome(run_id, "succeeded")
    try:
        out.result = job.fn(ctx)
    except JobSkipped as exc:
        out.status, out.error_code = "skipped", exc.code
        out.error, out.error_zh = exc.message, exc.message_zh
    except HuitoukeError as exc:
        out.status, out.error_code = "failed", exc.code
        out.error, out.error_zh = exc.message, exc.message_zh
        out.result = exc.result if isinstance(exc, JobFailed) else None
    except Exception as exc:
        log.exception("job %s failed", job.name)
        unexpected = HuitoukeError(f"{type(exc).__name__}: {exc}", code="scheduler.job_error")
        out.status, out.error_code = "failed", unexpected.code
        out.error = out.error_zh = unexpected.message
    elapsed = time.perf_counter() - t0
    if out.status == "failed":
        log.error("job %s failed: [%s] %s", job.name, out.error_code, out.error)
    else:
        log.info("job %s %s in %.3fs", job.name, out.status, elapsed)
    finish_run(
        store,
        run_id,
        status=out.status,
        started=started,
        now=clock(),
        elapsed_s=elapsed,
        error_code=out.error_code,
        error=out.error,
        error_zh=out.error_zh,
        result=out.result,
    )
    return out


def run_job_now(
    store: Store, settings: Settings, registry: Registry, name: str, *, clock: Clock | None = None
) -> RunOutcome:
    """Run ``name`` now, by hand, under its lock (``huitouke scheduler run JOB``); refused
    with ``scheduler.job_running`` while another process runs it."""
    job = registry.get(name)
    holder = holder_name()
    with job_lock(store, job.name, holder, settings.scheduler_lease_seconds) as got:
        if not got:
            raise ConflictError(
                f"job {name!r} is running in another process; try again when it has finished",
                code="scheduler.job_running",
                message_zh=f"任务 {name!r} 正在另一个进程中运行,请在其结束后再试",
                details={"job": name},
            )
        return _execute(
            store,
            settings,
            job,
            slot=None,
            trigger="manual",
            clock=clock or scheduler_clock(settings),
            holder=holder,
        )


class Scheduler:
    """Runs the registry's jobs on their schedules until stopped."""

    def __init__(
        self,
        store: Store,
        settings: Settings,
        registry: Registry | None = None,
        *,
        clock: Clock | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.registry = registry or Registry.load(settings)
        self.clock = clock or scheduler_clock(settings)
        self.holder = holder_name()
        self.jobs: list[tuple[Job, Schedule]] = self.registry.active()
        self.pool = ThreadPoolExecutor(
            max_workers=max(1, len(self.jobs)), thread_name_prefix="huitouke-job"
        )
        self.running: dict[str, Future[Any]] = {}
        self.seen: dict[str, datetime] = {}
        #: the next slot of each job after the last one looked at: no need to look before
        self.next_due: dict[str, datetime | None] = {}
        self.started_at: datetime | None = None
        self.lease: Lease | None = None
        self._lease_renewed = 0.0
        #: ``HUITOUKE_WEBHOOK_APPLY=scheduler``: the thread applying webhook deliveries
        self.follower: InboxFollower | None = None

    # -- the SQLite store's one scheduler ----------------------------------------------------
    def acquire(self) -> bool:
        """Take the scheduler lease on a SQLite store (always True on PostgreSQL)."""
        if self.store.dialect == "postgresql":
            return True
        self.lease = Lease(
            self.store, "scheduler", self.holder, self.settings.scheduler_lease_seconds
        )
        if self.lease.acquire():
            self._lease_renewed = time.monotonic()
            return True
        return False

    def refuse(self) -> ConflictError:
        info = self.lease.holder_info() if self.lease else None
        who = info["holder"] if info else "?"
        until = info["expires_at"].isoformat() if info else "?"
        return ConflictError(
            f"a scheduler is already running on this SQLite store ({who}, lease until {until}); "
            "a SQLite store has one scheduler (on PostgreSQL several may run)",
            code="scheduler.already_running",
            message_zh=f"此 SQLite 数据库已有定时任务进程在运行({who},租约至 {until});"
            "SQLite 只能运行一个定时任务进程(PostgreSQL 可运行多个)",
            details={"holder": who, "expires_at": until},
        )

    def _keep_lease(self) -> bool:
        """Renew the SQLite lease when a third of it has passed; False when it was lost (it
        expired — the store was unreachable for that long — and another process took it)."""
        if self.lease is None:
            return True
        if time.monotonic() - self._lease_renewed < self.settings.scheduler_lease_seconds / 3:
            return True
        try:
            if not self.lease.renew():
                return False
        except Exception:  # the store is busy or away: the lease lasts, try at the next tick
            log.exception("renewing the scheduler lease")
            return True
        self._lease_renewed = time.monotonic()
        return True

    # -- the loop ---------------------------------------------------------------------------
    def load_history(self) -> None:
        self.seen = run_read(self.store, last_slots)
        self.started_at = self.clock()

    def tick(self) -> list[str]:
        """Start the due slots; returns the names of the jobs started."""
        now = self.clock()
        started = []
        for job, schedule in self.jobs:
            fut = self.running.get(job.name)
            if fut is not None and not fut.done():
                continue  # still running: its next slot is looked at when it is done
            due = self.next_due.get(job.name)
            if due is not None and now < due:
                continue  # (a cron slot costs about a millisecond to find; most ticks skip it)
            slot = schedule.latest(now)
            last = self.seen.get(job.name)
            if slot is None or (last is not None and slot <= last):
                self.next_due[job.name] = schedule.next_after(max(now, last or now))
                continue
            self.next_due[job.name] = schedule.next_after(slot)
            missed = last is not None and schedule.next_after(last) != slot
            self.seen[job.name] = slot
            self.running[job.name] = self.pool.submit(
                self._run_slot, job, slot, "catch_up" if missed else "schedule"
            )
            started.append(job.name)
        return started

    def _run_slot(self, job: Job, slot: datetime, trigger: str) -> RunOutcome | None:
        try:
            with job_lock(
                self.store, job.name, self.holder, self.settings.scheduler_lease_seconds
            ) as got:
                if not got:
                    log.debug("job %s: another process holds its lock", job.name)
                    return None
                return _execute(
                    self.store,
                    self.settings,
                    job,
                    slot=slot,
                    trigger=trigger,
                    clock=self.clock,
                    holder=self.holder,
                )
        except Exception:  # the store itself failed: logged, the next slot tries again
            log.exception("job %s: could not run slot %s", job.name, slot.isoformat())
            return None

    def run(self, stop: threading.Event, *, standby: bool = False) -> None:
        """Run until ``stop`` is set, then let the runs in flight finish.

        On a SQLite store whose scheduler lease another process holds: refuse
        (``scheduler.already_running``), or with ``standby`` wait until it can be taken —
        also after losing it while running."""
        tick = self.settings.scheduler_tick_seconds
        try:
            while not stop.is_set():
                if not self.acquire():
                    if not standby:
                        raise self.refuse()
                    log.info("another scheduler holds this store; standing by")
                    stop.wait(max(tick, self.settings.scheduler_lease_seconds / 3))
                    continue
                self.load_history()
                self.next_due.clear()
                if self.settings.webhook_apply == "scheduler" and self.follower is None:
                    self.follower = InboxFollower(self.store, self.settings, self.clock)
                    self.follower.start()
                log.info(
                    "scheduler %s on %s: %s",
                    self.holder,
                    self.store.dialect,
                    ", ".join(f"{j.name}={s.spec}" for j, s in self.jobs),
                )
                while not stop.is_set():
                    self.tick()
                    if not self._keep_lease():
                        if not standby:
                            raise self.refuse()
                        log.error("the scheduler lease was lost; standing by")
                        break
                    stop.wait(tick)
        finally:
            self.close()

    def close(self) -> None:
        """Wait for the runs in flight (a graceful stop), then give up the lease."""
        self.pool.shutdown(wait=True)
        if self.follower is not None:
            self.follower.stop()
            self.follower = None
        if self.lease is not None:
            try:
                self.lease.release()
            except Exception:  # pragma: no cover - it expires by itself
                log.exception("releasing the scheduler lease")
            self.lease = None
