"""The console's Journeys pages: the journeys with their state, outbox counts and last run;
switching one on or off; writing a new one (also from a segment) or editing one in the
journey file format; its dry run (who is in, who is out and why, the rendered messages);
running it now; its outbox (failures and retry) and its results against the holdout group.

Every action goes through the use cases the REST API and the CLI use: the journey store
(:mod:`huitouke.journeys.repo`), the YAML loader with its line and field errors
(:func:`huitouke.journeys.loader.load_journey_text`, as ``huitouke journeys validate``),
:func:`huitouke.journeys.service.run_journeys` (through :mod:`huitouke.app.journey_runs`,
in a background task), messaging's
:func:`~huitouke.messaging.outbox.retry_messages` and
:func:`huitouke.journeys.results.journey_results` (the numbers of ``huitouke journeys
results``), read from the ``journey_results`` snapshot for the merchant's today
(:func:`huitouke.app.snapshots.journey_results_view`; live for another day or a store
with none yet).

Routes: ``GET /journeys``; ``GET /journeys/new`` (``?segment=rfm|layer|lifecycle:<name>``),
``POST /journeys/new``; ``POST /journeys/validate`` (htmx: the errors, nothing saved);
``GET /journeys/{id}``; ``GET|POST /journeys/{id}/edit``;
``POST /journeys/{id}/enable|disable``; ``POST /journeys/{id}/preview`` and ``POST
/journeys/{id}/run`` (background tasks, :mod:`huitouke.app.journey_runs`: both read every
customer's orders, and the run then refreshes the results snapshot);
``POST /journeys/{id}/outbox/retry``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

import yaml
from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import Connection, func, select

from huitouke.errors import HuitoukeError, InputError
from huitouke.i18n import fmt_money, fmt_number, fmt_pct
from huitouke.journeys.model import Journey
from huitouke.service.console.kit import (
    N_,
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
from huitouke.store.uow import run_read, run_write

__all__ = ["router"]

router = APIRouter(include_in_schema=False)

FAILED_STATUSES = ("failed", "dead")
#: texts the templates pick by value: outbox statuses, journey sources, groups
CHOSEN = (
    N_("queued"), N_("sending"), N_("sent"), N_("failed"), N_("dead"), N_("suppressed"),
    N_("builtin"), N_("api"), N_("file"), N_("treatment"), N_("holdout"), N_("planned"),
    N_("skipped"),
)  # fmt: skip


def _today(request: Request) -> date:
    ctx = request_ctx(request)
    return now_of(ctx).astimezone(ctx.settings.zone).date()


def _as_of(request: Request, value: str | None) -> date:
    if not value:
        return _today(request)
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise InputError(
            f"as_of {value!r} is not a date YYYY-MM-DD",
            code="input.bad_date",
            message_zh=f"as_of {value!r} 不是 YYYY-MM-DD 格式的日期",
            details={"field": "as_of"},
        ) from exc


def _last_runs(conn: Connection, journey_ids: Sequence[str]) -> dict[str, Any]:
    """Per journey of ``journey_ids``, the day of the latest real run that assigned customers
    to it (treatment or holdout): a run records its evaluation day, not the minute it ran.

    One maximum per journey, each read from the end of the ``(journey_id, assigned_on)``
    index — not a ``GROUP BY`` over every assignment, whose cost grows with the audiences."""
    from huitouke.journeys.tables import journey_assignments as ja

    ids = list(dict.fromkeys(journey_ids))
    out: dict[str, Any] = {}
    for i in range(0, len(ids), 100):
        part = ids[i : i + 100]
        latest = [
            select(func.max(ja.c.assigned_on)).where(ja.c.journey_id == jid).scalar_subquery()
            for jid in part
        ]
        row = conn.execute(select(*latest)).one()
        out.update({jid: at for jid, at in zip(part, row, strict=True) if at is not None})
    return out


def _results(
    request: Request, conn: Connection, as_of: date
) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """``huitouke journeys results`` for ``as_of``, by journey, and where they came from:
    the ``journey_results`` snapshot when it holds that day (the merchant's today), else
    computed live (:func:`huitouke.app.snapshots.journey_results_view`)."""
    from huitouke.app.snapshots import journey_results_view

    ctx = request_ctx(request)
    rows, state = journey_results_view(conn, ctx.settings, as_of)
    return {r["journey_id"]: r for r in rows}, state


def _snapshot_state(request: Request, session: Session, state: dict[str, Any]) -> dict[str, Any]:
    """The snapshot status the templates show (``_journey_snapshot.html``)."""
    from huitouke.service.apikeys import scope_allows

    ctx = request_ctx(request)
    return {
        "state": "live" if state["live"] else ("stale" if state["stale"] else "fresh"),
        "computed_at": None if state["live"] else local_time(ctx, state["computed_at"]),
        "can_refresh": scope_allows(session.user.role, "operator"),
    }


def _find(conn: Connection, journey_id: str) -> dict[str, Any]:
    from huitouke.journeys import repo
    from huitouke.journeys.service import get_journey

    rows = repo.all_journeys(conn)
    j = get_journey([r["journey"] for r in rows], journey_id)
    return next(r for r in rows if r["journey"].id == j.id)


def _yaml_of(journey: Journey) -> str:
    data = journey.model_dump(mode="json", exclude_none=True)
    data.pop("enabled", None)
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False)


def _errors_of(exc: HuitoukeError, lang: str) -> list[dict[str, Any]]:
    """The loader's errors (line, field, message) for the page; one line for others."""
    errors = exc.details.get("errors") if isinstance(exc.details, dict) else None
    if errors:
        return [
            {"line": e.get("line"), "field": e.get("field") or "", "message": e["message"]}
            for e in errors
        ]
    return [{"line": exc.details.get("line"), "field": "", "message": exc.localized(lang)}]


# -- the list -------------------------------------------------------------------------------------


@router.get("/journeys")
def journeys_page(request: Request) -> Response:
    """Journeys: state, outbox counts, last run, results. 旅程列表。"""
    from huitouke.journeys import repo
    from huitouke.messaging.outbox import status_counts

    page = page_context(request)
    if isinstance(page, Response):
        return page
    as_of = _today(request)

    def read(conn: Connection) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        rows = repo.all_journeys(conn)
        counts = status_counts(conn)
        last = _last_runs(conn, [r["journey"].id for r in rows])
        results, state = _results(request, conn, as_of)
        out = []
        for r in rows:
            j: Journey = r["journey"]
            c = counts.get(j.id, {})
            res = results.get(j.id)
            out.append(
                {
                    "id": j.id,
                    "name": j.name.get(page.lang),
                    "trigger": j.trigger.type,
                    "enabled": r["enabled"],
                    "source": r["source"],
                    "holdout": fmt_pct(j.holdout, page.lang, 0),
                    "queued": c.get("queued", 0) + c.get("sending", 0),
                    "sent": c.get("sent", 0),
                    "failed": sum(c.get(s, 0) for s in FAILED_STATUSES),
                    "last_run": _day(last.get(j.id)),
                    "uplift": None
                    if res is None or res["incremental_repurchase"] is None
                    else _signed_pct(res["incremental_repurchase"], page.lang),
                }
            )
        return out, state

    rows, state = run_read(page.ctx.store, read)
    nexts = _next_runs(request)
    for row in rows:
        at = nexts.get(row["id"])
        row["next_run"] = None if at is None else local_time(page.ctx, at)
    return page.render(
        "journeys.html", journeys=rows, as_of=as_of.isoformat(),
        timezone=page.ctx.settings.timezone, snapshot=_snapshot_state(request, page.session, state),
        next_url="/journeys",
    )  # fmt: skip


def _next_runs(request: Request) -> dict[str, Any]:
    """The scheduler's next run of each switched-on journey (its ``journeys`` job); none
    when the scheduler's settings cannot be read (the page says "not scheduled")."""
    from huitouke.app.scheduler.views import journey_next_runs

    ctx = request_ctx(request)
    try:
        return journey_next_runs(ctx.store, ctx.settings, ctx.clock())
    except HuitoukeError:
        return {}


def _day(value: Any) -> str:
    return "—" if value is None else str(value)[:10]


def _signed_pct(value: float, lang: str) -> str:
    sign = "+" if value > 0 else ("−" if value < 0 else "±")
    return f"{sign}{fmt_number(abs(value) * 100, lang, 1)} pp"


# -- new and edit -----------------------------------------------------------------------------------


def _edit_page(
    request: Request,
    session: Session,
    *,
    journey_id: str | None,
    text: str,
    errors: list[dict[str, Any]] | None = None,
    error: str | None = None,
    status: int = 200,
    segment: str | None = None,
) -> Response:
    lang = lang_of(request, session)
    return render(
        request, "journey_edit.html", lang, session=session, journey_id=journey_id, text=text,
        errors=errors or [], error=error, status=status, segment=segment,
    )  # fmt: skip


def _parse(text: str) -> Journey:
    from huitouke.journeys.loader import load_journey_text

    return load_journey_text(text, "journey")


@router.get("/journeys/new")
def journey_new(request: Request, segment: str | None = None) -> Response:
    """A new journey in the journey file format, its audience a segment when given.
    新建旅程(可从分群开始)。"""
    from huitouke.journeys.drafts import draft_journey_yaml

    page = page_context(request, role="operator")
    if isinstance(page, Response):
        return page
    try:
        text = draft_journey_yaml(segment or None)
    except HuitoukeError as exc:
        return _edit_page(
            request, page.session, journey_id=None, text=draft_journey_yaml(None),
            error=exc.localized(page.lang), status=exc.http_status,
        )  # fmt: skip
    return _edit_page(request, page.session, journey_id=None, text=text, segment=segment)


@router.post("/journeys/validate")
def journey_validate(
    request: Request, definition: str = Form(""), csrf_token: str = Form("")
) -> Response:
    """Check a definition without saving it (htmx): its errors with line and field."""
    page = page_context(request, role="operator", csrf=csrf_token, check_csrf=True)
    if isinstance(page, Response):
        return page
    try:
        j = _parse(definition)
    except HuitoukeError as exc:
        return page.render(
            "_journey_errors.html", errors=_errors_of(exc, page.lang),
            valid=None,
        )  # fmt: skip
    return page.render("_journey_errors.html", errors=[], valid=j.id)


@router.post("/journeys/new")
def journey_create(
    request: Request, definition: str = Form(""), csrf_token: str = Form("")
) -> Response:
    """Save a new journey (switched off until enabled). 保存新旅程。"""
    from huitouke.journeys import repo

    page = page_context(request, role="operator", csrf=csrf_token, check_csrf=True)
    if isinstance(page, Response):
        return page
    try:
        j = _parse(definition)
    except HuitoukeError as exc:
        return _edit_page(
            request, page.session, journey_id=None, text=definition,
            errors=_errors_of(exc, page.lang), status=exc.http_status,
        )  # fmt: skip

    def write(conn: Connection) -> bool:
        if any(r["journey"].id == j.id for r in repo.all_journeys(conn)):
            return False
        repo.save_journey(conn, j, source="api", enabled=False)
        return True

    if not run_write(page.ctx.store, write):
        message = page.gettext(
            N_("A journey with the id %(id)s exists: edit it, or choose another id."), id=j.id
        )
        return _edit_page(
            request, page.session, journey_id=None, text=definition, error=message, status=409
        )
    return secure_headers(RedirectResponse(f"/journeys/{j.id}", status_code=303))


@router.get("/journeys/{journey_id}/edit")
def journey_edit(request: Request, journey_id: str) -> Response:
    """Edit a journey's definition (a built-in is saved as a stored copy). 编辑旅程。"""
    page = page_context(request, role="operator")
    if isinstance(page, Response):
        return page
    try:
        row = run_read(page.ctx.store, lambda conn: _find(conn, journey_id))
    except HuitoukeError as exc:
        return page.refuse(exc)
    return _edit_page(request, page.session, journey_id=journey_id, text=_yaml_of(row["journey"]))


@router.post("/journeys/{journey_id}/edit")
def journey_save(
    request: Request, journey_id: str, definition: str = Form(""), csrf_token: str = Form("")
) -> Response:
    """Save an edited journey; its state (on or off) is kept. 保存旅程。"""
    from huitouke.journeys import repo

    page = page_context(request, role="operator", csrf=csrf_token, check_csrf=True)
    if isinstance(page, Response):
        return page
    try:
        row = run_read(page.ctx.store, lambda conn: _find(conn, journey_id))
        j = _parse(definition)
    except HuitoukeError as exc:
        if exc.code == "journey.not_found":
            return page.refuse(exc)
        return _edit_page(
            request, page.session, journey_id=journey_id, text=definition,
            errors=_errors_of(exc, page.lang), status=exc.http_status,
        )  # fmt: skip
    if j.id != journey_id:
        message = page.gettext(
            N_(
                "id: a journey's id cannot change (%(old)s → %(new)s); create a new journey instead."
            ),
            old=journey_id,
            new=j.id,
        )
        return _edit_page(
            request, page.session, journey_id=journey_id, text=definition,
            errors=[{"line": None, "field": "id", "message": message}], status=422,
        )  # fmt: skip
    run_write(
        page.ctx.store,
        lambda conn: repo.save_journey(conn, j, source="api", enabled=row["enabled"]),
    )
    return secure_headers(RedirectResponse(f"/journeys/{j.id}", status_code=303))


# -- one journey ----------------------------------------------------------------------------------


def _journey_values(
    request: Request, session: Session, journey_id: str, as_of: date
) -> dict[str, Any]:
    from huitouke.journeys.service import journey_warnings
    from huitouke.messaging.outbox import list_messages, status_counts

    ctx = request_ctx(request)
    lang = lang_of(request, session)

    def read(conn: Connection) -> dict[str, Any]:
        row = _find(conn, journey_id)
        results, state = _results(request, conn, as_of)
        counts = status_counts(conn, journey_id=journey_id).get(journey_id, {})
        failures = list_messages(
            conn, status=list(FAILED_STATUSES), journey_id=journey_id, limit=100
        )
        return {
            "row": row,
            "counts": counts,
            "failures": failures,
            "last_run": _last_runs(conn, [journey_id]).get(journey_id),
            "result": results.get(journey_id),
            "state": state,
        }

    data = run_read(ctx.store, read)
    j: Journey = data["row"]["journey"]
    warnings = [
        w["message_zh"] if lang == "zh" else w["message"]
        for w in journey_warnings([j], ctx.settings)
    ]
    res = data["result"]
    return {
        "journey": j,
        "name": j.name.get(lang),
        "enabled": data["row"]["enabled"],
        "source": data["row"]["source"],
        "definition": _yaml_of(j),
        "warnings": warnings if data["row"]["enabled"] else [],
        "counts": {s: data["counts"].get(s, 0) for s in CHOSEN[:6]},
        "failures": [
            {
                **f,
                "when": local_time(ctx, _parse_dt(f.get("updated_at"))),
                "reason": f.get("reason_code") or "—",
            }
            for f in data["failures"]
        ],
        "last_run": _day(data["last_run"]),
        "as_of": as_of.isoformat(),
        "result": res,
        "result_shown": None if res is None else _result_shown(res, lang),
        "timezone": ctx.settings.timezone,
        "snapshot": _snapshot_state(request, session, data["state"]),
        "next_url": f"/journeys/{journey_id}",
    }


def _parse_dt(value: Any) -> Any:
    from datetime import datetime

    return datetime.fromisoformat(value) if isinstance(value, str) else value


def _result_shown(r: dict[str, Any], lang: str) -> dict[str, str]:
    """The results as shown: rates in %, uplift and its 95% interval in points, money."""
    from decimal import Decimal

    def pct(v: float | None) -> str:
        return "—" if v is None else fmt_pct(v, lang, 1)

    def money(v: str | None) -> str:
        return "—" if v is None else fmt_money(Decimal(v), r["currency"], lang)

    ci = r["incremental_ci95"]
    return {
        "conversion_treatment": pct(r["conversion_treatment"]),
        "conversion_holdout": pct(r["conversion_holdout"]),
        "uplift": "—"
        if r["incremental_repurchase"] is None
        else _signed_pct(r["incremental_repurchase"], lang),
        "ci": "—" if ci is None else f"[{_signed_pct(ci[0], lang)}, {_signed_pct(ci[1], lang)}]",
        "incremental_revenue": money(r["incremental_revenue"]),
        "cost": money(r["cost"]),
        "roi": "—" if r["roi"] is None else fmt_pct(r["roi"], lang, 1),
    }


@router.get("/journeys/{journey_id}")
def journey_page(
    request: Request, journey_id: str, as_of: str | None = None, run: int | None = None
) -> Response:
    """One journey: definition, state, outbox, results; ``?run=`` the task of a run started
    here, whose numbers it shows once it succeeded. 旅程详情。"""
    page = page_context(request)
    if isinstance(page, Response):
        return page
    try:
        values = _journey_values(request, page.session, journey_id, _as_of(request, as_of))
    except HuitoukeError as exc:
        return page.refuse(exc)
    ran = None if run is None else _ran(request, journey_id, run, page.lang)
    return page.render("journey.html", ran=ran, notice=None, **values)


def _set_enabled(request: Request, journey_id: str, on: bool, csrf_token: str) -> Response:
    from huitouke.journeys import repo

    page = page_context(request, role="operator", csrf=csrf_token, check_csrf=True)
    if isinstance(page, Response):
        return page
    try:
        run_write(page.ctx.store, lambda conn: repo.set_enabled(conn, journey_id, on))
    except HuitoukeError as exc:
        return page.refuse(exc)
    return secure_headers(RedirectResponse(f"/journeys/{journey_id}", status_code=303))


@router.post("/journeys/{journey_id}/enable")
def journey_enable(request: Request, journey_id: str, csrf_token: str = Form("")) -> Response:
    """Switch a journey on (operators). 启用旅程。"""
    return _set_enabled(request, journey_id, True, csrf_token)


@router.post("/journeys/{journey_id}/disable")
def journey_disable(request: Request, journey_id: str, csrf_token: str = Form("")) -> Response:
    """Switch a journey off (operators). 停用旅程。"""
    return _set_enabled(request, journey_id, False, csrf_token)


@router.post("/journeys/{journey_id}/preview")
def journey_preview(
    request: Request, journey_id: str, as_of: str = Form(""), csrf_token: str = Form("")
) -> Response:
    """Start the dry run of one journey on a day — who is in and out and why, the rendered
    messages; nothing is written (operators, as the API's dry run) — as a background task
    (:func:`huitouke.app.journey_runs.preview_journey`: it reads every customer's orders).
    With htmx the answer is its progress fragment, which polls itself and turns into the
    preview; without, a redirect to the task's page. The same preview (journey and day)
    while it runs answers with the running one. 试运行。"""
    from huitouke.app.tasks import get_task, start, submit

    page = page_context(request, role="operator", csrf=csrf_token, check_csrf=True)
    if isinstance(page, Response):
        return page
    try:
        day = _as_of(request, as_of or None)
        run_read(page.ctx.store, lambda conn: _find(conn, journey_id))
        params = {"journey_id": journey_id, "as_of": day.isoformat()}
        key = f"journey.preview:{journey_id}:{day.isoformat()}"
        try:
            task = submit(
                page.ctx.store, "journey.preview", params, key=key, by=page.session.user.name
            )
            start(page.ctx.store, page.ctx.settings, task.task_id)
        except HuitoukeError as exc:
            running = exc.details.get("task_id") if exc.code == "task.running" else None
            if running is None:
                raise
            task = get_task(page.ctx.store, int(running))  # the same preview: show that one
    except HuitoukeError as exc:
        return page.refuse(exc)
    if not is_htmx(request):
        return secure_headers(RedirectResponse(f"/tasks/{task.task_id}", status_code=303))
    from huitouke.service.console.tasks_page import task_values

    task = get_task(page.ctx.store, task.task_id)
    return page.render("_task_status.html", **task_values(request, task, page.lang))


@router.post("/journeys/{journey_id}/run")
def journey_run(
    request: Request, journey_id: str, as_of: str = Form(""), csrf_token: str = Form("")
) -> Response:
    """Run one switched-on journey now for a day (today by default): assignments, coupons,
    messages in the outbox, exactly once, then the results snapshot refreshed (operators) —
    as a background task (:func:`huitouke.app.journey_runs.run_journey`): the answer is at
    once its progress page, which returns to the journey with the run's numbers when done.
    The same journey run again while its run is under way is refused (409). 立即运行。"""
    from urllib.parse import quote

    from huitouke.service.console.tasks_page import start_task

    page = page_context(request, role="operator", csrf=csrf_token, check_csrf=True)
    if isinstance(page, Response):
        return page
    try:
        day = _as_of(request, as_of or None)
        row = run_read(page.ctx.store, lambda conn: _find(conn, journey_id))
        if not row["enabled"]:
            message = page.gettext(N_("Switch the journey on before running it."))
            values = _journey_values(request, page.session, journey_id, day)
            return page.render("journey.html", ran=None, notice=message, status=409, **values)
    except HuitoukeError as exc:
        return page.refuse(exc)
    back = f"/journeys/{quote(journey_id, safe='')}?as_of={day.isoformat()}"
    params = {"journey_id": journey_id, "as_of": day.isoformat(),
              "run_by": f"console {page.session.user.name}"}  # fmt: skip
    task = start_task(
        request,
        page.session,
        "journey.run",
        params,
        key=f"journey.run:{journey_id}",
        next_path=back,
    )
    if isinstance(task, Response):
        return task
    target = f"{back}&run={task.task_id}"
    location = f"/tasks/{task.task_id}?next={quote(target, safe='/')}"
    return secure_headers(RedirectResponse(location, status_code=303))


def _ran(request: Request, journey_id: str, task_id: int, lang: str) -> dict[str, Any] | None:
    """The numbers of the console's run ``task_id`` of this journey, once it succeeded."""
    from huitouke.app.tasks import get_task

    try:
        task = get_task(request_ctx(request).store, task_id)
    except HuitoukeError:
        return None
    result = task.result if isinstance(task.result, dict) else {}
    if task.kind != "journey.run" or task.status != "succeeded":
        return None
    if result.get("journey_id") != journey_id:
        return None
    return {
        "as_of": result["as_of"],
        "written": result["written"],
        "due": result["due"],
        "already_run": result.get("already_run", False),
        "failures": [
            {"code": f["code"], "message": f["message_zh"] if lang == "zh" else f["message"]}
            for f in result.get("failures") or []
        ],
    }


@router.post("/journeys/{journey_id}/outbox/retry")
def journey_retry(
    request: Request,
    journey_id: str,
    message_id: str = Form(""),
    csrf_token: str = Form(""),
) -> Response:
    """Put the journey's failed and dead messages (or one of them) back in the queue; the
    contact rules run again when they are sent (operators). 重试失败消息。"""
    from huitouke.messaging.outbox import list_messages, retry_messages

    page = page_context(request, role="operator", csrf=csrf_token, check_csrf=True)
    if isinstance(page, Response):
        return page

    def write(conn: Connection) -> int:
        _find(conn, journey_id)
        failed = list_messages(
            conn, status=list(FAILED_STATUSES), journey_id=journey_id, limit=100_000
        )
        ids = [m["message_id"] for m in failed]
        if message_id:
            if message_id not in ids:
                raise InputError(
                    f"message {message_id!r} is not a failed message of journey {journey_id!r}",
                    code="input.nothing_to_retry",
                    message_zh=f"消息 {message_id!r} 不是旅程 {journey_id!r} 的失败消息",
                    details={"field": "message_id"},
                )
            ids = [message_id]
        if not ids:
            return 0
        return retry_messages(conn, now=now_of(page.ctx), message_ids=ids)

    try:
        n = run_write(page.ctx.store, write)
        values = _journey_values(request, page.session, journey_id, _today(request))
    except HuitoukeError as exc:
        return page.refuse(exc)
    notice = page.gettext(N_("%(n)s messages are queued again."), n=n)
    return page.render("journey.html", ran=None, notice=notice, **values)
