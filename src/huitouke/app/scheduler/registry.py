"""The job registry: each job's name, default schedule, description and function.

The built-in jobs are in :mod:`huitouke.app.scheduler.jobs`. Other parts of the product add
theirs with :func:`register_job` — or, for the two that are built elsewhere, the named hooks
:func:`register_snapshot_refresh` and :func:`register_connector_pulls` — from a module
listed in :data:`JOB_MODULES`, which the registry imports before it is read.

``HUITOUKE_SCHEDULER_SCHEDULES`` changes a job's schedule or switches it off
(``outbox=every 5s; loyalty.expiry=cron 0 4 * * *; journeys=off``); an entry naming no
job, or a schedule that does not parse, is refused with the entry named.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from huitouke.app.scheduler.schedule import Schedule, parse_schedule
from huitouke.errors import HuitoukeError, InputError, NotFoundError
from huitouke.settings import Settings
from huitouke.store.db import Store

__all__ = [
    "JOB_MODULES",
    "Job",
    "JobContext",
    "JobFailed",
    "JobSkipped",
    "Registry",
    "register_connector_pulls",
    "register_job",
    "register_snapshot_refresh",
]

#: Modules imported before the registry is read, so that their ``register_*`` calls run.
#: The built-ins come first; the integration adds the snapshot and connector modules here.
JOB_MODULES: tuple[str, ...] = (
    "huitouke.app.scheduler.jobs",
    "huitouke.app.scheduler.integration_jobs",
    "huitouke.app.tasks",
)


@dataclass(frozen=True)
class JobContext:
    """What a job function is given: the store, the settings, the instant it runs at (the
    scheduler's clock), the slot it was scheduled for (None when run by hand) and who runs
    it (``host:pid:…``, for records such as a journey's run day)."""

    store: Store
    settings: Settings
    now: datetime
    slot: datetime | None
    trigger: str
    holder: str
    #: the run's row in the history (its progress may be written there while it runs)
    run_id: int | None = None

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.settings.timezone)

    @property
    def today(self) -> date:
        """The day in the merchant's zone."""
        return self.now.astimezone(self.zone).date()


class JobSkipped(HuitoukeError):
    """A run that had nothing it could do (no channel configured, no loyalty program): the
    history records it as ``skipped`` with this code and message."""


class JobFailed(HuitoukeError):
    """A run that did part of its work and failed at another part: recorded as ``failed``
    with this code and message, and with ``result`` — what it did."""

    def __init__(self, message: str, *, result: Any = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.result = result


JobFn = Callable[[JobContext], Mapping[str, Any] | None]


@dataclass(frozen=True)
class Job:
    name: str
    schedule: str
    fn: JobFn
    #: what the job does, in en and zh
    title: Mapping[str, str] = field(default_factory=dict)

    def describe(self, lang: str) -> str:
        return self.title.get(lang) or self.title.get("en", self.name)


_JOBS: dict[str, Job] = {}


def register_job(job: Job) -> Job:
    """Add (or replace, by name) a job of the registry."""
    _JOBS[job.name] = job
    return job


def register_snapshot_refresh(fn: JobFn, schedule: str = "every 15m") -> Job:
    """The hook for ``huitouke.app.snapshots``: ``fn(ctx)`` refreshes the snapshots (and
    returns a small summary); it runs as the job ``snapshots``."""
    return register_job(
        Job(
            "snapshots",
            schedule,
            fn,
            {"en": "refresh the analytics snapshots", "zh": "刷新分析快照"},
        )
    )


def register_connector_pulls(fn: JobFn, schedule: str = "every 5m") -> Job:
    """The hook for the shop connectors: ``fn(ctx)`` pulls every active connector once (its
    ``sync``) and returns a small summary; it runs as the job ``connectors``."""
    return register_job(
        Job(
            "connectors",
            schedule,
            fn,
            {
                "en": "pull new and changed orders from the shop connectors",
                "zh": "从店铺连接器拉取新订单和变更",
            },
        )
    )


def _overrides(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in text.split(";"):
        part = part.strip()
        if not part:
            continue
        name, sep, spec = part.partition("=")
        if not sep or not name.strip() or not spec.strip():
            raise InputError(
                f"HUITOUKE_SCHEDULER_SCHEDULES: {part!r} is not JOB=SCHEDULE",
                code="scheduler.bad_schedule",
                message_zh=f"HUITOUKE_SCHEDULER_SCHEDULES:{part!r} 不是 任务=计划 的形式",
                details={"field": "scheduler_schedules", "entry": part},
            )
        out[name.strip()] = spec.strip()
    return out


@dataclass(frozen=True)
class Registry:
    """The jobs with their effective schedules (settings applied)."""

    jobs: Mapping[str, Job]
    schedules: Mapping[str, Schedule]

    @classmethod
    def load(cls, settings: Settings) -> Registry:
        for name in JOB_MODULES:
            importlib.import_module(name)
        jobs = dict(sorted(_JOBS.items()))
        over = _overrides(settings.scheduler_schedules)
        for name in over:
            if name not in jobs:
                raise InputError(
                    f"HUITOUKE_SCHEDULER_SCHEDULES: no job named {name!r} "
                    f"(jobs: {', '.join(jobs)})",
                    code="scheduler.bad_schedule",
                    message_zh=f"HUITOUKE_SCHEDULER_SCHEDULES:没有名为 {name!r} 的任务"
                    f"(任务:{', '.join(jobs)})",
                    details={"field": "scheduler_schedules", "job": name},
                )
        schedules = {
            name: parse_schedule(
                over.get(name, job.schedule),
                settings.timezone,
                where=f"HUITOUKE_SCHEDULER_SCHEDULES {name}" if name in over else name,
            )
            for name, job in jobs.items()
        }
        return cls(jobs=jobs, schedules=schedules)

    def get(self, name: str) -> Job:
        job = self.jobs.get(name)
        if job is None:
            raise NotFoundError(
                f"no scheduler job named {name!r} (jobs: {', '.join(self.jobs)})",
                code="scheduler.unknown_job",
                message_zh=f"没有名为 {name!r} 的定时任务(任务:{', '.join(self.jobs)})",
                details={"job": name},
            )
        return job

    def active(self) -> list[tuple[Job, Schedule]]:
        """The jobs that are not switched off."""
        return [
            (j, self.schedules[n]) for n, j in self.jobs.items() if self.schedules[n].kind != "off"
        ]
