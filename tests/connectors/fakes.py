"""Faithful local fakes of the shop platforms: real HTTP servers on loopback, written from
the platforms' published API documentation.

- :class:`FakeShopify`: ``POST /admin/api/<version>/graphql.json`` with the
  ``X-Shopify-Access-Token`` header; ``orders(first, after, query: "updated_at:>='…'",
  sortKey: UPDATED_AT)`` answered as a connection (``nodes``, ``pageInfo { hasNextPage
  endCursor }``, opaque cursors), ``order(id:)``; the leaky-bucket cost limit of the Admin
  GraphQL API — every answer carries ``extensions.cost`` (``requestedQueryCost``,
  ``actualQueryCost``, ``throttleStatus { maximumAvailable currentlyAvailable restoreRate
  }``) and a query costing more than is available is answered ``THROTTLED`` (HTTP 200, an
  ``errors`` entry with ``extensions.code``); HTTP 429 with ``Retry-After`` on demand.
- :class:`FakeWoo`: ``GET /wp-json/wc/v3/orders`` with basic auth, ``modified_after``
  (strict), ``orderby=modified``, ``order=asc``, ``per_page`` (≤ 100), ``page``, and the
  ``X-WP-Total``/``X-WP-TotalPages``/``Link`` headers; 429 with ``Retry-After`` on demand.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def iso_z(d: datetime) -> str:
    return d.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class _Server:
    """A ThreadingHTTPServer on a free loopback port, run in a thread."""

    def __init__(self) -> None:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                fake._handle(self, "GET")

            def do_POST(self) -> None:
                fake._handle(self, "POST")

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.lock = threading.Lock()
        #: (monotonic time, method, path, status) of every request
        self.log: list[tuple[float, str, str, int]] = []
        #: request numbers (1-based) answered 429 with this Retry-After
        self.rate_limit_on: dict[int, str] = {}
        #: request numbers (1-based) answered 500 (a platform outage mid-sync)
        self.fail_on: set[int] = set()
        self.requests = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self) -> Any:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def _send(
        self,
        h: BaseHTTPRequestHandler,
        status: int,
        body: Any,
        headers: dict[str, str] | None = None,
    ) -> None:
        raw = isinstance(body, bytes)
        data = body if raw else json.dumps(body).encode()
        h.send_response(status)
        h.send_header("Content-Type", "application/jsonl" if raw else "application/json")
        h.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(data)

    def _handle(self, h: BaseHTTPRequestHandler, method: str) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length else b""
        with self.lock:
            self.requests += 1
            n = self.requests
        if n in self.rate_limit_on:
            self.log.append((time.monotonic(), method, h.path, 429))
            self._send(
                h, 429, {"errors": "Too Many Requests"}, {"Retry-After": self.rate_limit_on[n]}
            )
            return
        if n in self.fail_on:
            self.log.append((time.monotonic(), method, h.path, 500))
            self._send(h, 500, {"errors": "Internal error"})
            return
        status, out, headers = self.answer(h, method, body)
        self.log.append((time.monotonic(), method, h.path, status))
        self._send(h, status, out, headers)

    def answer(
        self, h: BaseHTTPRequestHandler, method: str, body: bytes
    ) -> tuple[int, Any, dict[str, str]]:
        raise NotImplementedError


# -- Shopify ---------------------------------------------------------------------------------
def shopify_order(
    i: int,
    updated_at: datetime,
    *,
    amount: str = "100.00",
    refunded: str = "0.00",
    currency: str = "USD",
    cancelled: bool = False,
    financial: str = "PAID",
    customer: int | None = 7000,
    email: str | None = "buyer@example.com",
    phone: str | None = None,
    name: tuple[str, str] | None = ("Ana", "Lima"),
) -> dict[str, Any]:
    """An Admin GraphQL ``Order`` node with the fields the connector asks for."""
    created = T0 + timedelta(minutes=i)
    return {
        "id": f"gid://shopify/Order/{1000 + i}",
        "createdAt": iso_z(created),
        "processedAt": created.astimezone(timezone_minus5()).isoformat(),
        "updatedAt": iso_z(updated_at),
        "cancelledAt": iso_z(updated_at) if cancelled else None,
        "displayFinancialStatus": financial,
        "email": email,
        "phone": phone,
        "totalPriceSet": {"shopMoney": {"amount": amount, "currencyCode": currency}},
        "totalRefundedSet": {"shopMoney": {"amount": refunded, "currencyCode": currency}},
        "customer": None
        if customer is None
        else {
            "id": f"gid://shopify/Customer/{customer + i % 50}",
            "email": email,
            "phone": phone,
            "firstName": name[0] if name else None,
            "lastName": name[1] if name else None,
        },
        "lineItems": {
            "nodes": [
                {
                    "id": f"gid://shopify/LineItem/{i}1",
                    "sku": f"SKU-{i % 7}",
                    "title": "Tea 茶",
                    "quantity": 2,
                    "variant": {"id": f"gid://shopify/ProductVariant/{i % 7}"},
                    "originalUnitPriceSet": {
                        "shopMoney": {"amount": "50.00", "currencyCode": currency}
                    },
                }
            ]
        },
    }


def timezone_minus5() -> Any:
    from datetime import timezone

    return timezone(timedelta(hours=-5))


def _cursor(node: dict[str, Any]) -> str:
    return base64.b64encode(f"{node['updatedAt']}|{node['id']}".encode()).decode()


class FakeShopify(_Server):
    """The Admin GraphQL API of one shop. ``orders`` holds the shop's ``Order`` nodes."""

    def __init__(
        self,
        token: str = "shpat_test",
        *,
        maximum: float = 2000.0,
        restore_rate: float = 100.0,
    ) -> None:
        super().__init__()
        self.token = token
        self.orders: dict[str, dict[str, Any]] = {}
        self.maximum = maximum
        self.restore_rate = restore_rate
        self.available = maximum
        self.last_fill = time.monotonic()
        self.throttled = 0
        self.queries: list[dict[str, Any]] = []

    def put(self, node: dict[str, Any]) -> None:
        with self.lock:
            self.orders[node["id"]] = node

    def _fill(self) -> None:
        now = time.monotonic()
        self.available = min(
            self.maximum, self.available + (now - self.last_fill) * self.restore_rate
        )
        self.last_fill = now

    def drain(self) -> None:
        """Spend the whole bucket (another app of the shop used it)."""
        with self.lock:
            self._fill()
            self.available = 0.0

    def _cost(self, query: str, variables: dict[str, Any]) -> int:
        # Shopify: a connection costs 2 + its `first` (the nested lineItems(first: 100)
        # would cost more; kept small so tests run fast)
        return 2 + int(variables.get("first") or 1) if "orders(" in query else 1

    def answer(
        self, h: BaseHTTPRequestHandler, method: str, body: bytes
    ) -> tuple[int, Any, dict[str, str]]:
        if method == "GET" and h.path.startswith("/bulk/"):
            return 200, self._bulk_file(), {}
        if method != "POST" or not re.fullmatch(r"/admin/api/\d{4}-\d{2}/graphql\.json", h.path):
            return 404, {"errors": "Not Found"}, {}
        if h.headers.get("X-Shopify-Access-Token") != self.token:
            return 401, {"errors": "[API] Invalid API key or access token"}, {}
        req = json.loads(body)
        query, variables = req["query"], req.get("variables") or {}
        cost = self._cost(query, variables)
        with self.lock:
            self._fill()
            if cost > self.available:
                self.throttled += 1
                status = self._status()
                return (
                    200,
                    {
                        "errors": [
                            {
                                "message": "Throttled",
                                "extensions": {
                                    "code": "THROTTLED",
                                    "documentation": "https://shopify.dev/api/usage/rate-limits",
                                },
                            }
                        ],
                        "extensions": {
                            "cost": {
                                "requestedQueryCost": cost,
                                "actualQueryCost": None,
                                "throttleStatus": status,
                            }
                        },
                    },
                    {},
                )
            self.available -= cost
            self.queries.append(variables)
            if "bulkOperationRunQuery" in query:
                data = self._bulk_run(variables["query"])
            elif "currentBulkOperation" in query:
                data = self._bulk_poll()
            elif "orders(" in query:
                data = self._orders(variables)
            else:
                data = self._order(variables)
            return (
                200,
                {
                    "data": data,
                    "extensions": {
                        "cost": {
                            "requestedQueryCost": cost,
                            "actualQueryCost": cost,
                            "throttleStatus": self._status(),
                        }
                    },
                },
                {},
            )

    def _status(self) -> dict[str, float]:
        return {
            "maximumAvailable": self.maximum,
            "currentlyAvailable": round(self.available, 3),
            "restoreRate": self.restore_rate,
        }

    def _orders(self, v: dict[str, Any]) -> dict[str, Any]:
        nodes = sorted(
            self.orders.values(), key=lambda n: (n["updatedAt"], int(n["id"].rsplit("/", 1)[1]))
        )
        q = v.get("query")
        if q:
            m = re.fullmatch(r"updated_at:>='([^']+)'", q)
            assert m, q
            since = datetime.fromisoformat(m.group(1))
            nodes = [n for n in nodes if datetime.fromisoformat(n["updatedAt"]) >= since]
        after = v.get("after")
        if after:
            at, gid = base64.b64decode(after).decode().split("|")
            key = (at, int(gid.rsplit("/", 1)[1]))
            nodes = [n for n in nodes if (n["updatedAt"], int(n["id"].rsplit("/", 1)[1])) > key]
        first = min(int(v["first"]), 250)
        page = nodes[:first]
        return {
            "orders": {
                "nodes": page,
                "pageInfo": {
                    "hasNextPage": len(nodes) > first,
                    "endCursor": _cursor(page[-1]) if page else None,
                },
            }
        }

    def _order(self, v: dict[str, Any]) -> dict[str, Any]:
        return {"order": self.orders.get(v["id"])}

    # bulk operations: bulkOperationRunQuery, currentBulkOperation, the JSONL result file
    bulk: dict[str, Any] | None = None
    #: polls answered RUNNING before COMPLETED
    bulk_polls = 2

    def _bulk_run(self, query: str) -> dict[str, Any]:
        # a bulk query pages nothing itself: no ``first:`` argument
        assert "edges { node {" in query and not re.search(r"\bfirst\s*:", query), query
        m = re.search(r"updated_at:>='([^']+)'", query)
        since = datetime.fromisoformat(m.group(1)) if m else None
        self.bulk = {"id": "gid://shopify/BulkOperation/1", "since": since, "polls": 0}
        return {
            "bulkOperationRunQuery": {
                "bulkOperation": {"id": self.bulk["id"], "status": "CREATED"},
                "userErrors": [],
            }
        }

    def _bulk_poll(self) -> dict[str, Any]:
        op = self.bulk
        if op is None:
            return {"currentBulkOperation": None}
        op["polls"] += 1
        done = op["polls"] > self.bulk_polls
        return {
            "currentBulkOperation": {
                "id": op["id"],
                "status": "COMPLETED" if done else "RUNNING",
                "errorCode": None,
                "objectCount": str(len(self.orders)),
                "url": f"{self.url}/bulk/1.jsonl" if done else None,
                "partialDataUrl": None,
            }
        }

    def _bulk_file(self) -> bytes:
        since = (self.bulk or {}).get("since")
        out = []
        for n in self.orders.values():
            if since is not None and datetime.fromisoformat(n["updatedAt"]) < since:
                continue
            order = {k: v for k, v in n.items() if k != "lineItems"}
            out.append(json.dumps(order))
            for item in n["lineItems"]["nodes"]:
                out.append(json.dumps({**item, "__parentId": n["id"]}))
        return ("\n".join(out) + "\n").encode()


