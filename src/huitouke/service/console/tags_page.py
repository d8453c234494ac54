"""The console's tags and profiles (标签/画像): the tags in use, the defined attributes, tagging
a whole segment, and a customer's tags, attributes and their history.

Routes (HTML, none in the OpenAPI schema):

- ``GET /tags``: every tag added with its number of customers and the defined attributes;
- ``POST /tags/apply`` (operator): add or remove a tag on customers named by id (one per
  line) or on everybody a segment selects — RFM segments, layers, lifecycle stages, tags,
  an attribute condition: the audience language of journeys, evaluated the same way;
- ``POST /attributes`` (admin): define an attribute (text, number, date or choice);
- ``GET /customers/{id}/profile``: the fragment the customer's page loads — tags,
  attribute values and who set them when;
- ``POST /customers/{id}/tags``, ``POST /customers/{id}/attributes`` (operator): add or
  remove a tag, set or clear an attribute value of one customer.

Every change goes through :mod:`huitouke.app.profiles` (the use case of ``/v1/tags``,
``/v1/attributes`` and ``huitouke tags|attributes``).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from huitouke.analytics import messages as _analytics_texts  # noqa: F401  (segment names)
from huitouke.app.profiles import (
    Target,
    change_attribute,
    change_tags,
    customer_profile,
    define_attribute,
    parse_audience,
    profile_overview,
)
from huitouke.errors import HuitoukeError, InputError
from huitouke.i18n import t
from huitouke.journeys.model import LAYERS, LIFECYCLES, RFM_SEGMENTS
from huitouke.service.console.kit import (
    N_,
    client_of,
    error_page,
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
from huitouke.store.profiles import ATTRIBUTE_TYPES

router = APIRouter(include_in_schema=False)

#: attribute types and history kinds, chosen by value in the templates
CHOSEN = (
    N_("text"), N_("number"), N_("date"), N_("choice"),
    N_("tag.add"), N_("tag.remove"), N_("attr.set"), N_("attr.clear"),
)  # fmt: skip
OPS = ("eq", "ne", "lt", "le", "gt", "ge", "set", "unset")


def _status(exc: HuitoukeError) -> int:
    return exc.http_status if exc.http_status < 500 else 422


def _tags_page(
    request: Request, session: Session, *, status: int = 200, error: str = "", done: str = ""
) -> Response:
    ctx = request_ctx(request)
    lang = lang_of(request, session)
    return render(
        request, "tags.html", lang, session=session, status=status, error=error, done=done,
        overview=profile_overview(ctx.store), layers=LAYERS, segments=RFM_SEGMENTS,
        lifecycles=LIFECYCLES, types=ATTRIBUTE_TYPES, ops=OPS,
        operator=session.user.role in ("operator", "admin"), admin=session.user.role == "admin",
        label=lambda kind, code: t(f"analytics.{kind}.{code}", lang),
    )  # fmt: skip


@router.get("/tags")
def tags_page(request: Request, done: str = "") -> Response:
    """Tags and profile attributes. 标签与画像。"""
    page = page_context(request)
    if isinstance(page, Response):
        return page
    return _tags_page(request, page.session, done=done[:200])


def _audience_from_form(form: Any) -> dict[str, Any]:
    """The audience the segment form describes (only the fields filled in)."""
    data: dict[str, Any] = {}
    for field in ("layers", "rfm_segments", "lifecycles"):
        picked = [str(v) for v in form.getlist(field) if str(v)]
        if picked:
            data[field] = picked
    for field in ("tags_any", "tags_none"):
        words = [w.strip() for w in str(form.get(field, "")).split(",") if w.strip()]
        if words:
            data[field] = words
    key = str(form.get("attr_key", "")).strip()
    if key:
        op = str(form.get("attr_op", "eq"))
        cond: dict[str, Any] = {"key": key, "op": op}
        if op not in ("set", "unset"):
            cond["value"] = str(form.get("attr_value", "")).strip()
        data["attributes"] = [cond]
    return data


@router.post("/tags/apply")
async def tags_apply(request: Request) -> Response:
    """Add or remove a tag on customers or a whole segment (operators). 批量打标签。"""
    form = await request.form()
    page = page_context(
        request, role="operator", csrf=str(form.get("csrf_token", "")), check_csrf=True
    )
    if isinstance(page, Response):
        return page
    ids = [x.strip() for x in str(form.get("customer_ids", "")).splitlines() if x.strip()]
    audience = _audience_from_form(form)
    try:
        if ids and audience:
            target = Target()  # both: refused by the use case, naming the rule
        elif ids:
            target = Target(customer_ids=ids)
        elif audience:
            target = Target(audience=parse_audience(audience))
        else:
            target = Target()
        result = change_tags(
            page.ctx.store, page.ctx.settings, target, [str(form.get("tag", ""))],
            remove=form.get("action") == "remove", actor=page.session.user.name,
            now=now_of(page.ctx), client=client_of(request),
        )  # fmt: skip
    except HuitoukeError as exc:
        return _tags_page(
            request, page.session, status=_status(exc), error=exc.localized(page.lang)
        )
    done = f"{','.join(result['tags'])}:{result['customers']}:{result['changed']}"
    return secure_headers(RedirectResponse(f"/tags?done={quote(done)}", status_code=303))


@router.post("/attributes")
async def attributes_define(request: Request) -> Response:
    """Define a profile attribute (admins). 定义画像属性。"""
    form = await request.form()
    page = page_context(
        request, role="admin", csrf=str(form.get("csrf_token", "")), check_csrf=True
    )
    if isinstance(page, Response):
        return page
    choices = [c for c in str(form.get("choices", "")).split(",") if c.strip()]
    try:
        define_attribute(
            page.ctx.store, str(form.get("key", "")), str(form.get("type", "")), choices=choices,
            actor=page.session.user.name, now=now_of(page.ctx), client=client_of(request),
        )  # fmt: skip
    except HuitoukeError as exc:
        return _tags_page(
            request, page.session, status=_status(exc), error=exc.localized(page.lang)
        )
    return secure_headers(RedirectResponse("/tags", status_code=303))


# -- one customer ----------------------------------------------------------------------------------


def _profile_fragment(
    request: Request, session: Session, customer_id: str, *, status: int = 200, error: str = ""
) -> Response:
    ctx = request_ctx(request)
    lang = lang_of(request, session)
    try:
        profile = customer_profile(ctx.store, customer_id)
    except HuitoukeError as exc:
        return error_page(request, session, exc.http_status, exc.localized(lang))
    return render(
        request, "_profile.html", lang, session=session, status=status, error=error,
        profile=profile, attributes=profile_overview(ctx.store)["attributes"],
        operator=session.user.role in ("operator", "admin"), when=lambda v: local_time(ctx, v),
    )  # fmt: skip


@router.get("/customers/{customer_id}/profile")
def customer_profile_fragment(request: Request, customer_id: str) -> Response:
    """A customer's tags, attributes and their history (a fragment). 顾客标签与画像。"""
    page = page_context(request)
    if isinstance(page, Response):
        return page
    return _profile_fragment(request, page.session, customer_id)


