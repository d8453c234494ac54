"""Shopify orders as order events (pure): the Admin GraphQL ``Order`` node the pull reads,
and the REST-shaped JSON of the ``orders/create|updated|cancelled`` webhooks.

Mapping (both shapes):

- ``order_id``: the numeric id (``gid://shopify/Order/123`` → ``123``, the webhooks' ``id``);
- ``customer_id``: the customer's numeric id; a guest order without a customer is the buyer's
  ``email:<address>`` (lower case), else ``phone:<number>``; none of them: unmappable;
- ``ordered_at``: ``processedAt`` (when the order was placed — imported orders carry their
  original time there), else ``createdAt``; instants keep their offsets;
- ``amount``/``currency``: ``totalPriceSet.shopMoney`` — the shop's currency, never the
  buyer's presentment currency, so one shop's orders add up;
- ``refunded_amount``: ``totalRefundedSet.shopMoney`` (GraphQL) or the successful ``refund``
  transactions of ``refunds`` (webhooks), capped at the amount;
- ``status``: cancelled when ``cancelledAt`` is set; else refunded / partially refunded /
  paid by the refunded amount; an order not paid yet (``PENDING``, ``AUTHORIZED``,
  ``EXPIRED``, ``VOIDED``) is skipped until it is;
- lines: ``sku`` (else ``variant-<id>``), title, quantity, original unit price in shop money;
- the buyer (the order's ``buyer``: the customer's profile and matching keys): the customer's
  ``email`` and ``phone`` (else the order's), and its name from ``firstName``/``lastName``
  (webhooks: ``first_name``/``last_name``).
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from huitouke.connectors.model import MappedOrder, Skip, Unmappable, refund_status
from huitouke.connectors.values import gid_number, instant, money, person_name, text

__all__ = [
    "BULK_ORDERS_QUERY",
    "BULK_POLL_QUERY",
    "BULK_RUN_MUTATION",
    "ORDERS_QUERY",
    "ORDER_QUERY",
    "PAID_STATES",
    "WEBHOOK_TOPICS",
    "from_graphql",
    "from_webhook",
    "refund_order_id",
]

#: the webhook topics the connector takes
WEBHOOK_TOPICS = ("orders/create", "orders/updated", "orders/cancelled", "refunds/create")
#: financial states of an order that has been paid (upper case: GraphQL; webhooks lower)
PAID_STATES = frozenset({"PAID", "PARTIALLY_PAID", "PARTIALLY_REFUNDED", "REFUNDED"})

_ORDER_FIELDS = """
      id createdAt processedAt updatedAt cancelledAt displayFinancialStatus email phone
      totalPriceSet { shopMoney { amount currencyCode } }
      totalRefundedSet { shopMoney { amount currencyCode } }
      customer { id email phone firstName lastName }
      lineItems(first: 100) { nodes { id sku title quantity variant { id }
        originalUnitPriceSet { shopMoney { amount currencyCode } } } }
