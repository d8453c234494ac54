"""The console's identity page: one customer across platforms (docs/identity.md).
控制台跨平台身份页。

Routes (HTML, none in the OpenAPI schema):

- ``GET /identity`` (read): find an account's person, the latest merges and unmerges, and
  for operators the merge form;
- ``GET /identity/{customer_id}`` (read): the person the account belongs to — its accounts
  (primary first), how each was linked, orders per source, the matching keys as shortened
  keyed hashes (the keys themselves are stored nowhere), the history — and, for operators,
  unmerge with a reason;
- ``GET /customers/{customer_id}/identity`` (read): the same as a panel of the customer's
  page (htmx);
- ``POST /identity/merge`` (operator): ``customer_ids`` (one per line, or separated by
  commas or spaces; the first one's person absorbs the rest) and a ``reason``;
- ``POST /identity/unmerge`` (operator): ``customer_id`` and a ``reason``.

Every change goes through :mod:`huitouke.app.identity_views` — the identity context's merge
and unmerge, as ``huitouke identity merge|unmerge`` and ``/v1/identity`` — recorded with
the actor ``console:<user>``.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from huitouke.app import identity_views as uc
from huitouke.errors import HuitoukeError
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
from huitouke.service.sessions import Session

router = APIRouter(include_in_schema=False)

RULE_TEXTS = (N_("manual"), N_("phone"), N_("email"), N_("union_id"), N_("merge"),
              N_("unmerge"))  # fmt: skip
_SPLIT = re.compile(r"[\s,，、]+")


def _status(exc: HuitoukeError) -> int:
    return exc.http_status if exc.http_status < 500 else 422


def _actor(session: Session) -> str:
    return f"console:{session.user.name}"


def _person(request: Request, customer_id: str) -> tuple[dict[str, Any] | None, str, int]:
    ctx = request_ctx(request)
    try:
        return uc.person_view(ctx.store, customer_id), "", 200
    except HuitoukeError as exc:
        lang = lang_of(request, None)
        return None, exc.localized(lang), exc.http_status


def _index(
    request: Request,
    session: Session,
    *,
    status: int = 200,
    error: str = "",
    form: dict[str, str] | None = None,
) -> Response:
    ctx = request_ctx(request)
    lang = lang_of(request, session)
    return render(
        request, "identity.html", lang, session=session, status=status, error=error,
        form=form or {}, history=uc.history(ctx.store, limit=50),
        operator=session.user.role in ("operator", "admin"),
        when=lambda v: local_time(ctx, v), timezone=ctx.settings.timezone,
    )  # fmt: skip


@router.get("/identity")
def identity_index(request: Request, customer_id: str = "") -> Response:
    """Find a person; merges and unmerges. 跨平台身份。"""
    page = page_context(request)
    if isinstance(page, Response):
        return page
    if customer_id.strip():
        target = f"/identity/{customer_id.strip()}"
        return secure_headers(RedirectResponse(target, 303))
    return _index(request, page.session)


def _person_page(
    request: Request,
    session: Session,
    customer_id: str,
    *,
    template: str = "identity_person.html",
    status: int = 200,
    error: str = "",
    done: str = "",
) -> Response:
    ctx = request_ctx(request)
    lang = lang_of(request, session)
    person, missing, code = _person(request, customer_id)
    if person is None:
        if template != "identity_person.html":
            return render(
                request, "_identity.html", lang, session=session, status=code,
                person=None, customer_id=customer_id, error=missing, operator=False,
                when=lambda v: local_time(ctx, v),
            )  # fmt: skip
        return render(
            request, "error.html", lang, session=session, status=code, status_code=code,
            message=missing,
        )  # fmt: skip
    return render(
        request, template, lang, session=session, status=status, person=person,
        customer_id=customer_id, error=error, done=done,
        operator=session.user.role in ("operator", "admin"),
        when=lambda v: local_time(ctx, v), timezone=ctx.settings.timezone,
    )  # fmt: skip


@router.get("/identity/{customer_id}")
def identity_person(request: Request, customer_id: str, done: str = "") -> Response:
    """The person an account belongs to. 账户所属的人。"""
    page = page_context(request)
    if isinstance(page, Response):
        return page
    return _person_page(
        request, page.session, customer_id, done=done if done in ("merge", "unmerge") else ""
    )


@router.get("/customers/{customer_id}/identity")
def customer_identity(request: Request, customer_id: str) -> Response:
    """The customer page's identity panel (htmx). 顾客页的身份面板。"""
    page = page_context(request)
    if isinstance(page, Response):
        return page
    return _person_page(request, page.session, customer_id, template="_identity.html")


@router.post("/identity/merge")
async def identity_merge(request: Request) -> Response:
    """Merge accounts into one person, with a reason (operators). 合并账户。"""
    data = await request.form()
    page = page_context(
        request, role="operator", csrf=str(data.get("csrf_token", "")), check_csrf=True
    )
    if isinstance(page, Response):
        return page
    # the merge form's list, or the person page's two fields (the person, then the account)
    customer_ids = "\n".join(str(v) for v in data.getlist("customer_ids"))
    reason = str(data.get("reason", ""))
    ids = [i for i in _SPLIT.split(customer_ids.strip()) if i]
    try:
        out = uc.merge(
            page.ctx.store, ids, actor=_actor(page.session), reason=reason, now=now_of(page.ctx)
        )
    except HuitoukeError as exc:
        form = {"customer_ids": customer_ids, "reason": reason}
        return _index(
            request, page.session, status=_status(exc), error=exc.localized(page.lang), form=form
        )
    return secure_headers(RedirectResponse(f"/identity/{out['person_id']}?done=merge", 303))


@router.post("/identity/unmerge")
def identity_unmerge(
    request: Request,
    customer_id: str = Form(""),
    reason: str = Form(""),
    csrf_token: str = Form(""),
) -> Response:
    """Take an account out of its person, with a reason (operators). 拆分账户。"""
    page = page_context(request, role="operator", csrf=csrf_token, check_csrf=True)
    if isinstance(page, Response):
        return page
    try:
        uc.unmerge(
            page.ctx.store,
            customer_id,
            actor=_actor(page.session),
            reason=reason,
            now=now_of(page.ctx),
        )
    except HuitoukeError as exc:
        if exc.code == "identity.unknown_customer":
            return _index(
                request, page.session, status=_status(exc), error=exc.localized(page.lang)
            )
        return _person_page(
            request, page.session, customer_id, status=_status(exc), error=exc.localized(page.lang)
        )
    return secure_headers(RedirectResponse(f"/identity/{customer_id}?done=unmerge", 303))
