"""The console's background tasks (:mod:`huitouke.app.tasks`): the progress of work started
from a page — recomputing snapshots, issuing coupons to a segment, running a journey — which
the page polls.

Routes (HTML, not in the OpenAPI schema; operators and admins, who start them):

- ``GET /tasks/{task_id}``: the task's page (``?next=`` where to return when it succeeded);
- ``GET /tasks/{task_id}/status``: its status fragment, which polls itself with htmx every
  second while the task is queued or running; when it succeeded and ``next`` is set, the
  answer's ``HX-Redirect`` returns the browser there.
后台任务的进度页。"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from huitouke.errors import HuitoukeError
from huitouke.i18n import fmt_number, fmt_pct, t
from huitouke.service.console.kit import (
    N_,
    error_page,
    is_htmx,
    lang_of,
    local_time,
    page_context,
    render,
    request_ctx,
    safe_next,
)
from huitouke.service.sessions import Session

__all__ = ["preview_values", "router", "start_task", "task_values"]

router = APIRouter(include_in_schema=False)

#: texts chosen by value: task kinds and states
CHOSEN = (
    N_("snapshots.refresh"), N_("segment.coupons"), N_("journey.run"), N_("journey.preview"),
    N_("queued"), N_("running"), N_("succeeded"), N_("failed"),
)  # fmt: skip


def task_values(request: Request, task: Any, lang: str, next_path: str = "") -> dict[str, Any]:
    """What the status fragment shows of ``task`` (a :class:`huitouke.app.tasks.Task`)."""
    ctx = request_ctx(request)
    failed_kinds = []
    if task.kind == "snapshots.refresh" and isinstance(task.result, dict):
        failed_kinds = [
            t("app.snapshots.refresh_failed", lang, kind=k, code=c)
            for k, c in (task.result.get("failed") or {}).items()
        ]
    share = task.share
    preview: dict[str, Any] = {}
    if task.kind == "journey.preview" and task.status == "succeeded":
        preview = preview_values(task.result, lang)
    return {
        **preview,
        "task": task,
        "share_shown": "" if share is None else fmt_pct(share, lang, 0),
        "done_shown": fmt_number(task.done, lang, 0),
        "total_shown": fmt_number(task.total, lang, 0),
        "created": local_time(ctx, task.created_at),
        "finished_shown": local_time(ctx, task.finished_at),
        "error_shown": (task.error_zh if lang == "zh" else task.error) or task.error_code,
        "failed_kinds": failed_kinds,
        "next": safe_next(next_path) if next_path else "",
    }


def preview_values(result: dict[str, Any], lang: str) -> dict[str, Any]:
    """What ``_journey_preview.html`` shows of a finished preview task's result."""
    from huitouke.app.journey_runs import PREVIEW_ROWS
    from huitouke.journeys.engine import reason_text

    def said(entry: dict[str, Any]) -> str:
        return str((entry.get("message_zh") if lang == "zh" else None) or entry.get("message"))

    return {
        "journey_id": result["journey_id"],
        "as_of": result["as_of"],
        "summary": result["summary"],
        "items": [{**r, "reason": reason_text(r["reason_code"], lang)} for r in result["items"]],
        "items_total": result["items_total"],
        "limit": PREVIEW_ROWS,
        "messages": result["messages"],
        "messages_total": result["messages_total"],
        "failures": [{"code": f["code"], "message": said(f)} for f in result["failures"]],
        "warnings": [said(w) for w in result["warnings"]],
    }


def _load(request: Request, session: Session, task_id: int) -> Any:
    from huitouke.app.tasks import get_task

    try:
        return get_task(request_ctx(request).store, task_id)
    except HuitoukeError as exc:
        return error_page(
            request, session, exc.http_status, exc.localized(lang_of(request, session))
        )


@router.get("/tasks/{task_id}")
def task_page(request: Request, task_id: int, next: str = "") -> Response:
    """A background task's progress. 后台任务进度。"""
    page = page_context(request, role="operator")
    if isinstance(page, Response):
        return page
    task = _load(request, page.session, task_id)
    if isinstance(task, Response):
        return task
    return page.render(
        "task.html", refused=None,
        **task_values(request, task, page.lang, next),
    )  # fmt: skip


def start_task(
    request: Request,
    session: Session,
    kind: str,
    params: dict[str, Any],
    *,
    key: str,
    next_path: str = "",
) -> Any:
    """Submit a background task and start it in this process: the task, or the response
    that refuses it (409 with the running task's progress: the same work is under way)."""
    from huitouke.app.tasks import get_task, start, submit

    ctx = request_ctx(request)
    try:
        task = submit(ctx.store, kind, params, key=key, by=session.user.name)
    except HuitoukeError as exc:
        lang = lang_of(request, session)
        task_id = exc.details.get("task_id") if exc.code == "task.running" else None
        if task_id is None:
            return error_page(request, session, exc.http_status, exc.localized(lang))
        running = get_task(ctx.store, int(task_id))
        return render(
            request, "task.html", lang, session=session, status=409,
            refused=exc.localized(lang), **task_values(request, running, lang, next_path),
        )  # fmt: skip
    start(ctx.store, ctx.settings, task.task_id)
    return task


@router.get("/tasks/{task_id}/status")
def task_status(request: Request, task_id: int, next: str = "") -> Response:
    """The status fragment (polled by htmx while the task runs)."""
    page = page_context(request, role="operator")
    if isinstance(page, Response):
        return page
    task = _load(request, page.session, task_id)
    if isinstance(task, Response):
        return task
    values = task_values(request, task, page.lang, next)
    response = page.render("_task_status.html", **values)
    if task.status == "succeeded" and values["next"] and is_htmx(request):
        response.headers["HX-Redirect"] = values["next"]
    return response
