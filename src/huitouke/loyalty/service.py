"""Loyalty use cases: each public method is one idempotent unit of work on the ledger.

Every method takes an open SQLAlchemy ``Connection`` inside the caller's transaction, so
the service layer can compose "upsert the order + apply loyalty" in one unit of work; a
raised error means the caller rolls the whole transaction back. :meth:`LoyaltyService.bound`
wraps a :class:`~huitouke.store.Store` for callers that want one transaction per call.

Every write is idempotent by a caller-given key (order id and state, redemption id,
idempotency key): the first call stores its JSON-ready result under the key, and a replay
changes nothing and returns that same result (with ``"replayed": true``).

Results are JSON-ready: money and points are decimal strings ("12.5"), instants ISO 8601
in UTC.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, func, select, update

from huitouke.errors import ConflictError, InputError, NotFoundError
from huitouke.loyalty import (
    codes,
    coupons,
    members,
    membership,
    order_batch,
    points,
    stored_value,
    tiers,
)
from huitouke.loyalty import tables as lt
from huitouke.loyalty.context import LoyaltyContext
from huitouke.loyalty.coupons import (
    canonical_code,
    coupon_json,
    coupon_row,
    coupon_view,
    issue,
    template_or_default,
)
from huitouke.loyalty.ledger import claim, finish, insert_ignore, lock_accounts, post
from huitouke.loyalty.members import active_membership, benefits, ensure_member
from huitouke.loyalty.points import earn_points
from huitouke.loyalty.program import CouponTemplate, RewardSpec
from huitouke.loyalty.rules import (
    check_redeemable,
    compute_earn,
    coupon_discount,
    money,
    tier_period_end,
)
from huitouke.loyalty.stored_value import debit_stored_value
from huitouke.loyalty.tiers import review_tiers
from huitouke.loyalty.vocab import (
    POINTS,
    POINTS_DEBT,
    SV_BONUS,
    SV_HELD,
    SV_PAID,
    SV_PENDING,
    ZERO,
    OrderEvent,
    aware,
    dec,
    fmt,
    iso,
    parse_lines,
    parse_order,
    stamps_asset,
    stamps_debt_asset,
)
from huitouke.store import tables as st
from huitouke.store.db import Store
from huitouke.store.uow import run_write

__all__ = ["LoyaltyService", "OrderEvent", "fmt", "parse_order"]


class LoyaltyService(LoyaltyContext):
    """The loyalty use cases of one program (see the module docstring for the contract)."""

    def bound(self, store: Store) -> BoundLoyalty:
        """The same use cases, each run in its own unit of work on ``store`` (with retries)."""
        return BoundLoyalty(self, store)

    # coupons: :mod:`huitouke.loyalty.coupons`
    issue_coupon = coupons.issue_coupon
    redeem_coupon = coupons.redeem_coupon
    void_coupon = coupons.void_coupon
    gift_coupon = coupons.gift_coupon
    coupon = coupons.coupon

    # tiers: :mod:`huitouke.loyalty.tiers`
    review_tiers = tiers.review_tiers

    # members: :mod:`huitouke.loyalty.members`
    set_preferences = members.set_preferences

    # -- points primitives -------------------------------------------------------------------
    # points: :mod:`huitouke.loyalty.points`
    adjust_points = points.adjust_points
    redeem_points = points.redeem_points

    # -- coupons primitives ----------------------------------------------------------------

    # ===================================================================================
    # Orders
    # ===================================================================================
    def apply_order(self, conn: Connection, order: Mapping[str, Any]) -> dict[str, Any]:
        """Apply an order event: paid → points, stamps, order coupons, tier, referral;
        refund/cancel → proportional reversal. Idempotent per (order id, status, refunded amount).

        Refunds are monotone: a state whose refunded amount is below what was already
        applied (an old event arriving late) changes nothing (``ignored: "stale"``), and an
        order first seen refunded or cancelled never earns, so every arrival order of the
        same events ends in the same balances.

        The same as ``apply_orders(conn, [order])[0]``.
        """
        return self.apply_orders(conn, [order])[0]

    def apply_orders(
        self, conn: Connection, orders: Sequence[Mapping[str, Any]]
    ) -> list[dict[str, Any]]:
        """Apply many order events in one unit of work, with set-based reads and writes.

        Returns one result per event, in order, each exactly what :meth:`apply_order` would
        have returned had the events been sent one by one in this order (events of one
        customer see the batch's earlier effects: refunds of orders paid earlier in the
        batch, tier upgrades, stamp ladders, spend-back coupons). An event repeated within
        the batch is applied once; its later copies come back ``replayed``. A bad event
        (``InputError`` naming ``orders[i].field``) or a conflict (its ``details["index"]``
        names the event) rejects the whole batch.
        See :mod:`huitouke.loyalty.order_batch`.
        """
        return order_batch.apply_orders(self, conn, orders)

    # ===================================================================================
    # Stamp cards
    # ===================================================================================
    def add_stamps(
        self,
        conn: Connection,
        customer_id: str,
        card_id: str,
        *,
        idempotency_key: str,
        stamps: int | None = None,
        visited_at: datetime | str | None = None,
        reason: str | None = None,
    ) -> dict[str, Any]:
        """Stamps without an order: a visit (``stamps`` omitted) or an operator's grant of
        ``stamps`` with a ``reason``. Idempotent by ``idempotency_key``.

        A visit earns what the card's rules give a visit (:func:`~huitouke.loyalty.rules.
        stamps_for_visit`): one stamp on a ``per: visit`` card, none (``ignored:
        "already_stamped_today"``) when its local day (``visited_at``, default now, in the
        program's zone) already earned a stamp from an order or a visit; a card counting
        orders or amounts, or visits only with an order of a minimum amount, refuses
        (``stamps.not_per_visit``, ``stamps.order_required``). A grant adds ``stamps``
        (1–1000) whatever the card counts and leaves the card's stamped day alone. Either
        way the stamps go through the same code as order stamps: owed stamps are settled
        first, each ladder step reached pays its coupon once per card, and at ``size`` the
        card completes and the next one starts with the leftover stamps. The stamps expire
        ``expire_days`` after ``visited_at``.
        """
        return order_batch.add_stamps(
            self,
            conn,
            customer_id,
            card_id,
            idempotency_key=idempotency_key,
            stamps=stamps,
            visited_at=visited_at,
            reason=reason,
        )

    # ===================================================================================
    # Tiers
    # ===================================================================================

    # ===================================================================================
    # Coupons
    # ===================================================================================

    # ===================================================================================
    # Points
    # ===================================================================================

    # ===================================================================================
    # Expiry
    # ===================================================================================
    def expire(
        self, conn: Connection, as_of: datetime, *, limit: int | None = None
    ) -> dict[str, Any]:
        """Expire what is due at ``as_of``: point and stamp lots, coupons, memberships,
        and review tiers whose period ended. Safe to re-run (each lot expires once)."""
        as_of = aware(as_of, "as_of")
        now = self.now()
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
                update(lt.coupons)
                .where(c.code == code, c.status == "issued")
                .values(status="expired")
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
        out["tiers"] = review_tiers(self, conn, as_of, limit=limit)
        return out

    def expiring_soon(
        self, conn: Connection, customer_id: str | None, within_days: int, as_of: datetime
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

    # ===================================================================================
    # Customer view
    # ===================================================================================
    def customer_loyalty(
        self,
        conn: Connection,
        customer_id: str,
        *,
        as_of: datetime | None = None,
        expiring_within_days: int = 30,
    ) -> dict[str, Any]:
        """Everything a customer holds, as of ``as_of`` (default: the clock)."""
        at = aware(as_of, "as_of") if as_of is not None else self.now()
        bal = {}
        a = lt.accounts.c
        for r in conn.execute(select(a.asset, a.balance).where(a.customer_id == customer_id)).all():
            bal[r.asset] = r.balance
        member = conn.execute(
            select(lt.members).where(lt.members.c.customer_id == customer_id)
        ).first()
        tier = None
        if member is not None and member.tier and self.program.tiers is not None:
            lv = self.program.tiers.level(member.tier)
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
        for card in self.program.stamp_cards:
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
                    "next_reward": {"stamps": nxt.stamps, "template": nxt.template}
                    if nxt
                    else None,
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
        if self.program.membership_plans:
            mrow = active_membership(self, conn, customer_id, at)
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
            "expiring_soon": self.expiring_soon(conn, customer_id, expiring_within_days, at),
        }

    def balances(self, conn: Connection, customer_id: str) -> dict[str, str]:
        """Every cached balance of a customer by asset, debts included (for operators)."""
        a = lt.accounts.c
        return {
            r.asset: fmt(r.balance) or "0"
            for r in conn.execute(
                select(a.asset, a.balance).where(a.customer_id == customer_id).order_by(a.asset)
            ).all()
        }

    def history(
        self, conn: Connection, customer_id: str, *, limit: int = 100
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
                "reference": r.reference,
                "at": iso(r.created_at),
                "expires_at": iso(r.expires_at),
            }
            for r in rows
        ]

    # ===================================================================================
    # Stored value (储值)
    # ===================================================================================
    # stored_value: :mod:`huitouke.loyalty.stored_value`
    topup = stored_value.topup
    release_bonus = stored_value.release_bonus
    spend_stored_value = stored_value.spend_stored_value
    refund_stored_value = stored_value.refund_stored_value
    reverse_stored_value_spend = stored_value.reverse_stored_value_spend

    # ===================================================================================
    # Paid membership (付费会员)
    # ===================================================================================
    # membership: :mod:`huitouke.loyalty.membership`
    buy_membership = membership.buy_membership
    renew_membership = membership.renew_membership

    def checkout_quote(
        self,
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
        now = self.now()
        ln = parse_lines(lines)
        member = conn.execute(
            select(lt.members).where(lt.members.c.customer_id == customer_id)
        ).first()
        mult, pct, source = (
            benefits(self, conn, member, now) if member is not None else (Decimal(1), ZERO, None)
        )
        if coupon_codes and not self.program.stacking.member_discount_with_coupons:
            pct, source = ZERO, None
        member_off = money(amt * pct / 100)
        running = amt - member_off
        applied: list[CouponTemplate] = []
        rows = []
        for code in coupon_codes:
            try:
                canon = canonical_code(code)
                row = coupon_row(conn, canon)
                tpl = template_or_default(self, row)
                check_redeemable(
                    coupon_view(row),
                    tpl,
                    customer_id=customer_id,
                    now=now,
                    order_amount=running,
                    others_on_order=applied,
                    max_per_order=self.program.stacking.max_coupons_per_order,
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
        res = compute_earn(
            self.program.earn, running, now, self.zone, lines=ln, member_multiplier=mult
        )
        return {
            "customer_id": customer_id,
            "currency": self.program.currency,
            "subtotal": fmt(amt),
            "member_discount": {"source": source, "percent": fmt(pct), "amount": fmt(member_off)},
            "coupons": rows,
            "total": fmt(running),
            "points_to_earn": fmt(res.points),
            "preferences": dict(member.preferences or {}) if member is not None else {},
        }

    # ===================================================================================
    # Referral (转介绍)
    # ===================================================================================
    def referral_code(self, conn: Connection, customer_id: str) -> dict[str, Any]:
        """The customer's referral code (created once, then stable)."""
        now = self.now()
        member = ensure_member(self, conn, customer_id, now)
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
        self, conn: Connection, referred_customer_id: str, code: str
    ) -> dict[str, Any]:
        """Record that ``referred_customer_id`` arrived with a referral ``code`` (before
        their first paid order). Self-referral is refused; a second code is ignored."""
        now = self.now()
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
        member = ensure_member(self, conn, referred_customer_id, now)
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

    def _attribute_referral(
        self, conn: Connection, o: OrderEvent, now: datetime
    ) -> dict[str, Any] | None:
        cfg = self.program.referral
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
                .values(status="rejected", reason=reason, first_order_id=o.order_id, updated_at=now)
            )
            return {"status": "rejected", "reason": reason, "referrer": row.referrer_id}
        release = o.ordered_at + timedelta(days=cfg.refund_window_days)
        conn.execute(
            update(lt.referrals)
            .where(r.referred_id == o.customer_id)
            .values(
                status="attributed", first_order_id=o.order_id, release_at=release, updated_at=now
            )
        )
        return {"status": "attributed", "referrer": row.referrer_id, "release_at": iso(release)}

    def _give(
        self,
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
                self,
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
                self,
                conn,
                self.program.template(spec.template),
                customer_id,
                key=f"{key}:coupon",
                now=now,
                source="referral",
                source_ref=ref,
                strict_limit=False,
            )
        return out

    def release_referral_rewards(
        self, conn: Connection, as_of: datetime, *, limit: int | None = None
    ) -> dict[str, Any]:
        """Reward both sides of every attribution whose refund window has passed at ``as_of``
        (unless the first order was fully refunded), plus referrer milestones."""
        cfg = self.program.referral
        out: dict[str, Any] = {"rewarded": 0, "rejected": 0, "milestones": 0, "details": []}
        if cfg is None:
            return out
        as_of = aware(as_of, "as_of")
        now = self.now()
        r = lt.referrals.c
        q = (
            select(lt.referrals)
            .where(r.status == "attributed", r.release_at <= as_of)
            .order_by(r.referred_id)
        )
        if limit:
            q = q.limit(limit)
        for row in conn.execute(q).all():
            o = conn.execute(
                select(lt.orders.c.status).where(lt.orders.c.order_id == row.first_order_id)
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
            a = self._give(
                conn, row.referrer_id, cfg.referrer_reward, key=f"{key}:referrer", now=now, ref=key
            )
            b = self._give(
                conn, row.referred_id, cfg.referred_reward, key=f"{key}:referred", now=now, ref=key
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
                self._give(
                    conn,
                    row.referrer_id,
                    ms.reward,
                    key=f"referral_milestone:{row.referrer_id}:{ms.count}",
                    now=now,
                    ref=f"milestone:{ms.count}",
                )
                if ms.upgrade_tier and self.program.tiers is not None:
                    tiers = self.program.tiers
                    mem = ensure_member(self, conn, row.referrer_id, now)
                    if tiers.rank(ms.upgrade_tier) > tiers.rank(mem.tier):
                        conn.execute(
                            update(lt.members)
                            .where(lt.members.c.customer_id == row.referrer_id)
                            .values(
                                tier=ms.upgrade_tier,
                                tier_since=now,
                                tier_valid_until=tier_period_end(tiers, now, self.zone),
                                tier_grace_until=None,
                                updated_at=now,
                            )
                        )
        return out

    # ===================================================================================
    # Group buy (拼团)
    # ===================================================================================
    def groupbuy_open(
        self,
        conn: Connection,
        deal_id: str,
        leader_id: str,
        *,
        idempotency_key: str,
        paid_with: str = "external",
    ) -> dict[str, Any]:
        """Open a group for a deal; the leader joins (and reserves) at once."""
        deal = self.program.deal(deal_id)
        now = self.now()
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
        joined = self._join(conn, group_id, leader_id, paid_with, now, op_key)
        return finish(conn, op_key, joined)

    def groupbuy_join(
        self,
        conn: Connection,
        group_id: str,
        customer_id: str,
        *,
        idempotency_key: str | None = None,
        paid_with: str = "external",
    ) -> dict[str, Any]:
        """Join an open group (reserving the price); the group forms when it is full."""
        now = self.now()
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
        return finish(conn, op_key, self._join(conn, gid, customer_id, paid_with, now, op_key))

    def _join(
        self,
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
                self,
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
            self._capture(conn, group_id, now)
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

    def _capture(self, conn: Connection, group_id: str, now: datetime) -> None:
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

    def groupbuy_settle(self, conn: Connection, as_of: datetime) -> dict[str, Any]:
        """Fail every open group past its deadline and release each participant's reservation."""
        as_of = aware(as_of, "as_of")
        now = self.now()
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

    def groupbuy(self, conn: Connection, group_id: str) -> dict[str, Any]:
        gid = codes.normalize(group_id)
        g, gm = lt.groupbuys.c, lt.groupbuy_members.c
        grp = conn.execute(select(lt.groupbuys).where(g.group_id == gid)).first()
        if grp is None:
            raise NotFoundError(
                f"no group {group_id!r}", code="groupbuy.not_found", details={"group_id": group_id}
            )
        ms = conn.execute(
            select(lt.groupbuy_members)
            .where(gm.group_id == gid)
            .order_by(gm.joined_at, gm.customer_id)
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
                {"customer_id": m.customer_id, "status": m.status, "paid_with": m.paid_with}
                for m in ms
            ],
        }


def _phone(p: str | None) -> str | None:
    if not p:
        return None
    digits = "".join(ch for ch in p if ch.isdigit())
    if digits.startswith("86") and len(digits) == 13:
        digits = digits[2:]
    return digits or None


class BoundLoyalty:
    """:class:`LoyaltyService` bound to a store: each call is its own unit of work, run by
    the store's one retry policy (:func:`huitouke.store.uow.run_write`); the idempotency
    keys make a rerun safe."""

    def __init__(self, service: LoyaltyService, store: Store) -> None:
        self.service = service
        self.store = store

    def __getattr__(self, name: str) -> Callable[..., Any]:
        fn = getattr(self.service, name)
        if not callable(fn):
            raise AttributeError(name)

        def call(*args: Any, **kwargs: Any) -> Any:
            return run_write(self.store, lambda conn: fn(conn, *args, **kwargs))

        return call
