"""Read-only views of a customer's loyalty: everything they hold, balances, ledger
history, what expires soon, and a checkout quote.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, select

from huitouke.core.orders import readable_ref
from huitouke.errors import ConflictError, InputError, NotFoundError
from huitouke.loyalty import tables as lt
from huitouke.loyalty.context import LoyaltyContext
from huitouke.loyalty.coupons import (
    canonical_code,
    coupon_json,
    coupon_row,
    coupon_view,
    template_or_default,
)
from huitouke.loyalty.members import active_membership, benefits
from huitouke.loyalty.program import CouponTemplate
from huitouke.loyalty.rules import check_redeemable, compute_earn, coupon_discount, money
from huitouke.loyalty.vocab import (
    POINTS,
    SV_BONUS,
    SV_PAID,
    SV_PENDING,
    ZERO,
    aware,
    dec,
    fmt,
    iso,
    parse_lines,
    stamps_asset,
    stamps_debt_asset,
)

__all__ = ["balances", "checkout_quote", "customer_loyalty", "expiring_soon", "history"]


def expiring_soon(
    ctx: LoyaltyContext,
    conn: Connection,
    customer_id: str | None,
    within_days: int,
    as_of: datetime,
) -> list[dict[str, Any]]:
    """Points, stamps and coupons that expire in ``(as_of, as_of + within_days]``."""
    as_of = aware(as_of, "as_of")
    until = as_of + timedelta(days=within_days)
    lo, a, c = lt.lots.c, lt.accounts.c, lt.coupons.c
    q = (
        select(a.customer_id, a.asset, lo.remaining, lo.expires_at, lo.lot_id)
        .select_from(lt.lots.join(lt.accounts, a.account_id == lo.account_id))
        .where(lo.remaining > 0, lo.expires_at > as_of, lo.expires_at <= until)
        .order_by(lo.expires_at, lo.lot_id)
    )
    if customer_id is not None:
        q = q.where(a.customer_id == customer_id)
    out: list[dict[str, Any]] = []
    for r in conn.execute(q).all():
        kind = "points" if r.asset == POINTS else "stamps"
        item = {
            "customer_id": r.customer_id,
            "kind": kind,
            "amount": fmt(r.remaining),
            "expires_at": iso(r.expires_at),
        }
        if kind == "stamps":
            item["card"] = r.asset.split(":", 1)[1]
        out.append(item)
    cq = select(c.code, c.holder_id, c.template_id, c.value, c.valid_until).where(
        c.status == "issued", c.valid_until > as_of, c.valid_until <= until
    )
    if customer_id is not None:
        cq = cq.where(c.holder_id == customer_id)
    for r in conn.execute(cq.order_by(c.valid_until, c.code)).all():
        out.append(
            {
                "customer_id": r.holder_id,
                "kind": "coupon",
                "code": r.code,
                "template": r.template_id,
                "amount": fmt(r.value),
                "expires_at": iso(r.valid_until),
            }
        )
    out.sort(key=lambda x: (x["expires_at"], x["customer_id"], x["kind"]))
    return out


def customer_loyalty(
    ctx: LoyaltyContext,
    conn: Connection,
    customer_id: str,
    *,
    as_of: datetime | None = None,
    expiring_within_days: int = 30,
) -> dict[str, Any]:
    """Everything a customer holds, as of ``as_of`` (default: the clock)."""
    at = aware(as_of, "as_of") if as_of is not None else ctx.now()
    bal = {}
    a = lt.accounts.c
    for r in conn.execute(select(a.asset, a.balance).where(a.customer_id == customer_id)).all():
        bal[r.asset] = r.balance
    member = conn.execute(select(lt.members).where(lt.members.c.customer_id == customer_id)).first()
    tier = None
    if member is not None and member.tier and ctx.program.tiers is not None:
        lv = ctx.program.tiers.level(member.tier)
        tier = {
            "id": member.tier,
            "name": lv.name if lv else member.tier,
            "since": iso(member.tier_since),
            "valid_until": iso(member.tier_valid_until),
            "grace_until": iso(member.tier_grace_until),
            "benefits": lv.benefits.model_dump(mode="json") if lv else {},
            "preferences": dict(member.preferences or {}),
        }
    cards = []
    sc = lt.stamp_cards.c
    states = {
        r.card_id: r
        for r in conn.execute(select(lt.stamp_cards).where(sc.customer_id == customer_id)).all()
    }
    for card in ctx.program.stamp_cards:
        n = int(bal.get(stamps_asset(card.id), ZERO))
        st_ = states.get(card.id)
        nxt = next(
            (
                r
                for r in card.rewards
                if r.stamps > n and r.stamps > (st_.rewarded_upto if st_ else 0)
            ),
            None,
        )
        cards.append(
            {
                "card": card.id,
                "name": card.name,
                "stamps": n,
                "size": card.size,
                "owed": int(bal.get(stamps_debt_asset(card.id), ZERO)),
                "completed": st_.completed if st_ else 0,
                "next_reward": {"stamps": nxt.stamps, "template": nxt.template} if nxt else None,
            }
        )
    c = lt.coupons.c
    coupons = [
        coupon_json(dict(r._mapping))
        for r in conn.execute(
            select(lt.coupons)
            .where(c.holder_id == customer_id)
            .order_by(c.issued_at.desc(), c.code)
        ).all()
    ]
    for cp in coupons:
        if (
            cp["status"] == "issued"
            and cp["valid_until"]
            and datetime.fromisoformat(cp["valid_until"]) <= at
        ):
            cp["status"] = "expired"
    ms = None
    if ctx.program.membership_plans:
        mrow = active_membership(ctx, conn, customer_id, at)
        if mrow is not None:
            ms = {
                "plan": mrow.plan_id,
                "starts_at": iso(mrow.starts_at),
                "ends_at": iso(mrow.ends_at),
                "status": "active",
            }
    return {
        "points_balance": fmt(bal.get(POINTS, ZERO)),
        "tier": tier,
        "stamp_cards": cards,
        "stored_value": {
            "paid": fmt(bal.get(SV_PAID, ZERO)),
            "bonus": fmt(bal.get(SV_BONUS, ZERO)),
            "pending_bonus": fmt(bal.get(SV_PENDING, ZERO)),
        },
        "coupons": coupons,
        "membership": ms,
        "expiring_soon": expiring_soon(ctx, conn, customer_id, expiring_within_days, at),
    }


def balances(ctx: LoyaltyContext, conn: Connection, customer_id: str) -> dict[str, str]:
    """Every cached balance of a customer by asset, debts included (for operators)."""
    a = lt.accounts.c
    return {
        r.asset: fmt(r.balance) or "0"
        for r in conn.execute(
            select(a.asset, a.balance).where(a.customer_id == customer_id).order_by(a.asset)
        ).all()
    }


def history(
    ctx: LoyaltyContext, conn: Connection, customer_id: str, *, limit: int = 100
) -> list[dict[str, Any]]:
    """The customer's latest ledger entries, newest first."""
    a, e = lt.accounts.c, lt.entries.c
    rows = conn.execute(
        select(
            e.entry_id,
            a.asset,
            e.kind,
            e.delta,
            e.balance_before,
            e.balance_after,
            e.reference,
            e.created_at,
            e.expires_at,
        )
        .select_from(lt.entries.join(lt.accounts, a.account_id == e.account_id))
        .where(a.customer_id == customer_id)
        .order_by(e.entry_id.desc())
        .limit(limit)
    ).all()
    return [
        {
            "entry_id": r.entry_id,
            "asset": r.asset,
            "kind": r.kind,
            "delta": fmt(r.delta),
            "before": fmt(r.balance_before),
            "after": fmt(r.balance_after),
            "reference": readable_ref(r.reference) if r.reference else r.reference,
            "at": iso(r.created_at),
            "expires_at": iso(r.expires_at),
        }
        for r in rows
    ]


