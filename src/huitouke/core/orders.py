"""The canonical orders table that flows from import → store → analytics.

Importers produce it, the store persists and reloads it, the analytics engine reads it.
It is an Arrow table so it moves between pandas, DuckDB and Spark without copies.

Columns (``ORDERS_SCHEMA``):

``order_id``         string, unique per order (rows of data without ids get one made up
                     from the source file and line)
``customer_id``      string, never empty
``ordered_at``       timestamp[us, tz=UTC] — the instant; periods are cut in the merchant's zone
``amount``           decimal128(18, 4) — what the customer paid for the order, ≥ 0
``currency``         string, ISO 4217
``status``           string, one of :class:`OrderStatus`
``refunded_amount``  decimal128(18, 4), 0 ≤ refunded ≤ amount
``channel``          string or null — store / sales channel

BRIEF: only orders that are paid and not fully refunded or cancelled count; the revenue of a
counted order is ``amount − refunded_amount`` (a partial refund lowers revenue but the
order still counts).
"""

from __future__ import annotations

from enum import StrEnum

import pyarrow as pa

__all__ = ["COUNTED_STATUSES", "MONEY", "ORDERS_SCHEMA", "OrderStatus", "empty_orders"]

MONEY = pa.decimal128(18, 4)


class OrderStatus(StrEnum):
    PAID = "paid"
    PARTIALLY_REFUNDED = "partially_refunded"
    REFUNDED = "refunded"
    CANCELLED = "cancelled"


COUNTED_STATUSES: tuple[str, ...] = (OrderStatus.PAID.value, OrderStatus.PARTIALLY_REFUNDED.value)

ORDERS_SCHEMA = pa.schema(
    [
        pa.field("order_id", pa.string(), nullable=False),
        pa.field("customer_id", pa.string(), nullable=False),
        pa.field("ordered_at", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("amount", MONEY, nullable=False),
        pa.field("currency", pa.string(), nullable=False),
        pa.field("status", pa.string(), nullable=False),
        pa.field("refunded_amount", MONEY, nullable=False),
        pa.field("channel", pa.string(), nullable=True),
    ]
)


def empty_orders() -> pa.Table:
    return ORDERS_SCHEMA.empty_table()
