"""Build canonical orders tables in tests without the importer."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime, time
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pyarrow as pa

from huitouke.core.orders import DEFAULT_SOURCE, ORDERS_SCHEMA

UTC = ZoneInfo("UTC")


def local(ts: str | date | datetime, zone: str = "Asia/Shanghai") -> datetime:
    """A merchant-zone wall-clock time ("2024-01-31 23:59" or a date = midnight) as UTC."""
    if isinstance(ts, str):
        ts = datetime.fromisoformat(ts)
    if not isinstance(ts, datetime):
        ts = datetime.combine(ts, time())
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=ZoneInfo(zone))
    return ts.astimezone(UTC)


def order(
    order_id: str,
    customer_id: str,
    when: str | date | datetime,
    amount: str | int | Decimal = "10",
    *,
    status: str = "paid",
    refunded: str | int | Decimal = "0",
    zone: str = "Asia/Shanghai",
    currency: str = "CNY",
    channel: str | None = None,
) -> dict[str, object]:
    return {
        "order_id": order_id,
        "customer_id": customer_id,
        "ordered_at": local(when, zone),
        "amount": Decimal(str(amount)),
        "currency": currency,
        "status": status,
        "refunded_amount": Decimal(str(refunded)),
        "channel": channel,
    }


def orders_table(rows: Iterable[dict[str, object]]) -> pa.Table:
    rows = list(rows)
    return pa.table(
        {
            f.name: [
                r.get("source", DEFAULT_SOURCE) if f.name == "source" else r[f.name] for r in rows
            ]
            for f in ORDERS_SCHEMA
        },
        schema=ORDERS_SCHEMA,
    )


def lines_table(rows: Sequence[tuple[str, str, str | None]]) -> pa.Table:
    """(order_id, sku, category) triples as an order-lines table."""
    return pa.table(
        {
            "order_id": [r[0] for r in rows],
            "sku": [r[1] for r in rows],
            "product_name": [f"product {r[1]}" for r in rows],
            "category": [r[2] for r in rows],
            "quantity": [1] * len(rows),
            "unit_price": pa.array([Decimal("1")] * len(rows), pa.decimal128(18, 4)),
        }
    )


def cdnow_orders(path: Path, zone: str = "Asia/Shanghai") -> pa.Table:
    """CDNOW master: each row one order, order id = its line number (zero-padded so string
    order is line order), the date a merchant-zone date."""
    rows = []
    with path.open() as fh:
        next(fh)
        for i, line in enumerate(fh, start=2):
            cust, ymd, _cds, dollars = line.split()
            d = date(int(ymd[:4]), int(ymd[4:6]), int(ymd[6:]))
            rows.append(order(f"{i:06d}", cust, d, dollars, zone=zone, currency="USD"))
    return orders_table(rows)


def online_retail_orders(path: Path, zone: str = "Europe/London") -> pa.Table:
    """Online Retail invoices: one order per invoice, amount rounded to cents."""
    import csv

    rows = []
    with path.open(newline="") as fh:
        for r in csv.DictReader(fh):
            amount = Decimal(r["TotalPrice"]).quantize(Decimal("0.01"))
            rows.append(
                order(
                    r["InvoiceNo"],
                    r["CustomerID"].split(".")[0],
                    date.fromisoformat(r["InvoiceDate"][:10]),
                    amount,
                    zone=zone,
                    currency="GBP",
                )
            )
    return orders_table(rows)
