"""Background tasks: work started from the console that lasts longer than a request should —
recomputing the snapshots (minutes on ten million orders), issuing coupons to a segment of
a million customers — run outside the request, with progress the page polls.

**Lifecycle.** :func:`submit` records a ``queued`` row (:mod:`huitouke.store.task_tables`)
and the console starts it at once in a thread of its process (:func:`start`). A run first
**claims** the row (one conditional UPDATE: only one process wins), renews its heartbeat
every few seconds while the work runs (a thread beside it: a long step such as reading ten
million orders reports no progress for minutes but stays alive), records progress
(``done`` of ``total``, the stage) as the work reports it, and ends ``succeeded`` with a
small result or ``failed`` with the error's code and message.

**Never twice at once.** Each task names what it may not overlap (``active_key``:
``snapshots.refresh``, ``segment.coupons:<kind>:<name>``, ``journey.run:<id>``,
``journey.preview:<id>:<day>``); a unique constraint on it refuses a second submission in
every process — :func:`submit` answers ``task.running`` with the running task's id — and
the key is cleared when the task ends.

**Surviving a restart.** A task whose process died (queued and never claimed, or running
with a heartbeat older than :data:`LEASE_SECONDS`) is taken over by the scheduler's
``tasks`` job (:func:`run_pending`), which runs it again: every kind is idempotent (a
snapshot refresh recomputes; the segment's coupons are keyed by the form's batch, so the
customers already served are counted, not served again; a journey's run claims its day with
the rows it writes, so a second run of the day writes nothing; a preview writes nothing).

**Kinds.** :data:`TASK_KINDS` maps a kind to ``fn(store, settings, params, progress)``
returning a JSON-ready result; ``progress(done, total, stage)``. Another kind is one line:
``register_task_kind("kind", fn)``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, delete, or_, select, update

from huitouke.errors import ConflictError, HuitoukeError, NotFoundError
from huitouke.settings import Settings
from huitouke.store.db import Store
from huitouke.store.task_tables import background_tasks as bt
from huitouke.store.uow import run_read, run_write

__all__ = [
    "HEARTBEAT_SECONDS",
    "LEASE_SECONDS",
    "TASK_KINDS",
    "Task",
    "claim",
    "get_task",
    "prune_tasks",
    "register_task_kind",
    "run_pending",
    "run_task",
    "start",
    "submit",
]

log = logging.getLogger("huitouke.tasks")

#: a running task renews its heartbeat this often …
HEARTBEAT_SECONDS = 5.0
#: … and one whose heartbeat is older than this is taken over (its process died)
LEASE_SECONDS = 60.0

TaskProgress = Callable[[int, int, str], None]
TaskFn = Callable[[Store, Settings, Mapping[str, Any], TaskProgress], Mapping[str, Any]]
TASK_KINDS: dict[str, TaskFn] = {}


def register_task_kind(kind: str, fn: TaskFn) -> None:
    """Add a kind of background task: ``fn(store, settings, params, progress)``."""
    TASK_KINDS[kind] = fn


@dataclass(frozen=True)
class Task:
    task_id: int
    kind: str
    params: dict[str, Any]
    status: str
    done: int
    total: int
    stage: str | None
    result: Any
    error_code: str | None
    error: str | None
    error_zh: str | None
    created_by: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    attempts: int

    @property
    def finished(self) -> bool:
        return self.status in ("succeeded", "failed")

    @property
    def share(self) -> float | None:
        """Progress as a share of 1 (None before the work said how much there is)."""
        return min(1.0, self.done / self.total) if self.total > 0 else None


def _task(row: Any) -> Task:
    return Task(
        task_id=int(row.task_id), kind=row.kind, params=dict(row.params or {}),
        status=row.status, done=int(row.done), total=int(row.total), stage=row.stage,
        result=row.result, error_code=row.error_code, error=row.error, error_zh=row.error_zh,
        created_by=row.created_by, created_at=row.created_at, started_at=row.started_at,
        finished_at=row.finished_at, attempts=int(row.attempts),
    )  # fmt: skip


def get_task(store: Store, task_id: int) -> Task:
    row = run_read(
        store, lambda conn: conn.execute(select(bt).where(bt.c.task_id == task_id)).first()
    )
    if row is None:
        raise NotFoundError(
            f"no background task {task_id}",
            code="task.not_found",
            message_zh=f"没有后台任务 {task_id}",
            details={"task_id": task_id},
        )
    return _task(row)


def _running(conn: Connection, key: str) -> Any:
    return conn.execute(select(bt).where(bt.c.active_key == key)).first()


def _refused(row: Any) -> ConflictError:
    return ConflictError(
        f"task {row.task_id} ({row.kind}) is already {row.status}: wait until it has finished",
        code="task.running",
        message_zh=f"后台任务 {row.task_id}({row.kind})已在{'排队' if row.status == 'queued' else '运行'}中,请等待其结束",
        details={"task_id": int(row.task_id), "kind": row.kind},
    )


def submit(
    store: Store,
    kind: str,
    params: Mapping[str, Any],
    *,
    key: str,
    by: str,
    now: datetime | None = None,
) -> Task:
    """Record a queued task of ``kind``; refused (``task.running``, with the running task's
    id) while another task with the same ``key`` is queued or running."""
    if kind not in TASK_KINDS:
        raise ValueError(f"unknown task kind {kind!r}")
    at = now or datetime.now(UTC)

    def unit(conn: Connection) -> int:
        row = _running(conn, key)
        if row is not None:
            raise _refused(row)
        res = conn.execute(
            bt.insert().values(
                kind=kind,
                active_key=key,
                params=dict(params),
                status="queued",
                done=0,
                total=0,
                created_by=by,
                created_at=at,
                attempts=0,
            )
        )
        key_row = res.inserted_primary_key
        assert key_row is not None
        return int(key_row[0])

    try:
        task_id = run_write(store, unit)
    except ConflictError as exc:
        if exc.code != "store.integrity":
            raise
        row = run_read(store, lambda conn: _running(conn, key))  # a race: the other won
        if row is None:
            raise
        raise _refused(row) from exc
    return get_task(store, task_id)


def claim(store: Store, task_id: int, holder: str, *, now: datetime | None = None) -> bool:
    """Take the task to run it: when queued, or running with a heartbeat older than the
    lease (its process died). One UPDATE: one claimant wins."""
    at = now or datetime.now(UTC)
    expired = at - timedelta(seconds=LEASE_SECONDS)

    def unit(conn: Connection) -> bool:
        res = conn.execute(
            update(bt)
            .where(
                bt.c.task_id == task_id,
                or_(
                    bt.c.status == "queued",
                    and_(bt.c.status == "running", bt.c.heartbeat_at < expired),
                ),
            )
            .values(
                status="running",
                holder=holder,
                started_at=at,
                heartbeat_at=at,
                attempts=bt.c.attempts + 1,
            )
        )
        return res.rowcount == 1

    return run_write(store, unit)


def prune_tasks(conn: Connection, now: datetime, keep_days: int) -> int:
    """Forget the tasks that ended (succeeded or failed) more than ``keep_days`` ago — the
    scheduler's ``tasks.prune`` job, with the run history's days. Queued and running
    ones are never touched; a page polling a forgotten task answers 404."""
    res = conn.execute(
        delete(bt).where(
            bt.c.status.in_(("succeeded", "failed")),
            bt.c.finished_at < now - timedelta(days=keep_days),
        )
    )
    return int(res.rowcount or 0)


def _set(store: Store, task_id: int, holder: str, **values: Any) -> None:
    run_write(
        store,
        lambda conn: conn.execute(
            update(bt).where(bt.c.task_id == task_id, bt.c.holder == holder).values(**values)
        ),
    )


def run_task(store: Store, settings: Settings, task_id: int, holder: str) -> Task | None:
    """Claim and run one task; None when another process has it."""
    if not claim(store, task_id, holder):
        return None
    task = get_task(store, task_id)
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(HEARTBEAT_SECONDS):
            try:
                _set(store, task_id, holder, heartbeat_at=datetime.now(UTC))
            except Exception:  # the store is busy: the next beat tries again
                log.exception("task %s: heartbeat", task_id)

    last = [0.0]

    def progress(done: int, total: int, stage: str) -> None:
        import time

        t = time.monotonic()
        if t - last[0] < 0.5 and done < total:
            return  # at most two writes a second
        last[0] = t
        _set(store, task_id, holder, done=done, total=total, stage=stage[:128],
             heartbeat_at=datetime.now(UTC))  # fmt: skip

    beater = threading.Thread(target=beat, name=f"huitouke-task-{task_id}-beat", daemon=True)
    beater.start()
    end: dict[str, Any]
    try:
        result = TASK_KINDS[task.kind](store, settings, task.params, progress)
        end = {"status": "succeeded", "result": dict(result)}
    except HuitoukeError as exc:
        end = {"status": "failed", "error_code": exc.code, "error": exc.message,
               "error_zh": exc.message_zh, "result": getattr(exc, "result", None)}  # fmt: skip
    except Exception as exc:
        log.exception("task %s (%s) failed", task_id, task.kind)
        unexpected = HuitoukeError(f"{type(exc).__name__}: {exc}", code="task.error")
        end = {"status": "failed", "error_code": unexpected.code, "error": unexpected.message,
               "error_zh": unexpected.message_zh}  # fmt: skip
    finally:
        stop.set()
    _set(store, task_id, holder, active_key=None, finished_at=datetime.now(UTC), **end)
    beater.join(timeout=HEARTBEAT_SECONDS * 2)
    return get_task(store, task_id)


def start(store: Store, settings: Settings, task_id: int) -> threading.Thread:
    """Run the task in a thread of this process (the console, right after submitting)."""
    from huitouke.app.scheduler.runner import holder_name

    def go() -> None:
        try:
            run_task(store, settings, task_id, holder_name())
        except Exception:  # recorded as queued/running: the scheduler takes it over
            log.exception("task %s could not run", task_id)

    thread = threading.Thread(target=go, name=f"huitouke-task-{task_id}", daemon=True)
    thread.start()
    return thread


def run_pending(
    store: Store, settings: Settings, *, holder: str, now: datetime | None = None
) -> dict[str, Any]:
    """Run the tasks left behind: queued ones nobody started (older than a heartbeat) and
    running ones whose process died (heartbeat older than the lease) — the scheduler's
    ``tasks`` job, one after another."""
    at = now or datetime.now(UTC)
    queued_before = at - timedelta(seconds=HEARTBEAT_SECONDS)
    expired = at - timedelta(seconds=LEASE_SECONDS)
    ids = run_read(
        store,
        lambda conn: [
            int(r[0])
            for r in conn.execute(
                select(bt.c.task_id)
                .where(
                    or_(
                        and_(bt.c.status == "queued", bt.c.created_at < queued_before),
                        and_(bt.c.status == "running", bt.c.heartbeat_at < expired),
                    )
                )
                .order_by(bt.c.task_id)
            )
        ],
    )
    ran: dict[str, Any] = {}
    for task_id in ids:
        task = run_task(store, settings, task_id, holder)
        if task is not None:
            ran[str(task_id)] = task.status
    return {"ran": ran}


# -- the kinds ------------------------------------------------------------------------------------


def _snapshots_refresh(
    store: Store, settings: Settings, params: Mapping[str, Any], progress: TaskProgress
) -> dict[str, Any]:
    """``params``: ``kinds`` (None: every kind). Progress: kinds done of kinds, by step."""
    from huitouke.app.snapshots import REFRESHERS, refresh_snapshots

    kinds = list(params.get("kinds") or REFRESHERS)
    done_kinds: list[str] = []

    def step(kind: str, k: int, steps: int) -> None:
        i = len(done_kinds)
        # each kind counts as 100 units: progress within a kind by its steps
        progress(i * 100 + (100 * k // max(steps, 1)), 100 * len(kinds), kind)
        if k == steps:
            done_kinds.append(kind)

    reports = refresh_snapshots(store, settings, kinds=kinds, progress=step)
    progress(100 * len(kinds), 100 * len(kinds), "done")
    failed = {r.kind: r.error for r in reports if r.error}
    result = {
        "refreshed": [r.kind for r in reports if not r.error],
        "failed": failed,
        "seconds": round(sum(r.seconds for r in reports), 1),
    }
    if failed:
        from huitouke.app.scheduler.registry import JobFailed

        names = ", ".join(sorted(failed))
        raise JobFailed(
            f"snapshots not refreshed: {names}",
            code="snapshot.refresh_failed",
            message_zh=f"快照未能刷新:{names}",
            result=result,
        )
    return result


register_task_kind("snapshots.refresh", _snapshots_refresh)


def _segment_coupons(
    store: Store, settings: Settings, params: Mapping[str, Any], progress: TaskProgress
) -> dict[str, Any]:
    """``params``: ``kind``, ``name`` (the segment), ``template``, ``batch`` — one coupon to
    every member, idempotent by the batch (:func:`huitouke.app.customer_facts.
    issue_segment_coupons`); then the loyalty summary is refreshed when the store has one."""
    from huitouke.app.customer_facts import SegmentRef, issue_segment_coupons
    from huitouke.app.orders import stored_loyalty
    from huitouke.app.snapshots import refresh_after_ledger_change
    from huitouke.loyalty.service import LoyaltyService

    segment = SegmentRef.parse(str(params["kind"]), str(params["name"]))

    def loyalty(conn: Connection) -> LoyaltyService:
        svc = stored_loyalty(conn, settings.timezone)
        if svc is None:
            raise NotFoundError(
                "no loyalty program is saved",
                code="loyalty.no_program",
                message_zh="尚未保存会员方案",
            )
        return svc

    res = issue_segment_coupons(
        store, loyalty, segment, str(params["template"]), batch=str(params["batch"]),
        progress=lambda done, total: progress(done, total, "coupons"),
    )  # fmt: skip
    refresh_after_ledger_change(store, settings)
    return {
        "members": res.members,
        "issued": res.issued,
        "already": res.already,
        "limit_reached": res.limit_reached,
    }


register_task_kind("segment.coupons", _segment_coupons)


def _journey_run(
    store: Store, settings: Settings, params: Mapping[str, Any], progress: TaskProgress
) -> dict[str, Any]:
    """``params``: ``journey_id``, ``as_of`` (the day, ISO), ``run_by`` — one switched-on
    journey's real run for that day, then the journeys' results snapshot refreshed
    (:func:`huitouke.app.journey_runs.run_journey`). Run again after a crash it writes
    nothing twice: the day is claimed with the rows it wrote."""
    from datetime import date

    from huitouke.app.journey_runs import run_journey

    return run_journey(
        store, settings, str(params["journey_id"]), date.fromisoformat(str(params["as_of"])),
        run_by=str(params.get("run_by") or "console"), progress=progress,
    )  # fmt: skip


register_task_kind("journey.run", _journey_run)


def _journey_preview(
    store: Store, settings: Settings, params: Mapping[str, Any], progress: TaskProgress
) -> dict[str, Any]:
    """``params``: ``journey_id``, ``as_of`` — the dry run of one journey for that day, the
    rows and messages the page shows (:func:`huitouke.app.journey_runs.preview_journey`);
    it writes nothing, so running it again is harmless."""
    from datetime import date

    from huitouke.app.journey_runs import preview_journey

    return preview_journey(
        store, settings, str(params["journey_id"]), date.fromisoformat(str(params["as_of"])),
        progress=progress,
    )  # fmt: skip


register_task_kind("journey.preview", _journey_preview)


def _tasks_job(ctx: Any) -> dict[str, Any]:
    return run_pending(ctx.store, ctx.settings, holder=ctx.holder)


def _prune_job(ctx: Any) -> dict[str, Any]:
    days = ctx.settings.scheduler_history_days
    n = run_write(ctx.store, lambda conn: prune_tasks(conn, ctx.now, days))
    return {"deleted": n, "kept_days": days}


def _register_job() -> None:
    from huitouke.app.scheduler.registry import Job, register_job

    register_job(
        Job(
            "tasks",
            "every 10s",
            _tasks_job,
            {
                "en": "run the console's background tasks left behind by a stopped process",
                "zh": "运行因进程停止而遗留的控制台后台任务",
            },
        )
    )
    register_job(
        Job(
            "tasks.prune",
            "cron 10 4 * * *",
            _prune_job,
            {
                "en": "forget the console's background tasks that ended longer ago than the "
                "run history's days",
                "zh": "清除结束时间早于运行历史保留天数的控制台后台任务",
            },
        )
    )


_register_job()


def refresh_later(store: Store, settings: Settings, kind: str, *, by: str) -> Task | None:
    """After a change from a page (coupons issued in batch): recompute the snapshot
    ``kind`` in the background when the store has one; None when it has none, or when a
    refresh is already queued or running (it reads the ledger after this change, or is
    itself followed by the scheduler's stale check)."""
    from huitouke.store.snapshot_tables import snapshots

    have = run_read(
        store,
        lambda conn: conn.execute(
            select(snapshots.c.kind).where(snapshots.c.kind == kind).limit(1)
        ).first(),
    )
    if have is None:
        return None
    try:
        task = submit(store, "snapshots.refresh", {"kinds": [kind]}, key="snapshots.refresh", by=by)
    except ConflictError as exc:
        if exc.code == "task.running":
            return None
        raise
    start(store, settings, task.task_id)
    return task
