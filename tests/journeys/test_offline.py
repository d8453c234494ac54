"""Package-insert PDF (Chinese text and one QR per card) and call-back lists."""

from __future__ import annotations

import csv
import re
import shutil
import subprocess
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from openpyxl import load_workbook

from huitouke.journeys.offline import (
    callback_list,
    find_cjk_font,
    write_callback_list,
    write_insert_cards,
)
from huitouke.messaging.consent import unsubscribe
from huitouke.settings import Settings
from huitouke.store.db import Store
from huitouke.store.tables import customers, order_lines, orders, products

needs_font = pytest.mark.skipif(
    not Path("/usr/share/fonts/opentype/noto").is_dir() and shutil.which("fc-match") is None,
    reason="no CJK font installed (Debian fonts-noto-cjk; scripts/test.sh installs it)",
)


@needs_font
def test_insert_pdf_shows_chinese_and_one_qr_per_card(tmp_path: Path) -> None:
    if shutil.which("pdftotext") is None or shutil.which("pdfimages") is None:
        pytest.skip("poppler-utils missing (scripts/test.sh installs it)")
    find_cjk_font()
    codes = [f"CODE{i:06d}" for i in range(11)]
    out = write_insert_cards(
        tmp_path / "cards.pdf", "spring", codes, base_url="https://shop.example", lang="zh"
    )
    text = subprocess.run(
        ["pdftotext", str(out), "-"], capture_output=True, text=True, check=True
    ).stdout
    assert "感谢您的订单" in text and "扫码领取回购优惠券" in text
    for c in codes:
        assert c in text
    pages = subprocess.run(["pdfinfo", str(out)], capture_output=True, text=True, check=True).stdout
    assert re.search(r"^Pages:\s+2$", pages, re.M)  # 8 cards a page
    images = subprocess.run(
        ["pdfimages", "-list", str(out)], capture_output=True, text=True, check=True
    ).stdout
    assert len(images.strip().splitlines()) - 2 == len(codes)


def test_missing_font_setting_is_a_clear_error(tmp_path: Path) -> None:
    from huitouke.errors import ConfigError

    with pytest.raises(ConfigError, match="HUITOUKE_CJK_FONT"):
        find_cjk_font(str(tmp_path / "nope.ttf"))


def test_callback_list_csv_and_xlsx(store: Store, tmp_path: Path) -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    with store.begin() as conn:
        conn.execute(
            products.insert(),
            [
                {"sku": s, "name": n}
                for s, n in (("tea", "龙井茶"), ("cup", "茶杯"), ("pot", "茶壶"))
            ],
        )
        conn.execute(
            customers.insert(),
            [
                {
                    "customer_id": c,
                    "name": n,
                    "phone": p,
                    "tags": [],
                    "attributes": {},
                    "consent": {},
                    "created_at": now,
                    "updated_at": now,
                }
                for c, n, p in (
                    ("a", "张三", "13800000001"),
                    ("b", "李四", "13800000002"),
                    ("z", "王五", "13800000003"),
                )
            ],
        )
        rows = []
        lines = []
        # a and z: tea then cup (a sequence); b buys tea then pot; all last ordered ~120 days ago
        plan = [
            ("a", ["tea"], "2025-06-01"),
            ("a", ["cup"], "2025-09-01"),
            ("z", ["tea"], "2025-06-02"),
            ("z", ["cup"], "2025-06-20"),
            ("b", ["tea"], "2025-08-20"),
            ("b", ["tea"], "2025-09-02"),
        ]
        for i, (c, items, day) in enumerate(plan):
            oid = f"o{i}"
            rows.append(
                {
                    "order_id": oid,
                    "customer_id": c,
                    "ordered_at": datetime.fromisoformat(day).replace(tzinfo=UTC),
                    "amount": Decimal("100" if c != "b" else "300"),
                    "currency": "CNY",
                    "status": "paid",
                    "refunded_amount": Decimal(0),
                    "updated_at": now,
                }
            )
            lines += [
                {"order_id": oid, "line_no": j, "sku": s, "quantity": 1}
                for j, s in enumerate(items)
            ]
        conn.execute(orders.insert(), rows)
        conn.execute(order_lines.insert(), lines)
    got = callback_list(
        store, datetime(2026, 1, 1).date(), settings=Settings(), layers=["high_winback"]
    )
    assert [r["customer_id"] for r in got] == ["b", "a"]  # most valuable first; z is low win-back
    b = got[0]
    assert b["phone"] == "13800000002" and b["orders"] == 2 and b["bought"] == "龙井茶"
    assert b["offer"] == "茶杯"  # tea buyers buy a cup next; b has no cup yet
    out = write_callback_list(got, tmp_path / "calls.csv", lang="zh")
    with out.open(encoding="utf-8-sig") as f:
        table = list(csv.reader(f))
    assert table[0][0] == "顾客编号" and table[1][0] == "b"
    x = write_callback_list(got, tmp_path / "calls.xlsx", lang="en")
    ws = load_workbook(x).active
    assert ws is not None and ws["A1"].value == "customer id" and ws["J2"].value == "茶杯"

    # b unsubscribes from everything, a only from SMS: b is left off the list, a stays
    with store.begin() as conn:
        unsubscribe(conn, "b", "*", source="email_link", at=now)
        unsubscribe(conn, "a", "sms", source="sms_reply", at=now)
    again = callback_list(
        store, datetime(2026, 1, 1).date(), settings=Settings(), layers=["high_winback"]
    )
    assert [r["customer_id"] for r in again] == ["a"]
    # unsubscribed from every channel they had is the same as from all
    with store.begin() as conn:
        conn.execute(
            customers.update()
            .where(customers.c.customer_id == "a")
            .values(consent={"sms": True, "email": True})
        )
        unsubscribe(conn, "a", "email", source="email_link", at=now)
    assert (
        callback_list(
            store, datetime(2026, 1, 1).date(), settings=Settings(), layers=["high_winback"]
        )
        == []
    )
