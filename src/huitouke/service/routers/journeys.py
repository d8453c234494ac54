"""Journeys over HTTP: CRUD of stored journeys, switch built-ins on/off, run or dry-run a
day, order fulfilment events, and results per journey and insert campaign
(:mod:`huitouke.journeys` does the work)."""

from __future__ import annotations

from datetime import date
from typing import Any

from fastapi import APIRouter, Body, Depends, Query
from pydantic import BaseModel, Field
from sqlalchemy import Connection

from huitouke.errors import ConflictError
from huitouke.journeys import repo
from huitouke.journeys.service import get_journey, record_event, run_journeys
from huitouke.service.apikeys import ApiKey
from huitouke.service.context import ServiceContext
from huitouke.service.deps import get_ctx, get_lang, require
from huitouke.service.error_handlers import ERROR_RESPONSES, ErrorResponse
from huitouke.service.programs import loyalty_service
from huitouke.store.uow import run_read, run_write

__all__ = ["router"]

router = APIRouter(prefix="/v1/journeys", tags=["journeys"], responses=ERROR_RESPONSES)

_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorResponse, "description": "journey.not_found"}
}


class JourneyState(BaseModel):
    id: str
    enabled: bool
    source: str = Field(description="builtin, api or file")
    definition: dict[str, Any]
    warnings: list[dict[str, Any]] = Field(
        default_factory=list, description="What to fix before it sends, e.g. an empty shop name."
    )


def _state(row: dict[str, Any]) -> JourneyState:
    j = row["journey"]
    return JourneyState(
        id=j.id, enabled=row["enabled"], source=row["source"], definition=j.model_dump(mode="json")
    )


@router.get("", response_model=list[JourneyState], summary="List built-in and stored journeys")
def list_journeys(
    ctx: ServiceContext = Depends(get_ctx), _: ApiKey = Depends(require("read"))
) -> list[JourneyState]:
    return run_read(ctx.store, lambda conn: [_state(r) for r in repo.all_journeys(conn)])


@router.get(
    "/{journey_id}", response_model=JourneyState, summary="One journey", responses=_NOT_FOUND
)
def get_one(
    journey_id: str, ctx: ServiceContext = Depends(get_ctx), _: ApiKey = Depends(require("read"))
) -> JourneyState:
    def read(conn: Connection) -> JourneyState:
        rows = repo.all_journeys(conn)
        j = get_journey([r["journey"] for r in rows], journey_id)
        return _state(next(r for r in rows if r["journey"].id == j.id))

    return run_read(ctx.store, read)


@router.post(
    "",
    response_model=JourneyState,
    status_code=201,
    summary="Create a journey",
    responses={409: {"model": ErrorResponse, "description": "journey.conflict"}},
)
def create(
    definition: dict[str, Any] = Body(
        ..., description="A journey (same fields as the YAML files)."
    ),
    ctx: ServiceContext = Depends(get_ctx),
    _: ApiKey = Depends(require("operator")),
) -> JourneyState:
    j = repo.parse_journey(definition)

    def write(conn: Connection) -> JourneyState:
        if any(
            r["journey"].id == j.id and r["source"] != "builtin" for r in repo.all_journeys(conn)
        ):
            raise ConflictError(
                f"journey {j.id!r} exists; use PUT to replace it",
                code="journey.conflict",
                message_zh=f"旅程 {j.id!r} 已存在;请用 PUT 替换",
            )
        repo.save_journey(conn, j, source="api")
        return JourneyState(
            id=j.id, enabled=j.enabled, source="api", definition=j.model_dump(mode="json")
        )

    return run_write(ctx.store, write)


@router.put(
    "/{journey_id}", response_model=JourneyState, summary="Replace a journey", responses=_NOT_FOUND
)
def replace(
    journey_id: str,
    definition: dict[str, Any] = Body(...),
    ctx: ServiceContext = Depends(get_ctx),
    _: ApiKey = Depends(require("operator")),
) -> JourneyState:
    j = repo.parse_journey({**definition, "id": journey_id})

    def write(conn: Connection) -> JourneyState:
        repo.save_journey(conn, j, source="api")
        return JourneyState(
            id=j.id, enabled=j.enabled, source="api", definition=j.model_dump(mode="json")
        )

    return run_write(ctx.store, write)


@router.delete(
    "/{journey_id}", status_code=204, summary="Delete a stored journey", responses=_NOT_FOUND
)
def delete(
    journey_id: str,
    ctx: ServiceContext = Depends(get_ctx),
    _: ApiKey = Depends(require("operator")),
) -> None:
    run_write(ctx.store, lambda conn: repo.delete_journey(conn, journey_id))


