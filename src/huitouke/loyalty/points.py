"""Points (积分) outside orders: the credit primitive (debt settled first), operator
adjustments and redemptions for rewards or a cash discount. Orders earn and take back
points in :mod:`~huitouke.loyalty.order_batch`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, select

from huitouke.errors import ConflictError, InputError
from huitouke.i18n import t
from huitouke.identity.service import person_accounts
from huitouke.loyalty import tables as lt
from huitouke.loyalty.context import LoyaltyContext
from huitouke.loyalty.coupons import issue
from huitouke.loyalty.ledger import (
    Account,
    claim,
    credit_lot,
    debit_fifo,
    finish,
    lock_accounts,
    lots_of,
    post,
    record_correction,
)
from huitouke.loyalty.members import ensure_member
from huitouke.loyalty.program import decimal_places
from huitouke.loyalty.rules import LotView, allocate_fifo, expiry_at, money
from huitouke.loyalty.vocab import POINTS, POINTS_DEBT, ZERO, dec, fmt, positive

__all__ = ["adjust_points", "balance", "earn_points", "points_amount", "redeem_points"]


def earn_points(
    ctx: LoyaltyContext,
    conn: Connection,
    customer_id: str,
    points: Decimal,
    *,
    key: str,
    ref: str,
    now: datetime,
    earned_at: datetime,
    kind: str,
) -> tuple[Decimal, Decimal, int | None]:
    """Credit points, paying any points debt first. Returns (credited, debt_settled, lot_id).

    For operator adjustments and referral rewards (``kind``); orders earn points in the batch
    ledger (:mod:`~huitouke.loyalty.order_batch`), which writes every order effect."""
    if points <= 0:
        return ZERO, ZERO, None
    accts = lock_accounts(conn, [(customer_id, POINTS)], now, optional=[(customer_id, POINTS_DEBT)])
    debt = accts[(customer_id, POINTS_DEBT)]
    settle = min(points, debt.balance)
    post(conn, debt, -settle, kind="debt_settled", key=f"{key}:debt", now=now, reference=ref)
    lot = credit_lot(
        conn,
        accts[(customer_id, POINTS)],
        points - settle,
        kind=kind,
        key=key,
        now=now,
        earned_at=earned_at,
        expires_at=expiry_at(ctx.program.points_expiry, earned_at, ctx.zone),
        reference=ref,
    )
    return points - settle, settle, lot


def points_amount(ctx: LoyaltyContext, v: Decimal, field: str) -> Decimal:
    """``v`` when it has no more decimal places than the program's ``points.decimals``."""
    decimals = ctx.program.points.decimals
    if decimal_places(v) > decimals:
        raise InputError(
            t("loyalty.points_fractional", "en", field=field, decimals=decimals),
            code="points.fractional",
            message_zh=t("loyalty.points_fractional", "zh", field=field, decimals=decimals),
            details={"field": field, "decimals": decimals, "value": str(v)},
        )
    return v


def adjust_points(
    ctx: LoyaltyContext,
    conn: Connection,
    customer_id: str,
    delta: Decimal | int | str,
    *,
    reason: str,
    idempotency_key: str,
    actor: str | None = None,
) -> dict[str, Any]:
    """Operator adjustment: a credit (a new lot, paying debt first) or a FIFO debit; a debit
    beyond the balance is refused (``points.insufficient``). ``actor`` (who made it) goes to
    the corrections' audit trail with the reason (:func:`~huitouke.loyalty.views.corrections`)."""
    d = points_amount(ctx, dec(delta, "delta"), "delta")
    if d == 0:
        raise InputError("delta must not be 0", code="input.invalid", details={"field": "delta"})
    now = ctx.now()
    op_key = f"adjust:{idempotency_key}"
    prior = claim(
        conn,
        op_key,
        "points_adjust",
        customer_id,
        now,
        request={"customer_id": customer_id, "delta": d, "reason": reason},
    )
    if prior is not None:
        return prior
    ensure_member(ctx, conn, customer_id, now)
    ref = f"adjust:{reason}"[:255]
    if d > 0:
        credited, settled, _ = earn_points(
            ctx, conn, customer_id, d, key=op_key, ref=ref, now=now, earned_at=now, kind="adjust"
        )
        out = {
            "customer_id": customer_id,
            "credited": fmt(credited),
            "debt_settled": fmt(settled),
        }
    else:
        accts = lock_accounts(conn, [(customer_id, POINTS)], now)
        debit_fifo(
            conn,
            accts[(customer_id, POINTS)],
            -d,
            kind="adjust",
            key=op_key,
            now=now,
            reference=ref,
        )
        out = {"customer_id": customer_id, "debited": fmt(-d)}
    after = balance(conn, customer_id, POINTS)
    record_correction(
        conn,
        op_key,
        customer_id=customer_id,
        asset=POINTS,
        delta=d,
        balance_after=after,
        reason=reason,
        actor=actor,
        now=now,
    )
    out["points_balance"] = fmt(after)
    out["reason"] = reason
    return finish(conn, op_key, out)


