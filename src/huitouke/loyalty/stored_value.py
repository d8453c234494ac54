"""Stored value (储值): top-ups with their bonus schedule, payments, refunds of the
paid balance, give-backs of payments on orders. A refund *event* of an order gives back
its stored value in :mod:`~huitouke.loyalty.order_batch`.

A customer merged with other accounts into one person (:mod:`huitouke.identity`) pays with
the person's stored value, as points are redeemed (:func:`~huitouke.loyalty.points.
redeem_points`): the program's spending order (paid or bonus first) over the person's
combined balances, each balance drawn from the paying account first, then from the
person's other accounts in their order (the primary first). Each account touched gets its
own entries referencing the order, so an unmerge needs no reversal; a give-back of the
order (a refund event, :func:`reverse_stored_value_spend`) returns to every account what
it paid, in the proportion it paid it.
"""

from __future__ import annotations

import secrets as _secrets
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, select, update

from huitouke.errors import ConflictError, InputError, NotFoundError
from huitouke.identity.service import person_accounts
from huitouke.loyalty import tables as lt
from huitouke.loyalty.context import LoyaltyContext
from huitouke.loyalty.ledger import Account, claim, finish, lock_accounts, post, record_correction
from huitouke.loyalty.members import ensure_member
from huitouke.loyalty.rules import (
    bonus_schedule,
    currency_unit,
    split_stored_spend,
    stored_value_return_split,
    topup_bonus,
)
from huitouke.loyalty.vocab import (
    SV_BONUS,
    SV_PAID,
    SV_PENDING,
    SV_RETURN,
    ZERO,
    StoredValueOnOrder,
    aware,
    dec,
    fmt,
    iso,
    positive,
    stored_value_on_orders,
    stored_value_payers,
)

__all__ = [
    "adjust_stored_value",
    "debit_stored_value",
    "refund_stored_value",
    "release_bonus",
    "return_stored_value",
    "reverse_stored_value_spend",
    "spend_stored_value",
    "sv_balances",
    "topup",
]


def topup(
    ctx: LoyaltyContext,
    conn: Connection,
    customer_id: str,
    amount: Decimal | str | int,
    *,
    idempotency_key: str,
) -> dict[str, Any]:
    """Top up: the paid amount is available at once; the bonus follows its schedule."""
    amt = positive(dec(amount, "amount"), "amount")
    sv = ctx.program.stored_value
    if amt < sv.min_topup:
        raise ConflictError(
            f"the minimum top-up is {sv.min_topup}",
            code="stored_value.below_minimum",
            details={"min_topup": str(sv.min_topup)},
        )
    now = ctx.now()
    op_key = f"topup:{idempotency_key}"
    prior = claim(
        conn,
        op_key,
        "topup",
        customer_id,
        now,
        request={"customer_id": customer_id, "amount": amt},
    )
    if prior is not None:
        return prior
    ensure_member(ctx, conn, customer_id, now)
    accts = lock_accounts(
        conn, [(customer_id, SV_PAID), (customer_id, SV_BONUS), (customer_id, SV_PENDING)], now
    )
    post(
        conn,
        accts[(customer_id, SV_PAID)],
        amt,
        kind="topup",
        key=op_key,
        now=now,
        reference=idempotency_key,
    )
    bonus, rule = topup_bonus(sv.topup_rules, amt)
    schedule = []
    released = ZERO
    if bonus > 0 and rule is not None:
        post(
            conn,
            accts[(customer_id, SV_PENDING)],
            bonus,
            kind="bonus_granted",
            key=f"{op_key}:bonus",
            now=now,
            reference=idempotency_key,
        )
        for seq, (at, part) in enumerate(bonus_schedule(rule, bonus, now, ctx.zone)):
            due = at <= now
            conn.execute(
                lt.bonus_releases.insert(),
                {
                    "customer_id": customer_id,
                    "topup_key": op_key,
                    "seq": seq,
                    "release_at": at,
                    "amount": part,
                    "status": "released" if due else "pending",
                    "done_at": now if due else None,
                },
            )
            if due:
                post(
                    conn,
                    accts[(customer_id, SV_PENDING)],
                    -part,
                    kind="bonus_release",
                    key=f"{op_key}:release:{seq}",
                    now=now,
                    reference=idempotency_key,
                )
                post(
                    conn,
                    accts[(customer_id, SV_BONUS)],
                    part,
                    kind="bonus_release",
                    key=f"{op_key}:release:{seq}:in",
                    now=now,
                    reference=idempotency_key,
                )
                released += part
            schedule.append({"release_at": iso(at), "amount": fmt(part)})
    return finish(
        conn,
        op_key,
        {
            "customer_id": customer_id,
            "paid": fmt(amt),
            "bonus": fmt(bonus),
            "bonus_released": fmt(released),
            "schedule": schedule,
            "balances": sv_balances(accts, customer_id),
        },
    )