# -- WooCommerce ------------------------------------------------------------------------------
def woo_order(
    i: int,
    modified: datetime,
    *,
    status: str = "processing",
    total: str = "80.00",
    refunds: tuple[str, ...] = (),
    customer_id: int = 0,
    email: str = "guest@example.com",
    phone: str = "+49 30 1234567",
    name: tuple[str, str] = ("Jonas", "Weber"),
) -> dict[str, Any]:
    """A WooCommerce REST v3 order (``*_gmt`` times without an offset, as WooCommerce writes
    them; ``price`` a JSON number)."""
    created = T0 + timedelta(minutes=i)
    return {
        "id": 500 + i,
        "status": status,
        "currency": "EUR",
        "date_created": created.strftime("%Y-%m-%dT%H:%M:%S"),
        "date_created_gmt": created.strftime("%Y-%m-%dT%H:%M:%S"),
        "date_modified_gmt": modified.strftime("%Y-%m-%dT%H:%M:%S"),
        "date_paid_gmt": None,
        "total": total,
        "customer_id": customer_id,
        "billing": {
            "first_name": name[0],
            "last_name": name[1],
            "email": email,
            "phone": phone,
        },
        "line_items": [
            {
                "id": i * 10,
                "name": "Mug",
                "product_id": 33,
                "variation_id": 0,
                "quantity": 1,
                "sku": "",
                "price": float(total),
            }
        ],
        "refunds": [
            {"id": i * 100 + k, "reason": "", "total": f"-{r}"} for k, r in enumerate(refunds)
        ],
    }


