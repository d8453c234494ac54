"""Taobao/Tmall TOP (淘宝开放平台) trades as order events, and TOP's request signature (pure).

Signature (``sign``): the request's parameters but ``sign`` itself (the system ones —
``method``, ``app_key``, ``session``, ``timestamp``, ``format``, ``v``, ``sign_method`` —
and the API's), sorted by name, written as name+value with nothing between, then

- ``sign_method=md5``: upper-case hex MD5 of secret + that text + secret;
- ``sign_method=hmac``: upper-case hex HMAC-MD5 of that text under the secret.

Mapping (a ``trade`` of ``taobao.trades.sold.increment.get``, the fields asked for in
:data:`FIELDS`):

- ``order_id``: ``tid_str`` (else ``tid``); ``customer_id``: ``buyer_open_uid`` (the
  buyer's id for the app; nicknames are masked for apps since 2021), else
  ``nick:<buyer_nick>``; none: unmappable;
- ``ordered_at``: ``created``; ``updated_at``: ``modified`` — ``yyyy-MM-dd HH:mm:ss`` in
  China Standard Time (read in ``Asia/Shanghai``);
- ``amount``: ``payment``; ``currency``: CNY;
- ``status``: not paid yet (``TRADE_NO_CREATE_PAY``, ``WAIT_BUYER_PAY``, ``PAY_PENDING``,
  ``WAIT_PRE_AUTH_CONFIRM``) and ``TRADE_CLOSED_BY_TAOBAO`` (closed before payment) are
  skipped; ``TRADE_CLOSED`` (closed after payment: every sub-order refunded) is refunded in
  full; the others are paid, refunded by the ``payment`` of each sub-order whose
  ``refund_status`` is ``SUCCESS``;
- lines (``orders.order``): ``outer_sku_id``, else ``outer_iid``, else
  ``item-<num_iid>[-<sku_id>]``; ``title``; ``num``; ``price``.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from huitouke.connectors.model import MappedOrder, Skip, Unmappable, refund_status
from huitouke.connectors.values import money, text
from huitouke.connectors.youzan import PLATFORM_ZONE, trade_time, wire_time

__all__ = [
    "FIELDS",
    "METHOD",
    "PLATFORM_ZONE",
    "from_trade",
    "identity",
    "sign",
    "wire_time",
]

METHOD = "taobao.trades.sold.increment.get"
#: the trade fields asked for (``fields`` is required by the API)
FIELDS = (
    "tid,tid_str,status,created,modified,pay_time,payment,total_fee,buyer_nick,"
    "buyer_open_uid,orders.oid,orders.title,orders.num,orders.price,orders.payment,"
    "orders.outer_sku_id,orders.outer_iid,orders.num_iid,orders.sku_id,orders.refund_status"
)
_UNPAID = frozenset(
    {"TRADE_NO_CREATE_PAY", "WAIT_BUYER_PAY", "PAY_PENDING", "WAIT_PRE_AUTH_CONFIRM"}
)
_PAID = frozenset(
    {
        "WAIT_SELLER_SEND_GOODS",
        "SELLER_CONSIGNED_PART",
        "WAIT_BUYER_CONFIRM_GOODS",
        "TRADE_BUYER_SIGNED",
        "TRADE_FINISHED",
        "PAID_FORBID_CONSIGN",
    }
)


def sign(params: Mapping[str, Any], secret: str, method: str = "md5") -> str:
    """TOP's ``sign`` of a request's parameters (``sign`` itself and empty values left
    out)."""
    text_ = "".join(
        f"{k}{params[k]}" for k in sorted(params) if k != "sign" and params[k] not in (None, "")
    ).encode("utf-8")
    key = secret.encode("utf-8")
    if method == "md5":
        digest = hashlib.md5(key + text_ + key, usedforsecurity=False).hexdigest()
    elif method == "hmac":
        digest = hmac.new(key, text_, hashlib.md5).hexdigest()
    else:
        raise ValueError(f"sign_method {method!r}: md5 or hmac")
    return digest.upper()


def _tid(trade: Mapping[str, Any]) -> str:
    tid = text(trade.get("tid_str")) or text(trade.get("tid"))
    if tid is None:
        raise Unmappable("trade without a tid")
    return tid


def identity(trade: Any) -> tuple[str, Any]:
    if not isinstance(trade, Mapping):
        raise Unmappable("trade is not an object")
    return f"order:{_tid(trade)}", trade_time(trade.get("modified"), "modified")


def _line(item: Any, i: int) -> dict[str, Any]:
    if not isinstance(item, Mapping):
        raise Unmappable(f"orders.order[{i}]: not an object")
    sku = text(item.get("outer_sku_id")) or text(item.get("outer_iid"))
    if sku is None:
        iid, sid = item.get("num_iid"), item.get("sku_id")
        if iid in (None, "", 0):
            raise Unmappable(f"orders.order[{i}]: no outer_sku_id, outer_iid or num_iid")
        sku = f"item-{iid}" + (f"-{sid}" if sid not in (None, "", 0) else "")
    q = item.get("num")
    if not isinstance(q, int) or isinstance(q, bool) or q < 0:
        raise Unmappable(f"orders.order[{i}].num: {q!r} is not a whole number >= 0")
    return {
        "sku": sku,
        "product_name": text(item.get("title")),
        "quantity": q,
        "unit_price": money(item.get("price"), f"orders.order[{i}].price"),
    }


def from_trade(trade: Mapping[str, Any]) -> MappedOrder:
    """A trade of ``taobao.trades.sold.increment.get`` (amounts are strings)."""
    if not isinstance(trade, Mapping):
        raise Unmappable("trade is not an object")
    tid = _tid(trade)
    state = str(trade.get("status") or "")
    if state in _UNPAID or state == "TRADE_CLOSED_BY_TAOBAO":
        raise Skip(f"trade {tid} is not paid ({state})")
    if state != "TRADE_CLOSED" and state not in _PAID:
        raise Unmappable(f"trade {tid}: unknown status {state or '(none)'}")
    amount = money(trade.get("payment"), "payment")
    items = ((trade.get("orders") or {}).get("order")) or []
    if not isinstance(items, list):
        raise Unmappable(f"trade {tid}: orders.order is not a list")
    refunded = Decimal(0)
    for i, item in enumerate(items):
        if isinstance(item, Mapping) and item.get("refund_status") == "SUCCESS":
            refunded += money(item.get("payment"), f"orders.order[{i}].payment")
    if state == "TRADE_CLOSED":
        refunded = amount
    status, refunded = refund_status(False, amount, refunded)
    open_uid = text(trade.get("buyer_open_uid"))
    nick = text(trade.get("buyer_nick"))
    if open_uid is not None:
        customer_id = open_uid
    elif nick is not None:
        customer_id = f"nick:{nick}"
    else:
        raise Unmappable(f"trade {tid}: no buyer_open_uid or buyer_nick to know the buyer by")
    return MappedOrder(
        order_id=tid,
        customer_id=customer_id,
        ordered_at=trade_time(trade.get("created"), "created"),
        updated_at=trade_time(trade.get("modified"), "modified"),
        amount=amount,
        currency="CNY",
        status=status,
        refunded_amount=refunded,
        lines=[_line(item, i) for i, item in enumerate(items)],
    )
