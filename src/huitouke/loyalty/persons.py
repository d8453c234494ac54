"""A person's loyalty (同一个人的会员权益): the accounts :mod:`huitouke.identity` merged into
one person, seen as one, with each account's own view kept.

The ledger is never rewritten for a merge: every entry, lot, coupon and tier stays with
the account it was posted to, so an unmerge needs no reversal — each account keeps exactly
what its own ledger says, including what was spent from it while merged. The person's
standing is computed on read:

- **points and stored value**: the sums of the accounts' balances;
- **tier**: the higher of the accounts' own tiers and the tier that the person's combined
  tier metric (orders, spend or points in the tier window, summed over the accounts)
  qualifies for — two accounts each below the gold threshold are gold together;
- **coupons**: every coupon any account holds (each still held by its own account);
- **accounts**: each account's own holdings (:func:`~huitouke.loyalty.views.customer_loyalty`).

Using it as one: a points redemption by any account spends the person's points
(:func:`~huitouke.loyalty.points.redeem_points`).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection

from huitouke.identity.service import person_accounts
from huitouke.loyalty.context import LoyaltyContext
from huitouke.loyalty.tiers import person_tier
from huitouke.loyalty.views import customer_loyalty
from huitouke.loyalty.vocab import ZERO, aware, fmt

__all__ = ["person_loyalty"]


def person_loyalty(
    ctx: LoyaltyContext,
    conn: Connection,
    customer_id: str,
    *,
    as_of: datetime | None = None,
    expiring_within_days: int = 30,
) -> dict[str, Any]:
    """The standing of ``customer_id``'s person (see the module docstring); for an account
    in no person, the same shape with that one account."""
    at = aware(as_of, "as_of") if as_of is not None else ctx.now()
    accounts = person_accounts(conn, [customer_id])[customer_id]
    per = {
        a: customer_loyalty(ctx, conn, a, as_of=at, expiring_within_days=expiring_within_days)
        for a in accounts
    }

    def total(get: Any) -> str:
        return fmt(sum((Decimal(get(v)) for v in per.values()), ZERO)) or "0"

    coupons = [
        {**cp, "holder": a}
        for a in accounts
        for cp in per[a]["coupons"]
        if cp["status"] == "issued"
    ]
    coupons.sort(key=lambda c: (c.get("valid_until") or "", c["code"]))
    return {
        "customer_id": customer_id,
        "person_id": accounts[0],
        "accounts": list(accounts),
        "points_balance": total(lambda v: v["points_balance"]),
        "stored_value": {
            k: total(lambda v, k=k: v["stored_value"][k])
            for k in ("paid", "bonus", "pending_bonus")
        },
        "tier": _person_tier(ctx, conn, accounts, at),
        "coupons": coupons,
        "per_account": per,
    }


def _person_tier(
    ctx: LoyaltyContext, conn: Connection, accounts: tuple[str, ...], at: datetime
) -> dict[str, Any] | None:
    tiers = ctx.program.tiers
    if tiers is None:
        return None
    got = person_tier(ctx, conn, accounts, at)
    level = tiers.level(got.tier)
    return {
        "id": got.tier,
        "name": level.name if level else got.tier,
        # "combined": the accounts' metric together qualifies; else the account whose own
        # tier (kept until its review) is higher
        "from": got.source,
        "metric": tiers.metric,
        "combined_metric": fmt(got.metric) or "0",
        "account_tiers": got.own,
        "benefits": level.benefits.model_dump(mode="json") if level else {},
    }
