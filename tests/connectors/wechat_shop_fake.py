"""A faithful local fake of WeChat 小店's order API, and WeChat's encrypted message pushes.

Written from WeChat's published API shapes:

- ``POST /cgi-bin/stable_token`` ``{"grant_type": "client_credential", "appid", "secret",
  "force_refresh"}`` → ``{"access_token", "expires_in": 7200}``; a wrong AppID or
  AppSecret ``{"errcode": 40013 | 40125, "errmsg"}``; ``force_refresh`` issues a new token
  (the old one then answers ``40001``);
- ``POST /channels/ec/order/list/get?access_token=…`` ``{"update_time_range":
  {"start_time", "end_time"}, "page_size", "next_key"}`` → ``{"errcode": 0, "errmsg": "ok",
  "order_id_list", "next_key", "has_more"}``: a range over 7 days or a ``page_size`` over
  100 is refused (``errcode`` 40097, "invalid args" — the code is this fake's choice, WeChat
  documents the limits, not the code); the listing is ascending by update time and
  ``next_key`` is a keyset cursor (opaque to the caller);
- ``POST /channels/ec/order/get?access_token=…`` ``{"order_id"}`` → ``{"errcode": 0,
  "order": {…}}`` with the order fields the mapping reads (``order_id``, ``status``,
  ``create_time``, ``update_time``, ``openid``, ``unionid``, ``order_detail`` with
  ``product_infos``, ``price_info``, ``pay_info``; amounts in fen);
- an expired token (:meth:`FakeWeChatShop.expire`) answers ``42001``; request numbers in
  ``limited_on`` answer ``45009`` (call quota reached).

Pushes (:func:`push`): the JSON body ``{"ToUserName", "Encrypt"}`` and the query
``signature``, ``timestamp``, ``nonce``, ``encrypt_type=aes``, ``msg_signature``, encrypted
with the shared WeChat construction (the test asserts it against the published example).
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Callable
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlparse

from huitouke.core.wechat_crypto import WeChatCrypto, signature, url_signature

from .fakes import T0, _Server

APPID = "wx5823bf96d3bd56c7"
APPSECRET = "3f4e0a1b2c3d4e5f60718293a4b5c6d7"
PUSH_TOKEN = "QDG6eK"
AES_KEY = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"
WEBHOOK_SECRET = f"{PUSH_TOKEN}:{AES_KEY}"


def epoch(d: datetime) -> int:
    return int(d.timestamp())


def wechat_order(
    i: int,
    updated: datetime,
    *,
    status: int = 20,
    price: int = 13914,
    finished: tuple[int, ...] = (0, 0),
    paid: bool = True,
    openid: str | None = "oZ3Rn5Hh2ZKh8S4eXb7n3Zx",
    unionid: str | None = "o6_bmasdasdsad6_2sgVt7hMZOPfL",
) -> dict[str, Any]:
    """An ``order`` as ``/channels/ec/order/get`` answers it: two items (two of the first,
    one of the second), the order price in fen; ``finished``: items refunded per line."""
    created = T0 + timedelta(minutes=i)
    first, second = price * 2 // 3, price - price * 2 // 3
    products = [
        {
            "product_id": f"1000000{k}",
            "sku_id": f"2000000{k}",
            "thumb_img": "https://mmecimage.cn/p/x.jpg",
            "sku_cnt": cnt,
            "sale_price": line // cnt,
            "title": "冻干猫粮" if k == 0 else "猫砂",
            "on_aftersale_sku_cnt": 0,
            "finish_aftersale_sku_cnt": finished[k],
            "sku_code": f"WX-{k}",
            "market_price": line // cnt + 100,
            "real_price": line,
            "out_product_id": "",
            "out_sku_id": "",
            "is_discounted": False,
        }
        for k, (cnt, line) in enumerate(((2, first), (1, second)))
    ]
    order: dict[str, Any] = {
        "order_id": str(3705115058471208000 + i),
        "status": status,
        "create_time": epoch(created),
        "update_time": epoch(updated),
        "order_detail": {
            "product_infos": products,
            "price_info": {
                "product_price": price,
                "order_price": price,
                "freight": 0,
                "discounted_price": 0,
            },
            "pay_info": {
                "prepay_id": "wx2612345678901234567890",
                "prepay_time": epoch(created) + 3,
                "transaction_id": "4200001234202611011234567890" if paid else "",
                "pay_time": epoch(created) + 9 if paid else 0,
                "payment_method": 1,
            },
            "delivery_info": {"address_info": {"user_name": "张**", "tel_number": "138****0000"}},
            "ext_info": {"customer_notes": "", "merchant_notes": ""},
        },
        "aftersale_detail": {"aftersale_order_list": [], "on_aftersale_order_cnt": 0},
    }
    if openid is not None:
        order["openid"] = f"{openid}{i % 20:02d}"
    if unionid is not None:
        order["unionid"] = f"{unionid}{i % 20:02d}"
    return order


def message(event: str, order_id: str | None, at: datetime, **extra: Any) -> dict[str, Any]:
    """A push message as WeChat 小店 sends it (JSON data format)."""
    msg: dict[str, Any] = {
        "ToUserName": "gh_3b4c5d6e7f80",
        "FromUserName": "oZ3Rn5Hh2ZKh8S4eXb7n3Zx01",
        "CreateTime": epoch(at),
        "MsgType": "event",
        "Event": event,
    }
    if order_id is not None and event == "channels_ec_aftersale_update":
        msg["finder_shop_aftersale_status_update"] = {
            "status": "MERCHANT_REFUND_SUCCESS",
            "after_sale_order_id": "1234567",
            "order_id": order_id,
        }
    elif order_id is not None:
        msg["order_info"] = {"order_id": int(order_id), **extra}
    return msg


def push(
    msg: dict[str, Any],
    *,
    appid: str = APPID,
    token: str = PUSH_TOKEN,
    key: str = AES_KEY,
    timestamp: str = "1762000000",
    nonce: str = "1372623149",
) -> tuple[bytes, dict[str, str]]:
    """A safe-mode push: the raw body and the URL's query."""
    crypto = WeChatCrypto(token=token, encoding_aes_key=key, receive_id=appid)
    encrypted = crypto.encrypt(json.dumps(msg, ensure_ascii=False))
    body = json.dumps({"ToUserName": msg["ToUserName"], "Encrypt": encrypted}).encode()
    query = {
        "signature": url_signature(token, timestamp, nonce),
        "timestamp": timestamp,
        "nonce": nonce,
        "openid": msg["FromUserName"],
        "encrypt_type": "aes",
        "msg_signature": signature(token, timestamp, nonce, encrypted),
    }
    return body, query


