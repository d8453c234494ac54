"""Reading files: formats, encodings, presets, validation and rejects (no database)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from huitouke.core.orders import ORDERS_SCHEMA
from huitouke.data import CDNOW_MASTER, CDNOW_SAMPLE
from huitouke.errors import HuitoukeError, ImportFileError
from huitouke.importing import PRESETS, read_orders

GENERIC = (
    "order_id,customer_id,ordered_at,amount,status\n"
    "o1,c1,2024-01-31 23:59:00,100.00,paid\n"
    "o2,c1,2024-02-01 00:00:00,50.5,refunded\n"
    "o3,c2,2024-02-01 08:00:00,20,cancelled\n"
)


def write(tmp_path: Path, name: str, text: str, encoding: str = "utf-8") -> Path:
    p = tmp_path / name
    p.write_bytes(text.encode(encoding))
    return p


def by_id(table: pa.Table) -> dict[str, dict[str, object]]:
    return {r["order_id"]: r for r in table.to_pylist()}


def test_generic_is_detected_and_parsed(tmp_path: Path) -> None:
    res = read_orders(write(tmp_path, "orders.csv", GENERIC), timezone="Asia/Shanghai")
    assert res.preset == "generic"
    assert res.orders.schema == ORDERS_SCHEMA
    o = by_id(res.orders)
    # 23:59 on Jan 31 in Shanghai is 15:59 UTC
    assert o["o1"]["ordered_at"] == datetime(2024, 1, 31, 15, 59, tzinfo=UTC)
    assert o["o1"]["amount"] == Decimal("100.0000")
    assert o["o2"]["status"] == "refunded"
    assert o["o2"]["refunded_amount"] == Decimal("50.5000")  # refunded without amount: all
    assert o["o3"]["status"] == "cancelled"
    assert o["o1"]["currency"] == "CNY"
    assert res.rejects == []


def test_chinese_headers_bom_and_mapping(tmp_path: Path) -> None:
    text = (
        "订单号,会员号,下单时间,实付金额,订单状态,门店\n"
        'A1,m9,2024/3/5 9:07,"1,288.50",已完成,南京西路店\n'
    )
    p = write(tmp_path, "zh.csv", "\ufeff" + text)
    res = read_orders(p)
    o = by_id(res.orders)["A1"]
    assert o["customer_id"] == "m9"
    assert o["amount"] == Decimal("1288.5000")
    assert o["channel"] == "南京西路店"
    assert o["ordered_at"] == datetime(2024, 3, 5, 1, 7, tzinfo=UTC)
    # an explicit mapping overrides detection
    text2 = "单据,客户,日子,钱\nA1,m9,2024-03-05,10\n"
    res2 = read_orders(
        write(tmp_path, "m.csv", text2),
        "generic",
        mapping={"单据": "order_id", "客户": "customer_id", "日子": "ordered_at", "钱": "amount"},
    )
    assert by_id(res2.orders)["A1"]["amount"] == Decimal("10.0000")
    # a mapping without a preset means generic
    res3 = read_orders(
        tmp_path / "m.csv",
        mapping={"单据": "order_id", "客户": "customer_id", "日子": "ordered_at", "钱": "amount"},
    )
    assert res3.preset == "generic" and res3.orders.num_rows == 1


def test_gbk_file_is_decoded(tmp_path: Path) -> None:
    text = "订单号,客户编号,下单时间,金额\n单1,张三,2024-01-01 10:00,99.9\n"
    res = read_orders(write(tmp_path, "gbk.csv", text, "gbk"))
    assert res.encoding == "gb18030"
    assert by_id(res.orders)["单1"]["customer_id"] == "张三"


def test_undecodable_line_is_rejected_and_an_unreadable_header_names_offset_and_line(
    tmp_path: Path,
) -> None:
    p = tmp_path / "bad.csv"
    p.write_bytes(
        b"order_id,customer_id,ordered_at,amount\no1,c1,2024-01-01,1\n\xff\xfe\xff\x00\x81\n"
    )
    res = read_orders(p)
    assert [(r.line, r.reason_code, r.value) for r in res.rejects] == [
        (3, "import.undecodable_line", "0xFF")
    ]
    assert res.orders.num_rows == 1 and res.rows_read == 2
    q = tmp_path / "badhead.csv"
    q.write_bytes(b"order_id,customer_id,ordered_at,amount\xff\no1,c1,2024-01-01,1\n")
    with pytest.raises(ImportFileError) as ei:
        read_orders(q)
    assert ei.value.code == "import.bad_encoding"
    assert ei.value.details["line"] == 1 and ei.value.details["byte_offset"] == 38
    assert "badhead.csv" in ei.value.message


def test_empty_and_header_only_files(tmp_path: Path) -> None:
    with pytest.raises(ImportFileError) as ei:
        read_orders(write(tmp_path, "e.csv", "\n  \n"))
    assert ei.value.code == "import.empty_file"
    with pytest.raises(ImportFileError) as ei:
        read_orders(write(tmp_path, "h.csv", "order_id,customer_id,ordered_at,amount\n"))
    assert ei.value.code == "import.empty_file"


def test_missing_columns_name_the_fields_and_list_the_columns(tmp_path: Path) -> None:
    p = write(tmp_path, "x.csv", "order_id,customer_id,amount\no1,c1,5\n")
    with pytest.raises(ImportFileError) as ei:
        read_orders(p, "generic")
    e = ei.value
    assert e.code == "import.missing_columns"
    assert e.details["missing"] == ["ordered_at"]
    assert e.details["columns_found"] == ["order_id", "customer_id", "amount"]
    with pytest.raises(ImportFileError) as ei:
        read_orders(write(tmp_path, "y.csv", "foo,bar\n1,2\n"))
    assert ei.value.code == "import.unknown_format"


def test_rejects_report_line_field_and_reason(tmp_path: Path) -> None:
    text = (
        "order_id,customer_id,ordered_at,amount,status\n"
        "o1,c1,2024-01-01,10,paid\n"
        "\n"  # blank lines do not shift the line numbers
        "o2,,2024-01-02,10,paid\n"
        "o3,c3,2024-13-40,10,paid\n"
        'o4,c4,2024-01-04,"ten",paid\n'
        "o5,c5,2024-01-05,-3,paid\n"
        "o6,c6,yesterday,4,paid\n"
        "o7,c7,2024-01-07,4,pending\n"
        "o8,c8,2024-01-08,4,shipped-ish\n"
        '"o9","c9","2024-01-09","7",paid\n'
    )
    res = read_orders(write(tmp_path, "r.csv", text))
    assert sorted(by_id(res.orders)) == ["o1", "o9"]
    got = [(r.line, r.field, r.reason_code) for r in res.rejects]
    assert got == [
        (4, "customer_id", "import.missing_customer_id"),
        (5, "ordered_at", "import.bad_date"),
        (6, "amount", "import.bad_amount"),
        (7, "amount", "import.negative_amount"),
        (8, "ordered_at", "import.bad_date"),
        (9, "status", "import.unpaid"),
        (10, "status", "import.unknown_status"),
    ]
    r = res.rejects[0]
    assert r.file == "r.csv" and r.reason_en and r.reason_zh != r.reason_en


def test_line_numbers_survive_quoted_newlines(tmp_path: Path) -> None:
    text = (
        "order_id,customer_id,ordered_at,amount,product_name\n"
        'o1,c1,2024-01-01,1,"two\nlines"\n'
        "o2,c2,2024-01-02,x,plain\n"
    )
    res = read_orders(write(tmp_path, "q.csv", text))
    assert [(r.line, r.field) for r in res.rejects] == [(4, "amount")]


def test_dates_offsets_and_shapes(tmp_path: Path) -> None:
    text = (
        "order_id,customer_id,ordered_at,amount\n"
        "a,c,2024-01-31T23:59:00+08:00,1\n"
        "b,c,2024-01-31 10:00:00 -0400,1\n"
        "c,c,2024-01-31T10:00:00.250Z,1\n"
        "d,c,20240131,1\n"
        "e,c,2024年1月31日 8:05,1\n"
    )
    o = by_id(read_orders(write(tmp_path, "d.csv", text), timezone="Europe/London").orders)
    assert o["a"]["ordered_at"] == datetime(2024, 1, 31, 15, 59, tzinfo=UTC)
    assert o["b"]["ordered_at"] == datetime(2024, 1, 31, 14, 0, tzinfo=UTC)
    assert o["c"]["ordered_at"] == datetime(2024, 1, 31, 10, 0, 0, 250000, tzinfo=UTC)
    assert o["d"]["ordered_at"] == datetime(2024, 1, 31, 0, 0, tzinfo=UTC)  # London = UTC in Jan
    assert o["e"]["ordered_at"] == datetime(2024, 1, 31, 8, 5, tzinfo=UTC)


def test_spreadsheet_guards_and_tsv(tmp_path: Path) -> None:
    text = 'order_id\tcustomer_id\tordered_at\tamount\n="3372145678901234567"\t\'0012\t2024-05-01\t¥88.00\n'
    res = read_orders(write(tmp_path, "t.tsv", text))
    o = res.orders.to_pylist()[0]
    assert o["order_id"] == "3372145678901234567"
    assert o["customer_id"] == "0012"
    assert o["amount"] == Decimal("88.0000")


def test_duplicate_rows_merge_and_later_state_wins(tmp_path: Path) -> None:
    text = (
        "order_id,customer_id,ordered_at,amount,status,refunded_amount\n"
        "o1,c1,2024-01-01,100,paid,0\n"
        "o1,c1,2024-01-01,100,paid,0\n"  # identical export row: counted once
        "o2,c1,2024-01-02,100,partially_refunded,30\n"
        "o2,c1,2024-01-02,100,paid,0\n"  # an older state later in the file does not win
    )
    res = read_orders(write(tmp_path, "dup.csv", text))
    o = by_id(res.orders)
    assert res.orders.num_rows == 2
    assert o["o1"]["amount"] == Decimal("100.0000")
    assert o["o2"]["status"] == "partially_refunded"
    assert o["o2"]["refunded_amount"] == Decimal("30.0000")


def test_refund_above_amount_is_rejected(tmp_path: Path) -> None:
    text = "order_id,customer_id,ordered_at,amount,refunded_amount\no1,c1,2024-01-01,10,11\n"
    res = read_orders(write(tmp_path, "ref.csv", text))
    assert res.orders.num_rows == 0
    assert [r.reason_code for r in res.rejects] == ["import.refund_exceeds_amount"]


def test_generic_line_level_file_sums_lines(tmp_path: Path) -> None:
    text = (
        "order_id,customer_id,ordered_at,sku,product_name,category,quantity,unit_price\n"
        "o1,c1,2024-01-01,S1,Tea,drinks,2,3.5\n"
        "o1,c1,2024-01-01,S2,Cake,food,1,10\n"
        "o2,c2,2024-01-02,S1,Tea,drinks,1,3.5\n"
    )
    res = read_orders(write(tmp_path, "lines.csv", text))
    o = by_id(res.orders)
    assert o["o1"]["amount"] == Decimal("17.0000")
    assert res.lines is not None
    lines = sorted(
        (r["order_id"], r["line_no"], r["sku"], r["quantity"]) for r in res.lines.to_pylist()
    )
    assert lines == [("o1", 1, "S1", 2), ("o1", 2, "S2", 1), ("o2", 1, "S1", 1)]


def test_excel_with_title_rows_and_extra_header(tmp_path: Path) -> None:
    import openpyxl

    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["门店销售报表 2024年1月"])
    ws.append([])
    ws.append(["订单号", "客户编号", "下单时间", "金额"])
    ws.append(["X1", 17850.0, datetime(2024, 1, 2, 9, 30), 12.5])
    ws.append(["X2", "c2", "2024-01-03", "oops"])
    p = tmp_path / "report.xlsx"
    wb.save(p)
    res = read_orders(p)
    assert by_id(res.orders)["X1"]["customer_id"] == "17850"
    assert by_id(res.orders)["X1"]["ordered_at"] == datetime(2024, 1, 2, 1, 30, tzinfo=UTC)
    assert [(r.line, r.field) for r in res.rejects] == [(5, "amount")]

    wb2 = openpyxl.Workbook()
    ws2 = wb2.active
    ws2.append(["订单号", "客户编号", "下单时间", "金额"])
    ws2.append(["order_id", "customer_id", "ordered_at", "amount"])
    ws2.append(["X1", "c", "2024-01-02", 1])
    p2 = tmp_path / "two_headers.xlsx"
    wb2.save(p2)
    with pytest.raises(ImportFileError) as ei:
        read_orders(p2)
    assert ei.value.code == "import.extra_header_rows"
    assert ei.value.details["line"] == 2


def test_parquet_with_typed_columns(tmp_path: Path) -> None:
    t = pa.table(
        {
            "order_id": ["p1", "p2"],
            "customer_id": [1, 2],
            "ordered_at": pa.array(
                [datetime(2024, 1, 1, 12, tzinfo=UTC), datetime(2024, 1, 2, 12, tzinfo=UTC)],
                pa.timestamp("us", tz="UTC"),
            ),
            "amount": pa.array([Decimal("1.25"), Decimal("2")], pa.decimal128(10, 2)),
        }
    )
    p = tmp_path / "o.parquet"
    pq.write_table(t, p)
    res = read_orders(p)
    o = by_id(res.orders)
    assert o["p1"]["customer_id"] == "1"
    assert o["p1"]["ordered_at"] == datetime(2024, 1, 1, 12, tzinfo=UTC)
    assert o["p2"]["amount"] == Decimal("2.0000")


def test_cdnow_master_and_sample_name_transactions_alike() -> None:
    master = read_orders(CDNOW_MASTER)
    sample = read_orders(CDNOW_SAMPLE)
    assert master.preset == sample.preset == "cdnow"
    assert master.orders.num_rows == 69_659
    assert sample.orders.num_rows == 6_919
    assert len(set(master.orders.column("customer_id").to_pylist())) == 23_570
    m = by_id(master.orders)
    for row in sample.orders.to_pylist():
        assert m[row["order_id"]] == row
    # dates are merchant-zone midnights (default Asia/Shanghai)
    first = m["00001-1"]
    assert first["ordered_at"] == datetime(1996, 12, 31, 16, 0, tzinfo=UTC)
    assert first["amount"] == Decimal("11.7700") and first["currency"] == "USD"


def test_online_retail_invoices_shared_data(shared_online_retail: Path) -> None:
    res = read_orders(shared_online_retail)
    assert res.preset == "online-retail"
    assert res.orders.num_rows == 18_532
    assert len(set(res.orders.column("customer_id").to_pylist())) == 4_338
    o = by_id(res.orders)
    assert o["536366"]["amount"] == Decimal("22.2000")  # 22.200000000000003 in the file
    assert o["536365"]["ordered_at"] == datetime(2010, 12, 1, 0, 0, tzinfo=UTC)
    assert {r["currency"] for r in res.orders.to_pylist()} == {"GBP"}


def test_online_retail_line_level_original(tmp_path: Path) -> None:
    text = (
        "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"
        "536365,85123A,WHITE HANGING HEART T-LIGHT HOLDER,6,12/1/2010 8:26,2.55,17850,United Kingdom\n"
        "536365,71053,WHITE METAL LANTERN,6,12/1/2010 8:26,3.39,17850,United Kingdom\n"
        "536365,71053,WHITE METAL LANTERN,6,12/1/2010 8:26,3.39,17850,United Kingdom\n"
        "536414,22139,,56,12/1/2010 11:52,0,,United Kingdom\n"
        "C536379,D,Discount,-1,12/1/2010 9:41,27.5,14527,United Kingdom\n"
        "A563185,B,Adjust bad debt,1,8/12/2011 14:50,-11062.06,,United Kingdom\n"
        "536367,84879,BIRD ORNAMENT,32,7/1/2011 10:00,1.69,13047,United Kingdom\n"
    )
    res = read_orders(write(tmp_path, "Online Retail.csv", text))
    o = by_id(res.orders)
    # the exact duplicate line counts once: 6 × 2.55 + 6 × 3.39
    assert o["536365"]["amount"] == Decimal("35.6400")
    assert o["536365"]["ordered_at"] == datetime(2010, 12, 1, 8, 26, tzinfo=UTC)
    # July is BST (UTC+1) in the UK zone
    assert o["536367"]["ordered_at"] == datetime(2011, 7, 1, 9, 0, tzinfo=UTC)
    assert o["C536379"]["status"] == "cancelled"
    assert o["C536379"]["amount"] == Decimal("27.5000")
    assert {(r.line, r.field) for r in res.rejects} == {(5, "customer_id"), (7, "customer_id")}
    assert res.lines is not None and res.lines.num_rows == 4


def test_presets_are_the_documented_ones() -> None:
    assert list(PRESETS) == [
        "generic", "cdnow", "online-retail", "taobao", "youzan", "shopify",
        "pinduoduo", "douyin", "jd", "kuaishou", "wechat",
    ]  # fmt: skip


def test_bad_mapping_and_unknown_preset(tmp_path: Path) -> None:
    p = write(tmp_path, "o.csv", GENERIC)
    with pytest.raises(HuitoukeError) as ei:
        read_orders(p, "nope")
    assert ei.value.code == "import.unknown_preset"
    with pytest.raises(ImportFileError) as ei:
        read_orders(p, "generic", mapping={"missing": "order_id"})
    assert ei.value.code == "import.bad_mapping"
