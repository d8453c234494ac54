"""The console's loyalty section (会员忠诚度): what the program owes, how much of it is used,
members per tier; coupons issued in batch; ledger corrections with their audit trail.

Routes (HTML, not in the OpenAPI schema):

- ``GET /loyalty`` (read): liabilities, redemption rates of a period (``?start=&end=``,
  local days, inclusive), the tier mix — :meth:`LoyaltyService.summary`, the function of
  ``GET /v1/loyalty/summary`` and ``huitouke loyalty summary``; ``GET /loyalty/redemption``
  the period's part, which the period form reloads with htmx;
- ``GET /loyalty/coupons`` (operator): the batch form; ``POST /loyalty/coupons/check``:
  the list checked, problems named by line, the confirm step with the count;
  ``POST /loyalty/coupons/issue``: issue (:func:`huitouke.app.coupon_batch.
  issue_coupon_batch`, idempotent by the batch key the check step made);
- ``GET /loyalty/corrections``, ``POST /loyalty/corrections`` (admin): adjust points or a
  stored-value balance with a reason (the use cases of the REST API), the audit trail.

The program editor (``/loyalty/program``) is :mod:`huitouke.service.console.loyalty_program`.
"""

from __future__ import annotations

import json
import secrets
from datetime import date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import Response
from sqlalchemy import Connection

from huitouke.errors import HuitoukeError, InputError, NotFoundError
from huitouke.i18n import fmt_money, fmt_number, fmt_pct
from huitouke.service.apikeys import scope_allows
from huitouke.service.console.kit import (
    N_,
    gettext_for,
    lang_of,
    local_time,
    page_context,
    render,
    request_ctx,
)
from huitouke.service.sessions import Session
from huitouke.store.uow import run_read, run_write

__all__ = ["router"]

router = APIRouter(include_in_schema=False)

#: the longest period the page reads at once, and the default one (local days)
MAX_DAYS = 3660
DEFAULT_DAYS = 30
#: the largest list file a batch accepts
MAX_UPLOAD = 2 * 1024 * 1024

#: texts chosen by value: problem kinds of a batch, balances a correction changes
CHOSEN = (
    N_("unknown"), N_("duplicate"), N_("limit_reached"), N_("invalid"),
    N_("points"), N_("stored_paid"), N_("stored_bonus"), N_("day"),
)  # fmt: skip


# -- the summary ------------------------------------------------------------------------------


def _period(ctx: Any, start: str | None, end: str | None) -> tuple[date, date, str | None]:
    """The chosen local days (inclusive) and a problem to show, if any; default: the last
    30 days up to today in the merchant's zone."""
    today = ctx.clock().astimezone(ctx.settings.zone).date()
    problem = None
    try:
        hi = date.fromisoformat(end) if end else today
        lo = date.fromisoformat(start) if start else hi - timedelta(days=DEFAULT_DAYS - 1)
    except ValueError:
        return today - timedelta(days=DEFAULT_DAYS - 1), today, N_("Dates are YYYY-MM-DD.")
    if lo > hi:
        lo, hi = hi, lo
        problem = N_("The start was after the end: the two were swapped.")
    if (hi - lo).days + 1 > MAX_DAYS:
        lo = hi - timedelta(days=MAX_DAYS - 1)
        problem = N_("At most ten years at once: the start was moved.")
    return lo, hi, problem


def _instants(ctx: Any, lo: date, hi: date) -> tuple[datetime, datetime]:
    zone = ctx.settings.zone
    return (
        datetime.combine(lo, time(0), tzinfo=zone),
        datetime.combine(hi + timedelta(days=1), time(0), tzinfo=zone),
    )


