"""The scheduler's jobs and run history (read scope): what `huitouke scheduler jobs|history`
show, from the same views (:mod:`huitouke.app.scheduler.views`)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from huitouke.app.scheduler.views import job_views, run_views
from huitouke.service.apikeys import ApiKey
from huitouke.service.context import ServiceContext
from huitouke.service.deps import get_ctx, get_lang, require
from huitouke.service.error_handlers import ERROR_RESPONSES, ErrorResponse

__all__ = ["router"]

router = APIRouter(prefix="/v1/scheduler", tags=["scheduler"], responses=ERROR_RESPONSES)


class RunOut(BaseModel):
    run_id: int
    job: str
    slot: str | None = Field(description="The instant the run was scheduled for; null by hand.")
    trigger: str = Field(description="schedule, catch_up or manual")
    status: str = Field(description="running, succeeded, skipped or failed")
    started_at: str
    finished_at: str | None
    duration_ms: float | None
    error_code: str | None
    error: str | None = Field(description="In the request's language.")
    result: Any = Field(None, description="What the run did (a small summary).")
    host: str
    pid: int


class JobOut(BaseModel):
    name: str
    description: str
    schedule: str = Field(description="every N{s,m,h,d}, cron M H DOM MON DOW, or off")
    enabled: bool
    timezone: str = Field(description="The merchant's zone: cron times and next_run are in it.")
    next_run: str | None
    last_run: RunOut | None


@router.get("/jobs", response_model=list[JobOut])
def get_jobs(
    ctx: ServiceContext = Depends(get_ctx),
    lang: str = Depends(get_lang),
    _: ApiKey = Depends(require("read")),
) -> list[dict[str, Any]]:
    """The scheduler's jobs: schedule, next run in the merchant's zone, last run.
    定时任务:计划、下次运行(商家时区)、上次运行。"""
    return job_views(ctx.store, ctx.settings, ctx.clock(), lang)


@router.get(
    "/runs",
    response_model=list[RunOut],
    responses={404: {"model": ErrorResponse, "description": "scheduler.unknown_job"}},
)
def get_runs(
    job: str | None = Query(None, max_length=64, description="Only this job."),
    failed: bool = Query(False, description="Only failed runs."),
    limit: int = Query(50, ge=1, le=1000),
    ctx: ServiceContext = Depends(get_ctx),
    lang: str = Depends(get_lang),
    _: ApiKey = Depends(require("read")),
) -> list[dict[str, Any]]:
    """The latest runs, newest first: slot, trigger, status, duration, error.
    运行记录(最新在前):计划时刻、触发方式、状态、耗时、错误。"""
    return run_views(ctx.store, ctx.settings, job=job, failed=failed, limit=limit, lang=lang)
