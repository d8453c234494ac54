"""The merchant console: server-rendered pages on the service's FastAPI app.

Routes (all HTML, none in the OpenAPI schema):

- ``GET /login``, ``POST /login``: sign in (a login CSRF token in a cookie and the form);
  ``?next=`` returns to a local path only;
- ``POST /logout``: sign out;
- ``POST /lang``: the signed-in user's choice of language (also kept in a cookie);
- ``GET /``: the overview, read from its snapshot (``huitouke.app.snapshots``; the
  refresh button posts to ``/snapshots/refresh``, in console/snapshots.py);
  ``GET /overview/fragment``: its cards, charts and tables, which the period switch reloads
  with htmx;
- ``GET /customers`` (``?q=`` an id, phone, e-mail or name prefix; htmx reloads the rows as one
  types), ``GET /customers/{id}``: profile, orders and loyalty balances;
- ``GET /users``, ``POST /users``, ``POST /users/{name}/disable|enable``: the users, for
  admins;
- ``GET /static/console/{name}``: the console's stylesheet, script and the vendored
  htmx and ECharts (nothing comes from a CDN).

Every page and fragment needs a session: without one a page redirects to ``/login`` and an
htmx request is answered 401 with ``HX-Redirect``. Every request that changes something
(every non-GET route but ``POST /login``, which has its own token) must carry the
session's CSRF token, as the form field ``csrf_token`` or the ``X-CSRF-Token`` header that
htmx sends; without it: 403. A role lower than a route needs: 403. Pages are sent with
``Cache-Control: no-store`` and a Content-Security-Policy that allows scripts from the
console itself only.
"""

from __future__ import annotations

import hmac
import json
import secrets
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import FileResponse, RedirectResponse, Response

from huitouke.errors import HuitoukeError
from huitouke.i18n import fmt_date, fmt_money, fmt_number, fmt_pct, t
from huitouke.service import messages as _messages  # noqa: F401  (registers the texts)
from huitouke.service.apikeys import SCOPES
from huitouke.service.console.i18n import LANG_COOKIE, LOCALES, translations
from huitouke.service.console.kit import (
    CSRF_HEADER,
    LOGIN_CSRF_COOKIE,
    N_,
    PERIODS,
    SESSION_COOKIE,
    STATIC_FILES,
    client_of,
    current_session,
    is_htmx,
    lang_of,
    local_time,
    masked,
    now_of,
    page_context,
    render,
    request_ctx,
    safe_next,
    secure_cookie,
    secure_headers,
    session_policy,
)
from huitouke.service.sessions import (
    Session,
    sign_in,
    sign_out,
)
from huitouke.store.uow import run_read, run_write

__all__ = [
    "CSRF_HEADER",
    "LOGIN_CSRF_COOKIE",
    "SESSION_COOKIE",
    "STATIC_FILES",
    "router",
    "safe_next",
]

router = APIRouter(include_in_schema=False)

# -- static files --------------------------------------------------------------------------------


@router.get("/static/console/{name}")
def static_file(name: str) -> Response:
    """The console's own stylesheet and script and the vendored libraries (no CDN)."""
    entry = STATIC_FILES.get(name)
    if entry is None:
        return Response("not found", status_code=404, media_type="text/plain")
    path, media = entry
    response = FileResponse(path, media_type=media)
    response.headers["Cache-Control"] = "public, max-age=3600"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


# -- sign in and out -------------------------------------------------------------------------------


def _login_page(
    request: Request,
    *,
    next_path: str,
    lang: str,
    error: str | None = None,
    status: int = 200,
    name: str = "",
) -> Response:
    token = secrets.token_urlsafe(32)
    response = render(
        request,
        "login.html",
        lang,
        session=None,
        status=status,
        login_csrf=token,
        next_path=next_path,
        error=error,
        name=name,
    )
    response.set_cookie(
        LOGIN_CSRF_COOKIE,
        token,
        max_age=3600,
        path="/login",
        httponly=True,
        samesite="lax",
        secure=secure_cookie(request, request_ctx(request)),
    )
    return response


@router.get("/login")
def login_form(request: Request, next: str | None = None, lang: str | None = None) -> Response:
    """The sign-in page. 登录页。"""
    session = current_session(request)
    target = safe_next(next)
    if session is not None:
        return secure_headers(RedirectResponse(target, status_code=303))
    chosen = lang if lang in LOCALES else None
    page_lang = chosen or lang_of(request, None)
    response = _login_page(request, next_path=target, lang=page_lang)
    if chosen:
        response.set_cookie(
            LANG_COOKIE, chosen, max_age=365 * 86400, samesite="lax", httponly=True,
            secure=secure_cookie(request, request_ctx(request)),
        )  # fmt: skip
    return response


