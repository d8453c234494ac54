"""Douyin 抖店 (Doudian open platform) orders as order events, the open platform's request
signature and its push messages' signature (pure).

Request signature (``sign``), over the system parameters ``app_key``, ``method``,
``param_json``, ``timestamp`` and ``v`` — written name+value in that (alphabetical) order,
with the app secret before and after::

    app_secret + "app_key" + app_key + "method" + method + "param_json" + param_json
               + "timestamp" + timestamp + "v" + v + app_secret

then ``sign_method=md5``: lower-case hex MD5 of that text; ``sign_method=hmac-sha256``:
lower-case hex HMAC-SHA256 of that text under the app secret. ``param_json`` is the API's
parameters as compact JSON with every object's keys sorted (the gateway signs the text it
receives, so the body sent is exactly the text signed). The access token travels beside
them and is not signed.

Mapping (a ``shop_order`` of ``order.searchList`` / ``order.orderDetail``):

- ``order_id``: ``order_id`` (the parent order); ``customer_id``: ``doudian_open_id`` (the
  buyer's id for the app), else ``open:<open_id>`` (its older form); none: unmappable —
  the buyer's phone and name come encrypted (``encrypt_post_tel``), no key to know a buyer by;
- ``ordered_at``: ``create_time``; ``updated_at``: ``update_time`` — Unix seconds;
- ``amount``: ``pay_amount`` in fen (分), as yuan (÷ 100, exact); ``currency``: CNY;
- ``status`` by ``order_status``: ``1`` (awaiting payment) is skipped; ``105`` (paid), ``2``
  (preparing), ``101`` (partly shipped), ``3`` (shipped), ``5`` (completed) are paid; ``4``
  (cancelled) is skipped when never paid (no ``pay_time``), else cancelled — refunded in
  full when every sub-order's refund succeeded; another status: unmappable (visible);
- refunded: the ``pay_amount`` of each sub-order (``sku_order_list``) whose
  ``after_sale_info.refund_status`` is ``3`` (refund succeeded), capped at the order;
- lines (``sku_order_list``): ``code`` (the merchant's SKU code), else ``out_sku_id`` (a
  number, 0 when unset), else ``product-<product_id>[-<sku_id>]``; ``product_name``; ``item_num``; unit price
  ``origin_amount`` ÷ ``item_num`` in yuan.

Push messages (消息推送): ``POST`` with headers ``app-id``, ``event-sign`` and
``sign-method`` (``md5`` when absent); ``event-sign`` = lower-case hex MD5 of ``app_key +
raw body + app_secret`` (``hmac-sha256``: lower-case hex HMAC-SHA256 of the same text under
the app secret). The body is a JSON array of ``{"tag", "msg_id", "data"}``; ``data`` is the
message's JSON as a string, naming the order in ``p_id``. The receiver answers ``{"code": 0,
"msg": "success"}``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from huitouke.connectors.model import MappedOrder, Skip, Unmappable, refund_status
from huitouke.connectors.values import text

__all__ = [
    "API_VERSION",
    "CURRENCY",
    "ORDER_TAGS",
    "SIGN_HEADER",
    "from_order",
    "identity",
    "message_order",
    "param_json",
    "push_messages",
    "push_secret",
    "push_sign",
    "sign",
    "split_secret",
    "unix_time",
    "verify_push",
]

API_VERSION = "2"
CURRENCY = "CNY"
SIGN_HEADER = "event-sign"
SIGN_METHOD_HEADER = "sign-method"
SIGN_METHODS = ("md5", "hmac-sha256")
#: the trade messages (100 created, 101 paid, 102 shipped, 103 completed, 105 address
#: changed, 106 cancelled, 108 amount changed, 110 awaiting shipment) and the after-sale
#: messages (200–208): each names its order in ``p_id``
ORDER_TAGS = frozenset(
    {"100", "101", "102", "103", "105", "106", "108", "110"} | {str(t) for t in range(200, 209)}
)
_PAID = frozenset({105, 2, 101, 3, 5})
_UNPAID, _CANCELLED = 1, 4
_REFUND_DONE = 3
_FEN = Decimal(100)
#: the fields of a message's data that carry its time, the most telling first
_MESSAGE_TIMES = ("update_time", "cancel_time", "complete_time", "pay_time", "create_time")


def param_json(params: Mapping[str, Any]) -> str:
    """The API's parameters as the gateway signs them: compact JSON, keys sorted at every
    level, non-ASCII written as is."""
    return json.dumps(params, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _digest(text_: str, secret: str, method: str) -> str:
    data, key = text_.encode("utf-8"), secret.encode("utf-8")
    if method == "md5":
        return hashlib.md5(data, usedforsecurity=False).hexdigest()
    if method == "hmac-sha256":
        return hmac.new(key, data, hashlib.sha256).hexdigest()
    raise ValueError(f"sign_method {method!r}: md5 or hmac-sha256")


def sign(
    app_key: str,
    secret: str,
    method: str,
    param_json_: str,
    timestamp: str,
    *,
    v: str = API_VERSION,
    sign_method: str = "md5",
) -> str:
    """The request's ``sign``."""
    text_ = (
        f"{secret}app_key{app_key}method{method}param_json{param_json_}"
        f"timestamp{timestamp}v{v}{secret}"
    )
    return _digest(text_, secret, sign_method)


