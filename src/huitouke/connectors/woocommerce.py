"""WooCommerce orders as order events (pure): the REST v3 order JSON
(``GET /wp-json/wc/v3/orders``) — also the body of its ``order.created|updated`` webhooks.

Mapping:

- ``order_id``: ``id``; ``customer_id``: ``customer_id`` when not 0, else the guest's
  ``email:<billing.email>`` (lower case), else ``phone:<billing.phone>``; none: unmappable;
- ``ordered_at``: ``date_created_gmt`` (not ``date_paid_gmt``, which a cash-on-delivery
  order gains later: an order's time never changes); WooCommerce writes these without an
  offset and they are UTC by definition; ``updated_at``: ``date_modified_gmt``;
- ``amount``/``currency``: ``total``, ``currency``; ``refunded_amount``: the sum of the
  ``refunds`` (their ``total`` is negative), capped at the amount;
- ``status``: ``processing``/``completed`` are paid (partially refunded / refunded by the
  refunds), ``refunded`` is refunded in full, ``cancelled`` cancelled; ``pending``,
  ``on-hold``, ``failed``, ``checkout-draft``, ``trash`` are skipped (not paid);
- lines: ``sku`` (else ``product-<product_id>``, ``-<variation_id>`` for a variation),
  ``name``, ``quantity``, ``price``;
- the buyer (the order's ``buyer``: the customer's profile and matching keys): ``billing``'s
  ``email``, ``phone`` and name (``first_name``/``last_name``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from huitouke.connectors.model import MappedOrder, Skip, Unmappable, refund_status
from huitouke.connectors.values import money, person_name, text

__all__ = ["PAID_STATES", "WEBHOOK_TOPICS", "from_rest", "gmt"]

WEBHOOK_TOPICS = ("order.created", "order.updated")
PAID_STATES = frozenset({"processing", "completed", "refunded", "cancelled"})


def gmt(value: Any, field: str) -> datetime:
    """A WooCommerce ``*_gmt`` time (written without an offset; UTC by definition) — or one
    with an offset, read as it says."""
    if not isinstance(value, str) or not value:
        raise Unmappable(f"{field}: missing time")
    try:
        d = datetime.fromisoformat(value)
    except ValueError:
        raise Unmappable(f"{field}: not an ISO 8601 time: {value!r}") from None
    return d if d.tzinfo is not None else d.replace(tzinfo=UTC)


def _customer(order_id: str, raw: Mapping[str, Any]) -> tuple[str, str | None, str | None]:
    got = raw.get("billing")
    billing: Mapping[str, Any] = got if isinstance(got, Mapping) else {}
    email, phone = text(billing.get("email")), text(billing.get("phone"))
    cid = raw.get("customer_id")
    if cid not in (None, "", 0, "0"):
        return str(cid), email, phone
    if email:
        return f"email:{email.strip().lower()}", email, phone
    if phone:
        return f"phone:{phone.strip()}", email, phone
    raise Unmappable(f"order {order_id}: no customer, e-mail or phone to know the buyer by")


def _line(item: Mapping[str, Any], i: int) -> dict[str, Any]:
    sku = text(item.get("sku"))
    if sku is None:
        pid, vid = item.get("product_id"), item.get("variation_id")
        if pid in (None, "", 0):
            raise Unmappable(f"line_items[{i}]: no sku or product_id")
        sku = f"product-{pid}" + (f"-{vid}" if vid not in (None, "", 0) else "")
    q = item.get("quantity")
    if not isinstance(q, int) or isinstance(q, bool) or q < 0:
        raise Unmappable(f"line_items[{i}].quantity: {q!r} is not a whole number >= 0")
    return {
        "sku": sku,
        "product_name": text(item.get("name")),
        "quantity": q,
        "unit_price": money(item.get("price"), f"line_items[{i}].price"),
    }


def from_rest(raw: Mapping[str, Any]) -> MappedOrder:
    """A WooCommerce REST v3 order (amounts read as decimals: parse the JSON with
    ``parse_float=Decimal``)."""
    if not isinstance(raw, Mapping) or raw.get("id") in (None, "", 0):
        raise Unmappable("order without an id")
    order_id = str(raw["id"])
    state = str(raw.get("status") or "")
    if state not in PAID_STATES:
        raise Skip(f"order {order_id} is not paid ({state or 'no status'})")
    amount = money(raw.get("total"), "total")
    currency = text(raw.get("currency"))
    if currency is None:
        raise Unmappable(f"order {order_id}: no currency")
    refunded = sum(
        (
            abs(money(r.get("total"), f"refunds[{i}].total"))
            for i, r in enumerate(raw.get("refunds") or [])
        ),
        Decimal(0),
    )
    if state == "refunded":
        refunded = amount
    status, refunded = refund_status(state == "cancelled", amount, refunded)
    customer_id, email, phone = _customer(order_id, raw)
    return MappedOrder(
        order_id=order_id,
        customer_id=customer_id,
        ordered_at=gmt(raw.get("date_created_gmt"), "date_created_gmt"),
        updated_at=gmt(raw.get("date_modified_gmt"), "date_modified_gmt"),
        amount=amount,
        currency=currency,
        status=status,
        refunded_amount=refunded,
        lines=[_line(item, i) for i, item in enumerate(raw.get("line_items") or [])],
        email=email,
        phone=phone,
        name=person_name(raw.get("billing"), "first_name", "last_name"),
    )
