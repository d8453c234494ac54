"""A faithful local fake of Youzan Cloud's trade search, and Youzan push messages.

Written from Youzan's published API shapes: ``POST /api/youzan.trades.sold.get/4.0.4
?access_token=…`` (as Youzan's own SDKs build the URL) with a JSON body of ``start_update``
/ ``end_update`` (``yyyy-MM-dd HH:mm:ss``, China Standard Time, both ends included),
``page_no`` and ``page_size`` (at most 100); the envelope ``{"success", "code", "message",
"trace_id", "data": {"total_results", "full_order_info_list": [{"full_order_info"}]}}``; a
bad token answered ``success: false``. The trades follow the ``full_order_info`` shape of a
4.0.4 answer (``order_info`` with ``tid``, ``status``, ``created``, ``update_time``,
``pay_time``, ``refund_state`` …; ``buyer_info`` with ``yz_open_id``, ``fans_id``,
``buyer_phone`` encrypted as ``$…$1$``; ``pay_info`` with ``payment``; ``orders``).

The fake lists a range's trades newest update first: the puller must not rely on any order.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, quote, urlparse
from zoneinfo import ZoneInfo

from .fakes import T0, _Server

CST = ZoneInfo("Asia/Shanghai")
CLIENT_ID = "3f8a6b1c2d4e5f60"
CLIENT_SECRET = "9c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f"


def cst(d: datetime) -> str:
    return d.astimezone(CST).strftime("%Y-%m-%d %H:%M:%S")


def youzan_trade(
    i: int,
    updated: datetime,
    *,
    status: str = "TRADE_SUCCESS",
    payment: str = "139.14",
    refund_state: int = 0,
    refunds: tuple[str, ...] = (),
    open_id: str | None = "lDWyZBas807636140352",
    fans_id: int = 19582175287,
    phone: str = "$eTS8t8hAECdXKgNtV6DIfw==$1$",
    paid: bool = True,
) -> dict[str, Any]:
    """A ``full_order_info`` as youzan.trades.sold.get 4.0.4 answers it."""
    created = T0 + timedelta(minutes=i)
    trade: dict[str, Any] = {
        "order_info": {
            "tid": f"E2026110100{i:06d}",
            "status": status,
            "status_str": "已完成" if status == "TRADE_SUCCESS" else "",
            "type": 0,
            "created": cst(created),
            "update_time": cst(updated),
            "pay_time": cst(created + timedelta(seconds=9)) if paid else "",
            "expired_time": cst(created + timedelta(hours=1)),
            "refund_state": refund_state,
            "close_type": 0,
            "pay_type": 10,
            "pay_type_str": "WEIXIN_DAIXIAO",
            "node_kdt_id": 134529034,
            "offline_id": 134529034,
            "is_retail_order": False,
            "order_tags": {"is_virtual": False, "is_payed": paid},
            "order_extra": {},
        },
        "buyer_info": {
            "outer_user_id": "oY0DB6wvFtW40hAL-lIRl4MKXKXE",
            "buyer_phone": phone,
            "fans_type": 1,
            "fans_id": fans_id,
            "fans_nickname": "$v4+NgTioK/l9tFiZ0m8Eow==$1$",
        },
        "pay_info": {
            "outer_transactions": [],
            "post_fee": "0.00",
            "phase_payments": [],
            "total_fee": "150.00",
            "payment": payment,
            "transaction": [],
        },
        "orders": [
            {
                "oid": f"{i}1",
                "item_id": 4000 + i % 3,
                "sku_id": 0,
                "outer_item_id": "",
                "outer_sku_id": f"YZ-{i % 3}",
                "title": "冻干猫粮",
                "num": 1,
                "price": payment,
                "payment": payment,
                "total_fee": payment,
            }
        ],
        "address_info": {"receiver_name": "$Qn/ZHaMby1MzBq3Rw2t7fw==$1$"},
        "remark_info": {"buyer_message": ""},
        "source_info": {"is_offline_order": False},
        "child_info": {"child_orders": []},
    }
    if open_id is not None:
        trade["buyer_info"]["yz_open_id"] = f"{open_id}{i % 20:02d}"
    if refunds:
        trade["refund_order"] = [
            {"refund_id": f"R{i}{k}", "refund_fee": r, "refund_state": 2}
            for k, r in enumerate(refunds)
        ]
    return trade


def push(
    trade: dict[str, Any] | None,
    type_: str,
    *,
    client_id: str = CLIENT_ID,
    secret: str = CLIENT_SECRET,
    sign: bool = True,
    test: bool = False,
    version: int = 1762000000000,
) -> tuple[bytes, dict[str, str]]:
    """A push message's raw body and headers, as Youzan sends it."""
    msg = {} if trade is None else {"full_order_info": trade}
    body = json.dumps(
        {
            "client_id": client_id,
            "id": None if trade is None else trade["order_info"]["tid"],
            "kdt_id": 134529034,
            "kdt_name": "测试店铺",
            "mode": 1,
            "msg": quote(json.dumps(msg, ensure_ascii=False)),
            "sendCount": 0,
            "status": None if trade is None else trade["order_info"]["status"],
            "test": test,
            "type": type_,
            "version": version,
        },
        ensure_ascii=False,
    ).encode()
    headers = {"Content-Type": "application/json", "Event-Type": type_, "Client-Id": client_id}
    if sign:
        digest = hashlib.md5(client_id.encode() + body + secret.encode()).hexdigest()
        headers["Event-Sign"] = digest
    return body, headers


