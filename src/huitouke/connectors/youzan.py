"""Youzan 有赞 trades as order events (pure): the ``full_order_info`` of the Youzan Cloud
open API (``youzan.trades.sold.get`` 4.0.x answers a list of them; the trade push messages
carry one, URL-encoded in their ``msg``), and the push messages' signature.

Mapping:

- ``order_id``: ``order_info.tid`` (``E2024…``);
- ``customer_id``: the buyer's ``buyer_info.yz_open_id`` (Youzan's stable buyer id, which
  replaced ``buyer_id`` in 4.0.4); else ``fans:<fans_id>`` (a non-zero WeChat fan id);
  else ``phone:<buyer_phone>`` when the phone is in clear — Youzan returns personal data
  encrypted (``$…$1$``), which is no key to know a buyer by; none of them: unmappable;
- ``ordered_at``: ``order_info.created``; ``updated_at``: ``order_info.update_time``. Youzan
  writes times as ``yyyy-MM-dd HH:mm:ss`` without an offset, in China Standard Time: they
  are read in ``Asia/Shanghai`` (the platform's zone, whatever the merchant's);
- ``amount``: ``pay_info.payment`` (what the buyer paid, after discounts, with postage);
  ``currency``: ``CNY`` (Youzan sells in yuan only);
- ``status``: ``WAIT_BUYER_PAY`` (and a ``TRADE_CLOSED`` trade never paid — no
  ``pay_time``) is skipped until paid; ``TRADE_PAID``, ``WAIT_CONFIRM``,
  ``WAIT_SELLER_SEND_GOODS``, ``WAIT_BUYER_CONFIRM_GOODS``, ``TRADE_BUYER_SIGNED`` and
  ``TRADE_SUCCESS`` are paid; a paid trade ``TRADE_CLOSED`` without a full refund is
  cancelled;
- refunds, by ``order_info.refund_state``: ``12`` (full refund done) refunds the whole
  payment; ``2`` (partial refund done) the sum of the trade's ``refund_order[].refund_fee``
  — without that list the trade is unmappable (stays visible in the inbox); ``0`` none;
  ``1``/``11`` (a refund under way) not yet;
- lines (``orders``): ``outer_sku_id``, else ``outer_item_id``, else
  ``item-<item_id>[-<sku_id>]``; ``title``; ``num``; ``price`` (the unit price).

Push messages: ``POST`` with headers ``Event-Type`` (the message type, also the body's
``type``) and ``Event-Sign`` = lower-case hex MD5 of ``client_id + raw body +
client_secret``. The body is JSON (``client_id``, ``id`` — the tid —, ``kdt_id``, ``type``,
``status``, ``test``, ``version``, ``msg`` …); ``msg`` is the URL-encoded JSON of the
message, for the trade messages ``{"full_order_info": {…}}``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any
from urllib.parse import unquote_plus
from zoneinfo import ZoneInfo

from huitouke.connectors.model import MappedOrder, Skip, Unmappable, refund_status
from huitouke.connectors.values import money, text

__all__ = [
    "API_VERSION",
    "CURRENCY",
    "PAID_STATES",
    "PLATFORM_ZONE",
    "SIGN_HEADER",
    "TRADE_TYPES",
    "event_sign",
    "from_trade",
    "identity",
    "push_secret",
    "push_trade",
    "split_secret",
    "trade_time",
    "verify_push",
    "wire_time",
]

#: the version of ``youzan.trades.sold.get`` asked for (the one with ``yz_open_id``)
API_VERSION = "4.0.4"
CURRENCY = "CNY"
PLATFORM_ZONE = ZoneInfo("Asia/Shanghai")
SIGN_HEADER = "event-sign"
#: trade states of a trade that has been paid
PAID_STATES = frozenset(
    {
        "TRADE_PAID",
        "WAIT_CONFIRM",
        "WAIT_SELLER_SEND_GOODS",
        "WAIT_BUYER_CONFIRM_GOODS",
        "TRADE_BUYER_SIGNED",
        "TRADE_SUCCESS",
    }
)
#: the push message types that carry a trade (``trade_`` + Taobao-style event names)
TRADE_TYPES = frozenset(
    {
        "trade_TradeCreate",
        "trade_TradeBuyerPay",
        "trade_TradePaid",
        "trade_TradeSellerShip",
        "trade_TradePartlySellerShip",
        "trade_TradeSuccess",
        "trade_TradeClose",
        "trade_TradeMemoModified",
    }
)
_FULL_REFUND, _PARTIAL_REFUND = 12, 2
_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


def trade_time(value: Any, field: str) -> datetime:
    """A Youzan time (``yyyy-MM-dd HH:mm:ss``, China Standard Time) as an aware instant."""
    if not isinstance(value, str) or not value:
        raise Unmappable(f"{field}: missing time")
    try:
        d = datetime.strptime(value, _TIME_FORMAT)
    except ValueError:
        raise Unmappable(f"{field}: not a yyyy-MM-dd HH:mm:ss time: {value!r}") from None
    return d.replace(tzinfo=PLATFORM_ZONE)


def wire_time(d: datetime) -> str:
    """An instant as Youzan's request parameters write it (China Standard Time, whole
    seconds; a fraction is dropped, so a window's start never moves later)."""
    return d.astimezone(PLATFORM_ZONE).strftime(_TIME_FORMAT)