def checkout_quote(
    ctx: LoyaltyContext,
    conn: Connection,
    customer_id: str,
    amount: Decimal | str | int,
    lines: Sequence[Mapping[str, Any]] | None = None,
    coupon_codes: Sequence[str] = (),
) -> dict[str, Any]:
    """Price an order for a customer: member discount (the better of tier and paid
    membership), then coupons in the given order with stacking rules checked. Coupon
    thresholds are checked against the amount after the member discount. Read-only."""
    amt = dec(amount, "amount")
    now = ctx.now()
    ln = parse_lines(lines)
    member = conn.execute(select(lt.members).where(lt.members.c.customer_id == customer_id)).first()
    mult, pct, source = (
        benefits(ctx, conn, member, now) if member is not None else (Decimal(1), ZERO, None)
    )
    if coupon_codes and not ctx.program.stacking.member_discount_with_coupons:
        pct, source = ZERO, None
    member_off = money(amt * pct / 100)
    running = amt - member_off
    applied: list[CouponTemplate] = []
    rows = []
    for code in coupon_codes:
        try:
            canon = canonical_code(code)
            row = coupon_row(conn, canon)
            tpl = template_or_default(ctx, row)
            check_redeemable(
                coupon_view(row),
                tpl,
                customer_id=customer_id,
                now=now,
                order_amount=running,
                others_on_order=applied,
                max_per_order=ctx.program.stacking.max_coupons_per_order,
                lines=ln,
            )
        except (ConflictError, NotFoundError, InputError) as exc:
            rows.append({"code": code, "applied": False, "error": exc.code})
            continue
        except Exception as exc:  # ForbiddenError derives from AuthError
            code_ = getattr(exc, "code", None)
            if code_ is None:
                raise
            rows.append({"code": code, "applied": False, "error": code_})
            continue
        d = coupon_discount(tpl, row.value, running, ln)
        running -= d
        applied.append(tpl)
        rows.append({"code": canon, "applied": True, "discount": fmt(d)})
    res = compute_earn(ctx.program.earn, running, now, ctx.zone, lines=ln, member_multiplier=mult)
    return {
        "customer_id": customer_id,
        "currency": ctx.program.currency,
        "subtotal": fmt(amt),
        "member_discount": {"source": source, "percent": fmt(pct), "amount": fmt(member_off)},
        "coupons": rows,
        "total": fmt(running),
        "points_to_earn": fmt(res.points),
        "preferences": dict(member.preferences or {}) if member is not None else {},
    }
