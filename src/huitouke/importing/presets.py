"""Presets: where each canonical field is in a known export, and how its statuses read.

A preset turns a :class:`~huitouke.importing.sources.RawData` into a
:class:`~huitouke.importing.build.Canon`; parsing and validation are shared
(:mod:`huitouke.importing.build`). See docs/import.md for each preset's columns.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from huitouke.errors import ImportFileError
from huitouke.importing.build import Canon
from huitouke.importing.convert import clean, mask, on_dictionary
from huitouke.importing.sources import RawData, norm_header

__all__ = ["PRESETS", "Preset", "resolve_columns"]

FIELDS = (
    "order_id",
    "customer_id",
    "ordered_at",
    "amount",
    "status",
    "currency",
    "refunded_amount",
    "channel",
    "sku",
    "product_name",
    "category",
    "quantity",
    "unit_price",
    "name",
    "phone",
    "email",
)


def _syn(*names: str) -> tuple[str, ...]:
    return tuple(norm_header(n) for n in names)


GENERIC_SYNONYMS: dict[str, tuple[str, ...]] = {
    "order_id": _syn("order_id", "order id", "order no", "order_no", "order number", "orderid",
                     "order", "invoice", "invoice_no", "invoiceno", "transaction_id", "ticket",
                     "ticket_no", "receipt", "receipt_no", "小票号", "小票编号", "订单号",
                     "订单编号", "订单id", "单号", "交易号", "流水号", "訂單號", "訂單編號"),
    "customer_id": _syn("customer_id", "customer", "customerid", "customer no", "client_id",
                        "buyer_id", "buyer", "user_id", "userid", "member_id", "member",
                        "客户id", "客户编号", "客户号", "会员id", "会员号", "会员编号", "会员卡号",
                        "买家", "买家id", "用户id", "顾客id", "顾客编号", "客户", "會員編號",
                        "會員號", "客戶編號", "顧客編號"),
    "ordered_at": _syn("ordered_at", "order_date", "order date", "order_time", "date",
                       "datetime", "created_at", "created", "timestamp", "time", "purchase_date",
                       "transaction_date", "下单时间", "订单时间", "日期", "创建时间", "交易时间",
                       "订单日期", "购买时间", "消费时间", "付款时间", "支付时间", "下單時間", "訂單時間",
                       "交易時間", "訂單日期"),
    "amount": _syn("amount", "total", "order_amount", "order_total", "revenue", "sales",
                   "paid_amount", "payment", "total_price", "totalprice", "value", "金额",
                   "实付金额", "订单金额", "支付金额", "实收金额", "消费金额", "付款金额",
                   "成交金额", "销售额", "总金额", "金額", "實付金額", "訂單金額"),
    "status": _syn("status", "order_status", "state", "状态", "订单状态", "交易状态", "訂單狀態",
                   "狀態"),
    "currency": _syn("currency", "currency_code", "币种", "货币"),
    "refunded_amount": _syn("refunded_amount", "refund", "refund_amount", "refunded",
                            "退款金额", "已退款金额", "退款"),
    "channel": _syn("channel", "store", "shop", "source", "store_id", "渠道", "门店", "店铺",
                    "店铺名称", "来源"),
    "sku": _syn("sku", "product_id", "item_id", "stockcode", "商品编码", "商品id", "货号", "sku编码"),
    "product_name": _syn("product_name", "product", "item", "item_name", "description",
                         "商品名称", "商品", "宝贝名称", "品名"),
    "category": _syn("category", "product_category", "类目", "品类", "分类", "商品分类"),
    "quantity": _syn("quantity", "qty", "count", "数量", "商品数量", "件数", "购买数量"),
    "unit_price": _syn("unit_price", "price", "unitprice", "单价", "商品单价", "价格"),
    "name": _syn("customer_name", "name", "buyer_name", "客户姓名", "姓名", "顾客姓名", "会员姓名"),
    "phone": _syn("phone", "mobile", "phone_number", "telephone", "手机", "手机号", "电话",
                  "联系电话", "手机号码"),
    "email": _syn("email", "e-mail", "mail", "邮箱", "电子邮箱"),
}  # fmt: skip


def resolve_columns(
    header: Iterable[str],
    synonyms: dict[str, tuple[str, ...]],
    mapping: dict[str, str] | None = None,
) -> dict[str, str]:
    """Canonical field → the header column it is read from (a mapping wins)."""
    header = list(header)
    by_norm: dict[str, str] = {}
    for h in header:
        by_norm.setdefault(norm_header(h), h)
    out: dict[str, str] = {}
    used: set[str] = set()
    for col, fld in (mapping or {}).items():
        if fld not in FIELDS:
            raise ImportFileError(
                f"mapping {col}={fld}: unknown field {fld!r}; fields are {', '.join(FIELDS)}",
                code="import.bad_mapping",
                message_zh=f"映射 {col}={fld}:未知字段 {fld!r};可用字段:{', '.join(FIELDS)}",
                details={"column": col, "field": fld},
            )
        actual = col if col in header else by_norm.get(norm_header(col))
        if actual is None:
            raise ImportFileError(
                f"mapping {col}={fld}: the file has no column {col!r}; columns found: "
                f"{', '.join(header)}",
                code="import.bad_mapping",
                message_zh=f"映射 {col}={fld}:文件中没有列 {col!r};现有列:{', '.join(header)}",
                details={"column": col, "columns_found": header},
            )
        out[fld] = actual
        used.add(actual)
    for fld, names in synonyms.items():
        if fld in out:
            continue
        for nm in names:
            found = by_norm.get(nm)
            if found is not None and found not in used:
                out[fld] = found
                used.add(found)
                break
    return out


def _missing_error(
    preset: str, missing: list[str], header: list[str], path_name: str
) -> ImportFileError:
    return ImportFileError(
        f"{path_name}: preset {preset!r} needs the fields {', '.join(missing)} but no column "
        f"was recognised for them; columns found: {', '.join(header)}. Map them with "
        f"--mapping COLUMN=FIELD.",
        code="import.missing_columns",
        message_zh=f"{path_name}:预设 {preset!r} 需要字段 {'、'.join(missing)},但未识别到对应列;"
        f"现有列:{', '.join(header)}。可用 --mapping 列名=字段 指定。",
        details={"missing": missing, "columns_found": header, "preset": preset},
    )


def _col(raw: RawData, name: str | None) -> pa.Array | None:
    if name is None:
        return None
    return raw.table.column(name).combine_chunks()


def _map_status(
    values: pa.Array | None, table: dict[str, str], *, default: str = "paid"
) -> pa.Array | None:
    """Raw status text → a status token through ``table`` (keys normalised); unknown
    text → ``!unknown``; empty → ``default``."""
    if values is None:
        return None
    keys = pa.array([norm_status(k) for k in table])
    vals = pa.array(list(table.values()), pa.string())

    def tokens(v: pa.Array) -> pa.Array:
        v = clean(v)
        key = pc.utf8_lower(pc.replace_substring_regex(v, r"[\s,，_\-]+", ""))
        mapped = vals.take(pc.index_in(key, value_set=keys))
        out = pc.if_else(pc.is_null(v), pa.scalar(default), mapped)
        return pc.fill_null(out, "!unknown")

    # once per distinct text (cleaning included), not once per row
    return on_dictionary(values, tokens)


def norm_status(s: str) -> str:
    import re

    return re.sub(r"[\s,，_\-]+", "", s).lower()


GENERIC_STATUS = {
    "paid": "paid", "completed": "paid", "complete": "paid", "success": "paid",
    "succeeded": "paid", "fulfilled": "paid", "shipped": "paid", "delivered": "paid",
    "closed": "paid", "done": "paid", "ok": "paid", "valid": "paid",
    "已支付": "paid", "已付款": "paid", "交易成功": "paid", "已完成": "paid", "完成": "paid",
    "已发货": "paid", "待发货": "paid", "已签收": "paid", "成功": "paid",
    "partially_refunded": "partially_refunded", "partial_refund": "partially_refunded",
    "partiallyrefunded": "partially_refunded", "部分退款": "partially_refunded",
    "refunded": "refunded", "refund": "refunded", "returned": "refunded",
    "已退款": "refunded", "退款成功": "refunded", "全额退款": "refunded", "退货": "refunded",
    "cancelled": "cancelled", "canceled": "cancelled", "voided": "cancelled", "void": "cancelled",
    "已取消": "cancelled", "取消": "cancelled", "交易关闭": "closed", "已关闭": "closed",
    "pending": "!unpaid", "unpaid": "!unpaid", "authorized": "!unpaid", "待付款": "!unpaid",
    "未付款": "!unpaid", "等待买家付款": "!unpaid",
}  # fmt: skip


@dataclass
class Preset:
    name: str
    description: str
    required: tuple[str, ...]
    synonyms: dict[str, tuple[str, ...]]
    make: Callable[[RawData, dict[str, str]], Canon]
    zone: str | None = None  # a preset's own default zone (online-retail: Europe/London)
    headerless: bool = False
    signature: tuple[str, ...] = field(default_factory=tuple)  # columns that identify it

    def columns(self, header: list[str], mapping: dict[str, str] | None) -> dict[str, str]:
        return resolve_columns(header, self.synonyms, mapping)

    def score(self, header: list[str]) -> float:
        """How well a header row fits this preset (0 = not at all)."""
        norm = {norm_header(h) for h in header}
        if self.signature:
            sig = [s for s in self.signature if norm_header(s) in norm]
            if len(sig) < max(2, len(self.signature) // 2):
                return 0.0
            return 1.0 + len(sig) / len(self.signature)
        cols = resolve_columns(header, self.synonyms)
        if not all(r in cols for r in self.required):
            return 0.0
        return 0.5 + 0.01 * len(cols)

    def check(self, raw: RawData, cols: dict[str, str]) -> None:
        missing = [r for r in self.required if r not in cols]
        if missing:
            raise _missing_error(self.name, missing, raw.header, raw.path.name)


# -- generic -------------------------------------------------------------------------------
def _generic(raw: RawData, mapping: dict[str, str]) -> Canon:
    cols = resolve_columns(raw.header, GENERIC_SYNONYMS, mapping)
    req = ["customer_id", "ordered_at"]
    has_line_amount = "unit_price" in cols
    if "amount" not in cols and not has_line_amount:
        req.append("amount")
    missing = [r for r in req if r not in cols]
    if missing:
        raise _missing_error("generic", missing, raw.header, raw.path.name)
    g = {f: _col(raw, c) for f, c in cols.items()}
    n = raw.num_rows
    order_id = g.get("order_id")
    generated = order_id is None
    if order_id is None:
        # no order ids: one row is one order, named after the file and its line (BRIEF note)
        stem = raw.path.stem
        order_id = pc.binary_join_element_wise(
            pa.array([stem] * n), pa.array(raw.lines()).cast(pa.string()), ":"
        )
    return Canon(
        columns=cols,
        order_id=order_id,
        customer_id=g.get("customer_id"),
        ordered_at=g.get("ordered_at"),
        amount=g.get("amount"),
        status=_map_status(g.get("status"), GENERIC_STATUS),
        status_raw=g.get("status"),
        refunded_amount=g.get("refunded_amount"),
        currency=g.get("currency") or _default_currency(),
        channel=g.get("channel"),
        sku=g.get("sku"),
        product_name=g.get("product_name"),
        category=g.get("category"),
        quantity=g.get("quantity"),
        unit_price=g.get("unit_price"),
        name=g.get("name"),
        phone=g.get("phone"),
        email=g.get("email"),
        amount_scope="order",
        amount_from_lines="amount" not in cols,
        generated_ids=generated,
    )


def _default_currency() -> str:
    from huitouke.settings import get_settings

    return get_settings().currency


# -- CDNOW ---------------------------------------------------------------------------------
def _cdnow(raw: RawData, mapping: dict[str, str]) -> Canon:
    t = raw.table
    ncols = t.num_columns
    if ncols == 4:  # master: customer_id date number_of_cds dollar_value
        cust, date, cds, dollars = (t.column(i).combine_chunks() for i in range(4))
    elif ncols == 5:  # sample: master id, sample id, date, CDs, dollars
        cust, _sample, date, cds, dollars = (t.column(i).combine_chunks() for i in range(5))
    else:
        raise ImportFileError(
            f"{raw.path.name}: a CDNOW file has 4 columns (customer id, date, CDs, dollars) or "
            f"5 (master id, sample id, date, CDs, dollars); this one has {ncols}: "
            f"{', '.join(raw.header)}",
            code="import.missing_columns",
            message_zh=f"{raw.path.name}:CDNOW 文件应有 4 列或 5 列,此文件有 {ncols} 列",
            details={"columns_found": raw.header},
        )
    cust = clean(cust)
    # Order id = customer id + the customer's transaction number in file order, so the
    # master file and the 1/10 sample name the same transaction the same way.
    seq = _seq_within(cust)
    order_id = pc.binary_join_element_wise(pc.fill_null(cust, ""), seq.cast(pa.string()), "-")
    return Canon(
        order_id=pc.if_else(pc.is_null(cust), pa.scalar(None, pa.string()), order_id),
        customer_id=cust,
        ordered_at=date,
        amount=dollars,
        currency="USD",
        quantity=cds,
        amount_scope="order",
    )


def _seq_within(key: pa.Array) -> pa.Array:
    """1, 2, 3… per key in row order."""
    n = len(key)
    if n == 0:
        return pa.array([], pa.int64())
    codes = np.asarray(pc.dictionary_encode(pc.fill_null(key, "")).indices, dtype=np.int64)
    order = np.argsort(codes, kind="stable")
    sorted_codes = codes[order]
    starts = np.ones(n, dtype=bool)
    starts[1:] = sorted_codes[1:] != sorted_codes[:-1]
    idx = np.arange(n)
    run_start = np.maximum.accumulate(np.where(starts, idx, 0))
    seq_sorted = idx - run_start + 1
    seq = np.empty(n, dtype=np.int64)
    seq[order] = seq_sorted
    return pa.array(seq)


# -- Online Retail (UCI) -------------------------------------------------------------------
def _online_retail(raw: RawData, mapping: dict[str, str]) -> Canon:
    cols = resolve_columns(raw.header, OR_SYNONYMS, mapping)
    g = {f: _col(raw, c) for f, c in cols.items()}
    missing = [r for r in ("order_id", "ordered_at") if r not in cols]
    if "customer_id" not in cols:
        missing.append("customer_id")
    line_level = "unit_price" in cols and "quantity" in cols
    if not line_level and "amount" not in cols:
        missing.append("amount (TotalPrice) or UnitPrice + Quantity")
    if missing:
        raise _missing_error("online-retail", missing, raw.header, raw.path.name)
    inv = clean(g["order_id"])
    credit = mask(pc.starts_with(pc.fill_null(inv, ""), "C"))
    status = pc.if_else(pa.array(credit), pa.scalar("cancelled"), pa.scalar("paid"))
    cust = clean(g["customer_id"])
    cust = pc.replace_substring_regex(cust, r"\.0+$", "")  # 17850.0 from spreadsheets
    if line_level:
        qty = clean(g["quantity"])
        # credit notes carry negative quantities: the note is stored as a cancelled order
        # for the absolute amount
        return Canon(
            columns=cols,
            order_id=inv,
            customer_id=cust,
            ordered_at=g["ordered_at"],
            status=status,
            currency="GBP",
            channel=g.get("channel"),
            sku=g.get("sku"),
            product_name=g.get("product_name"),
            quantity=qty,
            unit_price=g["unit_price"],
            amount_scope="line",
            amount_from_lines=True,
            abs_line_quantities=pa.array(credit),
            date_order="mdy",  # the UCI data: 12/1/2010 8:26
        )
    amt = clean(g["amount"])
    amt = pc.if_else(pa.array(credit), pc.replace_substring_regex(amt, r"^-", ""), amt)
    return Canon(
        columns=cols,
        order_id=inv,
        customer_id=cust,
        ordered_at=g["ordered_at"],
        amount=amt,
        status=status,
        currency="GBP",
        channel=g.get("channel"),
        date_order="mdy",
    )


OR_SYNONYMS: dict[str, tuple[str, ...]] = {
    "order_id": _syn("InvoiceNo", "Invoice"),
    "customer_id": _syn("CustomerID", "Customer ID"),
    "ordered_at": _syn("InvoiceDate"),
    "amount": _syn("TotalPrice", "Total"),
    "sku": _syn("StockCode"),
    "product_name": _syn("Description"),
    "quantity": _syn("Quantity"),
    "unit_price": _syn("UnitPrice", "Price"),
    "channel": _syn("Country"),
}


# -- Taobao / Tmall seller-center order report ------------------------------------------------
TAOBAO_SYNONYMS: dict[str, tuple[str, ...]] = {
    "order_id": _syn("订单编号", "主订单编号", "订单号"),
    "customer_id": _syn("买家会员名", "买家昵称", "买家支付宝账号"),
    "ordered_at": _syn("订单创建时间", "下单时间"),
    "amount": _syn("买家实际支付金额", "买家实付金额", "实付金额"),
    "status": _syn("订单状态"),
    "refunded_amount": _syn("退款金额"),
    "channel": _syn("店铺名称"),
    "product_name": _syn("宝贝标题", "商品标题"),
    "quantity": _syn("宝贝总数量", "商品总数量", "购买数量", "商品数量"),
    "name": _syn("收货人姓名", "买家姓名"),
    "phone": _syn("联系手机", "联系电话", "买家手机号"),
}

TAOBAO_STATUS = {
    "交易成功": "paid",
    "买家已付款,等待卖家发货": "paid",
    "买家已付款，等待卖家发货": "paid",
    "等待卖家发货": "paid",
    "卖家已发货,等待买家确认": "paid",
    "卖家已发货，等待买家确认": "paid",
    "等待买家确认收货": "paid",
    "卖家部分发货": "paid",
    "买家已付款": "paid",
    "已发货": "paid",
    "退款中": "paid",
    "交易关闭": "closed",
    "交易自动关闭": "closed",
    "付款以前,卖家或买家主动关闭交易": "cancelled",
    "付款以后用户退款成功,交易自动关闭": "closed",
    "等待买家付款": "!unpaid",
    "等待付款": "!unpaid",
    "没有创建支付宝交易": "!unpaid",
}


def _taobao(raw: RawData, mapping: dict[str, str]) -> Canon:
    cols = resolve_columns(raw.header, TAOBAO_SYNONYMS, mapping)
    missing = [
        r for r in ("order_id", "customer_id", "ordered_at", "amount", "status") if r not in cols
    ]
    if missing:
        raise _missing_error("taobao", missing, raw.header, raw.path.name)
    g = {f: _col(raw, c) for f, c in cols.items()}
    cust = clean(g["customer_id"])
    alipay = _col(raw, _find(raw.header, "买家支付宝账号"))
    if alipay is not None and cols["customer_id"] != _find(raw.header, "买家支付宝账号"):
        cust = pc.if_else(pc.is_null(cust), clean(alipay), cust)
    return Canon(
        columns=cols,
        order_id=g["order_id"],
        customer_id=cust,
        ordered_at=g["ordered_at"],
        amount=g["amount"],
        status=_map_status(g["status"], TAOBAO_STATUS, default="!unknown"),
        status_raw=g["status"],
        refunded_amount=g.get("refunded_amount"),
        currency="CNY",
        channel=g.get("channel") or "taobao",
        product_name=g.get("product_name"),
        quantity=g.get("quantity"),
        item_kinds=_col(raw, _find(raw.header, "宝贝种类") or _find(raw.header, "商品种类")),
        sku_from_title=True,
        name=g.get("name"),
        phone=g.get("phone"),
    )


def _find(header: list[str], name: str) -> str | None:
    want = norm_header(name)
    for h in header:
        if norm_header(h) == want:
            return h
    return None


# -- Youzan 有赞 order export -----------------------------------------------------------------
YOUZAN_SYNONYMS: dict[str, tuple[str, ...]] = {
    "order_id": _syn("订单号", "订单编号"),
    "customer_id": _syn(
        "买家手机号", "客户手机号", "会员手机号", "下单人手机号", "买家id", "粉丝id"
    ),
    "ordered_at": _syn("订单创建时间", "下单时间", "创建时间"),
    "amount": _syn("订单实付金额", "实付金额", "订单实付款"),
    "status": _syn("订单状态"),
    "refunded_amount": _syn("订单已退款金额", "已退款金额", "退款金额"),
    "channel": _syn("店铺名称", "归属店铺", "销售渠道", "订单来源"),
    "product_name": _syn("商品名称"),
    "category": _syn("商品分组", "商品类目"),
    "sku": _syn("商品编码", "规格编码", "商品规格编码"),
    "quantity": _syn("商品数量", "购买数量"),
    "unit_price": _syn("商品单价", "单价"),
    "name": _syn("收货人/提货人", "收货人", "买家姓名", "客户姓名", "买家昵称"),
    "phone": _syn("收货人手机号/提货人手机号", "收货人手机号", "买家手机号"),
}

YOUZAN_STATUS = {
    "交易成功": "paid",
    "已完成": "paid",
    "待发货": "paid",
    "已发货": "paid",
    "待收货": "paid",
    "商家已发货": "paid",
    "部分发货": "paid",
    "已付款": "paid",
    "交易关闭": "closed",
    "已关闭": "closed",
    "已取消": "cancelled",
    "待付款": "!unpaid",
    "待支付": "!unpaid",
    "等待买家付款": "!unpaid",
    "待成团": "paid",
}

YOUZAN_REFUND = {
    "无": "",
    "无退款": "",
    "未退款": "",
    "退款中": "",
    "退款关闭": "",
    "已拒绝": "",
    "部分退款": "partially_refunded",
    "部分退款成功": "partially_refunded",
    "退款成功": "refunded",
    "全额退款": "refunded",
    "全部退款": "refunded",
    "已退款": "refunded",
}


def _youzan(raw: RawData, mapping: dict[str, str]) -> Canon:
    cols = resolve_columns(raw.header, YOUZAN_SYNONYMS, mapping)
    missing = [
        r for r in ("order_id", "customer_id", "ordered_at", "amount", "status") if r not in cols
    ]
    if missing:
        raise _missing_error("youzan", missing, raw.header, raw.path.name)
    g = {f: _col(raw, c) for f, c in cols.items()}
    status = _map_status(g["status"], YOUZAN_STATUS, default="!unknown")
    assert status is not None
    refund_col = _find(raw.header, "退款状态") or _find(raw.header, "订单退款状态")
    if refund_col is not None:
        rs = _map_status(_col(raw, refund_col), YOUZAN_REFUND, default="")
        assert rs is not None
        rs = pc.if_else(pc.equal(rs, "!unknown"), pa.scalar(""), rs)
        # a completed refund overrides the trade status, unless the order was never paid
        override = pc.and_(pc.not_equal(rs, ""), pc.invert(pc.equal(status, "!unpaid")))
        status = pc.if_else(override, rs, status)
    has_lines = any(k in cols for k in ("product_name", "sku", "quantity", "unit_price"))
    return Canon(
        columns=cols,
        order_id=g["order_id"],
        customer_id=g["customer_id"],
        ordered_at=g["ordered_at"],
        amount=g["amount"],
        status=status,
        status_raw=g["status"],
        refunded_amount=g.get("refunded_amount"),
        currency="CNY",
        channel=g.get("channel") or "youzan",
        sku=g.get("sku") if has_lines else None,
        product_name=g.get("product_name"),
        category=g.get("category"),
        quantity=g.get("quantity"),
        unit_price=g.get("unit_price"),
        name=g.get("name"),
        phone=g.get("phone"),
        amount_scope="order",
        fill_order_fields=True,
    )


# -- Shopify orders export -------------------------------------------------------------------
SHOPIFY_SYNONYMS: dict[str, tuple[str, ...]] = {
    "order_id": _syn("Name"),
    "customer_id": _syn("Email"),
    "ordered_at": _syn("Created at"),
    "amount": _syn("Total"),
    "status": _syn("Financial Status"),
    "currency": _syn("Currency"),
    "refunded_amount": _syn("Refunded Amount"),
    "channel": _syn("Source"),
    "sku": _syn("Lineitem sku"),
    "product_name": _syn("Lineitem name"),
    "quantity": _syn("Lineitem quantity"),
    "unit_price": _syn("Lineitem price"),
    "name": _syn("Billing Name"),
    "phone": _syn("Phone", "Billing Phone"),
    "email": _syn("Email"),
}

SHOPIFY_STATUS = {
    "paid": "paid",
    "partially_refunded": "partially_refunded",
    "refunded": "refunded",
    "voided": "cancelled",
    "pending": "!unpaid",
    "authorized": "!unpaid",
    "partially_paid": "!unpaid",
    "unpaid": "!unpaid",
    "expired": "!unpaid",
}


def _shopify(raw: RawData, mapping: dict[str, str]) -> Canon:
    cols = resolve_columns(raw.header, SHOPIFY_SYNONYMS, mapping)
    missing = [r for r in ("order_id", "ordered_at", "amount", "status") if r not in cols]
    if missing:
        raise _missing_error("shopify", missing, raw.header, raw.path.name)
    g = {f: _col(raw, c) for f, c in cols.items()}
    # Shopify has no customer id column: the customer is their e-mail (lower-cased), else
    # their phone
    email_src = g.get("email") if g.get("email") is not None else g.get("customer_id")
    email = pc.utf8_lower(clean(email_src)) if email_src is not None else None
    phone = clean(g["phone"]) if g.get("phone") is not None else None
    cust = email
    if phone is not None:
        cust = phone if cust is None else pc.if_else(pc.is_null(cust), phone, cust)
    status = _map_status(g["status"], SHOPIFY_STATUS, default="")
    assert status is not None
    status = pc.if_else(pc.equal(status, ""), pa.scalar(None, pa.string()), status)
    cancelled_col = _find(raw.header, "Cancelled at")
    if cancelled_col is not None:
        cancelled = pc.is_valid(clean(_col(raw, cancelled_col)))
        # a cancelled order keeps "refunded" (money went back); otherwise it is cancelled
        to_cancel = pc.and_(cancelled, pc.is_in(status, value_set=pa.array(["paid"])))
        status = pc.if_else(to_cancel, pa.scalar("cancelled"), status)
    return Canon(
        columns=cols,
        order_id=g["order_id"],
        customer_id=cust,
        ordered_at=g["ordered_at"],
        amount=g["amount"],
        status=status,
        status_raw=g["status"],
        refunded_amount=g.get("refunded_amount"),
        currency=g.get("currency") or "USD",
        channel=g.get("channel") or "shopify",
        sku=g.get("sku"),
        product_name=g.get("product_name"),
        quantity=g.get("quantity"),
        unit_price=g.get("unit_price"),
        name=g.get("name"),
        phone=phone,
        email=email,
        amount_scope="order",
        fill_order_fields=True,
    )


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset(
            "generic",
            "Columns such as order_id, customer_id, ordered_at, amount, status (synonyms in "
            "English and Chinese recognised; --mapping overrides).",
            ("customer_id", "ordered_at"),
            GENERIC_SYNONYMS,
            _generic,
        ),
        Preset(
            "cdnow",
            "The CDNOW master file (customer_id date number_of_cds dollar_value) or the "
            "1/10 sample without header (master id, sample id, date, CDs, dollars).",
            (),
            {},
            _cdnow,
            headerless=True,
            signature=("customer_id", "date", "number_of_cds", "dollar_value"),
        ),
        Preset(
            "online-retail",
            "UCI Online Retail: line-level (InvoiceNo, StockCode, Description, Quantity, "
            "InvoiceDate, UnitPrice, CustomerID, Country) or invoices (InvoiceNo, InvoiceDate, "
            "CustomerID, TotalPrice); times in Europe/London.",
            ("order_id", "customer_id", "ordered_at"),
            OR_SYNONYMS,
            _online_retail,
            zone="Europe/London",
            signature=(
                "InvoiceNo",
                "InvoiceDate",
                "CustomerID",
                "UnitPrice",
                "TotalPrice",
                "StockCode",
                "Quantity",
                "Description",
                "Country",
            ),
        ),
        Preset(
            "taobao",
            "Taobao/Tmall seller-center order report (订单报表), GBK CSV.",
            ("order_id", "customer_id", "ordered_at", "amount", "status"),
            TAOBAO_SYNONYMS,
            _taobao,
            signature=(
                "订单编号",
                "买家会员名",
                "买家实际支付金额",
                "订单状态",
                "订单创建时间",
                "宝贝标题",
                "买家支付宝账号",
                "宝贝总数量",
                "买家应付货款",
                "订单付款时间",
            ),
        ),
        Preset(
            "youzan",
            "Youzan (有赞) order export.",
            ("order_id", "customer_id", "ordered_at", "amount", "status"),
            YOUZAN_SYNONYMS,
            _youzan,
            signature=(
                "订单号",
                "订单状态",
                "订单实付金额",
                "买家手机号",
                "商品名称",
                "商品规格",
                "商品数量",
                "订单创建时间",
                "买家付款时间",
                "退款状态",
            ),
        ),
        Preset(
            "shopify",
            "Shopify orders export (one row per line item; totals on the first).",
            ("order_id", "ordered_at", "amount", "status"),
            SHOPIFY_SYNONYMS,
            _shopify,
            signature=(
                "Name",
                "Email",
                "Financial Status",
                "Paid at",
                "Created at",
                "Total",
                "Lineitem quantity",
                "Lineitem name",
                "Lineitem price",
                "Refunded Amount",
            ),
        ),
    )
}

# the other Chinese platforms (拼多多, 抖店, 京东, 快手小店, 微信小店) live in their own module
from huitouke.importing.platforms import PLATFORM_PRESETS  # noqa: E402

PRESETS.update({p.name: p for p in PLATFORM_PRESETS})
