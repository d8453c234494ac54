"""What the doors show: the jobs with their schedules and next run in the merchant's zone,
and the run history. The CLI (`huitouke scheduler jobs|history`) and the REST API
(`GET /v1/scheduler/jobs|runs`) present the same data."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from huitouke.app.scheduler.history import last_runs, list_runs
from huitouke.app.scheduler.registry import Registry
from huitouke.settings import Settings
from huitouke.store.db import Store

__all__ = ["job_views", "run_views"]


def job_views(
    store: Store, settings: Settings, now: datetime, lang: str, registry: Registry | None = None
) -> list[dict[str, Any]]:
    """Every job: name, what it does, schedule, next run (merchant's zone), last run."""
    reg = registry or Registry.load(settings)
    last = last_runs(store, lang)
    out = []
    for name, job in reg.jobs.items():
        sched = reg.schedules[name]
        nxt = sched.next_after(now)
        out.append(
            {
                "name": name,
                "description": job.describe(lang),
                "schedule": sched.spec,
                "enabled": sched.kind != "off",
                "timezone": settings.timezone,
                "next_run": nxt.astimezone(settings.zone).isoformat() if nxt else None,
                "last_run": last.get(name),
            }
        )
    return out


def run_views(
    store: Store,
    settings: Settings,
    *,
    job: str | None = None,
    failed: bool = False,
    limit: int = 50,
    lang: str = "en",
    registry: Registry | None = None,
) -> list[dict[str, Any]]:
    """The latest runs, newest first; ``job`` must name a job of the registry."""
    if job is not None:
        (registry or Registry.load(settings)).get(job)
    return list_runs(store, job=job, failed=failed, limit=limit, lang=lang)
