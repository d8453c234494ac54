"""The console's shop connectors (docs/connectors.md). 控制台店铺连接器页。

Routes (HTML, none in the OpenAPI schema):

- ``GET /connectors`` (read): every connector — kind, status, cursor, last sync and its
  result, the inbox by state — and, for admins, the form to add one;
- ``GET /connectors/new/fields?kind=`` (admin): the add form's credential fields of a kind
  (htmx swaps them when the kind changes);
- ``POST /connectors`` (admin): add a connector; its credentials are sealed and never
  rendered again (the form comes back with its secret fields empty);
- ``GET /connectors/{name}`` (read): one connector — recent syncs (scheduled and by hand,
  from the scheduler's run history), the inbox's failed and pending deliveries with their
  reasons;
- ``GET /connectors/{name}/runs/{run_id}`` (read): a sync's status line (polled by htmx
  while it runs);
- ``POST /connectors/{name}/sync`` (operator): start a sync in the background — a run by
  hand of the scheduler's ``connectors`` job — and answer at once;
- ``POST /connectors/{name}/pause|resume|retry`` (operator);
- ``POST /connectors/{name}/remove`` (admin): with the connector's name typed again.

Everything goes through :mod:`huitouke.app.connectors` (the CLI's and REST's use cases) and
:mod:`huitouke.app.connector_views`.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from huitouke.app import connector_views as views
from huitouke.app import connectors as uc
from huitouke.connectors.model import KINDS
from huitouke.errors import HuitoukeError
from huitouke.service.apikeys import Scope
from huitouke.service.console.i18n import translations
from huitouke.service.console.kit import (
    N_,
    guard,
    lang_of,
    local_time,
    now_of,
    page_context,
    render,
    request_ctx,
    secure_headers,
)
from huitouke.service.sessions import Session

router = APIRouter(include_in_schema=False)

#: the credential fields each kind's form asks for (besides the webhook secret)
FIELDS: dict[str, tuple[str, ...]] = {
    "shopify": ("shop", "access_token"),
    "woocommerce": ("consumer_key", "consumer_secret"),
    "youzan": ("access_token", "consumer_key"),
    "taobao": ("access_token", "consumer_key"),
    # Douyin: a token pair, or an authorisation code, or (own app) the shop id alone — the
    # first pair is then asked with token.create
    "douyin": ("shop", "consumer_key", "access_token", "refresh_token", "auth_code"),
    "pinduoduo": ("access_token", "consumer_key"),
    "wechat_shop": ("consumer_key", "consumer_secret"),
    "jd": ("access_token", "consumer_key"),
}
SECRET_FIELDS: tuple[str, ...] = ("access_token", "consumer_key", "consumer_secret")
SECRET_FIELDS += ("webhook_secret", "refresh_token", "auth_code")
#: the fields' labels, per kind where the platform names them otherwise
LABELS = {
    "shop": N_("Shop domain"),
    "access_token": N_("Access token"),
    "consumer_key": N_("Consumer key"),
    "consumer_secret": N_("Consumer secret"),
    "webhook_secret": N_("Webhook secret"),
    "youzan.consumer_key": N_("client_id"),
    "youzan.webhook_secret": N_("client_secret (signs the push messages)"),
    "taobao.access_token": N_("Session key"),
    "taobao.consumer_key": N_("App key"),
    "taobao.webhook_secret": N_("App secret (signs the requests)"),
    "refresh_token": N_("Refresh token"),
    "auth_code": N_("Authorisation code (instead of a token; used once)"),
    "douyin.shop": N_("Shop ID (your own app: enough without a token)"),
    "douyin.consumer_key": N_("App key"),
    "douyin.access_token": N_("Access token (optional)"),
    "douyin.webhook_secret": N_("App secret (signs the requests and the pushes)"),
    "pinduoduo.consumer_key": N_("client_id"),
    "pinduoduo.webhook_secret": N_("client_secret (signs the requests)"),
    "wechat_shop.consumer_key": N_("AppID"),
    "wechat_shop.consumer_secret": N_("AppSecret"),
    "wechat_shop.webhook_secret": N_("Push Token:EncodingAESKey"),
    "jd.consumer_key": N_("App key"),
    "jd.webhook_secret": N_("App secret (signs the requests)"),
}
STATES = (N_("active"), N_("paused"), N_("pending"), N_("failed"), N_("applied"), N_("ignored"))
STATES_RUN = (N_("running"), N_("succeeded"), N_("skipped"), N_("manual"), N_("schedule"),
              N_("catch_up"))  # fmt: skip


def _status(exc: HuitoukeError) -> int:
    return exc.http_status if exc.http_status < 500 else 422


def _label(kind: str, field: str) -> str:
    return LABELS.get(f"{kind}.{field}", LABELS[field])


def _fields(kind: str) -> list[dict[str, Any]]:
    names = [*FIELDS.get(kind, ()), "webhook_secret"]
    return [{"name": f, "label": _label(kind, f), "secret": f in SECRET_FIELDS} for f in names]


def _list_page(
    request: Request,
    session: Session,
    *,
    status: int = 200,
    error: str = "",
    form: dict[str, str] | None = None,
    message: str = "",
) -> Response:
    ctx = request_ctx(request)
    lang = lang_of(request, session)
    rows = views.connector_overview(ctx.store, lang)
    values = {k: v for k, v in (form or {}).items() if k not in SECRET_FIELDS}
    kind = values.get("kind") or KINDS[0]
    return render(
        request, "connectors.html", lang, session=session, status=status, connectors=rows,
        error=error, message=message, kinds=KINDS, kind=kind if kind in KINDS else KINDS[0],
        fields=_fields(kind if kind in KINDS else KINDS[0]), form=values,
        admin=session.user.role == "admin", states=views.INBOX_STATES,
        when=lambda v: _when(request, v), timezone=ctx.settings.timezone,
    )  # fmt: skip


def _when(request: Request, value: Any) -> str:
    from datetime import datetime

    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return value
    return local_time(request_ctx(request), value)


@router.get("/connectors")
def connectors_page(request: Request, message: str = "") -> Response:
    """The shop connectors. 店铺连接器。"""
    page = page_context(request)
    if isinstance(page, Response):
        return page
    return _list_page(request, page.session, message=_message(request, page.session, message))


@router.get("/connectors/new/fields")
def connector_fields(request: Request, kind: str = "") -> Response:
    """The add form's fields of one kind (htmx). 各平台所需字段。"""
    page = page_context(request, role="admin")
    if isinstance(page, Response):
        return page
    chosen = kind if kind in KINDS else KINDS[0]
    return page.render(
        "_connector_fields.html", fields=_fields(chosen),
        form={}, kind=chosen,
    )  # fmt: skip


