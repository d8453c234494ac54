"""Shop connectors: the webhook path under 50 senders, and a backfill pull, on PostgreSQL.

1. **Webhooks** — a real ``huitouke serve`` (uvicorn, ``--workers``) on loopback over
   PostgreSQL; 50 senders in a process of their own (pre-built signed requests, raw
   HTTP/1.1 keep-alive), each posting one Shopify ``orders/create`` delivery at a time
   (signed ``X-Shopify-Hmac-Sha256``, one order each, as the platform sends them) to
   ``POST /v1/connectors/{name}/webhook``: verified, stored in the inbox (committed) and
   answered, then applied in the background through ``record_order_events``; the phase
   also reports when the last delivery was applied and how many were still waiting for
   it at the last answer. CPU per event: the server's processes, the PostgreSQL backends
   of the bench's database, the load generator's process, and the whole machine (others'
   work included). Baseline side by side, same server,
   same run: ``POST /v1/orders`` one event at a time (API key, the same orders' fields).
   Phases alternate baseline / webhooks so the machine's noise hits both.
   Targets (issue 12): >= 1,000 events/s, p99 <= 100 ms. ``--apply service,scheduler``
   measures both places deliveries are applied (``HUITOUKE_WEBHOOK_APPLY``) one after the
   other in the same run, each on a fresh database: in the answering worker, or by the
   scheduler's inbox follower in ``serve``'s parent process (every scheduled job off).
   ``--rate R`` paces the webhook phases at R events/s (an open schedule: latency from each
   event's due instant), to see whether the apply keeps up with a steady stream.
2. **Backfill pull** — ``connectors sync`` of a fresh connector against a fake Shopify
   Admin GraphQL endpoint (a separate process serving pre-built pages of 250 orders with
   ``pageInfo`` cursors and ``extensions.cost``), into PostgreSQL, with progress; ``--bulk``
   also through a bulk operation. Baseline: the same orders recorded in bulk units of work.
   Target: >= 5,000 orders/s end to end (issue 12: with 1,000,000 orders).

    HUITOUKE_BENCH_POSTGRES_URL=postgresql+psycopg://postgres@127.0.0.1:5432/postgres \\
        python bench/bench_connectors.py [--requests 3000] [--orders 1000000] [--workers 2]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import json
import multiprocessing
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _bench_common import Connection, Result, Server, encode, pg_database, run_async, settle
from bench_service import cpu_seconds, machine_busy_seconds, tree_cpu_seconds
from huitouke.app import connectors as uc
from huitouke.core.secretbox import new_key
from huitouke.service.apikeys import create_api_key
from huitouke.settings import Settings
from huitouke.store.db import Store

SECRET = "bench-webhook-secret"
T0 = datetime(2026, 1, 1, tzinfo=UTC)


# -- webhooks -------------------------------------------------------------------------------------
def shopify_delivery(i: int) -> bytes:
    at = (T0 + timedelta(seconds=i)).isoformat()
    return json.dumps(
        {
            "id": 10_000_000 + i,
            "created_at": at,
            "processed_at": at,
            "updated_at": at,
            "cancelled_at": None,
            "currency": "CNY",
            "financial_status": "paid",
            "total_price": "128.00",
            "total_price_set": {"shop_money": {"amount": "128.00", "currency_code": "CNY"}},
            "email": f"c{i % 5000}@example.com",
            "customer": {"id": 900_000 + i % 5000, "email": f"c{i % 5000}@example.com"},
            "line_items": [
                {"id": i, "sku": f"SKU-{i % 40}", "title": "Tea", "quantity": 2, "price": "64.00"}
            ],
            "refunds": [],
        }
    ).encode()


def webhook_request(host: str, name: str, body: bytes) -> bytes:
    sig = base64.b64encode(hmac.new(SECRET.encode(), body, hashlib.sha256).digest()).decode()
    head = (
        f"POST /v1/connectors/{name}/webhook HTTP/1.1\r\nHost: {host}\r\n"
        f"Content-Type: application/json\r\nX-Shopify-Topic: orders/create\r\n"
        f"X-Shopify-Hmac-Sha256: {sig}\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def order_request(host: str, key: str, i: int) -> bytes:
    body = {
        "order_id": f"o{i}",
        "customer_id": str(900_000 + i % 5000),
        "ordered_at": (T0 + timedelta(seconds=i)).isoformat(),
        "amount": "128.00",
        "currency": "CNY",
        "status": "paid",
        "source": "api",
        "lines": [{"sku": f"SKU-{i % 40}", "quantity": 2, "unit_price": "64.00"}],
    }
    return encode(host, key, "POST", "/v1/orders", body)


async def drive_raw(
    host: str, port: int, raws: list[bytes], clients: int, name: str, rate: float = 0.0
) -> Result:
    """Closed loop: ``clients`` senders, each one request in flight on its own connection.
    ``rate`` > 0: paced — request *i* is not sent before ``start + i / rate`` (at most
    ``rate`` a second in all, still one in flight per sender), and its latency counts from
    that scheduled instant, so a request kept waiting for a free sender counts its wait."""
    queue: asyncio.Queue[tuple[int, bytes]] = asyncio.Queue()
    for i, r in enumerate(raws):
        queue.put_nowait((i, r))
    lat: list[float] = []
    statuses: dict[int, int] = {}
    errors = 0
    conns = [Connection(host, port) for _ in range(clients)]

    async def worker(conn: Connection) -> None:
        nonlocal errors
        while not queue.empty():
            i, raw = queue.get_nowait()
            t0 = time.perf_counter()
            if rate > 0:
                due = start + i / rate
                if due > t0:
                    await asyncio.sleep(due - t0)
                t0 = due
            try:
                status = await conn.request(raw)
            except (OSError, ValueError, asyncio.IncompleteReadError):
                conn.close()
                errors += 1
                continue
            statuses[status] = statuses.get(status, 0) + 1
            lat.append((time.perf_counter() - t0) * 1000)

    start = time.perf_counter()
    try:
        await asyncio.gather(*(worker(c) for c in conns))
    finally:
        for c in conns:
            c.close()
    return Result(name, lat, statuses, time.perf_counter() - start, errors)


def _sender(
    port: int, phase: str, start: int, n: int, clients: int, key: str, q: Any, rate: float = 0.0
) -> None:
    """The load generator's process: builds its signed requests first, then sends them
    with ``clients`` senders (one request in flight each, keep-alive) and reports the
    result and its own CPU time."""
    host = "127.0.0.1"
    if phase == "webhook":
        raws = [webhook_request(host, "shop", shopify_delivery(start + i)) for i in range(n)]
    else:
        raws = [order_request(host, key, start + i) for i in range(n)]
    cpu0 = time.process_time()
    res = run_async(drive_raw(host, port, raws, clients, phase, rate))
    q.put((res, time.process_time() - cpu0))


def send_from_process(
    port: int,
    phase: str,
    start: int,
    n: int,
    clients: int,
    key: str,
    *,
    on_start: Any = None,
    rate: float = 0.0,
) -> tuple[Result, float]:
    """Run :func:`_sender` in a process of its own (it does not share the interpreter
    with anything else); ``on_start`` is called once its requests are built."""
    ctx = multiprocessing.get_context("fork")
    q: Any = ctx.Queue()
    proc = ctx.Process(target=_sender, args=(port, phase, start, n, clients, key, q, rate))
    proc.start()
    try:
        res, cpu = q.get(timeout=1800)
    finally:
        proc.join(30)
    return res, cpu


def _pending(url_store: Store) -> int:
    from sqlalchemy import text

    with url_store.connect() as conn:
        return int(
            conn.execute(
                text("SELECT count(*) FROM connector_inbox WHERE status = 'pending'")
            ).scalar_one()
        )


def _backends(store: Store) -> list[int]:
    """The PostgreSQL backends serving the bench's database (the server's pools; one of
    them this watcher's)."""
    from sqlalchemy import text

    with store.connect() as conn:
        return [
            int(r[0])
            for r in conn.execute(
                text("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
            )
        ]


def _backends_cpu(pids: list[int]) -> dict[int, float]:
    """CPU seconds of each backend (Linux /proc: the database runs on this machine)."""
    got = {p: cpu_seconds(p) for p in pids}
    return {p: v for p, v in got.items() if v == v}  # a backend gone: NaN, left out


def _apply_env(mode: str) -> dict[str, str]:
    """``HUITOUKE_WEBHOOK_APPLY=mode``; for ``scheduler`` the scheduler on in ``serve``'s
    parent process with every job off (the inbox follower is not a job): only the follower
    runs beside the workers."""
    if mode == "service":
        return {"HUITOUKE_WEBHOOK_APPLY": "service"}
    from huitouke.app.scheduler.registry import Registry

    jobs = Registry.load(Settings()).jobs
    return {
        "HUITOUKE_WEBHOOK_APPLY": "scheduler",
        "HUITOUKE_SCHEDULER": "on",
        "HUITOUKE_SCHEDULER_SCHEDULES": "; ".join(f"{name}=off" for name in jobs),
    }


def bench_webhooks(
    url: str, args: argparse.Namespace, enc_key: str, mode: str = "service"
) -> list[dict[str, Any]]:
    store = Store(url)
    store.migrate()
    settings = Settings(database_url=url, encryption_keys=enc_key)
    with store.begin() as conn:
        api_key = create_api_key(conn, scope="operator", name="bench", now=datetime.now(UTC))[1]
    uc.add_connector(
        store,
        settings,
        uc.ConnectorIn(
            kind="shopify", name="shop", api_base_url="http://127.0.0.1:9",
            webhook_secret=SECRET, access_token="unused",
        ),
    )  # fmt: skip
    settle(store)
    store.dispose()
    rows = []
    n, warm = args.requests, 300
    watch = Store(url)
    env = {"HUITOUKE_ENCRYPTION_KEYS": enc_key, **_apply_env(mode)}
    with Server(url, args.workers, env=env) as srv:
        port = srv.port
        # warm-up, not measured
        send_from_process(port, "orders", -1 - warm, warm, args.clients, api_key)
        send_from_process(port, "webhook", -1 - warm, warm, args.clients, api_key)
        while _pending(watch):
            time.sleep(0.1)
        for rnd in range(args.rounds):
            base = rnd * n
            for phase, name in (("orders", "POST /v1/orders (baseline)"), ("webhook", "webhook")):
                assert srv.proc is not None
                cpu0, busy0 = tree_cpu_seconds(srv.proc.pid), machine_busy_seconds()
                pg0 = _backends_cpu(_backends(watch))
                t0 = time.perf_counter()
                rate = args.rate if phase == "webhook" else 0.0
                res, client_cpu = send_from_process(
                    port, phase, base, n, args.clients, api_key, rate=rate
                )
                res.name = name
                applied_s = time.perf_counter() - t0
                backlog = 0
                if phase == "webhook":  # until the background applier has applied them all
                    backlog = _pending(watch)  # stored, not yet applied, at the last answer
                    while _pending(watch):
                        time.sleep(0.05)
                    applied_s = time.perf_counter() - t0
                res.server_cpu_s = tree_cpu_seconds(srv.proc.pid) - cpu0
                res.machine_busy_s = machine_busy_seconds() - busy0
                pg1 = _backends_cpu(_backends(watch))
                pg_s = sum(v - pg0.get(p, 0.0) for p, v in pg1.items())
                row = {
                    "apply": mode,
                    "rate": rate or None,
                    "round": rnd + 1,
                    **res.row(),
                    "applied_per_s": round(n / applied_s, 1),
                    "backlog_at_last_answer": backlog,
                    "postgres_cpu_ms_per_request": round(pg_s * 1000 / n, 3),
                    "client_cpu_ms_per_request": round(client_cpu * 1000 / n, 3),
                    "load_average": os.getloadavg()[0],
                }
                rows.append(row)
                print(json.dumps(row), file=sys.stderr)
    watch.dispose()
    check = Store(url)
    with check.connect() as conn:
        from sqlalchemy import text

        got = conn.execute(
            text("SELECT source, count(*) FROM orders GROUP BY source ORDER BY 1")
        ).all()
        inbox = conn.execute(
            text("SELECT status, count(*) FROM connector_inbox GROUP BY status")
        ).all()
    check.dispose()
    print(f"orders by source: {got}; inbox: {inbox}", file=sys.stderr)
    return rows


# -- backfill -------------------------------------------------------------------------------------
#: ``--contacts``: every buyer has an e-mail and a phone on their orders (matching keys written)
_CONTACTS = False


def _contact(i: int) -> tuple[str | None, str | None]:
    """The buyer's e-mail and phone on order ``i`` (none without ``--contacts``)."""
    if not _CONTACTS:
        return None, None
    c = i % 20000
    return f"c{c}@example.com", f"+86 138 {c // 10000:04d} {c % 10000:04d}"


def _node(i: int) -> dict[str, Any]:
    at = (T0 + timedelta(seconds=i)).strftime("%Y-%m-%dT%H:%M:%SZ")
    email, phone = _contact(i)
    return {
        "id": f"gid://shopify/Order/{20_000_000 + i}",
        "createdAt": at, "processedAt": at, "updatedAt": at, "cancelledAt": None,
        "displayFinancialStatus": "PAID" if i % 10 else "PARTIALLY_REFUNDED",
        "email": None, "phone": None,
        "totalPriceSet": {"shopMoney": {"amount": "99.00", "currencyCode": "CNY"}},
        "totalRefundedSet": {"shopMoney": {"amount": "0.00" if i % 10 else "9.00", "currencyCode": "CNY"}},
        "customer": {"id": f"gid://shopify/Customer/{i % 20000}", "email": email, "phone": phone},
        "lineItems": {"nodes": [{"id": f"gid://shopify/LineItem/{i}", "sku": f"SKU-{i % 40}", "title": "Tea", "quantity": 1, "variant": None, "originalUnitPriceSet": {"shopMoney": {"amount": "99.00", "currencyCode": "CNY"}}}]},
    }  # fmt: skip


_ORDER_JSON = (
    '{"id": "gid://shopify/Order/%d", "createdAt": "%s", "processedAt": "%s", "updatedAt": "%s", '
    '"cancelledAt": null, "displayFinancialStatus": "%s", "email": null, "phone": null, '
    '"totalPriceSet": {"shopMoney": {"amount": "99.00", "currencyCode": "CNY"}}, '
    '"totalRefundedSet": {"shopMoney": {"amount": "%s", "currencyCode": "CNY"}}, '
    '"customer": {"id": "gid://shopify/Customer/%d", "email": %s, "phone": %s}%s}'
)
_LINE_JSON = (
    '{"id": "gid://shopify/LineItem/%d", "sku": "SKU-%d", "title": "Tea", "quantity": 1, '
    '"variant": null, "originalUnitPriceSet": {"shopMoney": {"amount": "99.00", '
    '"currencyCode": "CNY"}}%s}'
)


def _node_json(i: int, *, bulk: bool = False) -> str:
    """:func:`_node` as JSON text, written by formatting (a million orders in seconds);
    ``bulk``: the order's line and its line item's line of a bulk operation's file."""
    at = (T0 + timedelta(seconds=i)).strftime("%Y-%m-%dT%H:%M:%SZ")
    state, refunded = ("PAID", "0.00") if i % 10 else ("PARTIALLY_REFUNDED", "9.00")
    gid = 20_000_000 + i
    email, phone = (json.dumps(v) for v in _contact(i))
    head = (gid, at, at, at, state, refunded, i % 20000, email, phone)
    if bulk:
        parent = f', "__parentId": "gid://shopify/Order/{gid}"'
        order = _ORDER_JSON % (*head, "")
        return order + "\n" + _LINE_JSON % (i, i % 40, parent)
    items = ', "lineItems": {"nodes": [' + _LINE_JSON % (i, i % 40, "") + "]}"
    return _ORDER_JSON % (*head, items)


def _serve_fake(port_q: Any, orders: int, page: int, bulk: bool = False) -> None:
    """A fake Shopify: pre-built pages of ``orders(first, after)`` and, for the bulk
    operation (``bulk``), its JSONL file (an order per line, its line item on the next
    naming it)."""
    assert json.loads(_node_json(7)) == _node(7) and json.loads(_node_json(10)) == _node(10)
    pages: dict[int, bytes] = {}
    cost = {"requestedQueryCost": page + 2, "actualQueryCost": page + 2, "throttleStatus": {"maximumAvailable": 20000.0, "currentlyAvailable": 19000.0, "restoreRate": 1000.0}}  # fmt: skip
    tail = ', "extensions": {"cost": ' + json.dumps(cost) + "}}"
    for start in range(0, orders, page):
        end = min(orders, start + page)
        nodes = ", ".join(_node_json(i) for i in range(start, end))
        info = json.dumps({"hasNextPage": end < orders, "endCursor": str(end)})
        pages[start] = (
            '{"data": {"orders": {"nodes": [' + nodes + '], "pageInfo": ' + info + "}}" + tail
        ).encode()
    bulk_file = (
        "\n".join(_node_json(i, bulk=True) for i in range(orders)).encode() + b"\n" if bulk else b""
    )

    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a: Any) -> None:
            pass

        def _send(self, data: bytes) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._send(bulk_file)

        def do_POST(self) -> None:
            req = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if "bulkOperationRunQuery" in req["query"]:
                data = {"bulkOperationRunQuery": {"bulkOperation": {"id": "b1", "status": "CREATED"}, "userErrors": []}}  # fmt: skip
                self._send(json.dumps({"data": data, "extensions": {"cost": cost}}).encode())
                return
            if "currentBulkOperation" in req["query"]:
                url = f"http://127.0.0.1:{self.server.server_address[1]}/bulk.jsonl"
                data = {"currentBulkOperation": {"id": "b1", "status": "COMPLETED", "errorCode": None, "objectCount": str(2 * orders), "url": url, "partialDataUrl": None}}  # fmt: skip
                self._send(json.dumps({"data": data, "extensions": {"cost": cost}}).encode())
                return
            after = req["variables"].get("after")
            self._send(pages[int(after) if after else 0])

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
    port_q.put(httpd.server_address[1])
    httpd.serve_forever()


