"""Results of package-insert campaigns, and the attribution rules every result uses.

Definitions (BRIEF "Measure it"):

- *converted*: an exposure (an assignment to a journey, a claimed insert card) whose customer
  placed a counted order (paid, not fully refunded or cancelled) within ``window_days``
  after it (:func:`conversions`); its *revenue* is that of the converting orders.

Insert campaigns count the cards printed and claimed, the claims that converted, and the
coupons their claimed codes issued and that were redeemed by ``as_of``, with the discounts
of those redemptions (``coupon_cost``). The results of journeys (treatment against holdout)
are :func:`huitouke.journeys.results.journey_results`, built on the same rules.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd
from sqlalchemy import Connection, func, select

from huitouke.core.orders import COUNTED_STATUSES, order_ref
from huitouke.measurement.tables import campaign_codes
from huitouke.store.tables import orders

__all__ = ["campaign_results", "conversions", "money", "orders_of"]

_CENT = Decimal("0.01")


def orders_of(conn: Connection, customer_ids: Sequence[str], until: datetime) -> pd.DataFrame:
    rows: list[tuple[Any, ...]] = []
    ids = list(customer_ids)
    o = orders.c
    for i in range(0, len(ids), 500):
        rows += conn.execute(
            select(
                o.source, o.order_id, o.customer_id, o.ordered_at, o.amount, o.refunded_amount
            ).where(
                o.customer_id.in_(ids[i : i + 500]),
                o.status.in_(COUNTED_STATUSES),
                o.ordered_at <= until,
            )
        ).all()
    # an order is (source, order_id): one string per order (the ledger's references)
    rows = [(order_ref(r[0], r[1]), *r[2:]) for r in rows]
    df = pd.DataFrame(rows, columns=["order_id", "customer_id", "ordered_at", "amount", "refunded"])
    df["revenue"] = pd.Series(
        [Decimal(a) - Decimal(r) for a, r in zip(df["amount"], df["refunded"], strict=True)],
        index=df.index,
        dtype=object,
    )
    return df


def conversions(exposures: pd.DataFrame, ords: pd.DataFrame, window: timedelta) -> pd.DataFrame:
    """Per exposure row: converted (bool) and revenue (Decimal) of orders in its window."""
    if exposures.empty:
        return exposures.assign(converted=False, revenue=None)
    if ords.empty:
        out0 = exposures.copy()
        out0["converted"] = False
        out0["revenue"] = pd.Series(
            [Decimal(0)] * len(exposures), index=exposures.index, dtype=object
        )
        return out0
    m = exposures.reset_index().merge(ords, on="customer_id", how="left")
    inside = (m["ordered_at"] > m["at"]) & (m["ordered_at"] <= m["at"] + window)
    m = m[inside]
    rev: dict[Any, Decimal] = {}
    for i, v in zip(m["index"], m["revenue"], strict=True):
        rev[i] = rev.get(i, Decimal(0)) + v
    out = exposures.copy()
    out["converted"] = out.index.isin(list(rev))
    out["revenue"] = pd.Series(
        [rev.get(i, Decimal(0)) for i in out.index], index=out.index, dtype=object
    )
    return out


def money(v: Decimal) -> str:
    return str(v.quantize(_CENT))


def campaign_results(
    conn: Connection,
    as_of: date,
    *,
    timezone: str,
    window_days: int = 7,
    currency: str = "CNY",
) -> list[dict[str, Any]]:
    """Package-insert campaigns: cards printed, claimed, and orders within the window after a claim."""
    end = datetime.combine(
        as_of + timedelta(days=1), time(0), tzinfo=ZoneInfo(timezone)
    ).astimezone(UTC)
    window = timedelta(days=window_days)
    cc = campaign_codes.c
    printed: dict[str, int] = dict(
        conn.execute(
            select(cc.campaign_id, func.count()).where(cc.created_at < end).group_by(cc.campaign_id)
        ).all()
    )
    claims = pd.DataFrame(
        conn.execute(
            select(cc.campaign_id, cc.claimed_by, cc.claimed_at).where(
                cc.claimed_at.is_not(None), cc.claimed_at < end
            )
        ).all(),
        columns=["campaign_id", "customer_id", "at"],
    )
    ords = (
        orders_of(conn, sorted(set(claims["customer_id"])), end) if len(claims) else pd.DataFrame()
    )
    conv = conversions(claims, ords, window) if len(claims) else claims
    from huitouke.loyalty.tables import coupons

    k = coupons.c
    # the coupons the claimed cards issued, redeemed (on any order) by the end of as_of
    spent: dict[str, tuple[int, Decimal]] = {}
    for cid, discount in conn.execute(
        select(cc.campaign_id, k.discount)
        .join(coupons, k.code == cc.coupon_code)
        .where(cc.claimed_at < end, k.status == "redeemed", k.redeemed_at < end)
    ):
        n, total = spent.get(cid, (0, Decimal(0)))
        spent[cid] = (n + 1, total + (Decimal(discount) if discount is not None else Decimal(0)))
    out = []
    for cid in sorted(printed):
        c = conv[conv["campaign_id"] == cid] if len(conv) else conv
        out.append(
            {
                "campaign_id": cid,
                "currency": currency,
                "printed": int(printed[cid]),
                "claimed": len(c),
                "converted": int(c["converted"].sum()) if len(c) else 0,
                "revenue": money(sum(c["revenue"], Decimal(0))) if len(c) else "0.00",
                "coupons_redeemed": spent.get(cid, (0, Decimal(0)))[0],
                "coupon_cost": money(spent.get(cid, (0, Decimal(0)))[1]),
            }
        )
    return out