class FakeYouzan(_Server):
    def __init__(self, token: str = "yz_token_test") -> None:
        super().__init__()
        self.token = token
        self.trades: dict[str, dict[str, Any]] = {}
        #: the JSON bodies asked for, in order
        self.asked: list[dict[str, Any]] = []
        #: called before each page is served, with the request's body
        self.before_page: Callable[[dict[str, Any]], None] | None = None
        #: request numbers (1-based) answered by the gateway's error shape
        self.gateway_error_on: set[int] = set()

    def put(self, trade: dict[str, Any]) -> None:
        with self.lock:
            self.trades[trade["order_info"]["tid"]] = trade

    def answer(
        self, h: BaseHTTPRequestHandler, method: str, body: bytes
    ) -> tuple[int, Any, dict[str, str]]:
        url = urlparse(h.path)
        if method != "POST" or url.path != "/api/youzan.trades.sold.get/4.0.4":
            return 404, {"success": False, "code": 404, "message": "api not found"}, {}
        if self.requests in self.gateway_error_on:
            return 200, {"gw_err_resp": {"err_code": 5001, "err_msg": "服务调用失败"}}, {}
        token = (parse_qs(url.query).get("access_token") or [""])[0]
        if token != self.token:
            return 200, {"success": False, "code": 4203, "message": "access_token 无效"}, {}
        req = json.loads(body)
        self.asked.append(req)
        if self.before_page is not None:
            self.before_page(req)
        size = int(req.get("page_size") or 20)
        if size > 100:
            return 200, {"success": False, "code": 141501, "message": "page_size 最大 100"}, {}
        start = datetime.strptime(req["start_update"], "%Y-%m-%d %H:%M:%S")
        end = datetime.strptime(req["end_update"], "%Y-%m-%d %H:%M:%S")
        with self.lock:
            rows = list(self.trades.values())
        rows = [
            t
            for t in rows
            if start
            <= datetime.strptime(t["order_info"]["update_time"], "%Y-%m-%d %H:%M:%S")
            <= end
        ]
        rows.sort(key=lambda t: (t["order_info"]["update_time"], t["order_info"]["tid"]))
        rows.reverse()  # newest first
        page = int(req.get("page_no") or 1)
        chunk = rows[(page - 1) * size : page * size]
        return (
            200,
            {
                "success": True,
                "code": 200,
                "message": "successful",
                "trace_id": f"yz7-{self.requests}",
                "data": {
                    "total_results": len(rows),
                    "full_order_info_list": [{"full_order_info": t} for t in chunk],
                },
            },
            {},
        )