#: the stored-value balances an operator may correct, by the name the doors use
ADJUSTABLE = {"paid": SV_PAID, "bonus": SV_BONUS}


def adjust_stored_value(
    ctx: LoyaltyContext,
    conn: Connection,
    customer_id: str,
    delta: Decimal | str | int,
    *,
    balance: str,
    reason: str,
    idempotency_key: str,
    actor: str | None = None,
) -> dict[str, Any]:
    """Operator correction of a stored-value balance (``balance``: ``paid``, the principal,
    or ``bonus``, the released bonus) by ``delta`` (> 0 adds, < 0 takes), with a ``reason``.

    One ledger entry of kind ``adjust`` and one row of the corrections' audit trail (with
    ``actor``); a correction that would leave the balance below zero is refused
    (``stored_value.insufficient``) and changes nothing. ``delta`` has at most the
    currency's minor unit (0.01 CNY). Idempotent by ``idempotency_key``.
    """
    asset = ADJUSTABLE.get(balance)
    if asset is None:
        raise InputError(
            f"balance: must be paid or bonus, not {balance!r}",
            code="input.invalid",
            message_zh=f"balance:只能是 paid(本金)或 bonus(赠送),不能是 {balance!r}",
            details={"field": "balance"},
        )
    d = dec(delta, "delta")
    unit = currency_unit(ctx.program.currency)
    if d == 0 or d != d.quantize(unit):
        raise InputError(
            f"delta: a non-zero amount in steps of {unit} {ctx.program.currency} is required",
            code="input.invalid",
            message_zh=f"delta:须为非零金额,最小单位 {unit} {ctx.program.currency}",
            details={"field": "delta"},
        )
    now = ctx.now()
    op_key = f"sv_adjust:{idempotency_key}"
    prior = claim(
        conn,
        op_key,
        "sv_adjust",
        customer_id,
        now,
        request={"customer_id": customer_id, "delta": d, "balance": balance, "reason": reason},
    )
    if prior is not None:
        return prior
    accts = lock_accounts(
        conn, [(customer_id, SV_PAID), (customer_id, SV_BONUS), (customer_id, SV_PENDING)], now
    )
    acct = accts[(customer_id, asset)]
    if acct.balance + d < 0:
        raise ConflictError(
            f"stored value ({balance}) {fmt(acct.balance)} {ctx.program.currency} is less than "
            f"the {fmt(-d)} to take: a correction cannot make a balance negative",
            code="stored_value.insufficient",
            message_zh=f"储值{'本金' if balance == 'paid' else '赠送'}余额 {fmt(acct.balance)} "
            f"{ctx.program.currency} 不足扣减 {fmt(-d)}:调整不能使余额为负",
            details={"balance": balance, "available": fmt(acct.balance), "requested": fmt(-d)},
        )
    ensure_member(ctx, conn, customer_id, now)
    post(conn, acct, d, kind="adjust", key=op_key, now=now, reference=f"adjust:{reason}"[:255])
    record_correction(
        conn,
        op_key,
        customer_id=customer_id,
        asset=asset,
        delta=d,
        balance_after=acct.balance,
        reason=reason,
        actor=actor,
        now=now,
    )
    return finish(
        conn,
        op_key,
        {
            "customer_id": customer_id,
            "balance": balance,
            "delta": fmt(d),
            "reason": reason,
            "balances": sv_balances(accts, customer_id),
        },
    )


