"""WeChat 小店 (微信小店, the channels e-commerce API ``/channels/ec/…``) orders as order events,
and its message pushes (pure).

Mapping (the ``order`` of ``POST /channels/ec/order/get``):

- ``order_id``: ``order_id`` (a decimal text; some SDKs read it as a number);
- ``customer_id``: ``openid`` (the buyer's id for the shop's app); ``unionid`` (the same
  person across the merchant's WeChat apps, when the shop is bound to an open-platform
  account) is read and kept on the mapping; none: unmappable;
- ``ordered_at``: ``create_time``; ``updated_at``: ``update_time`` — Unix seconds;
- ``amount``: ``order_detail.price_info.order_price`` (what the buyer pays, after
  discounts, with the freight), in **fen** (分): read as a whole number and divided by 100,
  never through a float; ``currency``: CNY;
- ``status`` (``status``): ``10`` (待付款) is skipped; ``250`` (cancelled) is skipped when
  the order was never paid (no ``order_detail.pay_info.pay_time``), else cancelled;
  ``190`` (oversold, cancelled by the merchant) and ``200`` (every item refunded after
  sale, so the order is cancelled) are refunded in full when paid, else skipped; ``12``
  (gift waiting to be accepted), ``13`` (group purchase forming), ``20`` (to ship), ``21``
  (partly shipped), ``30`` (to receive) and ``100`` (completed) are paid; another status is
  unmappable;
- refunded (a paid order): per ``product_infos[]`` item, its ``real_price`` (the item's paid
  total, fen) times ``finish_aftersale_sku_cnt`` / ``sku_cnt`` — the part of the line whose
  after-sale refund is finished (rounded to the fen); capped at the amount;
- lines (``order_detail.product_infos[]``): ``out_sku_id``, else ``sku_code``, else
  ``sku-<sku_id>``; ``title``; ``sku_cnt``; ``sale_price`` (fen).

Pushes (消息推送, JSON data format, safe mode): the body ``{"ToUserName", "Encrypt"}`` and
the query's ``msg_signature``, ``timestamp`` and ``nonce``; ``msg_signature`` is verified
and ``Encrypt`` decrypted with the app's AppID as receive id
(:mod:`huitouke.core.wechat_crypto`, the construction WeCom uses too). The message names an
order (``order_info.order_id``; an after-sale message
``finder_shop_aftersale_status_update.order_id``); its state is fetched from the API.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from huitouke.connectors.model import MappedOrder, Skip, Unmappable, refund_status
from huitouke.connectors.values import text
from huitouke.core.wechat_crypto import WeChatCrypto, WeChatCryptoError, url_signature

__all__ = [
    "CURRENCY",
    "ORDER_EVENTS",
    "PAID_STATES",
    "fen",
    "from_order",
    "identity",
    "open_push",
    "push_identity",
    "push_order_id",
    "push_secret",
    "split_push_secret",
    "valid_webhook_secret",
    "verify_url",
]

CURRENCY = "CNY"
#: paid states: 12 gift to accept, 13 group purchase forming, 20 to ship, 21 partly
#: shipped, 30 to receive, 100 completed
PAID_STATES = frozenset({12, 13, 20, 21, 30, 100})
_UNPAID, _OVERSOLD, _AFTERSALE_CANCELLED, _CANCELLED = 10, 190, 200, 250
#: the push events that name an order whose state is fetched and applied
ORDER_EVENTS = frozenset(
    {
        "channels_ec_order_new",
        "channels_ec_order_pay",
        "channels_ec_order_cancel",
        "channels_ec_order_deliver",
        "channels_ec_order_confirm",
        "channels_ec_order_settle",
        "channels_ec_order_ext_info_update",
        "channels_ec_aftersale_update",
    }
)
_TOKEN = re.compile(r"^[A-Za-z0-9]{3,32}$")
_CENT = Decimal("0.01")


def fen(value: Any, field: str) -> Decimal:
    """An amount in fen (a whole number, or its decimal text) as yuan."""
    if isinstance(value, bool) or value is None or isinstance(value, float):
        raise Unmappable(f"{field}: not a whole number of fen: {value!r}")
    if isinstance(value, Decimal):
        if value != value.to_integral_value():
            raise Unmappable(f"{field}: not a whole number of fen: {value!r}")
        return value / 100
    try:
        return Decimal(int(str(value).strip())) / 100
    except ValueError:
        raise Unmappable(f"{field}: not a whole number of fen: {value!r}") from None


def _seconds(value: Any, field: str) -> datetime:
    if isinstance(value, bool) or value in (None, ""):
        raise Unmappable(f"{field}: missing time")
    try:
        return datetime.fromtimestamp(int(str(value)), UTC)
    except (ValueError, OverflowError, OSError):
        raise Unmappable(f"{field}: not Unix seconds: {value!r}") from None


def _count(value: Any, field: str) -> int:
    if value in (None, ""):
        return 0
    if isinstance(value, bool) or not isinstance(value, int | Decimal | str):
        raise Unmappable(f"{field}: {value!r} is not a whole number >= 0")
    try:
        n = int(str(value))
    except ValueError:
        raise Unmappable(f"{field}: {value!r} is not a whole number >= 0") from None
    if n < 0:
        raise Unmappable(f"{field}: {value!r} is not a whole number >= 0")
    return n


def _order_id(order: Mapping[str, Any]) -> str:
    oid = text(order.get("order_id"))
    if oid is None:
        raise Unmappable("order without an order_id")
    return oid


def identity(order: Any) -> tuple[str, datetime]:
    """An order's inbox identity: ``order:<order_id>`` and its update time."""
    if not isinstance(order, Mapping):
        raise Unmappable("order is not an object")
    return f"order:{_order_id(order)}", _seconds(order.get("update_time"), "update_time")