def _summary_values(
    request: Request,
    session: Session,
    start: str | None,
    end: str | None,
    *,
    redemption_only: bool = False,
) -> dict[str, Any]:
    """The page's values; ``redemption_only``: the period's part alone (the htmx reload),
    without reading the liabilities and tiers again."""
    from huitouke.service.programs import loyalty_service

    ctx = request_ctx(request)
    lang = lang_of(request, session)
    gettext = gettext_for(lang)
    lo, hi, problem = _period(ctx, start, end)
    t0, t1 = _instants(ctx, lo, hi)
    now = ctx.clock()

    def read(conn: Connection) -> tuple[dict[str, Any], dict[str, Any]]:
        # from the loyalty_summary snapshot when there is one (huitouke.app.loyalty_summary)
        from huitouke.app.snapshots import loyalty_summary_view

        return loyalty_summary_view(
            conn, loyalty_service(conn, ctx), ctx.settings.timezone, as_of=now, lo=lo, hi=hi,
            start=t0, end=t1, redemption_only=redemption_only,
        )  # fmt: skip

    data, source = run_read(ctx.store, read)
    red = data["redemption"]
    currency = "" if redemption_only else data["liabilities"]["currency"]
    liab = data["liabilities"]

    def money(v: str | None) -> str:
        return "—" if v is None else fmt_money(Decimal(v), currency, lang)

    def count(v: str | int | None) -> str:
        return (
            "—"
            if v is None
            else fmt_number(Decimal(str(v)), lang, 0 if float(v) == int(float(v)) else 2)
        )

    tiers = [
        {**row, "label": row["name"] if row["tier"] is not None else gettext("No tier")}
        for row in data["tiers"]
    ]
    tier_chart = {
        "animation": False,
        "tooltip": {"trigger": "axis"},
        "grid": {"left": 48, "right": 24, "top": 24, "bottom": 40, "containLabel": True},
        "xAxis": {"type": "category", "data": [r["label"] for r in tiers]},
        "yAxis": {"type": "value", "name": gettext("Members"), "minInterval": 1},
        "series": [
            {
                "name": gettext("Members"),
                "type": "bar",
                "label": {"show": True, "position": "top"},
                "data": [r["members"] for r in tiers],
            }
        ],
    }
    return {
        "summary": data,
        "liab": liab,
        "red": red,
        "tiers": tiers,
        "members_total": sum(r["members"] for r in tiers),
        "currency": currency,
        "money": money,
        "count": count,
        "pct": lambda v: fmt_pct(v, lang, 1),
        "start": lo.isoformat(),
        "end": hi.isoformat(),
        "period_problem": problem,
        "timezone": ctx.settings.timezone,
        "redemption_chart": json.dumps(_redemption_chart(red, gettext), ensure_ascii=False),
        "tier_chart": json.dumps(tier_chart, ensure_ascii=False),
        "snapshot": {
            "state": "live" if source["live"] else ("stale" if source["stale"] else "fresh"),
            "computed_at": local_time(ctx, source.get("computed_at")),
        },
        "can_refresh": scope_allows(session.user.role, "operator"),
    }


def _redemption_chart(red: dict[str, Any], gettext: Any) -> dict[str, Any]:
    rates = [red["coupons"]["rate"], red["points"]["rate"]]
    return {
        "animation": False,
        "tooltip": {"trigger": "axis"},
        "grid": {"left": 48, "right": 24, "top": 24, "bottom": 40, "containLabel": True},
        "xAxis": {"type": "category", "data": [gettext("Coupons"), gettext("Points")]},
        "yAxis": {"type": "value", "axisLabel": {"formatter": "{value}%"}},
        "series": [
            {
                "name": gettext("Redemption rate"),
                "type": "bar",
                "label": {"show": True, "position": "top", "formatter": "{c}%"},
                "data": [None if r is None else round(r * 100, 1) for r in rates],
            }
        ],
    }


@router.get("/loyalty")
def loyalty_page(request: Request, start: str | None = None, end: str | None = None) -> Response:
    """Liabilities, redemption rates, tier mix. 会员忠诚度概览。"""
    page = page_context(request)
    if isinstance(page, Response):
        return page
    try:
        values = _summary_values(request, page.session, start, end)
    except HuitoukeError as exc:
        return page.refuse(exc)
    return page.render("loyalty.html", **values)


@router.get("/loyalty/redemption")
def loyalty_redemption(
    request: Request, start: str | None = None, end: str | None = None
) -> Response:
    """The redemption rates of a period (what the period form reloads with htmx)."""
    page = page_context(request)
    if isinstance(page, Response):
        return page
    try:
        values = _summary_values(request, page.session, start, end, redemption_only=True)
    except HuitoukeError as exc:
        return page.refuse(exc)
    return page.render("_loyalty_redemption.html", **values)


# -- coupons in batch -------------------------------------------------------------------------


def _templates(request: Request) -> list[dict[str, Any]]:
    from huitouke.service.programs import loyalty_service

    ctx = request_ctx(request)
    program = run_read(ctx.store, lambda conn: loyalty_service(conn, ctx).program)
    return [
        {"id": tpl.id, "name": tpl.name or tpl.id, "kind": tpl.kind, "limit": tpl.max_per_customer}
        for tpl in program.coupon_templates
    ]


