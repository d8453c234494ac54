"""Group buys (拼团): open a group, join it (reserving the price, possibly from
stored value), capture when it forms, release when it fails.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, select, update

from huitouke.errors import ConflictError, InputError, NotFoundError
from huitouke.loyalty import codes
from huitouke.loyalty import tables as lt
from huitouke.loyalty.context import LoyaltyContext
from huitouke.loyalty.ledger import claim, finish, lock_accounts, post
from huitouke.loyalty.stored_value import debit_stored_value
from huitouke.loyalty.vocab import SV_BONUS, SV_HELD, SV_PAID, ZERO, aware, fmt, iso

__all__ = ["groupbuy", "groupbuy_join", "groupbuy_open", "groupbuy_settle"]


def groupbuy_open(
    ctx: LoyaltyContext,
    conn: Connection,
    deal_id: str,
    leader_id: str,
    *,
    idempotency_key: str,
    paid_with: str = "external",
) -> dict[str, Any]:
    """Open a group for a deal; the leader joins (and reserves) at once."""
    deal = ctx.program.deal(deal_id)
    now = ctx.now()
    op_key = f"groupbuy_open:{idempotency_key}"
    prior = claim(
        conn,
        op_key,
        "groupbuy_open",
        leader_id,
        now,
        request={"deal_id": deal_id, "leader_id": leader_id, "paid_with": paid_with},
    )
    if prior is not None:
        return prior
    group_id = codes.generate(length=8, prefix="G")
    conn.execute(
        lt.groupbuys.insert(),
        {
            "group_id": group_id,
            "deal_id": deal.id,
            "leader_id": leader_id,
            "price": deal.price,
            "required": deal.required,
            "joined": 0,
            "opened_at": now,
            "deadline": now + timedelta(hours=deal.hours),
            "status": "open",
        },
    )
    joined = _join(ctx, conn, group_id, leader_id, paid_with, now, op_key)
    return finish(conn, op_key, joined)


def groupbuy_join(
    ctx: LoyaltyContext,
    conn: Connection,
    group_id: str,
    customer_id: str,
    *,
    idempotency_key: str | None = None,
    paid_with: str = "external",
) -> dict[str, Any]:
    """Join an open group (reserving the price); the group forms when it is full."""
    now = ctx.now()
    gid = codes.normalize(group_id)
    op_key = f"groupbuy_join:{idempotency_key or f'{gid}:{customer_id}'}"
    request = (
        {"group_id": gid, "customer_id": customer_id, "paid_with": paid_with}
        if idempotency_key
        else None
    )
    prior = claim(conn, op_key, "groupbuy_join", customer_id, now, request=request)
    if prior is not None:
        return prior
    return finish(conn, op_key, _join(ctx, conn, gid, customer_id, paid_with, now, op_key))


def _join(
    ctx: LoyaltyContext,
    conn: Connection,
    group_id: str,
    customer_id: str,
    paid_with: str,
    now: datetime,
    op_key: str,
) -> dict[str, Any]:
    g = lt.groupbuys.c
    q = select(lt.groupbuys).where(g.group_id == group_id)
    if conn.dialect.name == "postgresql":
        q = q.with_for_update()
    grp = conn.execute(q).first()
    if grp is None:
        raise NotFoundError(
            f"no group {group_id!r}",
            code="groupbuy.not_found",
            message_zh=f"没有这个拼团 {group_id!r}",
            details={"group_id": group_id},
        )
    if grp.status != "open" or now >= grp.deadline:
        raise ConflictError(
            "this group is closed",
            code="groupbuy.closed",
            message_zh="该拼团已结束",
            details={"group_id": group_id, "status": grp.status},
        )
    gm = lt.groupbuy_members.c
    if conn.execute(
        select(gm.customer_id).where(gm.group_id == group_id, gm.customer_id == customer_id)
    ).first():
        raise ConflictError(
            "already in this group",
            code="groupbuy.already_joined",
            message_zh="已参加该拼团",
            details={"group_id": group_id},
        )
    if paid_with not in ("external", "stored_value"):
        raise InputError(
            "paid_with must be 'external' or 'stored_value'",
            code="input.invalid",
            details={"field": "paid_with"},
        )
    held_paid = held_bonus = ZERO
    if paid_with == "stored_value":
        accts = lock_accounts(
            conn, [(customer_id, SV_PAID), (customer_id, SV_BONUS), (customer_id, SV_HELD)], now
        )
        ref = f"groupbuy:{group_id}"
        held_paid, held_bonus = debit_stored_value(
            ctx,
            conn,
            accts,
            customer_id,
            grp.price,
            kind="hold",
            key=f"{op_key}:hold",
            ref=ref,
            now=now,
        )
        post(
            conn,
            accts[(customer_id, SV_HELD)],
            grp.price,
            kind="hold",
            key=f"{op_key}:hold",
            now=now,
            reference=ref,
        )
    conn.execute(
        lt.groupbuy_members.insert(),
        {
            "group_id": group_id,
            "customer_id": customer_id,
            "amount": grp.price,
            "paid_with": paid_with,
            "held_paid": held_paid,
            "held_bonus": held_bonus,
            "status": "reserved",
            "joined_at": now,
        },
    )
    joined = grp.joined + 1
    status = "formed" if joined >= grp.required else "open"
    conn.execute(
        update(lt.groupbuys)
        .where(g.group_id == group_id)
        .values(joined=joined, status=status, settled_at=now if status == "formed" else None)
    )
    if status == "formed":
        _capture(conn, group_id, now)
    return {
        "group_id": group_id,
        "deal": grp.deal_id,
        "customer_id": customer_id,
        "joined": joined,
        "required": grp.required,
        "status": status,
        "deadline": iso(grp.deadline),
        "price": fmt(grp.price),
    }


def _capture(conn: Connection, group_id: str, now: datetime) -> None:
    gm = lt.groupbuy_members.c
    members_ = conn.execute(
        select(lt.groupbuy_members)
        .where(gm.group_id == group_id, gm.status == "reserved")
        .order_by(gm.customer_id)
    ).all()
    held = [(m.customer_id, SV_HELD) for m in members_ if m.paid_with == "stored_value"]
    accts = lock_accounts(conn, held, now)
    for m in members_:
        if m.paid_with == "stored_value":
            post(
                conn,
                accts[(m.customer_id, SV_HELD)],
                -m.amount,
                kind="groupbuy_captured",
                key=f"groupbuy:{group_id}:{m.customer_id}:capture",
                now=now,
                reference=f"groupbuy:{group_id}",
            )
    conn.execute(
        update(lt.groupbuy_members)
        .where(gm.group_id == group_id, gm.status == "reserved")
        .values(status="confirmed")
    )


def groupbuy_settle(ctx: LoyaltyContext, conn: Connection, as_of: datetime) -> dict[str, Any]:
    """Fail every open group past its deadline and release each participant's reservation."""
    as_of = aware(as_of, "as_of")
    now = ctx.now()
    g, gm = lt.groupbuys.c, lt.groupbuy_members.c
    out: dict[str, Any] = {"failed": 0, "released": 0, "groups": []}
    for grp in conn.execute(
        select(lt.groupbuys).where(g.status == "open", g.deadline <= as_of).order_by(g.group_id)
    ).all():
        res = conn.execute(
            update(lt.groupbuys)
            .where(g.group_id == grp.group_id, g.status == "open")
            .values(status="failed", settled_at=now)
        )
        if not res.rowcount:
            continue
        members_ = conn.execute(
            select(lt.groupbuy_members)
            .where(gm.group_id == grp.group_id, gm.status == "reserved")
            .order_by(gm.customer_id)
        ).all()
        keys = []
        for m in members_:
            if m.paid_with == "stored_value":
                keys += [
                    (m.customer_id, SV_PAID),
                    (m.customer_id, SV_BONUS),
                    (m.customer_id, SV_HELD),
                ]
        accts = lock_accounts(conn, keys, now)
        for m in members_:
            if m.paid_with == "stored_value":
                k = f"groupbuy:{grp.group_id}:{m.customer_id}:release"
                ref = f"groupbuy:{grp.group_id}"
                post(
                    conn,
                    accts[(m.customer_id, SV_HELD)],
                    -m.amount,
                    kind="groupbuy_released",
                    key=k,
                    now=now,
                    reference=ref,
                )
                post(
                    conn,
                    accts[(m.customer_id, SV_PAID)],
                    m.held_paid,
                    kind="groupbuy_released",
                    key=f"{k}:paid",
                    now=now,
                    reference=ref,
                )
                post(
                    conn,
                    accts[(m.customer_id, SV_BONUS)],
                    m.held_bonus,
                    kind="groupbuy_released",
                    key=f"{k}:bonus",
                    now=now,
                    reference=ref,
                )
            out["released"] += 1
        conn.execute(
            update(lt.groupbuy_members)
            .where(gm.group_id == grp.group_id, gm.status == "reserved")
            .values(status="released")
        )
        out["failed"] += 1
        out["groups"].append(grp.group_id)
    return out


def groupbuy(ctx: LoyaltyContext, conn: Connection, group_id: str) -> dict[str, Any]:
    """One group with its members."""
    gid = codes.normalize(group_id)
    g, gm = lt.groupbuys.c, lt.groupbuy_members.c
    grp = conn.execute(select(lt.groupbuys).where(g.group_id == gid)).first()
    if grp is None:
        raise NotFoundError(
            f"no group {group_id!r}", code="groupbuy.not_found", details={"group_id": group_id}
        )
    ms = conn.execute(
        select(lt.groupbuy_members).where(gm.group_id == gid).order_by(gm.joined_at, gm.customer_id)
    ).all()
    return {
        "group_id": gid,
        "deal": grp.deal_id,
        "status": grp.status,
        "joined": grp.joined,
        "required": grp.required,
        "deadline": iso(grp.deadline),
        "price": fmt(grp.price),
        "members": [
            {"customer_id": m.customer_id, "status": m.status, "paid_with": m.paid_with} for m in ms
        ],
    }
