"""User-facing texts of the application layer (zh and en)."""

from __future__ import annotations

from huitouke.i18n import register

MESSAGES = {
    "orders.conflict": {
        "zh": "订单 {order_id} 已记录为 {field}={stored},本次为 {given}:同一订单号不能改变"
        "顾客、下单时间、金额或币种(若是另一张订单,请换一个订单号)",
        "en": "order {order_id} is recorded with {field}={stored}, this event says {given}: "
        "an order id cannot change its customer, time, amount or currency (if this is another "
        "order, give it another id)",
    },
    "orders.ambiguous": {
        "zh": "订单号 {order_id} 在多个来源中都有订单({sources}):请用 source 指明是哪个来源的订单",
        "en": "order id {order_id} is used by several sources ({sources}): name the source "
        "(source=…) to say which order you mean",
    },
    "orders.conflicts_in_batch": {
        "zh": "{n} 个订单与已记录的订单冲突(同一订单号,不同的顾客、时间、金额或币种),"
        "未导入任何数据;例如:{examples}",
        "en": "{n} orders conflict with the recorded ones (same order id, another customer, "
        "time, amount or currency); nothing was imported. For example: {examples}",
    },
}

register(MESSAGES)
