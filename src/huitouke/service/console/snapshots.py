"""The console's snapshot controls: ``POST /snapshots/refresh`` recomputes every snapshot
(:func:`huitouke.app.snapshots.refresh_snapshots`, the use case behind ``huitouke snapshots
refresh`` and the schedule) for operators and admins, then returns to the page it came from.

The request lasts as long as the refresh (seconds on a small shop, about a minute per ten
million orders); imports and the schedule are the usual way snapshots are renewed.
"""

from __future__ import annotations

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from huitouke.service.console.kit import (
    error_page,
    guard,
    lang_of,
    request_ctx,
    safe_next,
    secure_headers,
)

__all__ = ["router"]

router = APIRouter(include_in_schema=False)


@router.post("/snapshots/refresh")
def refresh(request: Request, csrf_token: str = Form(""), next: str = Form("/")) -> Response:
    """Recompute the snapshots (operators and admins). 重新计算快照。"""
    from huitouke.app.snapshots import refresh_snapshots
    from huitouke.i18n import t

    guarded = guard(request, role="operator", csrf=csrf_token, check_csrf=True)
    if isinstance(guarded, Response):
        return guarded
    ctx = request_ctx(request)
    reports = refresh_snapshots(ctx.store, ctx.settings)
    failed = [r for r in reports if r.error]
    if failed:
        lang = lang_of(request, guarded)
        message = " ".join(
            t("app.snapshots.refresh_failed", lang, kind=r.kind, code=r.error) for r in failed
        )
        return error_page(request, guarded, 409, message)
    return secure_headers(RedirectResponse(safe_next(next), status_code=303))