def _encrypted(value: str) -> bool:
    return value.startswith("$") and value.endswith("$") and len(value) > 2


def _customer(tid: str, buyer: Mapping[str, Any]) -> tuple[str, str | None]:
    phone = text(buyer.get("buyer_phone"))
    if phone is not None and _encrypted(phone):
        phone = None
    open_id = text(buyer.get("yz_open_id"))
    if open_id is not None:
        return open_id, phone
    fans = buyer.get("fans_id")
    if fans not in (None, "", 0, "0"):
        return f"fans:{fans}", phone
    if phone is not None:
        return f"phone:{phone.strip()}", phone
    raise Unmappable(f"trade {tid}: no yz_open_id, fans_id or phone in clear to know the buyer by")


def _line(item: Any, i: int) -> dict[str, Any]:
    if not isinstance(item, Mapping):
        raise Unmappable(f"orders[{i}]: not an object")
    sku = text(item.get("outer_sku_id")) or text(item.get("outer_item_id"))
    if sku is None:
        iid, sid = item.get("item_id"), item.get("sku_id")
        if iid in (None, "", 0):
            raise Unmappable(f"orders[{i}]: no outer_sku_id, outer_item_id or item_id")
        sku = f"item-{iid}" + (f"-{sid}" if sid not in (None, "", 0) else "")
    q = item.get("num")
    if not isinstance(q, int) or isinstance(q, bool) or q < 0:
        raise Unmappable(f"orders[{i}].num: {q!r} is not a whole number >= 0")
    return {
        "sku": sku,
        "product_name": text(item.get("title")),
        "quantity": q,
        "unit_price": money(item.get("price"), f"orders[{i}].price"),
    }


def _refund_state(value: Any, tid: str) -> int:
    if value in (None, ""):
        return 0
    try:
        return int(value)
    except (TypeError, ValueError):
        raise Unmappable(f"trade {tid}: refund_state {value!r} is not a number") from None


