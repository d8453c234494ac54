"""A Shopify bulk operation's JSONL, read column by column (the backfill's fast path).

A bulk operation's file holds an order per line, each of its line items on a line of its own
after it, naming it in ``__parentId``. :func:`blocks` cuts the downloaded bytes into blocks
of whole orders (a block ends before an order's line, so an order's items are in its
block); :func:`read_block` reads a block with Arrow's JSON reader (in C++, no Python object
per value) and maps its orders to the canonical tables — the same values as
:func:`~huitouke.connectors.shopify.from_graphql` and
:func:`~huitouke.app.orders.order_event` give, computed on whole columns.

The columns vouch only for what they check: an order line whose values are not in the
plain shapes below is left to the per-order mapping (``Block.slow``, by row): a guest order
(no customer id), an amount or time written another way, a line without a sku or variant, a
contact too long, a status in other than ASCII. A block that the reader cannot read with
the expected types, or whose orders repeat an id, is left whole to it (``read_block``
answers ``None``); so is any value Arrow refuses while mapping.

Plain shapes: amounts ``^[0-9]{1,14}(\\.[0-9]{1,4})?$`` (the money columns' range and
scale, never negative); instants ``YYYY-MM-DDTHH:MM:SS[.ffffff](Z|±hh:mm)``; currencies
three upper-case ASCII letters; ids without control characters.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from huitouke.connectors.model import Unmappable, in_clear
from huitouke.connectors.shopify import PAID_STATES
from huitouke.connectors.values import person_name
from huitouke.core.orders import MONEY, ORDERS_SCHEMA
from huitouke.identity.service import Contacts
from huitouke.store.orders_repo import STORE_LINES_SCHEMA

__all__ = ["BULK_SCHEMA", "Block", "blocks", "read_block"]

_MONEY_SET = pa.struct(
    [pa.field("shopMoney", pa.struct([("amount", pa.string()), ("currencyCode", pa.string())]))]
)
#: every field of an order line and of a line item line the mapping reads (others ignored)
BULK_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("__parentId", pa.string()),
        ("createdAt", pa.string()),
        ("processedAt", pa.string()),
        ("updatedAt", pa.string()),
        ("cancelledAt", pa.string()),
        ("displayFinancialStatus", pa.string()),
        ("email", pa.string()),
        ("phone", pa.string()),
        ("totalPriceSet", _MONEY_SET),
        ("totalRefundedSet", _MONEY_SET),
        ("customer", pa.struct([("id", pa.string()), ("email", pa.string()),
                                ("phone", pa.string()), ("firstName", pa.string()),
                                ("lastName", pa.string())])),
        ("sku", pa.string()),
        ("title", pa.string()),
        ("name", pa.string()),
        ("quantity", pa.int64()),
        ("variant", pa.struct([("id", pa.string())])),
        ("originalUnitPriceSet", _MONEY_SET),
    ]
)  # fmt: skip
_PARENT = b'"__parentId"'
_AMOUNT = r"^[0-9]{1,14}(\.[0-9]{1,4})?$"
_INSTANT = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?(Z|[+-](0[0-9]|1[0-4]):[0-5][0-9])$"
_CONTROL = r"[\x00-\x1f\x7f]"
_EMAIL_MAX, _PHONE_MAX = 320, 40
_NAME_PART_MAX = 99  # two parts and a space within the profile's 200
_TS = pa.timestamp("us", tz="UTC")


@dataclass
class Block:
    """A block of a bulk file: its lines, and its orders as far as the columns map them.

    ``orders``/``lines``: canonical tables (``ORDERS_SCHEMA`` and ``STORE_LINES_SCHEMA``)
    of the orders mapped here, each with ``_at`` (the platform's update time) and ``_row``
    (the order's line in the block; lines: their order's); ``contacts``: per mapped order
    with a buyer e-mail or phone, ``(_at, _row, Contacts)``; ``slow``: the order lines
    left to the per-order mapping, with their items' lines; ``ignored``: the orders not
    paid yet (not counted as orders, as the per-order mapping skips them); ``latest``: the
    latest update time of the block's orders."""

    lines_raw: list[bytes]
    orders: pa.Table
    lines: pa.Table
    contacts: list[tuple[datetime, int, Contacts]]
    slow: list[tuple[int, list[int]]]
    ignored: list[int]
    latest: datetime | None


def blocks(chunks: Iterable[bytes], size: int) -> Iterator[bytes]:
    """The bytes of ``chunks`` cut into blocks of about ``size`` bytes or more, each ending
    with a line's end and before an order's line (a line without ``__parentId``), so that
    an order and the item lines after it stay in one block."""
    buf = bytearray()
    for chunk in chunks:
        buf += chunk
        if len(buf) < size:
            continue
        cut = _cut(buf)
        if cut > 0:
            yield bytes(buf[:cut])
            del buf[:cut]
    if buf.strip():
        yield bytes(buf)


def _cut(buf: bytearray) -> int:
    """Where the last complete order line of ``buf`` starts (0: none past the first line)."""
    end = buf.rfind(b"\n")
    while end > 0:
        start = buf.rfind(b"\n", 0, end) + 1
        line = buf[start:end]
        if line.strip() and _PARENT not in line:
            return start
        end = start - 1
    return 0


def _gid(arr: pa.Array) -> pa.Array:
    """``gid://shopify/Order/123`` → ``123`` (``values.gid_number``)."""
    return pc.if_else(
        pc.starts_with(arr, "gid://"), pc.replace_substring_regex(arr, r"^gid://.*/", ""), arr
    )


def _given(arr: pa.Array) -> pa.Array:
    """Set and not empty (what ``values.text`` keeps), as a bool without nulls."""
    return pc.fill_null(pc.not_equal(arr, ""), False)


def _either(first: pa.Array, second: pa.Array) -> pa.Array:
    """``first or second`` (Python's ``or`` on optional texts)."""
    return pc.if_else(_given(first), first, second)


def _match(arr: pa.Array, pattern: str) -> pa.Array:
    return pc.fill_null(pc.match_substring_regex(arr, pattern), False)


def _money_amount(col: pa.Array) -> pa.Array:
    return pc.struct_field(pc.struct_field(col, "shopMoney"), "amount")


def _instants(arr: pa.Array, ok: pa.Array) -> pa.Array:
    """The plain ISO 8601 instants of ``arr`` (where ``ok``) in UTC; null elsewhere."""
    text = pc.if_else(ok, arr, pa.scalar("1970-01-01T00:00:00Z"))
    return pc.if_else(ok, text.cast(_TS), pa.scalar(None, _TS))


def read_block(data: bytes, source: str) -> Block | None:
    """The orders of a block (whole lines, see :func:`blocks`) mapped by columns, for the
    connector ``source``; ``None``: the block is for the per-order mapping whole."""
    lines_raw = [ln for ln in data.split(b"\n") if ln.strip()]
    if not lines_raw:
        return Block(lines_raw, _empty(ORDERS_SCHEMA), _empty(STORE_LINES_SCHEMA), [], [], [], None)
    try:
        t = pj.read_json(
            pa.BufferReader(b"\n".join(lines_raw)),
            read_options=pj.ReadOptions(use_threads=True, block_size=1 << 22),
            parse_options=pj.ParseOptions(
                explicit_schema=BULK_SCHEMA, unexpected_field_behavior="ignore"
            ),
        )
        if t.num_rows != len(lines_raw):
            return None
        return _map(t.combine_chunks(), lines_raw, source)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return None


def _empty(schema: pa.Schema) -> pa.Table:
    return (
        schema.empty_table()
        .append_column("_at", pa.array([], _TS))
        .append_column("_row", pa.array([], pa.int64()))
    )


def _map(t: pa.Table, lines_raw: list[bytes], source: str) -> Block | None:
    parent = t.column("__parentId").combine_chunks()
    is_order = pc.is_null(parent)
    order_rows = np.flatnonzero(is_order.to_numpy(zero_copy_only=False))
    item_rows = np.flatnonzero(pc.invert(is_order).to_numpy(zero_copy_only=False))
    o = t.take(pa.array(order_rows, pa.int64()))
    it = t.take(pa.array(item_rows, pa.int64()))

    # -- the orders' identity: ids, update times (the per-order path raises on a bad one)
    gid = o.column("id").combine_chunks()
    if gid.null_count or len(pc.unique(gid)) != len(gid):
        return None
    order_id = _gid(gid)
    if len(pc.unique(order_id)) != len(order_id):
        return None
    updated_ok = _match(o.column("updatedAt"), _INSTANT)
    updated = _instants(o.column("updatedAt").combine_chunks(), updated_ok)
    id_ok = pc.and_(_given(order_id), pc.invert(_match(order_id, _CONTROL)))
    latest = pc.max(updated).as_py()  # (the lines left out: their own times, later)

    # -- each item to its order (an item of an order not in the block: as the per-order
    # reading, an error)
    item_parent = pc.index_in(it.column("__parentId"), value_set=gid)
    if item_parent.null_count:
        orphan = it.column("__parentId")[pc.index(pc.is_null(item_parent), True).as_py()]
        raise Unmappable(f"bulk line item of {orphan.as_py()} before its order")
    item_parent_np = item_parent.to_numpy(zero_copy_only=False).astype(np.int64)

    # -- items
    price_s = _money_amount(it.column("originalUnitPriceSet").combine_chunks())
    price_ok = _match(price_s, _AMOUNT)
    qty = it.column("quantity").combine_chunks()
    qty_ok = pc.fill_null(pc.greater_equal(qty, 0), False)
    sku = it.column("sku").combine_chunks()
    variant = pc.struct_field(it.column("variant").combine_chunks(), "id")
    sku_out = pc.if_else(
        _given(sku), sku, pc.binary_join_element_wise("variant-", _gid(variant), "")
    )
    sku_ok = pc.or_(_given(sku), _given(variant))
    item_ok = pc.and_(pc.and_(price_ok, qty_ok), sku_ok).to_numpy(zero_copy_only=False)
    bad_item_orders = np.zeros(len(order_rows), dtype=bool)
    bad_item_orders[item_parent_np[~item_ok]] = True

    # -- orders
    cancelled = pc.is_valid(o.column("cancelledAt")).combine_chunks()
    state = o.column("displayFinancialStatus").combine_chunks()
    state_ascii = pc.fill_null(pc.string_is_ascii(state), True)
    paid = pc.fill_null(
        pc.is_in(pc.ascii_upper(state), value_set=pa.array(sorted(PAID_STATES))), False
    )
    unpaid = pc.and_(pc.invert(cancelled), pc.and_(state_ascii, pc.invert(paid)))
    amount_s = _money_amount(o.column("totalPriceSet").combine_chunks())
    currency = pc.struct_field(
        pc.struct_field(o.column("totalPriceSet").combine_chunks(), "shopMoney"), "currencyCode"
    )
    refunded_set = o.column("totalRefundedSet").combine_chunks()
    refunded_s = _money_amount(refunded_set)
    refunded_ok = pc.or_(pc.is_null(refunded_set), _match(refunded_s, _AMOUNT))
    customer = o.column("customer").combine_chunks()
    cust_id = pc.struct_field(customer, "id")
    email = _either(pc.struct_field(customer, "email"), o.column("email").combine_chunks())
    phone = _either(pc.struct_field(customer, "phone"), o.column("phone").combine_chunks())
    contacts_ok = pc.and_(
        pc.and_(
            pc.fill_null(pc.less_equal(pc.utf8_length(email), _EMAIL_MAX), True),
            pc.fill_null(pc.less_equal(pc.utf8_length(phone), _PHONE_MAX), True),
        ),
        # a name's parts within the profile's 200 characters (longer: the per-order mapping)
        pc.and_(
            pc.fill_null(pc.less_equal(pc.utf8_length(
                pc.struct_field(customer, "firstName")), _NAME_PART_MAX), True),
            pc.fill_null(pc.less_equal(pc.utf8_length(
                pc.struct_field(customer, "lastName")), _NAME_PART_MAX), True),
        ),
    )  # fmt: skip
    customer_id = _gid(cust_id)
    ordered_s = _either(
        o.column("processedAt").combine_chunks(), o.column("createdAt").combine_chunks()
    )
    ordered_ok = _match(ordered_s, _INSTANT)
    fast = pc.and_(
        pc.and_(pc.and_(_match(amount_s, _AMOUNT), _match(currency, r"^[A-Z]{3}$")), refunded_ok),
        pc.and_(
            pc.and_(_given(customer_id), contacts_ok),
            pc.and_(ordered_ok, pc.and_(state_ascii, pc.invert(pa.array(bad_item_orders)))),
        ),
    )
    known = pc.and_(id_ok, updated_ok)  # the per-order path decides about the others
    ignored_mask = pc.and_(known, unpaid).to_numpy(zero_copy_only=False)
    fast_arr = pc.and_(pc.and_(known, pc.invert(unpaid)), fast)
    fast_mask = fast_arr.to_numpy(zero_copy_only=False)
    slow_mask = ~(ignored_mask | fast_mask)

    # amounts, refunds, statuses
    zero = pa.scalar(0, MONEY)
    amount = pc.if_else(fast_arr, amount_s, "0").cast(MONEY)
    refunded = pc.if_else(pc.and_(fast_arr, pc.is_valid(refunded_set)), refunded_s, "0").cast(MONEY)
    refunded = pc.if_else(pc.greater(refunded, amount), amount, refunded)
    full = pc.and_(pc.greater(amount, zero), pc.greater_equal(refunded, amount))
    some = pc.greater(refunded, zero)
    status = pc.case_when(
        pc.make_struct(cancelled, full, some),
        pa.scalar("cancelled"),
        pa.scalar("refunded"),
        pa.scalar("partially_refunded"),
        pa.scalar("paid"),
    )
    refunded = pc.if_else(
        cancelled, refunded, pc.if_else(full, amount, pc.if_else(some, refunded, zero))
    )
    ordered_at = _instants(ordered_s, pc.and_(ordered_ok, fast_arr))
    rows = pa.array(order_rows, pa.int64())
    orders = pa.table(
        {
            "order_id": order_id,
            "customer_id": customer_id,
            "ordered_at": ordered_at,
            "amount": amount,
            "currency": currency,
            "status": status,
            "refunded_amount": refunded,
            "channel": pa.nulls(len(order_rows), pa.string()),
            "source": pa.array([source] * len(order_rows), pa.string()),
            "_at": updated,
            "_row": rows,
        }
    ).filter(fast_arr)
    orders = orders.cast(
        pa.schema([*ORDERS_SCHEMA, pa.field("_at", _TS), pa.field("_row", pa.int64())])
    )

    # lines of the mapped orders, numbered in file order within their order
    keep = fast_mask[item_parent_np]
    ip = item_parent_np[keep]
    items = it.filter(pa.array(keep))
    order_by = np.argsort(ip, kind="stable")
    ip = ip[order_by]
    items = items.take(pa.array(order_by, pa.int64()))
    line_no = np.arange(len(ip), dtype=np.int64) - np.searchsorted(ip, ip, side="left") + 1
    title = items.column("title").combine_chunks()
    name = items.column("name").combine_chunks()
    lines = pa.table(
        {
            "source": pa.array([source] * len(ip), pa.string()),
            "order_id": order_id.take(pa.array(ip, pa.int64())),
            "line_no": pa.array(line_no, pa.int32()),
            "sku": sku_out.filter(pa.array(keep)).take(pa.array(order_by, pa.int64())),
            "product_name": pc.if_else(
                _given(title), title, pc.if_else(_given(name), name, pa.scalar(None, pa.string()))
            ),
            "category": pa.nulls(len(ip), pa.string()),
            "quantity": items.column("quantity"),
            "unit_price": _money_amount(items.column("originalUnitPriceSet").combine_chunks()).cast(
                MONEY
            ),
            "_at": updated.take(pa.array(ip, pa.int64())),
            "_row": rows.take(pa.array(ip, pa.int64())),
        }
    )
    lines = lines.cast(
        pa.schema([*STORE_LINES_SCHEMA, pa.field("_at", _TS), pa.field("_row", pa.int64())])
    )

    # buyers' contacts of the mapped orders
    # (as the per-order mapping: the name from its parts, masked values left out)
    first = pc.struct_field(customer, "firstName")
    last = pc.struct_field(customer, "lastName")
    has_contact = pc.and_(
        fast_arr,
        pc.or_(pc.or_(_given(email), _given(phone)), pc.or_(_given(first), _given(last))),
    )
    contacts = [
        (at, int(row), Contacts(
            cid, phone=in_clear(p), email=in_clear(e),
            name=in_clear(person_name({"f": f, "l": la}, "f", "l")),
        ))
        for at, row, cid, p, e, f, la in zip(
            updated.filter(has_contact).to_pylist(),
            order_rows[has_contact.to_numpy(zero_copy_only=False)],
            customer_id.filter(has_contact).to_pylist(),
            phone.filter(has_contact).to_pylist(),
            email.filter(has_contact).to_pylist(),
            first.filter(has_contact).to_pylist(),
            last.filter(has_contact).to_pylist(),
            strict=True,
        )
    ]  # fmt: skip

    # the order lines left to the per-order mapping, with their items' lines
    slow_idx = np.flatnonzero(slow_mask)
    by_order: dict[int, list[int]] = {int(i): [] for i in slow_idx}
    if len(slow_idx):
        for k in np.flatnonzero(np.isin(item_parent_np, slow_idx)):
            by_order[int(item_parent_np[k])].append(int(item_rows[k]))
    slow = [(int(order_rows[i]), by_order[int(i)]) for i in slow_idx]
    ignored = [int(order_rows[i]) for i in np.flatnonzero(ignored_mask)]
    return Block(lines_raw, orders, lines, contacts, slow, ignored, latest)
