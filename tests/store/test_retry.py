"""The one retry policy of the units of work, under real lock conflicts.

A unit of work that meets a lock another transaction holds (SQLite ``SQLITE_BUSY``,
PostgreSQL ``55P03``) or a deadlock (``40P01``) is run again after a pause; when the
attempts are spent the caller gets ``StoreBusyError`` (``store.busy``). What counts as
transient is decided by the driver's error code, never by the words of its message.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import OperationalError

from huitouke.errors import StoreBusyError, StoreError
from huitouke.loyalty import LoyaltyService
from huitouke.loyalty.program import Program
from huitouke.store.db import Store
from huitouke.store.tables import customers
from huitouke.store.uow import RetryPolicy, is_transient, run_read, run_write

NOW = datetime(2026, 3, 1, tzinfo=UTC)
FAST = RetryPolicy(attempts=3, first_delay=0.001, max_delay=0.01)


def _add(cid: str) -> Any:
    def fn(conn: sa.Connection) -> str:
        conn.execute(
            customers.insert().values(
                customer_id=cid, tags=[], attributes={}, consent={}, created_at=NOW,
                updated_at=NOW,
            )
        )  # fmt: skip
        return cid

    return fn


def _count(conn: sa.Connection) -> int:
    return int(conn.execute(sa.select(sa.func.count()).select_from(customers)).scalar_one())


def _retries(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "transient store conflict" in r.getMessage()]


@pytest.fixture
def quick_sqlite(sqlite_url: str) -> Iterator[Store]:
    """A SQLite store whose statements give up on a lock after 20 ms (not 30 s)."""
    s = Store(sqlite_url, busy_timeout_ms=20)
    s.migrate()
    try:
        yield s
    finally:
        s.dispose()


def _hold_write_lock(url: str) -> sqlite3.Connection:
    path = sa.engine.make_url(url).database
    assert path
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")  # another process's writer, holding the lock
    return other


def test_sqlite_busy_is_retried_then_store_busy(
    quick_sqlite: Store, sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    other = _hold_write_lock(sqlite_url)
    try:
        with (
            caplog.at_level(logging.INFO, logger="huitouke.store"),
            pytest.raises(StoreBusyError) as info,
        ):
            run_write(quick_sqlite, _add("a"), policy=FAST)
    finally:
        other.rollback()
        other.close()
    err = info.value
    assert isinstance(err, StoreError)
    assert (err.code, err.http_status, err.exit_code) == ("store.busy", 503, 8)
    assert err.details["attempts"] == 3
    assert err.details["reason"].startswith("SQLITE_BUSY")
    cause = err.__cause__
    assert isinstance(cause, OperationalError)
    assert cause.orig.sqlite_errorcode & 0xFF == sqlite3.SQLITE_BUSY
    assert len(_retries(caplog)) == 2  # attempts 1 and 2 retried, the third gave up
    assert run_read(quick_sqlite, _count) == 0
    # once the lock is gone the same unit goes through
    assert run_write(quick_sqlite, _add("a"), policy=FAST) == "a"
    assert run_read(quick_sqlite, _count) == 1


def test_sqlite_busy_is_retried_until_the_lock_is_released(
    quick_sqlite: Store, sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    other = _hold_write_lock(sqlite_url)
    release = threading.Timer(0.15, other.rollback)
    release.start()
    try:
        with caplog.at_level(logging.INFO, logger="huitouke.store"):
            got = run_write(
                quick_sqlite, _add("a"), policy=RetryPolicy(attempts=20, first_delay=0.02)
            )
    finally:
        release.join()
        other.close()
    assert got == "a"
    assert _retries(caplog), "the lock was held: at least one attempt must have been retried"
    assert run_read(quick_sqlite, _count) == 1


def test_loyalty_bound_to_a_store_uses_the_same_policy(
    quick_sqlite: Store, sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The CLI's loyalty calls (``LoyaltyService.bound``) run in the store's unit of work
    and retry a held lock like the REST service does."""
    svc = LoyaltyService(
        Program.model_validate({"id": "p", "timezone": "UTC", "earn": {"points_per_unit": 1}})
    ).bound(quick_sqlite)
    other = _hold_write_lock(sqlite_url)
    release = threading.Timer(0.15, other.rollback)
    release.start()
    try:
        with caplog.at_level(logging.INFO, logger="huitouke.store"):
            out = svc.apply_order(
                {
                    "order_id": "o1",
                    "customer_id": "c1",
                    "ordered_at": "2026-03-01T10:00:00+00:00",
                    "status": "paid",
                    "amount": "12",
                    "currency": "CNY",
                }
            )
    finally:
        release.join()
        other.close()
    assert out["points_earned"] == "12"
    assert _retries(caplog)


def _sqlite_error(message: str, code: int | None) -> OperationalError:
    orig = sqlite3.OperationalError(message)
    if code is not None:
        orig.sqlite_errorcode = code  # type: ignore[attr-defined]
        orig.sqlite_errorname = "X"  # type: ignore[attr-defined]
    return OperationalError("stmt", {}, orig)


