"""What the console shows of the shop connectors, and a sync that does not keep the page
waiting. The registry, the sync itself, the inbox and the retry are the use cases of
:mod:`huitouke.app.connectors` (the CLI's and the REST API's); this module adds the reads a
page needs in one call — the inbox counted by state, the last sync and its result, the
recent syncs from the scheduler's run history — and :func:`start_sync`, which hands one
connector's sync to a background run of the scheduler's ``connectors`` job.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import Connection, func, select

from huitouke.app.connectors import list_connectors, show_connector, sync
from huitouke.app.scheduler.background import record_progress, runs_of, start_job
from huitouke.app.scheduler.registry import JobContext, JobFailed
from huitouke.connectors import repo
from huitouke.connectors.tables import connector_inbox
from huitouke.errors import HuitoukeError
from huitouke.settings import Settings
from huitouke.store.db import Store
from huitouke.store.uow import run_read

__all__ = [
    "INBOX_STATES",
    "connector_overview",
    "connector_syncs",
    "inbox_counts",
    "inbox_problems",
    "start_sync",
    "sync_run",
]

#: the inbox's states, in the order the pages show them
INBOX_STATES = ("pending", "failed", "applied", "ignored")
#: the scheduler job whose runs are the connectors' syncs
JOB = "connectors"


def inbox_counts(store: Store) -> dict[str, dict[str, int]]:
    """Per connector, its inbox rows by state (one grouped query)."""

    def read(conn: Connection) -> dict[str, dict[str, int]]:
        c = connector_inbox.c
        out: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(INBOX_STATES, 0))
        q = select(c.connector, c.status, func.count()).group_by(c.connector, c.status)
        for name, status, n in conn.execute(q):
            out[name][status] = int(n)
        return dict(out)

    return run_read(store, read)


def inbox_problems(store: Store, name: str, *, limit: int = 100) -> list[dict[str, Any]]:
    """The connector's failed and pending deliveries (oldest update first), each with its
    reason — what the retry applies again."""
    show_connector(store, name)
    rows = run_read(
        store,
        lambda conn: repo.inbox_rows(conn, name, statuses=("failed", "pending"), limit=limit),
    )
    keep = ("inbox_id", "object_id", "updated_at", "topic", "status", "reason", "attempts")
    return [{k: r[k] for k in keep} for r in rows]


def _mentions(name: str) -> Any:
    def keep(run: dict[str, Any]) -> bool:
        result = run.get("result") or {}
        if not isinstance(result, dict):
            return False
        return name in (result.get("synced") or {}) or name in (result.get("failed") or {})

    return keep


def _summary(run: dict[str, Any], name: str) -> dict[str, Any]:
    """One run as the history of one connector: its status and this connector's part."""
    result = run.get("result") or {}
    synced = (result.get("synced") or {}).get(name)
    failed = (result.get("failed") or {}).get(name)
    status = run["status"]
    if status != "running":
        status = "failed" if failed is not None else "succeeded"
    return {
        "run_id": run["run_id"],
        "trigger": run["trigger"],
        "status": status,
        "started_at": run["started_at"],
        "finished_at": run["finished_at"],
        "duration_ms": run["duration_ms"],
        "pulled": (synced or {}).get("pulled"),
        "pages": (synced or {}).get("pages"),
        "failed_orders": (synced or {}).get("failed"),
        "inbox_applied": (synced or {}).get("inbox_applied"),
        "watermark": (synced or {}).get("watermark"),
        "error_code": failed if isinstance(failed, str) else None,
        "error": run.get("error") if failed is not None else None,
    }


def connector_syncs(
    store: Store, name: str, *, limit: int = 20, lang: str = "en"
) -> list[dict[str, Any]]:
    """The connector's latest syncs (scheduled and by hand), newest first, from the run
    history of the ``connectors`` job."""
    return [_summary(r, name) for r in runs_of(store, JOB, _mentions(name), limit=limit, lang=lang)]


def connector_overview(store: Store, lang: str = "en") -> list[dict[str, Any]]:
    """Every connector as the list shows it: kind, status, cursor, last sync and its
    result, the inbox by state. Credentials only as ``"set"``."""
    counts = inbox_counts(store)
    rows = list_connectors(store)
    recent = runs_of(store, JOB, lambda r: True, limit=200, scan=200, lang=lang)
    out = []
    for row in rows:
        keep = _mentions(row["name"])
        last = next((_summary(r, row["name"]) for r in recent if keep(r)), None)
        out.append(
            {
                **row,
                "inbox": counts.get(row["name"], dict.fromkeys(INBOX_STATES, 0)),
                "last_sync": last,
            }
        )
    return out


def _sync_one(name: str) -> Any:
    def fn(ctx: JobContext) -> dict[str, Any]:
        def progress(result: Any) -> None:
            record_progress(ctx.store, ctx.run_id, {"synced": {name: result.as_dict()}})

        try:
            done = sync(ctx.store, ctx.settings, name, progress=progress)
        except HuitoukeError as exc:
            raise JobFailed(
                f"connector {name} not synced: {exc.code}: {exc.message}",
                code="connector.sync_failed",
                message_zh=f"连接器 {name} 未能同步:{exc.code}:{exc.message_zh or exc.message}",
                result={"synced": {}, "failed": {name: exc.code}},
            ) from exc
        return {"synced": {name: done.as_dict()}, "failed": {}}

    return fn


def start_sync(store: Store, settings: Settings, name: str) -> int:
    """Start a sync of ``name`` in the background (a run by hand of the ``connectors`` job,
    under its lock) and return the run's id at once. ``connector.not_found`` and
    ``connector.paused`` are raised here, before anything runs; while the job runs elsewhere
    ``scheduler.job_running``."""
    row = show_connector(store, name)
    if row["status"] != "active":
        from huitouke.app.connectors import _paused

        raise _paused(name)
    return start_job(store, settings, JOB, fn=_sync_one(name))


def sync_run(store: Store, name: str, run_id: int, lang: str = "en") -> dict[str, Any] | None:
    """One sync of the connector by its run id (for the page's progress line)."""
    for r in runs_of(store, JOB, lambda r: r["run_id"] == run_id, limit=1, lang=lang):
        return _summary(r, name)
    return None