def _err(code: int, msg: str) -> dict[str, Any]:
    return {"errcode": code, "errmsg": msg}


class FakeWeChatShop(_Server):
    def __init__(self) -> None:
        super().__init__()
        self.orders: dict[str, dict[str, Any]] = {}
        self.tokens: list[str] = []
        self.expired: set[str] = set()
        #: the list requests' bodies, in order
        self.asked: list[dict[str, Any]] = []
        #: request numbers (1-based) answered 45009
        self.limited_on: set[int] = set()
        self.before_page: Callable[[dict[str, Any]], None] | None = None
        self.details = 0

    def put(self, order: dict[str, Any]) -> None:
        with self.lock:
            self.orders[order["order_id"]] = order

    def expire(self) -> None:
        """The current token expires (WeChat answers 42001 until a new one is asked)."""
        with self.lock:
            self.expired.update(self.tokens)

    def answer(
        self, h: BaseHTTPRequestHandler, method: str, body: bytes
    ) -> tuple[int, Any, dict[str, str]]:
        url = urlparse(h.path)
        if method != "POST":
            return 404, _err(404, "not found"), {}
        req = json.loads(body or b"{}")
        if url.path == "/cgi-bin/stable_token":
            if req.get("grant_type") != "client_credential" or req.get("appid") != APPID:
                return 200, _err(40013, "invalid appid"), {}
            if req.get("secret") != APPSECRET:
                return 200, _err(40125, "invalid appsecret"), {}
            with self.lock:
                if req.get("force_refresh") or not self.tokens:
                    self.tokens.append(f"ACCESS_TOKEN_{secrets.token_hex(8)}")
                return 200, {"access_token": self.tokens[-1], "expires_in": 7200}, {}
        token = (parse_qs(url.query).get("access_token") or [""])[0]
        with self.lock:
            if token in self.expired:
                return 200, _err(42001, "access_token expired"), {}
            if not self.tokens or token != self.tokens[-1]:
                return 200, _err(40001, "invalid credential, access_token is invalid"), {}
        if self.requests in self.limited_on:
            return 200, _err(45009, "reach max api daily quota limit"), {}
        if url.path == "/channels/ec/order/get":
            with self.lock:
                order = self.orders.get(str(req.get("order_id")))
                self.details += 1
            if order is None:
                return 200, _err(100002, "order not exist"), {}  # the fake's code
            return 200, {"errcode": 0, "errmsg": "ok", "order": order}, {}
        if url.path != "/channels/ec/order/list/get":
            return 404, _err(404, "not found"), {}
        span = req.get("update_time_range") or {}
        start, end = int(span.get("start_time", 0)), int(span.get("end_time", 0))
        size = int(req.get("page_size") or 10)
        if not span or end < start or end - start > 7 * 86400 or not 1 <= size <= 100:
            return 200, _err(40097, "invalid args"), {}
        self.asked.append(req)
        if self.before_page is not None:
            self.before_page(req)
        with self.lock:
            rows = sorted(
                (o["update_time"], o["order_id"])
                for o in self.orders.values()
                if start <= o["update_time"] <= end
            )
        key = req.get("next_key")
        if key:
            after = tuple(json.loads(base64.urlsafe_b64decode(key)))
            rows = [r for r in rows if r > after]
        chunk = rows[:size]
        more = len(rows) > size
        next_key = (
            base64.urlsafe_b64encode(json.dumps(list(chunk[-1])).encode()).decode() if chunk else ""
        )
        return (
            200,
            {
                "errcode": 0,
                "errmsg": "ok",
                "order_id_list": [oid for _, oid in chunk],
                "next_key": next_key,
                "has_more": more,
            },
            {},
        )
