"""Read-only views of a customer's loyalty: everything they hold, balances, ledger
history, what expires soon, and a checkout quote; and of the whole program, read
set-based (a few grouped queries, never one per member): what the merchant owes
(:func:`liabilities`), how much of what was given is used (:func:`redemption`), members
per tier (:func:`tier_mix`) and the ledger corrections' audit trail (:func:`corrections`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

from sqlalchemy import Connection, func, select

from huitouke.core.orders import readable_ref
from huitouke.errors import ConflictError, InputError, NotFoundError
from huitouke.identity.service import person_accounts
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
from huitouke.loyalty.tiers import person_tier
from huitouke.loyalty.vocab import (
    POINTS,
    POINTS_DEBT,
    SV_BONUS,
    SV_HELD,
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

__all__ = [
    "balances",
    "checkout_quote",
    "corrections",
    "customer_loyalty",
    "expiring_soon",
    "history",
    "liabilities",
    "redemption",
    "summary",
    "tier_mix",
]


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
    membership; the tier is the person's for an account merged with others,
    :mod:`huitouke.identity`), then coupons in the given order with stacking rules checked.
    Coupon thresholds are checked against the amount after the member discount. Read-only."""
    amt = dec(amount, "amount")
    now = ctx.now()
    ln = parse_lines(lines)
    member = conn.execute(select(lt.members).where(lt.members.c.customer_id == customer_id)).first()
    tier: str | Literal[False] | None = False  # the member's own
    # a merged person's accounts: their tier and paid memberships count, also for an account
    # that is no member itself yet (a customer who never ordered on it)
    accounts: tuple[str, ...] | None = None
    if ctx.program.tiers is not None or ctx.program.membership_plans:
        found = person_accounts(conn, [customer_id])[customer_id]
        if len(found) > 1:
            accounts = tuple(found)
            if ctx.program.tiers is not None:
                tier = person_tier(ctx, conn, accounts, now).tier
    mult, pct, source = (
        benefits(ctx, conn, member, now, tier=tier, accounts=accounts)
        if member is not None or accounts is not None
        else (Decimal(1), ZERO, None)
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


# -- the whole program, set-based ------------------------------------------------------------


def liabilities(ctx: LoyaltyContext, conn: Connection, *, as_of: datetime) -> dict[str, Any]:
    """What the merchant owes its members at ``as_of``, from the cached balances (one grouped
    query) and the coupons still usable (one more):

    - ``points``: points outstanding (Σ points balances), the points members owe back
      (``points_debt``, after refunds of spent points), and their ``value`` at the program's
      cash redemption rate (``redemption.points_per_currency_unit``; ``null`` when the
      program does not redeem points for cash);
    - ``stored_value``: the paid principal, the released bonus, the bonus pending release
      (充200送200 installments not yet due) and what group buys hold; ``owed`` = paid +
      bonus + held (what members can spend today);
    - ``coupons``: coupons issued and still valid (status ``issued``, ``valid_until`` after
      ``as_of``): their count, the count by template and the face value of those with a value
      (percent coupons have none).
    """
    at = aware(as_of, "as_of")
    a = lt.accounts.c
    assets = (POINTS, POINTS_DEBT, SV_PAID, SV_BONUS, SV_PENDING, SV_HELD)
    totals = {asset: ZERO for asset in assets}
    holders = {asset: 0 for asset in assets}
    for asset, total, n in conn.execute(
        select(a.asset, func.sum(a.balance), func.count())
        .where(a.asset.in_(assets), a.balance > 0)
        .group_by(a.asset)
    ):
        totals[asset] = Decimal(total or 0)
        holders[asset] = int(n)
    rate = ctx.program.redemption.points_per_currency_unit
    value = money(totals[POINTS] / rate) if rate else None
    c = lt.coupons.c
    by_template = []
    count, face = 0, ZERO
    for template_id, n, total in conn.execute(
        select(c.template_id, func.count(), func.sum(c.value))
        .where(c.status == "issued", c.valid_until > at)
        .group_by(c.template_id)
        .order_by(c.template_id)
    ):
        count += int(n)
        face += Decimal(total or 0)
        by_template.append(
            {"template": template_id, "count": int(n), "face_value": fmt(Decimal(total or 0))}
        )
    return {
        "as_of": iso(at),
        "currency": ctx.program.currency,
        "points": {
            "outstanding": fmt(totals[POINTS]),
            "holders": holders[POINTS],
            "debt": fmt(totals[POINTS_DEBT]),
            "points_per_currency_unit": fmt(rate) if rate else None,
            "value": fmt(value) if value is not None else None,
        },
        "stored_value": {
            "paid": fmt(totals[SV_PAID]),
            "bonus": fmt(totals[SV_BONUS]),
            "held": fmt(totals[SV_HELD]),
            "owed": fmt(totals[SV_PAID] + totals[SV_BONUS] + totals[SV_HELD]),
            "pending_bonus": fmt(totals[SV_PENDING]),
            "holders": holders[SV_PAID],
        },
        "coupons": {"outstanding": count, "face_value": fmt(face), "by_template": by_template},
    }


#: entry kinds that give points by the program's rules (orders, referral rewards)
EARN_KINDS = ("earn", "referral")


def redemption(
    ctx: LoyaltyContext, conn: Connection, *, start: datetime, end: datetime
) -> dict[str, Any]:
    """How much of what was given in ``[start, end)`` is used:

    - coupons: of the coupons issued in the period, how many are redeemed (at any time up to
      now) — ``rate = redeemed / issued`` (``null`` when none were issued);
    - points: the points members redeemed in the period (entries of kind ``redeem``) over the
      points they earned in it (kinds ``earn`` and ``referral``; operator adjustments are
      neither) — ``rate = redeemed / earned``, a flow ratio that may exceed 1 when older
      points are spent.
    """
    lo, hi = aware(start, "start"), aware(end, "end")
    if hi <= lo:
        raise InputError(
            "end must be after start",
            code="input.invalid",
            message_zh="结束时间必须晚于开始时间",
            details={"field": "end"},
        )
    c = lt.coupons.c
    issued, redeemed = conn.execute(
        select(func.count(), func.count(c.redeemed_at)).where(c.issued_at >= lo, c.issued_at < hi)
    ).one()
    a, e = lt.accounts.c, lt.entries.c
    flows = dict(
        conn.execute(
            select(e.kind, func.sum(e.delta))
            .select_from(lt.entries.join(lt.accounts, a.account_id == e.account_id))
            .where(
                a.asset == POINTS,
                e.kind.in_((*EARN_KINDS, "redeem")),
                e.created_at >= lo,
                e.created_at < hi,
            )
            .group_by(e.kind)
        ).all()
    )
    earned = sum((Decimal(flows.get(k) or 0) for k in EARN_KINDS), ZERO)
    spent = -Decimal(flows.get("redeem") or 0)
    return {
        "start": iso(lo),
        "end": iso(hi),
        "coupons": {
            "issued": int(issued),
            "redeemed": int(redeemed),
            "rate": (int(redeemed) / int(issued)) if issued else None,
        },
        "points": {
            "earned": fmt(earned),
            "redeemed": fmt(spent),
            "rate": float(spent / earned) if earned > 0 else None,
        },
    }


def tier_mix(ctx: LoyaltyContext, conn: Connection) -> list[dict[str, Any]]:
    """Members per tier, in the program's order (lowest first), then members of a tier the
    program no longer has (``retired``), then members without a tier (``tier: null``); one
    grouped query."""
    m = lt.members.c
    counts = {
        tier: int(n)
        for tier, n in conn.execute(select(m.tier, func.count()).group_by(m.tier)).all()
    }
    out = []
    levels = list(ctx.program.tiers.levels) if ctx.program.tiers is not None else []
    for lv in levels:
        out.append(
            {
                "tier": lv.id,
                "name": lv.name or lv.id,
                "members": counts.pop(lv.id, 0),
                "retired": False,
            }
        )
    none = counts.pop(None, 0)
    for tier in sorted(counts):
        out.append({"tier": tier, "name": tier, "members": counts[tier], "retired": True})
    out.append({"tier": None, "name": None, "members": none, "retired": False})
    return out


def corrections(
    ctx: LoyaltyContext,
    conn: Connection,
    *,
    customer_id: str | None = None,
    limit: int = 50,
) -> list[dict[str, Any]]:
    """The audit trail of ledger corrections (points and stored-value adjustments), newest
    first: who, when, which balance, by how much, the balance after, and why."""
    k = lt.corrections.c
    q = select(lt.corrections).order_by(k.correction_id.desc()).limit(limit)
    if customer_id is not None:
        q = q.where(k.customer_id == customer_id)
    return [
        {
            "customer_id": r.customer_id,
            "asset": r.asset,
            "delta": fmt(r.delta),
            "balance_after": fmt(r.balance_after),
            "reason": r.reason,
            "actor": r.actor,
            "at": iso(r.created_at),
        }
        for r in conn.execute(q).all()
    ]


def summary(
    ctx: LoyaltyContext, conn: Connection, *, as_of: datetime, start: datetime, end: datetime
) -> dict[str, Any]:
    """The program at a glance, in one read: :func:`liabilities` at ``as_of``,
    :func:`redemption` in ``[start, end)`` and :func:`tier_mix` (the console's loyalty page,
    ``GET /v1/loyalty/summary`` and ``huitouke loyalty summary`` all print this)."""
    return {
        "liabilities": liabilities(ctx, conn, as_of=as_of),
        "redemption": redemption(ctx, conn, start=start, end=end),
        "tiers": tier_mix(ctx, conn),
    }
