"""Locks that keep two processes from running one job at the same time.

**PostgreSQL**: a session advisory lock, ``pg_try_advisory_lock(k)`` with ``k`` a stable
64-bit hash of the job's name (BLAKE2b, so every process and every version computes the
same key), taken on a connection held for the whole run. The database releases it when the
run unlocks it or when the connection ends — a process killed mid-run leaves no lock
behind. Several scheduler processes may run against one PostgreSQL store (one per host for
availability): whichever takes a job's lock runs the slot, the others skip it.

**SQLite** has no advisory locks, and its writers queue on one file anyway, so a SQLite
store has one scheduler process: it holds the ``scheduler`` lease (a row with an expiry it
renews), and a second scheduler is refused (``scheduler.already_running``) — or, inside
``huitouke serve``, waits as a standby until the lease expires. Each job run takes the
job's own lease too, so ``huitouke scheduler run JOB`` by hand never overlaps the
scheduler's run of the same job. A lease is renewed every third of its length while held;
one whose holder died expires and is taken over.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, delete, select, text, update

from huitouke.app.scheduler.tables import scheduler_leases as leases
from huitouke.store.db import Store
from huitouke.store.uow import run_write

__all__ = ["Lease", "advisory_key", "job_lock"]

log = logging.getLogger("huitouke.scheduler")


def advisory_key(name: str) -> int:
    """A stable signed 64-bit key for ``pg_try_advisory_lock`` (BLAKE2b of the name)."""
    digest = hashlib.blake2b(f"huitouke.scheduler:{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


@dataclass
class Lease:
    """A named lease in ``scheduler_leases``: held by ``holder`` until ``expires_at``."""

    store: Store
    name: str
    holder: str
    seconds: float

    def acquire(self) -> bool:
        now = datetime.now(UTC)
        until = now + timedelta(seconds=self.seconds)

        def unit(conn: Connection) -> bool:
            row = conn.execute(
                select(leases.c.holder, leases.c.expires_at).where(leases.c.name == self.name)
            ).first()
            if row is None:
                conn.execute(
                    leases.insert().values(
                        name=self.name, holder=self.holder, acquired_at=now, expires_at=until
                    )
                )
                return True
            if row.holder != self.holder and row.expires_at > now:
                return False
            conn.execute(
                update(leases)
                .where(leases.c.name == self.name)
                .values(holder=self.holder, acquired_at=now, expires_at=until)
            )
            return True

        return run_write(self.store, unit)

    def renew(self) -> bool:
        """Extend the lease; False when it was lost (expired and taken by another)."""
        until = datetime.now(UTC) + timedelta(seconds=self.seconds)

        def unit(conn: Connection) -> bool:
            res = conn.execute(
                update(leases)
                .where(leases.c.name == self.name, leases.c.holder == self.holder)
                .values(expires_at=until)
            )
            return bool(res.rowcount)

        return run_write(self.store, unit)

    def release(self) -> None:
        run_write(
            self.store,
            lambda conn: conn.execute(
                delete(leases).where(leases.c.name == self.name, leases.c.holder == self.holder)
            ),
        )

    def holder_info(self) -> dict[str, Any] | None:
        with self.store.connect() as conn:
            row = conn.execute(select(leases).where(leases.c.name == self.name)).mappings().first()
        return dict(row) if row else None


class _Renewer:
    """Renews a lease every third of its length until stopped."""

    def __init__(self, lease: Lease) -> None:
        self.lease = lease
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"lease-{lease.name}", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.wait(self.lease.seconds / 3):
            try:
                if not self.lease.renew():
                    log.error("lease %s was lost", self.lease.name)
                    return
            except Exception:  # a busy store: the next renewal tries again
                log.exception("renewing lease %s", self.lease.name)

    def close(self) -> None:
        self.stop.set()
        self.thread.join()


@contextmanager
def job_lock(store: Store, job: str, holder: str, lease_seconds: float) -> Iterator[bool]:
    """Hold the job's lock for the block; yields False (and holds nothing) when another
    process has it."""
    if store.dialect == "postgresql":
        with _advisory(store, advisory_key(job)) as got:
            yield got
        return
    lease = Lease(store, f"job:{job}", holder, lease_seconds)
    if not lease.acquire():
        yield False
        return
    renewer = _Renewer(lease)
    try:
        yield True
    finally:
        renewer.close()
        lease.release()


@contextmanager
def _advisory(store: Store, key: int) -> Iterator[bool]:
    conn = store.engine.connect()
    try:
        got = bool(conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar())
        conn.commit()  # a session lock: it outlives the transaction, which must not idle open
    except Exception:
        conn.close()
        raise
    try:
        yield got
    finally:
        try:
            if got:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                conn.commit()
            conn.close()
        except Exception:  # the connection broke: closing it for good ends the session's locks
            conn.invalidate()
            conn.close()