class FakeWoo(_Server):
    def __init__(self, key: str = "ck_test", secret: str = "cs_test") -> None:
        super().__init__()
        self.auth = "Basic " + base64.b64encode(f"{key}:{secret}".encode()).decode()
        self.orders: dict[int, dict[str, Any]] = {}
        #: called before each page is served (a test modifies orders mid-sync)
        self.before_page: Callable[[int], None] | None = None

    def put(self, order: dict[str, Any]) -> None:
        with self.lock:
            self.orders[order["id"]] = order

    def answer(
        self, h: BaseHTTPRequestHandler, method: str, body: bytes
    ) -> tuple[int, Any, dict[str, str]]:
        url = urlparse(h.path)
        if method != "GET" or url.path != "/wp-json/wc/v3/orders":
            return 404, {"code": "rest_no_route"}, {}
        if h.headers.get("Authorization") != self.auth:
            return 401, {"code": "woocommerce_rest_cannot_view"}, {}
        q = {k: v[0] for k, v in parse_qs(url.query).items()}
        page, per_page = int(q.get("page", 1)), min(int(q.get("per_page", 10)), 100)
        if self.before_page is not None:
            self.before_page(page)
        with self.lock:
            rows = list(self.orders.values())
        if "modified_after" in q:
            after = datetime.fromisoformat(q["modified_after"].replace("Z", "+00:00"))
            rows = [
                o
                for o in rows
                if datetime.fromisoformat(o["date_modified_gmt"]).replace(tzinfo=UTC) > after
            ]
        assert q.get("orderby") == "modified" and q.get("order") == "asc", q
        rows.sort(key=lambda o: (o["date_modified_gmt"], o["id"]))
        total = len(rows)
        pages = max(1, -(-total // per_page))
        chunk = rows[(page - 1) * per_page : page * per_page]
        links = []
        if page < pages:
            links.append(f'<{self.url}{url.path}?page={page + 1}>; rel="next"')
        if page > 1:
            links.append(f'<{self.url}{url.path}?page={page - 1}>; rel="prev"')
        headers = {"X-WP-Total": str(total), "X-WP-TotalPages": str(pages)}
        if links:
            headers["Link"] = ", ".join(links)
        return 200, chunk, headers