@router.post("/login")
def login_submit(
    request: Request,
    name: str = Form(""),
    password: str = Form(""),
    csrf_token: str = Form(""),
    next: str = Form("/"),
) -> Response:
    """Sign in: a new session (the old one, if any, ends). 登录。"""
    ctx = request_ctx(request)
    lang = lang_of(request, None)
    target = safe_next(next)
    cookie = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not cookie or not hmac.compare_digest(cookie.encode(), csrf_token.encode()):
        return _login_page(
            request, next_path=target, lang=lang, error=t("console.err.csrf", lang), status=403
        )
    result = sign_in(
        ctx.store,
        name=name.strip(),
        password=password,
        client=client_of(request),
        now=now_of(ctx),
        policy=session_policy(ctx),
        previous_session_id=request.cookies.get(SESSION_COOKIE),
    )
    if result.error is not None or result.session_id is None or result.session is None:
        error = result.error
        assert isinstance(error, HuitoukeError)
        return _login_page(
            request,
            next_path=target,
            lang=lang,
            error=error.localized(lang),
            status=error.http_status,
            name=name,
        )
    response = secure_headers(RedirectResponse(target, status_code=303))
    response.set_cookie(
        SESSION_COOKIE,
        result.session_id,
        max_age=ctx.settings.console_session_max_hours * 3600,
        path="/",
        httponly=True,
        samesite="lax",
        secure=secure_cookie(request, ctx),
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
    return response


@router.post("/logout")
def logout(request: Request, csrf_token: str = Form("")) -> Response:
    """Sign out: the session ends. 退出登录。"""
    page = page_context(request, csrf=csrf_token, check_csrf=True)
    if isinstance(page, Response):
        return page
    sign_out(page.ctx.store, page.session, client=client_of(request), now=now_of(page.ctx))
    response = secure_headers(RedirectResponse("/login", status_code=303))
    response.delete_cookie(SESSION_COOKIE, path="/")
    if is_htmx(request):
        response = secure_headers(Response(status_code=204, headers={"HX-Redirect": "/login"}))
        response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.post("/lang")
def choose_language(
    request: Request, lang: str = Form(...), csrf_token: str = Form(""), next: str = Form("/")
) -> Response:
    """The signed-in user's language (zh or en), kept with the user and in a cookie.
    选择界面语言。"""
    page = page_context(request, csrf=csrf_token, check_csrf=True)
    if isinstance(page, Response):
        return page
    if lang not in LOCALES:
        message = t("console.err.bad_lang", lang_of(request, page.session), lang=lang[:16])
        return page.error(422, message)
    from huitouke.service.users import set_lang

    run_write(page.ctx.store, lambda conn: set_lang(conn, page.session.user.name, lang))
    response = secure_headers(RedirectResponse(safe_next(next), status_code=303))
    response.set_cookie(
        LANG_COOKIE, lang, max_age=365 * 86400, samesite="lax", httponly=True,
        secure=secure_cookie(request, page.ctx),
    )  # fmt: skip
    return response


# -- the overview ----------------------------------------------------------------------------------


def _change_text(entry: dict[str, Any] | None, lang: str, field: str) -> dict[str, Any] | None:
    if not entry or entry.get(field) is None:
        return None
    change = float(entry[field])
    sign = "+" if change > 0 else ("−" if change < 0 else "±")
    if entry["change_kind"] == "points":
        text = f"{sign}{fmt_number(abs(change) * 100, lang, 1)} pp"
    else:
        text = f"{sign}{fmt_pct(abs(change), lang, 1)}"
    return {"text": text, "direction": "up" if change > 0 else ("down" if change < 0 else "flat")}


#: the overview's cards: the headline metric and the label's gettext id
CARDS: tuple[tuple[str, str], ...] = (
    ("in_period_repurchase_rate", N_("Repurchase rate")),
    ("buyback_rate", N_("Buy-back rate")),
    ("returning_buyer_share", N_("Returning buyer share")),
    ("aov", N_("Average order value")),
)


def _cards(data: dict[str, Any], lang: str, currency: str) -> list[dict[str, Any]]:
    head = data["metrics"]["headline"]
    cards = []
    for key, label in CARDS:
        entry = head["metrics"].get(key)
        period = head["buyback_period"] if key == "buyback_rate" else head["period"]
        value = None if entry is None else entry["value"]
        if value is None:
            shown = "—"
        elif key == "aov":
            shown = fmt_money(Decimal(str(value)), currency, lang)
        else:
            shown = fmt_pct(float(value), lang, 1)
        cards.append(
            {
                "key": key,
                "label": label,
                "value": value,
                "shown": shown,
                "period": period,
                "previous_period": head["buyback_previous_period"]
                if key == "buyback_rate"
                else head["previous_period"],
                "vs_previous": _change_text(entry, lang, "vs_previous"),
                "vs_year_ago": _change_text(entry, lang, "vs_year_ago"),
            }
        )
    return cards


def _chart_options(
    data: dict[str, Any], gettext: Callable[..., str], currency: str
) -> dict[str, Any]:
    periods = data["metrics"]["periods"]
    cats = [p["period"] if p["complete"] else f"{p['period']} *" for p in periods]

    def pct_series(key: str, name: str) -> dict[str, Any]:
        return {
            "name": name,
            "type": "line",
            "connectNulls": False,
            "data": [None if p[key] is None else round(p[key] * 100, 2) for p in periods],
        }

    incomplete = [c for c, p in zip(cats, periods, strict=True) if not p["complete"]]
    mark = (
        {"silent": True, "itemStyle": {"color": "rgba(0,0,0,0.06)"},
         "data": [[{"xAxis": incomplete[0]}, {"xAxis": incomplete[-1]}]]}
        if incomplete else None
    )  # fmt: skip
    rates_series = [
        pct_series("in_period_repurchase_rate", gettext("Repurchase rate")),
        pct_series("buyback_rate", gettext("Buy-back rate")),
        pct_series("returning_buyer_share", gettext("Returning buyer share")),
    ]
    if mark:
        rates_series[0]["markArea"] = mark
    grid = {"left": 48, "right": 48, "top": 40, "bottom": 56, "containLabel": True}
    legend = {"top": 0, "type": "scroll"}
    rates = {
        "animation": False,
        "tooltip": {"trigger": "axis"},
        "legend": legend,
        "grid": grid,
        "xAxis": {"type": "category", "data": cats},
        "yAxis": {"type": "value", "axisLabel": {"formatter": "{value}%"}},
        "dataZoom": [{"type": "inside"}],
        "series": rates_series,
    }
    buyers_series: list[dict[str, Any]] = [
        {
            "name": gettext("New buyers"),
            "type": "bar",
            "stack": "buyers",
            "data": [p["new_buyers"] for p in periods],
        },
        {
            "name": gettext("Returning buyers"),
            "type": "bar",
            "stack": "buyers",
            "data": [p["returning_buyers"] for p in periods],
        },
        {
            "name": gettext("Average order value"),
            "type": "line",
            "yAxisIndex": 1,
            "data": [p["aov"] for p in periods],
        },
    ]
    if mark:
        buyers_series[0]["markArea"] = mark
    buyers = {
        "animation": False,
        "tooltip": {"trigger": "axis"},
        "legend": legend,
        "grid": grid,
        "xAxis": {"type": "category", "data": cats},
        "yAxis": [
            {"type": "value", "name": gettext("Buyers")},
            {"type": "value", "name": currency, "splitLine": {"show": False}},
        ],
        "dataZoom": [{"type": "inside"}],
        "series": buyers_series,
    }
    ladder_rows = data["ladder"]
    ladder = {
        "animation": False,
        "tooltip": {"trigger": "axis"},
        "grid": grid,
        "xAxis": {
            "type": "category",
            "data": [f"{r['k']} → {r['k'] + 1}" for r in ladder_rows],
        },
        "yAxis": {"type": "value", "axisLabel": {"formatter": "{value}%"}, "max": 100},
        "series": [
            {
                "name": gettext("Share who buy again"),
                "type": "bar",
                "label": {"show": True, "position": "top", "formatter": "{c}%"},
                "data": [None if r["share"] is None else round(r["share"] * 100, 1)
                         for r in ladder_rows],
            }
        ],
    }  # fmt: skip
    return {"rates": rates, "buyers": buyers, "ladder": ladder}


def _overview_values(request: Request, session: Session, lang: str, period: str) -> dict[str, Any]:
    from huitouke.app.snapshots import overview_view
    from huitouke.service.apikeys import scope_allows

    ctx = request_ctx(request)
    s = ctx.settings
    # the overview's snapshot (huitouke.app.snapshots); computed live only when none exists
    view = overview_view(ctx.store, s, period)
    data = view.data
    currency = data["metrics"].get("currency") or s.currency
    tr = translations(lang)

    def gettext(message: str, **params: Any) -> str:
        text = tr.gettext(message)
        return text % params if params else text

    periods = data["metrics"]["periods"]
    last = periods[-1] if periods else None
    coverage = data["metrics"]["coverage_end"]
    cohort_rows = [
        {
            "label": label,
            "size": size,
            "cells": [
                None if v is None else {"shown": fmt_pct(v, lang, 0), "level": round(v, 3)}
                for v in row
            ],
        }
        for label, size, row in zip(
            data["cohorts"]["labels"], data["cohorts"]["size"], data["cohorts"]["share"],
            strict=True,
        )
    ]  # fmt: skip
    return {
        "data": data,
        "period": period,
        "periods_allowed": PERIODS,
        "cards": _cards(data, lang, currency),
        "headline": data["metrics"]["headline"],
        "coverage_end": fmt_date(datetime.fromisoformat(coverage).date(), lang)
        if coverage
        else None,
        "last_incomplete": None if last is None or last["complete"] else last["period"],
        "charts": {
            name: json.dumps(option, ensure_ascii=False)
            for name, option in _chart_options(data, gettext, currency).items()
        },
        "cohort_k": data["cohorts"]["k"],
        "cohort_rows": cohort_rows,
        "ladder": data["ladder"],
        "fmt_pct": lambda v: fmt_pct(v, lang, 1),
        "fmt_count": lambda v: fmt_number(v, lang, 0),
        "timezone": s.timezone,
        "currency": currency,
        "snapshot": {
            "state": "live" if view.live else ("stale" if view.stale else "fresh"),
            "computed_at": local_time(ctx, view.computed_at),
        },
        "can_refresh": scope_allows(session.user.role, "operator"),
    }


def _period(value: str | None) -> str:
    return value if value in PERIODS else "month"


@router.get("/")
def overview_page(request: Request, period: str | None = None) -> Response:
    """The overview: repurchase cards, trends, cohorts, ladder. 总览。"""
    page = page_context(request)
    if isinstance(page, Response):
        return page
    try:
        values = _overview_values(request, page.session, page.lang, _period(period))
    except HuitoukeError as exc:  # e.g. orders in several currencies: said on a page
        return page.refuse(exc)
    return page.render("overview.html", **values)


@router.get("/overview/fragment")
def overview_fragment(request: Request, period: str | None = None) -> Response:
    """The overview's cards, charts and tables for one period kind (htmx swaps it in)."""
    page = page_context(request)
    if isinstance(page, Response):
        return page
    try:
        values = _overview_values(request, page.session, page.lang, _period(period))
    except HuitoukeError as exc:
        return page.refuse(exc)
    return page.render("_overview_body.html", **values)


# -- users (admins) --------------------------------------------------------------------------------


def _users_page(
    request: Request, session: Session, *, status: int = 200, error: str | None = None,
    notice: str | None = None,
) -> Response:  # fmt: skip
    from huitouke.service.users import MIN_PASSWORD_LENGTH, list_users

    ctx = request_ctx(request)
    lang = lang_of(request, session)
    users = run_read(ctx.store, list_users)
    return render(
        request, "users.html", lang, session=session, status=status, users=users,
        roles=SCOPES, error=error, notice=notice, min_length=MIN_PASSWORD_LENGTH,
    )  # fmt: skip


@router.get("/users")
def users_page(request: Request) -> Response:
    """Console users (admins only). 控制台用户(仅管理员)。"""
    page = page_context(request, role="admin")
    if isinstance(page, Response):
        return page
    return _users_page(request, page.session)


@router.post("/users")
def users_create(
    request: Request,
    name: str = Form(""),
    role: str = Form("read"),
    password: str = Form(""),
    csrf_token: str = Form(""),
) -> Response:
    """Create a user (admins only). 新建用户。"""
    from huitouke.service.users import create_user

    page = page_context(request, role="admin", csrf=csrf_token, check_csrf=True)
    if isinstance(page, Response):
        return page
    try:
        run_write(
            page.ctx.store,
            lambda conn: create_user(
                conn,
                name=name.strip(),
                role=role,
                password=password,
                now=now_of(page.ctx),
                actor=page.session.user.name,
            ),
        )
    except HuitoukeError as exc:
        return _users_page(
            request, page.session, status=exc.http_status, error=exc.localized(page.lang)
        )
    return secure_headers(RedirectResponse("/users", status_code=303))


@router.post("/users/{name}/disable")
def users_disable(request: Request, name: str, csrf_token: str = Form("")) -> Response:
    """Disable a user; their sessions end (admins only). 停用用户。"""
    from huitouke.service.users import disable_user

    page = page_context(request, role="admin", csrf=csrf_token, check_csrf=True)
    if isinstance(page, Response):
        return page
    if name == page.session.user.name:
        return _users_page(
            request, page.session, status=409, error=t("console.err.self_disable", page.lang)
        )
    try:
        run_write(
            page.ctx.store,
            lambda conn: disable_user(
                conn, name, now=now_of(page.ctx), actor=page.session.user.name
            ),
        )
    except HuitoukeError as exc:
        return _users_page(
            request, page.session, status=exc.http_status, error=exc.localized(page.lang)
        )
    return secure_headers(RedirectResponse("/users", status_code=303))


@router.post("/users/{name}/enable")
def users_enable(request: Request, name: str, csrf_token: str = Form("")) -> Response:
    """Enable a user again (admins only). 重新启用用户。"""
    from huitouke.service.users import enable_user

    page = page_context(request, role="admin", csrf=csrf_token, check_csrf=True)
    if isinstance(page, Response):
        return page
    try:
        run_write(
            page.ctx.store,
            lambda conn: enable_user(
                conn, name, actor=page.session.user.name, now=now_of(page.ctx)
            ),
        )
    except HuitoukeError as exc:
        return _users_page(
            request, page.session, status=exc.http_status, error=exc.localized(page.lang)
        )
    return secure_headers(RedirectResponse("/users", status_code=303))


# -- customers -----------------------------------------------------------------------------------------


@router.get("/customers")
def customers_page(request: Request, q: str = "", page: int = 1) -> Response:
    """Customer search by id, phone, e-mail or name prefix; with filters (segment, layer,
    lifecycle, tier, P(alive), next expected order) the snapshot's matches, paged
    (``console.segments``). 顾客搜索与筛选。"""
    from huitouke.service.console.segments import filter_choices, filtered_customers
    from huitouke.service.customers import search_customers

    view = page_context(request)
    if isinstance(view, Response):
        return view
    query = q.strip()[:128]
    raw = dict(request.query_params)
    choices = {} if is_htmx(request) else filter_choices(request, view.lang)
    if any(raw.get(k) for k in raw if k not in ("q", "page")):
        try:
            filtered = filtered_customers(request, view.session, view.lang, raw, page)
        except HuitoukeError as exc:
            return view.refuse(exc)
        return view.render(
            "customers.html", q=query, customers=[], limit=50,
            fmt_count=lambda v: fmt_number(v, view.lang, 0), filtered=filtered,
            **(choices or filter_choices(request, view.lang)),
        )  # fmt: skip
    rows = run_read(view.ctx.store, lambda conn: search_customers(conn, query, limit=50))
    shown = [
        {**masked(r, view.session), "last_order": local_time(view.ctx, r["last_order_at"])}
        for r in rows
    ]
    template = "_customer_rows.html" if is_htmx(request) else "customers.html"
    return view.render(
        template, q=query, customers=shown, limit=50,
        fmt_count=lambda v: fmt_number(v, view.lang, 0), filtered=None, **choices,
    )  # fmt: skip


@router.get("/customers/{customer_id}")
def customer_page(request: Request, customer_id: str) -> Response:
    """One customer: profile, orders, loyalty balances. 顾客详情。"""
    from huitouke.errors import NotFoundError
    from huitouke.service.customers import customer_orders, get_customer
    from huitouke.service.programs import loyalty_service

    page = page_context(request)
    if isinstance(page, Response):
        return page

    from huitouke.service.console.segments import customer_extras

    def read(conn: Any) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any], Any]:
        profile = get_customer(conn, customer_id)
        orders = customer_orders(conn, customer_id, limit=100)
        loyalty = loyalty_service(conn, page.ctx).customer_loyalty(conn, customer_id)
        return profile, orders, loyalty, customer_extras(request, conn, customer_id, page.lang)

    try:
        profile, orders, loyalty, extras = run_read(page.ctx.store, read)
    except NotFoundError as exc:
        return page.error(404, exc.localized(page.lang))
    shown_orders = [
        {
            **o,
            "when": local_time(page.ctx, o["ordered_at"]),
            "amount_shown": fmt_money(o["amount"], o["currency"], page.lang),
            "refunded_shown": fmt_money(o["refunded_amount"], o["currency"], page.lang),
        }
        for o in orders
    ]
    return page.render(
        "customer.html", profile=masked(profile, page.session),
        orders=shown_orders, loyalty=loyalty, timezone=page.ctx.settings.timezone, **extras,
    )  # fmt: skip
