"""Presets for the other platforms Chinese merchants export orders from: Pinduoduo (拼多多),
Douyin 抖店, JD (京东), Kuaishou (快手小店) and WeChat 小店 (视频号小店).

Each is a table of where the canonical fields are (the export's own column names, with the
variants seen across export versions), its status words and, where there is one, its
after-sales (售后) column. What they share is done once in :func:`_platform`:

* the customer: the platform's buyer id when the export has one (JD 下单帐号, Kuaishou
  买家ID, WeChat 买家openid); Pinduoduo and 抖店 exports name only the recipient, so the
  customer is the recipient's name and (masked) phone together — ``张三|138****0001`` —
  which keeps two buyers who share a masked number apart;
* money: yuan unless a column's header says fen (``订单金额(分)``, as API dumps and some
  exports write it), then divided by 100;
* one row per item (sub-order) with the order's amount repeated on each row: the rows are
  the order's lines.

See docs/import.md for each preset's columns and status words.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import pyarrow as pa
import pyarrow.compute as pc

from huitouke.importing.build import Canon
from huitouke.importing.convert import clean
from huitouke.importing.presets import (
    Preset,
    _col,
    _find,
    _map_status,
    _missing_error,
    _syn,
    resolve_columns,
)
from huitouke.importing.sources import RawData

__all__ = ["PLATFORM_PRESETS"]

_FEN = re.compile(r"[(（]\s*分\s*[)）]|单位[:：]?\s*分")

# -- Pinduoduo 拼多多 ---------------------------------------------------------------------------
PDD_SYNONYMS = {
    "order_id": _syn("订单号"),
    "customer_id": _syn("用户id", "买家id"),
    "ordered_at": _syn("订单成交时间", "支付时间", "拼单成功时间", "订单创建时间"),
    "amount": _syn("用户实付金额(元)", "用户实付金额", "实收金额(元)", "商家实收金额(元)"),
    "status": _syn("订单状态"),
    "product_name": _syn("商品", "商品名称"),
    "sku": _syn("商家编码-sku维度", "商家编码-SKU维度", "sku编码", "商品id", "样式id"),
    "quantity": _syn("商品数量(件)", "商品数量"),
    "name": _syn("收货人", "收货人姓名"),
    "phone": _syn("手机", "收货人手机号", "收货人电话"),
}
PDD_STATUS = {
    "待支付": "!unpaid", "待付款": "!unpaid", "未支付": "!unpaid",
    "待发货": "paid", "已发货，待签收": "paid", "已发货待签收": "paid", "已签收": "paid",
    "已收货": "paid", "交易成功": "paid", "已成团": "paid", "待成团": "paid",
    "未发货，退款成功": "refunded", "已发货，退款成功": "refunded", "已签收，退款成功": "refunded",
    "退款成功": "refunded", "已取消": "cancelled", "已关闭": "closed", "交易关闭": "closed",
}  # fmt: skip
PDD_AFTER_SALES = {
    "无售后或售后取消": "", "无售后": "", "售后取消": "", "售后处理中": "", "退款中": "",
    "退款成功": "refunded", "退货退款成功": "refunded", "仅退款成功": "refunded",
    "部分退款成功": "partially_refunded",
}  # fmt: skip

# -- Douyin 抖店 --------------------------------------------------------------------------------
DOUYIN_SYNONYMS = {
    "order_id": _syn("主订单编号", "订单编号", "订单号"),
    "customer_id": _syn("用户id", "买家id"),
    "ordered_at": _syn("订单提交时间", "下单时间", "支付完成时间"),
    "amount": _syn("订单应付金额", "应付金额", "实付金额", "订单实付金额"),
    "status": _syn("订单状态"),
    "refunded_amount": _syn("退款金额", "售后退款金额"),
    "product_name": _syn("选购商品", "商品名称"),
    "sku": _syn("商家编码", "商品编码", "商品id"),
    "quantity": _syn("商品数量"),
    "unit_price": _syn("商品单价"),
    "channel": _syn("店铺名称"),
    "name": _syn("收件人", "收货人"),
    "phone": _syn("收件人手机号", "收件人电话", "收货人手机号"),
}
DOUYIN_STATUS = {
    "待支付": "!unpaid", "待付款": "!unpaid", "待确认": "!unpaid",
    "已支付": "paid", "备货中": "paid", "待发货": "paid", "部分发货": "paid", "已发货": "paid",
    "已完成": "paid", "交易完成": "paid", "已签收": "paid",
    "已关闭": "closed", "交易关闭": "closed", "已取消": "cancelled",
}  # fmt: skip
DOUYIN_AFTER_SALES = {
    "-": "", "无": "", "无售后": "", "售后关闭": "", "售后中": "", "退款中": "",
    "退款成功": "refunded", "售后完成": "refunded", "已退款": "refunded",
    "部分退款": "partially_refunded",
}  # fmt: skip

# -- JD 京东 ------------------------------------------------------------------------------------
JD_SYNONYMS = {
    "order_id": _syn("订单号", "订单编号"),
    "customer_id": _syn("下单帐号", "下单账号", "用户账号", "买家账号"),
    "ordered_at": _syn("下单时间", "付款确认时间"),
    "amount": _syn("应付金额", "订单金额", "实付金额"),
    "status": _syn("订单状态"),
    "product_name": _syn("商品名称"),
    "sku": _syn("商品id", "商品编号", "sku"),
    "quantity": _syn("订购数量", "商品数量"),
    "unit_price": _syn("京东价", "商品单价"),
    "channel": _syn("店铺名称"),
    "name": _syn("客户姓名", "收货人"),
    "phone": _syn("联系电话", "手机号"),
}
JD_STATUS = {
    "等待付款": "!unpaid", "等待付款确认": "!unpaid", "待付款": "!unpaid",
    "等待出库": "paid", "等待发货": "paid", "等待确认收货": "paid", "等待收货": "paid",
    "完成": "paid", "已完成": "paid", "暂停": "paid", "锁定": "paid",
    "已取消": "cancelled", "取消": "cancelled", "订单取消": "cancelled", "(删除)": "cancelled",
    "删除": "cancelled", "已退款": "refunded",
}  # fmt: skip

# -- Kuaishou 快手小店 ----------------------------------------------------------------------------
KUAISHOU_SYNONYMS = {
    "order_id": _syn("订单号", "订单编号", "订单id"),
    "customer_id": _syn("买家id", "买家ID", "用户id", "买家昵称"),
    "ordered_at": _syn("订单创建时间", "下单时间", "支付时间"),
    "amount": _syn("实付款", "订单实付款", "实付金额", "订单实付金额", "买家实付"),
    "status": _syn("订单状态"),
    "refunded_amount": _syn("退款金额"),
    "product_name": _syn("商品名称", "商品标题"),
    "sku": _syn("sku编码", "商品编码", "商品id", "skuid"),
    "quantity": _syn("成交数量", "商品数量", "购买数量"),
    "unit_price": _syn("商品单价", "成交单价"),
    "channel": _syn("店铺名称"),
    "name": _syn("收货人姓名", "收货人"),
    "phone": _syn("收货人电话", "收货人手机号"),
}
KUAISHOU_STATUS = {
    "待付款": "!unpaid", "未付款": "!unpaid",
    "已付款": "paid", "待发货": "paid", "已发货": "paid", "待收货": "paid", "已收货": "paid",
    "交易成功": "paid", "已完成": "paid",
    "交易关闭": "closed", "已关闭": "closed", "已取消": "cancelled", "已退款": "refunded",
}  # fmt: skip

# -- WeChat 小店 (视频号小店) ----------------------------------------------------------------------
WECHAT_SYNONYMS = {
    "order_id": _syn("订单号", "订单编号", "order_id"),
    "customer_id": _syn("买家openid", "openid", "买家id", "用户openid"),
    "ordered_at": _syn("下单时间", "订单创建时间", "create_time"),
    "amount": _syn("订单实付金额", "实付金额", "订单金额", "order_price"),
    "status": _syn("订单状态", "status"),
    "refunded_amount": _syn("退款金额"),
    "product_name": _syn("商品名称", "商品标题", "title"),
    "sku": _syn("sku编码", "商品编码", "商品id", "sku_id"),
    "quantity": _syn("商品数量", "购买数量", "sku_cnt"),
    "unit_price": _syn("商品价格", "商品单价", "sale_price"),
    "name": _syn("收件人", "收件人姓名", "收货人"),
    "phone": _syn("收件人手机号", "收件人电话", "收货人手机号"),
}
# the order status words of the shop console and the numeric codes of its order API
# (10 待付款, 20 待发货, 21 部分发货, 30 待收货, 100 完成, 200 售后后取消, 250 未付款取消)
WECHAT_STATUS = {
    "待付款": "!unpaid", "10": "!unpaid",
    "待发货": "paid", "20": "paid", "部分发货": "paid", "21": "paid", "待收货": "paid",
    "30": "paid", "已完成": "paid", "完成": "paid", "100": "paid",
    "已取消": "cancelled", "250": "cancelled", "售后完成已取消": "refunded",
    "全部商品售后之后订单取消": "refunded", "200": "refunded",
}  # fmt: skip


# WeChat's order API writes every price in fen
_FEN_NAMES = frozenset(_syn("order_price", "sale_price", "product_price", "refund_amount"))


def _with_units(synonyms: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
    """Money columns also under their unit-marked names: 实付款(元), 实付款(分)."""
    out = dict(synonyms)
    for f in ("amount", "unit_price", "refunded_amount"):
        if f in out:
            out[f] = tuple(dict.fromkeys([*out[f], *(n + u for n in out[f] for u in ("元", "分"))]))
    return out


for _table in (PDD_SYNONYMS, DOUYIN_SYNONYMS, JD_SYNONYMS, KUAISHOU_SYNONYMS, WECHAT_SYNONYMS):
    _table.update(_with_units(_table))


def _fen_columns(raw: RawData, cols: dict[str, str]) -> set[str]:
    from huitouke.importing.sources import norm_header

    return {f for f, c in cols.items() if _FEN.search(c) or norm_header(c) in _FEN_NAMES}


def _join_customer(name: pa.Array | None, phone: pa.Array | None) -> pa.Array | None:
    """Recipient name and (masked) phone as one customer id; either alone if one is empty."""
    if name is None and phone is None:
        return None
    if name is None or phone is None:
        return clean(name if name is not None else phone)
    n, p = clean(name), clean(phone)
    both = pc.binary_join_element_wise(n, p, "|")
    return pc.coalesce(both, n, p)


def _platform(
    name: str,
    synonyms: dict[str, tuple[str, ...]],
    status: dict[str, str],
    *,
    after_sales: dict[str, str] | None = None,
    recipient_is_customer: bool = False,
) -> Callable[[RawData, dict[str, str]], Canon]:
    def make(raw: RawData, mapping: dict[str, str]) -> Canon:
        cols = resolve_columns(raw.header, synonyms, mapping)
        customer = None
        if "customer_id" not in cols and recipient_is_customer:
            customer = _join_customer(_col(raw, cols.get("name")), _col(raw, cols.get("phone")))
        missing = [f for f in ("order_id", "ordered_at", "amount", "status") if f not in cols]
        if "customer_id" not in cols and customer is None:
            missing.insert(1, "customer_id")
        if missing:
            raise _missing_error(name, missing, raw.header, raw.path.name)
        g = {f: _col(raw, c) for f, c in cols.items()}
        fen = _fen_columns(raw, cols)
        st = _map_status(g["status"], status, default="!unknown")
        assert st is not None
        col = None
        for header in ("售后状态", "退款状态"):
            col = col or _find(raw.header, header)
        if after_sales is not None and col is not None:
            rs = _map_status(_col(raw, col), after_sales, default="")
            assert rs is not None
            rs = pc.if_else(pc.equal(rs, "!unknown"), pa.scalar(""), rs)
            # a completed refund overrides the trade status, unless the order was never paid
            override = pc.and_(pc.not_equal(rs, ""), pc.invert(pc.equal(st, "!unpaid")))
            st = pc.if_else(override, rs, st)
        return Canon(
            columns=cols,
            order_id=g["order_id"],
            customer_id=g.get("customer_id") if customer is None else customer,
            ordered_at=g["ordered_at"],
            amount=g["amount"],
            status=st,
            status_raw=g["status"],
            refunded_amount=g.get("refunded_amount"),
            currency="CNY",
            channel=g.get("channel") or name,
            sku=g.get("sku"),
            product_name=g.get("product_name"),
            quantity=g.get("quantity"),
            unit_price=g.get("unit_price"),
            name=g.get("name"),
            phone=g.get("phone"),
            amount_scope="order",
            fill_order_fields=True,
            fen_fields=frozenset(fen),
        )

    return make


def _preset(
    name: str,
    description: str,
    synonyms: dict[str, tuple[str, ...]],
    status: dict[str, str],
    *,
    signature: tuple[str, ...],
    after_sales: dict[str, str] | None = None,
    recipient_is_customer: bool = False,
) -> Preset:
    """One platform's preset: the customer column is required unless the recipient stands
    in for it."""
    customer = () if recipient_is_customer else ("customer_id",)
    required: tuple[str, ...] = ("order_id", *customer, "ordered_at", "amount", "status")
    make = _platform(
        name,
        synonyms,
        status,
        after_sales=after_sales,
        recipient_is_customer=recipient_is_customer,
    )
    return Preset(name, description, required, synonyms, make, signature=signature)


PLATFORM_PRESETS: tuple[Preset, ...] = (
    _preset(
        "pinduoduo",
        "Pinduoduo (拼多多) merchant order export: 订单号, 商品, 订单状态, 用户实付金额(元), "
        "商品数量(件), 订单成交时间, 收货人, 手机, 售后状态 …",
        PDD_SYNONYMS,
        PDD_STATUS,
        signature=("订单号", "用户实付金额(元)", "商家实收金额(元)", "商品总价(元)", "商品数量(件)",
                   "订单成交时间", "店铺优惠折扣(元)", "平台优惠折扣(元)", "样式ID", "售后状态"),
        after_sales=PDD_AFTER_SALES,
        recipient_is_customer=True,
    ),
    _preset(
        "douyin",
        "Douyin 抖店 order export, one row per sub-order: 主订单编号, 子订单编号, 选购商品, "
        "商品数量, 订单提交时间, 订单状态, 订单应付金额, 收件人, 收件人手机号, 售后状态 …",
        DOUYIN_SYNONYMS,
        DOUYIN_STATUS,
        signature=("主订单编号", "子订单编号", "选购商品", "订单提交时间", "订单应付金额",
                   "支付完成时间", "收件人手机号", "商家编码"),
        after_sales=DOUYIN_AFTER_SALES,
        recipient_is_customer=True,
    ),
    _preset(
        "jd",
        "JD (京东) merchant order export: 订单号, 商品ID, 商品名称, 订购数量, 下单时间, 京东价, "
        "应付金额, 订单状态, 下单帐号, 客户姓名, 联系电话, 店铺名称 …",
        JD_SYNONYMS,
        JD_STATUS,
        signature=("订单号", "下单帐号", "订购数量", "京东价", "应付金额", "下单时间", "客户姓名",
                   "付款确认时间"),
    ),
    _preset(
        "kuaishou",
        "Kuaishou 快手小店 order export: 订单号, 订单创建时间, 订单状态, 商品名称, 成交数量, "
        "实付款, 买家ID, 收货人姓名, 收货人电话 …",
        KUAISHOU_SYNONYMS,
        KUAISHOU_STATUS,
        signature=("订单号", "订单创建时间", "实付款", "成交数量", "买家ID", "收货人电话"),
    ),
    _preset(
        "wechat",
        "WeChat 小店 (视频号小店) orders: the console export (订单号, 下单时间, 订单状态, 商品名称, "
        "订单实付金额, 买家openid …) or its order API flattened (order_id, openid, create_time, "
        "status, order_price in fen).",
        WECHAT_SYNONYMS,
        WECHAT_STATUS,
        signature=("订单号", "下单时间", "订单实付金额", "买家openid", "收件人手机号", "sku编码",
                   "order_id", "openid", "create_time", "order_price", "sku_cnt"),
    ),
)  # fmt: skip
