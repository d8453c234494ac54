"""Running one switched-on journey for a day, as a unit of work the console starts in the
background (:mod:`huitouke.app.tasks`, kind ``journey.run``).

It is the run of ``huitouke journeys run --journey ID`` and of the scheduler's ``journeys``
job — :func:`huitouke.journeys.service.run_journeys` with the loyalty program saved in the
store — followed by the refresh of the journeys' results snapshot when the store has one
(:func:`huitouke.app.snapshots.refresh_after_journey_run`). At 100,000 assigned customers
that refresh alone costs what a live results view costs (tens of seconds), so it is no work
for a request.

**Once per day, also when run again.** ``run_journeys`` claims the journey's day in the
same transaction as the rows it writes (:mod:`huitouke.journeys.days`): a run that stopped
half-way wrote nothing and claimed nothing, and a run after a finished one finds the day
claimed and writes nothing (``already_run``). So the scheduler's ``tasks`` job may run a
task again after its process died, at any point, without a second run of the day; a rerun
after the writes still refreshes the snapshot.
运行单个旅程(后台任务)。"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

from huitouke.errors import InputError
from huitouke.settings import Settings
from huitouke.store.db import Store
from huitouke.store.uow import run_read

__all__ = ["run_journey"]


def run_journey(
    store: Store,
    settings: Settings,
    journey_id: str,
    day: date,
    *,
    run_by: str,
    progress: Callable[[int, int, str], None] | None = None,
) -> dict[str, Any]:
    """Run the switched-on journey ``journey_id`` for ``day`` (writes assignments, coupons and
    outbox messages once), then refresh the journeys' results snapshot when the store has
    one. Returns what was written, JSON-ready: ``journey_id``, ``as_of``, ``due`` (customers
    due), ``written`` (assignments, coupons, enqueued, duplicates), ``already_run`` (the day
    had been run before: nothing written), ``failures`` (code, message, message_zh) and
    ``refreshed`` (the snapshot kinds recomputed)."""
    from huitouke.app.orders import stored_loyalty
    from huitouke.app.snapshots import refresh_after_journey_run
    from huitouke.journeys import repo
    from huitouke.journeys.service import get_journey, run_journeys

    step = progress or (lambda done, total, stage: None)
    step(0, 3, "journey")

    def read(conn: Any) -> tuple[Any, bool, Any]:
        rows = repo.all_journeys(conn)
        j = get_journey([r["journey"] for r in rows], journey_id)
        enabled = next(bool(r["enabled"]) for r in rows if r["journey"].id == j.id)
        return j, enabled, stored_loyalty(conn, settings.timezone)

    journey, enabled, loyalty = run_read(store, read)
    if not enabled:
        raise InputError(
            f"journey {journey_id!r} is switched off: switch it on before running it",
            code="journey.not_found",
            message_zh=f"旅程 {journey_id!r} 未启用:请先启用再运行",
            details={"journey_id": journey_id},
        )
    res = run_journeys(
        store,
        [journey.model_copy(update={"enabled": True})],
        day,
        settings=settings,
        dry_run=False,
        loyalty=loyalty,
        run_by=run_by,
    )
    step(2, 3, "journey_results")
    reports = refresh_after_journey_run(store, settings)
    step(3, 3, "done")
    summary = next((s for s in res.plan.summary if s["journey_id"] == journey_id), None)
    return {
        "journey_id": journey_id,
        "as_of": day.isoformat(),
        "due": int(summary["due_customers"]) if summary else 0,
        "written": {
            "assignments": res.assignments_inserted,
            "coupons": res.coupons_issued,
            "enqueued": res.enqueued,
            "duplicates": res.duplicates,
        },
        "already_run": journey_id in res.already_run,
        "failures": [
            {k: f[k] for k in ("journey_id", "code", "message", "message_zh")} for f in res.failures
        ],
        "refreshed": [r.kind for r in reports if not r.error],
    }


#: at most this many due rows and rendered messages kept of a dry run (what the page shows)
PREVIEW_ROWS = 200
PREVIEW_MESSAGES = 50
#: the fields of a due row the preview keeps (the page words the reason from its code)
PREVIEW_FIELDS = ("customer_id", "step", "group", "status", "reason_code", "send_at")


def preview_journey(
    store: Store,
    settings: Settings,
    journey_id: str,
    day: date,
    *,
    progress: Callable[[int, int, str], None] | None = None,
) -> dict[str, Any]:
    """The dry run of one journey (switched on or not) for ``day``, as ``huitouke journeys
    run --dry-run --journey ID`` evaluates it: nothing is written. It reads every customer's
    orders (the customers frame, P(alive) fitted on them), so on a large store it is no work
    for a request either. Returns, JSON-ready: ``journey_id``, ``as_of``, ``summary`` (the
    journey's count per reason, or None when nobody is due), ``items`` (the first
    :data:`PREVIEW_ROWS` due rows, planned ones first, with :data:`PREVIEW_FIELDS`: the page
    words the reason in its language from ``reason_code``), ``items_total``, ``messages`` (the first
    :data:`PREVIEW_MESSAGES` rendered messages), ``messages_total``, ``failures`` and
    ``warnings`` (code, message, message_zh)."""
    import json

    from huitouke.app.orders import stored_loyalty
    from huitouke.journeys import repo
    from huitouke.journeys.engine import Plan
    from huitouke.journeys.service import get_journey, run_journeys

    step = progress or (lambda done, total, stage: None)
    step(0, 2, "journey")

    def read(conn: Any) -> tuple[Any, Any]:
        rows = repo.all_journeys(conn)
        j = get_journey([r["journey"] for r in rows], journey_id)
        return j, stored_loyalty(conn, settings.timezone)

    journey, loyalty = run_read(store, read)
    res = run_journeys(
        store,
        [journey.model_copy(update={"enabled": True})],
        day,
        settings=settings,
        dry_run=True,
        loyalty=loyalty,
        explain_all=True,
    )
    rows = res.plan.rows
    if not rows.empty:  # who gets something first, then the reasons of the rest
        rows = rows.assign(_first=(rows["status"] != "planned").astype(int)).sort_values(
            ["_first", "customer_id", "step_index"], kind="stable"
        )
    explained = Plan(res.plan.as_of, rows.head(PREVIEW_ROWS), [], res.plan.journeys).explain("en")
    # what the page shows of a row (the task keeps its result: no more than that)
    shown = [{k: r[k] for k in PREVIEW_FIELDS} for r in explained]
    summary = next((s for s in res.plan.summary if s["journey_id"] == journey_id), None)
    out = {
        "journey_id": journey_id,
        "as_of": day.isoformat(),
        "summary": summary,
        "items": shown,
        "items_total": len(res.plan.rows),
        "messages": [
            {
                "customer_id": m.customer_id,
                "step_id": m.step_id,
                "channel": m.channel,
                "subject": m.rendered.get("subject"),
                "text": m.rendered.get("text") or "",
                "coupon": (m.payload or {}).get("coupon"),
            }
            for m in res.previews[:PREVIEW_MESSAGES]
        ],
        "messages_total": len(res.previews),
        "failures": [
            {k: f.get(k) for k in ("journey_id", "code", "message", "message_zh")}
            for f in res.failures
        ],
        "warnings": [
            {k: w.get(k) for k in ("code", "message", "message_zh")} for w in res.warnings
        ],
    }
    step(2, 2, "done")
    # JSON-ready: the plan's counts may be numpy numbers, its days dates
    result: dict[str, Any] = json.loads(json.dumps(out, default=_plain))
    return result


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):  # a numpy scalar
        return value.item()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON-ready")
