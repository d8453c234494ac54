"""What the benchmarks share: a fresh PostgreSQL database, settling a freshly seeded store
before timing, and a real `huitouke serve` process on a free loopback port."""

from __future__ import annotations

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
    proc: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Server:
        env = {**os.environ, "HUITOUKE_DATABASE_URL": self.url}
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
        deadline = time.monotonic() + 90
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