def unix_time(value: Any, field: str) -> datetime:
    """A Douyin time (Unix seconds) as an aware instant; 0 or none: unmappable."""
    if isinstance(value, bool) or not isinstance(value, (int, str)) or value in (0, "", "0"):
        raise Unmappable(f"{field}: missing time")
    try:
        return datetime.fromtimestamp(int(value), UTC)
    except (ValueError, OverflowError):
        raise Unmappable(f"{field}: not Unix seconds: {value!r}") from None


def _fen(value: Any, field: str) -> Decimal:
    """An amount in fen (a whole number) as yuan."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise Unmappable(f"{field}: not an amount in fen: {value!r}")
    try:
        fen = int(value)
    except ValueError:
        raise Unmappable(f"{field}: not an amount in fen: {value!r}") from None
    return (Decimal(fen) / _FEN).quantize(Decimal("0.01"))


def _order_id(order: Mapping[str, Any]) -> str:
    oid = text(order.get("order_id"))
    if oid is None:
        raise Unmappable("shop order without an order_id")
    return oid


def identity(order: Any) -> tuple[str, datetime]:
    """A shop order's inbox identity: ``order:<order_id>`` and its update time."""
    if not isinstance(order, Mapping):
        raise Unmappable("shop order is not an object")
    return f"order:{_order_id(order)}", unix_time(order.get("update_time"), "update_time")


