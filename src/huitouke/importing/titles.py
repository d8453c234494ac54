"""Order lines from a cell that joins several item titles (Taobao's 宝贝标题).

Taobao's order report (订单报表) has one row per order: 宝贝标题 holds the titles of all its
items joined in one cell, 宝贝种类 how many different items there are and 宝贝总数量 the
total quantity. A cell is split on the first separator (``，`` ``；`` ``;`` ``,`` ``|``
``、``) that yields exactly 宝贝种类 titles — titles themselves may contain any of these,
so the count decides, never the separator alone. Each title becomes a line; its quantity is
the total when there is one item, and otherwise 1 — exact when the total equals the
number of items, and the one thing known (each item was bought at least once) when it
does not (the report does not say which item the extra pieces were). A cell that no separator splits into the stated number of titles keeps
one line with the whole text (the product cannot be told, and is not guessed).
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from huitouke.store.orders_repo import LINES_SCHEMA

__all__ = ["SEPARATORS", "kinds_by_order", "split_titles"]

SEPARATORS = ("，", "；", ";", ",", "|", "、")


def _split(title: str, kinds: int) -> list[str] | None:
    for sep in SEPARATORS:
        parts = [p.strip() for p in title.split(sep)]
        if len(parts) == kinds and all(parts):
            return parts
    return None


def split_titles(lines: pa.Table, kinds: pa.Table) -> pa.Table:
    """``lines`` (``LINES_SCHEMA``, one line per order holding the joined titles) with each
    multi-item order's line split into one line per title; ``kinds`` maps ``order_id`` to
    the number of items (``kinds``)."""
    if lines.num_rows == 0 or kinds.num_rows == 0:
        return lines
    multi = kinds.filter(pc.greater(pc.fill_null(kinds.column("kinds"), 1), 1))
    if multi.num_rows == 0:
        return lines
    hit = pc.is_in(lines.column("order_id"), value_set=multi.column("order_id"))
    if not pc.any(hit).as_py():
        return lines
    n_of = dict(
        zip(multi.column("order_id").to_pylist(), multi.column("kinds").to_pylist(), strict=True)
    )
    keep = lines.filter(pc.invert(hit))
    out: dict[str, list[object]] = {name: [] for name in LINES_SCHEMA.names}
    for row in lines.filter(hit).to_pylist():
        n = int(n_of[row["order_id"]])
        parts = _split(row["product_name"] or "", n)
        if parts is None:
            for name in LINES_SCHEMA.names:
                out[name].append(row[name])
            continue
        each = 1
        for i, title in enumerate(parts):
            for name in LINES_SCHEMA.names:
                out[name].append(row[name])
            out["line_no"][-1] = row["line_no"] + i
            out["product_name"][-1] = title
            out["quantity"][-1] = each
            out["unit_price"][-1] = None
            out["sku"][-1] = None
    split = pa.table(out, schema=LINES_SCHEMA)
    merged = pa.concat_tables([keep, split])
    order = pc.sort_indices(merged, [("order_id", "ascending"), ("line_no", "ascending")])
    return merged.take(order)


def kinds_by_order(order_id: pa.Array, kinds: pa.Array) -> pa.Table:
    """The item count per order (the largest stated on its rows)."""
    t = pa.table({"order_id": order_id, "kinds": kinds})
    agg = t.group_by("order_id", use_threads=False).aggregate([("kinds", "max")])
    return agg.rename_columns(["order_id", "kinds"])
