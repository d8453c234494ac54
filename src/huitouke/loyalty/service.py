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

import secrets as _secrets
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import Connection, and_, bindparam, func, or_, select, update

from huitouke.core.orders import (
    COUNTED_STATUSES,
    DEFAULT_SOURCE,
    OrderStatus,
    order_ref,
    split_order_ref,
)
from huitouke.errors import ConflictError, InputError, NotFoundError
from huitouke.i18n import t
from huitouke.loyalty import codes, order_batch
from huitouke.loyalty import tables as lt
from huitouke.loyalty.ledger import (
    Account,
    claim,
    credit_lot,
    debit_fifo,
    finish,
    insert_ignore,
    lock_accounts,
    post,
)
from huitouke.loyalty.program import (
    CouponTemplate,
    Program,
    RewardSpec,
    TierBenefits,
    decimal_places,
)
from huitouke.loyalty.rules import (
    CouponView,
    Line,
    add_months,
    best_benefits,
    bonus_schedule,
    check_redeemable,
    compute_earn,
    coupon_discount,
    coupon_value_for_order,
    currency_unit,
    expiry_at,
    money,
    qualified_tier,
    split_stored_spend,
    stored_value_return_split,
    stored_value_return_target,
    tier_period_end,
    tier_window_start,
    topup_bonus,
)
from huitouke.store import tables as st
from huitouke.store.db import Store
from huitouke.store.uow import run_write

__all__ = ["LoyaltyService", "OrderEvent", "fmt", "parse_order"]

ZERO = Decimal(0)
POINTS, POINTS_DEBT = "points", "points_debt"
SV_PAID, SV_BONUS, SV_PENDING, SV_HELD = (
    "stored_paid",
    "stored_bonus",
    "stored_bonus_pending",
    "stored_held",
)
COUNTED = COUNTED_STATUSES
STATUSES = tuple(s.value for s in OrderStatus)
#: entry kind of stored value given back to the balances an order's payment came from
SV_RETURN = "spend_reversal"


def stamps_asset(card_id: str) -> str:
    return f"stamps:{card_id}"


def stamps_debt_asset(card_id: str) -> str:
    return f"stamps_debt:{card_id}"


def fmt(v: Decimal | int | None) -> str | None:
    """A decimal as a plain string without exponent or trailing zeros ("200", "12.5")."""
    if v is None:
        return None
    d = Decimal(v).quantize(Decimal("0.0001"))
    s = format(d.normalize(), "f")
    return "0" if s in ("-0", "") else s


def iso(v: datetime | None) -> str | None:
    return v.astimezone(UTC).isoformat() if v is not None else None


def _dec(value: Any, field: str) -> Decimal:
    if isinstance(value, float):
        value = repr(value)
    try:
        d = Decimal(value)
    except (InvalidOperation, TypeError, ValueError) as exc:
        raise InputError(
            f"{field}: not a decimal number: {value!r}",
            code="input.invalid",
            message_zh=f"{field}:不是有效的数字:{value!r}",
            details={"field": field},
        ) from exc
    if not d.is_finite():
        raise InputError(
            f"{field}: not a finite number", code="input.invalid", details={"field": field}
        )
    return d


def _aware(value: Any, field: str) -> datetime:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError as exc:
            raise InputError(
                f"{field}: not an ISO 8601 instant: {value!r}",
                code="input.invalid",
                message_zh=f"{field}:不是有效的时间:{value!r}",
                details={"field": field},
            ) from exc
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise InputError(
            f"{field}: needs a time zone (an aware datetime)",
            code="input.invalid",
            message_zh=f"{field}:需要带时区的时间",
            details={"field": field},
        )
    return value.astimezone(UTC)


def _positive(v: Decimal, field: str) -> Decimal:
    if v <= 0:
        raise InputError(
            f"{field} must be > 0",
            code="input.invalid",
            message_zh=f"{field} 必须大于 0",
            details={"field": field},
        )
    return v


@dataclass(frozen=True)
class OrderEvent:
    order_id: str
    customer_id: str
    ordered_at: datetime
    amount: Decimal
    currency: str
    status: str
    refunded_amount: Decimal
    lines: tuple[Line, ...]
    #: the order's source: it is identified by (source, order_id)
    source: str = DEFAULT_SOURCE

    @property
    def ref(self) -> str:
        """How the ledger's text references name the order (:func:`~huitouke.core.orders.order_ref`)."""
        return order_ref(self.source, self.order_id)

    @property
    def refund_total(self) -> Decimal:
        """What has been taken back: everything for refunded/cancelled orders."""
        if self.status in ("refunded", "cancelled"):
            return self.amount
        return self.refunded_amount