def _coupons_page(
    request: Request, session: Session, *, status: int = 200, **values: Any
) -> Response:
    lang = lang_of(request, session)
    base: dict[str, Any] = {
        "templates": _templates(request),
        "step": "form",
        "template_id": "",
        "customers_text": "",
        "error": None,
        "check": None,
        "result": None,
        "batch_key": "",
        "count": lambda v: fmt_number(v, lang, 0),
    }
    base.update(values)
    return render(request, "loyalty_coupons.html", lang, session=session, status=status, **base)


async def _list_text(customers: str, upload: UploadFile | None) -> str:
    if upload is None or not upload.filename:
        return customers
    raw = await upload.read(MAX_UPLOAD + 1)
    if len(raw) > MAX_UPLOAD:
        raise InputError(
            "file: larger than 2 MB",
            code="input.invalid",
            message_zh="文件超过 2 MB",
            details={"field": "file"},
        )
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise InputError(  # pragma: no cover - gb18030 decodes every byte string
        "file: not UTF-8 or GB18030 text", code="input.invalid", details={"field": "file"}
    )


@router.get("/loyalty/coupons")
def coupons_form(request: Request) -> Response:
    """Issue coupons in batch: the form (operators). 批量发券。"""
    page = page_context(request, role="operator")
    if isinstance(page, Response):
        return page
    return _coupons_page(request, page.session)


@router.post("/loyalty/coupons/check")
async def coupons_check(
    request: Request,
    template: str = Form(""),
    customers: str = Form(""),
    file: UploadFile | None = File(None),
    csrf_token: str = Form(""),
) -> Response:
    """Check a batch: every line a known customer who may receive one more; the confirm
    step with the count. Nothing is issued. 校验发券名单。"""
    from huitouke.app.coupon_batch import check_coupon_batch, parse_customer_list
    from huitouke.service.programs import loyalty_service

    page = page_context(request, role="operator", csrf=csrf_token, check_csrf=True)
    if isinstance(page, Response):
        return page
    try:
        text = await _list_text(customers, file)
        entries = parse_customer_list(text)
        check = run_read(
            page.ctx.store,
            lambda conn: check_coupon_batch(
                loyalty_service(conn, page.ctx), conn, template, entries
            ),
        )
    except HuitoukeError as exc:
        return _coupons_page(
            request, page.session, status=exc.http_status, error=exc.localized(page.lang),
            template_id=template, customers_text=customers,
        )  # fmt: skip
    return _coupons_page(
        request, page.session, status=200 if check.ok else 422, step="confirm",
        template_id=template,
        customers_text="\n".join(check.customers) if check.ok else text, check=check,
        batch_key=secrets.token_hex(16),
    )  # fmt: skip


@router.post("/loyalty/coupons/issue")
def coupons_issue(
    request: Request,
    template: str = Form(""),
    customers: str = Form(""),
    batch_key: str = Form(""),
    csrf_token: str = Form(""),
) -> Response:
    """Issue a checked batch, once however often it is sent (the batch key). 确认发券。"""
    from huitouke.app.coupon_batch import issue_coupon_batch, parse_customer_list
    from huitouke.service.programs import loyalty_service

    page = page_context(request, role="operator", csrf=csrf_token, check_csrf=True)
    if isinstance(page, Response):
        return page
    gettext = page.gettext
    if not batch_key or len(batch_key) > 64 or not batch_key.isalnum():
        return _coupons_page(
            request, page.session, status=422, error=gettext("Check the list first."),
            template_id=template, customers_text=customers,
        )  # fmt: skip
    entries = parse_customer_list(customers)

    def issue(conn: Connection) -> dict[str, Any]:
        svc = loyalty_service(conn, page.ctx)
        return issue_coupon_batch(svc, conn, template, entries, batch_key=f"console-{batch_key}")

    try:
        result = run_write(page.ctx.store, issue)
    except HuitoukeError as exc:
        return _coupons_page(
            request, page.session, status=exc.http_status, error=exc.localized(page.lang),
            template_id=template, customers_text=customers,
        )  # fmt: skip
    from huitouke.app.tasks import refresh_later

    refresh_later(page.ctx.store, page.ctx.settings, "loyalty_summary", by=page.session.user.name)
    return _coupons_page(request, page.session, step="done", template_id=template, result=result)


