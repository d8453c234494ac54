"""The console's segments (分群) and what reads the customer facts snapshot: customer
filters and export, a customer's predictions, messages and consent history.

Routes (HTML/CSV, none in the OpenAPI schema):

- ``GET /segments``: RFM segments, seed layers and lifecycle stages with customers,
  revenue and shares, from the snapshot (:mod:`huitouke.app.customer_facts`); from each
  segment: issue coupons, start a journey (``/journeys/new?segment=<kind>:<name>``), its
  call-back list, its customers;
- ``POST /segments/refresh`` (operator): recompute the snapshot now;
- ``GET /segments/{kind}/{name}/coupons`` (operator): the confirm step (members, template);
  ``POST`` the same path: issue them — idempotent by the form's batch key;
- ``GET /segments/{kind}/{name}/callback.csv``: name, phone, last order, segment (masked
  for read users);
- ``GET /customers.csv``: the customers page's filtered list (masked for read users).
分群页、顾客筛选与导出。"""

from __future__ import annotations

import csv
import io
import json
import secrets
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from huitouke.errors import HuitoukeError
from huitouke.i18n import fmt_date, fmt_money, fmt_number, fmt_pct, t
from huitouke.service.apikeys import scope_allows
from huitouke.service.console.kit import (
    N_,
    error_page,
    gettext_for,
    lang_of,
    local_time,
    masked,
    page_context,
    render,
    request_ctx,
    secure_headers,
)
from huitouke.service.context import ServiceContext
from huitouke.service.sessions import Session
from huitouke.store.uow import run_read

__all__ = ["customer_extras", "filtered_customers", "router"]

router = APIRouter(include_in_schema=False)

#: customers per page of the filtered list
PAGE_SIZE = 50
#: matches counted at most (a page shows "10,000+" beyond: counting half a million matches
#: of the snapshot on every page view costs a second on a million customers)
COUNT_LIMIT = 10_000
KIND_TITLES = {"rfm": N_("RFM segments"), "layer": N_("Layers"), "lifecycle": N_("Lifecycle")}


def segment_label(kind: str, name: str, lang: str) -> str:
    return t(f"analytics.{kind}.{name}", lang)


def snapshot_state(ctx: ServiceContext, meta: dict[str, Any] | None, lang: str) -> dict[str, Any]:
    """What every snapshot page shows of the run: when, as of which day, how many."""
    if meta is None:
        return {"exists": False}
    return {
        "exists": True,
        "computed_at": local_time(ctx, meta["computed_at"]),
        "as_of": fmt_date(meta["as_of"], lang),
        "customers": fmt_number(meta["customers"], lang, 0),
        "timezone": ctx.settings.timezone,
    }


# -- segments --------------------------------------------------------------------------------------


def _segments_values(request: Request, session: Session, lang: str) -> dict[str, Any]:
    from huitouke.app.customer_facts import snapshot_meta, stored_segment_summary

    ctx = request_ctx(request)

    def read(conn: Any) -> tuple[dict[str, Any] | None, dict[str, Any]]:
        meta = snapshot_meta(conn)
        return meta, stored_segment_summary(conn, meta)

    meta, summary = run_read(ctx.store, read)
    currency = (meta or {}).get("currency") or ctx.settings.currency
    gettext = gettext_for(lang)
    kinds = []
    for kind in ("rfm", "layer", "lifecycle"):
        rows = [
            {
                **r,
                "label": segment_label(kind, r["name"], lang),
                "customers_shown": fmt_number(r["customers"], lang, 0),
                "share_shown": fmt_pct(r["share"], lang, 1),
                "revenue_shown": fmt_money(r["revenue"], currency, lang),
                "revenue_share_shown": fmt_pct(r["revenue_share"], lang, 1),
            }
            for r in summary[kind]
        ]
        option = {
            "animation": False,
            "tooltip": {"trigger": "axis"},
            "grid": {"left": 48, "right": 16, "top": 24, "bottom": 90},
            "xAxis": {
                "type": "category",
                "data": [r["label"] for r in rows],
                "axisLabel": {"rotate": 40, "interval": 0},
            },
            "yAxis": {"type": "value", "name": gettext("Customers")},
            "series": [
                {
                    "name": gettext("Customers"),
                    "type": "bar",
                    "data": [r["customers"] for r in rows],
                }
            ],
        }
        kinds.append(
            {
                "kind": kind,
                "title": gettext(KIND_TITLES[kind]),
                "rows": rows,
                "chart": json.dumps(option, ensure_ascii=False),
            }
        )
    return {
        "snapshot": snapshot_state(ctx, meta, lang),
        "kinds": kinds if meta is not None else [],
        "can_act": scope_allows(session.user.role, "operator"),
    }