def sv_balances(
    accts: Mapping[tuple[str, str], Account], customer_id: str
) -> dict[str, str | None]:
    """The customer's stored-value balances for a result."""

    def b(asset: str) -> str | None:
        acct = accts.get((customer_id, asset))
        return fmt(acct.balance if acct else ZERO)

    return {"paid": b(SV_PAID), "bonus": b(SV_BONUS), "pending_bonus": b(SV_PENDING)}


def release_bonus(
    ctx: LoyaltyContext, conn: Connection, as_of: datetime, *, limit: int | None = None
) -> dict[str, Any]:
    """Release every bonus installment due at ``as_of`` (pending → bonus balance)."""
    as_of = aware(as_of, "as_of")
    now = ctx.now()
    br = lt.bonus_releases.c
    q = (
        select(lt.bonus_releases)
        .where(br.status == "pending", br.release_at <= as_of)
        .order_by(br.customer_id, br.release_id)
    )
    if limit:
        q = q.limit(limit)
    n, total = 0, ZERO
    for r in conn.execute(q).all():
        accts = lock_accounts(conn, [(r.customer_id, SV_PENDING), (r.customer_id, SV_BONUS)], now)
        res = conn.execute(
            update(lt.bonus_releases)
            .where(br.release_id == r.release_id, br.status == "pending")
            .values(status="released", done_at=now)
        )
        if not res.rowcount:
            continue
        post(
            conn,
            accts[(r.customer_id, SV_PENDING)],
            -r.amount,
            kind="bonus_release",
            key=f"{r.topup_key}:release:{r.seq}",
            now=now,
            reference=r.topup_key,
        )
        post(
            conn,
            accts[(r.customer_id, SV_BONUS)],
            r.amount,
            kind="bonus_release",
            key=f"{r.topup_key}:release:{r.seq}:in",
            now=now,
            reference=r.topup_key,
        )
        n += 1
        total += r.amount
    return {"released": n, "amount": fmt(total)}


def spend_stored_value(
    ctx: LoyaltyContext,
    conn: Connection,
    customer_id: str,
    amount: Decimal | str | int,
    *,
    order_id: str,
    idempotency_key: str | None = None,
) -> dict[str, Any]:
    """Pay (part of) an order from stored value, paid or bonus first per the program; a
    customer merged with other accounts pays with the person's (see the module docstring:
    ``taken_from``, ``person_id`` and ``person_balances`` in the result).

    With ``stored_value.return_on_order_refund`` a payment recorded after the ledger has
    applied a refund of the order (the till reported them out of order) gives back at
    once the refunded share of everything paid on the order, as the refund event would
    have had the payment come first (``returned_at_once``); the order's later events
    count it, so nothing comes back twice.
    """
    amt = positive(dec(amount, "amount"), "amount")
    now = ctx.now()
    # Without a key every call is a payment of its own: two payments on one order are
    # two spends (a till that retries must send a key to be safe).
    op_key = f"sv_spend:{idempotency_key or f'{order_id}:{_secrets.token_hex(12)}'}"
    prior = claim(
        conn,
        op_key,
        "sv_spend",
        customer_id,
        now,
        request={"customer_id": customer_id, "amount": amt, "order_id": order_id}
        if idempotency_key
        else None,
    )
    if prior is not None:
        return prior
    person = person_accounts(conn, [customer_id])[customer_id]
    others = [a for a in person if a != customer_id]
    accts = lock_accounts(
        conn,
        [(customer_id, SV_PAID), (customer_id, SV_BONUS)],
        now,
        optional=[(a, s) for a in others for s in (SV_PAID, SV_BONUS)],
    )
    taken: dict[str, tuple[Decimal, Decimal]] = {}
    if not others:
        from_paid, from_bonus = debit_stored_value(
            ctx,
            conn,
            accts,
            customer_id,
            amt,
            kind="spend",
            key=op_key,
            ref=f"order:{order_id}",
            now=now,
        )
    else:
        taken = _spend_across(ctx, conn, accts, [customer_id, *others], amt, op_key, order_id, now)
        from_paid = sum((p for p, _ in taken.values()), ZERO)
        from_bonus = sum((b for _, b in taken.values()), ZERO)
    returned = None
    if ctx.program.stored_value.return_on_order_refund:
        # Read after the lock on the stored-value accounts, which a refund event of this
        # customer takes before reading the payments: one of the two sees the other.
        returned = _return_on_refunded_order(
            ctx, conn, accts, customer_id, person, order_id, key=f"{op_key}:sv_return", now=now
        )
    out: dict[str, Any] = {
        "customer_id": customer_id,
        "order_id": order_id,
        "amount": fmt(amt),
        "from_paid": fmt(from_paid),
        "from_bonus": fmt(from_bonus),
        "returned_at_once": returned,
        "balances": sv_balances(accts, customer_id),
    }
    if others:
        out["person_id"] = person[0]
        out["taken_from"] = {
            cid: {"paid": fmt(p), "bonus": fmt(b)} for cid, (p, b) in sorted(taken.items())
        }
        out["person_balances"] = {
            k: fmt(sum((Decimal(accts[(a, asset)].balance) for a in person), ZERO)) or "0"
            for k, asset in (("paid", SV_PAID), ("bonus", SV_BONUS))
        }
    return finish(conn, op_key, out)


