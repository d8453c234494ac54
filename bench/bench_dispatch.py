"""Dispatch throughput: outbox → signed webhooks to a loopback sink, batched vs naive.

    python bench/bench_dispatch.py [--quick] [--messages N] [--postgres URL]

The sink runs in its own process (an asyncio HTTP/1.1 server with keep-alive) and does what a
real receiver does: it checks each request's HMAC signature and de-duplicates by
``Idempotency-Key``. Two dispatchers send the same number of messages, one after the other,
on the same database:

- **huitouke**: the real :class:`Dispatcher` — batched claims (``UPDATE … RETURNING``), the
  contact rules at send time, a pooled keep-alive ``httpx`` client, 32 concurrent sends,
  a commit of the answers every 32 acknowledgements or 20 ms (never a whole batch at once);
- **naive baseline**: one message at a time — claim one row, check the rules, open a new
  HTTP connection, send, mark it sent — the way a first outbox worker is often written
  (``batch_size=1, concurrency=1``, a fresh client per message).

Both run the same contact rules and write the same rows; the ratio is batched / naive.
SQLite always; PostgreSQL too when ``--postgres`` or ``HUITOUKE_TEST_POSTGRES_URL`` is set.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import multiprocessing as mp
import os
import sys
import tempfile
import time
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

SECRET = "bench-webhook-secret"
CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY", "8"))


# -- the sink (separate process) ---------------------------------------------------------------
def _sink_main(port_queue: Any) -> None:
    seen: set[str] = set()
    stats = {"requests": 0, "accepted": 0, "bad_signature": 0}

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        k, v = line.split(":", 1)
                        headers[k.strip().lower()] = v.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                if method == "GET" and path == "/stats":
                    out = json.dumps(stats).encode()
                    status = "200 OK"
                else:
                    stats["requests"] += 1
                    sig = dict(
                        p.split("=", 1)
                        for p in headers.get("x-huitouke-signature", "t=0,v1=").split(",")
                    )
                    mac = hmac.new(
                        SECRET.encode(), sig["t"].encode() + b"." + body, hashlib.sha256
                    ).hexdigest()
                    if not hmac.compare_digest(mac, sig.get("v1", "")):
                        stats["bad_signature"] += 1
                        status, out = "401 Unauthorized", b"{}"
                    else:
                        key = headers.get("idempotency-key", "")
                        if key not in seen:
                            seen.add(key)
                            stats["accepted"] += 1
                        status, out = "200 OK", b'{"ok":true}'
                writer.write(
                    f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {len(out)}\r\n\r\n".encode()
                    + out
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionResetError, BrokenPipeError):
            pass
        finally:
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=1024)
        port_queue.put(server.sockets[0].getsockname()[1])
        async with server:
            await server.serve_forever()

    asyncio.run(main())


def _sink_stats(port: int) -> dict[str, int]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/stats", timeout=10) as resp:
        return dict(json.loads(resp.read()))


# -- data --------------------------------------------------------------------------------------
def _prepare(url: str, n: int, journey: str) -> Any:
    from sqlalchemy import insert

    from huitouke.messaging.outbox import OutboxMessage, enqueue
    from huitouke.store.db import Store
    from huitouke.store.tables import customers

    store = Store(url)
    store.migrate()
    now = datetime.now(UTC)
    with store.begin() as conn:
        rows = [
            {
                "customer_id": f"{journey}-{i}",
                "name": None,
                "phone": None,
                "email": None,
                "birthday": None,
                "tags": [],
                "attributes": {},
                "consent": {"webhook": True},
                "timezone": "UTC",
                "created_at": now,
                "updated_at": now,
            }
            for i in range(n)
        ]
        for i in range(0, n, 2000):
            conn.execute(insert(customers), rows[i : i + 2000])
        enqueue(
            conn,
            [
                OutboxMessage(
                    journey_id=journey,
                    customer_id=f"{journey}-{i}",
                    step_id="remind",
                    occurrence="1",
                    channel="webhook",
                    kind="marketing",
                    rendered={"text": f"亲,您常买的咖啡豆快喝完了吧?{i}"},
                    planned_at=now - timedelta(minutes=1),
                )
                for i in range(n)
            ],
            now=now - timedelta(minutes=1),
        )
    return store


class _FreshClientWebhook:
    """The naive baseline's channel: a new ``httpx`` client and connection for every message
    (what ``httpx.post(...)`` in a loop does), the same signed request as the real channel."""

    def __init__(self, url: str) -> None:
        from huitouke.messaging.channels.webhook import WebhookChannel

        self.document = WebhookChannel(url, SECRET)
        self.url = url
        self.name = "webhook"
        self.delivery = "idempotent"

    def send(self, message: Any) -> Any:
        import httpx

        from huitouke.messaging.channels.base import SendResult
        from huitouke.messaging.channels.webhook import SIGNATURE_HEADER, sign_webhook

        body = self.document.body(message)  # the real channel's JSON document
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": message.message_id,
            SIGNATURE_HEADER: sign_webhook(SECRET, body, int(time.time())),
        }
        with httpx.Client(timeout=10.0) as client:
            resp = client.post(self.url, content=body, headers=headers)
        resp.raise_for_status()
        return SendResult(
            provider="webhook",
            provider_message_id=None,
            detail={"http_status": resp.status_code},
            sent_at=datetime.now(UTC),
        )

    def close(self) -> None:
        self.document.close()


def _policy() -> Any:
    from datetime import time as dtime

    from huitouke.messaging.rules import ContactPolicy, parse_caps

    # Quiet hours off for the benchmark (start == end); caps and consent still checked.
    return ContactPolicy(
        caps=parse_caps("marketing:*:3/7d,marketing:webhook:1/3d"),
        quiet_start=dtime(0),
        quiet_end=dtime(0),
        default_zone="UTC",
    )


def _worker_proc(url: str, sink_url: str, out: Any, ready: Any, go: Any) -> None:
    from huitouke.messaging.channels.webhook import WebhookChannel
    from huitouke.messaging.dispatcher import Dispatcher
    from huitouke.store.db import Store

    store = Store(url)
    ch = WebhookChannel(sink_url, SECRET, max_connections=CONCURRENCY)
    d = Dispatcher(
        store, {"webhook": ch}, policy=_policy(), batch_size=1000, concurrency=CONCURRENCY
    )
    ready.release()
    go.wait()  # the clock starts when every worker is imported and connected
    c0 = time.process_time()
    stats = d.drain()
    d.close()
    store.dispose()
    out.put((stats.sent, time.process_time() - c0))


def _run_workers(url: str, n: int, sink_url: str, workers: int) -> tuple[float, float]:
    """``workers`` dispatcher processes draining one outbox together."""
    journey = f"multi-{uuid.uuid4().hex[:6]}"
    _prepare(url, n, journey).dispose()
    out: Any = mp.Queue()
    ready: Any = mp.Semaphore(0)
    go: Any = mp.Event()
    procs = [
        mp.Process(target=_worker_proc, args=(url, sink_url, out, ready, go))
        for _ in range(workers)
    ]
    for p in procs:
        p.start()
    for _ in procs:
        ready.acquire(timeout=120)
    t0 = time.perf_counter()
    go.set()
    results = [out.get(timeout=1800) for _ in procs]
    elapsed = time.perf_counter() - t0
    for p in procs:
        p.join()
    sent = sum(r[0] for r in results)
    if sent != n:
        raise SystemExit(f"{journey}: {workers} workers sent {sent} of {n}")
    return elapsed, sum(r[1] for r in results)


def _run(url: str, n: int, sink_url: str, *, naive: bool) -> tuple[float, float]:
    from huitouke.messaging.channels.webhook import WebhookChannel
    from huitouke.messaging.dispatcher import Dispatcher

    journey = f"{'naive' if naive else 'batched'}-{uuid.uuid4().hex[:6]}"
    store = _prepare(url, n, journey)
    policy = _policy()
    if naive:
        d = Dispatcher(
            store,
            {"webhook": _FreshClientWebhook(sink_url)},
            policy=policy,
            batch_size=1,
            concurrency=1,
        )
    else:
        ch = WebhookChannel(sink_url, SECRET, max_connections=CONCURRENCY)
        d = Dispatcher(
            store, {"webhook": ch}, policy=policy, batch_size=1000, concurrency=CONCURRENCY
        )
    t0, c0 = time.perf_counter(), time.process_time()
    stats = d.drain()
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    d.close()
    store.dispose()
    if stats.sent != n:
        raise SystemExit(f"{journey}: sent {stats.sent} of {n}: {stats.to_dict()}")
    return elapsed, cpu


def bench_backend(
    name: str, url: str, n: int, n_naive: int, sink_url: str, port: int, workers: int = 1
) -> dict[str, Any]:
    before = _sink_stats(port)["accepted"]
    load = os.getloadavg()[0]
    if workers > 1:
        t_batch, cpu_batch = _run_workers(url, n, sink_url, workers)
    else:
        t_batch, cpu_batch = _run(url, n, sink_url, naive=False)
    t_naive, cpu_naive = _run(url, n_naive, sink_url, naive=True)
    after = _sink_stats(port)
    assert after["accepted"] - before == n + n_naive, "sink did not receive every message once"
    assert after["bad_signature"] == 0
    rate_b, rate_n = n / t_batch, n_naive / t_naive
    return {
        "backend": name if workers == 1 else f"{name}, {workers} workers",
        "messages": n,
        "batched_seconds": round(t_batch, 2),
        "batched_msgs_per_s": round(rate_b),
        "naive_messages": n_naive,
        "naive_msgs_per_s": round(rate_n),
        "ratio": round(rate_b / rate_n, 1),
        "batched_cpu_ms_per_msg": round(cpu_batch / n * 1000, 3),
        "naive_cpu_ms_per_msg": round(cpu_naive / n_naive * 1000, 3),
        "load_average": round(load, 1),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--quick", action="store_true", help="2,000 messages (naive: 200)")
    ap.add_argument(
        "--messages", type=int, default=None, help="messages for the batched run (default 20,000)"
    )
    ap.add_argument("--workers", type=int, default=1, help="dispatcher processes (default 1)")
    ap.add_argument(
        "--postgres",
        default=os.environ.get("HUITOUKE_TEST_POSTGRES_URL"),
        help="PostgreSQL admin URL",
    )
    args = ap.parse_args(argv)
    n = args.messages or (2_000 if args.quick else 20_000)
    n_naive = max(100, n // 50) if not args.quick else 200

    q: Any = mp.Queue()
    sink = mp.Process(target=_sink_main, args=(q,), daemon=True)
    sink.start()
    port = q.get(timeout=30)
    sink_url = f"http://127.0.0.1:{port}/hook"
    results = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            results.append(
                bench_backend(
                    "sqlite",
                    f"sqlite:///{Path(tmp) / 'bench.db'}",
                    n,
                    n_naive,
                    sink_url,
                    port,
                    args.workers,
                )
            )
        if args.postgres:
            import psycopg
            from sqlalchemy.engine import make_url

            base = make_url(args.postgres)
            dbname = f"msgbench_{uuid.uuid4().hex[:8]}"
            conninfo = f"host={base.host or '127.0.0.1'} port={base.port or 5432} user={base.username or 'postgres'} dbname={base.database or 'postgres'}"
            with psycopg.connect(conninfo, autocommit=True) as c:
                c.execute(f'CREATE DATABASE "{dbname}"')
            try:
                url = base.set(drivername="postgresql+psycopg", database=dbname).render_as_string(
                    hide_password=False
                )
                results.append(
                    bench_backend("postgresql", url, n, n_naive, sink_url, port, args.workers)
                )
            finally:
                with psycopg.connect(conninfo, autocommit=True) as c:
                    c.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
    finally:
        sink.terminate()
    print(
        "| backend | messages | huitouke dispatcher | naive one-by-one | ratio | CPU ms/msg (huitouke / naive) | load avg |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in results:
        print(
            f"| {r['backend']} | {r['messages']:,} | {r['batched_msgs_per_s']:,} msg/s ({r['batched_seconds']} s) "
            f"| {r['naive_msgs_per_s']:,} msg/s ({r['naive_messages']:,} msgs) | {r['ratio']}× "
            f"| {r['batched_cpu_ms_per_msg']} / {r['naive_cpu_ms_per_msg']} | {r['load_average']} |"
        )
    print(json.dumps(results), file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
