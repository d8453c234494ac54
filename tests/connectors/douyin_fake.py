"""A faithful local fake of the Douyin 抖店 open platform's order APIs, and its push messages.

Written from the platform's published request and answer shapes: ``POST /order/searchList``
and ``POST /order/orderDetail`` with the system parameters in the query (``app_key``,
``method`` — it must name the path —, ``access_token``, ``timestamp`` ``yyyy-MM-dd
HH:mm:ss``, ``v=2``, ``sign_method`` md5 or hmac-sha256, ``sign``) and the body
``param_json``; the sign is checked with this module's own computation (app_secret +
``app_key…method…param_json…timestamp…v…`` + app_secret; MD5, or HMAC-SHA256 under the
secret). Answers ``{"code": 10000, "msg": "success", "sub_code", "sub_msg", "log_id",
"data"}``; a bad sign, app key or token, ``size`` over 100 or a negative ``page`` are error
codes; flow control (code 90000) on demand. ``order.searchList`` filters by
``update_time_start``/``update_time_end`` (Unix seconds, both ends included), sorts by
``order_by``/``order_asc`` and pages from 0; ``shop_order_list`` entries carry amounts in
fen, times in Unix seconds, ``doudian_open_id`` and ``sku_order_list`` with
``after_sale_info``.

Shop tokens (店铺授权): each access token the fake issued expires (``expires_in`` seconds,
seven days, by the fake's ``now``); a call with an expired one answers ``code`` 40003
``isv.access-token-expired``, with one it does not know 40003 ``isv.access-token-no-existed``
(the platform's base error table). ``POST /token/refresh`` (``method=token.refresh``, signed,
no access token) with ``{"grant_type": "refresh_token", "refresh_token"}`` follows the
platform's notes: more than an hour before the expiry the same pair comes back; within the
last hour a new pair, the old one valid an hour more; after the expiry a new pair and the
old one void. An unknown or used-up refresh token: 50001
``dop.token-generate-failed:token-invalid``; one past its 14 days: 50001
``dop.token-generate-failed:token-expired``. ``POST /token/create`` (``method=token.create``,
signed, no access token): ``{"code", "grant_type": "authorization_code"}`` with a code the
merchant's authorisation gave (:meth:`FakeDouyin.authorise`; used once, lapses after
``CODE_LIFE``; else 50002, the platform's business-failure code — the ``sub_code`` is the
fake's own, no published one was found), or ``{"code": "", "grant_type":
"authorization_self", "shop_id"}`` for the shop's own app — a new pair, the only valid one.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlparse

from .fakes import T0, _Server

APP_KEY = "7006573825104856584"
APP_SECRET = "3c1c8f2e-6b4a-4a1e-9d0f-5e7b2a9c4d11"
TOKEN = "a1b2c3d4-douyin-shop-token"
REFRESH = "rft-douyin-shop-refresh-0"
#: an access token's life and a refresh token's, as the platform gives them
TOKEN_LIFE = 7 * 86_400
REFRESH_LIFE = 14 * 86_400
#: an authorisation code's life (the platform: minutes, used once); the fake shop's id
CODE_LIFE = 600
SHOP_ID = 77001


def unix(d: datetime) -> int:
    return int(d.timestamp())


def douyin_order(
    i: int,
    updated: datetime,
    *,
    status: int = 2,
    pay_amount: int = 8800,
    refunded_skus: int = 0,
    open_id: str | None = "1@#dyOpenIdAbCdEf",
    paid: bool = True,
) -> dict[str, Any]:
    """A ``shop_order`` as order.searchList answers it (two sub-orders of half each)."""
    created = T0 + timedelta(minutes=i)
    half = pay_amount // 2
    order: dict[str, Any] = {
        "order_id": str(4900000000000000000 + i),
        "order_level": 2,
        "order_status": status,
        "order_status_desc": {1: "待支付", 2: "备货中", 3: "已发货", 4: "已取消", 5: "已完成"}.get(
            status, ""
        ),
        "main_status": status,
        "create_time": unix(created),
        "update_time": unix(updated),
        "pay_time": unix(created + timedelta(seconds=30)) if paid else 0,
        "finish_time": 0,
        "order_amount": pay_amount,
        "pay_amount": pay_amount,
        "post_amount": 0,
        "pay_type": 1,
        "b_type": 2,
        "encrypt_post_tel": "$$U/qaYiUFjC/1SRShyJN85xYJ$1$$",
        "encrypt_post_receiver": "##5e4wPfKQCWbYKOTVtch6H##",
        "sku_order_list": [
            {
                "order_id": str(4900000000000000000 + i * 10 + k + 1),
                "parent_order_id": str(4900000000000000000 + i),
                "product_id": str(3500000000 + k),
                "product_name": "云南小粒咖啡豆 500g",
                "sku_id": 1700000000 + k,
                "out_sku_id": 0,
                "code": f"DY-{k}",
                "item_num": 1,
                "origin_amount": half,
                "pay_amount": half,
                "after_sale_info": {
                    "after_sale_status": 12 if k < refunded_skus else 0,
                    "after_sale_type": 1 if k < refunded_skus else 0,
                    "refund_status": 3 if k < refunded_skus else 0,
                },
            }
            for k in range(2)
        ],
    }
    if open_id is not None:
        order["doudian_open_id"] = f"{open_id}{i % 10}"
    return order


def push(
    messages: list[tuple[str, dict[str, Any]]],
    *,
    app_key: str = APP_KEY,
    secret: str = APP_SECRET,
    method: str | None = "md5",
    sign: bool = True,
) -> tuple[bytes, dict[str, str]]:
    """A push's raw body and headers, as the platform sends it: an array of ``{tag, msg_id,
    data}`` with ``data`` a JSON text."""
    body = json.dumps(
        [
            {"tag": tag, "msg_id": f"{tag}{k}{data.get('p_id', '')}", "data": json.dumps(data)}
            for k, (tag, data) in enumerate(messages)
        ],
        separators=(",", ":"),
    ).encode()
    headers = {"Content-Type": "application/json", "app-id": app_key}
    if method is not None:
        headers["sign-method"] = method
    if sign:
        text = app_key.encode() + body + secret.encode()
        headers["event-sign"] = (
            hmac.new(secret.encode(), text, hashlib.sha256).hexdigest()
            if method == "hmac-sha256"
            else hashlib.md5(text).hexdigest()
        )
    return body, headers


def order_message(order: dict[str, Any], tag: str = "101") -> tuple[str, dict[str, Any]]:
    """A trade message naming ``order`` (``p_id``, ``s_ids``, its status and time)."""
    return tag, {
        "p_id": int(order["order_id"]),
        "s_ids": [int(s["order_id"]) for s in order["sku_order_list"]],
        "shop_id": 77001,
        "order_status": order["order_status"],
        "order_type": 0,
        "biz": 2,
        "update_time": order["update_time"],
    }


def _sign(q: dict[str, str], body: str) -> str:
    text = (
        f"{APP_SECRET}app_key{q.get('app_key', '')}method{q.get('method', '')}param_json{body}"
        f"timestamp{q.get('timestamp', '')}v{q.get('v', '')}{APP_SECRET}"
    ).encode()
    if q.get("sign_method") == "hmac-sha256":
        return hmac.new(APP_SECRET.encode(), text, hashlib.sha256).hexdigest()
    return hashlib.md5(text).hexdigest()


def _answer(code: int, msg: str, data: Any = None, sub_code: str = "", sub_msg: str = "") -> Any:
    out: dict[str, Any] = {
        "code": code,
        "msg": msg,
        "sub_code": sub_code,
        "sub_msg": sub_msg,
        "log_id": "20261101000000010203040506",
    }
    if data is not None:
        out["data"] = data
    return out


class FakeDouyin(_Server):
    def __init__(
        self,
        token: str = TOKEN,
        *,
        refresh_token: str = REFRESH,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        super().__init__()
        # headers and body go out in two writes: without TCP_NODELAY each answer waits for
        # the client's delayed ACK (~40 ms), which a first sync of hundreds of windows feels
        self.httpd.RequestHandlerClass.disable_nagle_algorithm = True  # type: ignore[attr-defined]
        self.now: Callable[[], datetime] = now or (lambda: datetime.now(UTC))
        #: access token → its expiry (Unix seconds); refresh token → (its access token, expiry)
        self.tokens: dict[str, int] = {}
        self.refresh_tokens: dict[str, tuple[str, int]] = {}
        self.issued = 0
        self.refreshes: list[dict[str, Any]] = []
        #: authorisation codes not yet used → when they lapse; every token.create's params
        self.codes: dict[str, int] = {}
        self.creates: list[dict[str, Any]] = []
        #: the sub_code of every call refused for its access token
        self.refused: list[str] = []
        self.grant(token, refresh_token)
        self.orders: dict[str, dict[str, Any]] = {}
        #: the param_json of every list request answered, in order
        self.asked: list[dict[str, Any]] = []
        #: the query of every request that passed the sign check
        self.queries: list[dict[str, str]] = []
        #: request numbers (1-based) answered by flow control (code 90000)
        self.limited_on: set[int] = set()
        self.before_page: Callable[[dict[str, Any]], None] | None = None

    @property
    def token(self) -> str:
        """The newest access token issued."""
        return self._token

    @token.setter
    def token(self, value: str) -> None:
        """Issue ``value`` as the shop's only access token (the others void)."""
        with self.lock:
            self.tokens = {}
        self.grant(value, None)

    def grant(self, token: str, refresh_token: str | None, life: int = TOKEN_LIFE) -> None:
        """Authorise the shop: ``token`` valid ``life`` seconds from now, renewed by
        ``refresh_token``."""
        at = unix(self.now())
        with self.lock:
            self._token = token
            self.tokens[token] = at + life
            if refresh_token is not None:
                self.refresh_tokens[refresh_token] = (token, at + REFRESH_LIFE)

    def expire(self) -> None:
        """Every access token issued so far is past its expiry."""
        at = unix(self.now())
        with self.lock:
            self.tokens = {k: min(v, at - 1) for k, v in self.tokens.items()}

    def _refresh(self, params: dict[str, Any]) -> tuple[int, Any, dict[str, str]]:
        at = unix(self.now())
        with self.lock:
            self.refreshes.append(params)
            if params.get("grant_type") != "refresh_token":
                return 200, _answer(40001, "非法的参数", sub_code="isv.parameter-invalid"), {}
            held = self.refresh_tokens.get(str(params.get("refresh_token")))
            if held is None:
                sub = "dop.token-generate-failed:token-invalid"
                return 200, _answer(50001, "生成token失败,token不存在", sub_code=sub), {}
            old, refresh_expiry = held
            if at > refresh_expiry:
                sub = "dop.token-generate-failed:token-expired"
                return 200, _answer(50001, "生成token失败,token已过期", sub_code=sub), {}
            expiry = self.tokens.get(old, at - 1)
            old_refresh = str(params["refresh_token"])
            if expiry - at > 3600:  # more than an hour left: the same pair
                new, new_refresh, new_expiry = old, old_refresh, expiry
            else:
                self.issued += 1
                new = f"dy-token-{self.issued}-{at}"
                new_refresh = f"rft-douyin-shop-refresh-{self.issued}"
                new_expiry = at + TOKEN_LIFE
                del self.refresh_tokens[old_refresh]
                if expiry >= at:  # within the last hour: the old pair an hour more
                    self.tokens[old] = at + 3600
                    self.refresh_tokens[old_refresh] = (old, at + 3600)
                else:  # expired: the old pair void
                    self.tokens.pop(old, None)
                self.tokens[new] = new_expiry
                self.refresh_tokens[new_refresh] = (new, at + REFRESH_LIFE)
                self._token = new
            data = {
                "access_token": new,
                "expires_in": new_expiry - at,
                "refresh_token": new_refresh,
                "scope": "SCOPE",
                "shop_id": 77001,
                "shop_name": "云南咖啡旗舰店",
                "authority_id": "",
                "auth_subject_type": "MiniApp",
            }
        return 200, _answer(10000, "success", data), {}

    def authorise(self, code: str) -> None:
        """A merchant authorised the (tool) app: ``code`` gets the shop's first pair, once,
        within ``CODE_LIFE`` seconds."""
        with self.lock:
            self.codes[code] = unix(self.now()) + CODE_LIFE

    def _create(self, params: dict[str, Any]) -> tuple[int, Any, dict[str, str]]:
        """``token.create``: an authorisation code (once, before it lapses) or, for a
        self-use app, the shop's id — a new pair, the shop's only valid one."""
        at = unix(self.now())
        with self.lock:
            self.creates.append(params)
            grant = params.get("grant_type")
            if grant == "authorization_code":
                lapse = self.codes.pop(str(params.get("code")), None)
                if lapse is None or at > lapse:
                    sub = "isv.auth-code-invalid"
                    return 200, _answer(50002, "授权码无效或已过期", sub_code=sub), {}
            elif grant == "authorization_self":
                if params.get("code") != "" or str(params.get("shop_id")) != str(SHOP_ID):
                    sub = "isv.parameter-invalid:shop_id"
                    return 200, _answer(40001, "非法的参数", sub_code=sub), {}
            else:
                return 200, _answer(40001, "非法的参数", sub_code="isv.parameter-invalid"), {}
            self.issued += 1
            new = f"dy-token-{self.issued}-{at}"
            new_refresh = f"rft-douyin-shop-refresh-{self.issued}"
            self.tokens = {new: at + TOKEN_LIFE}
            self.refresh_tokens = {new_refresh: (new, at + REFRESH_LIFE)}
            self._token = new
            data = {
                "access_token": new, "expires_in": TOKEN_LIFE, "refresh_token": new_refresh,
                "scope": "SCOPE", "shop_id": SHOP_ID, "shop_name": "云南咖啡旗舰店",
                "authority_id": "", "auth_subject_type": "MiniApp",
            }  # fmt: skip
        return 200, _answer(10000, "success", data), {}

    def put(self, order: dict[str, Any]) -> None:
        with self.lock:
            self.orders[order["order_id"]] = order

    def answer(
        self, h: BaseHTTPRequestHandler, method: str, body: bytes
    ) -> tuple[int, Any, dict[str, str]]:
        url = urlparse(h.path)
        q = {k: v[0] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        paths = ("/order/searchList", "/order/orderDetail", "/token/refresh", "/token/create")
        if method != "POST" or url.path not in paths:
            return 404, _answer(40004, "api not found"), {}
        text = body.decode()
        if q.get("app_key") != APP_KEY:
            return 200, _answer(40003, "app_key无效", sub_code="isv.app-key-invalid"), {}
        if "/" + q.get("method", "").replace(".", "/") != url.path or q.get("v") != "2":
            return 200, _answer(40001, "非法的参数", sub_code="isv.parameter-invalid"), {}
        if q.get("sign_method") not in ("md5", "hmac-sha256") or q.get("sign") != _sign(q, text):
            return 200, _answer(40002, "签名错误", sub_code="isv.sign-invalid"), {}
        datetime.strptime(q["timestamp"], "%Y-%m-%d %H:%M:%S")
        if url.path == "/token/refresh":
            return self._refresh(json.loads(text))
        if url.path == "/token/create":
            return self._create(json.loads(text))
        with self.lock:
            expiry = self.tokens.get(q.get("access_token", ""))
        if expiry is None:
            sub, msg = (
                "isv.access-token-no-existed",
                "access_token不存在,请使用最新的access_token访问",
            )
            self.refused.append(sub)
            return 200, _answer(40003, "非法的参数", sub_code=sub, sub_msg=msg), {}
        if unix(self.now()) > expiry:
            sub, msg = "isv.access-token-expired", "access_token已过期"
            self.refused.append(sub)
            return 200, _answer(40003, "非法的参数", sub_code=sub, sub_msg=msg), {}
        self.queries.append(q)
        if self.requests in self.limited_on:
            return 200, _answer(90000, "流控", sub_code="dop.flow-control"), {}
        params = json.loads(text)
        if url.path == "/order/orderDetail":
            with self.lock:
                found = self.orders.get(str(params.get("shop_order_id")))
            if found is None:
                return 200, _answer(50002, "业务处理失败", sub_code="isv.order-not-exist"), {}
            return 200, _answer(10000, "success", {"shop_order_detail": found}), {}
        size, page = int(params.get("size", 10)), int(params.get("page", 0))
        if size > 100 or size < 1 or page < 0:
            return 200, _answer(40001, "非法的参数", sub_code="isv.parameter-invalid:size"), {}
        self.asked.append(params)
        if self.before_page is not None:
            self.before_page(params)
        start, end = params["update_time_start"], params["update_time_end"]
        with self.lock:
            rows = [o for o in self.orders.values() if start <= o["update_time"] <= end]
        rows.sort(key=lambda o: (o["update_time"], o["order_id"]), reverse=not params["order_asc"])
        chunk = rows[page * size : (page + 1) * size]
        data = {"shop_order_list": chunk, "page": page, "size": size, "total": len(rows)}
        return 200, _answer(10000, "success", data), {}
