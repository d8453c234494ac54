"""The bulk-import fast paths give the same results as the plain ones."""

from __future__ import annotations

import ctypes
import sqlite3
import sys
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest

from huitouke.app.imports import no_transparent_huge_pages
from huitouke.importing import read_orders
from huitouke.importing.convert import parse_money
from huitouke.store.orders_repo import _ROWS, _insert_rows


@pytest.mark.parametrize("n", [0, 1, 99, 100, 101, 250])
def test_insert_rows_writes_every_row_in_multi_row_statements(n: int) -> None:
    con = sqlite3.connect(":memory:")
    con.execute("CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER, w TEXT)")
    cur = con.cursor()
    keys = [f"k{i:04d}" for i in range(n)]
    sql = (
        f"INSERT INTO t (k, v, w) VALUES {_ROWS} "
        "ON CONFLICT (k) DO UPDATE SET v = excluded.v WHERE excluded.v > t.v"
    )
    assert _insert_rows(cur, sql, "(?, ?, 'x')", [keys, list(range(n))]) == n
    assert con.execute("SELECT k, v, w FROM t ORDER BY k").fetchall() == [
        (k, i, "x") for i, k in enumerate(keys)
    ]
    # the conflict clause still applies row by row: only the rows whose v grows change
    changed = _insert_rows(cur, sql, "(?, ?, 'x')", [keys, [i + (i % 2) for i in range(n)]])
    assert changed == n // 2
    assert con.execute("SELECT sum(v) FROM t").fetchone()[0] == (
        sum(i + (i % 2) for i in range(n)) if n else None
    )


def test_money_fast_path_equals_the_rounding_path() -> None:
    exact, bad = parse_money(pa.array(["1.5", "0.0001", "17850", None]))
    assert exact.to_pylist() == [Decimal("1.5000"), Decimal("0.0001"), Decimal("17850.0000"), None]
    assert not bad.any()
    rounded, bad = parse_money(pa.array(["22.200000000000003", "0.00005", "1.5"]))
    assert rounded.to_pylist() == [Decimal("22.2000"), Decimal("0.0001"), Decimal("1.5000")]
    assert not bad.any()


def test_empty_status_is_paid_in_a_large_file(tmp_path: Path) -> None:
    # ≥ 10,000 rows: statuses are mapped once per distinct text, the empty text included
    n = 12_000
    rows = [
        f"o{i},c{i % 97},2024-03-01 10:00:00,10.00,{['paid', '', 'refunded', ' Paid '][i % 4]}"
        for i in range(n)
    ]
    p = tmp_path / "big.csv"
    p.write_text("order_id,customer_id,ordered_at,amount,status\n" + "\n".join(rows) + "\n")
    res = read_orders(p)
    assert res.rejects == [] and res.orders.num_rows == n
    by_id = {r["order_id"]: r["status"] for r in res.orders.to_pylist()}
    assert [by_id[f"o{i}"] for i in range(4)] == ["paid", "paid", "refunded", "paid"]


@pytest.mark.skipif(sys.platform != "linux", reason="prctl is Linux-only")
def test_huge_pages_are_off_during_an_import_and_restored_after() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    get_thp_disable = 42
    if libc.prctl(get_thp_disable, 0, 0, 0, 0) != 0:
        pytest.skip("transparent huge pages are already disabled for this process")
    with no_transparent_huge_pages():
        assert libc.prctl(get_thp_disable, 0, 0, 0, 0) == 1
    assert libc.prctl(get_thp_disable, 0, 0, 0, 0) == 0


def test_few_values_pylist_equals_to_pylist() -> None:
    from huitouke.store.orders_repo import _few_values_pylist

    few = pa.chunked_array([pa.array(["paid", None, "refunded"] * 50), pa.array(["paid", None])])
    assert _few_values_pylist(few) == few.to_pylist()
    many = pa.array([f"c{i}" for i in range(100)] + [None])
    assert _few_values_pylist(many) == many.to_pylist()
