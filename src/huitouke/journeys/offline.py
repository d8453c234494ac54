"""The seeds' offline tools: package-insert cards (包裹营销) and call-back lists (客服回访).

Insert cards are A4 pages of 2 × 4 cards, each with its own QR code (segno) pointing at
``{public_base_url}/claim/{code}`` and the code printed underneath for typing in by hand.
The PDF embeds a CJK font (fpdf2 subsets it), found by :func:`find_cjk_font`: the
``HUITOUKE_CJK_FONT`` setting, else Noto Sans CJK / WenQuanYi from the system (Debian:
``fonts-noto-cjk``), else fontconfig's answer for Chinese.
"""

from __future__ import annotations

import csv
import io
import shutil
import subprocess
from collections.abc import Sequence
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

from huitouke.errors import ConfigError, InputError
from huitouke.i18n import register, t
from huitouke.settings import Settings

__all__ = [
    "callback_list",
    "find_cjk_font",
    "insert_card_url",
    "write_callback_list",
    "write_insert_cards",
]

register(
    {
        "inserts.title": {"zh": "感谢您的订单", "en": "Thank you for your order"},
        "inserts.offer": {"zh": "扫码领取回购优惠券", "en": "Scan for a coupon on your next order"},
        "inserts.code": {"zh": "券码", "en": "Code"},
        "callbacks.col.customer_id": {"zh": "顾客编号", "en": "customer id"},
        "callbacks.col.name": {"zh": "姓名", "en": "name"},
        "callbacks.col.phone": {"zh": "电话", "en": "phone"},
        "callbacks.col.layer": {"zh": "分层", "en": "layer"},
        "callbacks.col.orders": {"zh": "订单数", "en": "orders"},
        "callbacks.col.spend": {"zh": "累计消费", "en": "spend"},
        "callbacks.col.last_order": {"zh": "最近下单", "en": "last order"},
        "callbacks.col.days_since": {"zh": "距今天数", "en": "days since"},
        "callbacks.col.bought": {"zh": "买过", "en": "bought"},
        "callbacks.col.offer": {"zh": "建议推荐", "en": "suggested offer"},
        "callbacks.col.script": {"zh": "话术", "en": "script"},
        "callbacks.script.high_winback": {
            "zh": "关怀回访:询问上次购买的使用体验,再介绍建议商品",
            "en": "Care call: ask how the last purchase went, then suggest the offer",
        },
        "callbacks.script.default": {
            "zh": "回访:了解近况与需求,介绍建议商品",
            "en": "Check-in call: ask about their needs, suggest the offer",
        },
    }
)

_CANDIDATES = (
    ("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc", 2),  # index 2 = Simplified Chinese
    ("/usr/share/fonts/opentype/noto/NotoSerifCJK-Regular.ttc", 2),
    ("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc", 0),
    ("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc", 0),
)