def redeem_points(
    ctx: LoyaltyContext,
    conn: Connection,
    customer_id: str,
    points: Decimal | int | str | None = None,
    *,
    reward: str | None = None,
    idempotency_key: str,
) -> dict[str, Any]:
    """Spend points, earliest-expiring first: for a catalogue ``reward`` (a coupon) or
    as a cash discount at ``redemption.points_per_currency_unit``. A customer merged with
    other accounts into one person spends the person's points, earliest-expiring first
    across the accounts (``taken_from`` names what each gave); the reward's coupon goes to
    ``customer_id``."""
    now = ctx.now()
    red = ctx.program.redemption
    rw = ctx.program.reward(reward) if reward is not None else None
    if rw is not None:
        pts = rw.points if points is None else dec(points, "points")
        if pts != rw.points:
            raise InputError(
                f"points: reward {rw.id} costs {rw.points}",
                code="input.invalid",
                details={"field": "points"},
            )
    else:
        if points is None:
            raise InputError(
                "points: required without a reward",
                code="input.missing_field",
                details={"field": "points"},
            )
        pts = positive(dec(points, "points"), "points")
        if red.points_per_currency_unit is None:
            raise ConflictError(
                "this program does not redeem points for cash",
                code="points.cash_redemption_disabled",
            )
    pts = points_amount(ctx, pts, "points")
    if pts < red.min_points:
        raise ConflictError(
            f"at least {red.min_points} points per redemption",
            code="points.below_minimum",
            details={"min_points": str(red.min_points)},
        )
    op_key = f"redeem_points:{idempotency_key}"
    prior = claim(
        conn,
        op_key,
        "points_redeem",
        customer_id,
        now,
        request={"customer_id": customer_id, "points": pts, "reward": reward},
    )
    if prior is not None:
        return prior
    reference = f"reward:{reward}" if reward else "discount"
    person = person_accounts(conn, [customer_id])[customer_id]
    out: dict[str, Any] = {"customer_id": customer_id, "points": fmt(pts)}
    if len(person) == 1:
        accts = lock_accounts(conn, [(customer_id, POINTS)], now)
        debit_fifo(
            conn, accts[(customer_id, POINTS)], pts, kind="redeem", key=op_key, now=now,
            reference=reference,
        )  # fmt: skip
        out["points_balance"] = fmt(accts[(customer_id, POINTS)].balance)
    else:
        out.update(_redeem_across(conn, customer_id, person, pts, op_key, reference, now))
    if rw is not None:
        out["reward"] = rw.id
        out["coupon"] = issue(
            ctx,
            conn,
            ctx.program.template(rw.template),
            customer_id,
            key=op_key,
            now=now,
            source="points",
            source_ref=idempotency_key,
        )
    else:
        assert red.points_per_currency_unit is not None
        out["discount"] = fmt(money(pts / red.points_per_currency_unit))
        out["currency"] = ctx.program.currency
    return finish(conn, op_key, out)


def _redeem_across(
    conn: Connection,
    customer_id: str,
    person: Sequence[str],
    pts: Decimal,
    op_key: str,
    reference: str,
    now: datetime,
) -> dict[str, Any]:
    """Spend ``pts`` of a merged person's points (:mod:`huitouke.identity`): earliest-
    expiring first across its accounts, one debit per account touched, each entry on the
    account whose lot it takes (nothing moves between accounts, so an unmerge leaves each
    account what its own ledger says)."""
    keys = [(a, POINTS) for a in person]
    accts = lock_accounts(conn, [], now, optional=keys)  # none created: taken from lots
    owner: dict[int, Account] = {}
    lots: list[LotView] = []
    for key in keys:
        acct = accts[key]
        if acct.account_id:
            for lot in lots_of(conn, acct.account_id):
                owner[lot.lot_id] = acct
                lots.append(lot)
    allocations, shortfall = allocate_fifo(lots, pts)
    if shortfall > 0:
        total = sum((accts[k].balance for k in keys), ZERO)
        raise ConflictError(
            f"points balance {total} of person {person[0]} cannot cover {pts}",
            code="points.insufficient",
            message_zh=f"该顾客(合并后 {person[0]})积分余额 {total} 不足 {pts}",
            details={"asset": POINTS, "balance": str(total), "requested": str(pts),
                     "person_id": person[0]},
        )  # fmt: skip
    taken: dict[str, Decimal] = {}
    for lot_id, take in allocations:
        cid = owner[lot_id].customer_id
        taken[cid] = taken.get(cid, ZERO) + take
    for cid, amount in taken.items():
        debit_fifo(
            conn, accts[(cid, POINTS)], amount, kind="redeem", key=op_key, now=now,
            reference=reference,
        )  # fmt: skip
    return {
        "person_id": person[0],
        "taken_from": {cid: fmt(v) for cid, v in sorted(taken.items())},
        "points_balance": fmt(sum((accts[k].balance for k in keys), ZERO)),
        "account_points_balance": fmt(accts[(customer_id, POINTS)].balance),
    }


def balance(conn: Connection, customer_id: str, asset: str) -> Decimal:
    """The cached balance of one of a customer's assets (0 without an account)."""
    a = lt.accounts.c
    v = conn.execute(
        select(a.balance).where(a.customer_id == customer_id, a.asset == asset)
    ).scalar_one_or_none()
    return v if v is not None else ZERO
