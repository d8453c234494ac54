"""What the doors show: the jobs with their schedules and next run in the merchant's zone,
and the run history. The CLI (`huitouke scheduler jobs|history`) and the REST API
(`GET /v1/scheduler/jobs|runs`) present the same data."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from huitouke.app.scheduler.history import last_runs, list_runs
from huitouke.app.scheduler.registry import Registry
from huitouke.settings import Settings
from huitouke.store.db import Store

__all__ = ["job_views", "journey_next_runs", "run_views"]


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


def journey_next_runs(
    store: Store, settings: Settings, now: datetime, registry: Registry | None = None
) -> dict[str, datetime | None]:
    """When the scheduler's ``journeys`` job will next run each switched-on journey: the
    job's first slot at or after the journey's send time (``trigger.at``, merchant's zone)
    today — or, when the journey was run for today already, tomorrow. ``None`` for every
    journey when the job is switched off."""
    from datetime import datetime as dt
    from zoneinfo import ZoneInfo

    from huitouke.journeys.days import days_run
    from huitouke.journeys.repo import enabled_journeys
    from huitouke.store.uow import run_read

    reg = registry or Registry.load(settings)
    sched = reg.schedules.get("journeys")
    zone = ZoneInfo(settings.timezone)
    today = now.astimezone(zone).date()

    def read(conn: Any) -> tuple[list[Any], set[str]]:
        return enabled_journeys(conn), days_run(conn, today)

    journeys, done = run_read(store, read)
    out: dict[str, datetime | None] = {}
    for j in journeys:
        if sched is None or sched.kind == "off":
            out[j.id] = None
            continue
        day = today + timedelta(days=1) if j.id in done else today
        due = dt.combine(day, j.trigger.at, tzinfo=zone)
        start = max(now, due)
        out[j.id] = sched.next_after(start - timedelta(microseconds=1))
    return out
