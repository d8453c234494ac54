"""Units of work and the one retry policy, for every door on SQLite and PostgreSQL.

A use case is one function ``fn(conn)`` run by :func:`run_write` inside one transaction.
On SQLite the transaction starts with ``BEGIN IMMEDIATE``: writers queue on the
database's write lock (waiting up to the busy timeout) instead of starting as readers and
failing with "database is locked" when they try to upgrade; reads inside the unit of work
are therefore also serialised with other writers, so read-check-write sequences (a
coupon's status, a balance) cannot interleave. On PostgreSQL the loyalty code locks rows
itself, in primary-key order.

:class:`RetryPolicy` is the one place that decides what a transient failure is — by the
driver's error code, never by the text of its message:

- PostgreSQL SQLSTATE ``40001`` serialization failure, ``40P01`` deadlock detected,
  ``55P03`` lock not available and ``23505`` unique violation (two first inserts of one
  key racing; the rerun finds the other's row);
- SQLite primary result code ``SQLITE_BUSY`` (5) or ``SQLITE_LOCKED`` (6), with any
  extended code (``SQLITE_BUSY_SNAPSHOT``…), and the unique/primary-key constraint codes
  (2067, 1555) for the same insert race;
- a connection the database dropped (SQLAlchemy marks it invalidated).

Such a failure rolls back the whole unit and runs it again after a jittered, growing pause
(every write is idempotent by its key, so a rerun that finds its own earlier work changes
nothing). When the attempts are spent the caller gets :class:`~huitouke.errors.StoreBusyError`
(``store.busy``: HTTP 503 with ``Retry-After``, CLI exit code 8).
"""

from __future__ import annotations

import contextlib
import logging
import random
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError, IntegrityError

from huitouke.errors import ConflictError, StoreBusyError
from huitouke.store.db import Store

__all__ = [
    "DEFAULT_POLICY",
    "RetryPolicy",
    "StoreBusyError",
    "WalCheckpointer",
    "is_transient",
    "read_unit",
    "run_read",
    "run_write",
    "start_checkpointer",
    "stop_checkpointer",
    "write_unit",
]

T = TypeVar("T")
log = logging.getLogger("huitouke.store")

#: PostgreSQL SQLSTATEs worth a rerun: serialization failure, deadlock detected, lock not
#: available (``lock_timeout``/``NOWAIT``), unique violation (a race of two first inserts)
PG_TRANSIENT = frozenset({"40001", "40P01", "55P03", "23505"})
#: SQLite primary result codes worth a rerun: SQLITE_BUSY, SQLITE_LOCKED
SQLITE_TRANSIENT = frozenset({5, 6})
#: SQLite extended codes of the insert race: SQLITE_CONSTRAINT_UNIQUE, _PRIMARYKEY
SQLITE_UNIQUE = frozenset({2067, 1555})


