"""The console's WeCom private domain page (docs/wecom.md). 控制台企业微信私域页。

Routes (HTML, none in the OpenAPI schema):

- ``GET /wecom`` (read): the channel live codes with their QR codes (drawn here from the
  stored URL: the page loads nothing from WeCom), source, tags, welcome texts and the
  contacts each brought and kept; the external contacts linked to customers (names masked
  for read users); the latest callback events with their status and reason;
- ``POST /wecom/codes`` (operator): a new code — created in WeCom, then kept, the use case
  of ``huitouke wecom code add``;
- ``POST /wecom/events/{event_id}/retry`` (operator): apply a failed event again
  (``huitouke wecom retry``).
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from huitouke.app import wecom as app_wecom
from huitouke.app import wecom_views as uc
from huitouke.errors import HuitoukeError, InputError
from huitouke.service.apikeys import scope_allows
from huitouke.service.console.kit import (
    N_,
    lang_of,
    local_time,
    now_of,
    page_context,
    render,
    request_ctx,
    secure_headers,
)
from huitouke.service.masking import mask_name
from huitouke.service.sessions import Session

router = APIRouter(include_in_schema=False)

STATUS_TEXTS = (N_("sent"), N_("not_sent"), N_("sending"), N_("none"), N_("received"))


def _status(exc: HuitoukeError) -> int:
    return exc.http_status if exc.http_status < 500 else 422


def _qr(url: str) -> str | None:
    return uc.qr_svg(url) if url else None


def _page(
    request: Request,
    session: Session,
    *,
    status: int = 200,
    error: str = "",
    form: dict[str, str] | None = None,
    retried: dict[str, Any] | None = None,
    created: str = "",
) -> Response:
    ctx = request_ctx(request)
    lang = lang_of(request, session)
    codes = [
        {**c, "qr": _qr(c["qr_code"]), "group_qr": _qr(c.get("group_qr_code") or "")}
        for c in uc.codes(ctx.store)
    ]
    operator = scope_allows(session.user.role, "operator")
    contacts = [
        c if operator else {**c, "name": mask_name(c.get("name"))}
        for c in uc.contacts(ctx.store, limit=100)
    ]
    configured = bool(
        ctx.settings.wecom_corp_id and ctx.settings.wecom_contact_secret.get_secret_value()
    )
    return render(
        request, "wecom.html", lang, session=session, status=status, codes=codes,
        contacts=contacts, events=uc.events(ctx.store, limit=50), error=error,
        form=form or {}, retried=retried, created=created, operator=operator,
        configured=configured, when=lambda v: local_time(ctx, v),
        timezone=ctx.settings.timezone,
    )  # fmt: skip


@router.get("/wecom")
def wecom_page(request: Request, created: str = "") -> Response:
    """Channel codes, contacts, callback events. 渠道活码、客户、回调事件。"""
    page = page_context(request)
    if isinstance(page, Response):
        return page
    return _page(request, page.session, created=created[:30])


def _lines(text: str) -> list[str]:
    return [t.strip() for t in text.replace(",", "\n").replace(",", "\n").splitlines() if t.strip()]


@router.post("/wecom/codes")
async def wecom_code_add(request: Request) -> Response:
    """Create a channel live code in WeCom (operators). 新建渠道活码。"""
    data = await request.form()
    page = page_context(
        request, role="operator", csrf=str(data.get("csrf_token", "")), check_csrf=True
    )
    if isinstance(page, Response):
        return page
    form = {k: str(v) for k, v in data.items() if k != "csrf_token"}
    try:
        survey_text = form.get("survey", "").strip()
        try:
            survey = json.loads(survey_text) if survey_text else []
        except ValueError as exc:
            raise InputError(
                f"survey: not JSON ({exc})",
                code="wecom.bad_input",
                message_zh=f"问卷:不是有效的 JSON({exc})",
                details={"field": "survey"},
            ) from None
        code = form.get("code", "").strip()
        uc.add_code(
            page.ctx.store, page.ctx.settings, code=code, users=_lines(form.get("users", "")),
            source=form.get("source", "").strip(), tags=_lines(form.get("tags", "")),
            welcome_zh=form.get("welcome_zh", ""), welcome_en=form.get("welcome_en", ""),
            survey=survey, now=now_of(page.ctx), group_chats=_lines(form.get("groups", "")),
        )  # fmt: skip
    except HuitoukeError as exc:
        return _page(
            request, page.session, status=_status(exc), error=exc.localized(page.lang), form=form
        )
    return secure_headers(RedirectResponse(f"/wecom?created={code}", 303))


@router.post("/wecom/events/{event_id}/retry")
async def wecom_event_retry(request: Request, event_id: int) -> Response:
    """Apply a failed callback event again (operators). 重新处理回调事件。"""
    data = await request.form()
    page = page_context(
        request, role="operator", csrf=str(data.get("csrf_token", "")), check_csrf=True
    )
    if isinstance(page, Response):
        return page
    try:
        client = app_wecom.wecom_client(page.ctx.settings)
        try:
            out = app_wecom.retry_event(
                page.ctx.store, page.ctx.settings, client, event_id, now=now_of(page.ctx)
            )
        finally:
            client.close()
    except HuitoukeError as exc:
        return _page(request, page.session, status=_status(exc), error=exc.localized(page.lang))
    return _page(request, page.session, retried={"event_id": event_id, "status": out.status})