@router.get("/segments")
def segments_page(request: Request) -> Response:
    """Segments, layers and lifecycle with counts and value. 分群。"""
    page = page_context(request)
    if isinstance(page, Response):
        return page
    values = _segments_values(request, page.session, page.lang)
    return page.render("segments.html", **values)


@router.post("/segments/refresh")
def segments_refresh(
    request: Request, csrf_token: str = Form(""), next: str = Form("/segments")
) -> Response:
    """Recompute the customer facts snapshot now (operators), through the snapshot use
    case, as a background task whose progress page returns here when done. 立即重算快照。"""
    from urllib.parse import quote

    from huitouke.service.console.tasks_page import start_task

    page = page_context(request, role="operator", csrf=csrf_token, check_csrf=True)
    if isinstance(page, Response):
        return page
    target = next if next in ("/segments", "/predictions", "/customers") else "/segments"
    task = start_task(
        request, page.session, "snapshots.refresh", {"kinds": ["customer_facts"]},
        key="snapshots.refresh", next_path=target,
    )  # fmt: skip
    if isinstance(task, Response):
        return task
    location = f"/tasks/{task.task_id}?next={quote(target, safe='/')}"
    return secure_headers(RedirectResponse(location, status_code=303))


def _segment(request: Request, session: Session, kind: str, name: str) -> Any:
    from huitouke.app.customer_facts import SegmentRef

    try:
        return SegmentRef.parse(kind, name)
    except HuitoukeError as exc:
        return error_page(request, session, 404, exc.localized(lang_of(request, session)))


def _coupon_page(
    request: Request, session: Session, segment: Any, *, task: Any = None,
    error: str | None = None, status: int = 200,
) -> Response:  # fmt: skip
    from huitouke.app.customer_facts import segment_members
    from huitouke.service.console.tasks_page import task_values
    from huitouke.service.programs import loyalty_service

    ctx = request_ctx(request)
    lang = lang_of(request, session)

    def read(conn: Any) -> tuple[int, list[Any]]:
        members = len(segment_members(conn, segment))
        templates = list(loyalty_service(conn, ctx).program.coupon_templates)
        return members, templates

    members, templates = run_read(ctx.store, read)
    values = task_values(request, task, lang) if task is not None else {"task": None}
    return render(
        request, "segment_coupons.html", lang, session=session, status=status,
        kind=segment.kind, name=segment.name, label=segment_label(segment.kind, segment.name, lang),
        members=members, members_shown=fmt_number(members, lang, 0), templates=templates,
        batch=secrets.token_hex(12), error=error, **values,
    )  # fmt: skip


@router.get("/segments/{kind}/{name}/coupons")
def segment_coupons_confirm(request: Request, kind: str, name: str) -> Response:
    """The confirm step of issuing coupons to a segment: how many, which template."""
    page = page_context(request, role="operator")
    if isinstance(page, Response):
        return page
    segment = _segment(request, page.session, kind, name)
    if isinstance(segment, Response):
        return segment
    return _coupon_page(request, page.session, segment)


@router.post("/segments/{kind}/{name}/coupons")
def segment_coupons_issue(
    request: Request,
    kind: str,
    name: str,
    template: str = Form(""),
    batch: str = Form(""),
    csrf_token: str = Form(""),
) -> Response:
    """Issue one coupon to every member (operators), as a background task whose progress
    the page polls; the same batch never issues twice, and a second issue to the same
    segment while one runs is refused (409)."""
    from huitouke.app.customer_facts import check_segment_batch
    from huitouke.app.tasks import get_task
    from huitouke.service.console.tasks_page import start_task
    from huitouke.service.programs import loyalty_service

    page = page_context(request, role="operator", csrf=csrf_token, check_csrf=True)
    if isinstance(page, Response):
        return page
    segment = _segment(request, page.session, kind, name)
    if isinstance(segment, Response):
        return segment
    try:  # what can be checked now is, so the page answers at once
        check_segment_batch(batch)
        run_read(
            page.ctx.store, lambda conn: loyalty_service(conn, page.ctx).program.template(template)
        )
    except HuitoukeError as exc:
        return _coupon_page(
            request, page.session, segment, error=exc.localized(page.lang), status=exc.http_status
        )
    params = {"kind": segment.kind, "name": segment.name, "template": template, "batch": batch}
    task = start_task(
        request, page.session, "segment.coupons", params,
        key=f"segment.coupons:{segment.kind}:{segment.name}",
    )  # fmt: skip
    if isinstance(task, Response):
        return task
    return _coupon_page(request, page.session, segment, task=get_task(page.ctx.store, task.task_id))


