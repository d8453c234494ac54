"""Expiry: point and stamp lots, coupons and memberships due at an instant, then the
tier review.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select, update

from huitouke.loyalty import tables as lt
from huitouke.loyalty.context import LoyaltyContext
from huitouke.loyalty.ledger import lock_accounts, post
from huitouke.loyalty.tiers import review_tiers
from huitouke.loyalty.vocab import POINTS, ZERO, aware, fmt

__all__ = ["expire"]


def expire(
    ctx: LoyaltyContext, conn: Connection, as_of: datetime, *, limit: int | None = None
) -> dict[str, Any]:
    """Expire what is due at ``as_of``: point and stamp lots, coupons, memberships,
    and review tiers whose period ended. Safe to re-run (each lot expires once)."""
    as_of = aware(as_of, "as_of")
    now = ctx.now()
    out: dict[str, Any] = {
        "points": "0",
        "stamps": "0",
        "lots": 0,
        "coupons": 0,
        "memberships": 0,
    }
    lo, a = lt.lots.c, lt.accounts.c
    q = (
        select(lo.lot_id, lo.account_id, lo.remaining, a.customer_id, a.asset)
        .select_from(lt.lots.join(lt.accounts, a.account_id == lo.account_id))
        .where(lo.remaining > 0, lo.expires_at <= as_of)
        .order_by(lo.account_id, lo.lot_id)
    )
    if limit:
        q = q.limit(limit)
    due = conn.execute(q).all()
    by_account: dict[int, list[Any]] = {}
    for r in due:
        by_account.setdefault(r.account_id, []).append(r)
    pts = stp = ZERO
    for _account_id, rows in sorted(by_account.items()):
        cust, asset = rows[0].customer_id, rows[0].asset
        acct = lock_accounts(conn, [(cust, asset)], now)[(cust, asset)]
        for r in rows:
            rem = conn.execute(select(lo.remaining).where(lo.lot_id == r.lot_id)).scalar_one()
            if rem <= 0:
                continue
            conn.execute(update(lt.lots).where(lo.lot_id == r.lot_id).values(remaining=ZERO))
            post(
                conn,
                acct,
                -rem,
                kind="expire",
                key=f"expire:{r.lot_id}",
                now=now,
                reference=f"lot:{r.lot_id}",
                lot_id=r.lot_id,
            )
            out["lots"] += 1
            if asset == POINTS:
                pts += rem
            else:
                stp += rem
    out["points"], out["stamps"] = fmt(pts), fmt(stp)
    c = lt.coupons.c
    cq = select(c.code).where(c.status == "issued", c.valid_until <= as_of).order_by(c.code)
    if limit:
        cq = cq.limit(limit)
    for code in conn.execute(cq).scalars().all():
        res = conn.execute(
            update(lt.coupons).where(c.code == code, c.status == "issued").values(status="expired")
        )
        if res.rowcount:
            conn.execute(
                lt.coupon_events.insert(),
                {
                    "code": code,
                    "kind": "expired",
                    "old_status": "issued",
                    "new_status": "expired",
                    "created_at": now,
                },
            )
            out["coupons"] += 1
    ms = lt.memberships.c
    res = conn.execute(
        update(lt.memberships)
        .where(ms.status == "active", ms.ends_at <= as_of)
        .values(status="expired")
    )
    out["memberships"] = int(res.rowcount or 0)
    out["tiers"] = review_tiers(ctx, conn, as_of, limit=limit)
    return out