def _after_customer_change(request: Request, session: Session, customer_id: str) -> Response:
    if is_htmx(request):
        return _profile_fragment(request, session, customer_id)
    target = f"/customers/{quote(customer_id, safe='')}"
    return secure_headers(RedirectResponse(target, status_code=303))


@router.post("/customers/{customer_id}/tags")
async def customer_tag(request: Request, customer_id: str) -> Response:
    """Add or remove one customer's tag (operators). 给顾客添加或移除标签。"""
    form = await request.form()
    page = page_context(
        request, role="operator", csrf=str(form.get("csrf_token", "")), check_csrf=True
    )
    if isinstance(page, Response):
        return page
    try:
        change_tags(
            page.ctx.store, page.ctx.settings, Target(customer_ids=[customer_id]),
            [str(form.get("tag", ""))], remove=form.get("action") == "remove",
            actor=page.session.user.name, now=now_of(page.ctx), client=client_of(request),
        )  # fmt: skip
    except HuitoukeError as exc:
        return _profile_fragment(
            request, page.session, customer_id, status=_status(exc), error=exc.localized(page.lang)
        )
    return _after_customer_change(request, page.session, customer_id)


@router.post("/customers/{customer_id}/attributes")
async def customer_attribute(request: Request, customer_id: str) -> Response:
    """Set or clear one customer's attribute value (operators). 设置顾客画像属性。"""
    form = await request.form()
    page = page_context(
        request, role="operator", csrf=str(form.get("csrf_token", "")), check_csrf=True
    )
    if isinstance(page, Response):
        return page
    clear = form.get("action") == "clear"
    try:
        key = str(form.get("key", ""))
        if not key:
            raise InputError(
                "choose an attribute", code="attribute.not_found", message_zh="请选择属性",
                details={"field": "key"},
            )  # fmt: skip
        change_attribute(
            page.ctx.store, page.ctx.settings, Target(customer_ids=[customer_id]), key,
            None if clear else str(form.get("value", "")), actor=page.session.user.name,
            now=now_of(page.ctx), client=client_of(request),
        )  # fmt: skip
    except HuitoukeError as exc:
        return _profile_fragment(
            request, page.session, customer_id, status=_status(exc), error=exc.localized(page.lang)
        )
    return _after_customer_change(request, page.session, customer_id)