def _int(value: str, default: int) -> int:
    try:
        return int(value) if value.strip() else default
    except ValueError:
        return -1  # refused by the use case's range check, naming the field


@router.post("/connectors")
async def connector_add(request: Request) -> Response:
    """Add a connector (admins); credentials sealed, never shown again. 添加连接器。"""
    data = await request.form()
    page = page_context(
        request, role="admin", csrf=str(data.get("csrf_token", "")), check_csrf=True
    )
    if isinstance(page, Response):
        return page
    form = {k: str(v) for k, v in data.items() if k != "csrf_token"}
    kind = form.get("kind", "")

    def opt(name: str) -> str | None:
        value = form.get(name, "").strip()
        return value or None

    spec = uc.ConnectorIn(
        kind=kind, name=form.get("name", "").strip(),
        api_base_url=form.get("api_base_url", "").strip(),
        webhook_secret=form.get("webhook_secret", ""), shop=opt("shop"),
        access_token=opt("access_token"), consumer_key=opt("consumer_key"),
        consumer_secret=opt("consumer_secret"), refresh_token=opt("refresh_token"),
        auth_code=opt("auth_code"),
        # Douyin with neither a token nor a code: the merchant's own app, by its shop id
        authorise_self=kind == "douyin" and not opt("access_token") and not opt("auth_code")
        and bool(opt("shop")),
        overlap_seconds=_int(form.get("overlap_seconds", ""), 300),
        page_size=_int(form.get("page_size", ""), 100),
    )  # fmt: skip
    try:
        uc.add_connector(page.ctx.store, page.ctx.settings, spec, now=now_of(page.ctx))
    except HuitoukeError as exc:
        return _list_page(
            request, page.session, status=_status(exc), error=exc.localized(page.lang), form=form
        )
    return secure_headers(RedirectResponse(f"/connectors/{spec.name}?message=added", 303))


_MESSAGES = {
    "added": N_("Connector added. Point the platform's webhooks at the address below."),
    "paused": N_("Paused: pulls are refused; webhooks are still stored."),
    "resumed": N_("Resumed."),
    "removed": N_("Connector removed; its orders stay."),
}


def _message(request: Request, session: Session, key: str) -> str:
    text = _MESSAGES.get(key)
    return translations(lang_of(request, session)).gettext(text) if text else ""