def _entry_key(key: str, payer: str, cid: str) -> str:
    """An entry's key: ``key`` on the paying account, ``key:<account>`` on another."""
    return key if cid == payer else f"{key}:{cid}"


def _spend_across(
    ctx: LoyaltyContext,
    conn: Connection,
    accts: Mapping[tuple[str, str], Account],
    accounts: list[str],
    amount: Decimal,
    op_key: str,
    order_id: str,
    now: datetime,
) -> dict[str, tuple[Decimal, Decimal]]:
    """Pay ``amount`` from a merged person's stored value (``accounts``: the payer first):
    the program's spending order over the combined paid and bonus balances, each drawn
    from the accounts in order; one entry per account and balance touched (keys
    ``<op>:paid`` / ``<op>:bonus`` on the payer, ``<op>:<account>:paid`` … on the others),
    referencing ``order:<id>``. Answers what each account gave, (paid, bonus)."""
    payer = accounts[0]
    paid = sum((accts[(a, SV_PAID)].balance for a in accounts), ZERO)
    bonus = sum((accts[(a, SV_BONUS)].balance for a in accounts), ZERO)
    try:
        want = split_stored_spend(paid, bonus, amount, ctx.program.stored_value.spend_order)
    except ConflictError as exc:
        exc.details["person_id"] = accounts[0]
        raise
    taken = {a: [ZERO, ZERO] for a in accounts}
    for i, (asset, total) in enumerate(((SV_PAID, want[0]), (SV_BONUS, want[1]))):
        left = total
        for a in accounts:
            if left <= 0:
                break
            acct = accts[(a, asset)]
            part = min(acct.balance, left)
            if part <= 0:
                continue
            post(
                conn,
                acct,
                -part,
                kind="spend",
                key=f"{_entry_key(op_key, payer, a)}:{asset.removeprefix('stored_')}",
                now=now,
                reference=f"order:{order_id}",
            )
            taken[a][i] += part
            left -= part
    return {a: (p, b) for a, (p, b) in taken.items() if p or b}