"""

#: one page of orders updated since a time, oldest update first
ORDERS_QUERY = (
    "query Orders($first: Int!, $after: String, $query: String) {\n"
    "  orders(first: $first, after: $after, query: $query, sortKey: UPDATED_AT) {\n"
    "    pageInfo { hasNextPage endCursor }\n"
    "    nodes {" + _ORDER_FIELDS + "    }\n  }\n}\n"
)
#: a bulk operation's query (a connection with ``edges { node }``, no ``first``: Shopify
#: runs it in the background and writes every node as one JSON line, a line item as its own
#: line naming its order in ``__parentId``)
BULK_ORDERS_QUERY = (
    "{ orders(query: %s, sortKey: UPDATED_AT) { edges { node {"
    " id createdAt processedAt updatedAt cancelledAt displayFinancialStatus email phone"
    " totalPriceSet { shopMoney { amount currencyCode } }"
    " totalRefundedSet { shopMoney { amount currencyCode } }"
    " customer { id email phone firstName lastName }"
    " lineItems { edges { node { id sku title quantity variant { id }"
    " originalUnitPriceSet { shopMoney { amount currencyCode } } } } }"
    " } } } }"
)
BULK_RUN_MUTATION = (
    "mutation Run($query: String!) {\n  bulkOperationRunQuery(query: $query) {\n"
    "    bulkOperation { id status }\n    userErrors { field message }\n  }\n}\n"
)
BULK_POLL_QUERY = (
    "query { currentBulkOperation { id status errorCode objectCount url partialDataUrl } }"
)

#: one order by its id (a refund's order, fetched when ``refunds/create`` arrives)
ORDER_QUERY = "query Order($id: ID!) {\n  order(id: $id) {" + _ORDER_FIELDS + "  }\n}\n"


def _shop_money(node: Mapping[str, Any] | None, field: str) -> tuple[Decimal, str | None]:
    shop = (node or {}).get("shopMoney") or (node or {}).get("shop_money")
    if not isinstance(shop, Mapping):
        raise Unmappable(f"{field}: missing shop money")
    cur = shop.get("currencyCode") or shop.get("currency_code")
    return money(shop.get("amount"), f"{field}.amount"), text(cur)


def _customer(order_id: str, customer: Any, email: Any, phone: Any) -> tuple[str, Any, Any]:
    c = customer if isinstance(customer, Mapping) else {}
    email = c.get("email") or email
    phone = c.get("phone") or phone
    if c.get("id") not in (None, ""):
        return gid_number(c["id"]), email, phone
    if email:
        return f"email:{str(email).strip().lower()}", email, phone
    if phone:
        return f"phone:{str(phone).strip()}", email, phone
    raise Unmappable(f"order {order_id}: no customer, e-mail or phone to know the buyer by")


def _finish(
    order_id: str,
    raw: Mapping[str, Any],
    *,
    created: str,
    processed: str,
    updated: str,
    cancelled: str,
    amount: Decimal,
    currency: str | None,
    refunded: Decimal,
    lines: list[dict[str, Any]],
) -> MappedOrder:
    customer_id, email, phone = _customer(
        order_id, raw.get("customer"), raw.get("email"), raw.get("phone")
    )
    if not currency:
        raise Unmappable(f"order {order_id}: no currency")
    ordered_at = instant(raw.get(processed) or raw.get(created), processed)
    status, refunded = refund_status(raw.get(cancelled) is not None, amount, refunded)
    return MappedOrder(
        order_id=order_id,
        customer_id=customer_id,
        ordered_at=ordered_at,
        updated_at=instant(raw.get(updated), updated),
        amount=amount,
        currency=currency,
        status=status,
        refunded_amount=refunded,
        lines=lines,
        email=text(email),
        phone=text(phone),
        name=person_name(raw.get("customer"), "firstName", "lastName")
        or person_name(raw.get("customer"), "first_name", "last_name"),
    )


def _check_paid(order_id: str, state: Any, cancelled: bool) -> None:
    if not cancelled and str(state or "").upper() not in PAID_STATES:
        raise Skip(f"order {order_id} is not paid ({state})")


def from_graphql(node: Mapping[str, Any]) -> MappedOrder:
    """An Admin GraphQL ``Order`` node (the fields of :data:`ORDERS_QUERY`)."""
    if not isinstance(node, Mapping) or not node.get("id"):
        raise Unmappable("order without an id")
    order_id = gid_number(node["id"])
    _check_paid(order_id, node.get("displayFinancialStatus"), node.get("cancelledAt") is not None)
    amount, currency = _shop_money(node.get("totalPriceSet"), "totalPriceSet")
    refunded = Decimal(0)
    if node.get("totalRefundedSet") is not None:
        refunded, _ = _shop_money(node["totalRefundedSet"], "totalRefundedSet")
    lines = []
    items = (node.get("lineItems") or {}).get("nodes") or [
        e.get("node") for e in (node.get("lineItems") or {}).get("edges") or []
    ]
    for i, item in enumerate(items):
        price, _ = _shop_money(item.get("originalUnitPriceSet"), f"lineItems[{i}].price")
        variant = (item.get("variant") or {}).get("id")
        lines.append(_line(item, i, price, variant))
    return _finish(
        order_id,
        node,
        created="createdAt",
        processed="processedAt",
        updated="updatedAt",
        cancelled="cancelledAt",
        amount=amount,
        currency=currency,
        refunded=refunded,
        lines=lines,
    )


def _line(item: Mapping[str, Any], i: int, price: Decimal, variant: Any) -> dict[str, Any]:
    sku = text(item.get("sku"))
    if sku is None:
        ref = variant or item.get("variant_id") or item.get("id")
        if ref in (None, ""):
            raise Unmappable(f"line {i}: no sku, variant or id")
        sku = f"variant-{gid_number(ref)}"
    q = item.get("quantity")
    if not isinstance(q, int) or isinstance(q, bool) or q < 0:
        raise Unmappable(f"line {i}: quantity {q!r} is not a whole number >= 0")
    return {
        "sku": sku,
        "product_name": text(item.get("title") or item.get("name")),
        "quantity": q,
        "unit_price": price,
    }


def from_webhook(payload: Mapping[str, Any]) -> MappedOrder:
    """The JSON of an ``orders/create|updated|cancelled`` delivery (the REST order shape)."""
    if not isinstance(payload, Mapping) or payload.get("id") in (None, ""):
        raise Unmappable("order without an id")
    order_id = gid_number(payload["id"])
    _check_paid(order_id, payload.get("financial_status"), payload.get("cancelled_at") is not None)
    if payload.get("total_price_set") is not None:
        amount, currency = _shop_money(payload["total_price_set"], "total_price_set")
    else:
        amount, currency = money(payload.get("total_price"), "total_price"), None
    currency = currency or text(payload.get("currency"))
    refunded = Decimal(0)
    for r, refund in enumerate(payload.get("refunds") or []):
        for k, tx in enumerate(refund.get("transactions") or []):
            if tx.get("kind") == "refund" and tx.get("status") in (None, "success"):
                refunded += money(tx.get("amount"), f"refunds[{r}].transactions[{k}].amount")
    lines = []
    for i, item in enumerate(payload.get("line_items") or []):
        price_set = item.get("price_set")
        if price_set is not None:
            price, _ = _shop_money(price_set, f"line_items[{i}].price_set")
        else:
            price = money(item.get("price"), f"line_items[{i}].price")
        lines.append(_line(item, i, price, item.get("variant_id")))
    return _finish(
        order_id,
        payload,
        created="created_at",
        processed="processed_at",
        updated="updated_at",
        cancelled="cancelled_at",
        amount=amount,
        currency=currency,
        refunded=refunded,
        lines=lines,
    )


def refund_order_id(payload: Mapping[str, Any]) -> str:
    """The order a ``refunds/create`` delivery is about."""
    if not isinstance(payload, Mapping) or payload.get("order_id") in (None, ""):
        raise Unmappable("refund without an order_id")
    return gid_number(payload["order_id"])
