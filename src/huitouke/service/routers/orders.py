"""Order events: ``POST /v1/orders`` upserts the order and applies its loyalty effects in
one unit of work; idempotent by ``(source, order_id)`` and state. ``POST /v1/orders/batch`` does the
same for many events in one unit of work. Both are doors over
:func:`huitouke.app.orders.record_order_events`, the use case every door calls."""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Connection

from huitouke.app.orders import (
    OrderEventIn,
    buyer_contacts,
    check_source,
    find_order,
    key_writer,
    present_order,
    record_order_events,
)
from huitouke.errors import HuitoukeError, InputError, NotFoundError
from huitouke.i18n import t
from huitouke.service.apikeys import ApiKey
from huitouke.service.combine import GroupCommit
from huitouke.service.context import ServiceContext
from huitouke.service.deps import get_ctx, require
from huitouke.service.error_handlers import ERROR_RESPONSES, ErrorResponse
from huitouke.service.programs import loyalty_service
from huitouke.service.schemas import ID_PATTERN, OrderIn
from huitouke.service.uow import run_read, run_write

router = APIRouter(prefix="/v1/orders", tags=["orders"], responses=ERROR_RESPONSES)


class OrderOut(BaseModel):
    source: str = Field(description="The namespace of the order id (default: default).")
    order_id: str
    customer_id: str
    ordered_at: str = Field(description="ISO 8601, UTC.")
    amount: str = Field(description="Decimal string.")
    currency: str
    status: str
    refunded_amount: str
    channel: str | None
    lines: list[dict[str, Any]]


class OrderResult(BaseModel):
    order: OrderOut = Field(description="The order as stored after this event.")
    loyalty: dict[str, Any] = Field(
        description="The loyalty effects of the order's current state (points earned or "
        "reversed, stamps, coupons issued or voided, tier, referral); the same on a replay."
    )


class OrderBatchResult(OrderResult):
    replayed: bool = Field(
        description="True when this event changed nothing (the header of POST /v1/orders)."
    )


class OrdersBatchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    events: list[OrderIn] = Field(
        min_length=1,
        max_length=10_000,
        description="Order events, applied in this order (at most HUITOUKE_ORDERS_BATCH_MAX, "
        "default 1,000).",
    )


class OrdersBatchOut(BaseModel):
    events: int = Field(description="How many events the request carried.")
    replayed: int = Field(description="How many of them changed nothing.")
    results: list[OrderBatchResult] = Field(
        description="Per event, in order: what POST /v1/orders returns for it, and replayed."
    )


def _event(body: OrderIn, currency: str, index: int | None = None) -> OrderEventIn:
    """The order row and its lines (None: the event carries no lines, keep the stored ones)."""
    field = "source" if index is None else f"events[{index}].source"
    source = check_source(body.source, field=field, index=index)
    order = body.model_dump(exclude={"lines", "buyer"})
    order["source"] = source
    order["currency"] = order["currency"] or currency
    buyer = None if body.buyer is None else body.buyer.model_dump(exclude_none=True)
    contacts = buyer_contacts(body.customer_id, buyer or None)
    if body.lines is None:
        return OrderEventIn(order, None, contacts)
    lines = [
        {"source": source, "order_id": body.order_id, "line_no": i, **ln.model_dump()}
        for i, ln in enumerate(body.lines, start=1)
    ]
    return OrderEventIn(order, lines, contacts)


def _not_found(order_id: str, source: str | None) -> NotFoundError:
    named = order_id if source is None else f"{source}/{order_id}"
    return NotFoundError(
        t("service.order_not_found", "en", order_id=named),
        code="order.not_found",
        message_zh=t("service.order_not_found", "zh", order_id=named),
        details={"order_id": order_id, "source": source},
    )


def _apply_events(ctx: ServiceContext, events: Sequence[OrderEventIn]) -> list[dict[str, Any]]:
    """Order events in one unit of work: per event ``{order, loyalty, replayed}``."""

    def unit(conn: Connection) -> list[dict[str, Any]]:
        loyalty = loyalty_service(conn, ctx)
        keys = key_writer(ctx.settings)
        return record_order_events(conn, events, loyalty=loyalty, keys=keys).results

    return run_write(ctx.store, unit)


def _culprit(exc: Exception, n: int) -> int | None:
    """The event a failed unit's error names (a conflict's ``details.index``)."""
    index = exc.details.get("index") if isinstance(exc, HuitoukeError) else None
    return index if isinstance(index, int) else None


def _group_commit(ctx: ServiceContext) -> GroupCommit[OrderEventIn, dict[str, Any]]:
    """This process's group commit of ``POST /v1/orders`` (one per service context)."""
    gc = ctx.cache.get("orders.group_commit")
    if gc is None:
        gc = ctx.cache["orders.group_commit"] = GroupCommit(
            lambda items: _apply_events(ctx, items),
            lambda item: _apply_events(ctx, [item])[0],
            ctx.settings.orders_group_commit_max,
            _culprit,
        )
    return gc