def _payers(
    conn: Connection,
    accts: Mapping[tuple[str, str], Account],
    first: str,
    order_id: str,
    now: datetime,
) -> tuple[dict[tuple[str, str], Account], list[tuple[str, StoredValueOnOrder]]]:
    """The accounts whose stored value paid for ``order_id`` (``first`` first) with what
    each paid and got back, their stored-value accounts locked (added to ``accts``)."""
    payers = stored_value_payers(conn, [order_id]).get(order_id, [])
    payers.sort(key=lambda c: (c != first, c))
    extra = [(c, s) for c in payers for s in (SV_PAID, SV_BONUS) if (c, s) not in accts]
    locked = dict(accts)
    if extra:
        locked.update(lock_accounts(conn, [], now, optional=extra))
    recs = stored_value_on_orders(conn, [(c, order_id) for c in payers])
    return locked, [(c, recs[(c, order_id)]) for c in payers if (c, order_id) in recs]


def _return_on_refunded_order(
    ctx: LoyaltyContext,
    conn: Connection,
    accts: Mapping[tuple[str, str], Account],
    payer: str,
    person: tuple[str, ...],
    order_id: str,
    *,
    key: str,
    now: datetime,
) -> dict[str, Any] | None:
    """Give back what the order's applied refund owes of the stored value paid on it
    (the order event's own rule) to every account that paid (``payer``'s entries keep the
    single account's keys), when the ledger has the order as one of ``person``'s accounts'
    and (partly) refunded; ``None`` when nothing is owed."""
    lo = lt.orders.c
    row = conn.execute(
        select(lo.customer_id, lo.amount, lo.status, lo.refunded_amount).where(
            lo.order_id == order_id
        )
    ).first()
    if row is None or row.customer_id not in person:
        return None
    full = row.status in ("refunded", "cancelled")
    if not full and row.refunded_amount <= 0:
        return None
    unit = currency_unit(ctx.program.currency)
    locked, paid_by = _payers(conn, accts, payer, order_id, now)
    give_all = to_paid_all = to_bonus_all = ZERO
    per: dict[str, dict[str, str | None]] = {}
    for cid, rec in paid_by:
        give = rec.owed(row.amount, row.refunded_amount, full=full, unit=unit)
        if give <= 0:
            continue
        to_paid, to_bonus = return_stored_value(
            ctx, conn, locked, cid, rec, give, key=_entry_key(key, payer, cid),
            ref=f"order:{order_id}", now=now,
        )  # fmt: skip
        give_all, to_paid_all, to_bonus_all = (
            give_all + give, to_paid_all + to_paid, to_bonus_all + to_bonus
        )  # fmt: skip
        per[cid] = {"amount": fmt(give), "paid": fmt(to_paid), "bonus": fmt(to_bonus)}
    if give_all <= 0:
        return None
    out: dict[str, Any] = {
        "amount": fmt(give_all), "paid": fmt(to_paid_all), "bonus": fmt(to_bonus_all)
    }  # fmt: skip
    if set(per) - {payer}:
        out["accounts"] = per
    return out


