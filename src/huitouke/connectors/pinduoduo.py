"""Pinduoduo 拼多多 (PDD open platform) orders as order events, and the platform's request
signature (pure).

Signature (``sign``): the request's parameters but ``sign`` itself — the system ones
(``type``, ``client_id``, ``access_token``, ``timestamp``, ``data_type``, ``version``) and
the API's — sorted by name, written name+value with nothing between, the client secret
before and after: upper-case hex MD5 of ``client_secret + text + client_secret``.

Mapping (an ``order_sn_list`` entry of ``pdd.order.number.list.increment.get``):

- ``order_id``: ``order_sn``; ``customer_id``: ``address:<open_address_id>`` — PDD gives
  apps no buyer id; ``open_address_id`` is the platform's stable fingerprint of a buyer's
  receiving address (the key it gives for merging orders to ship together), the nearest to
  a person it offers; none: unmappable;
- ``ordered_at``: ``created_time``; ``updated_at``: ``updated_at`` — ``yyyy-MM-dd
  HH:mm:ss`` in China Standard Time;
- ``amount``: ``pay_amount`` (yuan: goods − discounts + postage); ``currency``: CNY;
- ``status``: ``confirm_status`` ``0`` (a group order not formed yet) is skipped until it
  is; ``2`` (cancelled) is skipped when never paid (no ``pay_time``), else cancelled;
  ``refund_status`` ``4`` (refund succeeded) refunds the whole order — the list carries no
  refund amounts, and a PDD order is one product line; ``2``/``3`` (under way): not yet;
- lines (``item_list``): ``outer_id``, else ``outer_goods_id``, else
  ``goods-<goods_id>[-<sku_id>]``; ``goods_name``; ``goods_count``; ``goods_price``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from huitouke.connectors.model import MappedOrder, Skip, Unmappable, refund_status
from huitouke.connectors.values import money, text
from huitouke.connectors.youzan import trade_time

__all__ = ["CURRENCY", "METHOD", "from_order", "identity", "sign"]

METHOD = "pdd.order.number.list.increment.get"
CURRENCY = "CNY"
_NOT_FORMED, _CONFIRMED, _CANCELLED = 0, 1, 2
_REFUNDED = 4


def sign(params: Mapping[str, Any], client_secret: str) -> str:
    """PDD's ``sign`` of a request's parameters (``sign`` itself and empty values left
    out)."""
    body = "".join(
        f"{k}{params[k]}" for k in sorted(params) if k != "sign" and params[k] not in (None, "")
    )
    data = f"{client_secret}{body}{client_secret}".encode()
    return hashlib.md5(data, usedforsecurity=False).hexdigest().upper()


def _sn(order: Mapping[str, Any]) -> str:
    sn = text(order.get("order_sn"))
    if sn is None:
        raise Unmappable("order without an order_sn")
    return sn


def identity(order: Any) -> tuple[str, datetime]:
    """An order's inbox identity: ``order:<order_sn>`` and its update time."""
    if not isinstance(order, Mapping):
        raise Unmappable("order is not an object")
    return f"order:{_sn(order)}", trade_time(order.get("updated_at"), "updated_at")


def _int(value: Any, field: str, sn: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise Unmappable(f"order {sn}: {field} {value!r} is not a number") from None


def _line(item: Any, i: int) -> dict[str, Any]:
    if not isinstance(item, Mapping):
        raise Unmappable(f"item_list[{i}]: not an object")
    sku = text(item.get("outer_id")) or text(item.get("outer_goods_id"))
    if sku is None:
        gid, sid = item.get("goods_id"), item.get("sku_id")
        if gid in (None, "", 0):
            raise Unmappable(f"item_list[{i}]: no outer_id, outer_goods_id or goods_id")
        sku = f"goods-{gid}" + (f"-{sid}" if sid not in (None, "", 0) else "")
    q = item.get("goods_count")
    if not isinstance(q, int) or isinstance(q, bool) or q < 0:
        raise Unmappable(f"item_list[{i}].goods_count: {q!r} is not a whole number >= 0")
    return {
        "sku": sku,
        "product_name": text(item.get("goods_name")),
        "quantity": q,
        "unit_price": money(item.get("goods_price"), f"item_list[{i}].goods_price"),
    }


def from_order(order: Mapping[str, Any]) -> MappedOrder:
    """An order of the increment list (amounts read as decimals: parse the answer with
    ``parse_float=Decimal``)."""
    if not isinstance(order, Mapping):
        raise Unmappable("order is not an object")
    sn = _sn(order)
    confirm = _int(order.get("confirm_status"), "confirm_status", sn)
    paid = bool(text(order.get("pay_time")))
    if confirm == _NOT_FORMED:
        raise Skip(f"order {sn}: the group is not formed yet (confirm_status 0)")
    if confirm == _CANCELLED and not paid:
        raise Skip(f"order {sn} was cancelled unpaid")
    if confirm not in (_CONFIRMED, _CANCELLED):
        raise Unmappable(f"order {sn}: unknown confirm_status {confirm}")
    amount = money(order.get("pay_amount"), "pay_amount")
    refund = order.get("refund_status")
    refunded = (
        amount
        if refund not in (None, "") and _int(refund, "refund_status", sn) == (_REFUNDED)
        else Decimal(0)
    )
    cancelled = confirm == _CANCELLED and refunded < amount
    status, refunded = refund_status(cancelled, amount, refunded)
    address = text(order.get("open_address_id"))
    if address is None:
        raise Unmappable(
            f"order {sn}: no open_address_id to know the buyer by (PDD gives apps no buyer id)"
        )
    items = order.get("item_list") or []
    if not isinstance(items, list):
        raise Unmappable(f"order {sn}: item_list is not a list")
    return MappedOrder(
        order_id=sn,
        customer_id=f"address:{address}",
        ordered_at=trade_time(order.get("created_time"), "created_time"),
        updated_at=trade_time(order.get("updated_at"), "updated_at"),
        amount=amount,
        currency=CURRENCY,
        status=status,
        refunded_amount=refunded,
        lines=[_line(item, i) for i, item in enumerate(items)],
    )
