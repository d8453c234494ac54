"""Import into the store on both backends: idempotence, the later-state rule, customers,
lines, rejects file, batches and atomicity."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa

from huitouke.app.imports import import_file
from huitouke.data import CDNOW_MASTER, CDNOW_SAMPLE
from huitouke.errors import ConflictError, InputError
from huitouke.importing import read_orders
from huitouke.store import tables as t
from huitouke.store.db import Store
from huitouke.store.orders_repo import upsert_orders

from .conftest import stored_lines

HEADER = "order_id,customer_id,ordered_at,amount,status,refunded_amount,customer_name,phone\n"


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def orders_of(store: Store) -> dict[str, dict[str, object]]:
    return {r["order_id"]: r for r in store.load_orders().to_pylist()}


def test_round_trip_equals_what_was_read(store: Store) -> None:
    res = read_orders(CDNOW_SAMPLE)
    s = import_file(store, CDNOW_SAMPLE, progress=False)
    assert (s.orders_inserted, s.orders_updated, s.orders_unchanged) == (6919, 0, 0)
    loaded = store.load_orders().sort_by("order_id")
    assert loaded.equals(res.orders.sort_by("order_id"))


def test_same_and_overlapping_files_store_nothing_twice(store: Store) -> None:
    import_file(store, CDNOW_SAMPLE, progress=False)
    again = import_file(store, CDNOW_SAMPLE, progress=False)
    assert (again.orders_inserted, again.orders_updated, again.orders_unchanged) == (0, 0, 6919)
    master = import_file(store, CDNOW_MASTER, progress=False)  # the sample is inside the master
    assert master.orders_inserted == 69_659 - 6_919
    assert master.orders_unchanged == 6_919
    assert store.load_orders().num_rows == 69_659
    with store.connect() as conn:
        n_customers = conn.execute(sa.select(sa.func.count()).select_from(t.customers)).scalar()
        batches = conn.execute(sa.select(t.import_batches).order_by("batch_id")).mappings().all()
    assert n_customers == 23_570
    assert [b["status"] for b in batches] == ["done", "done", "done"]
    assert batches[2]["orders_inserted"] == 69_659 - 6_919
    assert batches[2]["rows_read"] == 69_659


def test_later_state_wins_and_old_exports_do_not_undo_refunds(store: Store, tmp_path: Path) -> None:
    day1 = write(
        tmp_path,
        "day1.csv",
        HEADER + "o1,c1,2024-01-01,100,paid,0,,\no2,c1,2024-01-02,80,paid,0,,\n",
    )
    day2 = write(
        tmp_path,
        "day2.csv",
        HEADER + "o1,c1,2024-01-01,100,partially_refunded,30,,\no3,c2,2024-01-03,5,paid,0,,\n",
    )
    day3 = write(tmp_path, "day3.csv", HEADER + "o1,c1,2024-01-01,100,refunded,100,,\n")
    s1 = import_file(store, day1, progress=False)
    assert (s1.orders_inserted, s1.orders_updated) == (2, 0)
    s2 = import_file(store, day2, progress=False)
    assert (s2.orders_inserted, s2.orders_updated, s2.orders_unchanged) == (1, 1, 0)
    o = orders_of(store)
    assert o["o1"]["status"] == "partially_refunded"
    assert o["o1"]["refunded_amount"] == Decimal("30.0000")
    # re-importing the older export changes nothing
    s1b = import_file(store, day1, progress=False)
    assert (s1b.orders_inserted, s1b.orders_updated, s1b.orders_unchanged) == (0, 0, 2)
    assert orders_of(store)["o1"]["refunded_amount"] == Decimal("30.0000")
    s3 = import_file(store, day3, progress=False)
    assert s3.orders_updated == 1
    s2b = import_file(store, day2, progress=False)
    assert s2b.orders_updated == 0
    o = orders_of(store)
    assert o["o1"]["status"] == "refunded"
    assert o["o1"]["refunded_amount"] == Decimal("100.0000")
    # another amount or customer for a recorded order id is refused, never overwritten:
    # the whole file is refused and names the order, the field and both values
    before = orders_of(store)
    for name, row, field in (
        ("fix.csv", "o2,c1,2024-01-02,85,paid,0,,\n", "amount"),
        ("other.csv", "o9,c9,2024-01-02,5,paid,0,,\no2,c7,2024-01-02,80,paid,0,,\n", "customer_id"),
    ):
        with pytest.raises(ConflictError) as info:
            import_file(store, write(tmp_path, name, HEADER + row), progress=False)
        assert info.value.code == "order.conflict"
        assert info.value.details["count"] == 1
        assert info.value.details["conflicts"][0]["order_id"] == "o2"
        assert info.value.details["conflicts"][0]["field"] == field
        assert "o2" in info.value.message
        assert orders_of(store) == before


def test_customers_created_and_attributes_filled(store: Store, tmp_path: Path) -> None:
    a = write(
        tmp_path, "a.csv", HEADER + "o1,c1,2024-01-01,1,paid,0,张三,\no2,c2,2024-01-01,1,paid,0,,\n"
    )
    b = write(tmp_path, "b.csv", HEADER + "o3,c1,2024-01-05,1,paid,0,,13800000000\n")
    import_file(store, a, progress=False)
    import_file(store, b, progress=False)
    with store.connect() as conn:
        rows = {r["customer_id"]: r for r in conn.execute(sa.select(t.customers)).mappings().all()}
    assert set(rows) == {"c1", "c2"}
    assert rows["c1"]["name"] == "张三"  # an empty value never erases
    assert rows["c1"]["phone"] == "13800000000"
    assert rows["c2"]["name"] is None
    assert rows["c1"]["tags"] == [] and rows["c1"]["consent"] == {}
    assert rows["c1"]["created_at"].tzinfo is not None


def test_lines_and_products_replaced_with_their_order(store: Store, tmp_path: Path) -> None:
    head = "order_id,customer_id,ordered_at,status,sku,product_name,category,quantity,unit_price\n"
    v1 = write(
        tmp_path,
        "v1.csv",
        head + "o1,c1,2024-01-01,paid,S1,Tea,drinks,2,3.5\n"
        "o1,c1,2024-01-01,paid,S2,Cake,food,1,10\n",
    )
    v2 = write(
        tmp_path,
        "v2.csv",
        head + "o1,c1,2024-01-01,refunded,S1,Tea,drinks,2,3.5\n"
        "o1,c1,2024-01-01,refunded,S3,Pie,food,1,10\n",
    )
    import_file(store, v1, progress=False)
    lines = stored_lines(store)
    assert len(lines) == 2
    assert sorted(r["sku"] for r in lines) == ["S1", "S2"]
    import_file(store, v1, progress=False)
    assert len(stored_lines(store)) == 2
    import_file(store, v2, progress=False)
    lines = stored_lines(store)
    assert lines == [
        {"order_id": "o1", "line_no": 1, "sku": "S1", "product_name": "Tea", "category": "drinks",
         "quantity": 2, "unit_price": Decimal("3.5000")},
        {"order_id": "o1", "line_no": 2, "sku": "S3", "product_name": "Pie", "category": "food",
         "quantity": 1, "unit_price": Decimal("10.0000")},
    ]  # fmt: skip
    with store.connect() as conn:
        prods = conn.execute(sa.select(t.products).order_by("sku")).mappings().all()
    assert [(p["sku"], p["name"], p["unit_price"]) for p in prods] == [
        ("S1", "Tea", Decimal("3.5000")),
        ("S2", "Cake", Decimal("10.0000")),
        ("S3", "Pie", Decimal("10.0000")),
    ]


def test_rejects_file_and_good_rows_stored(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # PostgreSQL stores: rejects go to the working directory
    p = write(
        tmp_path,
        "mixed.csv",
        HEADER + "o1,c1,2024-01-01,10,paid,0,,\n"
        "o2,,2024-01-01,10,paid,0,,\n"
        "o3,c3,someday,10,paid,0,,\n",
    )
    out = tmp_path / "rej.csv"
    s = import_file(store, p, rejects_path=out, progress=False)
    assert s.rows_rejected == 2 and s.orders_inserted == 1
    text = out.read_text(encoding="utf-8-sig").splitlines()
    assert text[0] == "file,line,field,value,reason_code,reason_en,reason_zh"
    assert text[1].startswith("mixed.csv,3,customer_id,,import.missing_customer_id,")
    assert text[2].startswith("mixed.csv,4,ordered_at,someday,import.bad_date,")
    # without --rejects the file goes next to the store (SQLite) or the working directory
    s2 = import_file(store, p, progress=False)
    assert s2.rejects_path is not None and s2.rejects_path.exists()


def test_a_failing_batch_leaves_the_store_as_it_was(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import_file(store, CDNOW_SAMPLE, progress=False)
    before = store.load_orders()
    import huitouke.app.imports as service

    def boom(*a: object, **k: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(service, "write_rejects", boom)
    bad = write(
        tmp_path, "b.csv", HEADER + "n1,c1,2024-01-01,1,paid,0,,\nn2,,2024-01-01,1,paid,0,,\n"
    )
    with pytest.raises(RuntimeError):
        import_file(store, bad, progress=False)
    assert store.load_orders().equals(before)
    with store.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(t.import_batches)).scalar() == 1


def test_upsert_orders_from_dicts_validates(store: Store) -> None:
    row = {
        "order_id": "api-1",
        "customer_id": "c1",
        "ordered_at": datetime(2024, 5, 1, 12, tzinfo=UTC),
        "amount": Decimal("9.90"),
        "currency": "CNY",
        "status": "paid",
    }
    with store.begin() as conn:
        c = upsert_orders(conn, [row])
    assert (c.inserted, c.updated, c.unchanged) == (1, 0, 0)
    with store.begin() as conn:
        c = upsert_orders(conn, [{**row, "status": "refunded", "refunded_amount": Decimal("9.9")}])
    assert (c.inserted, c.updated, c.unchanged) == (0, 1, 0)
    with store.begin() as conn:
        c = upsert_orders(conn, [row])  # older state: ignored
    assert (c.inserted, c.updated, c.unchanged) == (0, 0, 1)
    assert orders_of(store)["api-1"]["status"] == "refunded"
    with pytest.raises(InputError), store.begin() as conn:
        upsert_orders(conn, [{**row, "ordered_at": datetime(2024, 5, 1)}])
    with pytest.raises(InputError), store.begin() as conn:
        upsert_orders(conn, [{**row, "status": "shipped"}])
    with pytest.raises(InputError), store.begin() as conn:
        upsert_orders(conn, [{**row, "refunded_amount": Decimal("10")}])


def test_online_retail_into_store(store: Store, shared_online_retail: Path) -> None:
    s = import_file(store, shared_online_retail, progress=False)
    assert s.orders_inserted == 18_532 and s.rows_rejected == 0
    total = sum(r["amount"] for r in store.load_orders().to_pylist())
    assert total > Decimal("8000000")


def test_bulk_path_keeps_indexes_and_the_database_backstop(sqlite_url: str) -> None:
    store = Store(sqlite_url)
    store.migrate()
    import_file(store, CDNOW_MASTER, progress=False)  # ≥ 50k rows into an empty table
    with store.connect() as conn:
        names = {i["name"] for i in sa.inspect(conn).get_indexes("orders")}
        con = conn.connection.dbapi_connection
        assert con is not None
        assert con.execute("PRAGMA ignore_check_constraints").fetchone()[0] == 0
    assert {"ix_orders_customer_ordered", "ix_orders_ordered_at"} <= names
    # the per-batch check catches a row that slipped past validation
    from huitouke.errors import StoreError
    from huitouke.store.orders_repo import _check_batch_sqlite

    with store.begin() as conn:
        raw = conn.connection.dbapi_connection
        assert raw is not None
        raw.execute("PRAGMA ignore_check_constraints = ON")
        raw.execute(
            "INSERT INTO orders VALUES ('bad', 'c', '2024-01-01 00:00:00.000000', -1, 'CNY', "
            "'paid', 0, NULL, NULL, '2030-01-01 00:00:00.000000', 'default')"
        )
        raw.execute("PRAGMA ignore_check_constraints = OFF")
        with pytest.raises(StoreError):
            _check_batch_sqlite(raw.cursor(), "2030-01-01 00:00:00.000000")
        conn.rollback()
    store.dispose()


def test_fast_sqlite_load_orders_equals_the_generic_path(sqlite_url: str, tmp_path: Path) -> None:
    store = Store(sqlite_url)
    store.migrate()
    import_file(store, CDNOW_SAMPLE, progress=False)
    p = write(
        tmp_path, "x.csv", HEADER + "z1,c1,2024-01-31 23:59:59.123456,0.0001,refunded,0.0001,,\n"
    )
    import_file(store, p, progress=False)
    fast = store.load_orders()
    assert fast.equals(store._load_orders_generic())
    assert fast.num_rows == 6920
    store.dispose()


def _tricky_writes() -> list[
    tuple[list[dict[str, object]], list[dict[str, object]], list[dict[str, object]]]
]:
    """Upserts (orders, lines, customers) with what text and casts can get wrong: NULL and
    empty strings, quotes, commas and newlines, CJK, sub-second instants, money with four
    decimals, NULL quantities — then later states, an older state that must not win, and
    lines replaced with their order."""

    def o(i: int, **kw: object) -> dict[str, object]:
        row: dict[str, object] = {
            "order_id": f"o{i:03d}",
            "customer_id": f"c{i % 9}",
            "ordered_at": datetime(2026, 3, 1, 23, 59, 59, 123456, tzinfo=UTC),
            "amount": Decimal("1234.5678") + i,
            "currency": "CNY",
            "status": "paid",
            "refunded_amount": Decimal(0),
            "channel": None if i % 3 == 0 else ("" if i % 3 == 1 else '淘宝, "tmall"\nshop'),
        }
        row.update(kw)
        return row

    def ln(i: int, no: int, **kw: object) -> dict[str, object]:
        row: dict[str, object] = {
            "order_id": f"o{i:03d}", "line_no": no, "sku": f"S{no}",
            "product_name": 'Tea, "green"' if no == 1 else None, "category": "",
            "quantity": None if no == 2 else no, "unit_price": Decimal("0.0001") * no,
        }  # fmt: skip
        row.update(kw)
        return row

    first = [o(i) for i in range(40)]
    lines1 = [ln(i, no) for i in range(0, 40, 2) for no in (1, 2, 3)]
    people = [
        {"customer_id": "c1", "name": "张三", "phone": "", "email": None},
        {"customer_id": "c2", "name": None, "phone": "13800000000", "email": "a@b.c"},
    ]
    later = [o(i, status="refunded", refunded_amount=Decimal("1234.5678") + i) for i in range(5)]
    later += [o(5, status="partially_refunded", refunded_amount=Decimal("1.0001"))]
    older = [o(i) for i in range(3)]  # an old export: must not undo the refunds
    lines2 = [ln(0, 1, product_name="换了"), ln(4, 7)]
    return [
        (first, lines1, people),
        (later, [], [{"customer_id": "c1", "name": None, "phone": "139", "email": ""}]),
        (older, [], []),
        (
            [
                o(0, status="refunded", refunded_amount=Decimal("1234.5678"), channel="y"),
                o(4, status="refunded", refunded_amount=Decimal("1238.5678"), channel="x"),
            ],
            lines2,
            [],
        ),
    ]


def test_postgres_small_writes_by_arrays_equal_copy(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Small upserts go to PostgreSQL as bound arrays, large ones through COPY into temporary
    tables; the same writes through either path leave the same rows and counts."""
    import huitouke.store.orders_repo as repo

    store = Store(postgres_url)
    store.migrate()
    tables = (t.orders, t.customers, t.order_lines, t.products)
    outcomes = []
    try:
        for limit in (repo._PG_ARRAYS_MAX, 0):  # arrays, then COPY for everything
            monkeypatch.setattr(repo, "_PG_ARRAYS_MAX", limit)
            with store.begin() as conn:
                for tb in tables:
                    conn.execute(tb.delete())
            counts = []
            for orders_, lines_, people in _tricky_writes():
                with store.begin() as conn:
                    c = upsert_orders(conn, orders_, lines=lines_ or None, customers=people or None)
                counts.append((c.inserted, c.updated, c.unchanged))
            with store.connect() as conn:
                rows = {
                    tb.name: sorted(
                        tuple(
                            (k, v)
                            for k, v in r.items()
                            if k not in ("created_at", "updated_at", "batch_id")
                        )
                        for r in conn.execute(sa.select(tb)).mappings().all()
                    )
                    for tb in tables
                }
            outcomes.append((counts, rows))
    finally:
        store.dispose()
    (counts_a, rows_a), (counts_b, rows_b) = outcomes
    assert counts_a == counts_b == [(40, 0, 0), (0, 6, 0), (0, 0, 3), (0, 2, 0)]
    assert rows_a == rows_b
    orders_ = {r[0][1]: dict(r) for r in rows_a["orders"]}
    assert orders_["o000"]["status"] == "refunded" and orders_["o001"]["channel"] == ""
    assert (
        orders_["o003"]["channel"] is None and orders_["o002"]["channel"] == '淘宝, "tmall"\nshop'
    )
    assert orders_["o007"]["ordered_at"] == datetime(2026, 3, 1, 23, 59, 59, 123456, tzinfo=UTC)
    assert orders_["o007"]["amount"] == Decimal("1241.5678")
    people_ = {r[0][1]: dict(r) for r in rows_a["customers"]}
    assert (people_["c1"]["name"], people_["c1"]["phone"]) == ("张三", "139")
    lines_ = {(r[0][1], r[1][1]): dict(r) for r in rows_a["order_lines"]}
    assert lines_[("o000", 1)]["product_name"] == "换了" and ("o000", 2) not in lines_
    assert (
        lines_[("o002", 2)]["quantity"] == 0
        and lines_[("o002", 1)]["product_name"] == 'Tea, "green"'
    )
