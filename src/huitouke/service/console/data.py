"""The console's Data page: upload a platform export, watch it import, see what it did.

The import is :func:`huitouke.app.imports.import_file` — what ``huitouke import`` runs —
started in a background thread by :mod:`huitouke.service.uploads`; the page polls its state
with htmx until it ends. The upload is limited to ``HUITOUKE_CONSOLE_UPLOAD_MAX_BYTES`` by
the service's request guard (413 ``request.too_large`` past it), as every request body is.

Routes: ``GET /data`` (upload form, the store's zone and currency, import history);
``POST /data/imports`` (multipart: ``file``, optional ``preset`` and ``source``; operators);
``GET /data/imports/{id}`` (one import: progress while it runs, then the preset, the counts
and the rejects by reason; htmx polls the fragment); ``GET /data/imports/{id}/rejects.csv``
(the rejected rows, operators: they hold customers' data as the file had it).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.datastructures import UploadFile as StarletteUpload

from huitouke.errors import HuitoukeError
from huitouke.i18n import fmt_number
from huitouke.service.console.kit import (
    N_,
    error_page,
    guard,
    is_htmx,
    lang_of,
    local_time,
    now_of,
    page_context,
    render,
    request_ctx,
    secure_headers,
)
from huitouke.service.sessions import Session
from huitouke.store.uow import run_read

__all__ = ["router"]

router = APIRouter(include_in_schema=False)

#: texts the templates pick by value: import states and progress stages
CHOSEN = (N_("running"), N_("done"), N_("reading"), N_("writing"), N_("console"), N_("cli"))


def _presets() -> list[str]:
    from huitouke.importing.presets import PRESETS

    return sorted(PRESETS)


def _row_shown(request: Request, row: dict[str, Any], lang: str) -> dict[str, Any]:
    from huitouke.service.uploads import progress_of

    ctx = request_ctx(request)
    out = dict(row)
    out["started"] = local_time(ctx, row["started_at"])
    out["finished"] = local_time(ctx, row["finished_at"])
    error = row.get("error") or None
    out["error_text"] = (error.get(lang) or error.get("en")) if error else None
    out["warnings_text"] = [w[1] if lang == "zh" else w[0] for w in row.get("warnings") or []]
    progress = progress_of(row["import_id"]) if row.get("import_id") else None
    out["stage"] = progress.stage if progress is not None else row["status"]
    out["done"] = progress.done if progress is not None else 0
    out["total"] = progress.total if progress is not None else 0
    out["percent"] = (
        int(100 * progress.done / progress.total)
        if progress is not None and progress.total
        else None
    )
    return out


def _data_page(
    request: Request, session: Session, *, status: int = 200, error: str | None = None
) -> Response:
    from huitouke.app.snapshots import stored_currencies
    from huitouke.service.uploads import import_history
    from huitouke.store.shop_profile import shop_zone

    ctx = request_ctx(request)
    lang = lang_of(request, session)
    history = run_read(ctx.store, lambda conn: import_history(conn, limit=50))
    currencies, _ = stored_currencies(ctx.store)
    return render(
        request, "data.html", lang, session=session, status=status, error=error,
        history=[_row_shown(request, r, lang) for r in history], presets=_presets(),
        shop_zone=shop_zone(ctx.store), timezone=ctx.settings.timezone,
        currency=ctx.settings.currency, currencies=currencies,
        max_mb=fmt_number(ctx.settings.console_upload_max_bytes / 1024 / 1024, lang, 0),
        max_bytes=ctx.settings.console_upload_max_bytes,
    )  # fmt: skip


@router.get("/data")
def data_page(request: Request) -> Response:
    """Upload an export; the store's zone and currency; import history. 数据导入。"""
    page = page_context(request)
    if isinstance(page, Response):
        return page
    return _data_page(request, page.session)