def find_cjk_font(configured: str = "") -> tuple[str, int]:
    """(path, collection index) of a font that can show Chinese."""
    if configured:
        if not Path(configured).is_file():
            raise ConfigError(
                f"HUITOUKE_CJK_FONT {configured!r} is not a file",
                code="settings.cjk_font",
                message_zh=f"HUITOUKE_CJK_FONT {configured!r} 不是文件",
            )
        return configured, 2 if "NotoSansCJK" in configured or "NotoSerifCJK" in configured else 0
    for path, idx in _CANDIDATES:
        if Path(path).is_file():
            return path, idx
    if shutil.which("fc-match"):
        found = subprocess.run(
            ["fc-match", "-f", "%{file}", ":lang=zh-cn"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        if (
            found
            and Path(found).suffix.lower() in (".ttf", ".ttc", ".otf")
            and "DejaVu" not in found
        ):
            return found, 0
    raise ConfigError(
        "no font with Chinese glyphs found: install Debian's fonts-noto-cjk or set HUITOUKE_CJK_FONT",
        code="settings.cjk_font",
        message_zh="未找到中文字体:请安装 fonts-noto-cjk 或设置 HUITOUKE_CJK_FONT",
    )


def insert_card_url(base_url: str, code: str) -> str:
    """The address an insert card's QR code holds (the service's ``GET /claim/{code}``)."""
    return f"{base_url.rstrip('/')}/claim/{code}"


def write_insert_cards(
    out: Path,
    campaign_id: str,
    codes: Sequence[str],
    *,
    base_url: str,
    lang: str = "zh",
    title: str | None = None,
    offer: str | None = None,
    font: str = "",
) -> Path:
    """A printable PDF: 8 cards per A4 page, each with a unique QR code and its code."""
    import segno
    from fpdf import FPDF

    if not codes:
        raise InputError("no codes to print", code="inserts.empty", message_zh="没有可打印的券码")
    path, index = find_cjk_font(font)
    pdf = FPDF(orientation="P", unit="mm", format="A4")
    pdf.set_auto_page_break(False)
    pdf.add_font("cjk", fname=path, collection_font_number=index)
    pdf.set_title(f"huitouke inserts {campaign_id}")
    title = title or t("inserts.title", lang)
    offer = offer or t("inserts.offer", lang)
    card_w, card_h, cols, rows = 95.0, 68.0, 2, 4
    for i, code in enumerate(codes):
        if i % (cols * rows) == 0:
            pdf.add_page()
        slot = i % (cols * rows)
        x = 10 + (slot % cols) * card_w
        y = 12 + (slot // cols) * card_h
        pdf.set_draw_color(180, 180, 180)
        pdf.set_line_width(0.2)
        pdf.set_dash_pattern(dash=2, gap=2)  # cut lines
        pdf.rect(x, y, card_w, card_h)
        pdf.set_dash_pattern()
        url = insert_card_url(base_url, code)
        buf = io.BytesIO()
        segno.make(url, error="m").save(buf, kind="png", scale=6, border=2)
        buf.seek(0)
        pdf.image(buf, x=x + 4, y=y + 8, w=48, h=48)
        pdf.set_xy(x + 54, y + 10)
        pdf.set_font("cjk", size=13)
        pdf.multi_cell(card_w - 58, 7, title)
        pdf.set_xy(x + 54, pdf.get_y() + 2)
        pdf.set_font("cjk", size=10)
        pdf.multi_cell(card_w - 58, 5.5, offer)
        pdf.set_xy(x + 54, y + 48)
        pdf.set_font("cjk", size=11)
        pdf.cell(card_w - 58, 6, f"{t('inserts.code', lang)}: {code}")
        pdf.set_xy(x + 4, y + 58)
        pdf.set_font("cjk", size=7)
        pdf.cell(card_w - 8, 4, campaign_id)
    out.parent.mkdir(parents=True, exist_ok=True)
    pdf.output(str(out))
    return out


def callback_list(
    store: Any,
    as_of: date,
    *,
    settings: Settings,
    layers: Sequence[str] = ("high_winback", "cooling"),
    limit: int = 200,
) -> list[dict[str, Any]]:
    """Who to call (the chosen layers, most valuable first), their history and an offer:
    the item that customers who bought what they bought most often buy next (sequence rules),
    else their category's best seller they have not bought. Customers unsubscribed from all
    channels (``*``, or from every channel they had consent for) are left out: they asked
    not to be contacted."""
    from sqlalchemy import select

    from huitouke.journeys.associations import Recommender, baskets_from_store
    from huitouke.journeys.integration import customers_frame
    from huitouke.store.tables import customers, products

    frame = customers_frame(store, as_of, settings=settings, with_p_alive=False)
    if frame.empty:
        return []
    pick = frame[frame["layer"].isin(list(layers))].copy()
    with store.connect() as conn:
        out_of_reach = _unsubscribed_everywhere(conn, pick["customer_id"].astype(str).tolist())
    pick = pick[~pick["customer_id"].astype(str).isin(out_of_reach)]
    pick["spend_num"] = pick["spend"].map(lambda v: Decimal(str(v)))
    pick = pick.sort_values(["spend_num", "customer_id"], ascending=[False, True]).head(limit)
    baskets = baskets_from_store(store, by="sku")
    with store.connect() as conn:
        names = {
            r.sku: r.name or r.sku for r in conn.execute(select(products.c.sku, products.c.name))
        }
        ids = pick["customer_id"].tolist()
        prof = {}
        for i in range(0, len(ids), 500):
            for r in conn.execute(
                select(customers.c.customer_id, customers.c.name, customers.c.phone).where(
                    customers.c.customer_id.in_(ids[i : i + 500])
                )
            ):
                prof[r.customer_id] = r
    rec = (
        Recommender.fit(baskets, kind="sequence", min_count=2, names=names)
        if len(baskets)
        else None
    )
    bought: dict[str, list[str]] = {}
    if len(baskets):
        for cid, g in baskets.groupby("customer_id"):
            bought[str(cid)] = sorted({str(x) for x in g["item"]})
    rows = []
    for r in pick.to_dict("records"):
        cid = str(r["customer_id"])
        mine = bought.get(cid, [])
        offer = ""
        if rec is not None:
            fresh = [
                s
                for s in rec.recommend((rec.last_items or {}).get(cid, mine), k=10)
                if s not in mine
            ]
            offer = names.get(fresh[0], fresh[0]) if fresh else ""
        p = prof.get(cid)
        script_key = (
            "callbacks.script.high_winback"
            if r["layer"] == "high_winback"
            else "callbacks.script.default"
        )
        rows.append(
            {
                "customer_id": cid,
                "name": (p.name if p is not None else "") or "",
                "phone": (p.phone if p is not None else "") or "",
                "layer": r["layer"],
                "orders": int(r["orders"]),
                "spend": str(r["spend"]),
                "last_order": str(r["last_order_date"]),
                "days_since": int(r["days_since_last"]),
                "bought": "、".join(names.get(s, s) for s in mine[:5]),
                "offer": offer,
                "script": t(script_key, settings.lang),
            }
        )
    return rows


def _unsubscribed_everywhere(conn: Any, customer_ids: Sequence[str]) -> set[str]:
    from huitouke.messaging.consent import load_customer_contexts
    from huitouke.messaging.rules import ALL_CHANNELS

    out = set()
    for cid, ctx in load_customer_contexts(conn, customer_ids).items():
        had = set(ctx.consent)  # channels they ever had a consent flag or choice for
        if ALL_CHANNELS in ctx.unsubscribed or (had and all(ctx.is_unsubscribed(ch) for ch in had)):
            out.add(cid)
    return out


def write_callback_list(rows: Sequence[dict[str, Any]], out: Path, *, lang: str = "zh") -> Path:
    """CSV (UTF-8 with BOM, so Excel opens Chinese correctly) or XLSX, by the file suffix."""
    cols = [
        "customer_id",
        "name",
        "phone",
        "layer",
        "orders",
        "spend",
        "last_order",
        "days_since",
        "bought",
        "offer",
        "script",
    ]
    header = [t(f"callbacks.col.{c}", lang) for c in cols]
    out.parent.mkdir(parents=True, exist_ok=True)
    suffix = out.suffix.lower()
    if suffix == ".csv":
        with out.open("w", encoding="utf-8-sig", newline="") as f:
            w = csv.writer(f)
            w.writerow(header)
            for r in rows:
                w.writerow([r[c] for c in cols])
    elif suffix == ".xlsx":
        from openpyxl import Workbook

        wb = Workbook()
        ws = wb.active
        assert ws is not None
        ws.title = "callbacks"
        ws.append(header)
        for r in rows:
            ws.append([r[c] for c in cols])
        wb.save(out)
    else:
        raise InputError(
            f"--out {out}: use a .csv or .xlsx file",
            code="input.bad_suffix",
            message_zh=f"--out {out}:请使用 .csv 或 .xlsx 文件",
            details={"option": "--out"},
        )
    return out