@router.post("", response_model=OrderResult, responses={409: {"model": ErrorResponse}})
async def post_order(
    body: OrderIn,
    response: Response,
    ctx: ServiceContext = Depends(get_ctx),
    _: ApiKey = Depends(require("operator")),
) -> dict[str, Any]:
    """Record an order event and apply its loyalty effects (one unit of work).
    记录订单事件并计算积分、集章、返券等(同一事务)。

    Idempotent: posting the same event again changes nothing and returns the same body
    (with the header ``Idempotent-Replayed: true``). A later state of the order
    (partially_refunded, refunded, cancelled) applies the reversal; an older state arriving
    late never undoes a newer one.

    Events posted concurrently are committed together (group commit, at most
    ``HUITOUKE_ORDERS_GROUP_COMMIT_MAX`` per unit of work), each answered exactly as if it
    had been posted alone after the ones before it; an event that fails fails alone.
    """
    result = await _group_commit(ctx).submit(_event(body, ctx.settings.currency))
    if result["replayed"]:
        response.headers["Idempotent-Replayed"] = "true"
    return {"order": result["order"], "loyalty": result["loyalty"]}


@router.get(
    "/{order_id}",
    response_model=OrderOut,
    responses={
        404: {"model": ErrorResponse, "description": "order.not_found"},
        409: {
            "model": ErrorResponse,
            "description": "order.ambiguous: several sources use the id; name one (?source=)",
        },
    },
)
def get_order(
    order_id: str = Path(min_length=1, max_length=128, pattern=ID_PATTERN),
    source: str | None = Query(
        None,
        max_length=64,
        description="The order's source; needed only when several sources use the id.",
    ),
    ctx: ServiceContext = Depends(get_ctx),
    _: ApiKey = Depends(require("read")),
) -> dict[str, Any]:
    """One order as stored, with its lines. 查询订单。

    An order is identified by its source and id: without ``source``, the id's one order —
    or 409 ``order.ambiguous`` (naming the sources) when several sources use it."""
    o = run_read(ctx.store, lambda conn: find_order(conn, order_id, source))
    if o is None:
        raise _not_found(order_id, source)
    return present_order(o)


# -- batches -----------------------------------------------------------------------------------
def _indexed_loc(loc: Sequence[Any]) -> tuple[Any, ...]:
    """``("body", "events", 12, "amount")`` → ``("body", "events[12].amount")``."""
    if len(loc) < 2 or loc[0] != "body" or loc[1] != "events":
        return tuple(loc)
    text = ""
    for part in loc[1:]:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return ("body", text)


class _IndexedEventsRoute(APIRoute):
    """Names a bad event of a batch by its index: ``events[12].amount``."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as exc:
                errors = [{**e, "loc": _indexed_loc(e.get("loc", ()))} for e in exc.errors()]
                raise RequestValidationError(errors, body=exc.body) from None

        return route


def post_orders_batch(
    body: OrdersBatchIn,
    response: Response,
    ctx: ServiceContext = Depends(get_ctx),
    _: ApiKey = Depends(require("operator")),
) -> dict[str, Any]:
    """Record many order events and apply their loyalty effects in one unit of work.
    批量记录订单事件(同一事务),逐条返回与单条接口相同的结果。

    Each event gets exactly the body ``POST /v1/orders`` would have returned had the events
    been posted one by one in this order, plus ``replayed`` (the single endpoint's header).
    A bad event fails the whole request and stores nothing: validation errors name it
    (``events[12].amount``), a conflict carries ``details.index``. At most
    ``HUITOUKE_ORDERS_BATCH_MAX`` events (default 1,000). Re-posting the batch changes
    nothing and answers every event ``replayed: true`` (then with the header
    ``Idempotent-Replayed: true``).
    """
    limit = ctx.settings.orders_batch_max
    if len(body.events) > limit:
        raise InputError(
            t("service.batch_too_long", "en", n=len(body.events), limit=limit),
            code="input.invalid",
            message_zh=t("service.batch_too_long", "zh", n=len(body.events), limit=limit),
            details={
                "fields": [{"field": "events", "reason": f"at most {limit}", "type": "too_long"}]
            },
        )
    results = _apply_events(
        ctx, [_event(ev, ctx.settings.currency, i) for i, ev in enumerate(body.events)]
    )
    n_replayed = sum(r["replayed"] for r in results)
    if n_replayed == len(results):
        response.headers["Idempotent-Replayed"] = "true"
    return {"events": len(results), "replayed": n_replayed, "results": results}


router.add_api_route(
    "/batch",
    post_orders_batch,
    methods=["POST"],
    response_model=OrdersBatchOut,
    responses={409: {"model": ErrorResponse}},
    route_class_override=_IndexedEventsRoute,
    summary="Post Orders Batch",
)