def _detail(
    request: Request,
    session: Session,
    name: str,
    *,
    status: int = 200,
    error: str = "",
    message: str = "",
    run_id: int | None = None,
    retried: dict[str, int] | None = None,
) -> Response:
    ctx = request_ctx(request)
    lang = lang_of(request, session)
    try:
        row = uc.show_connector(ctx.store, name)
    except HuitoukeError as exc:
        return render(
            request, "error.html", lang, session=session, status=exc.http_status,
            status_code=exc.http_status, message=exc.localized(lang),
        )  # fmt: skip
    counts = views.inbox_counts(ctx.store).get(name, dict.fromkeys(views.INBOX_STATES, 0))
    syncs = views.connector_syncs(ctx.store, name, lang=lang)
    running = next((s for s in syncs if s["status"] == "running"), None)
    current = views.sync_run(ctx.store, name, run_id, lang) if run_id else running
    problems = views.inbox_problems(ctx.store, name, limit=100)
    return render(
        request, "connector.html", lang, session=session, status=status, c=row, counts=counts,
        states=views.INBOX_STATES, syncs=syncs, current=current, problems=problems,
        error=error, message=message, retried=retried,
        operator=session.user.role in ("operator", "admin"),
        admin=session.user.role == "admin", when=lambda v: _when(request, v),
        timezone=ctx.settings.timezone,
    )  # fmt: skip


@router.get("/connectors/{name}")
def connector_page(request: Request, name: str, message: str = "", run: int = 0) -> Response:
    """One connector: syncs, inbox problems, actions. 连接器详情。"""
    page = page_context(request)
    if isinstance(page, Response):
        return page
    return _detail(
        request,
        page.session,
        name,
        message=_message(request, page.session, message),
        run_id=run or None,
    )


@router.get("/connectors/{name}/runs/{run_id}")
def connector_run(request: Request, name: str, run_id: int) -> Response:
    """A sync's status line (htmx polls it while it runs). 同步进度。"""
    page = page_context(request)
    if isinstance(page, Response):
        return page
    run = views.sync_run(page.ctx.store, name, run_id, page.lang)
    return page.render(
        "_connector_run.html", c={"name": name}, current=run,
        when=lambda v: _when(request, v),
    )  # fmt: skip


async def _operate(request: Request, role: Scope) -> Session | Response:
    data = await request.form()
    return guard(request, role=role, csrf=str(data.get("csrf_token", "")), check_csrf=True)


@router.post("/connectors/{name}/sync")
async def connector_sync(request: Request, name: str) -> Response:
    """Start a sync in the background (operators). 立即同步(后台运行)。"""
    guarded = await _operate(request, "operator")
    if isinstance(guarded, Response):
        return guarded
    ctx = request_ctx(request)
    lang = lang_of(request, guarded)
    try:
        run_id = views.start_sync(ctx.store, ctx.settings, name)
    except HuitoukeError as exc:
        return _detail(request, guarded, name, status=_status(exc), error=exc.localized(lang))
    return secure_headers(RedirectResponse(f"/connectors/{name}?run={run_id}", 303))


@router.post("/connectors/{name}/pause")
async def connector_pause(request: Request, name: str) -> Response:
    """Pause pulls (operators). 暂停。"""
    return await _set_paused(request, name, True)


@router.post("/connectors/{name}/resume")
async def connector_resume(request: Request, name: str) -> Response:
    """Resume pulls (operators). 恢复。"""
    return await _set_paused(request, name, False)


async def _set_paused(request: Request, name: str, paused: bool) -> Response:
    guarded = await _operate(request, "operator")
    if isinstance(guarded, Response):
        return guarded
    ctx = request_ctx(request)
    lang = lang_of(request, guarded)
    try:
        uc.set_paused(ctx.store, name, paused, now=now_of(ctx))
    except HuitoukeError as exc:
        return _detail(request, guarded, name, status=_status(exc), error=exc.localized(lang))
    done = "paused" if paused else "resumed"
    return secure_headers(RedirectResponse(f"/connectors/{name}?message={done}", 303))


@router.post("/connectors/{name}/retry")
async def connector_retry(request: Request, name: str) -> Response:
    """Apply the failed and pending deliveries again (operators). 重试收件箱。"""
    guarded = await _operate(request, "operator")
    if isinstance(guarded, Response):
        return guarded
    ctx = request_ctx(request)
    lang = lang_of(request, guarded)
    try:
        counts = uc.retry(ctx.store, ctx.settings, name, now=now_of(ctx))
    except HuitoukeError as exc:
        return _detail(request, guarded, name, status=_status(exc), error=exc.localized(lang))
    return _detail(request, guarded, name, retried=counts)


@router.post("/connectors/{name}/remove")
async def connector_remove(request: Request, name: str) -> Response:
    """Remove a connector, its name typed again to confirm (admins). 删除连接器。"""
    data = await request.form()
    page = page_context(
        request, role="admin", csrf=str(data.get("csrf_token", "")), check_csrf=True
    )
    if isinstance(page, Response):
        return page
    if str(data.get("confirm", "")).strip() != name:
        text = translations(page.lang).gettext(
            "Type the connector's name to confirm its removal; nothing was removed."
        )
        return _detail(request, page.session, name, status=422, error=text)
    try:
        uc.remove_connector(page.ctx.store, name)
    except HuitoukeError as exc:
        return _detail(
            request, page.session, name, status=_status(exc), error=exc.localized(page.lang)
        )
    return secure_headers(RedirectResponse("/connectors?message=removed", 303))
