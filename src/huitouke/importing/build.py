"""From a preset's canonical string columns to validated orders, lines and rejects.

Presets only say *where* each canonical field is in their file and how their statuses read;
everything else — parsing, the reject rules, duplicate merging and line aggregation — is
here, once, vectorised.

Status tokens a preset may produce besides the four canonical statuses:
``closed`` (a closed trade: ``refunded`` / ``partially_refunded`` when money was refunded,
``cancelled`` otherwise), ``!unpaid`` (rejected: unpaid orders are not stored) and
``!unknown`` (rejected: status not understood). For ``paid`` and ``partially_refunded``
rows a refunded amount > 0 sets the status from the amounts (refund ≥ amount → refunded);
``refunded`` without a refunded amount means the whole amount.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal as Dec
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from huitouke.core.orders import COUNTED_STATUSES, MONEY, ORDERS_SCHEMA, with_source
from huitouke.errors import ImportFileError
from huitouke.importing.convert import (
    Decimal,
    clean,
    mask,
    on_dictionary,
    parse_amount,
    parse_int,
)
from huitouke.importing.dates import DateOrder, DateOrderUnclear, parse_instant
from huitouke.importing.messages import reason_texts
from huitouke.importing.sources import RawData, norm_header
from huitouke.importing.titles import kinds_by_order, split_titles
from huitouke.store.orders_repo import LINES_SCHEMA, has_adjacent_equal, reduce_to_latest_state

__all__ = ["Canon", "Reject", "RejectSink", "build"]


@dataclass(frozen=True)
class Reject:
    """One rejected row: where it is, which field, the value and why (en + zh)."""

    file: str
    line: int
    field: str
    value: str
    reason_code: str
    reason_en: str
    reason_zh: str


@dataclass
class RejectSink:
    """Collects rejected rows by row index; the first reason found for a row wins."""

    raw: RawData
    n: int
    alive: np.ndarray = field(init=False)
    _items: list[tuple[np.ndarray, str, list[Any], str, dict[str, Any]]] = field(
        default_factory=list
    )

    def __post_init__(self) -> None:
        self.alive = np.ones(self.n, dtype=bool)

    def reject(
        self,
        bad: np.ndarray,
        field_name: str,
        values: pa.Array | None,
        code: str,
        **params: Any,
    ) -> None:
        rows = np.flatnonzero(bad & self.alive)
        if len(rows) == 0:
            return
        self.alive[rows] = False
        vals = values.take(pa.array(rows)).to_pylist() if values is not None else [None] * len(rows)
        self._items.append((rows, field_name, vals, code, params))

    def materialise(self, extra: list[Reject] | None = None) -> list[Reject]:
        out: list[Reject] = list(extra or [])
        if self._items:
            lines = self.raw.lines()
        name = self.raw.path.name
        for rows, fname, vals, code, params in self._items:
            for r, v in zip(rows.tolist(), vals, strict=True):
                value = "" if v is None else str(v)
                en, zh = reason_texts(code, **{"value": value, **params})
                line = int(lines[r]) if r < len(lines) else 0
                out.append(Reject(name, line, fname, value, code, en, zh))
        out.sort(key=lambda x: (x.line, x.field))
        return out


@dataclass
class Canon:
    """Canonical fields as row-aligned string arrays (``None`` = the file has no such field).

    ``amount_scope`` is ``"order"`` when the amount column holds the order total (repeated
    or blank on an order's further line rows) and ``"line"`` when each row's amount is the
    line's and the order amount is their sum.
    """

    order_id: pa.Array | None
    customer_id: pa.Array | None
    ordered_at: pa.Array | None
    amount: pa.Array | None = None
    status: pa.Array | None = None  # canonical status tokens (see module doc)
    status_raw: pa.Array | None = None  # original text, for reject messages
    refunded_amount: pa.Array | None = None
    currency: pa.Array | str = "CNY"
    channel: pa.Array | str | None = None
    sku: pa.Array | None = None
    product_name: pa.Array | None = None
    category: pa.Array | None = None
    quantity: pa.Array | None = None
    unit_price: pa.Array | None = None
    name: pa.Array | None = None
    phone: pa.Array | None = None
    email: pa.Array | None = None
    amount_scope: str = "order"
    amount_from_lines: bool = False  # no amount column: Σ quantity × unit price
    fill_order_fields: bool = False  # order fields only on an order's first row (Shopify)
    date_order: DateOrder | None = None  # None: inferred from the file
    abs_line_quantities: pa.Array | None = None  # bool per row: credit note lines (Online Retail)
    pre_rejects: list[tuple[np.ndarray, str, pa.Array | None, str]] = field(default_factory=list)
    generated_ids: bool = False
    columns: dict[str, str] = field(default_factory=dict)  # field → the file's column name
    item_kinds: pa.Array | None = None  # items joined in product_name (Taobao 宝贝种类)
    sku_from_title: bool = False  # no item codes in the export: a line's title is its sku
    fen_fields: frozenset[str] = frozenset()  # money fields the export writes in fen (分)


@dataclass
class Built:
    orders: pa.Table
    lines: pa.Table | None
    customers: pa.Table | None
    rejects: list[Reject]
    rows_read: int
    warnings: list[tuple[str, str]] = field(default_factory=list)  # (en, zh)
    consent: pa.Table | None = None  # customer_id, channel, granted (see _consent)


def _const(value: str | None, n: int) -> pa.Array:
    return pa.repeat(pa.scalar(value, pa.string()), n)


def _str(arr: pa.Array | str | None, n: int) -> pa.Array:
    if arr is None or isinstance(arr, str):
        return _const(arr, n)
    return clean(arr)


@dataclass(frozen=True)
class ReadOptions:
    """How to read values the file itself may not settle (``None``/auto: infer)."""

    decimal: Decimal = "auto"
    date_order: DateOrder | None = None
    merchant_zone: str | None = None  # the zone reports use (settings); default: the file's
    #: channels whose marketing-consent columns to read (``consent_sms``, ``sms_consent``,
    #: ``opt_in_email``, ``Accepts Email Marketing``…); the caller names them, importing
    #: owns no channel vocabulary
    consent_channels: tuple[str, ...] = ()


def build(raw: RawData, c: Canon, zone: str, options: ReadOptions | None = None) -> Built:
    opts = options or ReadOptions()
    n = raw.num_rows
    sink = RejectSink(raw, n)
    extra: list[Reject] = []
    for line, got, expected in raw.malformed:
        en, zh = reason_texts("import.malformed_row", value=got, expected=expected)
        extra.append(Reject(raw.path.name, line, "*", "", "import.malformed_row", en, zh))
    for b in raw.bad_lines:
        en, zh = reason_texts(
            "import.undecodable_line", value=f"0x{b.byte:02X}", offset=f"{b.offset:,}",
            encoding=raw.encoding or "",
        )  # fmt: skip
        extra.append(
            Reject(raw.path.name, b.line, "*", f"0x{b.byte:02X}", "import.undecodable_line", en, zh)
        )
    for bad, fname, vals, code in c.pre_rejects:
        sink.reject(bad, fname, vals, code)

    order_id = _str(c.order_id, n)
    customer_id = _str(c.customer_id, n)
    ordered_raw = _str(c.ordered_at, n)
    amount_raw = _str(c.amount, n)
    refund_raw = _str(c.refunded_amount, n)
    currency = pc.utf8_upper(_str(c.currency, n))
    channel = _str(c.channel, n)
    status_tok = _str(c.status, n) if c.status is not None else _const("paid", n)
    status_raw = _str(c.status_raw, n) if c.status_raw is not None else status_tok
    name, phone, email = _str(c.name, n), _str(c.phone, n), _str(c.email, n)
    has_lines = any(x is not None for x in (c.sku, c.product_name, c.quantity, c.unit_price))
    sku, pname, cat = _str(c.sku, n), _str(c.product_name, n), _str(c.category, n)
    qty_raw, uprice_raw = _str(c.quantity, n), _str(c.unit_price, n)

    if c.fill_order_fields:
        (customer_id, ordered_raw, amount_raw, refund_raw, currency, channel, status_tok,
         status_raw, name, phone, email) = _fill_forward(
            order_id,
            [customer_id, ordered_raw, amount_raw, refund_raw, currency, channel, status_tok,
             status_raw, name, phone, email],
        )  # fmt: skip

    if not c.generated_ids:
        refuse_mangled_ids(raw, order_id, "order_id", c.columns.get("order_id"))
    if c.customer_id is not None:
        refuse_mangled_ids(raw, customer_id, "customer_id", c.columns.get("customer_id"))
    sink.reject(mask(pc.is_null(order_id)), "order_id", order_id, "import.missing_order_id")
    sink.reject(
        mask(pc.is_null(customer_id)), "customer_id", customer_id, "import.missing_customer_id"
    )
    offsets: list[int] = []
    try:
        ordered_at, bad_ts = parse_instant(
            ordered_raw, zone, date_order=opts.date_order or c.date_order,
            excel_serial=raw.kind == "excel", offsets_seen=offsets,
        )  # fmt: skip
    except DateOrderUnclear as exc:
        raise _date_order_error(raw, ordered_raw, exc, c.columns.get("ordered_at")) from exc
    warnings = _zone_warnings(raw, ordered_at, offsets, opts.merchant_zone or zone)
    sink.reject(mask(pc.is_null(ordered_raw)), "ordered_at", ordered_raw, "import.missing_date")
    sink.reject(bad_ts, "ordered_at", ordered_raw, "import.bad_date")
    sink.reject(mask(pc.equal(status_tok, "!unpaid")), "status", status_raw, "import.unpaid")
    sink.reject(
        mask(pc.equal(status_tok, "!unknown")), "status", status_raw, "import.unknown_status"
    )
    bad_cur = mask(
        on_dictionary(
            pc.fill_null(currency, "X"),
            lambda v: pc.invert(pc.match_substring_regex(v, r"^[A-Z]{3}$")),
        )
    )
    sink.reject(bad_cur, "currency", currency, "import.bad_currency")

    quantity = unit_price = None
    if has_lines:
        quantity, bad_q = parse_int(qty_raw) if c.quantity is not None else (None, None)
        if quantity is not None and bad_q is not None:
            sink.reject(bad_q, "quantity", qty_raw, "import.bad_quantity")
            if c.abs_line_quantities is not None:
                quantity = pc.if_else(c.abs_line_quantities, pc.abs(quantity), quantity)
            sink.reject(mask(pc.less(quantity, 0)), "quantity", qty_raw, "import.bad_quantity")
        unit_price, bad_p, amb_p = parse_amount(uprice_raw, opts.decimal)
        if "unit_price" in c.fen_fields:
            unit_price = _from_fen(unit_price)
        sink.reject(amb_p, "unit_price", uprice_raw, "import.ambiguous_amount")
        sink.reject(bad_p, "unit_price", uprice_raw, "import.bad_amount")
        sink.reject(mask(pc.less(unit_price, pa.scalar(0, MONEY))), "unit_price", uprice_raw,
                    "import.negative_amount")  # fmt: skip

    if c.amount_from_lines:
        if quantity is None:
            quantity = pa.array(np.ones(n, dtype=np.int64))
        q = pc.fill_null(quantity, 1).cast(pa.decimal128(19, 0))
        amount = pc.multiply(unit_price, q).cast(MONEY) if unit_price is not None else None
        sink.reject(mask(pc.is_null(uprice_raw)), "unit_price", uprice_raw, "import.missing_amount")
        assert amount is not None
    else:
        amount, bad_amt, amb_amt = parse_amount(amount_raw, opts.decimal)
        if "amount" in c.fen_fields:
            amount = _from_fen(amount)
        sink.reject(mask(pc.is_null(amount_raw)), "amount", amount_raw, "import.missing_amount")
        sink.reject(amb_amt, "amount", amount_raw, "import.ambiguous_amount")
        sink.reject(bad_amt, "amount", amount_raw, "import.bad_amount")
    sink.reject(
        mask(pc.less(amount, pa.scalar(0, MONEY))), "amount", amount_raw, "import.negative_amount"
    )
    refunded, bad_ref, amb_ref = parse_amount(refund_raw, opts.decimal)
    if "refunded_amount" in c.fen_fields:
        refunded = _from_fen(refunded)
    sink.reject(amb_ref, "refunded_amount", refund_raw, "import.ambiguous_amount")
    sink.reject(bad_ref, "refunded_amount", refund_raw, "import.bad_amount")
    sink.reject(
        mask(pc.less(refunded, pa.scalar(0, MONEY))),
        "refunded_amount",
        refund_raw,
        "import.negative_amount",
    )

    consent_cols: dict[str, pa.Array] = {}
    for consent_ch, column in consent_columns(raw.header, opts.consent_channels, c.columns).items():
        values = clean(raw.table.column(column).combine_chunks())
        flags, bad_flag = parse_consent_flags(values)
        sink.reject(bad_flag, column, values, "import.bad_consent")
        consent_cols[f"_consent:{consent_ch}"] = flags

    keep = sink.alive
    everything = bool(keep.all())
    idx = pa.array(np.arange(n) if everything else np.flatnonzero(keep))

    def k(a: pa.Array) -> pa.Array:
        return a if everything else a.take(idx)  # no copy when no row was rejected

    rows = pa.table(
        {
            "order_id": k(order_id),
            "customer_id": k(customer_id),
            "ordered_at": k(ordered_at),
            "amount": k(amount),
            "currency": k(currency),
            "status": k(status_tok),
            "refunded_amount": k(refunded),
            "channel": k(channel),
            "_row": idx.cast(pa.int64()),
            "_name": k(name),
            "_phone": k(phone),
            "_email": k(email),
            **{name: k(flags) for name, flags in consent_cols.items()},
        }
    )
    lines_t = None
    if has_lines:
        lines_t = pa.table(
            {
                "order_id": k(order_id),
                "sku": k(sku),
                "product_name": k(pname),
                "category": k(cat),
                "quantity": k(quantity) if quantity is not None else pa.nulls(len(idx), pa.int64()),
                "unit_price": k(unit_price)
                if unit_price is not None
                else pa.nulls(len(idx), MONEY),
                "_row": idx.cast(pa.int64()),
            }
        )
    orders, lines_out, unique, collided = _collapse(
        rows, lines_t, c.amount_scope, c.amount_from_lines
    )
    for rows_hit, what in collided:
        flag = np.zeros(n, dtype=bool)
        flag[rows_hit] = True
        sink.reject(flag, "order_id", order_id, "import.order_id_collision", **_WHAT[what])
    orders = _resolve_status(orders)
    # refund larger than the amount: reject those rows (after aggregation, per order)
    over = mask(pc.greater(orders.column("refunded_amount"), orders.column("amount")))
    if over.any():
        bad_rows = orders.column("_row").to_numpy()[over]
        flag = np.zeros(n, dtype=bool)
        flag[bad_rows] = True
        sink.reject(flag, "refunded_amount", refund_raw, "import.refund_exceeds_amount")
        orders = orders.filter(pa.array(~over))
        if lines_out is not None:
            lines_out = lines_out.filter(
                pc.is_in(lines_out.column("order_id"), value_set=orders.column("order_id"))
            )
    if c.item_kinds is not None and lines_out is not None:
        kinds, _ = parse_int(_str(c.item_kinds, n))
        lines_out = split_titles(lines_out, kinds_by_order(k(order_id), k(kinds)))
    if c.sku_from_title and lines_out is not None:
        sku_col = pc.coalesce(lines_out.column("sku"), lines_out.column("product_name"))
        lines_out = lines_out.set_column(lines_out.column_names.index("sku"), "sku", sku_col)
    customers = _customers(orders)
    consent = _consent(orders, sorted(consent_cols))
    # the default source: the importer's caller names the file's source (with_source)
    final = with_source(orders).select(ORDERS_SCHEMA.names).cast(ORDERS_SCHEMA)
    if not unique:
        final = reduce_to_latest_state(final)
    rows_read = n + len(raw.malformed) + len(raw.bad_lines)
    return Built(final, lines_out, customers, sink.materialise(extra), rows_read, warnings, consent)


def _date_order_error(
    raw: RawData, values: pa.Array, exc: DateOrderUnclear, column: str | None
) -> ImportFileError:
    lines = raw.lines()
    shown = [f"{values[r].as_py()!r} (line {int(lines[r])})" for r in exc.rows]
    shown_zh = [f"{values[r].as_py()!r}(第 {int(lines[r])} 行)" for r in exc.rows]
    col = column or "ordered_at"
    if exc.kind == "mixed":
        en = (
            f"the dates in column {col!r} mix day-first and month-first values: "
            f"{shown[0]} and {shown[1]} cannot both be read in one order"
        )
        zh = (
            f"列 {col!r} 的日期混用了“日/月”和“月/日”两种顺序:{shown_zh[0]} 与 "
            f"{shown_zh[1]} 无法按同一顺序读取"
        )
    else:
        en = (
            f"the day/month order of column {col!r} cannot be told: no date has a day over "
            f"12, so {shown[0]} reads two ways"
        )
        zh = f"无法判断列 {col!r} 的日/月顺序:没有大于 12 的日,{shown_zh[0]} 可有两种读法"
    return ImportFileError(
        f"{raw.path.name}: {en}. Nothing was imported; declare the order with "
        f"--date-order dmy (day/month/year) or --date-order mdy (month/day/year).",
        code="import.ambiguous_date_order",
        message_zh=f"{raw.path.name}:{zh}。未导入任何数据;请用 --date-order dmy(日/月/年)或 "
        f"--date-order mdy(月/日/年)指定。",
        details={"file": str(raw.path), "column": col, "kind": exc.kind,
                 "lines": [int(lines[r]) for r in exc.rows]},
    )  # fmt: skip


def _fmt_offset(secs: int) -> str:
    sign = "-" if secs < 0 else "+"
    h, m = divmod(abs(secs) // 60, 60)
    return f"{sign}{h:02d}:{m:02d}"


def _zone_warnings(
    raw: RawData, instants: pa.Array, offsets: list[int], zone: str
) -> list[tuple[str, str]]:
    """A warning when the file's own UTC offsets are not the merchant zone's: the instants
    are right, but days and hours in reports follow the merchant zone."""
    if not offsets:
        return []
    from datetime import datetime as _dt
    from zoneinfo import ZoneInfo

    tz = ZoneInfo(zone)
    valid = instants.filter(pc.is_valid(instants))
    step = max(1, len(valid) // 200)
    zone_offsets: set[int] = set()
    for v in valid[::step].to_pylist():
        if isinstance(v, _dt):
            off = v.astimezone(tz).utcoffset()
            if off is not None:
                zone_offsets.add(int(off.total_seconds()))
    foreign = sorted(set(offsets) - zone_offsets)
    if not foreign:
        return []
    seen = ", ".join(_fmt_offset(o) for o in foreign)
    own = ", ".join(_fmt_offset(o) for o in sorted(zone_offsets)) or "?"
    return [
        (
            f"{raw.path.name}: the order times carry the UTC offset {seen}, but the merchant's "
            f"zone {zone} is {own}. The instants are kept as written; days, hours and periods "
            f"in reports follow {zone}. If the shop is in another zone, set HUITOUKE_TIMEZONE "
            f"(e.g. America/New_York) and import again.",
            f"{raw.path.name}:下单时间带有 UTC 偏移 {seen},而商家时区 {zone} 为 {own}。"
            f"时间点按原样保存;报表中的日期、小时和周期按 {zone} 计算。若店铺在其他时区,"
            f"请设置 HUITOUKE_TIMEZONE(如 America/New_York)后重新导入。",
        )
    ]


_SCIENTIFIC = r"^[+-]?\d+(\.\d+)?[eE]\+\d+$"


def refuse_mangled_ids(raw: RawData, ids: pa.Array, field_name: str, column: str | None) -> None:
    """Refuse a file whose ids a spreadsheet program rewrote: in scientific notation
    (``3.37215E+18``), or long numbers all cut to 15 significant digits (Excel keeps 15, so
    ``3372145678901234567`` is saved as ``3372145678901230000``) — distinct orders or
    customers would share one id."""
    if len(ids) == 0:
        return
    example: int | None = None
    kind = ""
    # cheap scans first (plain substring, byte lengths): the regexes run only on suspects
    if pc.any(pc.match_substring(ids, "+")).as_py():  # 3.37215E+18
        sci = mask(pc.match_substring_regex(ids, _SCIENTIFIC))
        if sci.any():
            example, kind = int(np.flatnonzero(sci)[0]), "scientific"
    if example is None and (pc.max(pc.binary_length(ids)).as_py() or 0) > 15:
        long_ = mask(pc.greater(pc.binary_length(ids), 15))
        if long_.any():
            idx = np.flatnonzero(long_)
            vals = ids.take(pa.array(idx))
            digits = mask(pc.match_substring_regex(vals, r"^\d{16,}$"))
            if digits.any():
                dv = vals.filter(pa.array(digits))
                zeroed = mask(pc.match_substring_regex(dv, r"^\d{15}0+$"))
                lost = int(pc.sum(pc.subtract(pc.binary_length(dv), 15)).as_py() or 0)
                # all cut, and too many zeros to be chance (10⁻⁶)
                if zeroed.all() and lost >= 6:
                    example, kind = int(idx[np.flatnonzero(digits)[0]]), "cut"
    if example is None:
        return
    value = str(ids[example].as_py())
    line = int(raw.lines()[example])
    col = column or field_name
    how_en = (
        "is in scientific notation" if kind == "scientific"
        else "and every other long id end in zeros after the 15th digit (Excel keeps 15)"
    )  # fmt: skip
    how_zh = (
        "是科学计数法"
        if kind == "scientific"
        else "等长编号在第 15 位之后全是 0(Excel 只保留 15 位)"
    )
    raise ImportFileError(
        f"{raw.path.name}: the ids in column {col!r} were changed by a spreadsheet program: "
        f"{value!r} (line {line}) {how_en}, so different "
        f"{'orders' if field_name == 'order_id' else 'customers'} would share one id. Nothing "
        f"was imported. Export the file again from the platform and import it without opening "
        f"it in Excel, or in Excel format the column as Text before entering or pasting the "
        f"ids (Format Cells → Text) and save as CSV UTF-8.",
        code="import.mangled_ids",
        message_zh=f"{raw.path.name}:列 {col!r} 的编号已被表格软件改写:{value!r}(第 {line} 行)"
        f"{how_zh},不同的{'订单' if field_name == 'order_id' else '客户'}会变成同一个编号。"
        f"未导入任何数据。请从平台重新导出,不要用 Excel 打开后另存;或在 Excel 中先把该列"
        f"设置为“文本”格式(设置单元格格式 → 文本)再粘贴编号,另存为 CSV UTF-8。",
        details={"file": str(raw.path), "line": line, "column": col, "value": value,
                 "kind": kind},
    )  # fmt: skip


def _from_fen(money: pa.Array) -> pa.Array:
    """Fen (分) → yuan, exactly (1 fen = 0.01)."""
    return pc.multiply(money, pa.scalar(Dec("0.01"), pa.decimal128(3, 2))).cast(MONEY)


def _fill_forward(key: pa.Array, cols: list[pa.Array]) -> list[pa.Array]:
    """Each column's first non-null value within its key, broadcast to all the key's rows."""
    names = [f"c{i}" for i in range(len(cols))]
    t = pa.table({"k": key, **dict(zip(names, cols, strict=True))})
    agg = t.group_by("k", use_threads=False).aggregate([(nm, "first") for nm in names])
    joined = (
        t.select(["k"])
        .append_column("_i", pa.array(np.arange(len(key))))
        .join(agg, "k", join_type="left outer")
    )
    joined = joined.sort_by("_i")
    return [
        pc.if_else(pc.is_valid(c), c, joined.column(f"{nm}_first").combine_chunks())
        for nm, c in zip(names, cols, strict=True)
    ]


_WHAT = {
    "customer": {"what_en": "different customers", "what_zh": "不同的客户"},
    "time": {"what_en": "different order times", "what_zh": "不同的下单时间"},
}


#: Rows of one order id whose times lie further apart than this are two orders. Within it
#: they are one order whose line rows were stamped a little apart (a line export crossing a
#: minute); a ticket number reused the next day is hours apart.
SAME_ORDER_SPREAD = 3600 * 1_000_000  # microseconds


def _collisions(rows: pa.Table) -> list[tuple[np.ndarray, str]]:
    """Rows (by ``_row``) whose order id other rows share with another customer or an order
    time more than an hour away: two orders under one id, never one order."""
    agg = rows.group_by("order_id", use_threads=False).aggregate(
        [("customer_id", "count_distinct"), ("ordered_at", "min"), ("ordered_at", "max")]
    )
    spread = pc.subtract(
        agg.column("ordered_at_max").cast(pa.int64()), agg.column("ordered_at_min").cast(pa.int64())
    )
    tests = (
        (pc.greater(agg.column("customer_id_count_distinct"), 1), "customer"),
        (pc.greater(spread, SAME_ORDER_SPREAD), "time"),
    )
    out: list[tuple[np.ndarray, str]] = []
    seen = pa.array([], pa.string())
    for hit_ids, what in tests:
        ids = agg.filter(hit_ids).column("order_id")
        ids = ids.filter(pc.invert(pc.is_in(ids, value_set=seen)))
        if len(ids):
            hit = pc.is_in(rows.column("order_id"), value_set=ids)
            out.append((rows.column("_row").filter(hit).to_numpy(), what))
            seen = pa.concat_arrays([seen, ids.combine_chunks()])
    return out


def _collapse(
    rows: pa.Table, lines: pa.Table | None, scope: str, from_lines: bool
) -> tuple[pa.Table, pa.Table | None, bool, list[tuple[np.ndarray, str]]]:
    """Merge repeated rows of one order: identical export rows count once; line rows
    become the order's lines; the order-level fields follow the later-state rule. Rows
    whose shared id names different customers or times are not merged but returned as
    collisions (their ``_row`` indices)."""
    n = rows.num_rows
    if n > 1:
        # one stable sort by order id: it tells whether ids repeat (adjacent equal) and
        # hands the store rows in key order; the rows keep their file order within an id
        idx = pc.sort_indices(rows.column("order_id"))
        rows = rows.take(idx)
        if lines is not None:
            lines = lines.take(idx)
    unique = n < 2 or not has_adjacent_equal(rows.column("order_id"))
    if unique:
        if lines is not None:
            lines = lines.append_column("line_no", pa.array(np.ones(n, dtype=np.int32)))
            lines = lines.select(LINES_SCHEMA.names).cast(LINES_SCHEMA)
        return rows, lines, True, []
    collided = _collisions(rows)
    if collided:
        hit = pa.array(np.concatenate([r for r, _ in collided]))
        keep = pc.invert(pc.is_in(rows.column("_row"), value_set=hit))
        rows = rows.filter(keep)
        if lines is not None:
            lines = lines.filter(keep)
    # 1) identical duplicate rows (all canonical fields equal) count once
    keycols = [c for c in rows.column_names if c != "_row"]
    if lines is not None:
        both = rows.append_column("_sku", lines.column("sku"))
        both = both.append_column("_pn", lines.column("product_name"))
        both = both.append_column("_q", lines.column("quantity"))
        both = both.append_column("_up", lines.column("unit_price"))
        keycols = [*keycols, "_sku", "_pn", "_q", "_up"]
    else:
        both = rows
    firsts = both.group_by(keycols, use_threads=False).aggregate([("_row", "min")])
    keep_rows = pc.is_in(rows.column("_row"), value_set=firsts.column("_row_min"))
    rows = rows.filter(keep_rows)
    if lines is not None:
        lines = lines.filter(keep_rows)
    # 2) the order's amount: a sum of line amounts, or the order-level amount
    if scope == "line" or from_lines:
        sums = rows.group_by("order_id", use_threads=False).aggregate([("amount", "sum")])
        sums = sums.rename_columns(["order_id", "_sum"])
        rows = rows.join(sums, "order_id", join_type="left outer").sort_by("_row")
        rows = rows.set_column(
            rows.column_names.index("amount"), "amount", rows.column("_sum").cast(MONEY)
        ).drop_columns(["_sum"])
    # 3) lines numbered per order in file order
    if lines is not None:
        lines = lines.sort_by([("order_id", "ascending"), ("_row", "ascending")])
        oid = lines.column("order_id").combine_chunks()
        m = len(oid)
        if m:
            starts = np.ones(m, dtype=bool)
            starts[1:] = mask(pc.not_equal(oid.slice(1), oid.slice(0, m - 1)))
            idx = np.arange(m)
            run_start = np.maximum.accumulate(np.where(starts, idx, 0))
            line_no = (idx - run_start + 1).astype(np.int32)
        else:
            line_no = np.zeros(0, dtype=np.int32)
        lines = lines.append_column("line_no", pa.array(line_no))
        lines = lines.select(LINES_SCHEMA.names).cast(LINES_SCHEMA)
    return rows, lines, False, collided


def _resolve_status(t: pa.Table) -> pa.Table:
    st = t.column("status").combine_chunks()
    amount = t.column("amount").combine_chunks()
    ref = t.column("refunded_amount").combine_chunks()
    zero = pa.scalar(0, MONEY)
    if ref.null_count == len(ref):
        # no refunded amounts in the file: statuses alone decide (fast path)
        closed = pc.equal(st, "closed")
        if pc.any(closed).as_py():
            st = pc.if_else(closed, pa.scalar("cancelled"), st)
        is_ref = pc.equal(st, "refunded")
        ref_final = pc.if_else(is_ref, amount, pc.fill_null(ref, zero))
        t = t.set_column(t.column_names.index("status"), "status", st)
        return t.set_column(t.column_names.index("refunded_amount"), "refunded_amount", ref_final)
    ref_given = pc.is_valid(ref)
    ref0 = pc.fill_null(ref, zero)
    full = pc.greater_equal(ref0, amount)
    pos = pc.greater(ref0, zero)
    by_amount = pc.if_else(full, pa.scalar("refunded"), pa.scalar("partially_refunded"))
    paidlike = pc.is_in(st, value_set=pa.array(COUNTED_STATUSES))
    new = pc.if_else(pc.and_(paidlike, pos), by_amount, st)
    closed = pc.equal(st, "closed")
    new = pc.if_else(closed, pc.if_else(pos, by_amount, pa.scalar("cancelled")), new)
    # "refunded" without a refunded amount means the whole amount
    is_ref = pc.equal(new, "refunded")
    ref_final = pc.if_else(pc.and_(is_ref, pc.invert(pc.and_(ref_given, pos))), amount, ref0)
    t = t.set_column(t.column_names.index("status"), "status", new)
    return t.set_column(t.column_names.index("refunded_amount"), "refunded_amount", ref_final)


_YES = frozenset({"1", "true", "yes", "y", "on", "是", "同意", "允许", "订阅", "已订阅"})
_NO = frozenset({"0", "false", "no", "n", "off", "否", "不同意", "拒绝", "退订", "未订阅"})


def consent_columns(
    header: list[str], channels: tuple[str, ...], used: dict[str, str]
) -> dict[str, str]:
    """Channel → the header column that carries its marketing consent (``consent_sms``,
    ``sms_consent``, ``opt_in_email``, ``email_opt_in``, ``Accepts Email Marketing``), for
    the given channels; columns already read as another field are left alone."""
    taken = set(used.values())
    out: dict[str, str] = {}
    for channel in channels:
        ch = norm_header(channel)
        names = {
            f"consent{ch}", f"{ch}consent", f"optin{ch}", f"{ch}optin",
            f"accepts{ch}marketing", f"{ch}marketingconsent",
        }  # fmt: skip
        found = [h for h in header if h not in taken and norm_header(h) in names]
        if found:
            out[channel] = found[0]
    return out


def parse_consent_flags(values: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """Yes/no cells (``true``/``false``, ``yes``/``no``, ``1``/``0``, ``是``/``否``,
    ``同意``/``不同意``…) as booleans; empty cells are null (the file says nothing) and any
    other value is flagged bad."""
    low = pc.utf8_lower(values)
    yes = pc.is_in(low, value_set=pa.array(sorted(_YES)))
    no = pc.is_in(low, value_set=pa.array(sorted(_NO)))
    flags = pc.if_else(yes, True, pc.if_else(no, False, pa.scalar(None, pa.bool_())))
    bad = mask(pc.and_(pc.is_valid(values), pc.is_null(flags)))
    return flags, bad


def _consent(orders: pa.Table, columns: list[str]) -> pa.Table | None:
    """Per customer and channel the consent the file gives: the latest row that has a value
    (``customer_id``, ``channel``, ``granted``), or None when the file names no channel."""
    if not columns:
        return None
    parts = []
    for name in columns:
        t = pa.table(
            {
                "customer_id": orders.column("customer_id"),
                "granted": orders.column(name),
                "_row": orders.column("_row"),
            }
        )
        t = t.filter(pc.is_valid(t.column("granted"))).sort_by([("_row", "descending")])
        agg = t.group_by("customer_id", use_threads=False).aggregate([("granted", "first")])
        channel = name.split(":", 1)[1]
        parts.append(
            pa.table(
                {
                    "customer_id": agg.column("customer_id"),
                    "channel": pa.array([channel] * agg.num_rows, pa.string()),
                    "granted": agg.column("granted_first"),
                }
            )
        )
    return pa.concat_tables(parts)


def _customers(orders: pa.Table) -> pa.Table | None:
    name, phone, email = (orders.column(c) for c in ("_name", "_phone", "_email"))
    if all(c.null_count == len(c) for c in (name, phone, email)):
        return None
    t = pa.table(
        {
            "customer_id": orders.column("customer_id"),
            "name": name,
            "phone": phone,
            "email": email,
            "_row": orders.column("_row"),
        }
    )
    has = pc.or_(pc.or_(pc.is_valid(name), pc.is_valid(phone)), pc.is_valid(email))
    t = t.filter(has).sort_by([("_row", "descending")])
    # latest row with a value wins per attribute
    agg = t.group_by("customer_id", use_threads=False).aggregate(
        [("name", "first"), ("phone", "first"), ("email", "first")]
    )
    return agg.rename_columns(["customer_id", "name", "phone", "email"])