# -- ledger corrections -----------------------------------------------------------------------

#: the balances a correction may change: form value → the use case and its balance
TARGETS = {"points": "points", "paid": "stored_paid", "bonus": "stored_bonus"}


def _corrections_page(
    request: Request, session: Session, *, status: int = 200, **values: Any
) -> Response:
    from huitouke.service.programs import loyalty_service

    ctx = request_ctx(request)
    lang = lang_of(request, session)
    rows = run_read(ctx.store, lambda conn: loyalty_service(conn, ctx).corrections(conn, limit=100))
    for row in rows:
        row["when"] = (
            datetime.fromisoformat(row["at"])
            .astimezone(ctx.settings.zone)
            .strftime("%Y-%m-%d %H:%M")
        )
    base: dict[str, Any] = {
        "audit": rows,
        "error": None,
        "done": None,
        "form": {"customer_id": "", "target": "points", "delta": "", "reason": ""},
        "key": secrets.token_hex(16),
        "timezone": ctx.settings.timezone,
    }
    base.update(values)
    return render(request, "loyalty_corrections.html", lang, session=session, status=status, **base)


@router.get("/loyalty/corrections")
def corrections_page(request: Request) -> Response:
    """Ledger corrections and their audit trail (admins). 账户调整与审计(仅管理员)。"""
    page = page_context(request, role="admin")
    if isinstance(page, Response):
        return page
    return _corrections_page(request, page.session)


def _delta(value: str) -> Decimal:
    try:
        d = Decimal(value.strip().replace(",", ""))
        if not d.is_finite() or abs(d) >= Decimal(10) ** 12:
            raise InvalidOperation
    except InvalidOperation:
        raise InputError(
            f"delta: not a number: {value[:40]!r}",
            code="input.invalid",
            message_zh=f"调整数量不是有效的数字:{value[:40]!r}",
            details={"field": "delta"},
        ) from None
    return d


@router.post("/loyalty/corrections")
def corrections_submit(
    request: Request,
    customer_id: str = Form(""),
    target: str = Form("points"),
    delta: str = Form(""),
    reason: str = Form(""),
    key: str = Form(""),
    csrf_token: str = Form(""),
) -> Response:
    """Adjust points or a stored-value balance with a reason (admins); recorded in the
    ledger and the audit trail; never below zero. 调整积分或储值(须注明原因)。"""
    from huitouke.app.coupon_batch import known_customers
    from huitouke.service.programs import loyalty_service

    page = page_context(request, role="admin", csrf=csrf_token, check_csrf=True)
    if isinstance(page, Response):
        return page
    gettext = page.gettext
    cid, why = customer_id.strip(), " ".join(reason.split())
    form = {"customer_id": cid, "target": target, "delta": delta, "reason": reason}

    def refuse(status: int, message: str) -> Response:
        return _corrections_page(
            request,
            page.session,
            status=status,
            error=message,
            form=form,
            key=key or secrets.token_hex(16),
        )

    if target not in TARGETS:
        return refuse(422, gettext("Choose points, paid stored value or bonus stored value."))
    if not why:
        return refuse(422, gettext("A reason is required."))
    if len(why) > 200:
        return refuse(422, gettext("The reason is longer than 200 characters."))
    if not key or len(key) > 64 or not key.isalnum():
        return refuse(422, gettext("Open the form again: it has no key."))
    actor = f"console:{page.session.user.name}"

    def adjust(conn: Connection) -> dict[str, Any]:
        if not known_customers(conn, [cid]):
            raise NotFoundError(
                f"no customer {cid!r}",
                code="customer.not_found",
                message_zh=f"没有这位顾客:{cid!r}",
                details={"customer_id": cid},
            )
        svc = loyalty_service(conn, page.ctx)
        idem = f"console-{key}"
        if target == "points":
            return svc.adjust_points(
                conn, cid, _delta(delta), reason=why, idempotency_key=idem, actor=actor
            )
        return svc.adjust_stored_value(
            conn, cid, _delta(delta), balance=target, reason=why, idempotency_key=idem,
            actor=actor,
        )  # fmt: skip

    try:
        result = run_write(page.ctx.store, adjust)
    except HuitoukeError as exc:
        return refuse(exc.http_status, exc.localized(page.lang))
    return _corrections_page(request, page.session, done={**result, "target": target})
