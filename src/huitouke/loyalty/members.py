"""The member row of a customer (created on first use), their remembered
preferences, the paid membership active at an instant and the benefits that follow.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from sqlalchemy import Connection, select, update

from huitouke.errors import NotFoundError
from huitouke.loyalty import tables as lt
from huitouke.loyalty.context import LoyaltyContext
from huitouke.loyalty.ledger import insert_ignore
from huitouke.loyalty.program import TierBenefits
from huitouke.loyalty.rules import best_benefits

__all__ = ["active_membership", "benefits", "ensure_member", "set_preferences"]


def ensure_member(ctx: LoyaltyContext, conn: Connection, customer_id: str, now: datetime) -> Any:
    """The customer's member row, created on first use (locked on PostgreSQL)."""
    m = lt.members.c
    stmt = select(lt.members).where(m.customer_id == customer_id)
    if conn.dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    row = conn.execute(stmt).first()
    if row is None:
        insert_ignore(
            conn,
            lt.members,
            {
                "customer_id": customer_id,
                "preferences": {},
                "paid_orders": 0,
                "created_at": now,
                "updated_at": now,
            },
            "customer_id",
        )
        row = conn.execute(stmt).first()
    return row


def active_membership(
    ctx: LoyaltyContext, conn: Connection, customer_id: str | Sequence[str], at: datetime
) -> Any:
    """The paid membership active at ``at`` (the one ending last), or ``None``; of one
    account, or of any of a person's ``accounts`` (a sequence of customer ids)."""
    if not ctx.program.membership_plans:
        return None
    ms = lt.memberships.c
    ids = [customer_id] if isinstance(customer_id, str) else list(customer_id)
    return conn.execute(
        select(lt.memberships)
        .where(
            ms.customer_id.in_(ids),
            ms.status != "cancelled",
            ms.starts_at <= at,
            ms.ends_at > at,
        )
        .order_by(ms.ends_at.desc())
        .limit(1)
    ).first()


def benefits(
    ctx: LoyaltyContext,
    conn: Connection,
    member: Any,
    at: datetime,
    *,
    tier: str | Literal[False] | None = False,
    accounts: Sequence[str] | None = None,
) -> tuple[Decimal, Decimal, str | None]:
    """(points multiplier, discount percent, source of the discount) for a customer at ``at``;
    ``tier``: the tier whose benefits apply instead of the member's own (a merged person's);
    ``accounts``: a merged person's accounts, whose paid memberships all count."""
    tier_b: TierBenefits | None = None
    own = (member.tier if member is not None else None) if tier is False else tier
    if ctx.program.tiers is not None and own:
        lv = ctx.program.tiers.level(own)
        tier_b = lv.benefits if lv else None
    ms = (
        active_membership(ctx, conn, accounts or member.customer_id, at)
        if member is not None or accounts
        else None
    )
    plan_b: TierBenefits | None = None
    if ms is not None:
        try:
            plan_b = ctx.program.plan(ms.plan_id).benefits
        except NotFoundError:
            plan_b = None
    mult, disc = best_benefits(tier_b, plan_b)
    source = None
    if disc > 0:
        source = "membership" if plan_b is not None and plan_b.discount_percent == disc else "tier"
    return mult, disc, source


def set_preferences(
    ctx: LoyaltyContext, conn: Connection, customer_id: str, preferences: Mapping[str, Any]
) -> dict[str, Any]:
    """Remember a customer's preferences (size, taste…): a tier benefit shown at checkout."""
    now = ctx.now()
    ensure_member(ctx, conn, customer_id, now)
    m = lt.members.c
    cur = conn.execute(select(m.preferences).where(m.customer_id == customer_id)).scalar_one()
    merged = {**(cur or {}), **dict(preferences)}
    conn.execute(
        update(lt.members)
        .where(m.customer_id == customer_id)
        .values(preferences=merged, updated_at=now)
    )
    return {"customer_id": customer_id, "preferences": merged}
