"""The customers frame the journeys read, assembled from the other contexts.

- analytics: ``Analytics(orders, timezone=…).customers(as_of)`` — orders, first/last order, cycle,
  expected next-order date, RFM segment, seed layer, lifecycle;
- models: P(alive) from a BG/NBD fit on the same orders (left empty when the fit fails,
  e.g. too few repeat buyers — filters on P(alive) then match nobody);
- customers table: birthday, tags, language;
- loyalty: the earliest day points expire, the gap to the next tier (as a share of that
  tier's threshold) and the stamps still missing to the next reward.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
from sqlalchemy import select

from huitouke.core.orders import COUNTED_STATUSES
from huitouke.errors import HuitoukeError
from huitouke.settings import Settings
from huitouke.store.db import Store
from huitouke.store.tables import customers as customers_t

__all__ = ["customers_frame", "p_alive_series"]


def p_alive_series(orders: pd.DataFrame, as_of: date) -> pd.Series | None:
    """P(alive) per customer from a BG/NBD fit (Fader, Hardie & Lee 2005, eq. 13)."""
    from huitouke.models import BGNBD, summary_from_transactions

    try:
        summ = summary_from_transactions(
            orders,
            customer_col="customer_id",
            date_col="ordered_at",
            amount_col=None,
            observation_end=as_of,
        )
        model = BGNBD().fit(summ["frequency"], summ["recency"], summ["T"])
        p = model.probability_alive(summ["frequency"], summ["recency"], summ["T"])
    except (HuitoukeError, ValueError, FloatingPointError):
        return None
    return pd.Series(np.asarray(p, dtype=float), index=summ.index.astype(str))


def customers_frame(
    store: Store,
    as_of: date,
    *,
    settings: Settings,
    loyalty: Any = None,
    with_p_alive: bool = True,
) -> pd.DataFrame:
    """One row per customer with a counted order up to ``as_of`` (see :mod:`.frame`)."""
    from huitouke.analytics import Analytics

    orders = store.load_orders()
    if orders.num_rows == 0:
        return pd.DataFrame(columns=["customer_id", "orders", "last_order_at", "first_order_at"])
    pa_series = None
    if with_p_alive:
        odf = orders.select(["customer_id", "ordered_at", "status"]).to_pandas()
        odf = odf[odf["status"].isin(COUNTED_STATUSES)]
        # local wall-clock days: the models count days in the merchant's zone
        odf["ordered_at"] = (
            pd.to_datetime(odf["ordered_at"], utc=True)
            .dt.tz_convert(settings.timezone)
            .dt.tz_localize(None)
        )
        odf = odf[odf["ordered_at"].dt.date <= as_of]
        if len(odf):
            pa_series = p_alive_series(odf, as_of)
    with Analytics(orders, timezone=settings.timezone) as an:
        df = an.customers(as_of, p_alive=pa_series)
    ids = df["customer_id"].astype(str).tolist()
    births: dict[str, Any] = {}
    tags: dict[str, list[str]] = {}
    langs: dict[str, str | None] = {}
    with store.connect() as conn:
        c = customers_t.c
        for i in range(0, len(ids), 1000):
            for r in conn.execute(
                select(c.customer_id, c.birthday, c.tags, c.attributes).where(
                    c.customer_id.in_(ids[i : i + 1000])
                )
            ):
                births[r.customer_id] = r.birthday
                tags[r.customer_id] = list(r.tags or [])
                langs[r.customer_id] = (r.attributes or {}).get("lang")
        if loyalty is not None:
            _loyalty_columns(conn, loyalty, df, as_of, settings)
    df["birthday"] = df["customer_id"].map(births)
    df["tags"] = df["customer_id"].map(lambda x: tags.get(x, []))
    df["lang"] = df["customer_id"].map(langs)
    return df


def _loyalty_columns(
    conn: Any, loyalty: Any, df: pd.DataFrame, as_of: date, settings: Settings
) -> None:
    from huitouke.loyalty import tables as lt

    zone = ZoneInfo(settings.timezone)
    at = datetime.combine(as_of, time(23, 59, 59), tzinfo=zone).astimezone(UTC)
    expiring: dict[str, date] = {}
    for item in loyalty.expiring_soon(conn, None, 60, at - timedelta(days=1)):
        if item["kind"] != "points":
            continue
        d = datetime.fromisoformat(item["expires_at"]).astimezone(zone).date()
        cid = item["customer_id"]
        if cid not in expiring or d < expiring[cid]:
            expiring[cid] = d
    df["points_expiring_on"] = df["customer_id"].map(expiring)
    members = [r[0] for r in conn.execute(select(lt.members.c.customer_id))]
    gap: dict[str, float] = {}
    stamps: dict[str, int] = {}
    tiers = loyalty.program.tiers
    for cid in members:
        view = loyalty.customer_loyalty(conn, cid, as_of=at, expiring_within_days=0)
        missing = [
            int(card["next_reward"]["stamps"]) - int(card["stamps"])
            for card in view.get("stamp_cards", [])
            if card.get("next_reward")
        ]
        if missing:
            stamps[cid] = min(m for m in missing if m > 0) if any(m > 0 for m in missing) else 0
        if tiers is not None and view.get("tier"):
            current = view["tier"]["id"]
            levels = list(tiers.levels)
            idx = next((i for i, lv in enumerate(levels) if lv.id == current), None)
            if idx is not None and idx + 1 < len(levels):
                nxt = levels[idx + 1]
                metric = Decimal(loyalty._tier_metric(conn, cid, at))
                if nxt.threshold > 0:
                    gap[cid] = float(max(nxt.threshold - metric, Decimal(0)) / nxt.threshold)
    df["next_tier_gap_ratio"] = df["customer_id"].map(gap)
    df["stamps_to_reward"] = df["customer_id"].map(stamps)
