"""The sequential order path as it was before batching: the reference the batch path is
compared against (same effects, same ledger) in the property tests."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, select, update

from huitouke.errors import ConflictError
from huitouke.loyalty import tables as lt
from huitouke.loyalty.coupons import (
    issue,
    template_or_default,
)
from huitouke.loyalty.ledger import (
    claim,
    credit_lot,
    debit_fifo,
    finish,
    insert_ignore,
    lock_accounts,
    post,
)
from huitouke.loyalty.members import benefits, ensure_member
from huitouke.loyalty.points import (
    earn_points,
)
from huitouke.loyalty.referrals import (
    attribute_referral,
)
from huitouke.loyalty.rules import (
    compute_earn,
    coupon_value_for_order,
    currency_unit,
    proportional_target,
    qualified_tier,
    stamp_advance,
    stamps_for_order,
    stored_value_return_target,
    tier_period_end,
)
from huitouke.loyalty.service import LoyaltyService
from huitouke.loyalty.stored_value import (
    return_stored_value,
)
from huitouke.loyalty.tiers import tier_metric
from huitouke.loyalty.vocab import (
    COUNTED,
    POINTS,
    POINTS_DEBT,
    SV_BONUS,
    SV_PAID,
    ZERO,
    OrderEvent,
    fmt,
    parse_order,
    stamps_asset,
    stamps_debt_asset,
    stored_value_on_orders,
)


class ReferenceLoyalty(LoyaltyService):
    """``apply_order`` one statement at a time, as shipped before ``apply_orders``."""

    def _take_back(
        self,
        conn: Connection,
        customer_id: str,
        asset: str,
        debt_asset: str,
        amount: Decimal,
        *,
        key: str,
        ref: str,
        now: datetime,
        prefer: int | None,
    ) -> tuple[Decimal, Decimal]:
        """Reverse ``amount`` of an asset: what is left is taken, the rest becomes a debt
        (the sequential path's primitive; the batch path reverses in bulk)."""
        if amount <= 0:
            return ZERO, ZERO
        accts = lock_accounts(
            conn, [(customer_id, asset)], now, optional=[(customer_id, debt_asset)]
        )
        taken, shortfall = debit_fifo(
            conn,
            accts[(customer_id, asset)],
            amount,
            kind="reversal",
            key=key,
            now=now,
            reference=ref,
            prefer=prefer,
            allow_partial=True,
        )
        post(
            conn,
            accts[(customer_id, debt_asset)],
            shortfall,
            kind="debt",
            key=f"{key}:debt",
            now=now,
            reference=ref,
        )
        return taken, shortfall

    def apply_order(self, conn: Connection, order: Mapping[str, Any]) -> dict[str, Any]:
        """Apply an order event: paid → points, stamps, order coupons, tier, referral;
        refund/cancel → proportional reversal. Idempotent per (order id, status, refunded amount).

        Refunds are monotone: a state whose refunded amount is below what was already
        applied (an old event arriving late) changes nothing (``ignored: "stale"``), and an
        order first seen refunded or cancelled never earns, so every arrival order of the
        same events ends in the same balances.
        """
        o = parse_order(order)
        now = self.now()
        op_key = f"order:{o.order_id}:{o.status}:{fmt(o.refunded_amount)}"
        prior = claim(conn, op_key, "order", o.customer_id, now)
        if prior is not None:
            return prior
        effects: dict[str, Any] = {
            "order_id": o.order_id,
            "customer_id": o.customer_id,
            "status": o.status,
            "points_earned": "0",
            "points_debt_settled": "0",
            "points_reversed": "0",
            "points_debt_added": "0",
            "stamps": [],
            "coupons_issued": [],
            "coupons_voided": [],
            "coupons_adjusted": [],
            "tier": None,
            "referral": None,
            "ignored": None,
        }
        if o.currency and o.currency.upper() != self.program.currency:
            effects["ignored"] = "currency"
            return finish(conn, op_key, effects)
        lo = lt.orders.c
        stmt = select(lt.orders).where(lo.order_id == o.order_id)
        if conn.dialect.name == "postgresql":
            stmt = stmt.with_for_update()
        existing = conn.execute(stmt).first()
        if existing is not None and existing.customer_id != o.customer_id:
            raise ConflictError(
                f"order {o.order_id} belongs to customer {existing.customer_id}, not {o.customer_id}",
                code="order.customer_mismatch",
                message_zh=f"订单 {o.order_id} 属于顾客 {existing.customer_id}",
                details={"order_id": o.order_id},
            )
        member = ensure_member(self, conn, o.customer_id, now)
        if existing is None:
            earned = o.status in COUNTED
            state: dict[str, Any] = {
                "points_earned": ZERO,
                "points_reversed": ZERO,
                "points_lot_id": None,
                "stamps": {},
                "refunded_amount": ZERO,
                "earned": False,
                "first_paid": False,
            }
            if earned:
                first = member.paid_orders == 0
                state["first_paid"] = first
                state["earned"] = True
                self._earn_order(conn, o, member, now, op_key, state, effects)
            conn.execute(
                lt.orders.insert(),
                {
                    "order_id": o.order_id,
                    "customer_id": o.customer_id,
                    "ordered_at": o.ordered_at,
                    "amount": o.amount,
                    "currency": o.currency or self.program.currency,
                    "status": "paid" if earned else o.status,
                    "refunded_amount": ZERO,
                    "earned": state["earned"],
                    "first_paid": state["first_paid"],
                    "points_earned": state["points_earned"],
                    "points_reversed": ZERO,
                    "points_lot_id": state["points_lot_id"],
                    "stamps": state["stamps"],
                    "updated_at": now,
                },
            )
            if earned:
                self._after_paid(conn, o, member, now, op_key, state, effects)
            if earned and o.refund_total > 0:
                self._reverse(conn, o, dict(state, amount=o.amount), now, op_key, effects)
            elif not earned:
                effects["ignored"] = "not_paid"
        else:
            state = {
                "points_earned": existing.points_earned,
                "points_reversed": existing.points_reversed,
                "points_lot_id": existing.points_lot_id,
                "stamps": dict(existing.stamps or {}),
                "refunded_amount": existing.refunded_amount,
                "earned": existing.earned,
                "first_paid": existing.first_paid,
                "amount": existing.amount,
            }
            if not existing.earned:
                # Refunded or cancelled before it was ever seen paid: that state is final,
                # so a "paid" event arriving later is stale, whatever the arrival order.
                effects["ignored"] = "stale" if o.status in COUNTED else "no_change"
            elif existing.earned and o.refund_total > existing.refunded_amount:
                self._reverse(conn, o, state, now, op_key, effects)
            else:
                effects["ignored"] = (
                    "stale" if o.refund_total < existing.refunded_amount else "no_change"
                )
        self._give_back_stored_value(conn, o, now, op_key, effects)
        return finish(conn, op_key, effects)

    def _give_back_stored_value(
        self, conn: Connection, o: OrderEvent, now: datetime, op_key: str, effects: dict[str, Any]
    ) -> None:
        """The refunded share of the stored value paid on the order, one statement at a time
        (the accounts locked, the payment's entries summed in SQL, then two posts)."""
        if not self.program.stored_value.return_on_order_refund or o.refund_total <= 0:
            return
        c = o.customer_id
        accts = lock_accounts(conn, [], now, optional=[(c, SV_PAID), (c, SV_BONUS)])
        rec = stored_value_on_orders(conn, [(c, o.order_id)]).get((c, o.order_id))
        if rec is None or rec.spent <= 0:
            return
        target = stored_value_return_target(
            rec.spent,
            o.amount,
            o.refund_total,
            full=o.status in ("refunded", "cancelled"),
            unit=currency_unit(self.program.currency),
        )
        give = target - rec.returned
        if give <= 0:
            return
        to_paid, to_bonus = return_stored_value(
            self,
            conn,
            accts,
            c,
            rec,
            give,
            key=f"{op_key}:sv_return",
            ref=f"order:{o.order_id}",
            now=now,
        )
        effects["stored_value_returned"] = {
            "amount": fmt(give),
            "paid": fmt(to_paid),
            "bonus": fmt(to_bonus),
        }

    def _earn_order(
        self,
        conn: Connection,
        o: OrderEvent,
        member: Any,
        now: datetime,
        op_key: str,
        state: dict[str, Any],
        effects: dict[str, Any],
    ) -> None:
        mult, _disc, _src = benefits(self, conn, member, o.ordered_at)
        res = compute_earn(
            self.program.earn,
            o.amount,
            o.ordered_at,
            self.zone,
            lines=o.lines,
            member_multiplier=mult,
        )
        credited, settled, lot = earn_points(
            self,
            conn,
            o.customer_id,
            res.points,
            key=f"{op_key}:points",
            ref=f"order:{o.order_id}",
            now=now,
            earned_at=o.ordered_at,
            kind="earn",
        )
        state["points_earned"] = res.points
        state["points_lot_id"] = lot
        effects["points_earned"] = fmt(credited)
        effects["points_debt_settled"] = fmt(settled)
        effects["campaigns"] = list(res.campaigns)
        # stamps
        local_day = o.ordered_at.astimezone(self.zone).date().isoformat()
        for card in self.program.stamp_cards:
            sc = lt.stamp_cards.c
            cs = select(lt.stamp_cards).where(
                sc.customer_id == o.customer_id, sc.card_id == card.id
            )
            if conn.dialect.name == "postgresql":
                cs = cs.with_for_update()
            card_state = conn.execute(cs).first()
            if card_state is None:
                insert_ignore(
                    conn,
                    lt.stamp_cards,
                    {
                        "customer_id": o.customer_id,
                        "card_id": card.id,
                        "cycle": 1,
                        "rewarded_upto": 0,
                        "completed": 0,
                        "updated_at": now,
                    },
                    "customer_id",
                    "card_id",
                )
                card_state = conn.execute(cs).one()
            n = stamps_for_order(
                card, o.amount, already_stamped_today=card_state.last_stamp_day == local_day
            )
            if n <= 0:
                continue
            asset, debt_asset = stamps_asset(card.id), stamps_debt_asset(card.id)
            accts = lock_accounts(
                conn, [(o.customer_id, asset)], now, optional=[(o.customer_id, debt_asset)]
            )
            acct, debt = accts[(o.customer_id, asset)], accts[(o.customer_id, debt_asset)]
            settle = min(Decimal(n), debt.balance)
            post(
                conn,
                debt,
                -settle,
                kind="debt_settled",
                key=f"{op_key}:stamps:{card.id}:debt",
                now=now,
                reference=f"order:{o.order_id}",
            )
            add = int(Decimal(n) - settle)
            before = int(acct.balance)
            exp = o.ordered_at + timedelta(days=card.expire_days) if card.expire_days else None
            lot = credit_lot(
                conn,
                acct,
                Decimal(add),
                kind="stamp",
                key=f"{op_key}:stamps:{card.id}",
                now=now,
                earned_at=o.ordered_at,
                expires_at=exp,
                reference=f"order:{o.order_id}",
            )
            adv = stamp_advance(card, before, card_state.rewarded_upto, add)
            used = before + add - adv.balance
            if used > 0:
                debit_fifo(
                    conn,
                    acct,
                    Decimal(used),
                    kind="card_completed",
                    key=f"{op_key}:stamps:{card.id}:done",
                    now=now,
                    reference=f"order:{o.order_id}",
                )
            issued = []
            for i, (step, template_id) in enumerate(adv.rewards):
                c = issue(
                    self,
                    conn,
                    self.program.template(template_id),
                    o.customer_id,
                    key=f"{op_key}:stamps:{card.id}:reward:{i}",
                    now=now,
                    source="stamp_card",
                    source_ref=f"{card.id}:{card_state.cycle}:{step}",
                    strict_limit=False,
                )
                if c is not None:
                    issued.append(c)
                    effects["coupons_issued"].append(c)
            conn.execute(
                update(lt.stamp_cards)
                .where(sc.customer_id == o.customer_id, sc.card_id == card.id)
                .values(
                    rewarded_upto=adv.rewarded_upto,
                    cycle=card_state.cycle + adv.completions,
                    completed=card_state.completed + adv.completions,
                    last_stamp_day=local_day,
                    updated_at=now,
                )
            )
            state["stamps"][card.id] = {"stamps": n, "lot_id": lot, "reversed": 0}
            effects["stamps"].append(
                {
                    "card": card.id,
                    "added": n,
                    "debt_settled": int(settle),
                    "balance": int(acct.balance),
                    "completed_cards": adv.completions,
                    "rewards": [c["code"] for c in issued],
                }
            )

    def _after_paid(
        self,
        conn: Connection,
        o: OrderEvent,
        member: Any,
        now: datetime,
        op_key: str,
        state: dict[str, Any],
        effects: dict[str, Any],
    ) -> None:
        """Order coupons, tier re-evaluation, referral attribution, paid-order count."""
        first = bool(state["first_paid"])
        for i, rule in enumerate(self.program.order_coupons):
            if o.amount < rule.min_order_amount or (rule.first_order_only and not first):
                continue
            c = issue(
                self,
                conn,
                self.program.template(rule.template),
                o.customer_id,
                key=f"{op_key}:coupon:{i}",
                now=now,
                source="order",
                source_ref=o.order_id,
                order_amount=o.amount,
                strict_limit=False,
            )
            if c is not None:
                effects["coupons_issued"].append(c)
        values: dict[str, Any] = {"paid_orders": member.paid_orders + 1, "updated_at": now}
        values.update(self._tier_after_order(conn, member, now, effects))
        conn.execute(
            update(lt.members).where(lt.members.c.customer_id == o.customer_id).values(**values)
        )
        if first:
            effects["referral"] = attribute_referral(self, conn, o, now)

    # -- refunds -----------------------------------------------------------------------------
    def _reverse(
        self,
        conn: Connection,
        o: OrderEvent,
        state: Mapping[str, Any],
        now: datetime,
        op_key: str,
        effects: dict[str, Any],
    ) -> None:
        """Proportional reversal of what the order earned.

        Points: the target reversal is ``round(earned × refunded / amount)``; the part not
        yet reversed is taken from the order's own lot first, then earliest-expiring lots;
        whatever the customer already spent becomes ``points_debt`` (a separate receivable
        account, never a negative balance) that future earnings pay first. Stamps are
        reversed the same way on a full refund (a visit stays a visit on a partial refund).
        Unredeemed coupons the order issued are voided on a full refund, and spend-back
        coupons shrink in proportion on a partial one; coupons already redeemed are listed
        in ``coupons_kept`` (recorded, not silently lost).
        """
        amount = state.get("amount", o.amount)
        refund = min(o.refund_total, amount)
        full = refund >= amount
        target = proportional_target(state["points_earned"], amount, refund)
        delta = target - state["points_reversed"]
        ref = f"order:{o.order_id}"
        taken, short = self._take_back(
            conn,
            o.customer_id,
            POINTS,
            POINTS_DEBT,
            delta,
            key=f"{op_key}:reverse",
            ref=ref,
            now=now,
            prefer=state["points_lot_id"],
        )
        effects["points_reversed"] = fmt(taken)
        effects["points_debt_added"] = fmt(short)
        stamps = dict(state["stamps"])
        if full:
            for card_id, info in stamps.items():
                todo = int(info["stamps"]) - int(info.get("reversed", 0))
                if todo <= 0:
                    continue
                t2, s2 = self._take_back(
                    conn,
                    o.customer_id,
                    stamps_asset(card_id),
                    stamps_debt_asset(card_id),
                    Decimal(todo),
                    key=f"{op_key}:reverse:stamps:{card_id}",
                    ref=ref,
                    now=now,
                    prefer=info.get("lot_id"),
                )
                stamps[card_id] = {**info, "reversed": int(info.get("reversed", 0)) + todo}
                effects["stamps"].append(
                    {"card": card_id, "reversed": int(t2), "debt_added": int(s2)}
                )
        # coupons the order issued
        c = lt.coupons.c
        kept = []
        for row in conn.execute(
            select(lt.coupons)
            .where(c.source == "order", c.source_ref == o.order_id)
            .order_by(c.code)
        ).all():
            if row.status != "issued":
                if row.status == "redeemed":
                    kept.append(row.code)
                continue
            if full:
                conn.execute(
                    update(lt.coupons)
                    .where(c.code == row.code, c.status == "issued")
                    .values(status="voided")
                )
                conn.execute(
                    lt.coupon_events.insert(),
                    {
                        "code": row.code,
                        "kind": "voided",
                        "old_status": "issued",
                        "new_status": "voided",
                        "order_id": o.order_id,
                        "created_at": now,
                    },
                )
                effects["coupons_voided"].append(row.code)
            elif row.kind == "spend_back" and row.value is not None:
                tpl = template_or_default(self, row)
                new_value = (
                    coupon_value_for_order(tpl, amount - refund)
                    if tpl.kind == "spend_back"
                    else row.value
                )
                if new_value is not None and new_value < row.value:
                    conn.execute(
                        update(lt.coupons).where(c.code == row.code).values(value=new_value)
                    )
                    conn.execute(
                        lt.coupon_events.insert(),
                        {
                            "code": row.code,
                            "kind": "adjusted",
                            "old_status": "issued",
                            "new_status": "issued",
                            "order_id": o.order_id,
                            "old_value": row.value,
                            "new_value": new_value,
                            "created_at": now,
                        },
                    )
                    effects["coupons_adjusted"].append({"code": row.code, "value": fmt(new_value)})
        if kept:
            effects["coupons_kept"] = kept
        conn.execute(
            update(lt.orders)
            .where(lt.orders.c.order_id == o.order_id)
            .values(
                refunded_amount=refund,
                status="refunded" if full and o.status != "cancelled" else o.status,
                points_reversed=state["points_reversed"] + delta,
                stamps=stamps,
                updated_at=now,
            )
        )
        if full and state.get("first_paid"):
            r = lt.referrals.c
            res = conn.execute(
                update(lt.referrals)
                .where(
                    r.referred_id == o.customer_id,
                    r.first_order_id == o.order_id,
                    r.status == "attributed",
                )
                .values(status="rejected", reason="first_order_refunded", updated_at=now)
            )
            if res.rowcount:
                effects["referral"] = {"status": "rejected", "reason": "first_order_refunded"}

    def _tier_after_order(
        self, conn: Connection, member: Any, now: datetime, effects: dict[str, Any]
    ) -> dict[str, Any]:
        """Upgrade at once; requalifying for the current tier extends it."""
        tiers = self.program.tiers
        if tiers is None:
            return {}
        value = tier_metric(self, conn, member.customer_id, now)
        q = qualified_tier(tiers, value)
        cur = member.tier if tiers.level(member.tier) else None
        if cur is None or tiers.rank(q) > tiers.rank(cur):
            effects["tier"] = {"from": cur, "to": q, "metric": fmt(value)}
            return {
                "tier": q,
                "tier_since": now,
                "tier_valid_until": tier_period_end(tiers, now, self.zone),
                "tier_grace_until": None,
            }
        if tiers.rank(q) == tiers.rank(cur):
            return {
                "tier_valid_until": tier_period_end(tiers, now, self.zone),
                "tier_grace_until": None,
            }
        return {}