@router.post("/data/imports")
async def data_upload(request: Request) -> Response:
    """Start importing an uploaded export (operators); answers the import's page (or, to
    htmx, its status fragment, which polls until the import ends). The session and the
    role are checked before a byte of the body is read, the CSRF token (form field or
    header) before anything is stored. 上传并导入。"""
    from starlette.concurrency import run_in_threadpool

    guarded = await run_in_threadpool(guard, request, role="operator")
    if isinstance(guarded, Response):
        return guarded
    form = await request.form(max_files=1, max_fields=8)
    try:
        token = form.get("csrf_token")
        checked = await run_in_threadpool(
            lambda: guard(
                request,
                role="operator",
                csrf=token if isinstance(token, str) else "",
                check_csrf=True,
            )
        )
        if isinstance(checked, Response):
            return checked
        upload = form.get("file")
        fields = {k: form.get(k) for k in ("preset", "source")}
        text = {k: v.strip() if isinstance(v, str) else "" for k, v in fields.items()}
        if not isinstance(upload, StarletteUpload) or not upload.filename:
            return await run_in_threadpool(_no_file, request, checked)
        return await run_in_threadpool(_start, request, checked, upload, text)
    finally:
        await form.close()


def _no_file(request: Request, session: Session) -> Response:
    from huitouke.service.console.i18n import translations

    message = translations(lang_of(request, session)).gettext("Choose an export file to upload.")
    return _data_page(request, session, status=422, error=message)


def _start(
    request: Request, session: Session, upload: StarletteUpload, fields: dict[str, str]
) -> Response:
    from huitouke.service.uploads import start_import

    ctx = request_ctx(request)
    lang = lang_of(request, session)
    try:
        import_id = start_import(
            ctx.store, upload.file, file_name=upload.filename, user=session.user.name,
            now=now_of(ctx), source=fields["source"] or None, preset=fields["preset"] or None,
        )  # fmt: skip
    except HuitoukeError as exc:
        return _data_page(request, session, status=exc.http_status, error=exc.localized(lang))
    if is_htmx(request):
        return _import_view(request, session, import_id, fragment=True)
    return secure_headers(RedirectResponse(f"/data/imports/{import_id}", status_code=303))


def _import_view(request: Request, session: Session, import_id: str, *, fragment: bool) -> Response:
    from huitouke.service.uploads import get_import

    ctx = request_ctx(request)
    lang = lang_of(request, session)
    try:
        row = run_read(ctx.store, lambda conn: get_import(conn, import_id))
    except HuitoukeError as exc:
        return error_page(request, session, exc.http_status, exc.localized(lang))
    template = "_import_status.html" if fragment else "import.html"
    return render(
        request, template, lang, session=session, imp=_row_shown(request, row, lang),
        fmt_count=lambda v: "—" if v is None else fmt_number(v, lang, 0),
    )  # fmt: skip


@router.get("/data/imports/{import_id}")
def import_page(request: Request, import_id: str) -> Response:
    """One upload: progress while it runs, then its summary (htmx polls the fragment)."""
    page = page_context(request)
    if isinstance(page, Response):
        return page
    return _import_view(request, page.session, import_id, fragment=is_htmx(request))


@router.get("/data/imports/{import_id}/rejects.csv")
def import_rejects(request: Request, import_id: str) -> Response:
    """The upload's rejected rows as CSV (UTF-8 with BOM), as `huitouke import` writes them
    (operators: the rows hold the file's customer data unmasked). 下载拒收明细。"""
    from huitouke.service.uploads import rejects_of

    page = page_context(request, role="operator")
    if isinstance(page, Response):
        return page
    try:
        name, data = run_read(page.ctx.store, lambda conn: rejects_of(conn, import_id))
    except HuitoukeError as exc:
        return page.refuse(exc)
    from urllib.parse import quote

    response = Response(
        data,
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f"attachment; filename*=UTF-8''{quote(name)}",
        },
    )
    return secure_headers(response)
