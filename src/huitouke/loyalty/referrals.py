"""Referrals (转介绍): referral codes, registration of a referred customer, the
attribution at their first paid order (called by the batch ledger) and the rewards
released after the refund window.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, func, select, update

from huitouke.core.orders import split_order_ref
from huitouke.errors import ConflictError, NotFoundError
from huitouke.loyalty import codes
from huitouke.loyalty import tables as lt
from huitouke.loyalty.context import LoyaltyContext
from huitouke.loyalty.coupons import issue
from huitouke.loyalty.ledger import insert_ignore, lock_accounts
from huitouke.loyalty.members import ensure_member
from huitouke.loyalty.points import earn_points
from huitouke.loyalty.program import RewardSpec
from huitouke.loyalty.rules import tier_period_end
from huitouke.loyalty.vocab import POINTS, POINTS_DEBT, OrderEvent, aware, fmt, iso
from huitouke.store import tables as st

__all__ = ["attribute_referral", "referral_code", "register_referral", "release_referral_rewards"]


def referral_code(ctx: LoyaltyContext, conn: Connection, customer_id: str) -> dict[str, Any]:
    """The customer's referral code (created once, then stable)."""
    now = ctx.now()
    member = ensure_member(ctx, conn, customer_id, now)
    if member.referral_code:
        return {"customer_id": customer_id, "code": member.referral_code}
    for _ in range(5):
        code = codes.generate(length=7, prefix="R")
        exists = conn.execute(
            select(lt.members.c.customer_id).where(lt.members.c.referral_code == code)
        ).first()
        if exists is None:
            break
    conn.execute(
        update(lt.members)
        .where(lt.members.c.customer_id == customer_id, lt.members.c.referral_code.is_(None))
        .values(referral_code=code, updated_at=now)
    )
    final = conn.execute(
        select(lt.members.c.referral_code).where(lt.members.c.customer_id == customer_id)
    ).scalar_one()
    return {"customer_id": customer_id, "code": final}


def register_referral(
    ctx: LoyaltyContext, conn: Connection, referred_customer_id: str, code: str
) -> dict[str, Any]:
    """Record that ``referred_customer_id`` arrived with a referral ``code`` (before
    their first paid order). Self-referral is refused; a second code is ignored."""
    now = ctx.now()
    try:
        canon = codes.normalize(code, check=True)
    except ValueError as exc:
        raise NotFoundError(
            f"no referral code {code!r}",
            code="referral.not_found",
            message_zh=f"没有这个推荐码 {code!r}",
            details={"code": code},
        ) from exc
    ref = conn.execute(
        select(lt.members.c.customer_id).where(lt.members.c.referral_code == canon)
    ).scalar_one_or_none()
    if ref is None:
        raise NotFoundError(
            f"no referral code {code!r}",
            code="referral.not_found",
            message_zh=f"没有这个推荐码 {code!r}",
            details={"code": code},
        )
    if ref == referred_customer_id:
        raise ConflictError(
            "a customer cannot refer themselves",
            code="referral.self",
            message_zh="不能推荐自己",
            details={"code": canon},
        )
    member = ensure_member(ctx, conn, referred_customer_id, now)
    if member.paid_orders > 0:
        raise ConflictError(
            "only new customers can be referred",
            code="referral.not_new",
            message_zh="只能推荐新顾客",
            details={"customer_id": referred_customer_id},
        )
    inserted = insert_ignore(
        conn,
        lt.referrals,
        {
            "referred_id": referred_customer_id,
            "referrer_id": ref,
            "code": canon,
            "status": "registered",
            "created_at": now,
            "updated_at": now,
        },
        "referred_id",
    )
    row = conn.execute(
        select(lt.referrals).where(lt.referrals.c.referred_id == referred_customer_id)
    ).one()
    return {
        "referred": referred_customer_id,
        "referrer": row.referrer_id,
        "status": row.status,
        "new": bool(inserted),
    }


def attribute_referral(
    ctx: LoyaltyContext, conn: Connection, o: OrderEvent, now: datetime
) -> dict[str, Any] | None:
    """At a referred customer's first paid order (called by the batch ledger): attribute the
    referral, releasing rewards after the refund window, or reject it with a reason."""
    cfg = ctx.program.referral
    r = lt.referrals.c
    row = conn.execute(
        select(lt.referrals).where(r.referred_id == o.customer_id, r.status == "registered")
    ).first()
    if row is None or cfg is None:
        return None
    reason = None
    if o.amount < cfg.min_first_order_amount:
        reason = "below_minimum"
    else:
        cu = st.customers.c
        phones = dict(
            conn.execute(
                select(cu.customer_id, cu.phone).where(
                    cu.customer_id.in_([row.referrer_id, o.customer_id])
                )
            ).all()
        )
        p1, p2 = _phone(phones.get(row.referrer_id)), _phone(phones.get(o.customer_id))
        if p1 and p1 == p2:
            reason = "same_phone"
        elif cfg.max_referrals_per_referrer is not None:
            n = conn.execute(
                select(func.count()).where(
                    r.referrer_id == row.referrer_id, r.status.in_(("attributed", "rewarded"))
                )
            ).scalar_one()
            if n >= cfg.max_referrals_per_referrer:
                reason = "limit_reached"
    if reason:
        conn.execute(
            update(lt.referrals)
            .where(r.referred_id == o.customer_id)
            .values(status="rejected", reason=reason, first_order_id=o.ref, updated_at=now)
        )
        return {"status": "rejected", "reason": reason, "referrer": row.referrer_id}
    release = o.ordered_at + timedelta(days=cfg.refund_window_days)
    conn.execute(
        update(lt.referrals)
        .where(r.referred_id == o.customer_id)
        .values(status="attributed", first_order_id=o.ref, release_at=release, updated_at=now)
    )
    return {"status": "attributed", "referrer": row.referrer_id, "release_at": iso(release)}


