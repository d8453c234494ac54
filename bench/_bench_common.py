"""What the benchmarks share: a fresh PostgreSQL database, settling a freshly seeded store
before timing, a real `huitouke serve` process on a free loopback port, and a lean HTTP
load generator (closed or open loop) for it."""

from __future__ import annotations

import asyncio
import json
import math
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from huitouke.store.db import Store


def pg_database(
    admin: str, *, prefix: str = "huitouke_bench", synchronous_commit: str = "on"
) -> tuple[str, Callable[[], None]]:
    """Create an empty database next to ``admin``'s; returns its URL and a function that
    drops it. ``synchronous_commit="off"`` (a diagnostic, not a setting to run a ledger
    with: a crash may lose the last acknowledged commits) shows latency without the wait
    for the disk to flush each commit's WAL."""
    import psycopg
    from sqlalchemy.engine import make_url

    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    base = make_url(admin)
    conninfo = (
        f"host={base.host or '127.0.0.1'} port={base.port or 5432} "
        f"user={base.username or 'postgres'} dbname={base.database or 'postgres'}"
    )
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
        if synchronous_commit != "on":
            conn.execute(f'ALTER DATABASE "{name}" SET synchronous_commit = off')

    def drop() -> None:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    url = base.set(drivername="postgresql+psycopg", database=name).render_as_string(
        hide_password=False
    )
    return url, drop


def settle(store: Store) -> None:
    """Let a freshly seeded store reach a steady state before timing: on PostgreSQL VACUUM
    ANALYZE and a CHECKPOINT, so that autovacuum and the checkpointer working through the
    fresh rows do not compete with the timed runs on the machine's two cores."""
    if store.dialect != "postgresql":
        return
    from sqlalchemy import text

    with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))
        conn.execute(text("CHECKPOINT"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    """``huitouke serve`` on ``url`` with ``workers`` processes, up once ``/health``
    answers; stopped with SIGINT (killed if it does not stop within 30 s)."""

    url: str
    workers: int = 1
    port: int = field(default_factory=free_port)
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    #: how long the server may take to answer /health (longer on a loaded machine)
    start_seconds: float = 90.0

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Server:
        # the service alone is measured: its scheduler thread (HUITOUKE_SCHEDULER) stays off
        env = {
            **os.environ,
            "HUITOUKE_SCHEDULER": "off",
            **self.env,
            "HUITOUKE_DATABASE_URL": self.url,
        }
        self.log = tempfile.NamedTemporaryFile(
            prefix="huitouke_bench_", suffix=".log", delete=False
        )
        self.proc = subprocess.Popen(
            [
                sys.executable, "-m", "huitouke", "serve", "--host", "127.0.0.1",
                "--port", str(self.port), "--workers", str(self.workers),
                "--no-access-log", "--log-level", "warning",
            ],
            env=env, stdout=self.log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + self.start_seconds
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                if httpx.get(f"{self.base}/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.2)
        self.__exit__()
        raise RuntimeError(f"server did not start; log: {self.log.name}")

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()


# -- load generator -------------------------------------------------------------------------------
@dataclass
class Result:
    name: str
    latencies_ms: list[float]
    statuses: dict[int, int]
    seconds: float
    errors: int
    server_cpu_s: float = float("nan")
    machine_busy_s: float = float("nan")

    def pct(self, q: float) -> float:
        xs = sorted(self.latencies_ms)
        if not xs:
            return float("nan")
        i = min(len(xs) - 1, max(0, math.ceil(q / 100 * len(xs)) - 1))  # nearest rank
        return xs[i]

    def row(self) -> dict[str, Any]:
        n = len(self.latencies_ms)
        return {
            "phase": self.name,
            "requests": n,
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "errors": self.errors,
            "throughput_rps": round(n / self.seconds, 1) if self.seconds else None,
            "p50_ms": round(self.pct(50), 2),
            "p95_ms": round(self.pct(95), 2),
            "p99_ms": round(self.pct(99), 2),
            "max_ms": round(max(self.latencies_ms), 2) if n else None,
            "server_cpu_ms_per_request": round(self.server_cpu_s * 1000 / n, 2) if n else None,
            "machine_cpu_ms_per_request": round(self.machine_busy_s * 1000 / n, 2) if n else None,
        }


class Connection:
    """One keep-alive HTTP/1.1 connection of the load generator.

    A minimal client on asyncio streams: a general-purpose client (httpx) costs the
    generator a few hundred microseconds of CPU per request on the same two cores the
    server runs on, which would show up as server latency. Requests are pre-encoded; the
    response is read by ``Content-Length`` (or chunks) and its body discarded after the
    status is counted.
    """

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, raw: bytes) -> int:
        if self.writer is None or self.reader is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        reader = self.reader
        self.writer.write(raw)
        status_line = await reader.readline()
        if not status_line:
            raise ConnectionError("connection closed by the server")
        status = int(status_line.split(b" ", 2)[1])
        length, chunked, close = 0, False, False
        while True:
            line = await reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
            elif name == b"connection":
                close = b"close" in value.lower()
        if chunked:
            while True:
                size = int((await reader.readline()).split(b";")[0], 16)
                await reader.readexactly(size + 2)
                if size == 0:
                    break
        elif length:
            await reader.readexactly(length)
        if close:
            self.close()
        return status

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


def encode(host: str, key: str, method: str, path: str, body: dict[str, Any] | None) -> bytes:
    data = json.dumps(body).encode() if body is not None else b""
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
    )
    return head.encode() + data


async def drive(
    base: str,
    key: str,
    requests: list[tuple[str, str, dict[str, Any] | None]],
    *,
    clients: int,
    rate: float | None,
    time_limit: float,
    name: str,
) -> Result:
    """Send ``requests`` with at most ``clients`` in flight (closed loop), or at ``rate``
    per second (open loop); stop issuing after ``time_limit`` seconds.

    Each client owns one keep-alive connection. In the open loop a request's latency is
    measured from its scheduled send time, so a stalled server cannot hide its queue.
    """
    host, _, port = base.removeprefix("http://").partition(":")
    encoded = [encode(host, key, m, p, b) for m, p, b in requests]
    lat: list[float] = []
    statuses: dict[int, int] = {}
    errors = 0
    queue: asyncio.Queue[tuple[int, bytes]] = asyncio.Queue()
    for item in enumerate(encoded):
        queue.put_nowait(item)
    conns = [Connection(host, int(port)) for _ in range(clients)]
    start = time.perf_counter()
    stop_at = start + time_limit

    async def worker(conn: Connection) -> None:
        nonlocal errors
        while not queue.empty():
            i, raw = queue.get_nowait()
            scheduled = start + i / rate if rate else None
            if scheduled is not None:
                delay = scheduled - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
            if time.perf_counter() > stop_at:
                return
            t0 = scheduled if scheduled is not None else time.perf_counter()
            try:
                status = await conn.request(raw)
            except (OSError, ValueError, asyncio.IncompleteReadError):
                conn.close()
                errors += 1
                continue
            statuses[status] = statuses.get(status, 0) + 1
            lat.append((time.perf_counter() - t0) * 1000)

    try:
        await asyncio.gather(*(worker(c) for c in conns))
    finally:
        for c in conns:
            c.close()
    seconds = time.perf_counter() - start
    return Result(name, lat, statuses, seconds, errors)


def run_async(coro: Any) -> Any:
    """Run the load generator on uvloop when it is installed (less client CPU)."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency off Windows
        return asyncio.run(coro)
    return uvloop.run(coro)