def refund_stored_value(
    ctx: LoyaltyContext,
    conn: Connection,
    customer_id: str,
    amount: Decimal | str | int | None = None,
    *,
    idempotency_key: str,
) -> dict[str, Any]:
    """Refund unspent *paid* balance (all of it by default) to the customer.

    With ``stored_value.refund_forfeits_bonus`` a refund that empties the paid balance
    also forfeits the bonus balance and every pending bonus installment (the bonus was
    given for keeping the money with the merchant).
    """
    now = ctx.now()
    op_key = f"sv_refund:{idempotency_key}"
    prior = claim(
        conn,
        op_key,
        "sv_refund",
        customer_id,
        now,
        request={
            "customer_id": customer_id,
            "amount": None if amount is None else dec(amount, "amount"),
        },
    )
    if prior is not None:
        return prior
    accts = lock_accounts(
        conn, [(customer_id, SV_PAID), (customer_id, SV_BONUS), (customer_id, SV_PENDING)], now
    )
    paid = accts[(customer_id, SV_PAID)]
    amt = paid.balance if amount is None else positive(dec(amount, "amount"), "amount")
    if amt > paid.balance:
        raise ConflictError(
            f"only {paid.balance} of paid stored value is refundable",
            code="stored_value.insufficient",
            message_zh=f"可退储值本金仅 {paid.balance}",
            details={"refundable": str(paid.balance), "requested": str(amt)},
        )
    post(conn, paid, -amt, kind="refund", key=op_key, now=now, reference=idempotency_key)
    forfeited = ZERO
    if ctx.program.stored_value.refund_forfeits_bonus and paid.balance == 0:
        bonus, pending = accts[(customer_id, SV_BONUS)], accts[(customer_id, SV_PENDING)]
        forfeited = bonus.balance + pending.balance
        post(
            conn,
            bonus,
            -bonus.balance,
            kind="bonus_forfeited",
            key=f"{op_key}:bonus",
            now=now,
            reference=idempotency_key,
        )
        post(
            conn,
            pending,
            -pending.balance,
            kind="bonus_forfeited",
            key=f"{op_key}:pending",
            now=now,
            reference=idempotency_key,
        )
        br = lt.bonus_releases.c
        conn.execute(
            update(lt.bonus_releases)
            .where(br.customer_id == customer_id, br.status == "pending")
            .values(status="forfeited", done_at=now)
        )
    return finish(
        conn,
        op_key,
        {
            "customer_id": customer_id,
            "refunded": fmt(amt),
            "bonus_forfeited": fmt(forfeited),
            "balances": sv_balances(accts, customer_id),
        },
    )


def reverse_stored_value_spend(
    ctx: LoyaltyContext,
    conn: Connection,
    customer_id: str,
    order_id: str,
    amount: Decimal | str | int | None = None,
    *,
    idempotency_key: str,
) -> dict[str, Any]:
    """Give back stored value paid on an order (a refund of a stored-value payment).

    ``amount`` (default: everything not given back yet) may not exceed what the
    customer's stored-value payments on ``order_id`` took minus what came back since
    (``stored_value.return_exceeds_spend``; ``stored_value.spend_not_found`` when no
    stored value was paid on the order). It returns to the paid and bonus balances in
    the proportion the payment took them: cumulatively, the bonus part is rounded down
    to the currency's minor unit and the remainder goes to paid (see
    :func:`~huitouke.loyalty.rules.stored_value_return_split`). One entry per balance
    (kind ``spend_reversal``, keys ``<op>:paid`` / ``<op>:bonus``) referencing
    ``order:<order_id>``; idempotent by ``idempotency_key``.

    For a customer merged with other accounts, the payments of every account of the
    person on the order count, given back the payer's first, each to its own balances
    (``accounts`` in the result when more than the customer's own).

    Order events that refund an order give stored value back by themselves when the
    program's ``stored_value.return_on_order_refund`` is on (the default); this
    operation is for refunds not reported as order events, and counts what they gave.
    """
    amt = None if amount is None else positive(dec(amount, "amount"), "amount")
    now = ctx.now()
    op_key = f"sv_reverse:{idempotency_key}"
    prior = claim(
        conn,
        op_key,
        "sv_reverse",
        customer_id,
        now,
        request={"customer_id": customer_id, "order_id": order_id, "amount": amt},
    )
    if prior is not None:
        return prior
    accts = lock_accounts(conn, [], now, optional=[(customer_id, SV_PAID), (customer_id, SV_BONUS)])
    person = person_accounts(conn, [customer_id])[customer_id]
    locked, paid_by = _payers(conn, accts, customer_id, order_id, now)
    # the person's payments (an account unmerged since gives back its own by its own id)
    paid_by = [(c, r) for c, r in paid_by if c in person]
    spent = sum((r.spent for _, r in paid_by), ZERO)
    back = sum((r.returned for _, r in paid_by), ZERO)
    if spent <= 0:
        raise NotFoundError(
            f"customer {customer_id} paid nothing with stored value on order {order_id}",
            code="stored_value.spend_not_found",
            message_zh=f"顾客 {customer_id} 的订单 {order_id} 没有储值支付",
            details={"customer_id": customer_id, "order_id": order_id},
        )
    left = spent - back
    if amt is None:
        if left <= 0:
            raise ConflictError(
                f"the {spent} paid with stored value on order {order_id} was all "
                "given back already",
                code="stored_value.return_exceeds_spend",
                message_zh=f"订单 {order_id} 的储值支付 {spent} 已全部退回",
                details={"spent": str(spent), "returned": str(back)},
            )
        amt = left
    if len(paid_by) == 1:
        cid, rec = paid_by[0]
        parts = [(cid, rec, amt)]
    else:  # the payer's first, then the others', each up to what is left of it
        if amt > left:  # refused with the totals, as for one account
            stored_value_return_split(spent, ZERO, back, ZERO, amt, unit=Decimal(1))
        parts, rest = [], amt
        for cid, rec in paid_by:
            part = min(rest, rec.spent - rec.returned)
            if part > 0:
                parts.append((cid, rec, part))
                rest -= part
    to_paid = to_bonus = ZERO
    per: dict[str, dict[str, str | None]] = {}
    for cid, rec, part in parts:
        p, b = return_stored_value(
            ctx, conn, locked, cid, rec, part, key=_entry_key(op_key, customer_id, cid),
            ref=f"order:{order_id}", now=now,
        )  # fmt: skip
        to_paid, to_bonus = to_paid + p, to_bonus + b
        per[cid] = {"amount": fmt(part), "paid": fmt(p), "bonus": fmt(b)}
    out: dict[str, Any] = {
        "customer_id": customer_id,
        "order_id": order_id,
        "amount": fmt(amt),
        "to_paid": fmt(to_paid),
        "to_bonus": fmt(to_bonus),
        "spent": fmt(spent),
        "returned": fmt(sum((r.returned for _, r in paid_by), ZERO)),
        "balances": sv_balances(locked, customer_id),
    }
    if set(per) - {customer_id}:
        out["accounts"] = per
    return finish(conn, op_key, out)


