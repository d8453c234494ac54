"""The console's settings: the channels and contact rules stored over the environment, the
API keys, and the audit log. 控制台设置页:渠道与联系规则、API 密钥、操作日志。

Routes (HTML, none in the OpenAPI schema):

- ``GET /settings``: every editable setting with where its value comes from (stored,
  environment, default). Every signed-in user may look (non-secret values only); only an
  admin gets the forms. A secret is never rendered back — not its value, not a mask of its
  length: a "set"/"not set" badge and, for an admin, a clear button;
- ``POST /settings/save/{group}`` (admin): save one form (``email``, ``sms``, ``webhook``,
  ``robots``, ``rules``); an empty secret field leaves the secret as it is;
- ``POST /settings/clear`` (admin): remove a stored value (``name``), the environment's
  applies again;
- ``GET /settings/apikeys``, ``POST /settings/apikeys``, ``POST /settings/apikeys/{id}/revoke``
  (admin): the API keys, through the same use case as ``huitouke apikey`` and
  ``/v1/apikeys``; a new key is shown once, on the page that answers its creation;
- ``GET /audit`` (admin): the audit log, newest first (``?before=`` an event id pages on).

Saves go through :mod:`huitouke.app.settings` (the use case of ``/v1/settings/stored``).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from huitouke.app.settings import SMS_PROVIDERS, clear_settings, save_settings, settings_view
from huitouke.errors import HuitoukeError
from huitouke.service.apikeys import SCOPES, create_api_key, list_api_keys, revoke_api_key
from huitouke.service.console.kit import (
    N_,
    client_of,
    lang_of,
    local_time,
    now_of,
    page_context,
    render,
    request_ctx,
    secure_headers,
)
from huitouke.service.sessions import Session
from huitouke.store.audit import list_audit
from huitouke.store.stored_settings import GROUPS
from huitouke.store.uow import run_read, run_write

router = APIRouter(include_in_schema=False)

#: the forms' headings and the value sources, chosen by value in the templates
GROUP_TITLES = {
    "email": N_("E-mail (SMTP)"),
    "sms": N_("SMS"),
    "webhook": N_("Webhook"),
    "robots": N_("WeCom and DingTalk robots"),
    "rules": N_("Contact rules"),
}
SOURCES = (N_("stored"), N_("environment"), N_("default"))
BOOLEANS = ("smtp_starttls", "smtp_ssl")
AUDIT_PAGE = 100


def _status(exc: HuitoukeError) -> int:
    # a refused save is the person's input to fix, not a server failure
    return exc.http_status if exc.http_status < 500 else 422


def _settings_page(
    request: Request, session: Session, *, status: int = 200, error: str = "", saved: str = ""
) -> Response:
    ctx = request_ctx(request)
    lang = lang_of(request, session)
    views = settings_view(ctx.store, ctx.settings)
    groups = [
        {"name": g, "title": GROUP_TITLES[g], "settings": [v for v in views if v.group == g]}
        for g in GROUPS
    ]
    return render(
        request, "settings.html", lang, session=session, status=status, groups=groups,
        error=error, saved=saved, admin=session.user.role == "admin", booleans=BOOLEANS,
        sms_providers=SMS_PROVIDERS, has_keys=bool(ctx.settings.encryption_keys.get_secret_value()),
        when=lambda v: local_time(ctx, v),
    )  # fmt: skip


@router.get("/settings")
def settings_page(request: Request, saved: str = "") -> Response:
    """The settings (admins change them; others see the non-secret values). 设置。"""
    page = page_context(request)
    if isinstance(page, Response):
        return page
    return _settings_page(request, page.session, saved=saved if saved in GROUPS else "")


@router.post("/settings/clear")
async def settings_clear(request: Request) -> Response:
    """Remove a stored value (admins). 清除已保存的设置。"""
    form = await request.form()
    page = page_context(
        request, role="admin", csrf=str(form.get("csrf_token", "")), check_csrf=True
    )
    if isinstance(page, Response):
        return page
    name = str(form.get("name", ""))
    try:
        clear_settings(
            page.ctx.store, page.ctx.settings, [name], actor=page.session.user.name,
            now=now_of(page.ctx), client=client_of(request),
        )  # fmt: skip
    except HuitoukeError as exc:
        return _settings_page(
            request, page.session, status=_status(exc), error=exc.localized(page.lang)
        )
    return secure_headers(RedirectResponse("/settings", status_code=303))


@router.post("/settings/save/{group}")
async def settings_save(request: Request, group: str) -> Response:
    """Save one settings form (admins). 保存一组设置。"""
    form = await request.form()
    page = page_context(
        request, role="admin", csrf=str(form.get("csrf_token", "")), check_csrf=True
    )
    if isinstance(page, Response):
        return page
    if group not in GROUPS:
        return _settings_page(request, page.session, status=404, error=_unknown_group(page.lang))
    values = {name: str(form[name]) for name in GROUPS[group] if name in form}
    try:
        save_settings(
            page.ctx.store, page.ctx.settings, values, actor=page.session.user.name,
            now=now_of(page.ctx), client=client_of(request),
        )  # fmt: skip
    except HuitoukeError as exc:
        return _settings_page(
            request, page.session, status=_status(exc), error=exc.localized(page.lang)
        )
    return secure_headers(RedirectResponse(f"/settings?saved={group}", status_code=303))


def _unknown_group(lang: str) -> str:
    from huitouke.service.console.i18n import translations

    return translations(lang).gettext("No such settings form.")


# -- API keys --------------------------------------------------------------------------------------


def _keys_page(
    request: Request,
    session: Session,
    *,
    status: int = 200,
    error: str = "",
    created: dict[str, Any] | None = None,
) -> Response:
    ctx = request_ctx(request)
    lang = lang_of(request, session)
    keys = run_read(ctx.store, list_api_keys)
    return render(
        request, "apikeys.html", lang, session=session, status=status, keys=keys, error=error,
        created=created, scopes=SCOPES, when=lambda v: local_time(ctx, v),
    )  # fmt: skip


@router.get("/settings/apikeys")
def apikeys_page(request: Request) -> Response:
    """API keys (admins). API 密钥。"""
    page = page_context(request, role="admin")
    if isinstance(page, Response):
        return page
    return _keys_page(request, page.session)


@router.post("/settings/apikeys")
def apikeys_create(
    request: Request, scope: str = Form(""), name: str = Form(""), csrf_token: str = Form("")
) -> Response:
    """Create an API key, shown once (admins). 创建 API 密钥(只显示一次)。"""
    page = page_context(request, role="admin", csrf=csrf_token, check_csrf=True)
    if isinstance(page, Response):
        return page
    actor = page.session.user.name
    try:
        record, full = run_write(
            page.ctx.store,
            lambda conn: create_api_key(
                conn,
                scope=scope,
                name=name.strip()[:200] or None,
                now=now_of(page.ctx),
                actor=actor,
            ),
        )
    except HuitoukeError as exc:
        return _keys_page(
            request, page.session, status=_status(exc), error=exc.localized(page.lang)
        )
    return _keys_page(request, page.session, status=201, created={**record.to_dict(), "key": full})


@router.post("/settings/apikeys/{key_id}/revoke")
def apikeys_revoke(request: Request, key_id: str, csrf_token: str = Form("")) -> Response:
    """Revoke an API key at once (admins). 吊销 API 密钥。"""
    page = page_context(request, role="admin", csrf=csrf_token, check_csrf=True)
    if isinstance(page, Response):
        return page
    actor = page.session.user.name
    try:
        run_write(
            page.ctx.store,
            lambda conn: revoke_api_key(conn, key_id, now=now_of(page.ctx), actor=actor),
        )
    except HuitoukeError as exc:
        return _keys_page(
            request, page.session, status=_status(exc), error=exc.localized(page.lang)
        )
    page.ctx.keys.evict(key_id)
    return secure_headers(RedirectResponse("/settings/apikeys", status_code=303))


# -- audit log -------------------------------------------------------------------------------------


@router.get("/audit")
def audit_page(request: Request, before: int | None = None) -> Response:
    """Who changed what and when (admins). 操作日志。"""
    page = page_context(request, role="admin")
    if isinstance(page, Response):
        return page
    entries = run_read(
        page.ctx.store, lambda conn: list_audit(conn, limit=AUDIT_PAGE, before=before)
    )
    older = entries[-1].event_id if len(entries) == AUDIT_PAGE else None
    return page.render(
        "audit.html", entries=entries, older=older,
        when=lambda v: local_time(page.ctx, v), timezone=page.ctx.settings.timezone,
    )  # fmt: skip