def _status(value: Any, oid: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise Unmappable(f"order {oid}: order_status {value!r} is not a number") from None


def _line(sku: Any, i: int) -> dict[str, Any]:
    if not isinstance(sku, Mapping):
        raise Unmappable(f"sku_order_list[{i}]: not an object")
    code = text(sku.get("code")) or _id(sku.get("out_sku_id"))
    if code is None:
        pid, sid = sku.get("product_id"), sku.get("sku_id")
        if pid in (None, "", 0, "0"):
            raise Unmappable(f"sku_order_list[{i}]: no out_sku_id, code or product_id")
        code = f"product-{pid}" + (f"-{sid}" if sid not in (None, "", 0, "0") else "")
    q = sku.get("item_num")
    if not isinstance(q, int) or isinstance(q, bool) or q < 0:
        raise Unmappable(f"sku_order_list[{i}].item_num: {q!r} is not a whole number >= 0")
    total = _fen(sku.get("origin_amount"), f"sku_order_list[{i}].origin_amount")
    return {
        "sku": code,
        "product_name": text(sku.get("product_name")),
        "quantity": q,
        "unit_price": (total / q).quantize(Decimal("0.01")) if q else total,
    }


def _id(value: Any) -> str | None:
    """A numeric id the platform writes as 0 when unset."""
    return None if value in (None, "", 0, "0") else str(value)


def _refunded(sku: Any) -> bool:
    info = sku.get("after_sale_info") if isinstance(sku, Mapping) else None
    if not isinstance(info, Mapping):
        return False
    try:
        return int(info.get("refund_status") or 0) == _REFUND_DONE
    except (TypeError, ValueError):
        return False


def from_order(order: Mapping[str, Any]) -> MappedOrder:
    """A ``shop_order`` (amounts in fen, times in Unix seconds)."""
    if not isinstance(order, Mapping):
        raise Unmappable("shop order is not an object")
    oid = _order_id(order)
    state = _status(order.get("order_status"), oid)
    paid = order.get("pay_time") not in (None, "", 0, "0")
    if state == _UNPAID or (state == _CANCELLED and not paid):
        raise Skip(f"order {oid} is not paid (order_status {state})")
    if state != _CANCELLED and state not in _PAID:
        raise Unmappable(f"order {oid}: unknown order_status {state}")
    amount = _fen(order.get("pay_amount"), "pay_amount")
    skus = order.get("sku_order_list") or []
    if not isinstance(skus, list):
        raise Unmappable(f"order {oid}: sku_order_list is not a list")
    refunded = sum(
        (
            _fen(s.get("pay_amount"), f"sku_order_list[{i}].pay_amount")
            for i, s in enumerate(skus)
            if _refunded(s)
        ),
        Decimal(0),
    )
    cancelled = state == _CANCELLED and refunded < amount
    status, refunded = refund_status(cancelled, amount, refunded)
    open_id = text(order.get("doudian_open_id"))
    old = text(order.get("open_id"))
    if open_id is not None:
        customer_id = open_id
    elif old is not None:
        customer_id = f"open:{old}"
    else:
        raise Unmappable(f"order {oid}: no doudian_open_id or open_id to know the buyer by")
    return MappedOrder(
        order_id=oid,
        customer_id=customer_id,
        ordered_at=unix_time(order.get("create_time"), "create_time"),
        updated_at=unix_time(order.get("update_time"), "update_time"),
        amount=amount,
        currency=CURRENCY,
        status=status,
        refunded_amount=refunded,
        lines=[_line(s, i) for i, s in enumerate(skus)],
    )


# -- push messages -------------------------------------------------------------------------
def push_messages(body: Any) -> list[tuple[str, str, Mapping[str, Any]]]:
    """The messages of a push body: ``(tag, msg_id, data)``; ``data`` parsed from its JSON
    text. Not an array of objects: unmappable."""
    if not isinstance(body, list):
        raise Unmappable("the push body is not a JSON array of messages")
    out = []
    for k, m in enumerate(body):
        if not isinstance(m, Mapping):
            raise Unmappable(f"message [{k}] is not an object")
        data = m.get("data")
        if isinstance(data, str):
            try:
                data = json.loads(data, parse_float=Decimal)
            except ValueError:
                raise Unmappable(f"message [{k}].data is not JSON") from None
        out.append((str(m.get("tag") or ""), str(m.get("msg_id") or ""), data or {}))
    return out


def message_order(data: Mapping[str, Any]) -> tuple[str, datetime] | None:
    """The order a message names (``p_id``) and the message's time; ``None`` without one."""
    pid = text(data.get("p_id")) if isinstance(data, Mapping) else None
    if pid is None:
        return None
    for f in _MESSAGE_TIMES:
        if data.get(f) not in (None, "", 0, "0"):
            return pid, unix_time(data[f], f)
    return pid, datetime(1970, 1, 1, tzinfo=UTC)


def push_secret(app_key: str, app_secret: str) -> str:
    """The one text the webhook door keeps for a Douyin connector: both halves of the sign."""
    return f"{app_key}\n{app_secret}"


def split_secret(secret: str) -> tuple[str, str]:
    app_key, _, app_secret = secret.partition("\n")
    return app_key, app_secret


def push_sign(app_key: str, body: bytes, app_secret: str, method: str = "md5") -> str:
    """``event-sign`` of a push body."""
    data = app_key.encode("utf-8") + body + app_secret.encode("utf-8")
    if method == "md5":
        return hashlib.md5(data, usedforsecurity=False).hexdigest()
    if method == "hmac-sha256":
        return hmac.new(app_secret.encode("utf-8"), data, hashlib.sha256).hexdigest()
    raise ValueError(f"sign-method {method!r}: md5 or hmac-sha256")


def verify_push(secret: str, body: bytes, headers: Mapping[str, str]) -> bool:
    """The push's ``event-sign`` (``headers`` with lower-case names) is right for ``body``
    under :func:`push_secret`, by its ``sign-method``; an ``app-id`` other than the app's is
    refused. Compared in constant time, case-insensitively."""
    app_key, app_secret = split_secret(secret)
    given = headers.get(SIGN_HEADER, "").strip().lower()
    method = headers.get(SIGN_METHOD_HEADER, "md5").strip().lower() or "md5"
    app_id = headers.get("app-id", "").strip()
    if not given or not app_key or not app_secret or method not in SIGN_METHODS:
        return False
    if app_id and app_id != app_key:
        return False
    expected = push_sign(app_key, body, app_secret, method)
    return hmac.compare_digest(given.encode("ascii", "replace"), expected.encode("ascii"))