def return_stored_value(
    ctx: LoyaltyContext,
    conn: Connection,
    accts: Mapping[tuple[str, str], Account],
    customer_id: str,
    rec: StoredValueOnOrder,
    amount: Decimal,
    *,
    key: str,
    ref: str,
    now: datetime,
) -> tuple[Decimal, Decimal]:
    """Post a give-back of ``amount`` split like the payment; updates ``rec``."""
    to_paid, to_bonus = stored_value_return_split(
        rec.spent_paid,
        rec.spent_bonus,
        rec.back_paid,
        rec.back_bonus,
        amount,
        unit=currency_unit(ctx.program.currency),
    )
    post(
        conn,
        accts[(customer_id, SV_PAID)],
        to_paid,
        kind=SV_RETURN,
        key=f"{key}:paid",
        now=now,
        reference=ref,
    )
    post(
        conn,
        accts[(customer_id, SV_BONUS)],
        to_bonus,
        kind=SV_RETURN,
        key=f"{key}:bonus",
        now=now,
        reference=ref,
    )
    rec.back_paid += to_paid
    rec.back_bonus += to_bonus
    return to_paid, to_bonus


def debit_stored_value(
    ctx: LoyaltyContext,
    conn: Connection,
    accts: Mapping[tuple[str, str], Any],
    customer_id: str,
    amount: Decimal,
    *,
    kind: str,
    key: str,
    ref: str,
    now: datetime,
) -> tuple[Decimal, Decimal]:
    """Take ``amount`` from the paid and bonus balances in the program's spending order,
    one entry each (keys ``<key>:paid`` and ``<key>:bonus``); returns the two parts."""
    paid, bonus = accts[(customer_id, SV_PAID)], accts[(customer_id, SV_BONUS)]
    from_paid, from_bonus = split_stored_spend(
        paid.balance, bonus.balance, amount, ctx.program.stored_value.spend_order
    )
    post(conn, paid, -from_paid, kind=kind, key=f"{key}:paid", now=now, reference=ref)
    post(conn, bonus, -from_bonus, kind=kind, key=f"{key}:bonus", now=now, reference=ref)
    return from_paid, from_bonus