def parse_order(order: Mapping[str, Any]) -> OrderEvent:
    """Validate an order event; errors name the field."""
    for f in ("order_id", "customer_id", "ordered_at", "amount", "status"):
        if order.get(f) in (None, ""):
            raise InputError(
                f"{f}: required",
                code="input.missing_field",
                message_zh=f"缺少字段 {f}",
                details={"field": f},
            )
    status = str(order["status"])
    if status not in STATUSES:
        raise InputError(
            f"status: {status!r} is not one of {', '.join(STATUSES)}",
            code="input.invalid",
            message_zh=f"status:未知状态 {status!r}",
            details={"field": "status"},
        )
    amount = _dec(order["amount"], "amount")
    refunded = _dec(order.get("refunded_amount") or 0, "refunded_amount")
    if amount < 0:
        raise InputError("amount must be >= 0", code="input.invalid", details={"field": "amount"})
    if refunded < 0 or refunded > amount:
        raise InputError(
            "refunded_amount must be between 0 and amount",
            code="input.invalid",
            message_zh="退款金额必须在 0 与订单金额之间",
            details={"field": "refunded_amount"},
        )
    lines = []
    for i, ln in enumerate(order.get("lines") or ()):
        q = ln.get("quantity", 1)
        if not isinstance(q, int) or q < 0:
            raise InputError(
                f"lines.{i}.quantity: a whole number >= 0",
                code="input.invalid",
                details={"field": f"lines.{i}.quantity"},
            )
        lines.append(
            Line(
                sku=ln.get("sku"),
                category=ln.get("category"),
                quantity=q,
                unit_price=_dec(ln.get("unit_price", 0), f"lines.{i}.unit_price"),
            )
        )
    return OrderEvent(
        order_id=str(order["order_id"]),
        customer_id=str(order["customer_id"]),
        ordered_at=_aware(order["ordered_at"], "ordered_at"),
        amount=amount,
        currency=str(order.get("currency") or ""),
        status=status,
        refunded_amount=refunded,
        lines=tuple(lines),
        source=str(order.get("source") or DEFAULT_SOURCE),
    )


@dataclass
class StoredValueOnOrder:
    """What one customer paid for one order with stored value, and what came back since."""

    spent_paid: Decimal = ZERO
    spent_bonus: Decimal = ZERO
    back_paid: Decimal = ZERO
    back_bonus: Decimal = ZERO

    @property
    def spent(self) -> Decimal:
        return self.spent_paid + self.spent_bonus

    @property
    def returned(self) -> Decimal:
        return self.back_paid + self.back_bonus

    def owed(self, amount: Decimal, refunded: Decimal, *, full: bool, unit: Decimal) -> Decimal:
        """What a refund of ``refunded`` of an order of ``amount`` (``full``: refunded or
        cancelled) still owes back of this stored value: the cumulative target
        (:func:`~huitouke.loyalty.rules.stored_value_return_target`) minus what came back."""
        target = stored_value_return_target(self.spent, amount, refunded, full=full, unit=unit)
        return target - self.returned


_sva, _sve = lt.accounts.c, lt.entries.c
#: stored-value payments and give-backs on orders, by customer, asset, reference and kind
_STORED_VALUE_ON_ORDERS = (
    select(
        _sva.customer_id, _sva.asset, _sve.reference, _sve.kind, func.sum(_sve.delta).label("total")
    )
    .select_from(lt.entries.join(lt.accounts, _sva.account_id == _sve.account_id))
    .where(
        _sva.customer_id.in_(bindparam("cs", expanding=True)),
        _sva.asset.in_((SV_PAID, SV_BONUS)),
        _sve.reference.in_(bindparam("refs", expanding=True)),
        _sve.kind.in_(("spend", SV_RETURN)),
    )
    .group_by(_sva.customer_id, _sva.asset, _sve.reference, _sve.kind)
)


def stored_value_on_orders(
    conn: Connection, pairs: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], StoredValueOnOrder]:
    """For each (customer, order id): the stored value paid on the order (``spend`` entries
    on ``stored_paid`` / ``stored_bonus`` referencing ``order:<id>``) and what was given back
    (``spend_reversal`` entries). Pairs without any such entry are left out. Read under the
    caller's lock on the two accounts."""
    wanted = sorted(set(pairs))
    out: dict[tuple[str, str], StoredValueOnOrder] = {}
    for i in range(0, len(wanted), 1000):
        chunk = wanted[i : i + 1000]
        refs = {f"order:{order_id}": order_id for _, order_id in chunk}
        want = set(chunk)
        rows = conn.execute(
            _STORED_VALUE_ON_ORDERS,
            {"cs": sorted({c for c, _ in chunk}), "refs": sorted(refs)},
        ).all()
        for r in rows:
            key = (r.customer_id, refs[r.reference])
            if key not in want:
                continue
            rec = out.setdefault(key, StoredValueOnOrder())
            total = Decimal(r.total)  # SUM keeps the Money type: an exact Decimal
            if r.kind == "spend":
                if r.asset == SV_PAID:
                    rec.spent_paid -= total
                else:
                    rec.spent_bonus -= total
            elif r.asset == SV_PAID:
                rec.back_paid += total
            else:
                rec.back_bonus += total
    return out


