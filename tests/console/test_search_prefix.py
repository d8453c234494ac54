"""Customer search by prefix on both backends: id, phone, e-mail and name (the last two
without regard to case), exactly the first matches by id when more match than are shown,
and the indexes of migration ``search_0001`` are what PostgreSQL's planner uses."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import text

from huitouke.service.customers import search_customers
from huitouke.store.db import Store
from huitouke.store.tables import customers


def _people(store: Store) -> None:
    now = datetime.now(UTC)
    rows = [
        {"customer_id": f"k{i:03d}", "name": f"Name{i:03d}", "phone": f"1390000{i:04d}",
         "email": f"u{i:03d}@Example.com", "tags": [], "attributes": {}, "consent": {},
         "created_at": now, "updated_at": now}
        for i in range(120)
    ] + [
        {"customer_id": "z-1", "name": "王小明", "phone": "13800138000",
         "email": "Ming@Example.com", "tags": [], "attributes": {}, "consent": {},
         "created_at": now, "updated_at": now},
        {"customer_id": "a-1", "name": "Wang Li", "phone": "18600000001", "email": None,
         "tags": [], "attributes": {}, "consent": {}, "created_at": now, "updated_at": now},
    ]  # fmt: skip
    with store.begin() as conn:
        conn.execute(customers.insert(), rows)


@pytest.mark.parametrize(
    "q,expected",
    [
        ("z-", ["z-1"]),
        ("王", ["z-1"]),
        ("王小", ["z-1"]),
        ("wang", ["a-1"]),
        ("WANG L", ["a-1"]),
        ("ming@", ["z-1"]),
        ("MING@EXAMPLE", ["z-1"]),
        ("1380013", ["z-1"]),
        ("186", ["a-1"]),
        ("k11", ["k110", "k111", "k112", "k113", "k114", "k115", "k116", "k117", "k118", "k119"]),
        ("name11", ["k110", "k111", "k112", "k113", "k114", "k115", "k116", "k117", "k118",
                    "k119"]),
        ("K11", []),  # ids and phones are matched as written
        ("k_", []),  # "_" and "%" are characters, not wildcards
        ("%", []),
        ("nobody", []),
    ],
)  # fmt: skip
def test_prefix_of_any_field(store: Store, q: str, expected: list[str]) -> None:
    _people(store)
    with store.connect() as conn:
        assert [r["customer_id"] for r in search_customers(conn, q)] == expected


def test_more_matches_than_shown_gives_the_first_by_id(store: Store) -> None:
    _people(store)
    with store.connect() as conn:
        # "1" matches every k-phone (13900…) and a-1's and z-1's: the first 50 by id
        got = [r["customer_id"] for r in search_customers(conn, "1", limit=50)]
        assert got == ["a-1"] + [f"k{i:03d}" for i in range(49)]
        # u0… e-mails: k000…k099; with "u" every k: the first 20 by id
        got = [r["customer_id"] for r in search_customers(conn, "U", limit=20)]
        assert got == [f"k{i:03d}" for i in range(20)]
        assert [r["customer_id"] for r in search_customers(conn, "", limit=3)] == [
            "a-1", "k000", "k001"
        ]  # fmt: skip


@pytest.mark.postgres
def test_postgres_uses_the_prefix_indexes(postgres_url: str) -> None:
    store = Store(postgres_url)
    store.migrate()
    try:
        with store.begin() as conn:
            conn.execute(text("SET LOCAL enable_seqscan = off"))
            defs = dict(
                conn.execute(
                    text("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'customers'")
                ).all()
            )
            assert "varchar_pattern_ops" in defs["ix_customers_id_prefix"]
            # without a sequential scan, a prefix of these fields is found by its index
            for expr, q in (
                ("phone", "139%"),
                ("lower(email)", "u01%"),
                ("lower(name)", "name01%"),
            ):
                plan = "\n".join(
                    r[0]
                    for r in conn.execute(
                        text(f"EXPLAIN SELECT customer_id FROM customers WHERE {expr} LIKE :q"),
                        {"q": q},
                    )
                )
                assert "_prefix" in plan and "Index Cond" in plan, plan
    finally:
        store.dispose()