# -- CSV -------------------------------------------------------------------------------------------


def _csv(rows: Iterable[list[Any]], header: list[str], filename: str) -> Response:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(header)
    for row in rows:
        w.writerow(["" if v is None else v for v in row])
    response = Response(
        "\ufeff" + buf.getvalue(),  # a BOM, so spreadsheet programs read UTF-8
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
    return secure_headers(response)


def _local_day(ctx: ServiceContext, value: datetime | None) -> str:
    return "" if value is None else value.astimezone(ctx.settings.zone).date().isoformat()


@router.get("/segments/{kind}/{name}/callback.csv")
def segment_callback_list(request: Request, kind: str, name: str) -> Response:
    """A segment's call-back list: customer, name, phone, last order, segment (masked for
    read users). 回访名单。"""
    from huitouke.app.customer_facts import segment_members

    page = page_context(request)
    if isinstance(page, Response):
        return page
    segment = _segment(request, page.session, kind, name)
    if isinstance(segment, Response):
        return segment
    gettext = page.gettext
    members = run_read(page.ctx.store, lambda c: segment_members(c, segment))
    label = segment_label(kind, name, page.lang)
    rows = (
        [m["customer_id"], m["name"], m["phone"], _local_day(page.ctx, m["last_order_at"]), label]
        for m in (masked(r, page.session) for r in members)
    )
    header = [gettext("Customer"), gettext("Name"), gettext("Phone"), gettext("Last order"),
              gettext("Segment")]  # fmt: skip
    return _csv(rows, header, f"callback-{kind}-{name}.csv")


# -- customers: filters, export, a customer's extras -------------------------------------------------


def filtered_customers(
    request: Request, session: Session, lang: str, raw: dict[str, str], page: int
) -> dict[str, Any]:
    """The customers page's values when filters are set: a page of the snapshot's matches
    (names, phones, e-mails masked for read users), their count and the pager."""
    from huitouke.app.customer_facts import FactsFilter, find_customers, snapshot_meta

    ctx = request_ctx(request)
    f = FactsFilter.parse(raw)
    page = max(page, 1)

    def read(conn: Any) -> tuple[Any, list[dict[str, Any]], int]:
        rows, total = find_customers(
            conn, f, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE, count_limit=COUNT_LIMIT
        )
        return snapshot_meta(conn), rows, total

    meta, rows, total = run_read(ctx.store, read)
    currency = (meta or {}).get("currency") or ctx.settings.currency
    shown = [_listed(ctx, masked(r, session), lang, currency) for r in rows]
    capped = total > COUNT_LIMIT
    total = min(total, COUNT_LIMIT)
    pages = max(1, -(-total // PAGE_SIZE))
    return {
        "customers": shown,
        "total": total,
        "total_shown": fmt_number(total, lang, 0) + ("+" if capped else ""),
        "page": page,
        "pages": pages,
        "snapshot": snapshot_state(ctx, meta, lang),
        "filter_args": f.args,
    }


def _listed(ctx: ServiceContext, r: dict[str, Any], lang: str, currency: str) -> dict[str, Any]:
    return {
        **r,
        "last_order": local_time(ctx, r["last_order_at"]),
        "revenue_shown": fmt_money(r["revenue"], currency, lang),
        "segment_shown": segment_label("rfm", r["rfm_segment"], lang),
        "layer_shown": segment_label("layer", r["layer"], lang),
        "lifecycle_shown": segment_label("lifecycle", r["lifecycle"], lang),
        "p_alive_shown": fmt_pct(r["p_alive"], lang, 0),
        "next_shown": r["next_order_date"].isoformat() if r["next_order_date"] else "—",
    }


def filter_choices(request: Request, lang: str) -> dict[str, Any]:
    """The filters' choices: segment names in the page's language and the tiers in use."""
    from huitouke.app.customer_facts import SEGMENT_KINDS, tiers_in_use

    ctx = request_ctx(request)
    return {
        "choices": {
            kind: [(n, segment_label(kind, n, lang)) for n in names]
            for kind, (_col, names) in SEGMENT_KINDS.items()
        },
        "tiers": run_read(ctx.store, tiers_in_use),
    }


@router.get("/customers.csv")
def customers_export(request: Request) -> Response:
    """The filtered customers as CSV (masked for read users, as on the page). 导出顾客。"""
    from huitouke.app.customer_facts import FactsFilter, find_customers, snapshot_meta

    page = page_context(request)
    if isinstance(page, Response):
        return page
    gettext = page.gettext
    try:
        f = FactsFilter.parse(dict(request.query_params))
    except HuitoukeError as exc:
        return page.refuse(exc)
    meta, (rows, _total) = run_read(
        page.ctx.store, lambda c: (snapshot_meta(c), find_customers(c, f, limit=None))
    )
    if meta is None:
        return page.error(409, gettext("No snapshot has been computed yet."))
    header = [gettext(h) for h in (
        N_("Customer"), N_("Name"), N_("Phone"), N_("E-mail"), N_("Orders"), N_("Revenue"),
        N_("Last order"), N_("RFM segment"), N_("Layer"), N_("Lifecycle"), N_("Tier"),
        N_("P(alive)"), N_("CLV"), N_("Next expected order"),
    )]  # fmt: skip
    out = (
        [
            r["customer_id"], r["name"], r["phone"], r["email"], r["orders"], r["revenue"],
            _local_day(page.ctx, r["last_order_at"]), r["rfm_segment"], r["layer"], r["lifecycle"],
            r["tier"], None if r["p_alive"] is None else round(r["p_alive"], 4), r["clv"],
            r["next_order_date"].isoformat() if r["next_order_date"] else None,
        ]
        for r in (masked(x, page.session) for x in rows)
    )  # fmt: skip
    return _csv(out, header, "customers.csv")


def customer_extras(request: Request, conn: Any, customer_id: str, lang: str) -> dict[str, Any]:
    """A customer's predictions (from the snapshot), messages received (the outbox) and
    consent history (the consent events), read in the page's unit of work."""
    from huitouke.app.customer_facts import customer_facts_of, snapshot_meta
    from huitouke.messaging.consent import consent_history
    from huitouke.messaging.outbox import list_messages

    ctx = request_ctx(request)
    facts = customer_facts_of(conn, customer_id)
    meta = snapshot_meta(conn)
    currency = (meta or {}).get("currency") or ctx.settings.currency
    prediction = None
    if facts is not None:
        prediction = {
            "model": facts["model"],
            "p_alive": fmt_pct(facts["p_alive"], lang, 0),
            "expected_orders": "—"
            if facts["expected_orders"] is None
            else fmt_number(facts["expected_orders"], lang, 2),
            "clv": "—" if facts["clv"] is None else fmt_money(facts["clv"], currency, lang),
            "next": facts["next_order_date"].isoformat() if facts["next_order_date"] else "—",
            "low": facts["next_order_low"].isoformat() if facts["next_order_low"] else None,
            "high": facts["next_order_high"].isoformat() if facts["next_order_high"] else None,
            "source": facts["next_order_source"],
            "segment": segment_label("rfm", facts["rfm_segment"], lang),
            "layer": segment_label("layer", facts["layer"], lang),
            "lifecycle": segment_label("lifecycle", facts["lifecycle"], lang),
        }
    messages = [
        {
            **m,
            "when": local_time(ctx, datetime.fromisoformat(m["sent_at"] or m["planned_at"])),
        }
        for m in list_messages(conn, customer_id=customer_id, limit=50)
    ]
    consent = [
        {**e, "when": local_time(ctx, e["occurred_at"])}
        for e in consent_history(conn, customer_id, limit=100)
    ]
    return {
        "prediction": prediction,
        "snapshot": snapshot_state(ctx, meta, lang),
        "messages": messages,
        "consent_history": consent,
    }
