"""A faithful local fake of Pinduoduo's ``pdd.order.number.list.increment.get``.

Written from PDD's published API description and its open-source SDKs' request and answer
shapes: ``POST /api/router`` with a JSON body of the system parameters (``type``,
``client_id``, ``access_token``, ``timestamp`` in Unix seconds, ``data_type``, ``version``,
``sign``) and the API's; the sign checked with this module's own computation (upper-case MD5
of client_secret + sorted name+value + client_secret). ``start_updated_at``/
``end_updated_at`` (Unix seconds, both ends included) more than 30 minutes apart, a
``page_size`` over 100 or a ``page`` under 1 are refused; the answer lists a window newest
update first, ``{"order_sn_increment_get_response": {"total_count", "has_next",
"order_sn_list"}}`` (no ``total_count`` when ``use_has_next=true``); errors are
``{"error_response": {"error_code", "error_msg", "sub_code", "sub_msg", "request_id"}}``.
Only the retry codes the connector acts on (52101, 52102, 52103, 70031, from an open-source
PDD SDK's retry list) matter to it; the others are illustrative.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler
from typing import Any

from .fakes import T0, _Server
from .youzan_fake import cst

CLIENT_ID = "b1e4c3a2f5d64e7f8a9b0c1d2e3f4a5b"
CLIENT_SECRET = "5f4e3d2c1b0a99887766554433221100aabbccdd"
TOKEN = "pdd-access-token-7c1e2d"


def pdd_order(
    i: int,
    updated: datetime,
    *,
    confirm_status: int = 1,
    refund_status: int = 1,
    order_status: int = 2,
    pay_amount: str = "59.90",
    address: str | None = "#GKTB7s7wOxP/iHoVtQM9LrM0EXj6pJo6xT/cJJ9rjxCl2AYG",
    paid: bool = True,
) -> dict[str, Any]:
    """An ``order_sn_list`` entry (amounts are JSON numbers in yuan)."""
    created = T0 + timedelta(minutes=i)
    order: dict[str, Any] = {
        "order_sn": f"261101-{482910000000000 + i}",
        "order_status": order_status,
        "refund_status": refund_status,
        "confirm_status": confirm_status,
        "group_status": 1 if confirm_status else 0,
        "after_sales_status": 10 if refund_status == 4 else 0,
        "created_time": cst(created),
        "confirm_time": cst(created + timedelta(minutes=2)) if confirm_status else "",
        "pay_time": cst(created + timedelta(seconds=40)) if paid else "",
        "updated_at": cst(updated),
        "pay_amount": float(pay_amount),
        "goods_amount": float(pay_amount),
        "discount_amount": 0.0,
        "postage": 0.0,
        "trade_type": 0,
        "is_lucky_flag": 1,
        "receiver_phone": "",
        "item_list": [
            {
                "goods_id": 380000000 + i % 3,
                "sku_id": 1200000000 + i % 3,
                "outer_id": f"PDD-{i % 3}",
                "outer_goods_id": "PDD",
                "goods_name": "赣南脐橙 5斤",
                "goods_price": float(pay_amount),
                "goods_spec": "5斤装",
                "goods_count": 1,
            }
        ],
    }
    if address is not None:
        order["open_address_id"] = f"{address}{i % 7}"
    return order


def _sign(params: dict[str, Any]) -> str:
    body = "".join(
        f"{k}{params[k]}" for k in sorted(params) if k != "sign" and params[k] not in (None, "")
    )
    return hashlib.md5(f"{CLIENT_SECRET}{body}{CLIENT_SECRET}".encode()).hexdigest().upper()


def _error(code: int, msg: str, sub_code: str = "", sub_msg: str = "") -> dict[str, Any]:
    return {
        "error_response": {
            "error_code": code,
            "error_msg": msg,
            "sub_code": sub_code,
            "sub_msg": sub_msg,
            "request_id": "17620000000000001",
        }
    }


class FakePdd(_Server):
    def __init__(self, token: str = TOKEN) -> None:
        super().__init__()
        # headers and body go out in two writes: without TCP_NODELAY each answer waits for
        # the client's delayed ACK (~40 ms), which a first sync of hundreds of windows feels
        self.httpd.RequestHandlerClass.disable_nagle_algorithm = True  # type: ignore[attr-defined]
        self.token = token
        self.orders: dict[str, dict[str, Any]] = {}
        #: the parameters of every list request answered, in order
        self.asked: list[dict[str, str]] = []
        #: request numbers (1-based) answered with this error code (a retry code)
        self.limited_on: dict[int, int] = {}
        self.before_page: Callable[[dict[str, str]], None] | None = None
        #: window refusals answered
        self.refused: list[dict[str, str]] = []

    def put(self, order: dict[str, Any]) -> None:
        with self.lock:
            self.orders[order["order_sn"]] = order

    def answer(
        self, h: BaseHTTPRequestHandler, method: str, body: bytes
    ) -> tuple[int, Any, dict[str, str]]:
        if method != "POST" or h.path != "/api/router":
            return 404, _error(10001, "api not found"), {}
        q = json.loads(body)
        if q.get("client_id") != CLIENT_ID:
            return 200, _error(10001, "client_id不存在"), {}
        if q.get("sign") != _sign(q):
            return 200, _error(20004, "签名校验失败", "sign error"), {}
        if q.get("access_token") != self.token:
            return 200, _error(10019, "access_token已过期"), {}
        if self.requests in self.limited_on:
            code = self.limited_on[self.requests]
            text = {52101: "当前接口被限流,请稍后重试", 70031: "调用过于频繁,请调整调用频率"}
            return 200, _error(code, text.get(code, "服务暂时不可用"), str(code)), {}
        assert q["type"] == "pdd.order.number.list.increment.get", q
        assert q["data_type"] == "JSON" and q["timestamp"].isdigit(), q
        start, end = int(q["start_updated_at"]), int(q["end_updated_at"])
        if end - start > 1800 or end < start:
            self.refused.append(q)
            return (
                200,
                _error(10000, "参数错误", "10000", "开始时间结束时间间距不超过 30 分钟"),
                {},
            )
        size, page = int(q.get("page_size") or 100), int(q.get("page") or 1)
        if size > 100 or page < 1:
            return 200, _error(10000, "参数错误", "10000", "page_size 最大 100"), {}
        self.asked.append(q)
        if self.before_page is not None:
            self.before_page(q)
        fmt = "%Y-%m-%d %H:%M:%S"
        with self.lock:
            rows = list(self.orders.values())

        def at(o: dict[str, Any]) -> int:
            return int(
                datetime.strptime(o["updated_at"], fmt).replace(tzinfo=cst_zone()).timestamp()
            )

        rows = [o for o in rows if start <= at(o) <= end]
        rows.sort(key=lambda o: (at(o), o["order_sn"]), reverse=True)  # newest first
        chunk = rows[(page - 1) * size : page * size]
        resp: dict[str, Any] = {"has_next": page * size < len(rows), "order_sn_list": chunk}
        if q.get("use_has_next") != "true":
            resp["total_count"] = len(rows)
        return 200, {"order_sn_increment_get_response": resp}, {}


def cst_zone() -> Any:
    from .youzan_fake import CST

    return CST
