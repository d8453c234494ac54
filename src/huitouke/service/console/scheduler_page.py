"""The console's scheduler page (docs/scheduler.md). 控制台定时任务页。

Routes (HTML, none in the OpenAPI schema):

- ``GET /scheduler`` (read): every job with its schedule, next run (merchant's zone), last
  run, duration and error — :func:`huitouke.app.scheduler.views.job_views`, what
  ``huitouke scheduler jobs`` and ``GET /v1/scheduler/jobs`` show — and the run history,
  filtered by job, status and failures (``?job=&failed=1&limit=``);
- ``GET /scheduler/history`` (read): the history table alone (htmx refreshes it while a run
  is running);
- ``GET /settings/operations`` (read): the settings page's panel — the connectors' status,
  failed deliveries and last errors, the jobs whose last run failed and the latest failed
  runs, linking to the connectors and scheduler pages (htmx);
- ``POST /scheduler/{job}/run`` (operator): run the job now, by hand, in the background
  (:func:`huitouke.app.scheduler.background.start_job`, the run ``huitouke scheduler run``
  makes, under the job's lock) — the page answers at once and the history shows it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from huitouke.app.scheduler.background import start_job
from huitouke.app.scheduler.registry import Registry
from huitouke.app.scheduler.views import job_views, run_views
from huitouke.errors import HuitoukeError
from huitouke.service.console.kit import (
    N_,
    lang_of,
    local_time,
    page_context,
    render,
    request_ctx,
    secure_headers,
)
from huitouke.service.sessions import Session

router = APIRouter(include_in_schema=False)

STATUSES = (N_("running"), N_("succeeded"), N_("skipped"), N_("failed"))
LIMITS = (20, 50, 200)


def _when(request: Request, value: Any) -> str:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return value
    return local_time(request_ctx(request), value)


def _history(
    request: Request, lang: str, job: str, failed: bool, limit: int
) -> tuple[list[dict[str, Any]], str]:
    ctx = request_ctx(request)
    try:
        runs = run_views(
            ctx.store, ctx.settings, job=job or None, failed=failed,
            limit=limit if limit in LIMITS else LIMITS[0], lang=lang,
        )  # fmt: skip
    except HuitoukeError as exc:
        return [], exc.localized(lang)
    return runs, ""


def _running(runs: list[dict[str, Any]], jobs: list[dict[str, Any]]) -> bool:
    """Whether a run shown is still running (the page then follows it)."""
    return any(r["status"] == "running" for r in runs) or any(
        j["last_run"] and j["last_run"]["status"] == "running" for j in jobs
    )


def _page(
    request: Request,
    session: Session,
    *,
    job: str = "",
    failed: bool = False,
    limit: int = 20,
    status: int = 200,
    error: str = "",
    started: int | None = None,
) -> Response:
    ctx = request_ctx(request)
    lang = lang_of(request, session)
    # the history first: the jobs' last runs, read after it, are never older than it
    runs, bad_filter = _history(request, lang, job, failed, limit)
    try:
        jobs = job_views(ctx.store, ctx.settings, ctx.clock(), lang)
    except HuitoukeError as exc:
        jobs, error = [], exc.localized(lang)
    return render(
        request, "scheduler.html", lang, session=session, status=status, jobs=jobs, runs=runs,
        job=job, failed=failed, limit=limit, limits=LIMITS, error=error or bad_filter,
        started=started, operator=session.user.role in ("operator", "admin"), oob=False,
        running=_running(runs, jobs),
        when=lambda v: _when(request, v), timezone=ctx.settings.timezone,
    )  # fmt: skip


@router.get("/scheduler")
def scheduler_page(
    request: Request, job: str = "", failed: bool = False, limit: int = 20, started: int = 0
) -> Response:
    """The scheduler's jobs and run history. 定时任务与运行记录。"""
    page = page_context(request)
    if isinstance(page, Response):
        return page
    return _page(
        request, page.session, job=job, failed=failed, limit=limit, started=started or None
    )


@router.get("/scheduler/history")
def scheduler_history(
    request: Request, job: str = "", failed: bool = False, limit: int = 20
) -> Response:
    """The run history alone (htmx). 运行记录。"""
    page = page_context(request)
    if isinstance(page, Response):
        return page
    runs, error = _history(request, page.lang, job, failed, limit)
    try:  # the jobs' last runs follow, swapped in beside the history (out of band)
        jobs = job_views(page.ctx.store, page.ctx.settings, page.ctx.clock(), page.lang)
    except HuitoukeError:
        jobs = []
    return page.render(
        "_scheduler_runs.html", runs=runs, job=job,
        failed=failed, limit=limit, error=error, jobs=jobs, oob=bool(jobs),
        operator=page.session.user.role in ("operator", "admin"),
        running=_running(runs, jobs),
        when=lambda v: _when(request, v),
    )  # fmt: skip


@router.post("/scheduler/{job}/run")
def scheduler_run(request: Request, job: str, csrf_token: str = Form("")) -> Response:
    """Run a job now, in the background (operators). 立即运行任务(后台)。"""
    page = page_context(request, role="operator", csrf=csrf_token, check_csrf=True)
    if isinstance(page, Response):
        return page
    try:
        run_id = start_job(
            page.ctx.store, page.ctx.settings, job, registry=Registry.load(page.ctx.settings)
        )
    except HuitoukeError as exc:
        code = exc.http_status if exc.http_status < 500 else 422
        return _page(request, page.session, status=code, error=exc.localized(page.lang))
    return secure_headers(RedirectResponse(f"/scheduler?job={job}&started={run_id}", 303))


@router.get("/settings/operations")
def settings_operations(request: Request) -> Response:
    """The settings page's panel: connectors and scheduler at a glance (htmx). 运维概况。"""
    from huitouke.app.connector_views import connector_overview

    page = page_context(request)
    if isinstance(page, Response):
        return page
    error = ""
    try:
        jobs = job_views(page.ctx.store, page.ctx.settings, page.ctx.clock(), page.lang)
    except HuitoukeError as exc:
        jobs, error = [], exc.localized(page.lang)
    failing = [j for j in jobs if j["last_run"] and j["last_run"]["status"] == "failed"]
    failures, _ = _history(request, page.lang, "", True, LIMITS[0])
    return page.render(
        "_settings_operations.html",
        connectors=connector_overview(page.ctx.store, page.lang), failing=failing,
        failures=failures[:5], error=error, when=lambda v: _when(request, v),
    )  # fmt: skip