@router.post(
    "/{journey_id}/enable",
    response_model=JourneyState,
    summary="Switch a journey on",
    responses=_NOT_FOUND,
)
def enable(
    journey_id: str,
    ctx: ServiceContext = Depends(get_ctx),
    _: ApiKey = Depends(require("operator")),
    lang: str = Depends(get_lang),
) -> JourneyState:
    from huitouke.journeys.service import journey_warnings
    from huitouke.store.stored_settings import effective_settings

    def write(conn: Connection) -> JourneyState:
        j = repo.set_enabled(conn, journey_id, True)
        # the shop name an admin stored counts as set
        settings = effective_settings(conn, ctx.settings, open_secrets=False)
        warnings = [
            {"code": w["code"], "message": w["message_zh"] if lang == "zh" else w["message"]}
            for w in journey_warnings([j], settings)
        ]
        return JourneyState(
            id=j.id,
            enabled=True,
            source="api",
            definition=j.model_dump(mode="json"),
            warnings=warnings,
        )

    return run_write(ctx.store, write)


@router.post(
    "/{journey_id}/disable",
    response_model=JourneyState,
    summary="Switch a journey off",
    responses=_NOT_FOUND,
)
def disable(
    journey_id: str,
    ctx: ServiceContext = Depends(get_ctx),
    _: ApiKey = Depends(require("operator")),
) -> JourneyState:
    def write(conn: Connection) -> JourneyState:
        j = repo.set_enabled(conn, journey_id, False)
        return JourneyState(
            id=j.id, enabled=False, source="api", definition=j.model_dump(mode="json")
        )

    return run_write(ctx.store, write)


class RunRequest(BaseModel):
    as_of: date
    dry_run: bool = True
    journeys: list[str] | None = Field(None, description="Only these enabled journeys.")
    limit: int | None = Field(1000, ge=1, description="At most N items in the answer.")


@router.post("/run", summary="Run (or dry-run) the enabled journeys for a day")
def run(
    body: RunRequest,
    ctx: ServiceContext = Depends(get_ctx),
    lang: str = Depends(get_lang),
    key: ApiKey = Depends(require("operator")),
) -> dict[str, Any]:
    """The run itself stays in the request (its answer is what it wrote); the journeys'
    results snapshot it makes stale is recomputed afterwards in a background task
    (``results_refresh_task``: its id, or null when the store has no such snapshot or a
    refresh is already under way)."""
    journeys = run_read(ctx.store, repo.enabled_journeys)
    if body.journeys is not None:
        journeys = [j for j in journeys if j.id in set(body.journeys)]
    loyalty = run_read(ctx.store, lambda conn: loyalty_service(conn, ctx))
    res = run_journeys(
        ctx.store,
        journeys,
        body.as_of,
        settings=ctx.settings,
        dry_run=body.dry_run,
        loyalty=loyalty,
    )
    out = res.to_json(lang, limit=body.limit)
    if not body.dry_run:
        from huitouke.app.snapshots import JOURNEY_RESULTS
        from huitouke.app.tasks import refresh_later

        task = refresh_later(ctx.store, ctx.settings, JOURNEY_RESULTS, by=f"api {key.name}")
        out["results_refresh_task"] = None if task is None else task.task_id
    return out


class EventIn(BaseModel):
    order_id: str
    source: str | None = Field(
        None, description="The order's source (the namespace of its id); default: default."
    )
    customer_id: str
    event: str = Field(description="order_shipped, order_delivered or order_completed")
    at: Any = Field(description="ISO 8601 instant with a zone")


@router.post("/events", summary="Record an order fulfilment event (idempotent)")
def event(
    body: EventIn, ctx: ServiceContext = Depends(get_ctx), _: ApiKey = Depends(require("operator"))
) -> dict[str, Any]:
    from datetime import datetime

    from huitouke.errors import InputError

    try:
        at = datetime.fromisoformat(str(body.at))
    except ValueError as exc:
        raise InputError(
            "at: not an ISO 8601 instant",
            code="input.bad_datetime",
            message_zh="at:不是 ISO 8601 时间",
            details={"field": "at"},
        ) from exc
    if at.tzinfo is None:
        raise InputError(
            "at: needs a time zone",
            code="input.naive_datetime",
            message_zh="at:必须带时区",
            details={"field": "at"},
        )
    from huitouke.core.orders import order_ref
    from huitouke.store.orders_repo import check_source

    # an order is (source, order_id): the event names it as the journeys' order frame does
    ref = order_ref(check_source(body.source), body.order_id)
    created = run_write(
        ctx.store, lambda conn: record_event(conn, ref, body.event, body.customer_id, at)
    )
    return {"recorded": created}


@router.get("/results/all", summary="Results per journey and insert campaign")
def results(
    as_of: date = Query(...),
    window_days: int | None = Query(None, ge=1, le=90),
    ctx: ServiceContext = Depends(get_ctx),
    _: ApiKey = Depends(require("read")),
) -> dict[str, Any]:
    from huitouke.journeys.results import journey_results
    from huitouke.measurement.attribution import campaign_results

    s = ctx.settings
    w = window_days or s.attribution_window_days

    def read(conn: Connection) -> dict[str, Any]:
        return {
            "as_of": as_of.isoformat(),
            "journeys": journey_results(
                conn,
                as_of,
                window_days=w,
                timezone=s.timezone,
                price_per_segment=s.sms_price_per_segment,
                currency=s.currency,
            ),
            "insert_campaigns": campaign_results(
                conn, as_of, window_days=w, timezone=s.timezone, currency=s.currency
            ),
        }

    return run_read(ctx.store, read)