def bench_backfill(
    url: str, args: argparse.Namespace, enc_key: str, *, bulk: bool = False
) -> dict[str, Any]:
    q: Any = multiprocessing.Queue()
    proc = multiprocessing.Process(
        target=_serve_fake, args=(q, args.orders, 250, bulk), daemon=True
    )
    proc.start()
    try:
        port = q.get(timeout=600)
        store = Store(url)
        store.migrate()
        settings = Settings(database_url=url, encryption_keys=enc_key)
        uc.add_connector(
            store,
            settings,
            uc.ConnectorIn(
                kind="shopify", name="backfill", api_base_url=f"http://127.0.0.1:{port}",
                webhook_secret=SECRET, access_token="t", page_size=250,
            ),
        )  # fmt: skip
        last = [time.perf_counter()]
        start = time.perf_counter()

        def progress(r: uc.SyncResult) -> None:
            now = time.perf_counter()
            if now - last[0] >= 5:
                last[0] = now
                print(
                    f"  backfill: {r.pulled:,} orders, {r.pulled / (now - start):,.0f}/s",
                    file=sys.stderr,
                )

        result = uc.sync(store, settings, "backfill", progress=progress, bulk=bulk)
        seconds = time.perf_counter() - start
        from sqlalchemy import text

        with store.connect() as conn:
            stored = conn.execute(
                text("SELECT count(*) FROM orders WHERE source = 'backfill'")
            ).scalar_one()
        store.dispose()
        row = {
            "phase": "backfill pull" + (" (bulk operation)" if bulk else " (pages)"),
            "orders": result.pulled,
            "stored": stored,
            "pages": result.pages,
            "seconds": round(seconds, 1),
            "orders_per_s": round(result.pulled / seconds, 1),
        }
        print(json.dumps(row), file=sys.stderr)
        return row
    finally:
        proc.terminate()
        proc.join(10)


