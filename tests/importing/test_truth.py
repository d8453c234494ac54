"""`huitouke import` tells the truth about what it read: order identity, encodings, amounts,
dates, offsets, the rejects summary and --strict — through the CLI, on files shaped like
real exports (made here)."""

from __future__ import annotations

import csv
import json
import random
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from huitouke.cli.main import main
from huitouke.store.db import Store


@pytest.fixture(autouse=True)
def _english(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    from huitouke.settings import get_settings

    monkeypatch.setenv("HUITOUKE_LANG", "en")
    monkeypatch.setenv("HUITOUKE_TIMEZONE", "Asia/Shanghai")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


class Cli:
    def __init__(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        self.url = f"sqlite:///{tmp_path / 'shop.db'}"
        self.capsys = capsys
        self.tmp = tmp_path

    def __call__(self, *args: str) -> tuple[int, str, str]:
        argv = ["import", *args, "--database-url", self.url]
        code = 0
        try:
            main(argv)
        except SystemExit as exc:
            code = int(exc.code or 0)
        out = self.capsys.readouterr()
        return code, out.out, out.err

    def json(self, *args: str) -> dict[str, object]:
        code, out, err = self(*args, "--json")
        assert code == 0, err
        got: dict[str, object] = json.loads(out)
        return got

    def orders(self) -> dict[str, dict[str, object]]:
        return {r["order_id"]: r for r in Store(self.url).load_orders().to_pylist()}


@pytest.fixture
def cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Cli:
    return Cli(tmp_path, capsys)


def rejects(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8-sig", newline="") as fh:
        return list(csv.DictReader(fh))


def write(tmp_path: Path, name: str, text: str, encoding: str = "utf-8") -> Path:
    p = tmp_path / name
    p.write_bytes(text.encode(encoding))
    return p


# -- order identity --------------------------------------------------------------------------
def test_rows_sharing_an_id_with_other_customers_or_times_are_rejected_per_row(
    cli: Cli, tmp_path: Path
) -> None:
    f = write(
        tmp_path,
        "o.csv",
        "order_id,customer_id,ordered_at,amount,status\n"
        "A1,c1,2024-03-05 10:00,10,paid\n"  # line 2: A1 names c1 …
        "A1,c2,2024-03-05 10:00,10,paid\n"  # line 3: … and c2: two orders, one id
        "A2,c3,2024-03-05 10:00,20,paid\n"  # line 4: A2 at 10:00 …
        "A2,c3,2024-03-06 09:00,20,paid\n"  # line 5: … and the next day
        "A3,c4,2024-03-05 10:00,30,paid\n"
        "A3,c4,2024-03-05 10:00,30,paid\n"  # an identical export row: merged, not a collision
        "A4,c5,2024-03-05 10:00,40,paid\n"
        "A4,c5,2024-03-05 10:00,40,refunded\n"  # a later state of the same order
        "A5,c6,2024-03-05 10:00:59,50,paid\n"  # an order's rows stamped a minute apart
        "A5,c6,2024-03-05 10:01:02,50,paid\n",
    )
    rej = tmp_path / "rej.csv"
    s = cli.json(str(f), "--rejects", str(rej))
    assert s["orders_inserted"] == 3
    assert s["rows_rejected"] == 4
    assert s["rejects_by_reason"] == {"import.order_id_collision": 4}
    got = [(r["line"], r["value"], r["reason_code"]) for r in rejects(rej)]
    assert got == [
        ("2", "A1", "import.order_id_collision"),
        ("3", "A1", "import.order_id_collision"),
        ("4", "A2", "import.order_id_collision"),
        ("5", "A2", "import.order_id_collision"),
    ]
    reasons = {r["line"]: r["reason_en"] for r in rejects(rej)}
    assert "different customers" in reasons["2"] and "different order times" in reasons["4"]
    assert "--order-key" in reasons["2"]
    o = cli.orders()
    assert sorted(o) == ["A3", "A4", "A5"] and o["A4"]["status"] == "refunded"


def _pos_file(tmp_path: Path) -> Path:
    """A point-of-sale export: ticket numbers restart every day (13 tickets a day)."""
    rnd = random.Random(3)
    rows = ["date,store,ticket,member_id,amount"]
    n = 0
    day = 0
    while n < 1909:
        for ticket in range(1, 14):
            if n == 1909:
                break
            d = datetime(2024, 1, 1) + (day * (datetime(2024, 1, 2) - datetime(2024, 1, 1)))
            rows.append(f"{d:%Y-%m-%d},S1,{ticket},m{rnd.randrange(400)},{rnd.randrange(5, 300)}")
            n += 1
        day += 1
    return write(tmp_path, "pos.csv", "\n".join(rows) + "\n")


def test_point_of_sale_tickets_restarting_daily_are_not_13_orders(cli: Cli, tmp_path: Path) -> None:
    f = _pos_file(tmp_path)
    # --strict: the collisions refuse the file, nothing is stored
    code, _, err = cli(str(f), "--strict", "--rejects", str(tmp_path / "r.csv"))
    assert code == 2 and "import.rows_rejected" in err and "import.order_id_collision" in err
    assert Store(cli.url).load_orders().num_rows == 0
    assert len(rejects(tmp_path / "r.csv")) == 1909
    # without --strict: no row is silently merged — every colliding row is reported
    s = cli.json(str(f), "--rejects", str(tmp_path / "r2.csv"))
    assert s["orders_inserted"] == 0 and s["rows_rejected"] == 1909
    # the composite key makes every ticket of every day its own order
    s = cli.json(str(f), "--order-key", "date,store,ticket")
    assert s["orders_inserted"] == 1909 and s["rows_rejected"] == 0
    assert "2024-01-01|S1|1" in cli.orders()


def test_an_order_key_naming_a_missing_column_is_refused(cli: Cli, tmp_path: Path) -> None:
    f = _pos_file(tmp_path)
    code, _, err = cli(str(f), "--order-key", "date,shop,ticket")
    assert code == 2 and "import.bad_order_key" in err and "'shop'" in err


TAOBAO_HEADER = (
    "订单编号,买家会员名,买家支付宝账号,买家应付货款,买家实际支付金额,订单状态,"
    "订单创建时间,订单付款时间,宝贝标题,宝贝总数量,店铺名称\n"
)


def test_ids_in_scientific_notation_refuse_the_file_and_keep_the_store(
    cli: Cli, tmp_path: Path
) -> None:
    good = write(
        tmp_path,
        "taobao_ok.csv",
        "订单报表\n" + TAOBAO_HEADER + "3372145678901234567,小王,w@x.cn,99.00,99.00,交易成功,"
        "2024-03-05 10:00:00,2024-03-05 10:01:00,连衣裙,1,某店\n",
        "gbk",
    )
    assert cli.json(str(good))["orders_inserted"] == 1
    before = cli.orders()
    # the same export opened and re-saved in Excel: 19-digit ids became 3.37215E+18
    body = "".join(
        f"3.37215E+18,买家{i},b{i}@x.cn,{10 + i}.00,{10 + i}.00,交易成功,"
        f"2024-03-0{1 + i} 10:00:00,2024-03-0{1 + i} 10:01:00,T恤,1,某店\n"
        for i in range(5)
    )
    bad = write(tmp_path, "taobao_resaved.csv", "订单报表\n" + TAOBAO_HEADER + body, "gbk")
    code, _, err = cli(str(bad))
    assert code == 2 and "import.mangled_ids" in err
    assert "3.37215E+18" in err and "line 3" in err and "Text" in err and "订单编号" in err
    assert cli.orders() == before


def test_long_ids_cut_to_15_digits_refuse_the_file(cli: Cli, tmp_path: Path) -> None:
    body = "".join(
        f"{3372145678901230000 + i * 10_000_000_000_000},c{i},2024-03-05,10\n" for i in range(3)
    )
    f = write(tmp_path, "cut.csv", "order_id,customer_id,ordered_at,amount\n" + body)
    code, _, err = cli(str(f))
    assert code == 2 and "import.mangled_ids" in err and "15th digit" in err
    # real 19-digit ids (not all ending in zeros) are fine
    body = "".join(f"{3372145678901234567 + i},c{i},2024-03-05,10\n" for i in range(3))
    f = write(tmp_path, "ok.csv", "order_id,customer_id,ordered_at,amount\n" + body)
    assert cli.json(str(f))["orders_inserted"] == 3


# -- encodings -------------------------------------------------------------------------------
def _gbk_with_bad_byte(tmp_path: Path, bad_line: int, lines: int = 1200) -> tuple[Path, int]:
    rows = ["订单号,客户编号,下单时间,金额"]
    rows += [
        f"单{i},张三{i % 50},2024-01-{1 + i % 28:02d} 10:00,{i % 90 + 1}"
        for i in range(2, lines + 1)
    ]
    data = bytearray("\n".join(rows).encode("gbk") + b"\n")
    # a byte no GBK text has, in the customer field of the given line
    start = sum(len(r.encode("gbk")) + 1 for r in rows[: bad_line - 1])
    at = start + len(rows[bad_line - 1].split(",")[0].encode("gbk")) + 1
    data[at] = 0xFF
    p = tmp_path / "gbk_bad.csv"
    p.write_bytes(bytes(data))
    return p, at


def test_an_undecodable_line_is_rejected_with_its_line_and_byte(cli: Cli, tmp_path: Path) -> None:
    f, offset = _gbk_with_bad_byte(tmp_path, 1098)
    rej = tmp_path / "rej.csv"
    s = cli.json(str(f), "--rejects", str(rej))
    assert s["orders_inserted"] == 1198 and s["rows_rejected"] == 1
    (r,) = rejects(rej)
    assert r["line"] == "1098" and r["reason_code"] == "import.undecodable_line"
    assert r["value"] == "0xFF" and f"{offset:,}" in r["reason_en"] and "gb18030" in r["reason_en"]
    assert "单1099" in cli.orders() and "单1098" not in cli.orders()


def test_strict_refuses_an_undecodable_line_and_stores_nothing(cli: Cli, tmp_path: Path) -> None:
    f, _ = _gbk_with_bad_byte(tmp_path, 1098)
    rej = tmp_path / "rej.csv"
    code, _, err = cli(str(f), "--strict", "--rejects", str(rej))
    assert code == 2 and "import.rows_rejected" in err and "import.undecodable_line" in err
    assert [r["line"] for r in rejects(rej)] == ["1098"]
    assert Store(cli.url).load_orders().num_rows == 0


def test_a_file_in_the_wrong_encoding_is_refused_at_its_true_first_bad_byte(
    cli: Cli, tmp_path: Path
) -> None:
    rnd = random.Random(5)
    head = "order_id,customer_id,ordered_at,amount\n" + "".join(
        f"o{i},c{i},2024-01-01,1\n" for i in range(2, 30)
    )
    junk = bytes(rnd.randrange(0x80, 0x100) if i % 3 else 0x0A for i in range(6000))
    p = tmp_path / "junk.csv"
    p.write_bytes(head.encode() + junk)
    code, _, err = cli(str(p))
    assert code == 2 and "import.bad_encoding" in err and "--encoding" in err
    # the first byte GB18030 (the encoding that reads furthest) cannot decode, past line 30
    with pytest.raises(UnicodeDecodeError) as ei:
        p.read_bytes().decode("gb18030")
    line = p.read_bytes().count(b"\n", 0, ei.value.start) + 1
    assert line > 30 and f"at line {line} (byte offset {ei.value.start:,})" in err


def test_big5_is_recognised(cli: Cli, tmp_path: Path) -> None:
    rows = ["訂單編號,會員編號,下單時間,金額"]
    rows += [f"B{i},陳大文{i % 7},2024-02-{1 + i % 28:02d} 12:00,{100 + i}" for i in range(40)]
    f = write(tmp_path, "big5.csv", "\n".join(rows) + "\n", "big5")
    s = cli.json(str(f))  # traditional-Chinese headers are recognised too
    assert s["preset"] == "generic" and s["orders_inserted"] == 40
    assert cli.orders()["B3"]["customer_id"] == "陳大文3"


def test_utf16_without_bom_is_recognised_and_broken_utf16_refused(cli: Cli, tmp_path: Path) -> None:
    text = "order_id,customer_id,ordered_at,amount\n" + "".join(
        f"u{i},客户{i},2024-01-02 03:04,{i + 1}\n" for i in range(20)
    )
    f = write(tmp_path, "u16.csv", text, "utf-16-le")
    assert cli.json(str(f))["orders_inserted"] == 20
    broken = tmp_path / "u16bad.csv"
    data = b"\xff\xfe" + text.encode("utf-16-le")
    broken.write_bytes(data[:200] + b"\x00\xd8" + data[200:])  # a lone surrogate
    code, _, err = cli(str(broken))
    assert code == 2 and "import.bad_encoding" in err and "--encoding" in err


# -- amounts ---------------------------------------------------------------------------------
def test_decimal_commas_are_detected_per_column(cli: Cli, tmp_path: Path) -> None:
    f = write(
        tmp_path,
        "eu.csv",
        "order_id;customer_id;ordered_at;amount\n"
        'e1;c1;2024-03-05;"1.299,00"\n'
        "e2;c2;2024-03-05;12,5\n"
        "e3;c3;2024-03-05;1.299\n"  # in a decimal-comma column: one thousand two hundred …
        "e4;c4;2024-03-05;7\n",
    )
    assert cli.json(str(f))["orders_inserted"] == 4
    o = cli.orders()
    assert o["e1"]["amount"] == Decimal("1299")
    assert o["e2"]["amount"] == Decimal("12.5")
    assert o["e3"]["amount"] == Decimal("1299")
    assert o["e4"]["amount"] == Decimal("7")


def test_ambiguous_amounts_are_rejected_never_misread(cli: Cli, tmp_path: Path) -> None:
    f = write(
        tmp_path,
        "mixed.csv",
        "order_id,customer_id,ordered_at,amount\n"
        'm1,c1,2024-03-05,"1,299.00"\n'
        'm2,c2,2024-03-05,"12,50"\n'
        'm3,c3,2024-03-05,"1,299"\n'  # 1299 or 1.299? the column uses both conventions
        "m4,c4,2024-03-05,3\n",
    )
    rej = tmp_path / "rej.csv"
    s = cli.json(str(f), "--rejects", str(rej))
    assert s["rejects_by_reason"] == {"import.ambiguous_amount": 1}
    assert [(r["line"], r["value"]) for r in rejects(rej)] == [("4", "1,299")]
    o = cli.orders()
    assert o["m1"]["amount"] == Decimal("1299") and o["m2"]["amount"] == Decimal("12.5")
    # declared: a decimal comma reads 1.299 as 1299 and refuses a decimal-point value
    g = write(
        tmp_path,
        "declared.csv",
        "order_id,customer_id,ordered_at,amount\nd1,c1,2024-03-05,1.299\n"
        'd2,c2,2024-03-05,"1,299.00"\n',
    )
    s = cli.json(str(g), "--decimal-comma", "--rejects", str(rej))
    assert s["rejects_by_reason"] == {"import.ambiguous_amount": 1}
    assert cli.orders()["d1"]["amount"] == Decimal("1299")
    # declared: a decimal point refuses a decimal-comma value
    k = write(
        tmp_path,
        "point.csv",
        'order_id,customer_id,ordered_at,amount\nq1,c1,2024-03-05,1.299\nq2,c2,2024-03-05,"12,50"\n',
    )
    s = cli.json(str(k), "--decimal-point", "--rejects", str(rej))
    assert s["rejects_by_reason"] == {"import.ambiguous_amount": 1}
    assert cli.orders()["q1"]["amount"] == Decimal("1.299")
    code, _, err = cli(str(k), "--decimal-point", "--decimal-comma")
    assert code == 2 and "import.bad_option" in err
    # the default reading of a column without any comma is unchanged: 1.299 is 1.299
    h = write(
        tmp_path, "plain.csv", "order_id,customer_id,ordered_at,amount\np1,c,2024-03-05,1.299\n"
    )
    cli.json(str(h))
    assert cli.orders()["p1"]["amount"] == Decimal("1.299")


# -- dates -----------------------------------------------------------------------------------
def _dates_file(tmp_path: Path, name: str, values: list[str]) -> Path:
    """Orders ``<stem>-t0``, ``<stem>-t1`` … (each file its own orders: an order id that
    came back with another time would be refused as ``order.conflict``)."""
    stem = Path(name).stem
    body = "".join(f'{stem}-t{i},c{i},"{v}",1\n' for i, v in enumerate(values))
    return write(tmp_path, name, "order_id,customer_id,ordered_at,amount\n" + body)


def _at(cli: Cli, oid: str) -> datetime:
    v = cli.orders()[oid]["ordered_at"]
    assert isinstance(v, datetime)
    return v.astimezone(UTC)


def test_day_month_order_is_inferred_per_file(cli: Cli, tmp_path: Path) -> None:
    cli.json(str(_dates_file(tmp_path, "dmy.csv", ["05/03/2024 10:00", "25/03/2024 10:00"])))
    assert _at(cli, "dmy-t0") == datetime(2024, 3, 5, 2, 0, tzinfo=UTC)  # Shanghai 10:00
    cli.json(str(_dates_file(tmp_path, "mdy.csv", ["04/03/2024", "12/31/2024"])))
    assert _at(cli, "mdy-t0") == datetime(2024, 4, 2, 16, 0, tzinfo=UTC)
    cli.json(str(_dates_file(tmp_path, "dots.csv", ["7.3.2024", "28.2.2024"])))
    assert _at(cli, "dots-t0") == datetime(2024, 3, 6, 16, 0, tzinfo=UTC)


def test_a_file_whose_day_month_order_is_unclear_is_refused(cli: Cli, tmp_path: Path) -> None:
    f = _dates_file(tmp_path, "amb.csv", ["05/03/2024", "06/03/2024"])
    code, _, err = cli(str(f))
    assert code == 2 and "import.ambiguous_date_order" in err
    assert "'05/03/2024' (line 2)" in err and "--date-order" in err
    assert Store(cli.url).load_orders().num_rows == 0
    cli.json(str(f), "--date-order", "dmy")
    assert _at(cli, "amb-t1") == datetime(2024, 3, 5, 16, 0, tzinfo=UTC)
    g = _dates_file(tmp_path, "mix.csv", ["25/03/2024", "03/25/2024"])
    code, _, err = cli(str(g))
    assert code == 2 and "mix day-first and month-first" in err and "line 3" in err
    code, _, err = cli(str(f), "--date-order", "dym")
    assert code == 2 and "import.bad_option" in err


def test_twelve_hour_times_and_month_names(cli: Cli, tmp_path: Path) -> None:
    values = [
        "2024-03-05 8:26 PM",
        "2024/3/5 下午8:26:00",
        "2024/3/5 上午12:10",
        "March 5, 2024 9:15 a.m.",
        "5 Mar 2024 12:30 PM",
        "05-Mar-2024",
        "Tue, 5 Mar 2024 07:00",
        "2024年3月5日 下午 1:05",
    ]
    cli.json(str(_dates_file(tmp_path, "h12.csv", values)))
    sh = [_at(cli, f"h12-t{i}").replace(tzinfo=None) for i in range(len(values))]
    # Shanghai is UTC+8: local 20:26 is 12:26 UTC
    assert [f"{t:%Y-%m-%d %H:%M}" for t in sh] == [
        "2024-03-05 12:26",
        "2024-03-05 12:26",
        "2024-03-04 16:10",
        "2024-03-05 01:15",
        "2024-03-05 04:30",
        "2024-03-04 16:00",
        "2024-03-04 23:00",
        "2024-03-05 05:05",
    ]
    bad = _dates_file(tmp_path, "h13.csv", ["2024-03-05 14:00 AM", "2024-03-05 10:00"])
    rej = tmp_path / "rej.csv"
    s = cli.json(str(bad), "--rejects", str(rej))
    assert s["rejects_by_reason"] == {"import.bad_date": 1}


def test_excel_serial_dates_and_date_cells(cli: Cli, tmp_path: Path) -> None:
    openpyxl = pytest.importorskip("openpyxl")
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["有赞订单导出"])
    ws.append(["order_id", "customer_id", "ordered_at", "amount"])
    ws.append(["x1", "c1", 45356.5, 10])  # a date cell saved as a plain number
    ws.append(["x2", "c2", datetime(2024, 3, 6, 9, 30), 20])
    ws.append(["x3", "c3", "2024/3/7 下午3:00", 30])
    p = tmp_path / "dates.xlsx"
    wb.save(p)
    assert cli.json(str(p))["orders_inserted"] == 3
    assert _at(cli, "x1") == datetime(2024, 3, 5, 4, 0, tzinfo=UTC)  # 2024-03-05 12:00 local
    assert _at(cli, "x2") == datetime(2024, 3, 6, 1, 30, tzinfo=UTC)
    assert _at(cli, "x3") == datetime(2024, 3, 7, 7, 0, tzinfo=UTC)


# -- time zone -------------------------------------------------------------------------------
def test_offsets_unlike_the_merchant_zone_warn_and_say_how_to_set_it(
    cli: Cli, tmp_path: Path
) -> None:
    f = write(
        tmp_path,
        "us.csv",
        "order_id,customer_id,ordered_at,amount\n"
        "#1001,a@x.com,2024-03-05 20:15:00 -0500,10\n"
        "#1002,b@x.com,2024-07-05 20:15:00 -0400,10\n",
    )
    code, out, err = cli(str(f), "--json")
    assert code == 0
    s = json.loads(out)
    assert s["orders_inserted"] == 2
    (w,) = s["warnings"]
    assert "-05:00" in w and "-04:00" in w and "Asia/Shanghai" in w and "HUITOUKE_TIMEZONE" in w
    assert "warning:" in err
    # the instants are kept as written
    assert _at(cli, "#1001") == datetime(2024, 3, 6, 1, 15, tzinfo=UTC)
    same = write(
        tmp_path,
        "cn.csv",
        "order_id,customer_id,ordered_at,amount\nz1,c,2024-03-05 20:15:00+08:00,10\n",
    )
    assert cli.json(str(same))["warnings"] == []


# -- summary ---------------------------------------------------------------------------------
def test_summary_groups_rejects_by_reason_and_strict_exits_non_zero(
    cli: Cli, tmp_path: Path
) -> None:
    f = write(
        tmp_path,
        "r.csv",
        "order_id,customer_id,ordered_at,amount,status\n"
        "r1,c1,2024-01-01,10,paid\n"
        "r2,,2024-01-01,10,paid\n"
        "r3,,2024-01-01,10,paid\n"
        "r4,c4,someday,10,paid\n",
    )
    code, out, err = cli(str(f), "--dry-run")
    assert code == 0
    assert "rejected rows by reason:" in out
    assert "import.missing_customer_id: 2" in out and "import.bad_date: 1" in out
    code, out, err = cli(str(f), "--strict", "--dry-run")
    assert code == 2 and "import.rows_rejected" in err
    code, out, err = cli(str(f), "--strict")
    assert code == 2 and "3 rows rejected" in err
    assert Store(cli.url).load_orders().num_rows == 0
    assert (tmp_path / "r.rejects.csv").exists()
    ok = write(tmp_path, "ok.csv", "order_id,customer_id,ordered_at,amount\nk1,c1,2024-01-01,1\n")
    assert cli.json(str(ok), "--strict")["orders_inserted"] == 1


# -- Taobao item titles ----------------------------------------------------------------------
def test_taobao_titles_joined_in_one_cell_become_order_lines(cli: Cli, tmp_path: Path) -> None:
    header = (
        "订单编号,买家会员名,买家支付宝账号,买家应付货款,买家实际支付金额,订单状态,"
        "订单创建时间,订单付款时间,宝贝标题 ,宝贝种类 ,宝贝总数量,店铺名称\n"
    )
    rows = [
        # two items, one of each
        '"=""3372145678901234501""",tb_alice,a@x.cn,228.00,228.00,交易成功,2024-01-05 10:00:00,'
        '2024-01-05 10:01:00,"【明前】西湖龙井 250g 礼盒装，安吉白茶 100g",2,2,回头客茶铺',
        # the same tea again: product-level repurchase
        '"=""3372145678901234502""",tb_alice,a@x.cn,150.00,150.00,交易成功,2024-02-20 10:00:00,'
        "2024-02-20 10:01:00,安吉白茶 100g,1,3,回头客茶铺",
        # three items, five pieces: which item had the extra pieces is not in the report
        '"=""3372145678901234503""",tb_bob,b@x.cn,300.00,300.00,交易成功,2024-01-07 10:00:00,'
        '2024-01-07 10:01:00,"大红袍 100g，正山小种 100g，茉莉花茶 50g",3,5,回头客茶铺',
        # two items the cell does not separate: one line with the whole text, not a guess
        '"=""3372145678901234504""",tb_carol,c@x.cn,80.00,80.00,交易成功,2024-01-08 10:00:00,'
        "2024-01-08 10:01:00,普洱 熟茶 357g 饼 紧压,2,2,回头客茶铺",
    ]
    f = write(
        tmp_path, "ExportOrderList.csv", "订单报表\n" + header + "\n".join(rows) + "\n", "gbk"
    )
    s = cli.json(str(f))
    assert s["preset"] == "taobao" and s["orders_inserted"] == 4 and s["rows_rejected"] == 0
    import sqlite3

    con = sqlite3.connect(cli.url.removeprefix("sqlite:///"))
    got = con.execute(
        "SELECT substr(order_id, -2), line_no, sku, product_name, quantity FROM order_lines "
        "ORDER BY order_id, line_no"
    ).fetchall()
    con.close()
    assert got == [
        ("01", 1, "【明前】西湖龙井 250g 礼盒装", "【明前】西湖龙井 250g 礼盒装", 1),
        ("01", 2, "安吉白茶 100g", "安吉白茶 100g", 1),
        ("02", 1, "安吉白茶 100g", "安吉白茶 100g", 3),
        ("03", 1, "大红袍 100g", "大红袍 100g", 1),  # at least one of each
        ("03", 2, "正山小种 100g", "正山小种 100g", 1),
        ("03", 3, "茉莉花茶 50g", "茉莉花茶 50g", 1),
        ("04", 1, "普洱 熟茶 357g 饼 紧压", "普洱 熟茶 357g 饼 紧压", 2),
    ]
    from huitouke.journeys.associations import baskets_from_store

    baskets = baskets_from_store(Store(cli.url))
    alice = baskets[baskets["customer_id"] == "tb_alice"]
    repeat = alice.groupby(alice.columns[-1])["order_id"].nunique()
    assert repeat["安吉白茶 100g"] == 2  # the same product bought in two orders


def test_the_shop_zone_is_recorded_with_the_first_import(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from huitouke.settings import get_settings
    from huitouke.store.shop_profile import shop_zone

    f = write(tmp_path, "a.csv", "order_id,customer_id,ordered_at,amount\na1,c1,2024-03-05,1\n")
    s = cli.json(str(f))
    assert s["shop_zone"] == "Asia/Shanghai" and s["warnings"] == []
    assert shop_zone(Store(cli.url)) == "Asia/Shanghai"
    # a later import under another zone keeps the recorded one and says so
    monkeypatch.setenv("HUITOUKE_TIMEZONE", "Europe/London")
    get_settings.cache_clear()
    g = write(tmp_path, "b.csv", "order_id,customer_id,ordered_at,amount\nb1,c1,2024-03-06,1\n")
    s = cli.json(str(g))
    assert s["shop_zone"] == "Asia/Shanghai"
    (w,) = s["warnings"]
    assert "Asia/Shanghai" in w and "Europe/London" in w and "HUITOUKE_TIMEZONE" in w
    assert shop_zone(Store(cli.url)) == "Asia/Shanghai"


@pytest.mark.parametrize(
    ("value", "local"),
    [
        ("2024-03-05 09:07:30", "2024-03-05 09:07:30"),
        ("2024-03-05 09:07:30.250000", "2024-03-05 09:07:30.250000"),
        ("2024-03-05", "2024-03-05 00:00:00"),
        ("2024/3/5 9:07", "2024-03-05 09:07:00"),
        ("2024.03.05 09:07", "2024-03-05 09:07:00"),
        ("2024年3月5日 9:07", "2024-03-05 09:07:00"),
        ("2024-03-05T09:07:00", "2024-03-05 09:07:00"),
        ("20240305", "2024-03-05 00:00:00"),
        ("3/25/2024 9:07", "2024-03-25 09:07:00"),
        ("25/3/2024 9:07", "2024-03-25 09:07:00"),
        ("25.3.2024", "2024-03-25 00:00:00"),
        ("25-Mar-2024 9:07 PM", "2024-03-25 21:07:00"),
        ("Monday, March 25, 2024", "2024-03-25 00:00:00"),
        ("2024/3/25 下午9:07:00", "2024-03-25 21:07:00"),
        ("2024-03-25 12:05 AM", "2024-03-25 00:05:00"),
    ],
)
def test_every_documented_date_shape_reads(value: str, local: str, tmp_path: Path) -> None:
    from zoneinfo import ZoneInfo

    from huitouke.importing import read_orders

    p = write(tmp_path, "d.csv", f'order_id,customer_id,ordered_at,amount\nx,c,"{value}",1\n')
    res = read_orders(p, timezone="Asia/Shanghai")
    assert res.rejects == []
    got = res.orders.column("ordered_at")[0].as_py().astimezone(ZoneInfo("Asia/Shanghai"))
    assert f"{got:%Y-%m-%d %H:%M:%S}" + (f".{got:%f}" if got.microsecond else "") == local


def test_a_utf8_file_with_a_stray_byte_stays_utf8(cli: Cli, tmp_path: Path) -> None:
    rows = ["订单号,客户编号,下单时间,金额"]
    rows += [f"单{i},王五{i},2024-01-02 10:00,{i}" for i in range(2, 80)]
    data = bytearray("\n".join(rows).encode("utf-8") + b"\n")
    at = data.index("单50,".encode()) + len("单50,".encode())
    data[at] = 0xB0  # one byte of a hand edit in another encoding
    f = tmp_path / "u8.csv"
    f.write_bytes(bytes(data))
    rej = tmp_path / "rej.csv"
    s = cli.json(str(f), "--rejects", str(rej))
    assert s["orders_inserted"] == 77
    (r,) = rejects(rej)
    assert r["line"] == "50" and "utf-8" in r["reason_en"]
    assert cli.orders()["单51"]["customer_id"] == "王五51"  # not read as GB18030 mojibake
