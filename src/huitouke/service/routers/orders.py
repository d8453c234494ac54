"""Order events: ``POST /v1/orders`` upserts the order and applies its loyalty effects in
one unit of work; idempotent by ``order_id`` and state."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Path, Response
from pydantic import BaseModel, Field
from sqlalchemy import Connection, select

from huitouke.errors import NotFoundError
from huitouke.i18n import t
from huitouke.service.apikeys import ApiKey
from huitouke.service.context import ServiceContext
from huitouke.service.deps import get_ctx, require
from huitouke.service.error_handlers import ERROR_RESPONSES, ErrorResponse
from huitouke.service.programs import loyalty_service
from huitouke.service.schemas import ID_PATTERN, OrderIn
from huitouke.service.uow import run_read, run_write
from huitouke.store.orders_repo import upsert_orders
from huitouke.store.tables import order_lines, orders

router = APIRouter(prefix="/v1/orders", tags=["orders"], responses=ERROR_RESPONSES)


class OrderOut(BaseModel):
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


def _money(v: Any) -> str:
    return format(v, "f")


def stored_order(conn: Connection, order_id: str) -> dict[str, Any] | None:
    row = conn.execute(select(orders).where(orders.c.order_id == order_id)).first()
    if row is None:
        return None
    o = dict(row._mapping)
    lines = [
        dict(r._mapping)
        for r in conn.execute(
            select(order_lines)
            .where(order_lines.c.order_id == order_id)
            .order_by(order_lines.c.line_no)
        )
    ]
    o["lines"] = lines
    return o


def present_order(o: dict[str, Any]) -> dict[str, Any]:
    return {
        "order_id": o["order_id"],
        "customer_id": o["customer_id"],
        "ordered_at": o["ordered_at"].isoformat(),
        "amount": _money(o["amount"]),
        "currency": o["currency"],
        "status": o["status"],
        "refunded_amount": _money(o["refunded_amount"]),
        "channel": o["channel"],
        "lines": [
            {
                "line_no": ln["line_no"],
                "sku": ln["sku"],
                "product_name": ln["product_name"],
                "category": ln["category"],
                "quantity": ln["quantity"],
                "unit_price": None if ln["unit_price"] is None else _money(ln["unit_price"]),
            }
            for ln in o["lines"]
        ],
    }


def _not_found(order_id: str) -> NotFoundError:
    return NotFoundError(
        t("service.order_not_found", "en", order_id=order_id),
        code="order.not_found",
        message_zh=t("service.order_not_found", "zh", order_id=order_id),
        details={"order_id": order_id},
    )


@router.post("", response_model=OrderResult, responses={409: {"model": ErrorResponse}})
def post_order(
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
    """
    order = body.model_dump(exclude={"lines"})
    order["currency"] = order["currency"] or ctx.settings.currency
    lines = [
        {"order_id": body.order_id, "line_no": i, **ln.model_dump()}
        for i, ln in enumerate(body.lines or [], start=1)
    ]

    def unit(conn: Connection) -> tuple[dict[str, Any], dict[str, Any], bool]:
        counts = upsert_orders(conn, [order], lines=lines if body.lines is not None else None)
        stored = stored_order(conn, body.order_id)
        assert stored is not None
        # The loyalty ledger follows the order's stored (latest) state, not the event:
        # a late "paid" after a refund must not earn again.
        event = dict(stored)
        event["lines"] = [
            {**ln, "unit_price": ln["unit_price"] if ln["unit_price"] is not None else 0}
            for ln in stored["lines"]
        ]
        effects = loyalty_service(conn, ctx).apply_order(conn, event)
        replayed = bool(effects.pop("replayed", False)) and counts.unchanged == 1
        return stored, effects, replayed

    stored, effects, replayed = run_write(ctx.store, unit)
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return {"order": present_order(stored), "loyalty": effects}


@router.get(
    "/{order_id}",
    response_model=OrderOut,
    responses={404: {"model": ErrorResponse, "description": "order.not_found"}},
)
def get_order(
    order_id: str = Path(min_length=1, max_length=128, pattern=ID_PATTERN),
    ctx: ServiceContext = Depends(get_ctx),
    _: ApiKey = Depends(require("read")),
) -> dict[str, Any]:
    """One order as stored, with its lines. 查询订单。"""
    o = run_read(ctx.store, lambda conn: stored_order(conn, order_id))
    if o is None:
        raise _not_found(order_id)
    return present_order(o)