class _SqliteWriter:
    """The one write connection of this process to a SQLite database, behind a lock.

    SQLite admits one writer at a time anyway. Its busy handler makes a waiting writer
    sleep and poll with growing pauses (up to 100 ms), so dozens of threads contending for
    the write lock would spend most of their time asleep after it was freed; queuing them on
    a Python lock hands the database over at once. Between processes (several workers)
    SQLite's busy timeout still arbitrates. Reusing one connection also spares every unit of
    work a connect and the connection pragmas, and keeps SQLite's statement cache warm.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self.lock = threading.Lock()
        self.conn: Connection | None = None
        self.checkpointer: WalCheckpointer | None = None

    def _connection(self) -> Connection:
        conn = self.conn
        if conn is None or conn.closed or conn.invalidated:
            conn = self.store.engine.connect()
            raw = conn.connection.driver_connection
            # Take transactions out of the sqlite3 module's hands so they can be IMMEDIATE.
            raw.isolation_level = None  # type: ignore[union-attr]
            if self.checkpointer is not None:
                # The checkpointer thread copies the WAL into the database; a commit that
                # crossed the default threshold of 1,000 pages would otherwise do it (and
                # its fsync) while holding the write lock, stalling every queued writer.
                # The writer keeps a far higher threshold as the backstop that bounds the
                # log when writes never pause (see WalCheckpointer).
                backstop = self.checkpointer.backstop_frames
                raw.execute(f"PRAGMA wal_autocheckpoint={backstop}")  # type: ignore[union-attr]
            self.conn = conn
        return conn

    def _discard(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.invalidate()
                conn.close()

    @contextmanager
    def unit(self) -> Iterator[Connection]:
        with self.lock:
            conn = self._connection()
            try:
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            except BaseException:
                self._discard()
                raise
            try:
                yield conn
            except BaseException as exc:
                try:
                    conn.rollback()
                except Exception:
                    self._discard()
                    raise exc from None
                if isinstance(exc, DBAPIError):
                    self._discard()  # the driver may be in any state: start afresh
                raise
            try:
                conn.commit()
            except BaseException:
                self._discard()
                raise


# The service's writer checkpoints a log of this many frames itself (40 MiB with SQLite's
# 4 KiB pages), should the background checkpointer not have let the log start over.
BACKSTOP_FRAMES = 10_000


class WalCheckpointer:
    """Checkpoints a SQLite WAL from a background thread, off the request path.

    In WAL mode every commit appends to the write-ahead log and, by default, the commit that
    takes the log past 1,000 pages copies it back into the database file and syncs it —
    tens to hundreds of milliseconds during which that writer holds the write lock. With
    the service's writer connection's auto-checkpoint turned off, this thread runs a
    ``PASSIVE`` checkpoint every ``interval`` seconds on its own connection instead: it
    copies what no reader still needs without taking the write lock, so writers go on
    appending; once a checkpoint has copied the whole log, the next writer starts the log
    over from its beginning and it stops growing. Other processes writing the same
    database (the CLI, a second worker) keep SQLite's default auto-checkpoint.

    Under writes that never pause, a checkpoint from another connection never finds the
    whole log copied at the moment the next commit comes, so the log would never start
    over and would grow without bound (and a thread starved of CPU runs few rounds). The
    writer therefore keeps an auto-checkpoint at ``backstop_frames`` (10 times SQLite's
    default): the commit that crosses it checkpoints the log itself — by then this thread
    has copied nearly all of it, so that commit copies the rest and syncs — and the next
    commit starts the log from the beginning. The bound is deterministic; the cost is one
    short stall per ``backstop_frames`` frames instead of one long one per 1,000.
    """

    def __init__(
        self, store: Store, interval: float = 1.0, backstop_frames: int = BACKSTOP_FRAMES
    ) -> None:
        self.store = store
        self.interval = interval
        self.backstop_frames = backstop_frames
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.checkpoints = 0

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._run, name="huitouke-wal-checkpoint", daemon=True
        )
        self._thread.start()

    def _run(self) -> None:
        raw = self.store.engine.raw_connection()
        try:
            while not self._stop.wait(self.interval):
                self.checkpoint(raw)
            self.checkpoint(raw)
        finally:
            raw.close()

    def checkpoint(self, raw: Any) -> None:
        try:
            cur = raw.cursor()
            try:
                cur.execute("PRAGMA wal_checkpoint(PASSIVE)")
                cur.fetchall()
            finally:
                cur.close()
            self.checkpoints += 1
        except Exception as exc:  # the next round tries again; a failure must not kill it
            log.warning("WAL checkpoint failed: %s", exc)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)


def start_checkpointer(
    store: Store, interval: float = 1.0, backstop_frames: int = BACKSTOP_FRAMES
) -> WalCheckpointer | None:
    """Start checkpointing ``store``'s WAL in the background (SQLite only) and raise the
    auto-checkpoint of this process's writer connection to ``backstop_frames``; ``None``
    for other databases."""
    if store.dialect != "sqlite" or interval <= 0:
        return None
    cp = WalCheckpointer(store, interval, backstop_frames)
    w = _writer(store)
    with w.lock:
        w.checkpointer = cp
        w._discard()  # reopened with the auto-checkpoint off
    cp.start()
    return cp


def stop_checkpointer(store: Store, cp: WalCheckpointer | None) -> None:
    if cp is None:
        return
    w = _writer(store)
    with w.lock:
        w.checkpointer = None
        w._discard()
    cp.stop()


_WRITERS: weakref.WeakKeyDictionary[Store, _SqliteWriter] = weakref.WeakKeyDictionary()
_WRITERS_GUARD = threading.Lock()


def _writer(store: Store) -> _SqliteWriter:
    with _WRITERS_GUARD:
        w = _WRITERS.get(store)
        if w is None:
            w = _WRITERS[store] = _SqliteWriter(store)
        return w


@contextmanager
def write_unit(store: Store) -> Iterator[Connection]:
    """One write transaction (``BEGIN IMMEDIATE`` on SQLite's shared write connection)."""
    if store.dialect != "sqlite":
        with store.begin() as conn:
            yield conn
        return
    with _writer(store).unit() as conn:
        yield conn


@contextmanager
def read_unit(store: Store) -> Iterator[Connection]:
    """A read-only transaction on one consistent snapshot (several SELECTs agree)."""
    if store.dialect != "sqlite":
        with store.connect() as conn:
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                yield conn
        return
    with store.engine.connect() as conn:
        raw = conn.connection.driver_connection
        raw.isolation_level = None  # type: ignore[union-attr]
        try:
            # A deferred transaction in WAL mode reads one snapshot and never blocks writers.
            conn.exec_driver_sql("BEGIN")
            try:
                yield conn
            finally:
                conn.rollback()
        finally:
            raw.isolation_level = ""  # type: ignore[union-attr]


def is_transient(exc: DBAPIError) -> bool:
    """Whether running the unit of work again may succeed, judged by the driver's code."""
    if exc.connection_invalidated:
        # The connection died (a database restart, a killed backend, a network blip): the
        # pool has dropped it and its older siblings; the unit runs again on a new one. If
        # its commit had reached the database, the rerun finds its own idempotency key.
        return True
    orig = exc.orig
    state = getattr(orig, "sqlstate", None)  # psycopg
    if state is not None:
        return state in PG_TRANSIENT
    code = getattr(orig, "sqlite_errorcode", None)  # sqlite3 (Python 3.11+)
    if code is not None:
        return (code & 0xFF) in SQLITE_TRANSIENT or code in SQLITE_UNIQUE
    return False


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a unit of work is run again after a transient failure.

    The pause before attempt *n + 1* is ``first_delay * 2**(n-1)`` capped at ``max_delay``,
    stretched by a random factor in [1, 2) so that units that collided do not collide again
    in lockstep.
    """

    attempts: int = 8
    first_delay: float = 0.005
    max_delay: float = 0.5

    def pause(self, attempt: int) -> float:
        """Seconds to wait after failed attempt ``attempt`` (1-based)."""
        base = min(self.first_delay * 2 ** (attempt - 1), self.max_delay)
        return base * (1 + random.random())

    def run(self, unit: Callable[[], T]) -> T:
        """Call ``unit`` (which opens and closes its own transaction) until it succeeds, a
        non-transient error escapes, or the attempts are spent (:class:`StoreBusyError`)."""
        for attempt in range(1, self.attempts + 1):
            try:
                return unit()
            except DBAPIError as exc:
                if not is_transient(exc):
                    raise
                if attempt == self.attempts:
                    raise StoreBusyError(
                        "the store is busy; retry the request",
                        message_zh="数据库繁忙,请重试",
                        details={"attempts": self.attempts, "reason": _reason(exc)},
                    ) from exc
                log.info(
                    "transient store conflict (attempt %d/%d): %s",
                    attempt,
                    self.attempts,
                    _reason(exc),
                )
                time.sleep(self.pause(attempt))
        raise AssertionError("unreachable")


DEFAULT_POLICY = RetryPolicy()
_READ_POLICY = RetryPolicy(attempts=3)


def _reason(exc: DBAPIError) -> str:
    state = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "sqlite_errorname", None)
    first = str(exc.orig).splitlines()[0][:200] if str(exc.orig) else type(exc.orig).__name__
    return f"{state}: {first}" if state else first


def run_write(
    store: Store, fn: Callable[[Connection], T], *, policy: RetryPolicy = DEFAULT_POLICY
) -> T:
    """Run ``fn`` in one write unit of work, rerunning it after transient conflicts."""

    def unit() -> T:
        try:
            with write_unit(store) as conn:
                return fn(conn)
        except IntegrityError as exc:
            if is_transient(exc):
                raise
            raise ConflictError(
                "the store refused the change (a constraint was violated)",
                code="store.integrity",
                message_zh="数据库拒绝了此修改(违反约束)",
                details={"reason": str(exc.orig).splitlines()[0][:200]},
            ) from exc

    return policy.run(unit)


def run_read(
    store: Store, fn: Callable[[Connection], T], *, policy: RetryPolicy = _READ_POLICY
) -> T:
    """Run ``fn`` on one consistent snapshot, rerunning it after transient failures (a
    connection the database dropped, a lock it could not get)."""

    def unit() -> T:
        with read_unit(store) as conn:
            return fn(conn)

    return policy.run(unit)