def _give(
    ctx: LoyaltyContext,
    conn: Connection,
    customer_id: str,
    spec: RewardSpec,
    *,
    key: str,
    now: datetime,
    ref: str,
) -> dict[str, Any]:
    out: dict[str, Any] = {"customer_id": customer_id, "points": "0", "coupon": None}
    if spec.points > 0:
        _credited, _settled, _ = earn_points(
            ctx,
            conn,
            customer_id,
            spec.points,
            key=f"{key}:points",
            ref=ref,
            now=now,
            earned_at=now,
            kind="referral",
        )
        out["points"] = fmt(spec.points)
    if spec.template:
        out["coupon"] = issue(
            ctx,
            conn,
            ctx.program.template(spec.template),
            customer_id,
            key=f"{key}:coupon",
            now=now,
            source="referral",
            source_ref=ref,
            strict_limit=False,
        )
    return out


def release_referral_rewards(
    ctx: LoyaltyContext, conn: Connection, as_of: datetime, *, limit: int | None = None
) -> dict[str, Any]:
    """Reward both sides of every attribution whose refund window has passed at ``as_of``
    (unless the first order was fully refunded), plus referrer milestones."""
    cfg = ctx.program.referral
    out: dict[str, Any] = {"rewarded": 0, "rejected": 0, "milestones": 0, "details": []}
    if cfg is None:
        return out
    as_of = aware(as_of, "as_of")
    now = ctx.now()
    r = lt.referrals.c
    q = (
        select(lt.referrals)
        .where(r.status == "attributed", r.release_at <= as_of)
        .order_by(r.referred_id)
    )
    if limit:
        q = q.limit(limit)
    for row in conn.execute(q).all():
        first_source, first_id = split_order_ref(row.first_order_id or "")
        o = conn.execute(
            select(lt.orders.c.status).where(
                lt.orders.c.source == first_source, lt.orders.c.order_id == first_id
            )
        ).scalar_one_or_none()
        if o in ("refunded", "cancelled"):
            conn.execute(
                update(lt.referrals)
                .where(r.referred_id == row.referred_id, r.status == "attributed")
                .values(status="rejected", reason="first_order_refunded", updated_at=now)
            )
            out["rejected"] += 1
            continue
        res = conn.execute(
            update(lt.referrals)
            .where(r.referred_id == row.referred_id, r.status == "attributed")
            .values(status="rewarded", updated_at=now)
        )
        if not res.rowcount:
            continue
        lock_accounts(
            conn,
            [
                (row.referrer_id, POINTS),
                (row.referrer_id, POINTS_DEBT),
                (row.referred_id, POINTS),
                (row.referred_id, POINTS_DEBT),
            ],
            now,
        )
        key = f"referral:{row.referred_id}"
        a = _give(
            ctx, conn, row.referrer_id, cfg.referrer_reward, key=f"{key}:referrer", now=now, ref=key
        )
        b = _give(
            ctx, conn, row.referred_id, cfg.referred_reward, key=f"{key}:referred", now=now, ref=key
        )
        out["rewarded"] += 1
        out["details"].append({"referrer": a, "referred": b})
        count = conn.execute(
            select(func.count()).where(r.referrer_id == row.referrer_id, r.status == "rewarded")
        ).scalar_one()
        for ms in cfg.milestones:
            if ms.count != count:
                continue
            out["milestones"] += 1
            _give(
                ctx,
                conn,
                row.referrer_id,
                ms.reward,
                key=f"referral_milestone:{row.referrer_id}:{ms.count}",
                now=now,
                ref=f"milestone:{ms.count}",
            )
            if ms.upgrade_tier and ctx.program.tiers is not None:
                tiers = ctx.program.tiers
                mem = ensure_member(ctx, conn, row.referrer_id, now)
                if tiers.rank(ms.upgrade_tier) > tiers.rank(mem.tier):
                    conn.execute(
                        update(lt.members)
                        .where(lt.members.c.customer_id == row.referrer_id)
                        .values(
                            tier=ms.upgrade_tier,
                            tier_since=now,
                            tier_valid_until=tier_period_end(tiers, now, ctx.zone),
                            tier_grace_until=None,
                            updated_at=now,
                        )
                    )
    return out


def _phone(p: str | None) -> str | None:
    if not p:
        return None
    digits = "".join(ch for ch in p if ch.isdigit())
    if digits.startswith("86") and len(digits) == 13:
        digits = digits[2:]
    return digits or None
