"""Units of work under concurrency: SQLite writers queue (no "database is locked" reaches
the caller) and read-check-write sequences never interleave."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from huitouke.service.uow import run_read, run_write
from huitouke.store.db import Store
from huitouke.store.tables import customers


def test_concurrent_read_modify_write_is_exact(store: Store) -> None:
    now = datetime.now(UTC)
    with store.begin() as conn:
        conn.execute(
            customers.insert().values(
                customer_id="counter",
                tags=[],
                attributes={"n": 0},
                consent={},
                created_at=now,
                updated_at=now,
            )
        )

    def bump(conn: sa.Connection) -> int:
        q = sa.select(customers.c.attributes).where(customers.c.customer_id == "counter")
        if conn.dialect.name == "postgresql":
            q = q.with_for_update()  # PostgreSQL: the use case locks its row
        n = conn.execute(q).scalar_one()["n"] + 1
        conn.execute(
            customers.update()
            .where(customers.c.customer_id == "counter")
            .values(attributes={"n": n})
        )
        return n

    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(lambda _: run_write(store, bump), range(200)))
    assert sorted(results) == list(range(1, 201))
    final = run_read(
        store,
        lambda conn: conn.execute(
            sa.select(customers.c.attributes).where(customers.c.customer_id == "counter")
        ).scalar_one(),
    )
    assert final == {"n": 200}


def test_failed_unit_leaves_nothing(store: Store) -> None:
    now = datetime.now(UTC)

    def half(conn: sa.Connection) -> None:
        conn.execute(
            customers.insert().values(
                customer_id="x", tags=[], attributes={}, consent={}, created_at=now, updated_at=now
            )
        )
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        run_write(store, half)
    assert (
        run_read(
            store,
            lambda c: c.execute(sa.select(sa.func.count()).select_from(customers)).scalar_one(),
        )
        == 0
    )