_BASELINE_UNIT = 100_000


def bench_bulk_baseline(url: str, args: argparse.Namespace) -> dict[str, Any]:
    """Baseline, same run: the same orders recorded in bulk units of work of 100,000 (the
    file import's path), no HTTP — the store's own rate on this machine right now."""
    from huitouke.app.orders import OrderTable, key_writer, order_event, record_order_events
    from huitouke.connectors import shopify
    from huitouke.store.orders_repo import lines_table, orders_table

    keys = key_writer(Settings(database_url=url)) if _CONTACTS else None
    store = Store(url)
    store.migrate()
    mapped_s = seconds = 0.0
    for lo in range(0, args.orders, _BASELINE_UNIT):  # units of 100,000 (memory)
        t = time.perf_counter()
        events = [
            order_event(shopify.from_graphql(_node(i)).event("backfill"), currency="CNY")
            for i in range(lo, min(args.orders, lo + _BASELINE_UNIT))
        ]
        table = OrderTable(
            orders=orders_table([e.order for e in events]),
            lines=lines_table([ln for e in events for ln in e.lines or ()]),
            contacts=[e.contacts for e in events if e.contacts is not None] if keys else None,
        )
        mapped_s += time.perf_counter() - t
        t = time.perf_counter()
        with store.begin() as conn:
            record_order_events(conn, table, loyalty=None, keys=keys)
        seconds += time.perf_counter() - t
    store.dispose()
    row = {
        "phase": "baseline: bulk units of 100,000 (file import path), no HTTP"
        + (", matching keys written" if keys else ""),
        "orders": args.orders,
        "mapping_seconds": round(mapped_s, 1),
        "record_seconds": round(seconds, 1),
        "orders_per_s": round(args.orders / seconds, 1),
    }
    print(json.dumps(row), file=sys.stderr)
    return row


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--requests", type=int, default=4000, help="events per phase")
    p.add_argument("--rounds", type=int, default=2, help="baseline/webhook pairs")
    p.add_argument("--clients", type=int, default=50)
    p.add_argument(
        "--rate",
        type=float,
        default=0.0,
        help="webhook phases paced at this many events/s in all (0: as fast as answered); "
        "latency counted from each event's scheduled instant",
    )
    p.add_argument("--workers", type=int, default=1, help="huitouke serve --workers")
    p.add_argument("--bulk", action="store_true", help="also the bulk-operation backfill")
    p.add_argument(
        "--apply",
        default="service",
        help="HUITOUKE_WEBHOOK_APPLY modes to measure one after the other, e.g. "
        "service,scheduler (scheduler: the follower in serve's parent process)",
    )
    p.add_argument("--orders", type=int, default=100_000, help="orders in the fake shop")
    p.add_argument(
        "--skip",
        choices=("webhooks", "backfill", "pages"),
        action="append",
        default=[],
        help="leave a part out (repeatable; pages: the GraphQL pages pull)",
    )
    p.add_argument(
        "--contacts",
        action="store_true",
        help="backfill: every buyer has an e-mail and a phone (matching keys written)",
    )
    args = p.parse_args(argv)
    global _CONTACTS
    _CONTACTS = args.contacts
    admin = os.environ.get("HUITOUKE_BENCH_POSTGRES_URL") or os.environ.get(
        "HUITOUKE_TEST_POSTGRES_URL"
    )
    if not admin:
        print("set HUITOUKE_BENCH_POSTGRES_URL", file=sys.stderr)
        return 2
    enc_key = new_key()
    out: dict[str, Any] = {}
    if "webhooks" not in args.skip:
        out["webhooks"] = []
        for mode in args.apply.split(","):
            url, drop = pg_database(admin, prefix="conn_bench")
            try:
                out["webhooks"] += bench_webhooks(url, args, enc_key, mode.strip())
            finally:
                drop()
    if "backfill" not in args.skip:
        if "pages" not in args.skip:
            url, drop = pg_database(admin, prefix="conn_bench")
            try:
                out["backfill"] = bench_backfill(url, args, enc_key)
            finally:
                drop()
        if args.bulk:
            url, drop = pg_database(admin, prefix="conn_bench")
            try:
                out["backfill_bulk"] = bench_backfill(url, args, enc_key, bulk=True)
            finally:
                drop()
        url, drop = pg_database(admin, prefix="conn_bench")
        try:
            out["backfill_baseline"] = bench_bulk_baseline(url, args)
        finally:
            drop()
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
