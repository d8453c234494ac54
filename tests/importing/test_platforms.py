"""Presets for 拼多多, 抖店, 京东, 快手小店 and 微信小店 — files shaped like their exports (made
here: GBK or UTF-8 CSV, xlsx), imported through `huitouke import` and detected from their
headers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from huitouke.cli.main import main
from huitouke.importing import PRESETS
from huitouke.store.db import Store


@pytest.fixture(autouse=True)
def _english(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    from huitouke.settings import get_settings

    monkeypatch.setenv("HUITOUKE_LANG", "en")
    monkeypatch.setenv("HUITOUKE_TIMEZONE", "Asia/Shanghai")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def run(tmp_path: Path, capsys: pytest.CaptureFixture[str], f: Path) -> dict[str, object]:
    url = f"sqlite:///{tmp_path / 'shop.db'}"
    main(["import", str(f), "--database-url", url, "--json", "--rejects", str(tmp_path / "r.csv")])
    out: dict[str, object] = json.loads(capsys.readouterr().out)
    out["_orders"] = {r["order_id"]: r for r in Store(url).load_orders().to_pylist()}
    return out


def orders(s: dict[str, object]) -> dict[str, dict[str, object]]:
    o = s["_orders"]
    assert isinstance(o, dict)
    return o


def write(tmp_path: Path, name: str, text: str, encoding: str = "utf-8") -> Path:
    p = tmp_path / name
    p.write_bytes(text.encode(encoding))
    return p


def test_the_presets_are_registered() -> None:
    assert list(PRESETS) == [
        "generic", "cdnow", "online-retail", "taobao", "youzan", "shopify",
        "pinduoduo", "douyin", "jd", "kuaishou", "wechat",
    ]  # fmt: skip


def test_pinduoduo(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    head = (
        "商品,订单号,订单状态,商品总价(元),店铺优惠折扣(元),平台优惠折扣(元),用户实付金额(元),"
        "商家实收金额(元),商品数量(件),收货人,手机,订单成交时间,商品id,商品规格,样式ID,"
        "商家编码-SKU维度,售后状态,快递单号,快递公司\n"
    )
    rows = [
        "五常大米 5kg,240305-123456789012345,已签收,59.90,5.00,0.00,54.90,54.90,1,王芳,"
        "138****0001,2024-03-05 10:00:00,3001,5kg,77,DM-5,无售后或售后取消,YT1,圆通",
        '五常大米 5kg,240405-123456789012346,"已发货，待签收",59.90,0.00,0.00,59.90,59.90,1,王芳,'
        "138****0001,2024-04-05 09:00:00,3001,5kg,77,DM-5,无售后或售后取消,YT2,圆通",
        '东北小米 2kg,240306-123456789012347,"未发货，退款成功",29.90,0.00,0.00,29.90,29.90,1,李强,'
        "139****0002,2024-03-06 11:00:00,3002,2kg,78,XM-2,退款成功,,",
        "东北小米 2kg,240307-123456789012348,待支付,29.90,0.00,0.00,29.90,29.90,1,赵六,"
        "137****0003,2024-03-07 11:00:00,3002,2kg,78,XM-2,无售后或售后取消,,",
        # another buyer with the same masked number: kept apart by the name
        "东北小米 2kg,240308-123456789012349,已签收,29.90,0.00,0.00,29.90,29.90,2,孙七,"
        "138****0001,2024-03-08 11:00:00,3002,2kg,78,XM-2,无售后或售后取消,YT3,圆通",
    ]
    f = write(tmp_path, "拼多多订单.csv", head + "\n".join(rows) + "\n", "gbk")
    s = run(tmp_path, capsys, f)
    assert s["preset"] == "pinduoduo" and s["orders_inserted"] == 4
    assert s["rejects_by_reason"] == {"import.unpaid": 1}
    o = orders(s)
    first = o["240305-123456789012345"]
    assert first["customer_id"] == "王芳|138****0001" and first["amount"] == Decimal("54.90")
    assert first["channel"] == "pinduoduo"
    assert o["240306-123456789012347"]["status"] == "refunded"
    assert o["240308-123456789012349"]["customer_id"] == "孙七|138****0001"


def test_douyin_sub_orders_are_lines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    openpyxl = pytest.importorskip("openpyxl")
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["主订单编号", "子订单编号", "选购商品", "商品ID", "商家编码", "商品数量", "商品金额",
               "订单提交时间", "支付完成时间", "订单完成时间", "订单状态", "售后状态", "订单应付金额",
               "运费", "优惠总金额", "收件人", "收件人手机号"])  # fmt: skip
    ws.append(["6919000000000000001", "6919000000000000101", "冻干咖啡 24颗", "35001", "KF-24", 2,
               "99.80", "2024-03-05 20:15:00", "2024-03-05 20:15:30", "", "已完成", "-", "129.70",
               "0.00", "0.00", "陈晨", "186****1234"])  # fmt: skip
    ws.append(["6919000000000000001", "6919000000000000102", "挂耳咖啡 10包", "35002", "GE-10", 1,
               "29.90", "2024-03-05 20:15:00", "2024-03-05 20:15:30", "", "已完成", "-", "129.70",
               "0.00", "0.00", "陈晨", "186****1234"])  # fmt: skip
    ws.append(["6919000000000000002", "6919000000000000201", "冻干咖啡 24颗", "35001", "KF-24", 1,
               "49.90", "2024-04-01 08:00:00", "2024-04-01 08:00:10", "", "已关闭", "退款成功", "49.90",
               "0.00", "0.00", "陈晨", "186****1234"])  # fmt: skip
    p = tmp_path / "抖店订单.xlsx"
    wb.save(p)
    s = run(tmp_path, capsys, p)
    assert s["preset"] == "douyin" and s["orders_inserted"] == 2 and s["rows_rejected"] == 0
    o = orders(s)
    assert o["6919000000000000001"]["amount"] == Decimal("129.70")
    assert o["6919000000000000001"]["customer_id"] == "陈晨|186****1234"
    assert o["6919000000000000002"]["status"] == "refunded"
    import sqlite3

    con = sqlite3.connect(tmp_path / "shop.db")
    lines = con.execute(
        "SELECT line_no, sku, product_name, quantity FROM order_lines "
        "WHERE order_id = '6919000000000000001' ORDER BY line_no"
    ).fetchall()
    con.close()
    assert lines == [(1, "KF-24", "冻干咖啡 24颗", 2), (2, "GE-10", "挂耳咖啡 10包", 1)]


def test_jd(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    head = (
        "订单号,商品ID,商品名称,订购数量,支付方式,下单时间,京东价,订单金额,结算金额,应付金额,"
        "订单状态,订单类型,下单帐号,客户姓名,客户地址,联系电话,订单备注,付款确认时间,店铺名称\n"
    )
    rows = [
        "290000000001,100012,保温杯 500ml,1,在线支付,2024-03-05 10:00:00,129.00,129.00,119.00,"
        "119.00,完成,普通订单,jd_zhang,张*,北京***,138****0000,,2024-03-05 10:00:05,杯子旗舰店",
        "290000000002,100012,保温杯 500ml,1,在线支付,2024-03-06 10:00:00,129.00,129.00,129.00,"
        "129.00,等待出库,普通订单,jd_li,李*,上海***,139****0000,,2024-03-06 10:00:05,杯子旗舰店",
        "290000000003,100013,杯盖,1,在线支付,2024-03-06 11:00:00,19.00,19.00,19.00,19.00,"
        "(删除),普通订单,jd_li,李*,上海***,139****0000,,,杯子旗舰店",
        "290000000004,100013,杯盖,1,在线支付,2024-03-06 12:00:00,19.00,19.00,19.00,19.00,"
        "等待付款,普通订单,jd_wu,吴*,上海***,139****0009,,,杯子旗舰店",
    ]
    s = run(tmp_path, capsys, write(tmp_path, "jd.csv", head + "\n".join(rows) + "\n", "gbk"))
    assert s["preset"] == "jd" and s["orders_inserted"] == 3
    assert s["rejects_by_reason"] == {"import.unpaid": 1}
    o = orders(s)
    assert o["290000000001"]["customer_id"] == "jd_zhang"
    assert o["290000000001"]["amount"] == Decimal("119.00")
    assert o["290000000001"]["channel"] == "杯子旗舰店"
    assert o["290000000003"]["status"] == "cancelled"


def test_kuaishou(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = (
        "订单号,订单创建时间,支付时间,订单状态,商品名称,商品ID,SKU编码,商品单价,成交数量,实付款,"
        "买家ID,收货人姓名,收货人电话\n"
        "2403051000001,2024-03-05 19:00:00,2024-03-05 19:00:20,交易成功,辣条礼包,88001,LT-1,19.90,2,"
        "39.80,ks_1001,周*,136****0000\n"
        "2403061000002,2024-03-06 19:00:00,2024-03-06 19:00:20,交易关闭,辣条礼包,88001,LT-1,19.90,1,"
        "19.90,ks_1002,吴*,135****0000\n"
        "2403071000003,2024-03-07 19:00:00,,待付款,辣条礼包,88001,LT-1,19.90,1,19.90,ks_1003,郑*,"
        "134****0000\n"
    )
    s = run(tmp_path, capsys, write(tmp_path, "ks.csv", text))
    assert s["preset"] == "kuaishou" and s["orders_inserted"] == 2
    o = orders(s)
    assert o["2403051000001"]["customer_id"] == "ks_1001"
    assert o["2403051000001"]["amount"] == Decimal("39.80")
    assert o["2403061000002"]["status"] == "cancelled"


def test_wechat_console_export_and_api_dump_in_fen(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = (
        "订单号,下单时间,订单状态,商品名称,SKU编码,商品数量,商品价格,订单实付金额,买家openid,"
        "收件人,收件人手机号\n"
        "3718000000001,2024-03-05 12:00:00,已完成,桂花乌龙 100g,GH-100,1,68.00,68.00,o_abc,钱*,"
        "133****0000\n"
        "3718000000002,2024-03-06 12:00:00,待发货,桂花乌龙 100g,GH-100,2,68.00,136.00,o_def,孙*,"
        "132****0000\n"
    )
    s = run(tmp_path, capsys, write(tmp_path, "wx.csv", text))
    assert s["preset"] == "wechat" and s["orders_inserted"] == 2
    assert orders(s)["3718000000002"]["amount"] == Decimal("136.00")
    # the order API flattened: prices in fen, Unix seconds, numeric status codes
    api = (
        "order_id,openid,create_time,status,title,sku_id,sku_cnt,sale_price,order_price\n"
        "3718000000003,o_abc,1709611200,100,桂花乌龙 100g,GH-100,1,6800,6800\n"
        "3718000000004,o_xyz,1709697600,250,桂花乌龙 100g,GH-100,1,6800,6800\n"
        "3718000000005,o_xyz,1709697700,10,桂花乌龙 100g,GH-100,1,6800,6800\n"
    )
    s = run(tmp_path, capsys, write(tmp_path, "wx_api.csv", api))
    o = orders(s)
    assert s["preset"] == "wechat" and s["orders_inserted"] == 2
    assert s["rejects_by_reason"] == {"import.unpaid": 1}
    assert o["3718000000003"]["amount"] == Decimal("68.00")
    assert o["3718000000003"]["status"] == "paid"
    assert o["3718000000004"]["status"] == "cancelled"
    when = o["3718000000003"]["ordered_at"]
    assert when is not None and when.timestamp() == 1709611200


def test_a_header_saying_fen_divides_by_100(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = (
        "订单号,订单创建时间,订单状态,实付款(分),买家ID,成交数量,收货人电话\n"
        "k1,2024-03-05 19:00:00,交易成功,3980,ks_1,1,136****0000\n"
    )
    s = run(tmp_path, capsys, write(tmp_path, "ks_fen.csv", text))
    assert s["preset"] == "kuaishou"
    assert orders(s)["k1"]["amount"] == Decimal("39.80")
