"""A run by hand that does not keep its caller waiting: the console's "run now" and "sync
now" hand the job to a thread of the serving process and answer at once with the run's id.

The run is the one :func:`~huitouke.app.scheduler.runner.run_job_now` makes — under the
job's lock, recorded in the run history with trigger ``manual`` — so the history shows it
like any other, and a page reads its status (``running`` …) and its progress from there.
A run of the same job in another process (or thread) refuses it with
``scheduler.job_running`` before anything is recorded.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from sqlalchemy import Connection, update

from huitouke.app.scheduler.history import list_runs
from huitouke.app.scheduler.registry import JobContext, JobFn, Registry
from huitouke.app.scheduler.runner import Clock, run_job_now
from huitouke.app.scheduler.tables import scheduler_runs as runs
from huitouke.errors import HuitoukeError, StoreError
from huitouke.settings import Settings
from huitouke.store.db import Store
from huitouke.store.uow import run_write

__all__ = ["record_progress", "runs_of", "start_job"]

log = logging.getLogger("huitouke.scheduler")

#: how long the caller waits for the run to be recorded (not for the run)
_START_WAIT_S = 30.0


def start_job(
    store: Store,
    settings: Settings,
    name: str,
    *,
    fn: JobFn | None = None,
    registry: Registry | None = None,
    clock: Clock | None = None,
) -> int:
    """Start job ``name`` by hand in a background thread and return its run id once the run
    is recorded (``running``). ``fn`` replaces the job's own function for this run (a sync
    of one connector is a run of the ``connectors`` job). Raises what the start raises:
    ``scheduler.unknown_job``, ``scheduler.job_running``."""
    reg = registry or Registry.load(settings)
    job = reg.get(name)
    started = threading.Event()
    box: dict[str, Any] = {}
    inner = fn or job.fn

    def marked(ctx: JobContext) -> Any:
        box["run_id"] = ctx.run_id
        started.set()
        return inner(ctx)

    one = Registry(jobs={name: replace(job, fn=marked)}, schedules=reg.schedules)

    def work() -> None:
        try:
            run_job_now(store, settings, one, name, clock=clock)
        except HuitoukeError as exc:
            box["error"] = exc
        except Exception as exc:  # the run recorded its own failure; this is the rest
            log.exception("background run of %s failed", name)
            box["error"] = exc
        finally:
            started.set()

    threading.Thread(target=work, name=f"run-now:{name}", daemon=True).start()
    if not started.wait(_START_WAIT_S):
        raise StoreError(
            f"the run of {name!r} did not start within {_START_WAIT_S:.0f} s",
            code="scheduler.job_error",
            message_zh=f"任务 {name!r} 未在 {_START_WAIT_S:.0f} 秒内开始",
        )
    if "run_id" in box and box["run_id"] is not None:
        return int(box["run_id"])
    error = box.get("error")
    if isinstance(error, HuitoukeError):
        raise error
    raise StoreError(
        f"the run of {name!r} could not start: {error}",
        code="scheduler.job_error",
        message_zh=f"任务 {name!r} 未能开始:{error}",
    )


def record_progress(store: Store, run_id: int | None, result: Any) -> None:
    """Write a running run's progress (a small JSON summary) to its history row; the run's
    end overwrites it with what the run did."""
    if run_id is None:
        return
    value = json.loads(json.dumps(result, default=str))

    def unit(conn: Connection) -> None:
        conn.execute(
            update(runs)
            .where(runs.c.run_id == run_id, runs.c.status == "running")
            .values(result=value)
        )

    run_write(store, unit)


def runs_of(
    store: Store,
    job: str,
    keep: Callable[[dict[str, Any]], bool],
    *,
    limit: int = 20,
    scan: int = 500,
    lang: str = "en",
) -> list[dict[str, Any]]:
    """The latest runs of ``job`` (newest first, among its last ``scan``) that ``keep``
    accepts."""
    return [r for r in list_runs(store, job=job, limit=scan, lang=lang) if keep(r)][:limit]
