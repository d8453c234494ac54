"""User-facing texts of the import context (zh + en)."""

from __future__ import annotations

from huitouke.i18n import register

MESSAGES: dict[str, dict[str, str]] = {
    # reasons a row is rejected (reason codes are "import.<key>")
    "import.missing_customer_id": {
        "en": "customer id is missing",
        "zh": "缺少客户编号",
    },
    "import.missing_order_id": {"en": "order id is missing", "zh": "缺少订单编号"},
    "import.bad_date": {
        "en": "not a date/time that can be read",
        "zh": "无法识别的日期时间",
    },
    "import.missing_date": {"en": "order date is missing", "zh": "缺少下单时间"},
    "import.bad_amount": {"en": "not an amount that can be read", "zh": "无法识别的金额"},
    "import.missing_amount": {"en": "amount is missing", "zh": "缺少金额"},
    "import.negative_amount": {"en": "amount is negative", "zh": "金额为负数"},
    "import.refund_exceeds_amount": {
        "en": "refunded amount is larger than the order amount",
        "zh": "退款金额大于订单金额",
    },
    "import.bad_consent": {
        "en": "not a yes/no consent value (yes, no, true, false, 1, 0, 是, 否)",
        "zh": "不是可识别的同意值(yes、no、true、false、1、0、是、否)",
    },
    "import.bad_quantity": {"en": "quantity is not a whole number ≥ 0", "zh": "数量不是非负整数"},
    "import.unpaid": {
        "en": "order is not paid (status {value}); unpaid orders are not stored",
        "zh": "订单未付款(状态:{value}),未付款订单不入库",
    },
    "import.unknown_status": {
        "en": "unknown order status {value!r}",
        "zh": "无法识别的订单状态 {value!r}",
    },
    "import.bad_currency": {
        "en": "currency must be a 3-letter ISO 4217 code",
        "zh": "币种必须是 3 位 ISO 4217 代码",
    },
    "import.malformed_row": {
        "en": "row has {value} fields but the header has {expected}",
        "zh": "该行有 {value} 个字段,而表头有 {expected} 个",
    },
    "import.conflicting_duplicate": {
        "en": "the same order appears again with a different customer",
        "zh": "同一订单再次出现但客户不同",
    },
    "import.undecodable_line": {
        "en": "the line cannot be decoded as {encoding}: byte {value} at byte offset {offset} "
        "(left out; fix the line or pass --encoding)",
        "zh": "该行无法按 {encoding} 解码:字节偏移 {offset} 处的字节 {value}(已跳过;"
        "请修正该行或用 --encoding 指定编码)",
    },
    "import.order_id_collision": {
        "en": "order id collision: other rows with order id {value} name {what_en}; not merged "
        "into one order (if the source's ids are not unique, give --order-key, "
        "e.g. date,store,ticket)",
        "zh": "订单编号冲突:订单编号 {value} 的其他行对应{what_zh},不合并为一个订单"
        "(若来源的单号不唯一,请用 --order-key 组合多列,如 date,store,ticket)",
    },
    "import.ambiguous_amount": {
        "en": "amount {value!r} is ambiguous: it reads differently with a decimal comma and a "
        "decimal point, and the column or --decimal-comma/--decimal-point does not settle it",
        "zh": "金额 {value!r} 有歧义:按小数逗号和小数点读法不同,而该列或 "
        "--decimal-comma/--decimal-point 无法确定",
    },
    # CLI
    "import.consent": {
        "zh": "营销同意:记录 {recorded} 项变更;{kept} 项未改(顾客本人的选择优先,如退订)",
        "en": "marketing consent: {recorded} changes recorded; {kept} left as they were (the "
        "customer's own choice, such as an unsubscribe, wins)",
    },
    "import.summary": {
        "en": "batch {batch_id}: {rows_read} rows read, {inserted} orders inserted, "
        "{updated} updated, {unchanged} unchanged, {rejected} rows rejected",
        "zh": "批次 {batch_id}:读取 {rows_read} 行,新增订单 {inserted},更新 {updated},"
        "未变化 {unchanged},拒收 {rejected} 行",
    },
    "import.dry_run_summary": {
        "en": "dry run ({preset}): {rows_read} rows read, {orders} orders, {lines} lines, "
        "{rejected} rows rejected — nothing stored",
        "zh": "试运行({preset}):读取 {rows_read} 行,订单 {orders},明细 {lines},"
        "拒收 {rejected} 行 —— 未写入",
    },
    "import.rejects_written": {
        "en": "rejected rows written to {path}",
        "zh": "拒收的行已写入 {path}",
    },
    "import.rejects_by_reason": {"en": "rejected rows by reason:", "zh": "拒收行按原因统计:"},
    "import.progress_read": {"en": "reading", "zh": "读取"},
    "import.progress_write": {"en": "writing", "zh": "写入"},
}

register(MESSAGES)


def reason_texts(code: str, **params: object) -> tuple[str, str]:
    """(English, Chinese) text of a reject reason code."""
    texts = MESSAGES[code]
    return texts["en"].format(**params), texts["zh"].format(**params)