def _lines(lines: Iterable[Mapping[str, Any]] | None) -> tuple[Line, ...]:
    out = []
    for i, ln in enumerate(lines or ()):
        out.append(
            Line(
                ln.get("sku"),
                ln.get("category"),
                int(ln.get("quantity", 1)),
                _dec(ln.get("unit_price", 0), f"lines.{i}.unit_price"),
            )
        )
    return tuple(out)


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


class LoyaltyService:
    """The loyalty use cases of one program (see the module docstring for the contract)."""

    def __init__(self, program: Program, clock: Callable[[], datetime] | None = None) -> None:
        self.program = program
        self.zone = program.zone
        self._clock = clock or (lambda: datetime.now(UTC))

    # -- plumbing ------------------------------------------------------------------------
    def now(self) -> datetime:
        t = self._clock()
        if t.tzinfo is None:
            raise InputError("the loyalty clock returned a naive datetime", code="input.invalid")
        return t.astimezone(UTC)

    def bound(self, store: Store) -> BoundLoyalty:
        """The same use cases, each run in its own unit of work on ``store`` (with retries)."""
        return BoundLoyalty(self, store)

    @staticmethod
    def _canon(code: str) -> str:
        try:
            return codes.normalize(code, check=True)
        except ValueError as exc:
            raise NotFoundError(
                f"no coupon {code!r} ({exc})",
                code="coupon.not_found",
                message_zh=f"没有这张优惠券 {code!r}(校验位不符,可能输错了)",
                details={"code": code, "reason": str(exc)},
            ) from exc

    def _money_sum(self, conn: Connection, raw: Any) -> Decimal:
        # SUM over Money columns keeps the Money type: the value is already an exact Decimal.
        return Decimal(raw) if raw is not None else ZERO

    def _member(self, conn: Connection, customer_id: str, now: datetime) -> Any:
        m = lt.members.c
        stmt = select(lt.members).where(m.customer_id == customer_id)
        if conn.dialect.name == "postgresql":
            stmt = stmt.with_for_update()
        row = conn.execute(stmt).first()
        if row is None:
            insert_ignore(
                conn,
                lt.members,
                {
                    "customer_id": customer_id,
                    "preferences": {},
                    "paid_orders": 0,
                    "created_at": now,
                    "updated_at": now,
                },
                "customer_id",
            )
            row = conn.execute(stmt).first()
        return row

    def _active_membership(self, conn: Connection, customer_id: str, at: datetime) -> Any:
        if not self.program.membership_plans:
            return None
        ms = lt.memberships.c
        return conn.execute(
            select(lt.memberships)
            .where(
                ms.customer_id == customer_id,
                ms.status != "cancelled",
                ms.starts_at <= at,
                ms.ends_at > at,
            )
            .order_by(ms.ends_at.desc())
            .limit(1)
        ).first()

    def _benefits(
        self, conn: Connection, member: Any, at: datetime
    ) -> tuple[Decimal, Decimal, str | None]:
        """(points multiplier, discount percent, source of the discount) for a customer at ``at``."""
        tier_b: TierBenefits | None = None
        if self.program.tiers is not None and member is not None and member.tier:
            lv = self.program.tiers.level(member.tier)
            tier_b = lv.benefits if lv else None
        ms = self._active_membership(conn, member.customer_id, at) if member is not None else None
        plan_b: TierBenefits | None = None
        if ms is not None:
            try:
                plan_b = self.program.plan(ms.plan_id).benefits
            except NotFoundError:
                plan_b = None
        mult, disc = best_benefits(tier_b, plan_b)
        source = None
        if disc > 0:
            source = (
                "membership" if plan_b is not None and plan_b.discount_percent == disc else "tier"
            )
        return mult, disc, source

    # -- points primitives -------------------------------------------------------------------
    def _earn_points(
        self,
        conn: Connection,
        customer_id: str,
        points: Decimal,
        *,
        key: str,
        ref: str,
        now: datetime,
        earned_at: datetime,
        kind: str = "earn",
    ) -> tuple[Decimal, Decimal, int | None]:
        """Credit points, paying any points debt first. Returns (credited, debt_settled, lot_id)."""
        if points <= 0:
            return ZERO, ZERO, None
        accts = lock_accounts(
            conn, [(customer_id, POINTS)], now, optional=[(customer_id, POINTS_DEBT)]
        )
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
            expires_at=expiry_at(self.program.points_expiry, earned_at, self.zone),
            reference=ref,
        )
        return points - settle, settle, lot

    # -- coupons primitives ----------------------------------------------------------------
    def _points_amount(self, v: Decimal, field: str) -> Decimal:
        """``v`` when it has no more decimal places than the program's ``points.decimals``."""
        decimals = self.program.points.decimals
        if decimal_places(v) > decimals:
            raise InputError(
                t("loyalty.points_fractional", "en", field=field, decimals=decimals),
                code="points.fractional",
                message_zh=t("loyalty.points_fractional", "zh", field=field, decimals=decimals),
                details={"field": field, "decimals": decimals, "value": str(v)},
            )
        return v

    def _issued_count(self, conn: Connection, template_id: str, customer_id: str) -> int:
        c = lt.coupons.c
        return int(
            conn.execute(
                select(func.count()).where(c.template_id == template_id, c.issued_to == customer_id)
            ).scalar_one()
        )

    def _issue(
        self,
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
        if (
            template.max_per_customer is not None
            and self._issued_count(conn, template.id, customer_id) >= template.max_per_customer
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
            "currency": self.program.currency,
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
            raise ConflictError(
                "could not generate a unique coupon code", code="coupon.code_collision"
            )
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
        return self._coupon_json(
            {**row, "code": code, "redeemed_order_id": None, "redeemed_at": None, "discount": None}
        )

    def _coupon_json(self, r: Mapping[str, Any]) -> dict[str, Any]:
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

    def _coupon_row(self, conn: Connection, code: str, *, lock: bool = False) -> Any:
        stmt = _COUPON_FOR_UPDATE if lock and conn.dialect.name == "postgresql" else _COUPON
        row = conn.execute(stmt, {"b_code": code}).first()
        if row is None:
            raise self._no_coupon(code)
        return row

    @staticmethod
    def _no_coupon(code: str) -> NotFoundError:
        return NotFoundError(
            f"no coupon {code!r}",
            code="coupon.not_found",
            message_zh=f"没有这张优惠券 {code!r}",
            details={"code": code},
        )

    def _template_or_default(self, row: Any) -> CouponTemplate:
        try:
            return self.program.template(row.template_id)
        except NotFoundError:
            # The template left the program after issuing: the coupon keeps its own terms.
            return CouponTemplate(
                id=row.template_id, kind="fixed", value=row.value or Decimal("0.01")
            )

    @staticmethod
    def _view(row: Any) -> CouponView:
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
    def _tier_metric(self, conn: Connection, customer_id: str, as_of: datetime) -> Decimal:
        tiers = self.program.tiers
        assert tiers is not None
        lo = lt.orders.c
        start = tier_window_start(tiers, as_of, self.zone)
        cond = and_(
            lo.customer_id == customer_id,
            lo.earned.is_(True),
            lo.ordered_at >= start,
            lo.ordered_at <= as_of,
        )
        if tiers.metric == "orders":
            n = conn.execute(select(func.count()).where(cond, lo.status.in_(COUNTED))).scalar_one()
            return Decimal(int(n))
        if tiers.metric == "spend":
            raw = conn.execute(
                select(func.sum(lo.amount - lo.refunded_amount)).where(cond)
            ).scalar_one()
        else:
            raw = conn.execute(
                select(func.sum(lo.points_earned - lo.points_reversed)).where(cond)
            ).scalar_one()
        return self._money_sum(conn, raw)

    def review_tiers(
        self, conn: Connection, as_of: datetime, *, limit: int | None = None
    ) -> dict[str, Any]:
        """Downgrades at period end, after the grace period (see :class:`Tiers`)."""
        tiers = self.program.tiers
        out = {"reviewed": 0, "extended": 0, "grace_started": 0, "downgraded": 0, "upgraded": 0}
        if tiers is None:
            return out
        as_of = _aware(as_of, "as_of")
        m = lt.members.c
        q = select(lt.members).where(m.tier_valid_until <= as_of).order_by(m.customer_id)
        if limit:
            q = q.limit(limit)
        if conn.dialect.name == "postgresql":
            q = q.with_for_update()
        for row in conn.execute(q).all():
            out["reviewed"] += 1
            value = self._tier_metric(conn, row.customer_id, as_of)
            qt = qualified_tier(tiers, value)
            cur_rank, q_rank = tiers.rank(row.tier), tiers.rank(qt)
            vals: dict[str, Any]
            if q_rank >= cur_rank:
                vals = {
                    "tier": qt,
                    "tier_valid_until": tier_period_end(tiers, as_of, self.zone),
                    "tier_grace_until": None,
                }
                out["upgraded" if q_rank > cur_rank else "extended"] += 1
                if q_rank > cur_rank:
                    vals["tier_since"] = as_of
            elif row.tier_grace_until is None and tiers.grace_days > 0:
                vals = {"tier_grace_until": row.tier_valid_until + timedelta(days=tiers.grace_days)}
                out["grace_started"] += 1
            elif row.tier_grace_until is not None and as_of < row.tier_grace_until:
                continue
            else:
                vals = {
                    "tier": qt,
                    "tier_since": as_of,
                    "tier_valid_until": tier_period_end(tiers, as_of, self.zone),
                    "tier_grace_until": None,
                }
                out["downgraded"] += 1
            conn.execute(
                update(lt.members)
                .where(m.customer_id == row.customer_id)
                .values(**vals, updated_at=as_of)
            )
        return out

    def set_preferences(
        self, conn: Connection, customer_id: str, preferences: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Remember a customer's preferences (size, taste…): a tier benefit shown at checkout."""
        now = self.now()
        self._member(conn, customer_id, now)
        m = lt.members.c
        cur = conn.execute(select(m.preferences).where(m.customer_id == customer_id)).scalar_one()
        merged = {**(cur or {}), **dict(preferences)}
        conn.execute(
            update(lt.members)
            .where(m.customer_id == customer_id)
            .values(preferences=merged, updated_at=now)
        )
        return {"customer_id": customer_id, "preferences": merged}

    # ===================================================================================
    # Coupons
    # ===================================================================================
    def issue_coupon(
        self, conn: Connection, template_id: str, customer_id: str, *, idempotency_key: str
    ) -> dict[str, Any]:
        """Issue one coupon of ``template_id`` to ``customer_id`` (per-customer limit checked)."""
        template = self.program.template(template_id)
        now = self.now()
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
        self._member(conn, customer_id, now)
        c = self._issue(
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
        self,
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
        ``ConflictError(code="coupon.already_redeemed")``.
        """
        canon = self._canon(code)
        amount = _dec(order_amount, "order_amount") if order_amount is not None else None
        now = self.now()
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
            raise self._no_coupon(canon)
        template = self._template_or_default(row)
        others = [self._template_or_default(r) for r in others_rows]
        ln = _lines(lines)
        check_redeemable(
            self._view(row),
            template,
            customer_id=customer_id,
            now=now,
            order_amount=amount,
            others_on_order=others,
            max_per_order=self.program.stacking.max_coupons_per_order,
            lines=ln,
        )
        discount = (
            coupon_discount(template, row.value, amount, ln) if amount is not None else row.value
        )
        res = conn.execute(
            _REDEEM,
            {
                "b_code": canon,
                "b_holder": customer_id,
                "b_order": order_id,
                "b_rid": redemption_id or op_key,
                "b_at": now,
                "b_discount": discount,
            },
        )
        if res.rowcount != 1:
            # Lost a race: report the state the winner left.
            fresh = self._coupon_row(conn, canon)
            check_redeemable(
                self._view(fresh), template, customer_id=customer_id, now=now, order_amount=None
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
                "from_customer": customer_id,
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
        return finish(conn, op_key, result)

    def void_coupon(
        self, conn: Connection, code: str, *, reason: str = "", idempotency_key: str | None = None
    ) -> dict[str, Any]:
        """Void an unredeemed coupon (voiding a voided coupon again changes nothing)."""
        canon = self._canon(code)
        now = self.now()
        op_key = f"void:{idempotency_key or canon}"
        request = {"code": canon, "reason": reason} if idempotency_key else None
        prior = claim(conn, op_key, "coupon_void", None, now, request=request)
        if prior is not None:
            return prior
        row = self._coupon_row(conn, canon, lock=True)
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
                update(lt.coupons)
                .where(c.code == canon, c.status == "issued")
                .values(status="voided")
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
        self,
        conn: Connection,
        code: str,
        from_customer: str,
        to_customer: str,
        *,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Gift a coupon to a friend, who becomes its holder (transfer limits apply)."""
        canon = self._canon(code)
        now = self.now()
        op_key = f"gift:{idempotency_key or f'{canon}:{from_customer}:{to_customer}'}"
        request = (
            {"code": canon, "from": from_customer, "to": to_customer} if idempotency_key else None
        )
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
        row = self._coupon_row(conn, canon, lock=True)
        template = self._template_or_default(row)
        # A coupon not valid yet (a spend-back coupon's delay) can already be gifted.
        check_redeemable(
            self._view(row),
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
        self._member(conn, to_customer, now)
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

    def coupon(self, conn: Connection, code: str) -> dict[str, Any]:
        """One coupon with its event history."""
        canon = self._canon(code)
        row = self._coupon_row(conn, canon)
        ce = lt.coupon_events.c
        events = conn.execute(
            select(lt.coupon_events).where(ce.code == canon).order_by(ce.event_id)
        ).all()
        out = self._coupon_json(dict(row._mapping))
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

    # ===================================================================================
    # Points
    # ===================================================================================
    def adjust_points(
        self,
        conn: Connection,
        customer_id: str,
        delta: Decimal | int | str,
        *,
        reason: str,
        idempotency_key: str,
    ) -> dict[str, Any]:
        """Operator adjustment: a credit (a new lot, paying debt first) or a FIFO debit."""
        d = self._points_amount(_dec(delta, "delta"), "delta")
        if d == 0:
            raise InputError(
                "delta must not be 0", code="input.invalid", details={"field": "delta"}
            )
        now = self.now()
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
        self._member(conn, customer_id, now)
        ref = f"adjust:{reason}"[:255]
        if d > 0:
            credited, settled, _ = self._earn_points(
                conn, customer_id, d, key=op_key, ref=ref, now=now, earned_at=now, kind="adjust"
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
        out["points_balance"] = fmt(self._balance(conn, customer_id, POINTS))
        out["reason"] = reason
        return finish(conn, op_key, out)

    def redeem_points(
        self,
        conn: Connection,
        customer_id: str,
        points: Decimal | int | str | None = None,
        *,
        reward: str | None = None,
        idempotency_key: str,
    ) -> dict[str, Any]:
        """Spend points, earliest-expiring first: for a catalogue ``reward`` (a coupon) or
        as a cash discount at ``redemption.points_per_currency_unit``."""
        now = self.now()
        red = self.program.redemption
        rw = self.program.reward(reward) if reward is not None else None
        if rw is not None:
            pts = rw.points if points is None else _dec(points, "points")
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
            pts = _positive(_dec(points, "points"), "points")
            if red.points_per_currency_unit is None:
                raise ConflictError(
                    "this program does not redeem points for cash",
                    code="points.cash_redemption_disabled",
                )
        pts = self._points_amount(pts, "points")
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
        accts = lock_accounts(conn, [(customer_id, POINTS)], now)
        debit_fifo(
            conn,
            accts[(customer_id, POINTS)],
            pts,
            kind="redeem",
            key=op_key,
            now=now,
            reference=f"reward:{reward}" if reward else "discount",
        )
        out: dict[str, Any] = {
            "customer_id": customer_id,
            "points": fmt(pts),
            "points_balance": fmt(accts[(customer_id, POINTS)].balance),
        }
        if rw is not None:
            out["reward"] = rw.id
            out["coupon"] = self._issue(
                conn,
                self.program.template(rw.template),
                customer_id,
                key=op_key,
                now=now,
                source="points",
                source_ref=idempotency_key,
            )
        else:
            assert red.points_per_currency_unit is not None
            out["discount"] = fmt(money(pts / red.points_per_currency_unit))
            out["currency"] = self.program.currency
        return finish(conn, op_key, out)

    def _balance(self, conn: Connection, customer_id: str, asset: str) -> Decimal:
        a = lt.accounts.c
        v = conn.execute(
            select(a.balance).where(a.customer_id == customer_id, a.asset == asset)
        ).scalar_one_or_none()
        return v if v is not None else ZERO

    # ===================================================================================
    # Expiry
    # ===================================================================================
    def expire(
        self, conn: Connection, as_of: datetime, *, limit: int | None = None
    ) -> dict[str, Any]:
        """Expire what is due at ``as_of``: point and stamp lots, coupons, memberships,
        and review tiers whose period ended. Safe to re-run (each lot expires once)."""
        as_of = _aware(as_of, "as_of")
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
        out["tiers"] = self.review_tiers(conn, as_of, limit=limit)
        return out

    def expiring_soon(
        self, conn: Connection, customer_id: str | None, within_days: int, as_of: datetime
    ) -> list[dict[str, Any]]:
        """Points, stamps and coupons that expire in ``(as_of, as_of + within_days]``."""
        as_of = _aware(as_of, "as_of")
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
        at = _aware(as_of, "as_of") if as_of is not None else self.now()
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
            self._coupon_json(dict(r._mapping))
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
            mrow = self._active_membership(conn, customer_id, at)
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
    def topup(
        self,
        conn: Connection,
        customer_id: str,
        amount: Decimal | str | int,
        *,
        idempotency_key: str,
    ) -> dict[str, Any]:
        """Top up: the paid amount is available at once; the bonus follows its schedule."""
        amt = _positive(_dec(amount, "amount"), "amount")
        sv = self.program.stored_value
        if amt < sv.min_topup:
            raise ConflictError(
                f"the minimum top-up is {sv.min_topup}",
                code="stored_value.below_minimum",
                details={"min_topup": str(sv.min_topup)},
            )
        now = self.now()
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
        self._member(conn, customer_id, now)
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
            for seq, (at, part) in enumerate(bonus_schedule(rule, bonus, now, self.zone)):
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
                "balances": self._sv_balances(accts, customer_id),
            },
        )

    @staticmethod
    def _sv_balances(
        accts: Mapping[tuple[str, str], Account], customer_id: str
    ) -> dict[str, str | None]:
        def b(asset: str) -> str | None:
            acct = accts.get((customer_id, asset))
            return fmt(acct.balance if acct else ZERO)

        return {"paid": b(SV_PAID), "bonus": b(SV_BONUS), "pending_bonus": b(SV_PENDING)}

    def release_bonus(
        self, conn: Connection, as_of: datetime, *, limit: int | None = None
    ) -> dict[str, Any]:
        """Release every bonus installment due at ``as_of`` (pending → bonus balance)."""
        as_of = _aware(as_of, "as_of")
        now = self.now()
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
            accts = lock_accounts(
                conn, [(r.customer_id, SV_PENDING), (r.customer_id, SV_BONUS)], now
            )
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
        self,
        conn: Connection,
        customer_id: str,
        amount: Decimal | str | int,
        *,
        order_id: str,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Pay (part of) an order from stored value, paid or bonus first per the program.

        With ``stored_value.return_on_order_refund`` a payment recorded after the ledger has
        applied a refund of the order (the till reported them out of order) gives back at
        once the refunded share of everything paid on the order, as the refund event would
        have had the payment come first (``returned_at_once``); the order's later events
        count it, so nothing comes back twice.
        """
        amt = _positive(_dec(amount, "amount"), "amount")
        now = self.now()
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
        accts = lock_accounts(conn, [(customer_id, SV_PAID), (customer_id, SV_BONUS)], now)
        from_paid, from_bonus = self._debit_stored_value(
            conn,
            accts,
            customer_id,
            amt,
            kind="spend",
            key=op_key,
            ref=f"order:{order_id}",
            now=now,
        )
        returned = None
        if self.program.stored_value.return_on_order_refund:
            # Read after the lock on the stored-value accounts, which a refund event of this
            # customer takes before reading the payments: one of the two sees the other.
            returned = self._return_on_refunded_order(
                conn, accts, customer_id, order_id, key=f"{op_key}:sv_return", now=now
            )
        return finish(
            conn,
            op_key,
            {
                "customer_id": customer_id,
                "order_id": order_id,
                "amount": fmt(amt),
                "from_paid": fmt(from_paid),
                "from_bonus": fmt(from_bonus),
                "returned_at_once": returned,
                "balances": self._sv_balances(accts, customer_id),
            },
        )

    def _return_on_refunded_order(
        self,
        conn: Connection,
        accts: Mapping[tuple[str, str], Account],
        customer_id: str,
        order_id: str,
        *,
        key: str,
        now: datetime,
    ) -> dict[str, Any] | None:
        """Give back what the order's applied refund owes of the stored value paid on it
        (the order event's own rule), when the ledger has the order as this customer's
        and (partly) refunded; ``None`` when nothing is owed."""
        lo = lt.orders.c
        row = conn.execute(
            select(lo.customer_id, lo.amount, lo.status, lo.refunded_amount).where(
                lo.order_id == order_id
            )
        ).first()
        if row is None or row.customer_id != customer_id:
            return None
        full = row.status in ("refunded", "cancelled")
        if not full and row.refunded_amount <= 0:
            return None
        rec = stored_value_on_orders(conn, [(customer_id, order_id)]).get(
            (customer_id, order_id), StoredValueOnOrder()
        )
        unit = currency_unit(self.program.currency)
        give = rec.owed(row.amount, row.refunded_amount, full=full, unit=unit)
        if give <= 0:
            return None
        to_paid, to_bonus = self._return_stored_value(
            conn, accts, customer_id, rec, give, key=key, ref=f"order:{order_id}", now=now
        )
        return {"amount": fmt(give), "paid": fmt(to_paid), "bonus": fmt(to_bonus)}

    def refund_stored_value(
        self,
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
        now = self.now()
        op_key = f"sv_refund:{idempotency_key}"
        prior = claim(
            conn,
            op_key,
            "sv_refund",
            customer_id,
            now,
            request={
                "customer_id": customer_id,
                "amount": None if amount is None else _dec(amount, "amount"),
            },
        )
        if prior is not None:
            return prior
        accts = lock_accounts(
            conn, [(customer_id, SV_PAID), (customer_id, SV_BONUS), (customer_id, SV_PENDING)], now
        )
        paid = accts[(customer_id, SV_PAID)]
        amt = paid.balance if amount is None else _positive(_dec(amount, "amount"), "amount")
        if amt > paid.balance:
            raise ConflictError(
                f"only {paid.balance} of paid stored value is refundable",
                code="stored_value.insufficient",
                message_zh=f"可退储值本金仅 {paid.balance}",
                details={"refundable": str(paid.balance), "requested": str(amt)},
            )
        post(conn, paid, -amt, kind="refund", key=op_key, now=now, reference=idempotency_key)
        forfeited = ZERO
        if self.program.stored_value.refund_forfeits_bonus and paid.balance == 0:
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
                "balances": self._sv_balances(accts, customer_id),
            },
        )

    def reverse_stored_value_spend(
        self,
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

        Order events that refund an order give stored value back by themselves when the
        program's ``stored_value.return_on_order_refund`` is on (the default); this
        operation is for refunds not reported as order events, and counts what they gave.
        """
        amt = None if amount is None else _positive(_dec(amount, "amount"), "amount")
        now = self.now()
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
        accts = lock_accounts(
            conn, [], now, optional=[(customer_id, SV_PAID), (customer_id, SV_BONUS)]
        )
        rec = stored_value_on_orders(conn, [(customer_id, order_id)]).get(
            (customer_id, order_id), StoredValueOnOrder()
        )
        if rec.spent <= 0:
            raise NotFoundError(
                f"customer {customer_id} paid nothing with stored value on order {order_id}",
                code="stored_value.spend_not_found",
                message_zh=f"顾客 {customer_id} 的订单 {order_id} 没有储值支付",
                details={"customer_id": customer_id, "order_id": order_id},
            )
        left = rec.spent - rec.returned
        if amt is None:
            if left <= 0:
                raise ConflictError(
                    f"the {rec.spent} paid with stored value on order {order_id} was all "
                    "given back already",
                    code="stored_value.return_exceeds_spend",
                    message_zh=f"订单 {order_id} 的储值支付 {rec.spent} 已全部退回",
                    details={"spent": str(rec.spent), "returned": str(rec.returned)},
                )
            amt = left
        to_paid, to_bonus = self._return_stored_value(
            conn, accts, customer_id, rec, amt, key=op_key, ref=f"order:{order_id}", now=now
        )
        return finish(
            conn,
            op_key,
            {
                "customer_id": customer_id,
                "order_id": order_id,
                "amount": fmt(amt),
                "to_paid": fmt(to_paid),
                "to_bonus": fmt(to_bonus),
                "spent": fmt(rec.spent),
                "returned": fmt(rec.returned),
                "balances": self._sv_balances(accts, customer_id),
            },
        )

    def _return_stored_value(
        self,
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
            unit=currency_unit(self.program.currency),
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

    # ===================================================================================
    # Paid membership (付费会员)
    # ===================================================================================
    def _term_end(self, start: datetime, plan_id: str) -> datetime:
        plan = self.program.plan(plan_id)
        if plan.term_days is not None:
            return start + timedelta(days=plan.term_days)
        assert plan.term_months is not None
        local = start.astimezone(self.zone)
        d = add_months(local.date(), plan.term_months)
        return datetime.combine(
            d, local.timetz().replace(tzinfo=None), tzinfo=self.zone
        ).astimezone(UTC)

    def _pay_fee(
        self,
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
        self._debit_stored_value(
            conn, accts, customer_id, fee, kind="spend", key=key, ref=ref, now=now
        )

    def _debit_stored_value(
        self,
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
            paid.balance, bonus.balance, amount, self.program.stored_value.spend_order
        )
        post(conn, paid, -from_paid, kind=kind, key=f"{key}:paid", now=now, reference=ref)
        post(conn, bonus, -from_bonus, kind=kind, key=f"{key}:bonus", now=now, reference=ref)
        return from_paid, from_bonus

    def buy_membership(
        self,
        conn: Connection,
        customer_id: str,
        plan_id: str,
        *,
        idempotency_key: str,
        paid_with: str = "external",
    ) -> dict[str, Any]:
        """Buy a paid membership starting now; refused while one is active (renew instead)."""
        plan = self.program.plan(plan_id)
        now = self.now()
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
        self._member(conn, customer_id, now)
        if self._active_membership(conn, customer_id, now) is not None:
            raise ConflictError(
                "a membership is already active; renew it instead",
                code="membership.active",
                message_zh="已有生效中的付费会员,请续费",
                details={"customer_id": customer_id},
            )
        self._pay_fee(conn, customer_id, plan.fee, paid_with, op_key, f"membership:{plan.id}", now)
        end = self._term_end(now, plan.id)
        conn.execute(
            lt.memberships.insert(),
            {
                "customer_id": customer_id,
                "plan_id": plan.id,
                "starts_at": now,
                "ends_at": end,
                "fee": plan.fee,
                "currency": self.program.currency,
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
        self,
        conn: Connection,
        customer_id: str,
        *,
        idempotency_key: str,
        plan_id: str | None = None,
        paid_with: str = "external",
    ) -> dict[str, Any]:
        """Renew: a new term starting when the current one ends (or now, if it lapsed)."""
        now = self.now()
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
        self._member(conn, customer_id, now)
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
        plan = self.program.plan(plan_id or (last.plan_id if last is not None else ""))
        start = max(now, last.ends_at) if last is not None else now
        end = self._term_end(start, plan.id)
        self._pay_fee(conn, customer_id, plan.fee, paid_with, op_key, f"membership:{plan.id}", now)
        conn.execute(
            lt.memberships.insert(),
            {
                "customer_id": customer_id,
                "plan_id": plan.id,
                "starts_at": start,
                "ends_at": end,
                "fee": plan.fee,
                "currency": self.program.currency,
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
        amt = _dec(amount, "amount")
        now = self.now()
        ln = _lines(lines)
        member = conn.execute(
            select(lt.members).where(lt.members.c.customer_id == customer_id)
        ).first()
        mult, pct, source = (
            self._benefits(conn, member, now) if member is not None else (Decimal(1), ZERO, None)
        )
        if coupon_codes and not self.program.stacking.member_discount_with_coupons:
            pct, source = ZERO, None
        member_off = money(amt * pct / 100)
        running = amt - member_off
        applied: list[CouponTemplate] = []
        rows = []
        for code in coupon_codes:
            try:
                canon = self._canon(code)
                row = self._coupon_row(conn, canon)
                tpl = self._template_or_default(row)
                check_redeemable(
                    self._view(row),
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
        member = self._member(conn, customer_id, now)
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
        member = self._member(conn, referred_customer_id, now)
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
            _credited, _settled, _ = self._earn_points(
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
            out["coupon"] = self._issue(
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
        as_of = _aware(as_of, "as_of")
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
                    mem = self._member(conn, row.referrer_id, now)
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
            held_paid, held_bonus = self._debit_stored_value(
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
        as_of = _aware(as_of, "as_of")
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
