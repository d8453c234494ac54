"""A faithful local fake of JD JOS's ``jingdong.pop.order.search``.

Written from JOS's published API description: ``GET /routerjson`` with the system
parameters (``method``, ``app_key``, ``access_token``, ``timestamp``, ``v``,
``360buy_param_json``, ``sign``) checked — a wrong ``sign`` is ``error_response`` code
``12`` (Invalid Signature); "App Call Limited" is code ``2``; a wrong access token answers
code ``19`` (the fake's choice: the code was not found in a JD publication) —; the business
parameters in ``360buy_param_json``: ``start_date``/``end_date`` (China Standard Time, both
ends included, at most one month — 30 days here — apart, else ``apiResult.success`` false),
``order_state`` (required), ``page``, ``page_size`` (≤ 100), ``sortType`` (``1``: newest
first), ``dateType`` (``0``: by modification time); the answer
``{"jingdong_pop_order_search_responce": {"code": "0", "searchorderinfo_result":
{"apiResult", "orderTotal", "orderInfoList"}}}``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlparse

from huitouke.connectors import jd

from .fakes import T0, _Server
from .youzan_fake import cst

APP_KEY = "8E2A3C4D5F6A7B8C9D0E1F2A3B4C5D6E"
APP_SECRET = "a1b2c3d4e5f60718293a4b5c6d7e8f90"
ACCESS_TOKEN = "b7c1f0e2d3a4b5c6d7e8f90a1b2c3d4eyzmj"
_FMT = "%Y-%m-%d %H:%M:%S"


def jd_order(
    i: int,
    modified: datetime,
    *,
    state: str = "WAIT_GOODS_RECEIVE_CONFIRM",
    payment: str = "199.00",
    paid: bool = True,
    open_id: str | None = "4d8ba0f2c9e1",
) -> dict[str, Any]:
    """An ``orderInfoList`` entry with the fields :data:`jd.OPTIONAL_FIELDS` asks for."""
    created = T0 + timedelta(minutes=i)
    order: dict[str, Any] = {
        "orderId": str(280000000000 + i),
        "orderState": state,
        "orderStartTime": cst(created),
        "modified": cst(modified),
        "paymentConfirmTime": cst(created + timedelta(seconds=15)) if paid else "",
        "orderPayment": payment,
        "orderTotalPrice": payment,
        "freightPrice": "0.00",
        "payType": "4-在线支付",
        "pin": "jd_****1234",
        "xid_buyer": f"o*AAQ8dxb8WzY{i % 10}",
        "itemInfoList": [
            {
                "skuId": str(100012345678 + k),
                "outerSkuId": f"JD-{k}" if k == 0 else "",
                "productNo": "",
                "skuName": "保湿面霜 50ml" if k == 0 else "洁面乳",
                "itemTotal": "1",
                "jdPrice": "99.50",
                "wareId": "10001",
            }
            for k in range(2)
        ],
    }
    if open_id is not None:
        order["open_id_buyer"] = f"{open_id}{i % 10}"
    return order


def _error(code: str, en: str, zh: str) -> dict[str, Any]:
    return {"error_response": {"code": code, "en_desc": en, "zh_desc": zh}}


class FakeJd(_Server):
    def __init__(self) -> None:
        super().__init__()
        self.orders: dict[str, dict[str, Any]] = {}
        #: the business parameters asked, in order
        self.asked: list[dict[str, Any]] = []
        #: request numbers (1-based) answered App Call Limited
        self.limited_on: set[int] = set()
        self.before_page: Callable[[dict[str, Any]], None] | None = None

    def put(self, order: dict[str, Any]) -> None:
        with self.lock:
            self.orders[order["orderId"]] = order

    def answer(
        self, h: BaseHTTPRequestHandler, method: str, body: bytes
    ) -> tuple[int, Any, dict[str, str]]:
        url = urlparse(h.path)
        if url.path != "/routerjson":
            return 404, {"error": "not found"}, {}
        raw = url.query if method == "GET" else body.decode()
        q = {k: v[0] for k, v in parse_qs(raw, keep_blank_values=True).items()}
        if q.get("app_key") != APP_KEY:
            return 200, _error("18", "Invalid App Key", "无效的app_key"), {}
        if jd.sign(q, APP_SECRET) != q.get("sign"):
            return 200, _error("12", "Invalid Signature", "无效签名"), {}
        if q.get("access_token") != ACCESS_TOKEN:
            return 200, _error("19", "Invalid access_token", "无效的access_token"), {}
        if self.requests in self.limited_on:
            return 200, _error("2", "App Call Limited", "限制时间内调用失败次数"), {}
        assert q["method"] == "jingdong.pop.order.search" and q["v"] == "2.0", q
        datetime.strptime(q["timestamp"], _FMT)
        p = json.loads(q["360buy_param_json"])
        start = datetime.strptime(p["start_date"], _FMT)
        end = datetime.strptime(p["end_date"], _FMT)
        size = int(p.get("page_size") or 20)
        if end < start or end - start > timedelta(days=30) or size > 100 or not p["order_state"]:
            result = {
                "apiResult": {
                    "success": False,
                    "code": "100",
                    "chineseErrCode": "开始时间和结束时间不得相差超过1个月",
                    "englishErrCode": "time span over one month",
                },
                "orderTotal": 0,
                "orderInfoList": [],
            }
            return (
                200,
                {
                    "jingdong_pop_order_search_responce": {
                        "code": "0",
                        "searchorderinfo_result": result,
                    }
                },
                {},
            )
        self.asked.append(p)
        if self.before_page is not None:
            self.before_page(p)
        states = set(p["order_state"].split(","))
        by_created = str(p.get("dateType", "0")) == "1"
        with self.lock:
            rows = [
                o
                for o in self.orders.values()
                if o["orderState"] in states
                and start
                <= datetime.strptime(o["orderStartTime" if by_created else "modified"], _FMT)
                <= end
            ]
        rows.sort(key=lambda o: (o["modified"], o["orderId"]), reverse=p.get("sortType") == "1")
        page = int(p.get("page") or 1)
        chunk = rows[(page - 1) * size : page * size]
        result = {
            "apiResult": {
                "success": True,
                "code": "0",
                "chineseErrCode": "成功",
                "englishErrCode": "success",
            },
            "orderTotal": len(rows),
            "orderInfoList": chunk,
        }
        return (
            200,
            {"jingdong_pop_order_search_responce": {"code": "0", "searchorderinfo_result": result}},
            {},
        )
