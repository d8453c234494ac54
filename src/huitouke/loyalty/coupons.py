"""Coupons (优惠券): issue, redeem (one winner among concurrent redemptions), void,
gift, look up; the coupon row's JSON shape shared with the batch ledger.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, bindparam, func, or_, select, update

from huitouke.errors import ConflictError, NotFoundError
from huitouke.identity.service import person_accounts
from huitouke.loyalty import codes
from huitouke.loyalty import tables as lt
from huitouke.loyalty.context import LoyaltyContext
from huitouke.loyalty.ledger import claim, finish, insert_ignore
from huitouke.loyalty.members import ensure_member
from huitouke.loyalty.program import CouponTemplate
from huitouke.loyalty.rules import (
    CouponView,
    check_redeemable,
    coupon_discount,
    coupon_value_for_order,
)
from huitouke.loyalty.vocab import ZERO, dec, fmt, iso, parse_lines

__all__ = [
    "canonical_code",
    "coupon",
    "coupon_json",
    "coupon_row",
    "coupon_view",
    "gift_coupon",
    "issue",
    "issue_coupon",
    "issued_counts",
    "no_coupon",
    "redeem_coupon",
    "template_or_default",
    "void_coupon",
]

# Statements of the hot paths, built once with bind parameters (see loyalty.ledger).
_cp = lt.coupons.c
_COUPON = select(lt.coupons).where(_cp.code == bindparam("b_code"))
_COUPON_FOR_UPDATE = _COUPON.with_for_update()
_COUPON_AND_ORDER_COUPONS = select(lt.coupons).where(
    or_(_cp.code == bindparam("b_code"), _cp.redeemed_order_id == bindparam("b_order"))
)
_REDEEM = (
    update(lt.coupons)
    .where(
        _cp.code == bindparam("b_code"),
        _cp.status == "issued",
        _cp.holder_id == bindparam("b_holder"),
    )
    .values(
        status="redeemed",
        redeemed_order_id=bindparam("b_order"),
        redemption_id=bindparam("b_rid"),
        redeemed_at=bindparam("b_at", type_=_cp.redeemed_at.type),
        discount=bindparam("b_discount", type_=_cp.discount.type),
    )
)
_COUPON_EVENT = lt.coupon_events.insert()


def canonical_code(code: str) -> str:
    """The coupon code normalised and its check digit verified (``coupon.not_found`` if not)."""
    try:
        return codes.normalize(code, check=True)
    except ValueError as exc:
        raise NotFoundError(
            f"no coupon {code!r} ({exc})",
            code="coupon.not_found",
            message_zh=f"没有这张优惠券 {code!r}(校验位不符,可能输错了)",
            details={"code": code, "reason": str(exc)},
        ) from exc


def _issued_count(conn: Connection, template_id: str, customer_id: str) -> int:
    c = lt.coupons.c
    return int(
        conn.execute(
            select(func.count()).where(c.template_id == template_id, c.issued_to == customer_id)
        ).scalar_one()
    )


def issued_counts(
    conn: Connection, template_id: str, customer_ids: Sequence[str]
) -> dict[str, int]:
    """How many coupons of ``template_id`` each of ``customer_ids`` has ever received (the
    count ``max_per_customer`` caps), in grouped queries of at most 500 ids; absent: none."""
    c = lt.coupons.c
    out: dict[str, int] = {}
    ids = list(customer_ids)
    for i in range(0, len(ids), 500):
        chunk = ids[i : i + 500]
        for cid, n in conn.execute(
            select(c.issued_to, func.count())
            .where(c.template_id == template_id, c.issued_to.in_(chunk))
            .group_by(c.issued_to)
        ):
            out[cid] = int(n)
    return out


def issue(
    ctx: LoyaltyContext,
    conn: Connection,
    template: CouponTemplate,
    customer_id: str,
    *,
    key: str,
    now: datetime,
    source: str,
    source_ref: str | None,
    order_amount: Decimal | None = None,
    strict_limit: bool = True,
) -> dict[str, Any] | None:
    """Issue one coupon of ``template`` (its value: a spend-back share of ``order_amount``);
    ``None`` when the per-customer limit is reached and ``strict_limit`` is off."""
    if (
        template.max_per_customer is not None
        and _issued_count(conn, template.id, customer_id) >= template.max_per_customer
    ):
        if strict_limit:
            raise ConflictError(
                f"customer already received {template.max_per_customer} coupon(s) of {template.id}",
                code="coupon.limit_reached",
                message_zh=f"该顾客领取 {template.id} 已达上限 {template.max_per_customer} 张",
                details={"template_id": template.id, "customer_id": customer_id},
            )
        return None
    value = (
        coupon_value_for_order(template, order_amount or ZERO)
        if template.kind == "spend_back"
        else template.value
    )
    valid_from = now + timedelta(days=template.delay_days)
    valid_until = valid_from + timedelta(days=template.valid_days)
    row = {
        "template_id": template.id,
        "kind": template.kind,
        "holder_id": customer_id,
        "issued_to": customer_id,
        "status": "issued",
        "value": value,
        "percent": template.percent,
        "currency": ctx.program.currency,
        "valid_from": valid_from,
        "valid_until": valid_until,
        "issued_at": now,
        "source": source,
        "source_ref": source_ref,
        "transfers": 0,
        "issue_key": key,
    }
    for _ in range(5):
        code = codes.generate()
        if insert_ignore(conn, lt.coupons, {**row, "code": code}, "code"):
            break
    else:  # pragma: no cover - 55 random bits colliding five times
        raise ConflictError("could not generate a unique coupon code", code="coupon.code_collision")
    conn.execute(
        lt.coupon_events.insert(),
        {
            "code": code,
            "kind": "issued",
            "old_status": None,
            "new_status": "issued",
            "to_customer": customer_id,
            "new_value": value,
            "order_id": source_ref if source == "order" else None,
            "created_at": now,
        },
    )
    return coupon_json(
        {**row, "code": code, "redeemed_order_id": None, "redeemed_at": None, "discount": None}
    )


def coupon_json(r: Mapping[str, Any]) -> dict[str, Any]:
    """A coupon row as the JSON the use cases return (also the batch ledger's order coupons)."""
    return {
        "code": r["code"],
        "status": r["status"],
        "template": r["template_id"],
        "kind": r["kind"],
        "value": fmt(r["value"]),
        "percent": fmt(r["percent"]),
        "currency": r["currency"],
        "holder": r["holder_id"],
        "issued_to": r["issued_to"],
        "valid_from": iso(r["valid_from"]),
        "valid_until": iso(r["valid_until"]),
        "issued_at": iso(r["issued_at"]),
        "source": r["source"],
        "transfers": r["transfers"],
        "redeemed_order_id": r.get("redeemed_order_id"),
        "redeemed_at": iso(r.get("redeemed_at")),
        "discount": fmt(r.get("discount")),
    }


def coupon_row(conn: Connection, code: str, *, lock: bool = False) -> Any:
    """The coupon row of a normalised ``code`` (locked on PostgreSQL with ``lock``)."""
    stmt = _COUPON_FOR_UPDATE if lock and conn.dialect.name == "postgresql" else _COUPON
    row = conn.execute(stmt, {"b_code": code}).first()
    if row is None:
        raise no_coupon(code)
    return row


def no_coupon(code: str) -> NotFoundError:
    """The error for an unknown coupon code."""
    return NotFoundError(
        f"no coupon {code!r}",
        code="coupon.not_found",
        message_zh=f"没有这张优惠券 {code!r}",
        details={"code": code},
    )


def template_or_default(ctx: LoyaltyContext, row: Any) -> CouponTemplate:
    """The coupon's template; a template that left the program after issuing gives way to
    the coupon's own terms (used by the batch ledger for refunded spend-back coupons too)."""
    try:
        return ctx.program.template(row.template_id)
    except NotFoundError:
        # The template left the program after issuing: the coupon keeps its own terms.
        return CouponTemplate(id=row.template_id, kind="fixed", value=row.value or Decimal("0.01"))


def coupon_view(row: Any) -> CouponView:
    """The fields of a coupon row the pure redemption check reads."""
    return CouponView(
        row.code,
        row.template_id,
        row.kind,
        row.status,
        row.holder_id,
        row.value,
        row.percent,
        row.valid_from,
        row.valid_until,
    )


def issue_coupon(
    ctx: LoyaltyContext,
    conn: Connection,
    template_id: str,
    customer_id: str,
    *,
    idempotency_key: str,
) -> dict[str, Any]:
    """Issue one coupon of ``template_id`` to ``customer_id`` (per-customer limit checked)."""
    template = ctx.program.template(template_id)
    now = ctx.now()
    op_key = f"issue:{idempotency_key}"
    prior = claim(
        conn,
        op_key,
        "coupon_issue",
        customer_id,
        now,
        request={"template_id": template_id, "customer_id": customer_id},
    )
    if prior is not None:
        return prior
    ensure_member(ctx, conn, customer_id, now)
    c = issue(
        ctx,
        conn,
        template,
        customer_id,
        key=op_key,
        now=now,
        source="manual",
        source_ref=idempotency_key,
    )
    assert c is not None
    return finish(conn, op_key, c)


def redeem_coupon(
    ctx: LoyaltyContext,
    conn: Connection,
    code: str,
    *,
    order_id: str,
    customer_id: str,
    order_amount: Decimal | str | None = None,
    redemption_id: str | None = None,
    lines: Sequence[Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """Redeem a coupon on an order; of concurrent redemptions of one code exactly one wins.

    The state change is a conditional ``UPDATE … WHERE status = 'issued' AND holder_id =
    :customer`` whose row count decides the winner; losers get
    ``ConflictError(code="coupon.already_redeemed")``. A coupon held by another account of
    the customer's person (:mod:`huitouke.identity`) is redeemed for it (``holder`` in the
    result); it stays that account's coupon in its history.
    """
    canon = canonical_code(code)
    amount = dec(order_amount, "order_amount") if order_amount is not None else None
    now = ctx.now()
    op_key = f"redeem:{redemption_id}" if redemption_id else f"redeem:{canon}:{order_id}"
    request = None
    if redemption_id:
        request = {
            "code": canon,
            "order_id": order_id,
            "customer_id": customer_id,
            "order_amount": amount,
            "lines": [dict(ln) for ln in lines or ()],
        }

    def same_coupon_and_order(prior: Mapping[str, Any]) -> None:
        if prior.get("code") != canon or prior.get("order_id") != order_id:
            raise ConflictError(
                f"redemption id {redemption_id!r} was used for another coupon or order",
                code="coupon.redemption_id_reused",
                message_zh="该核销编号已用于另一张券或订单",
                details={"redemption_id": redemption_id},
            )

    prior = claim(
        conn,
        op_key,
        "coupon_redeem",
        customer_id,
        now,
        request=request,
        reused=same_coupon_and_order,
    )
    if prior is not None:
        same_coupon_and_order(prior)
        return prior
    # The coupon and the coupons already redeemed on this order, in one query.
    rows = conn.execute(_COUPON_AND_ORDER_COUPONS, {"b_code": canon, "b_order": order_id})
    row, others_rows = None, []
    for r in rows:
        if r.code == canon:
            row = r
        elif r.status == "redeemed" and r.redeemed_order_id == order_id:
            others_rows.append(r)
    if row is None:
        raise no_coupon(canon)
    template = template_or_default(ctx, row)
    others = [template_or_default(ctx, r) for r in others_rows]
    ln = parse_lines(lines)
    holder = customer_id
    if (
        row.holder_id != customer_id
        and row.holder_id in person_accounts(conn, [customer_id])[customer_id]
    ):
        holder = row.holder_id  # held by another account of the same person (huitouke.identity)
    check_redeemable(
        coupon_view(row),
        template,
        customer_id=holder,
        now=now,
        order_amount=amount,
        others_on_order=others,
        max_per_order=ctx.program.stacking.max_coupons_per_order,
        lines=ln,
    )
    discount = coupon_discount(template, row.value, amount, ln) if amount is not None else row.value
    res = conn.execute(
        _REDEEM,
        {
            "b_code": canon,
            "b_holder": holder,
            "b_order": order_id,
            "b_rid": redemption_id or op_key,
            "b_at": now,
            "b_discount": discount,
        },
    )
    if res.rowcount != 1:
        # Lost a race: report the state the winner left.
        fresh = coupon_row(conn, canon)
        check_redeemable(
            coupon_view(fresh), template, customer_id=holder, now=now, order_amount=None
        )
        raise ConflictError(
            "coupon already redeemed",
            code="coupon.already_redeemed",
            message_zh="优惠券已被使用",
            details={"code": canon},
        )
    conn.execute(
        _COUPON_EVENT,
        {
            "code": canon,
            "kind": "redeemed",
            "old_status": "issued",
            "new_status": "redeemed",
            "from_customer": holder,
            "order_id": order_id,
            "created_at": now,
        },
    )
    result = {
        "code": canon,
        "status": "redeemed",
        "order_id": order_id,
        "customer_id": customer_id,
        "template": row.template_id,
        "kind": row.kind,
        "discount": fmt(discount),
        "currency": row.currency,
        "redeemed_at": iso(now),
        "redemption_id": redemption_id or op_key,
    }
    if holder != customer_id:
        result["holder"] = holder  # the account of the person that held it
    return finish(conn, op_key, result)


def void_coupon(
    ctx: LoyaltyContext,
    conn: Connection,
    code: str,
    *,
    reason: str = "",
    idempotency_key: str | None = None,
) -> dict[str, Any]:
    """Void an unredeemed coupon (voiding a voided coupon again changes nothing)."""
    canon = canonical_code(code)
    now = ctx.now()
    op_key = f"void:{idempotency_key or canon}"
    request = {"code": canon, "reason": reason} if idempotency_key else None
    prior = claim(conn, op_key, "coupon_void", None, now, request=request)
    if prior is not None:
        return prior
    row = coupon_row(conn, canon, lock=True)
    if row.status == "redeemed":
        raise ConflictError(
            "a redeemed coupon cannot be voided",
            code="coupon.already_redeemed",
            message_zh="已使用的优惠券不能作废",
            details={"code": canon},
        )
    if row.status == "issued":
        c = lt.coupons.c
        res = conn.execute(
            update(lt.coupons).where(c.code == canon, c.status == "issued").values(status="voided")
        )
        if res.rowcount != 1:
            raise ConflictError(
                "coupon changed concurrently",
                code="coupon.already_redeemed",
                details={"code": canon},
            )
        conn.execute(
            lt.coupon_events.insert(),
            {
                "code": canon,
                "kind": "voided",
                "old_status": "issued",
                "new_status": "voided",
                "order_id": None,
                "created_at": now,
            },
        )
    return finish(
        conn,
        op_key,
        {
            "code": canon,
            "status": "voided" if row.status in ("issued", "voided") else row.status,
            "reason": reason,
        },
    )


def gift_coupon(
    ctx: LoyaltyContext,
    conn: Connection,
    code: str,
    from_customer: str,
    to_customer: str,
    *,
    idempotency_key: str | None = None,
) -> dict[str, Any]:
    """Gift a coupon to a friend, who becomes its holder (transfer limits apply)."""
    canon = canonical_code(code)
    now = ctx.now()
    op_key = f"gift:{idempotency_key or f'{canon}:{from_customer}:{to_customer}'}"
    request = {"code": canon, "from": from_customer, "to": to_customer} if idempotency_key else None
    prior = claim(conn, op_key, "coupon_gift", from_customer, now, request=request)
    if prior is not None:
        return prior
    if from_customer == to_customer:
        raise ConflictError(
            "cannot gift a coupon to oneself",
            code="coupon.self_transfer",
            message_zh="不能把优惠券转赠给自己",
            details={"code": canon},
        )
    row = coupon_row(conn, canon, lock=True)
    template = template_or_default(ctx, row)
    # A coupon not valid yet (a spend-back coupon's delay) can already be gifted.
    check_redeemable(
        coupon_view(row),
        template,
        customer_id=from_customer,
        now=max(now, row.valid_from),
        order_amount=None,
    )
    if not template.transferable or row.transfers >= template.max_transfers:
        raise ConflictError(
            "this coupon cannot be transferred (again)",
            code="coupon.transfer_limit",
            message_zh="该优惠券不能再转赠",
            details={
                "code": canon,
                "transfers": row.transfers,
                "max_transfers": template.max_transfers if template.transferable else 0,
            },
        )
    c = lt.coupons.c
    res = conn.execute(
        update(lt.coupons)
        .where(
            c.code == canon,
            c.status == "issued",
            c.holder_id == from_customer,
            c.transfers == row.transfers,
        )
        .values(holder_id=to_customer, transfers=row.transfers + 1)
    )
    if res.rowcount != 1:
        raise ConflictError(
            "coupon changed concurrently",
            code="coupon.already_redeemed",
            details={"code": canon},
        )
    conn.execute(
        lt.coupon_events.insert(),
        {
            "code": canon,
            "kind": "gifted",
            "old_status": "issued",
            "new_status": "issued",
            "from_customer": from_customer,
            "to_customer": to_customer,
            "created_at": now,
        },
    )
    ensure_member(ctx, conn, to_customer, now)
    return finish(
        conn,
        op_key,
        {
            "code": canon,
            "status": "issued",
            "from": from_customer,
            "holder": to_customer,
            "transfers": row.transfers + 1,
        },
    )


def coupon(ctx: LoyaltyContext, conn: Connection, code: str) -> dict[str, Any]:
    """One coupon with its event history."""
    canon = canonical_code(code)
    row = coupon_row(conn, canon)
    ce = lt.coupon_events.c
    events = conn.execute(
        select(lt.coupon_events).where(ce.code == canon).order_by(ce.event_id)
    ).all()
    out = coupon_json(dict(row._mapping))
    out["events"] = [
        {
            "kind": e.kind,
            "old_status": e.old_status,
            "new_status": e.new_status,
            "from": e.from_customer,
            "to": e.to_customer,
            "order_id": e.order_id,
            "at": iso(e.created_at),
        }
        for e in events
    ]
    return out