def from_trade(full: Mapping[str, Any]) -> MappedOrder:
    """A ``full_order_info`` (amounts read as decimals: parse with ``parse_float=Decimal``)."""
    if not isinstance(full, Mapping) or not isinstance(full.get("order_info"), Mapping):
        raise Unmappable("trade without order_info")
    info: Mapping[str, Any] = full["order_info"]
    tid = text(info.get("tid"))
    if tid is None:
        raise Unmappable("trade without a tid")
    state = str(info.get("status") or "")
    paid = bool(text(info.get("pay_time")))
    if state == "TRADE_CLOSED" and not paid:
        raise Skip(f"trade {tid} was closed unpaid")
    if state != "TRADE_CLOSED" and state not in PAID_STATES:
        raise Skip(f"trade {tid} is not paid ({state or 'no status'})")
    pay = full.get("pay_info")
    if not isinstance(pay, Mapping):
        raise Unmappable(f"trade {tid}: no pay_info")
    amount = money(pay.get("payment"), "pay_info.payment")
    refund_state = _refund_state(info.get("refund_state"), tid)
    refunded = Decimal(0)
    if refund_state == _FULL_REFUND:
        refunded = amount
    elif refund_state == _PARTIAL_REFUND:
        refunds = full.get("refund_order")
        if not isinstance(refunds, list) or not refunds:
            raise Unmappable(
                f"trade {tid}: partially refunded (refund_state 2) without refund_order"
            )
        refunded = sum(
            (
                money((r or {}).get("refund_fee"), f"refund_order[{k}].refund_fee")
                for k, r in enumerate(refunds)
            ),
            Decimal(0),
        )
    cancelled = state == "TRADE_CLOSED" and refund_state != _FULL_REFUND
    status, refunded = refund_status(cancelled, amount, refunded)
    buyer = full.get("buyer_info")
    customer_id, phone = _customer(tid, buyer if isinstance(buyer, Mapping) else {})
    items = full.get("orders") or []
    if not isinstance(items, list):
        raise Unmappable(f"trade {tid}: orders is not a list")
    return MappedOrder(
        order_id=tid,
        customer_id=customer_id,
        ordered_at=trade_time(info.get("created"), "order_info.created"),
        updated_at=trade_time(info.get("update_time"), "order_info.update_time"),
        amount=amount,
        currency=CURRENCY,
        status=status,
        refunded_amount=refunded,
        lines=[_line(item, i) for i, item in enumerate(items)],
        phone=phone,
    )


def identity(full: Any) -> tuple[str, datetime]:
    """A trade's inbox identity: ``order:<tid>`` and its update time."""
    if not isinstance(full, Mapping) or not isinstance(full.get("order_info"), Mapping):
        raise Unmappable("trade without order_info")
    tid = text(full["order_info"].get("tid"))
    if tid is None:
        raise Unmappable("trade without a tid")
    return f"order:{tid}", trade_time(full["order_info"].get("update_time"), "update_time")


# -- push messages -------------------------------------------------------------------------
def push_trade(body: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The ``full_order_info`` a push message carries in its ``msg``; ``None`` for a message
    without one (a test push, or a type that names a trade without its state)."""
    if body.get("test") is True:
        return None
    msg = body.get("msg")
    if isinstance(msg, str):
        try:
            msg = json.loads(unquote_plus(msg), parse_float=Decimal)
        except ValueError:
            raise Unmappable("msg: not URL-encoded JSON") from None
    if not isinstance(msg, Mapping):
        return None
    full = msg.get("full_order_info")
    return full if isinstance(full, Mapping) else None


def push_secret(client_id: str, client_secret: str) -> str:
    """The one text the webhook door keeps for a Youzan connector: both halves of the sign."""
    return f"{client_id}\n{client_secret}"


def split_secret(secret: str) -> tuple[str, str]:
    client_id, _, client_secret = secret.partition("\n")
    return client_id, client_secret


def event_sign(client_id: str, body: bytes, client_secret: str) -> str:
    """``Event-Sign``: lower-case hex MD5 of client_id + raw body + client_secret."""
    return hashlib.md5(
        client_id.encode("utf-8") + body + client_secret.encode("utf-8"), usedforsecurity=False
    ).hexdigest()


def verify_push(secret: str, body: bytes, headers: Mapping[str, str]) -> bool:
    """The push's ``Event-Sign`` (``headers`` with lower-case names) is right for ``body``
    under :func:`push_secret`; compared in constant time, case-insensitively."""
    client_id, client_secret = split_secret(secret)
    given = headers.get(SIGN_HEADER, "").strip().lower()
    if not given or not client_id or not client_secret:
        return False
    expected = event_sign(client_id, body, client_secret)
    return hmac.compare_digest(given.encode("ascii", "replace"), expected.encode("ascii"))
