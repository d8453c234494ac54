"""The run history: one row per run, written when it starts and when it ends."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, delete, func, select, update
from sqlalchemy.exc import IntegrityError

from huitouke.app.scheduler.tables import scheduler_runs as runs
from huitouke.errors import HuitoukeError
from huitouke.store.db import Store
from huitouke.store.uow import run_read, run_write

__all__ = [
    "close_abandoned",
    "finish_run",
    "last_runs",
    "last_slots",
    "list_runs",
    "prune_runs",
    "slot_taken",
    "start_run",
]

#: an error text is kept to this many characters
ERROR_CHARS = 2000


def last_slots(conn: Connection) -> dict[str, datetime]:
    """Each job's latest scheduled slot (run or being run)."""
    q = (
        select(runs.c.job, func.max(runs.c.slot))
        .where(runs.c.slot.is_not(None))
        .group_by(runs.c.job)
    )
    out: dict[str, datetime] = {}
    for job, slot in conn.execute(q):
        if slot is not None:
            out[job] = slot
    return out


def close_abandoned(conn: Connection, job: str, now: datetime) -> int:
    """Runs of ``job`` still marked running while this process holds the job's lock: their
    process died mid-run (the lock died with it). They are recorded as failed."""
    why = HuitoukeError(
        "the process running it stopped before the run finished",
        code="scheduler.interrupted",
        message_zh="运行它的进程在运行结束前停止了",
    )
    res = conn.execute(
        update(runs)
        .where(runs.c.job == job, runs.c.status == "running")
        .values(
            status="failed",
            finished_at=now,
            error_code=why.code,
            error=why.message,
            error_zh=why.message_zh,
        )
    )
    return int(res.rowcount or 0)


def slot_taken(conn: Connection, job: str, slot: datetime) -> bool:
    q = select(runs.c.run_id).where(runs.c.job == job, runs.c.slot == slot)
    return conn.execute(q).first() is not None


def start_run(
    store: Store,
    *,
    job: str,
    slot: datetime | None,
    trigger: str,
    now: datetime,
    host: str,
    pid: int,
) -> int | None:
    """Record a run as started; None when its slot was run already (by any process)."""

    def unit(conn: Connection) -> int | None:
        if slot is not None and slot_taken(conn, job, slot):
            return None
        close_abandoned(conn, job, now)
        res = conn.execute(
            runs.insert()
            .values(
                job=job,
                slot=slot,
                trigger=trigger,
                status="running",
                started_at=now,
                host=host[:255],
                pid=pid,
            )
            .returning(runs.c.run_id)
        )
        return int(res.scalar_one())

    try:
        return run_write(store, unit)
    except IntegrityError:  # pragma: no cover - the check above runs under the job's lock
        return None


def finish_run(
    store: Store,
    run_id: int,
    *,
    status: str,
    started: datetime,
    now: datetime,
    elapsed_s: float,
    error_code: str | None = None,
    error: str | None = None,
    error_zh: str | None = None,
    result: Any = None,
) -> None:
    if result is not None:
        result = json.loads(json.dumps(result, default=str))

    def unit(conn: Connection) -> None:
        nonlocal result
        if status == "skipped":
            result = _fold_skips(conn, run_id, error_code, started)
        conn.execute(
            update(runs)
            .where(runs.c.run_id == run_id)
            .values(
                status=status,
                finished_at=now,
                duration_ms=round(elapsed_s * 1000, 3),
                error_code=error_code,
                error=(error or None) and error[:ERROR_CHARS],
                error_zh=(error_zh or error or None) and (error_zh or error or "")[:ERROR_CHARS],
                result=result,
            )
        )

    run_write(store, unit)


def _fold_skips(
    conn: Connection, run_id: int, code: str | None, started: datetime
) -> dict[str, Any]:
    """A skip for the same reason as the job's run before it replaces that row: an outbox
    with no channel configured leaves one row with a count, not one every 15 seconds."""
    this = conn.execute(select(runs.c.job, runs.c.slot).where(runs.c.run_id == run_id)).one()
    prev = conn.execute(
        select(
            runs.c.run_id,
            runs.c.slot,
            runs.c.status,
            runs.c.error_code,
            runs.c.result,
            runs.c.started_at,
        )
        .where(runs.c.job == this.job, runs.c.run_id < run_id)
        .order_by(runs.c.run_id.desc())
        .limit(1)
    ).first()
    if (
        prev is None
        or prev.status != "skipped"
        or prev.error_code != code
        # scheduled runs fold into scheduled ones only: a job's latest slot is never lost
        or (prev.slot is None) != (this.slot is None)
    ):
        return {"skipped_in_a_row": 1, "since": started.isoformat()}
    before = prev.result or {}
    conn.execute(delete(runs).where(runs.c.run_id == prev.run_id))
    return {
        "skipped_in_a_row": int(before.get("skipped_in_a_row", 1)) + 1,
        "since": before.get("since", prev.started_at.isoformat()),
    }


def _row(r: Any, lang: str = "en") -> dict[str, Any]:
    d = dict(r)
    zh = d.pop("error_zh", None)
    if lang == "zh" and zh:
        d["error"] = zh
    for k in ("slot", "started_at", "finished_at"):
        if d.get(k) is not None:
            d[k] = d[k].isoformat()
    return d


def list_runs(
    store: Store,
    *,
    job: str | None = None,
    failed: bool = False,
    limit: int = 50,
    lang: str = "en",
) -> list[dict[str, Any]]:
    """The latest runs, newest first (of one job; only failures); errors in ``lang``."""

    def unit(conn: Connection) -> list[dict[str, Any]]:
        q = select(runs).order_by(runs.c.started_at.desc(), runs.c.run_id.desc()).limit(limit)
        if job is not None:
            q = q.where(runs.c.job == job)
        if failed:
            q = q.where(runs.c.status == "failed")
        return [_row(r, lang) for r in conn.execute(q).mappings()]

    return run_read(store, unit)


def last_runs(store: Store, lang: str = "en") -> dict[str, dict[str, Any]]:
    """Each job's latest run (by start)."""

    def unit(conn: Connection) -> dict[str, dict[str, Any]]:
        latest = (
            select(runs.c.job, func.max(runs.c.run_id).label("run_id"))
            .group_by(runs.c.job)
            .subquery()
        )
        q = select(runs).join(latest, latest.c.run_id == runs.c.run_id)
        return {r["job"]: _row(r, lang) for r in conn.execute(q).mappings()}

    return run_read(store, unit)


def prune_runs(conn: Connection, now: datetime, keep_days: int) -> int:
    """Forget runs that started more than ``keep_days`` ago — but never a job's latest
    scheduled slot, which is what tells a restarted scheduler what it missed."""
    keep_slots = (
        select(func.max(runs.c.run_id)).where(runs.c.slot.is_not(None)).group_by(runs.c.job)
    )
    res = conn.execute(
        delete(runs).where(
            runs.c.started_at < now - timedelta(days=keep_days),
            runs.c.status != "running",
            runs.c.run_id.not_in(keep_slots),
        )
    )
    return int(res.rowcount or 0)
