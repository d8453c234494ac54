"""Tiers (会员等级) between orders: the tier metric over the window and the period-end
review (grace, downgrade). Orders upgrade tiers in :mod:`~huitouke.loyalty.order_batch`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, and_, func, select, update

from huitouke.loyalty import tables as lt
from huitouke.loyalty.context import LoyaltyContext
from huitouke.loyalty.program import Tiers
from huitouke.loyalty.rules import qualified_tier, tier_period_end, tier_window_start
from huitouke.loyalty.vocab import COUNTED, ZERO, aware

__all__ = ["PersonTier", "person_tier", "review_tiers", "tier_metric", "window_metric"]


def _money_sum(conn: Connection, raw: Any) -> Decimal:
    # SUM over Money columns keeps the Money type: the value is already an exact Decimal.
    return Decimal(raw) if raw is not None else ZERO


def tier_metric(
    ctx: LoyaltyContext, conn: Connection, customer_id: str, as_of: datetime
) -> Decimal:
    """The customer's tier metric (orders, spend or points) over the tier window up to ``as_of``."""
    tiers = ctx.program.tiers
    assert tiers is not None
    return window_metric(conn, tiers, ctx.zone, customer_id, as_of)


@dataclass(frozen=True)
class PersonTier:
    """A person's tier: ``tier`` — the higher of the accounts' own tiers (``own``) and the
    one their combined ``metric`` qualifies for —, and where it comes from (``"combined"``,
    or the account whose own tier is higher)."""

    tier: str | None
    source: str
    metric: Decimal
    own: dict[str, str | None]


def person_tier(
    ctx: LoyaltyContext, conn: Connection, accounts: Sequence[str], at: datetime
) -> PersonTier:
    """The tier of the person whose accounts are ``accounts`` (:mod:`huitouke.identity`):
    two accounts each below a threshold reach it together."""
    tiers = ctx.program.tiers
    assert tiers is not None
    metric = sum((window_metric(conn, tiers, ctx.zone, a, at) for a in accounts), ZERO)
    m = lt.members.c
    found = {
        r.customer_id: r.tier
        for r in conn.execute(
            select(m.customer_id, m.tier).where(m.customer_id.in_(accounts), m.tier.is_not(None))
        )
    }
    best, source = qualified_tier(tiers, metric), "combined"
    for a in accounts:
        if tiers.rank(found.get(a)) > tiers.rank(best):
            best, source = found[a], a
    return PersonTier(best, source, metric, {a: found.get(a) for a in accounts})


def window_metric(
    conn: Connection, tiers: Tiers, zone: ZoneInfo, customer_id: str, as_of: datetime
) -> Decimal:
    """:func:`tier_metric` for a program's ``tiers`` in its ``zone``."""
    lo = lt.orders.c
    start = tier_window_start(tiers, as_of, zone)
    cond = and_(
        lo.customer_id == customer_id,
        lo.earned.is_(True),
        lo.ordered_at >= start,
        lo.ordered_at <= as_of,
    )
    if tiers.metric == "orders":
        n = conn.execute(select(func.count()).where(cond, lo.status.in_(COUNTED))).scalar_one()
        return Decimal(int(n))
    if tiers.metric == "spend":
        raw = conn.execute(
            select(func.sum(lo.amount - lo.refunded_amount)).where(cond)
        ).scalar_one()
    else:
        raw = conn.execute(
            select(func.sum(lo.points_earned - lo.points_reversed)).where(cond)
        ).scalar_one()
    return _money_sum(conn, raw)


def review_tiers(
    ctx: LoyaltyContext, conn: Connection, as_of: datetime, *, limit: int | None = None
) -> dict[str, Any]:
    """Downgrades at period end, after the grace period (see :class:`Tiers`)."""
    tiers = ctx.program.tiers
    out = {"reviewed": 0, "extended": 0, "grace_started": 0, "downgraded": 0, "upgraded": 0}
    if tiers is None:
        return out
    as_of = aware(as_of, "as_of")
    m = lt.members.c
    q = select(lt.members).where(m.tier_valid_until <= as_of).order_by(m.customer_id)
    if limit:
        q = q.limit(limit)
    if conn.dialect.name == "postgresql":
        q = q.with_for_update()
    for row in conn.execute(q).all():
        out["reviewed"] += 1
        value = tier_metric(ctx, conn, row.customer_id, as_of)
        qt = qualified_tier(tiers, value)
        cur_rank, q_rank = tiers.rank(row.tier), tiers.rank(qt)
        vals: dict[str, Any]
        if q_rank >= cur_rank:
            vals = {
                "tier": qt,
                "tier_valid_until": tier_period_end(tiers, as_of, ctx.zone),
                "tier_grace_until": None,
            }
            out["upgraded" if q_rank > cur_rank else "extended"] += 1
            if q_rank > cur_rank:
                vals["tier_since"] = as_of
        elif row.tier_grace_until is None and tiers.grace_days > 0:
            vals = {"tier_grace_until": row.tier_valid_until + timedelta(days=tiers.grace_days)}
            out["grace_started"] += 1
        elif row.tier_grace_until is not None and as_of < row.tier_grace_until:
            continue
        else:
            vals = {
                "tier": qt,
                "tier_since": as_of,
                "tier_valid_until": tier_period_end(tiers, as_of, ctx.zone),
                "tier_grace_until": None,
            }
            out["downgraded"] += 1
        conn.execute(
            update(lt.members)
            .where(m.customer_id == row.customer_id)
            .values(**vals, updated_at=as_of)
        )
    return out
