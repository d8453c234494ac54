from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from huitouke.store import tables as t
from huitouke.store.db import Store


def _order(**kw: object) -> dict[str, object]:
    row: dict[str, object] = dict(
        order_id="o1",
        customer_id="c1",
        ordered_at=datetime(2024, 1, 31, 23, 59, tzinfo=timezone(timedelta(hours=8))),
        amount=Decimal("199.9900"),
        currency="CNY",
        status="paid",
        refunded_amount=Decimal("0"),
        channel="tmall",
        updated_at=datetime.now(UTC),
    )
    row.update(kw)
    return row


def test_schema_matches_migrations(store: Store) -> None:
    with store.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), t.load_all_tables())
    assert diff == []


def test_money_and_instants_round_trip_exactly(store: Store) -> None:
    with store.begin() as conn:
        conn.execute(
            t.orders.insert(), [_order(amount=Decimal("0.1"), refunded_amount=Decimal("0.0001"))]
        )
    table = store.load_orders()
    assert table.column("amount")[0].as_py() == Decimal("0.1000")
    assert table.column("refunded_amount")[0].as_py() == Decimal("0.0001")
    # 23:59 on Jan 31 in UTC+8 is 15:59 UTC the same day.
    assert table.column("ordered_at")[0].as_py() == datetime(2024, 1, 31, 15, 59, tzinfo=UTC)


@pytest.mark.parametrize(
    "bad",
    [
        {"amount": Decimal("-1")},
        {"refunded_amount": Decimal("500")},
        {"status": "shipped"},
    ],
)
def test_database_refuses_what_code_must_never_do(store: Store, bad: dict[str, object]) -> None:
    with pytest.raises(sa.exc.IntegrityError), store.begin() as conn:
        conn.execute(t.orders.insert(), [_order(**bad)])
    assert store.load_orders().num_rows == 0


def test_naive_datetimes_are_refused(store: Store) -> None:
    with pytest.raises(sa.exc.StatementError), store.begin() as conn:
        conn.execute(t.orders.insert(), [_order(ordered_at=datetime(2024, 1, 1))])


def test_unit_of_work_rolls_back_entirely(store: Store) -> None:
    with pytest.raises(RuntimeError), store.begin() as conn:
        conn.execute(t.orders.insert(), [_order()])
        raise RuntimeError("interrupted")
    assert store.load_orders().num_rows == 0


def test_migrate_is_idempotent(store: Store) -> None:
    store.migrate()
    store.migrate()
    assert store.is_migrated()
