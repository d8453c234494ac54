"""Where every member stands, read set-based: the gap to the next tier and the stamps still
missing to the next reward, for all members in a few queries (one per column family, never
one per member). The journeys' customers frame reads it; the answers equal those of
:meth:`LoyaltyService.customer_loyalty` member by member (a test compares them)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import Connection, and_, func, select

from huitouke.core.orders import COUNTED_STATUSES
from huitouke.loyalty import tables as lt
from huitouke.loyalty.program import Program
from huitouke.loyalty.rules import tier_window_start
from huitouke.loyalty.vocab import stamps_asset

__all__ = ["stamps_to_reward", "tier_gap_ratios", "tier_metrics"]

ZERO = Decimal(0)


def tier_metrics(conn: Connection, program: Program, as_of: datetime) -> dict[str, Decimal]:
    """Each customer's tier metric (orders, spend or points in the tier window up to
    ``as_of``), in one grouped query; customers with nothing in the window are absent."""
    tiers = program.tiers
    if tiers is None:
        return {}
    lo = lt.orders.c
    start = tier_window_start(tiers, as_of, program.zone)
    cond = and_(lo.earned.is_(True), lo.ordered_at >= start, lo.ordered_at <= as_of)
    if tiers.metric == "orders":
        q = select(lo.customer_id, func.count()).where(cond, lo.status.in_(COUNTED_STATUSES))
    elif tiers.metric == "spend":
        q = select(lo.customer_id, func.sum(lo.amount - lo.refunded_amount)).where(cond)
    else:
        q = select(lo.customer_id, func.sum(lo.points_earned - lo.points_reversed)).where(cond)
    return {
        cid: Decimal(v) if v is not None else ZERO
        for cid, v in conn.execute(q.group_by(lo.customer_id))
    }


def tier_gap_ratios(conn: Connection, program: Program, as_of: datetime) -> dict[str, float]:
    """Per member with a tier below the top: what is missing to the next tier, as a share
    of that tier's threshold (0 when the metric already reaches it)."""
    tiers = program.tiers
    if tiers is None:
        return {}
    levels = list(tiers.levels)
    index = {lv.id: i for i, lv in enumerate(levels)}
    m = lt.members.c
    tiered = conn.execute(select(m.customer_id, m.tier).where(m.tier.is_not(None))).all()
    if not tiered:
        return {}
    metric = tier_metrics(conn, program, as_of)
    gap: dict[str, float] = {}
    for cid, tier in tiered:
        idx = index.get(tier)
        if idx is None or idx + 1 >= len(levels):
            continue
        nxt = levels[idx + 1]
        if nxt.threshold > 0:
            have = metric.get(cid, ZERO)
            gap[cid] = float(max(nxt.threshold - have, ZERO) / nxt.threshold)
    return gap


def stamps_to_reward(conn: Connection, program: Program) -> dict[str, int]:
    """Per member: the fewest stamps still missing to a next reward on any stamp card (0
    when one is due); members of a program without a card with a reward left are absent."""
    cards = list(program.stamp_cards)
    if not cards:
        return {}
    m, a, sc = lt.members.c, lt.accounts.c, lt.stamp_cards.c
    members = [r[0] for r in conn.execute(select(m.customer_id))]
    if not members:
        return {}
    assets = {stamps_asset(card.id): card.id for card in cards}
    balance: dict[tuple[str, str], int] = {
        (cid, assets[asset]): int(bal)
        for cid, asset, bal in conn.execute(
            select(a.customer_id, a.asset, a.balance).where(a.asset.in_(list(assets)))
        )
    }
    rewarded: dict[tuple[str, str], int] = {
        (cid, card_id): int(upto or 0)
        for cid, card_id, upto in conn.execute(select(sc.customer_id, sc.card_id, sc.rewarded_upto))
    }
    out: dict[str, int] = {}
    for cid in members:
        missing = []
        for card in cards:
            n = balance.get((cid, card.id), 0)
            done = rewarded.get((cid, card.id), 0)
            nxt = next((r for r in card.rewards if r.stamps > n and r.stamps > done), None)
            if nxt is not None:
                missing.append(int(nxt.stamps) - n)
        if missing:
            positive = [x for x in missing if x > 0]
            out[cid] = min(positive) if positive else 0
    return out
