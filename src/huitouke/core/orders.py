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
``source``           string — the namespace the order id lives in (the shop, platform or
                     channel it was exported from: ``taobao``, ``shopify``…); an order is
                     identified by ``(source, order_id)``, so two sources may use the same
                     ids. :data:`DEFAULT_SOURCE` unless a door is told otherwise; a short
                     identifier (:data:`SOURCE_PATTERN`)

BRIEF: only orders that are paid and not fully refunded or cancelled count; the revenue of a
counted order is ``amount − refunded_amount`` (a partial refund lowers revenue but the
order still counts).
"""

from __future__ import annotations

import re
from enum import StrEnum

import pyarrow as pa

from huitouke.errors import InputError

__all__ = [
    "COUNTED_STATUSES",
    "DEFAULT_SOURCE",
    "MONEY",
    "ORDERS_SCHEMA",
    "SOURCE_PATTERN",
    "OrderStatus",
    "empty_orders",
    "is_source_name",
    "order_ref",
    "readable_ref",
    "split_order_ref",
    "with_source",
]

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
        pa.field("source", pa.string(), nullable=False),
    ]
)

#: the source of orders recorded without one — and of every order a store held before
#: sources existed
DEFAULT_SOURCE = "default"
#: what a source name may be: 1–32 of lower-case ASCII letters, digits, ``_`` and ``-``
SOURCE_PATTERN = r"^[a-z0-9_-]{1,32}$"
_SOURCE_RE = re.compile(SOURCE_PATTERN)


def is_source_name(name: object) -> bool:
    """``name`` is a valid source name (:data:`SOURCE_PATTERN`)."""
    return isinstance(name, str) and _SOURCE_RE.fullmatch(name) is not None


def with_source(table: pa.Table, source: str | None = None) -> pa.Table:
    """``table`` with a ``source`` column: ``source`` for every row when given (replacing
    any column there was), else the table's own column, else :data:`DEFAULT_SOURCE`."""
    names = table.column_names
    if source is None and "source" in names:
        return table
    col = pa.repeat(pa.scalar(source or DEFAULT_SOURCE, pa.string()), table.num_rows)
    if "source" in names:
        return table.set_column(names.index("source"), "source", col)
    return table.append_column("source", col)


def empty_orders() -> pa.Table:
    return ORDERS_SCHEMA.empty_table()


#: joins a source and an order id in :func:`order_ref` (no order id holds a control character)
REF_SEPARATOR = "\x1f"


def order_ref(source: str, order_id: str) -> str:
    """An order's key ``(source, order_id)`` as one string, for the places that reference an
    order in one text column — the loyalty ledger's entry references ``order:<ref>`` and
    operation keys, the source of a coupon an order issued, a referral's first order, the
    order a coupon was redeemed on; the per-order frames of journeys and measurement.

    An order of the default source is its id, exactly as before sources existed (so the
    references and idempotency keys of a store's earlier orders stay valid); any other is
    ``<source>`` and ``<order_id>`` joined by the unit separator ``\x1f``, which no order
    id holds (the store refuses ids with control characters), so two orders never share a
    reference.
    """
    return order_id if source == DEFAULT_SOURCE else f"{source}{REF_SEPARATOR}{order_id}"


def readable_ref(text: str) -> str:
    """A text holding order references (a ledger entry's ``order:<ref>``) as a person reads
    it: ``<source>:<order_id>`` for orders of a named source, unchanged otherwise."""
    return text.replace(REF_SEPARATOR, ":")


def split_order_ref(ref: str) -> tuple[str, str]:
    """``(source, order_id)`` of a reference made by :func:`order_ref`."""
    source, sep, order_id = ref.partition(REF_SEPARATOR)
    return (source, order_id) if sep else (DEFAULT_SOURCE, ref)


# -- the errors every engine raises for orders it reads itself ------------------------------
def null_value_error(column: str, n: int) -> InputError:
    """``n`` empty values in a required column."""
    return InputError(
        f"column {column} has {n} empty value(s)",
        code="input.null_value",
        message_zh=f"列 {column} 有 {n} 个空值",
        details={"column": column},
    )


def unknown_status_error(found: list[str]) -> InputError:
    """Statuses outside :class:`OrderStatus`."""
    known = sorted(s.value for s in OrderStatus)
    return InputError(
        f"unknown order status(es) {sorted(found)}; expected {known}",
        code="input.bad_status",
        message_zh=f"未知的订单状态 {sorted(found)};应为 {known}",
        details={"column": "status"},
    )


def duplicate_ids_error(ids: list[str], n: int | None = None) -> InputError:
    """Order ids that occur more than once within a source (``n``: how many, when counted;
    ``ids``: a few examples)."""
    eg = ", ".join(map(str, ids))
    counted, counted_zh = (f"{n} ", f"有 {n} 个") if n is not None else ("", "")
    return InputError(
        f"{counted}order id(s) occur more than once (e.g. {eg}); "
        "deduplicate by order id before analysing (the importer does)",
        code="input.duplicate_order_id",
        message_zh=f"{counted_zh}订单号重复(如 {eg});请先按订单号去重(导入时会自动去重)",
        details={"column": "order_id", "duplicates": ids},
    )
