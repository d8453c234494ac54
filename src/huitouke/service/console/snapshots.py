"""The console's snapshot controls: ``POST /snapshots/refresh`` (operators and admins)
recomputes the snapshots — every kind, or the one named by the form's ``kind`` — through
:func:`huitouke.app.snapshots.refresh_snapshots`, the use case behind ``huitouke snapshots
refresh`` and the schedule, as a **background task** (:mod:`huitouke.app.tasks`): the
answer is at once a redirect to the task's progress (``/tasks/{id}``), which returns to the
page it came from when the refresh is done. A second refresh while one is queued or running
is refused (409, showing the running one's progress).
"""

from __future__ import annotations

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from huitouke.service.console.kit import (
    lang_of,
    page_context,
    safe_next,
    secure_headers,
)
from huitouke.service.console.tasks_page import start_task

__all__ = ["router"]

router = APIRouter(include_in_schema=False)


@router.post("/snapshots/refresh")
def refresh(
    request: Request, csrf_token: str = Form(""), next: str = Form("/"), kind: str = Form("")
) -> Response:
    """Recompute the snapshots in the background (operators and admins). 重新计算快照。"""
    from urllib.parse import quote

    from huitouke.app.snapshots import REFRESHERS
    from huitouke.i18n import t

    page = page_context(request, role="operator", csrf=csrf_token, check_csrf=True)
    if isinstance(page, Response):
        return page
    if kind and kind not in REFRESHERS:
        known = ", ".join(sorted(REFRESHERS))
        lang = lang_of(request, page.session)
        message = t("app.snapshots.unknown_kind", lang, kind=kind[:64], known=known)
        return page.error(422, message)
    target = safe_next(next)
    task = start_task(
        request, page.session, "snapshots.refresh", {"kinds": [kind] if kind else None},
        key="snapshots.refresh", next_path=target,
    )  # fmt: skip
    if isinstance(task, Response):
        return task
    location = f"/tasks/{task.task_id}?next={quote(target, safe='/')}"
    return secure_headers(RedirectResponse(location, status_code=303))
