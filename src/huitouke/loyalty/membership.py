"""Paid membership (付费会员): buy and renew a plan's term, paid outside or with
stored value.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, select

from huitouke.errors import ConflictError, InputError, NotFoundError
from huitouke.loyalty import tables as lt
from huitouke.loyalty.context import LoyaltyContext
from huitouke.loyalty.ledger import claim, finish, lock_accounts
from huitouke.loyalty.members import active_membership, ensure_member
from huitouke.loyalty.rules import add_months
from huitouke.loyalty.stored_value import debit_stored_value
from huitouke.loyalty.vocab import SV_BONUS, SV_PAID, fmt, iso

__all__ = ["buy_membership", "renew_membership"]


def _term_end(ctx: LoyaltyContext, start: datetime, plan_id: str) -> datetime:
    plan = ctx.program.plan(plan_id)
    if plan.term_days is not None:
        return start + timedelta(days=plan.term_days)
    assert plan.term_months is not None
    local = start.astimezone(ctx.zone)
    d = add_months(local.date(), plan.term_months)
    return datetime.combine(d, local.timetz().replace(tzinfo=None), tzinfo=ctx.zone).astimezone(UTC)


def _pay_fee(
    ctx: LoyaltyContext,
    conn: Connection,
    customer_id: str,
    fee: Decimal,
    paid_with: str,
    key: str,
    ref: str,
    now: datetime,
) -> None:
    if paid_with == "external" or fee <= 0:
        return
    if paid_with != "stored_value":
        raise InputError(
            "paid_with must be 'external' or 'stored_value'",
            code="input.invalid",
            details={"field": "paid_with"},
        )
    accts = lock_accounts(conn, [(customer_id, SV_PAID), (customer_id, SV_BONUS)], now)
    debit_stored_value(ctx, conn, accts, customer_id, fee, kind="spend", key=key, ref=ref, now=now)


def buy_membership(
    ctx: LoyaltyContext,
    conn: Connection,
    customer_id: str,
    plan_id: str,
    *,
    idempotency_key: str,
    paid_with: str = "external",
) -> dict[str, Any]:
    """Buy a paid membership starting now; refused while one is active (renew instead)."""
    plan = ctx.program.plan(plan_id)
    now = ctx.now()
    op_key = f"membership:{idempotency_key}"
    prior = claim(
        conn,
        op_key,
        "membership_buy",
        customer_id,
        now,
        request={"customer_id": customer_id, "plan_id": plan_id, "paid_with": paid_with},
    )
    if prior is not None:
        return prior
    ensure_member(ctx, conn, customer_id, now)
    if active_membership(ctx, conn, customer_id, now) is not None:
        raise ConflictError(
            "a membership is already active; renew it instead",
            code="membership.active",
            message_zh="已有生效中的付费会员,请续费",
            details={"customer_id": customer_id},
        )
    _pay_fee(ctx, conn, customer_id, plan.fee, paid_with, op_key, f"membership:{plan.id}", now)
    end = _term_end(ctx, now, plan.id)
    conn.execute(
        lt.memberships.insert(),
        {
            "customer_id": customer_id,
            "plan_id": plan.id,
            "starts_at": now,
            "ends_at": end,
            "fee": plan.fee,
            "currency": ctx.program.currency,
            "paid_with": paid_with,
            "status": "active",
            "idempotency_key": op_key,
            "created_at": now,
        },
    )
    return finish(
        conn,
        op_key,
        {
            "customer_id": customer_id,
            "plan": plan.id,
            "starts_at": iso(now),
            "ends_at": iso(end),
            "fee": fmt(plan.fee),
            "paid_with": paid_with,
        },
    )


def renew_membership(
    ctx: LoyaltyContext,
    conn: Connection,
    customer_id: str,
    *,
    idempotency_key: str,
    plan_id: str | None = None,
    paid_with: str = "external",
) -> dict[str, Any]:
    """Renew: a new term starting when the current one ends (or now, if it lapsed)."""
    now = ctx.now()
    op_key = f"membership:{idempotency_key}"
    prior = claim(
        conn,
        op_key,
        "membership_renew",
        customer_id,
        now,
        request={"customer_id": customer_id, "plan_id": plan_id, "paid_with": paid_with},
    )
    if prior is not None:
        return prior
    ensure_member(ctx, conn, customer_id, now)
    ms = lt.memberships.c
    last = conn.execute(
        select(lt.memberships)
        .where(ms.customer_id == customer_id, ms.status != "cancelled")
        .order_by(ms.ends_at.desc())
        .limit(1)
    ).first()
    if last is None and plan_id is None:
        raise NotFoundError(
            "no membership to renew",
            code="membership.not_found",
            message_zh="没有可续费的付费会员",
            details={"customer_id": customer_id},
        )
    plan = ctx.program.plan(plan_id or (last.plan_id if last is not None else ""))
    start = max(now, last.ends_at) if last is not None else now
    end = _term_end(ctx, start, plan.id)
    _pay_fee(ctx, conn, customer_id, plan.fee, paid_with, op_key, f"membership:{plan.id}", now)
    conn.execute(
        lt.memberships.insert(),
        {
            "customer_id": customer_id,
            "plan_id": plan.id,
            "starts_at": start,
            "ends_at": end,
            "fee": plan.fee,
            "currency": ctx.program.currency,
            "paid_with": paid_with,
            "status": "active",
            "idempotency_key": op_key,
            "created_at": now,
        },
    )
    return finish(
        conn,
        op_key,
        {
            "customer_id": customer_id,
            "plan": plan.id,
            "starts_at": iso(start),
            "ends_at": iso(end),
            "fee": fmt(plan.fee),
            "paid_with": paid_with,
        },
    )
