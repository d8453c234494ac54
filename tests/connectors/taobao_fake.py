"""A faithful local fake of Taobao TOP's ``taobao.trades.sold.increment.get``.

Written from TOP's published API description: ``GET /router/rest`` with the system
parameters (``method``, ``app_key``, ``session``, ``timestamp``, ``format``, ``v``,
``sign_method`` md5 or hmac, ``sign``) checked — a wrong ``sign`` is ``error_response``
code 25 "Invalid signature", a wrong session code 27 —; ``start_modified``/``end_modified``
(China Standard Time, both ends included) at most one day apart (else code 41, sub_code
``isv.invalid-parameter``); ``page_size`` ≤ 100; ``use_has_next``; the answer
``{"trades_sold_increment_get_response": {"total_results", "has_next", "trades": {"trade":
[…]}}}`` listed newest modification first; "App Call Limited" (code 7, with "This ban will
last for N more seconds") on demand. Trades carry the fields of :data:`taobao.FIELDS`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlparse

from huitouke.connectors import taobao

from .fakes import T0, _Server
from .youzan_fake import cst

APP_KEY = "12345678"
APP_SECRET = "helloworld"
SESSION = "6100e23657fb0b2d0c78568e55a3031134be9a3a5d4b3a365753805"


def taobao_trade(
    i: int,
    modified: datetime,
    *,
    status: str = "TRADE_FINISHED",
    payment: str = "88.00",
    refunded_orders: int = 0,
    open_uid: str | None = "AAHm5d-EAAeGwJedwSHpg8bT",
) -> dict[str, Any]:
    """A trade with the fields :data:`taobao.FIELDS` asks for (two sub-orders)."""
    created = T0 + timedelta(minutes=i)
    half = f"{float(payment) / 2:.2f}"
    trade: dict[str, Any] = {
        "tid": 3000000000000000 + i,
        "tid_str": str(3000000000000000 + i),
        "status": status,
        "created": cst(created),
        "modified": cst(modified),
        "pay_time": cst(created + timedelta(seconds=20)),
        "payment": payment,
        "total_fee": payment,
        "buyer_nick": "t**1",
        "orders": {
            "order": [
                {
                    "oid": 3000000000000000 + i * 10 + k,
                    "title": "龙井 250g",
                    "num": 1,
                    "price": half,
                    "payment": half,
                    "outer_sku_id": f"LJ-{k}",
                    "outer_iid": "LJ",
                    "num_iid": 600000 + k,
                    "sku_id": 0,
                    "refund_status": "SUCCESS" if k < refunded_orders else "NO_REFUND",
                }
                for k in range(2)
            ]
        },
    }
    if open_uid is not None:
        trade["buyer_open_uid"] = f"{open_uid}{i % 10}"
    return trade


def _error(code: int, msg: str, sub_code: str = "", sub_msg: str = "") -> dict[str, Any]:
    return {
        "error_response": {
            "code": code,
            "msg": msg,
            "sub_code": sub_code,
            "sub_msg": sub_msg,
            "request_id": "fake",
        }
    }


class FakeTaobao(_Server):
    def __init__(self) -> None:
        super().__init__()
        self.trades: dict[str, dict[str, Any]] = {}
        self.asked: list[dict[str, str]] = []
        #: request numbers (1-based) answered "App Call Limited" with this ban in seconds
        self.limited_on: dict[int, int] = {}
        self.before_page: Callable[[dict[str, str]], None] | None = None

    def put(self, trade: dict[str, Any]) -> None:
        with self.lock:
            self.trades[trade["tid_str"]] = trade

    def answer(
        self, h: BaseHTTPRequestHandler, method: str, body: bytes
    ) -> tuple[int, Any, dict[str, str]]:
        url = urlparse(h.path)
        if method != "GET" or url.path != "/router/rest":
            return 404, {"error": "not found"}, {}
        q = {k: v[0] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        given = q.get("sign", "")
        if q.get("app_key") != APP_KEY:
            return 200, _error(29, "Invalid app Key", "isv.appkey-not-exists"), {}
        if taobao.sign(q, APP_SECRET, q.get("sign_method", "md5")) != given:
            return 200, _error(25, "Invalid signature"), {}
        if q.get("session") != SESSION:
            return 200, _error(27, "Invalid session", "invalid-sessionkey"), {}
        if self.requests in self.limited_on:
            ban = self.limited_on[self.requests]
            return (
                200,
                _error(
                    7,
                    "App Call Limited",
                    "accesscontrol.limited-by-app-access-count",
                    f"This ban will last for {ban} more seconds",
                ),
                {},
            )
        assert q["method"] == "taobao.trades.sold.increment.get" and q.get("fields"), q
        datetime.strptime(q["timestamp"], "%Y-%m-%d %H:%M:%S")
        start = datetime.strptime(q["start_modified"], "%Y-%m-%d %H:%M:%S")
        end = datetime.strptime(q["end_modified"], "%Y-%m-%d %H:%M:%S")
        if end - start > timedelta(days=1) or end < start:
            return (
                200,
                _error(
                    41,
                    "Invalid arguments:start_modified and end_modified",
                    "isv.invalid-parameter",
                    "时间跨度不能超过一天",
                ),
                {},
            )
        size = int(q.get("page_size") or 40)
        if size > 100:
            return 200, _error(41, "Invalid arguments:page_size", "isv.invalid-parameter"), {}
        self.asked.append(q)
        if self.before_page is not None:
            self.before_page(q)
        with self.lock:
            rows = list(self.trades.values())
        rows = [
            t for t in rows if start <= datetime.strptime(t["modified"], "%Y-%m-%d %H:%M:%S") <= end
        ]
        rows.sort(key=lambda t: (t["modified"], t["tid"]), reverse=True)  # newest first
        page = int(q.get("page_no") or 1)
        chunk = rows[(page - 1) * size : page * size]
        resp: dict[str, Any] = {
            "has_next": page * size < len(rows),
            "trades": {"trade": chunk},
            "request_id": f"fake{self.requests}",
        }
        if q.get("use_has_next") != "true":
            resp["total_results"] = len(rows)
        return 200, {"trades_sold_increment_get_response": resp}, {}