def _line(item: Any, i: int) -> dict[str, Any]:
    if not isinstance(item, Mapping):
        raise Unmappable(f"product_infos[{i}]: not an object")
    sku = text(item.get("out_sku_id")) or text(item.get("sku_code"))
    if sku is None:
        sid = text(item.get("sku_id"))
        if sid is None or sid == "0":
            raise Unmappable(f"product_infos[{i}]: no out_sku_id, sku_code or sku_id")
        sku = f"sku-{sid}"
    return {
        "sku": sku,
        "product_name": text(item.get("title")),
        "quantity": _count(item.get("sku_cnt"), f"product_infos[{i}].sku_cnt"),
        "unit_price": fen(item.get("sale_price"), f"product_infos[{i}].sale_price"),
    }


def _refunded(items: list[Any]) -> Decimal:
    total = Decimal(0)
    for i, item in enumerate(items):
        if not isinstance(item, Mapping):
            continue
        done = _count(
            item.get("finish_aftersale_sku_cnt"), f"product_infos[{i}].finish_aftersale_sku_cnt"
        )
        if not done:
            continue
        count = _count(item.get("sku_cnt"), f"product_infos[{i}].sku_cnt")
        paid = item.get("real_price")
        if paid in (None, ""):
            line = fen(item.get("sale_price"), f"product_infos[{i}].sale_price") * count
        else:
            line = fen(paid, f"product_infos[{i}].real_price")
        if count:
            total += (line * min(done, count) / count).quantize(_CENT, ROUND_HALF_UP)
    return total


def from_order(order: Mapping[str, Any]) -> MappedOrder:
    """An ``order`` of ``/channels/ec/order/get`` (read with ``parse_float=Decimal``)."""
    if not isinstance(order, Mapping):
        raise Unmappable("order is not an object")
    oid = _order_id(order)
    try:
        state = int(str(order.get("status")))
    except ValueError:
        raise Unmappable(f"order {oid}: status {order.get('status')!r} is not a number") from None
    detail = order.get("order_detail")
    if not isinstance(detail, Mapping):
        raise Unmappable(f"order {oid}: no order_detail")
    pay = detail.get("pay_info")
    paid = isinstance(pay, Mapping) and pay.get("pay_time") not in (None, "", 0, "0")
    if state == _UNPAID:
        raise Skip(f"order {oid} is not paid (status 10)")
    if state in (_CANCELLED, _OVERSOLD, _AFTERSALE_CANCELLED) and not paid:
        raise Skip(f"order {oid} was cancelled unpaid (status {state})")
    if state not in PAID_STATES and state not in (_CANCELLED, _OVERSOLD, _AFTERSALE_CANCELLED):
        raise Unmappable(f"order {oid}: unknown status {state}")
    price = detail.get("price_info")
    if not isinstance(price, Mapping):
        raise Unmappable(f"order {oid}: no price_info")
    amount = fen(price.get("order_price"), "price_info.order_price")
    items = detail.get("product_infos") or []
    if not isinstance(items, list):
        raise Unmappable(f"order {oid}: product_infos is not a list")
    refunded = amount if state in (_OVERSOLD, _AFTERSALE_CANCELLED) else _refunded(items)
    status, refunded = refund_status(state == _CANCELLED, amount, refunded)
    customer = text(order.get("openid"))
    union = text(order.get("unionid"))
    if customer is None:
        raise Unmappable(f"order {oid}: no openid to know the buyer by")
    return MappedOrder(
        order_id=oid,
        customer_id=customer,
        ordered_at=_seconds(order.get("create_time"), "create_time"),
        updated_at=_seconds(order.get("update_time"), "update_time"),
        amount=amount,
        currency=CURRENCY,
        status=status,
        refunded_amount=refunded,
        lines=[_line(item, i) for i, item in enumerate(items)],
        union_id=union,
    )


