"""JD 京东 POP orders (JOS, 京东宙斯开放平台) as order events, and JOS's request signature
(pure).

Signature (``sign``): the request's parameters but ``sign`` itself (``method``,
``app_key``, ``access_token``, ``timestamp``, ``v``, ``360buy_param_json``), sorted by
name, written as name+value with nothing between; ``sign`` = upper-case hex MD5 of
app_secret + that text + app_secret.

Mapping (an ``orderInfoList`` entry of ``jingdong.pop.order.search``, the fields asked for
in :data:`OPTIONAL_FIELDS`):

- ``order_id``: ``orderId``; ``customer_id``: ``open_id_buyer`` (the buyer's id for the
  app; ``pin`` is masked for apps), else ``xid:<xid_buyer>``, else ``pin:<pin>`` when it is
  not masked; none: unmappable;
- ``ordered_at``: ``orderStartTime``; ``updated_at``: ``modified`` — ``yyyy-MM-dd
  HH:mm:ss`` in China Standard Time;
- ``amount``: ``orderPayment`` (what the buyer pays); ``currency``: CNY;
- ``status`` (``orderState``): ``TRADE_CANCELED`` is refunded in full when the order was
  paid (``paymentConfirmTime``), else skipped (a cash-on-delivery order cancelled before
  it was delivered, or an order never paid); the other states of :data:`ORDER_STATES` are
  paid; another state is unmappable. This API shows no partial refunds (JD's after-sale
  service has its own APIs);
- lines (``itemInfoList``): ``outerSkuId``, else ``productNo``, else ``sku-<skuId>``;
  ``skuName``; ``itemTotal``; ``jdPrice``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from huitouke.connectors.model import MappedOrder, Skip, Unmappable, refund_status
from huitouke.connectors.values import money, text
from huitouke.connectors.youzan import PLATFORM_ZONE, trade_time, wire_time

__all__ = [
    "CURRENCY",
    "METHOD",
    "OPTIONAL_FIELDS",
    "ORDER_STATES",
    "PLATFORM_ZONE",
    "from_order",
    "identity",
    "sign",
    "wire_time",
]

METHOD = "jingdong.pop.order.search"
CURRENCY = "CNY"
#: the states asked for (``order_state`` is required; several are joined by commas): every
#: state of an order the buyer has placed, cancelled included
PAID_STATES = (
    "WAIT_SELLER_STOCK_OUT",
    "WAIT_SELLER_DELIVERY",
    "SEND_TO_DISTRIBUTION_CENER",
    "DISTRIBUTION_CENTER_RECEIVED",
    "WAIT_GOODS_RECEIVE_CONFIRM",
    "RECEIPTS_CONFIRM",
    "FINISHED_L",
    "LOCKED",
    "PAUSE",
    "POP_ORDER_PAUSE",
)
CANCELLED = "TRADE_CANCELED"
ORDER_STATES = (*PAID_STATES, CANCELLED)
OPTIONAL_FIELDS = (
    "orderId,orderState,orderStartTime,modified,paymentConfirmTime,orderPayment,"
    "orderTotalPrice,freightPrice,payType,pin,open_id_buyer,xid_buyer,itemInfoList"
)


def sign(params: Mapping[str, Any], secret: str) -> str:
    """JOS's ``sign`` of a request's parameters (``sign`` itself and empty values left
    out)."""
    joined = "".join(
        f"{k}{params[k]}" for k in sorted(params) if k != "sign" and params[k] not in (None, "")
    )
    data = (secret + joined + secret).encode("utf-8")
    return hashlib.md5(data, usedforsecurity=False).hexdigest().upper()


def _oid(order: Mapping[str, Any]) -> str:
    oid = text(order.get("orderId"))
    if oid is None:
        raise Unmappable("order without an orderId")
    return oid


def identity(order: Any) -> tuple[str, Any]:
    if not isinstance(order, Mapping):
        raise Unmappable("order is not an object")
    return f"order:{_oid(order)}", trade_time(order.get("modified"), "modified")


def _count(value: Any, field: str) -> int:
    if isinstance(value, bool):
        raise Unmappable(f"{field}: {value!r} is not a whole number >= 0")
    try:
        n = int(str(value).strip())
    except ValueError:
        raise Unmappable(f"{field}: {value!r} is not a whole number >= 0") from None
    if n < 0:
        raise Unmappable(f"{field}: {value!r} is not a whole number >= 0")
    return n


def _line(item: Any, i: int) -> dict[str, Any]:
    if not isinstance(item, Mapping):
        raise Unmappable(f"itemInfoList[{i}]: not an object")
    sku = text(item.get("outerSkuId")) or text(item.get("productNo"))
    if sku is None:
        sid = text(item.get("skuId"))
        if sid is None:
            raise Unmappable(f"itemInfoList[{i}]: no outerSkuId, productNo or skuId")
        sku = f"sku-{sid}"
    return {
        "sku": sku,
        "product_name": text(item.get("skuName")),
        "quantity": _count(item.get("itemTotal"), f"itemInfoList[{i}].itemTotal"),
        "unit_price": money(item.get("jdPrice"), f"itemInfoList[{i}].jdPrice"),
    }


def _customer(oid: str, order: Mapping[str, Any]) -> str:
    open_id = text(order.get("open_id_buyer"))
    if open_id is not None:
        return open_id
    xid = text(order.get("xid_buyer"))
    if xid is not None:
        return f"xid:{xid}"
    pin = text(order.get("pin"))
    if pin is not None and "*" not in pin:
        return f"pin:{pin}"
    raise Unmappable(
        f"order {oid}: no open_id_buyer, xid_buyer or unmasked pin to know the buyer by"
    )


def from_order(order: Mapping[str, Any]) -> MappedOrder:
    """An ``orderInfoList`` entry (amounts are strings)."""
    if not isinstance(order, Mapping):
        raise Unmappable("order is not an object")
    oid = _oid(order)
    state = str(order.get("orderState") or "")
    paid = text(order.get("paymentConfirmTime")) not in (None, "0000-00-00 00:00:00")
    if state == CANCELLED and not paid:
        raise Skip(f"order {oid} was cancelled unpaid")
    if state != CANCELLED and state not in PAID_STATES:
        raise Unmappable(f"order {oid}: unknown orderState {state or '(none)'}")
    amount = money(order.get("orderPayment"), "orderPayment")
    status, refunded = refund_status(False, amount, amount if state == CANCELLED else Decimal(0))
    items = order.get("itemInfoList") or []
    if not isinstance(items, list):
        raise Unmappable(f"order {oid}: itemInfoList is not a list")
    return MappedOrder(
        order_id=oid,
        customer_id=_customer(oid, order),
        ordered_at=trade_time(order.get("orderStartTime"), "orderStartTime"),
        updated_at=trade_time(order.get("modified"), "modified"),
        amount=amount,
        currency=CURRENCY,
        status=status,
        refunded_amount=refunded,
        lines=[_line(item, i) for i, item in enumerate(items)],
    )
