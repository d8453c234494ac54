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

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import RedirectResponse, Response

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
    from huitouke.service.uploads import import_history, stored_currencies
    from huitouke.store.shop_profile import shop_zone

    ctx = request_ctx(request)
    lang = lang_of(request, session)
    history, currencies = run_read(
        ctx.store, lambda conn: (import_history(conn, limit=50), stored_currencies(conn))
    )
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
    guarded = guard(request)
    if isinstance(guarded, Response):
        return guarded
    return _data_page(request, guarded)


@router.post("/data/imports")
def data_upload(
    request: Request,
    file: UploadFile | None = File(None),
    preset: str = Form(""),
    source: str = Form(""),
    csrf_token: str = Form(""),
) -> Response:
    """Start importing an uploaded export (operators); answers the import's page (or, to
    htmx, its status fragment, which polls until the import ends). 上传并导入。"""
    from huitouke.service.uploads import start_import

    guarded = guard(request, role="operator", csrf=csrf_token, check_csrf=True)
    if isinstance(guarded, Response):
        return guarded
    ctx = request_ctx(request)
    lang = lang_of(request, guarded)
    if file is None or not file.filename:
        from huitouke.service.console.i18n import translations

        message = translations(lang).gettext("Choose an export file to upload.")
        return _data_page(request, guarded, status=422, error=message)
    try:
        import_id = start_import(
            ctx.store, file.file, file_name=file.filename, user=guarded.user.name,
            now=now_of(ctx), source=source.strip() or None, preset=preset.strip() or None,
        )  # fmt: skip
    except HuitoukeError as exc:
        return _data_page(request, guarded, status=exc.http_status, error=exc.localized(lang))
    finally:
        file.file.close()
    if is_htmx(request):
        return _import_view(request, guarded, import_id, fragment=True)
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
    guarded = guard(request)
    if isinstance(guarded, Response):
        return guarded
    return _import_view(request, guarded, import_id, fragment=is_htmx(request))


@router.get("/data/imports/{import_id}/rejects.csv")
def import_rejects(request: Request, import_id: str) -> Response:
    """The upload's rejected rows as CSV (UTF-8 with BOM), as `huitouke import` writes them
    (operators: the rows hold the file's customer data unmasked). 下载拒收明细。"""
    from huitouke.service.uploads import rejects_of

    guarded = guard(request, role="operator")
    if isinstance(guarded, Response):
        return guarded
    ctx = request_ctx(request)
    lang = lang_of(request, guarded)
    try:
        name, data = run_read(ctx.store, lambda conn: rejects_of(conn, import_id))
    except HuitoukeError as exc:
        return error_page(request, guarded, exc.http_status, exc.localized(lang))
    from urllib.parse import quote

    response = Response(
        data,
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f"attachment; filename*=UTF-8''{quote(name)}",
        },
    )
    return secure_headers(response)