# -- pushes --------------------------------------------------------------------------------
def valid_webhook_secret(secret: str) -> bool:
    """``TOKEN:ENCODING_AES_KEY``: the push token (3–32 letters and digits) and the
    43-character EncodingAESKey (base64 of 32 bytes, without its ``=``)."""
    token, sep, key = secret.partition(":")
    if not sep or not _TOKEN.match(token) or len(key) != 43:
        return False
    try:
        return len(base64.b64decode(key + "=", validate=True)) == 32
    except (binascii.Error, ValueError):
        return False


def push_secret(appid: str, webhook_secret: str) -> str:
    """The one text the webhook door keeps for a WeChat 小店 connector: the AppID (the
    receive id) and ``TOKEN:ENCODING_AES_KEY``."""
    return f"{appid}\n{webhook_secret}"


def split_push_secret(secret: str) -> tuple[str, str, str]:
    """``(appid, token, encoding_aes_key)`` of :func:`push_secret`."""
    appid, _, rest = secret.partition("\n")
    token, _, key = rest.partition(":")
    return appid, token, key


def verify_url(secret: str, query: Mapping[str, str]) -> str | None:
    """The URL check (a GET when the push URL is saved): ``echostr`` when ``signature`` is
    the SHA-1 of the sorted token, ``timestamp`` and ``nonce``; else ``None``."""
    import hmac

    _appid, token, _key = split_push_secret(secret)
    given = (query.get("signature") or "").strip().lower()
    timestamp, nonce = query.get("timestamp") or "", query.get("nonce") or ""
    if not token or not given or not timestamp or not nonce:
        return None
    expected = url_signature(token, timestamp, nonce)
    if not hmac.compare_digest(given.encode("ascii", "replace"), expected.encode("ascii")):
        return None
    return query.get("echostr") or ""


def _xml_value(node: ET.Element) -> Any:
    children = list(node)
    if not children:
        return (node.text or "").strip()
    return {child.tag: _xml_value(child) for child in children}


def _encrypted_part(body: bytes) -> str | None:
    stripped = body.strip()
    if stripped.startswith(b"<"):
        try:
            return ET.fromstring(stripped).findtext("Encrypt")
        except ET.ParseError:
            return None
    try:
        parsed = json.loads(stripped)
    except (ValueError, UnicodeDecodeError):
        return None
    got = parsed.get("Encrypt") if isinstance(parsed, Mapping) else None
    return got if isinstance(got, str) else None


def open_push(secret: str, body: bytes, query: Mapping[str, str]) -> bytes | None:
    """A safe-mode push's message as JSON bytes, once ``msg_signature`` is verified and
    ``Encrypt`` decrypted for this AppID; ``None`` for anything else (a bad or missing
    signature, another app, a push in plain mode). A message in XML is given as the JSON of
    its elements."""
    appid, token, key = split_push_secret(secret)
    encrypted = _encrypted_part(body)
    if not appid or not token or not key or not encrypted:
        return None
    crypto = WeChatCrypto(token=token, encoding_aes_key=key, receive_id=appid)
    try:
        plain = crypto.open(
            query.get("msg_signature") or "",
            query.get("timestamp") or "",
            query.get("nonce") or "",
            encrypted,
        )
    except WeChatCryptoError:
        return None
    if plain.lstrip().startswith("<"):
        try:
            root = ET.fromstring(plain)
        except ET.ParseError:
            return plain.encode("utf-8")  # kept as it came: the inbox says why it failed
        return json.dumps(_xml_value(root), ensure_ascii=False).encode("utf-8")
    return plain.encode("utf-8")


def push_order_id(msg: Mapping[str, Any]) -> str | None:
    """The order a push message names (``None``: a message about no order)."""
    for key in ("order_info", "finder_shop_aftersale_status_update"):
        part = msg.get(key)
        if isinstance(part, Mapping) and text(part.get("order_id")) is not None:
            return text(part.get("order_id"))
    return None


def push_identity(msg: Mapping[str, Any]) -> tuple[str, datetime]:
    """A push's inbox identity: ``order:<order_id>`` at the message's ``CreateTime``."""
    oid = push_order_id(msg)
    if oid is None:
        raise Unmappable(f"message {msg.get('Event') or '(no Event)'} names no order")
    return f"order:{oid}", _seconds(msg.get("CreateTime"), "CreateTime")