def test_transient_is_judged_by_code_not_by_message() -> None:
    assert is_transient(_sqlite_error("anything at all", sqlite3.SQLITE_BUSY))
    assert is_transient(_sqlite_error("anything", 517))  # SQLITE_BUSY_SNAPSHOT
    assert is_transient(_sqlite_error("anything", sqlite3.SQLITE_LOCKED))
    assert is_transient(_sqlite_error("x", 2067))  # SQLITE_CONSTRAINT_UNIQUE: insert race
    # a message that merely mentions a lock is not a lock
    assert not is_transient(_sqlite_error("no such table: locked_rows", sqlite3.SQLITE_ERROR))
    assert not is_transient(_sqlite_error("database is locked", None))


def test_retry_pauses_grow_with_jitter_and_stay_bounded() -> None:
    p = RetryPolicy(attempts=8, first_delay=0.01, max_delay=0.05)
    for attempt, base in [(1, 0.01), (2, 0.02), (3, 0.04), (4, 0.05), (8, 0.05)]:
        pauses = {p.pause(attempt) for _ in range(50)}
        assert all(base <= x < 2 * base for x in pauses)
        assert len(pauses) > 1  # jittered


@pytest.mark.postgres
def test_postgres_deadlock_is_retried(postgres_url: str, caplog: pytest.LogCaptureFixture) -> None:
    """Two units lock two rows in opposite orders: PostgreSQL aborts one with 40P01, the
    policy reruns it, and both complete."""
    store = Store(postgres_url)
    store.migrate()
    try:
        run_write(store, _add("a"))
        run_write(store, _add("b"))
        barrier = threading.Barrier(2, timeout=10)
        first_try: set[str] = set()
        guard = threading.Lock()

        def crossing(first: str, second: str) -> Any:
            def fn(conn: sa.Connection) -> str:
                c = customers.c
                conn.execute(customers.update().where(c.customer_id == first).values(tags=[first]))
                with guard:
                    waits = first not in first_try
                    first_try.add(first)
                if waits:  # only the first attempts meet; the rerun just waits its turn
                    barrier.wait()
                conn.execute(customers.update().where(c.customer_id == second).values(tags=[first]))
                return first

            return fn

        results: list[str] = []
        errors: list[BaseException] = []

        def run(first: str, second: str) -> None:
            try:
                results.append(run_write(store, crossing(first, second)))
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        with caplog.at_level(logging.INFO, logger="huitouke.store"):
            threads = [
                threading.Thread(target=run, args=("a", "b")),
                threading.Thread(target=run, args=("b", "a")),
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=30)
        assert not errors
        assert sorted(results) == ["a", "b"]
        assert any("40P01" in m for m in _retries(caplog))
    finally:
        store.dispose()


@pytest.mark.postgres
def test_postgres_lock_not_available_ends_in_store_busy(
    postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    import psycopg

    store = Store(postgres_url)
    store.migrate()
    try:
        run_write(store, _add("a"))
        u = sa.engine.make_url(postgres_url)
        holder = psycopg.connect(
            host=u.host or "127.0.0.1", port=u.port or 5432, user=u.username or "postgres",
            dbname=u.database,
        )  # fmt: skip
        holder.execute("SELECT 1 FROM customers WHERE customer_id = 'a' FOR UPDATE")

        def lock_a(conn: sa.Connection) -> str:
            conn.exec_driver_sql("SET LOCAL lock_timeout = '50ms'")
            conn.execute(
                sa.select(customers.c.customer_id)
                .where(customers.c.customer_id == "a")
                .with_for_update()
            ).all()
            return "locked"

        try:
            with caplog.at_level(logging.INFO, logger="huitouke.store"):
                started = time.monotonic()
                with pytest.raises(StoreBusyError) as info:
                    run_write(store, lock_a, policy=FAST)
                assert time.monotonic() - started < 5
        finally:
            holder.rollback()
            holder.close()
        assert info.value.details["reason"].startswith("55P03")
        assert len(_retries(caplog)) == 2
        assert run_write(store, lock_a, policy=FAST) == "locked"
    finally:
        store.dispose()


def test_rest_answers_503_store_busy_after_the_retries(
    quick_sqlite: Store, sqlite_url: str
) -> None:
    """Through the REST door: a write that meets another process's lock through every retry
    answers 503 ``store.busy`` with ``Retry-After``, and goes through once the lock is gone."""
    import warnings

    from huitouke.service import create_app
    from huitouke.service.apikeys import create_api_key
    from huitouke.settings import Settings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient

    with quick_sqlite.begin() as conn:
        key = create_api_key(conn, scope="operator", name="t", now=NOW)[1]
    h = {"Authorization": f"Bearer {key}"}
    app = create_app(Settings(database_url=sqlite_url, lang="en"), quick_sqlite)
    with TestClient(app, raise_server_exceptions=False) as client:
        other = _hold_write_lock(sqlite_url)
        try:
            r = client.put("/v1/customers/c1", json={"name": "A"}, headers=h)
        finally:
            other.rollback()
            other.close()
        assert r.status_code == 503, r.text
        assert r.headers["Retry-After"] == "1"
        err = r.json()["error"]
        assert err["code"] == "store.busy"
        assert err["details"]["attempts"] == 8
        assert err["details"]["reason"].startswith("SQLITE_BUSY")
        ok = client.put("/v1/customers/c1", json={"name": "A"}, headers=h)
        assert ok.status_code in (200, 201), ok.text
