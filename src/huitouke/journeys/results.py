"""Results per journey: audience, holdout, sent, delivered, clicked,
converted, revenue, cost — and the uplift against the holdout group.

Definitions (BRIEF "Measure it"):

- *audience*: customers assigned to a journey occurrence (treatment + holdout), as
  recorded by evaluation in ``journey_assignments``;
- *converted*: an assignment whose customer placed a counted order (paid, not fully refunded
  or cancelled) within ``window_days`` after the assignment's send time — the same rule for
  treatment and holdout (intention to treat: a treatment customer whose message was blocked
  by a cap still counts as treatment). Assignments whose window has not ended by ``as_of``
  are left out of the conversion figures and counted as ``in_window``; the rest of each
  group is ``treatment_measured`` / ``holdout_measured``;
- *conversion rate* = converted / assignments of the group; *incremental repurchase* =
  treatment rate − holdout rate, with Newcombe's 95% interval (:mod:`.stats`);
- *revenue* of a group: revenue of the converting orders in the windows; *incremental
  revenue* = (treatment revenue per assignment − holdout revenue per assignment) ×
  treatment assignments;
- *attributed orders* (last touch): each order is credited to the latest message actually
  sent to that customer within ``window_days`` before it, across all journeys;
- *SMS cost*: SMS segments of the journey's sent messages × the price per segment;
- *coupon cost*: the discounts of the coupons redeemed on the journey's attributed orders,
  as the loyalty ledger recorded them at redemption (``loyalty_coupons.discount``);
- *cost* = SMS cost + coupon cost; *ROI* = (incremental revenue − cost) / cost; *cost per
  incremental customer* = cost / (incremental repurchase × treatment assignments).

The conversion window and revenue rules are those of :mod:`huitouke.measurement.attribution`
(the package-insert campaigns use them too).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd
from sqlalchemy import Connection, select

from huitouke.journeys.tables import journey_assignments as ja
from huitouke.loyalty.tables import coupons
from huitouke.measurement.attribution import conversions, money, orders_of
from huitouke.measurement.stats import diff_proportions
from huitouke.measurement.tables import campaign_codes, link_clicks
from huitouke.messaging.tables import outbox

__all__ = ["journey_results"]


def journey_results(
    conn: Connection,
    as_of: date,
    *,
    timezone: str,
    window_days: int = 7,
    price_per_segment: Decimal = Decimal("0.045"),
    currency: str = "CNY",
    journey_ids: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """One dict per journey with assignments up to the end of ``as_of`` (merchant's day)."""
    end = datetime.combine(
        as_of + timedelta(days=1), time(0), tzinfo=ZoneInfo(timezone)
    ).astimezone(UTC)
    window = timedelta(days=window_days)
    q = select(
        ja.c.journey_id, ja.c.customer_id, ja.c.occurrence, ja.c.group, ja.c.assigned_at
    ).where(ja.c.assigned_at < end)
    if journey_ids:
        q = q.where(ja.c.journey_id.in_(list(journey_ids)))
    assign = pd.DataFrame(
        conn.execute(q).all(), columns=["journey_id", "customer_id", "occurrence", "group", "at"]
    )
    if assign.empty:
        return []
    ords = orders_of(conn, sorted(set(assign["customer_id"])), end)
    # sends: first sent message per (journey, customer, occurrence), and every send for last touch
    sent = pd.DataFrame(
        conn.execute(
            select(
                outbox.c.journey_id,
                outbox.c.customer_id,
                outbox.c.occurrence,
                outbox.c.sent_at,
                outbox.c.delivered_at,
                outbox.c.segments,
                outbox.c.channel,
            ).where(outbox.c.status == "sent", outbox.c.sent_at < end)
        ).all(),
        columns=[
            "journey_id",
            "customer_id",
            "occurrence",
            "sent_at",
            "delivered_at",
            "segments",
            "channel",
        ],
    )
    clicks = pd.DataFrame(
        conn.execute(
            select(link_clicks.c.journey_id, link_clicks.c.customer_id).where(
                link_clicks.c.clicked_at < end
            )
        ).all(),
        columns=["journey_id", "customer_id"],
    )
    last_touch = _last_touch(sent, ords, window)
    redeemed = _coupon_redemptions(conn, list(last_touch["order_id"]), end)
    coupon_journey = redeemed.merge(last_touch[["order_id", "journey_id"]], on="order_id")
    out = []
    for jid, a in assign.groupby("journey_id", sort=True):
        done = a[a["at"] + window <= end]
        conv = conversions(done, ords, window)
        t = conv[conv["group"] == "treatment"]
        h = conv[conv["group"] == "holdout"]
        nt, nh = len(t), len(h)
        xt, xh = int(t["converted"].sum()), int(h["converted"].sum())
        rt = sum(t["revenue"], Decimal(0))
        rh = sum(h["revenue"], Decimal(0))
        ci = diff_proportions(xt, nt, xh, nh)
        js = sent[sent["journey_id"] == jid]
        segments = int(js.loc[js["channel"] == "sms", "segments"].fillna(0).sum())
        sms_cost = (Decimal(segments) * Decimal(price_per_segment)).quantize(Decimal("0.0001"))
        jc = coupon_journey[coupon_journey["journey_id"] == jid]
        coupon_cost = sum(jc["discount"], Decimal(0))
        cost = sms_cost + coupon_cost
        inc_rev = None
        if nt and nh:
            inc_rev = ((rt / nt) - (rh / nh)) * nt
        inc_customers = ci.diff * nt if ci.diff is not None else None
        lt = last_touch[last_touch["journey_id"] == jid] if not last_touch.empty else last_touch
        out.append(
            {
                "journey_id": jid,
                "currency": currency,
                "window_days": window_days,
                "audience": len(a),
                "treatment": int((a["group"] == "treatment").sum()),
                "holdout": int((a["group"] == "holdout").sum()),
                "in_window": len(a) - len(done),
                "treatment_measured": nt,
                "holdout_measured": nh,
                "sent": len(js),
                "delivered": int(js["delivered_at"].notna().sum()),
                "clicked": int(clicks.loc[clicks["journey_id"] == jid, "customer_id"].nunique()),
                "converted_treatment": xt,
                "converted_holdout": xh,
                "conversion_treatment": xt / nt if nt else None,
                "conversion_holdout": xh / nh if nh else None,
                "incremental_repurchase": ci.diff,
                "incremental_ci95": [ci.low, ci.high] if ci.diff is not None else None,
                "incremental_customers": inc_customers,
                "revenue_treatment": money(rt),
                "revenue_holdout": money(rh),
                "incremental_revenue": money(inc_rev) if inc_rev is not None else None,
                "attributed_orders": len(lt),
                "attributed_revenue": money(sum(lt["revenue"], Decimal(0))) if len(lt) else "0.00",
                "coupons_redeemed": len(jc),
                "sms_cost": money(sms_cost),
                "coupon_cost": money(coupon_cost),
                "cost": money(cost),
                "roi": float((inc_rev - cost) / cost) if inc_rev is not None and cost > 0 else None,
                "cost_per_incremental_customer": (
                    money(cost / Decimal(str(inc_customers)))
                    if inc_customers is not None and inc_customers > 0 and cost > 0
                    else None
                ),
            }
        )
    return out


def _last_touch(sent: pd.DataFrame, ords: pd.DataFrame, window: timedelta) -> pd.DataFrame:
    """Each order credited to the latest send to its customer within ``window`` before it."""
    if sent.empty or ords.empty:
        return pd.DataFrame(columns=["order_id", "journey_id", "revenue"])
    m = ords.merge(sent[["journey_id", "customer_id", "sent_at"]], on="customer_id")
    m = m[(m["sent_at"] < m["ordered_at"]) & (m["ordered_at"] <= m["sent_at"] + window)]
    if m.empty:
        return pd.DataFrame(columns=["order_id", "journey_id", "revenue"])
    m = m.sort_values(["order_id", "sent_at"]).drop_duplicates("order_id", keep="last")
    return m[["order_id", "journey_id", "revenue"]]


def _coupon_redemptions(
    conn: Connection, order_ids: Sequence[str], until: datetime
) -> pd.DataFrame:
    """Coupons redeemed on ``order_ids`` by ``until``: one row per coupon with its discount.

    The discount is the one the loyalty service recorded at redemption; a redemption made
    without an order amount on a percent coupon has none on the ledger and counts as 0.
    Coupons that came with a package-insert card are that campaign's cost, not a journey's.
    """
    c = coupons.c
    rows: list[tuple[Any, ...]] = []
    ids = sorted(set(order_ids))
    for i in range(0, len(ids), 500):
        rows += conn.execute(
            select(c.redeemed_order_id, c.code, c.discount)
            .select_from(coupons.outerjoin(campaign_codes, campaign_codes.c.coupon_code == c.code))
            .where(
                c.redeemed_order_id.in_(ids[i : i + 500]),
                c.status == "redeemed",
                c.redeemed_at < until,
                campaign_codes.c.code.is_(None),
            )
        ).all()
    df = pd.DataFrame(rows, columns=["order_id", "code", "discount"])
    df["discount"] = pd.Series(
        [Decimal(0) if d is None else Decimal(d) for d in df["discount"]],
        index=df.index,
        dtype=object,
    )
    return df
