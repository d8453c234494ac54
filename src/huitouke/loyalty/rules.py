"""Pure loyalty rules: no database, no clock, no I/O.

Every function here takes plain values (the program, amounts, instants) and returns plain
values, so each mechanic is unit-tested without a store and the persistence layer
(the mechanic modules and the batch ledger, :mod:`huitouke.loyalty.order_batch`) only move
their results into the ledger.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_FLOOR, ROUND_HALF_UP, Decimal
from zoneinfo import ZoneInfo

from huitouke.errors import ConflictError, ForbiddenError, InputError
from huitouke.loyalty.program import (
    CouponTemplate,
    EarnRules,
    PointsExpiry,
    StampCard,
    TierBenefits,
    Tiers,
    TopupRule,
)

__all__ = [
    "CENT",
    "CouponView",
    "EarnResult",
    "Line",
    "LotView",
    "StampAdvance",
    "add_months",
    "allocate_fifo",
    "best_benefits",
    "bonus_schedule",
    "check_redeemable",
    "compute_earn",
    "coupon_discount",
    "coupon_value_for_order",
    "currency_unit",
    "expiry_at",
    "proportional_target",
    "qualified_tier",
    "split_stored_spend",
    "stamp_advance",
    "stamps_for_order",
    "stamps_for_visit",
    "stored_value_return_split",
    "stored_value_return_target",
    "tier_period_end",
    "tier_window_start",
    "topup_bonus",
]

CENT = Decimal("0.01")
ONE = Decimal(1)
ZERO = Decimal(0)


def _round_points(v: Decimal, how: str) -> Decimal:
    return v.quantize(ONE, rounding=ROUND_FLOOR if how == "floor" else ROUND_HALF_UP)


def money(v: Decimal) -> Decimal:
    """Money rounded to the cent, half up (the customer-facing precision)."""
    return v.quantize(CENT, rounding=ROUND_HALF_UP)


# -- calendar helpers ----------------------------------------------------------------------
def add_months(d: date, months: int) -> date:
    """``d`` plus ``months`` calendar months, clamped to the month's last day (Jan 31 + 1 = Feb 28/29)."""
    y, m = divmod(d.month - 1 + months, 12)
    year, month = d.year + y, m + 1
    return date(year, month, min(d.day, calendar.monthrange(year, month)[1]))


def _local_midnight(d: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(d, time(0), tzinfo=zone).astimezone(UTC)


def expiry_at(policy: PointsExpiry, earned_at: datetime, zone: ZoneInfo) -> datetime | None:
    """When points earned at ``earned_at`` expire (exclusive instant, UTC), or None for never."""
    if policy.mode == "never":
        return None
    if policy.mode == "rolling_days":
        return (earned_at + timedelta(days=policy.days)).astimezone(UTC)
    local = earned_at.astimezone(zone).date()
    if policy.mode == "end_of_month":
        first_next = add_months(local.replace(day=1), policy.after + 1)
        return _local_midnight(first_next, zone)
    return _local_midnight(date(local.year + policy.after + 1, 1, 1), zone)


# -- earning -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Line:
    sku: str | None
    category: str | None
    quantity: int
    unit_price: Decimal

    @property
    def total(self) -> Decimal:
        return self.unit_price * self.quantity


@dataclass(frozen=True)
class EarnResult:
    points: Decimal
    base: Decimal
    multiplier: Decimal
    bonus: Decimal
    campaigns: tuple[str, ...] = ()
    reason: str | None = None


def best_benefits(*benefits: TierBenefits | None) -> tuple[Decimal, Decimal]:
    """(points multiplier, discount percent): the best of each over tier and membership.

    Benefits of several sources do not compound; the customer gets the better one.
    """
    mult, disc = ONE, ZERO
    for b in benefits:
        if b is not None:
            mult = max(mult, b.points_multiplier)
            disc = max(disc, b.discount_percent)
    return mult, disc


def compute_earn(
    rules: EarnRules,
    amount: Decimal,
    ordered_at: datetime,
    zone: ZoneInfo,
    *,
    lines: Sequence[Line] = (),
    member_multiplier: Decimal = ONE,
) -> EarnResult:
    """Points for a paid order of ``amount`` (see :class:`~huitouke.loyalty.program.EarnRules`).

    With lines, each line earns on its share of the order amount (discounts spread
    pro rata) times its sku or category multiplier.
    """
    if amount < rules.min_order_amount or amount <= 0:
        return EarnResult(ZERO, ZERO, ONE, ZERO, reason="below_minimum")
    rate = rules.points_per_unit / rules.unit
    lines_total = sum((ln.total for ln in lines), ZERO)
    if lines and lines_total > 0:
        base = ZERO
        for ln in lines:
            m = rules.sku_multipliers.get(ln.sku or "")
            if m is None:
                m = rules.category_multipliers.get(ln.category or "", ONE)
            base += amount * ln.total / lines_total * rate * m
    else:
        base = amount * rate
    categories = {ln.category for ln in lines if ln.category}
    camp_mult, bonus, names = ONE, ZERO, []
    for c in rules.campaigns:
        start, end = c.window(zone)
        if not (start <= ordered_at < end) or amount < c.min_order_amount:
            continue
        if c.categories and not categories.intersection(c.categories):
            continue
        camp_mult = max(camp_mult, c.multiplier)
        bonus += c.bonus_points
        names.append(c.id)
    mult = member_multiplier * camp_mult
    points = _round_points(base * mult, rules.rounding) + rules.per_order + bonus
    return EarnResult(points, base, mult, bonus + rules.per_order, tuple(names))


def proportional_target(earned: Decimal, amount: Decimal, refunded: Decimal) -> Decimal:
    """How much of ``earned`` a refund of ``refunded`` out of ``amount`` takes back in total.

    Rounded half up to whole units; a full refund takes back exactly everything.
    """
    if amount <= 0 or refunded >= amount:
        return earned
    if refunded <= 0:
        return ZERO
    return min(earned, (earned * refunded / amount).quantize(ONE, rounding=ROUND_HALF_UP))


# -- FIFO lots -----------------------------------------------------------------------------
@dataclass(frozen=True)
class LotView:
    lot_id: int
    remaining: Decimal
    expires_at: datetime | None


def allocate_fifo(
    lots: Iterable[LotView], amount: Decimal, *, prefer: int | None = None
) -> tuple[list[tuple[int, Decimal]], Decimal]:
    """Take ``amount`` from lots, earliest-expiring first (never-expiring last, then oldest).

    ``prefer`` names a lot to take from first (a refund takes back its own order's points
    first). Returns ``(allocations, shortfall)``.
    """
    far = datetime.max.replace(tzinfo=UTC)
    ordered = sorted(
        (lot for lot in lots if lot.remaining > 0),
        key=lambda lot: (lot.lot_id != prefer, lot.expires_at or far, lot.lot_id),
    )
    out: list[tuple[int, Decimal]] = []
    left = amount
    for lot in ordered:
        if left <= 0:
            break
        take = min(lot.remaining, left)
        out.append((lot.lot_id, take))
        left -= take
    return out, max(left, ZERO)


# -- tiers ---------------------------------------------------------------------------------
def tier_window_start(tiers: Tiers, as_of: datetime, zone: ZoneInfo) -> datetime:
    if tiers.window == "calendar_year":
        return _local_midnight(date(as_of.astimezone(zone).year, 1, 1), zone)
    return as_of - timedelta(days=tiers.window_days)


def tier_period_end(tiers: Tiers, qualified_at: datetime, zone: ZoneInfo) -> datetime:
    """Until when a tier (re)qualified at ``qualified_at`` is held before its review."""
    if tiers.window == "calendar_year":
        return _local_midnight(date(qualified_at.astimezone(zone).year + 1, 1, 1), zone)
    return (qualified_at + timedelta(days=tiers.window_days)).astimezone(UTC)


def qualified_tier(tiers: Tiers, value: Decimal) -> str:
    """The highest level whose threshold ``value`` reaches."""
    best = tiers.levels[0].id
    for lv in tiers.levels:
        if value >= lv.threshold:
            best = lv.id
    return best


# -- stamp cards ---------------------------------------------------------------------------
def stamps_for_order(card: StampCard, amount: Decimal, *, already_stamped_today: bool) -> int:
    if amount < card.min_order_amount or amount <= 0:
        return 0
    if card.per == "visit":
        n = 0 if already_stamped_today else 1
    elif card.per == "order":
        n = 1
    else:
        assert card.amount_step is not None
        n = int(amount // card.amount_step)
    if card.max_per_order is not None:
        n = min(n, card.max_per_order)
    return n


def stamps_for_visit(card: StampCard, *, already_stamped_today: bool) -> int:
    """Stamps a visit without an order earns: one on a ``per: visit`` card, none when the
    local day already earned a stamp (from an order or a visit).

    A card that counts orders or amounts, or visits only with an order of at least
    ``min_order_amount``, refuses a visit without an order (``ConflictError``).
    """
    if card.per != "visit":
        raise ConflictError(
            f"stamp card {card.id!r} counts {card.per}s, not visits",
            code="stamps.not_per_visit",
            message_zh=f"集章卡 {card.id!r} 按{'订单' if card.per == 'order' else '金额'}集章,不按到店",
            details={"card_id": card.id, "per": card.per},
        )
    if card.min_order_amount > 0:
        raise ConflictError(
            f"stamp card {card.id!r} counts a visit only with an order of at least "
            f"{card.min_order_amount}",
            code="stamps.order_required",
            message_zh=f"集章卡 {card.id!r} 需消费满 {card.min_order_amount} 才算一次到店",
            details={"card_id": card.id, "min_order_amount": str(card.min_order_amount)},
        )
    return 0 if already_stamped_today else 1


@dataclass
class StampAdvance:
    """The outcome of adding stamps to a card (see :func:`stamp_advance`)."""

    rewards: list[tuple[int, str]] = field(default_factory=list)  # (step, template)
    completions: int = 0
    balance: int = 0
    rewarded_upto: int = 0


def stamp_advance(card: StampCard, balance: int, rewarded_upto: int, add: int) -> StampAdvance:
    """Add ``add`` stamps to a card holding ``balance``, paying each ladder step once per card.

    At ``size`` the card completes (its stamps are used up) and a fresh card starts, on
    which the leftover stamps count. Steps already paid on the current card
    (``rewarded_upto``) are not paid again when expired stamps are earned back.
    """
    out = StampAdvance(balance=balance, rewarded_upto=rewarded_upto)
    for _ in range(add):
        out.balance += 1
        for r in card.rewards:
            if r.stamps == out.balance and r.stamps > out.rewarded_upto:
                out.rewards.append((r.stamps, r.template))
                out.rewarded_upto = r.stamps
        if out.balance >= card.size:
            out.completions += 1
            out.balance = 0
            out.rewarded_upto = 0
    return out


# -- stored value --------------------------------------------------------------------------
def topup_bonus(rules: Sequence[TopupRule], amount: Decimal) -> tuple[Decimal, TopupRule | None]:
    """The bonus of the best rule a top-up of ``amount`` reaches (highest ``min_amount``)."""
    best: TopupRule | None = None
    for r in rules:
        if amount >= r.min_amount and (best is None or r.min_amount > best.min_amount):
            best = r
    if best is None:
        return ZERO, None
    bonus = best.bonus
    if best.bonus_percent is not None:
        bonus += money(amount * best.bonus_percent / 100)
    return bonus, best


def bonus_schedule(
    rule: TopupRule, bonus: Decimal, start: datetime, zone: ZoneInfo
) -> list[tuple[datetime, Decimal]]:
    """Release instants and amounts of a top-up bonus; the parts sum exactly to ``bonus``."""
    n = rule.release_installments
    part = (bonus / n).quantize(CENT, rounding=ROUND_FLOOR)
    parts = [part] * (n - 1) + [bonus - part * (n - 1)]
    local = start.astimezone(zone)
    offset = 0 if rule.release_first_immediately else 1
    out = []
    for i, amt in enumerate(parts):
        k = i + offset
        if rule.release_every == "day":
            at = local + timedelta(days=k)
        elif rule.release_every == "week":
            at = local + timedelta(weeks=k)
        else:
            d = add_months(local.date(), k)
            at = datetime.combine(d, local.timetz().replace(tzinfo=None), tzinfo=zone)
        out.append((at.astimezone(UTC), amt))
    return out


def split_stored_spend(
    paid: Decimal, bonus: Decimal, amount: Decimal, order: str
) -> tuple[Decimal, Decimal]:
    """(from paid, from bonus) for spending ``amount``; refuses to go below zero."""
    if amount <= 0:
        raise InputError(
            "amount must be > 0",
            code="input.invalid",
            message_zh="金额必须大于 0",
            details={"field": "amount"},
        )
    if paid + bonus < amount:
        raise ConflictError(
            f"stored value {paid + bonus} is less than {amount}",
            code="stored_value.insufficient",
            message_zh=f"储值余额 {paid + bonus} 不足 {amount}",
            details={"available": str(paid + bonus), "requested": str(amount)},
        )
    if order == "bonus_first":
        b = min(bonus, amount)
        return amount - b, b
    p = min(paid, amount)
    return p, amount - p


def _plain(v: Decimal) -> str:
    """A decimal without exponent or trailing zeros ("120", "0.5")."""
    s = format(v.normalize(), "f")
    return "0" if s == "-0" else s


def currency_unit(currency: str) -> Decimal:
    """The currency's minor unit: 0.01 for CNY and USD, 1 for JPY, 0.001 for KWD (ISO 4217
    exponents from the CLDR data Babel ships; unknown codes get 0.01)."""
    from babel.numbers import get_currency_precision

    return Decimal(1).scaleb(-get_currency_precision(currency))


def stored_value_return_target(
    spent: Decimal, amount: Decimal, refunded: Decimal, *, full: bool, unit: Decimal
) -> Decimal:
    """How much of ``spent`` (stored value paid on an order of ``amount``) a refund of
    ``refunded`` gives back in total: everything on a full refund, else the refunded share
    rounded half up to the currency's minor ``unit``, never more than ``spent``."""
    if full:
        return spent
    if refunded <= 0 or amount <= 0 or spent <= 0:
        return ZERO
    if refunded >= amount:
        return spent
    return min(spent, (spent * refunded / amount).quantize(unit, rounding=ROUND_HALF_UP))


def stored_value_return_split(
    spent_paid: Decimal,
    spent_bonus: Decimal,
    back_paid: Decimal,
    back_bonus: Decimal,
    amount: Decimal,
    *,
    unit: Decimal,
) -> tuple[Decimal, Decimal]:
    """(to paid, to bonus) for giving back ``amount`` of a stored-value payment that took
    ``spent_paid`` + ``spent_bonus``, of which ``back_paid`` + ``back_bonus`` came back before.

    The bonus part follows the split of the payment, cumulatively: after this give-back the
    bonus returned in total is ``spent_bonus × returned / spent`` rounded *down* to the
    currency's minor ``unit``; the remainder goes to paid. Bounds keep each part within what
    is left of it, so the parts sum to ``amount``, never exceed what was taken, and giving
    back everything that is left returns exactly ``spent_paid`` and ``spent_bonus``.
    Refuses an amount above what is left (``stored_value.return_exceeds_spend``).
    """
    spent = spent_paid + spent_bonus
    left = spent - back_paid - back_bonus
    if amount <= 0:
        raise InputError(
            "amount must be > 0",
            code="input.invalid",
            message_zh="金额必须大于 0",
            details={"field": "amount"},
        )
    if amount > left:
        s, lf = _plain(spent), _plain(left)
        raise ConflictError(
            f"only {lf} of the {s} paid with stored value is left to give back",
            code="stored_value.return_exceeds_spend",
            message_zh=f"该订单储值支付 {s},尚可退回 {lf}",
            details={"spent": s, "returned": _plain(spent - left), "requested": _plain(amount)},
        )
    returned = spent - left + amount
    target = (spent_bonus * returned / spent).quantize(unit, rounding=ROUND_FLOOR)
    bonus = target - back_bonus
    low = max(ZERO, amount - (spent_paid - back_paid))  # paid cannot take more than is left
    high = min(amount, spent_bonus - back_bonus)
    bonus = min(max(bonus, low), high)
    return amount - bonus, bonus


# -- coupons -------------------------------------------------------------------------------
@dataclass(frozen=True)
class CouponView:
    code: str
    template_id: str
    kind: str
    status: str
    holder: str
    value: Decimal | None
    percent: Decimal | None
    valid_from: datetime
    valid_until: datetime


def coupon_value_for_order(template: CouponTemplate, order_amount: Decimal) -> Decimal | None:
    """The face value of a coupon issued for an order (spend-back: its share, bounded)."""
    if template.kind == "spend_back":
        assert template.share is not None
        v = money(order_amount * template.share)
        v = max(v, template.min_value)
        if template.max_value is not None:
            v = min(v, template.max_value)
        return v
    return template.value


def coupon_discount(
    template: CouponTemplate,
    value: Decimal | None,
    amount: Decimal,
    lines: Sequence[Line] = (),
) -> Decimal:
    """The discount a coupon gives on ``amount`` (never more than the amount)."""
    if template.kind in ("percent",) or (template.kind == "next_order" and template.percent):
        assert template.percent is not None
        d = money(amount * template.percent / 100)
        if template.max_discount is not None:
            d = min(d, template.max_discount)
    elif template.kind == "free_item":
        prices = [ln.unit_price for ln in lines if ln.sku == template.sku and ln.quantity > 0]
        cap = value or ZERO
        d = min(min(prices), cap) if prices else cap
    else:
        d = value or ZERO
    return max(ZERO, min(d, amount))


def check_redeemable(
    coupon: CouponView,
    template: CouponTemplate,
    *,
    customer_id: str,
    now: datetime,
    order_amount: Decimal | None,
    others_on_order: Sequence[CouponTemplate] = (),
    max_per_order: int = 1,
    lines: Sequence[Line] = (),
) -> None:
    """Raise the precise error why ``coupon`` cannot be redeemed now, or return."""
    details = {"code": coupon.code}
    if coupon.status == "redeemed":
        raise ConflictError(
            "coupon already redeemed",
            code="coupon.already_redeemed",
            message_zh="优惠券已被使用",
            details=details,
        )
    if coupon.status == "voided":
        raise ConflictError(
            "coupon was voided", code="coupon.voided", message_zh="优惠券已作废", details=details
        )
    if coupon.holder != customer_id:
        raise ForbiddenError(
            "this customer does not hold the coupon",
            code="coupon.not_holder",
            message_zh="该顾客不是优惠券持有人",
            details=details,
        )
    if coupon.status == "expired" or now >= coupon.valid_until:
        raise ConflictError(
            "coupon expired",
            code="coupon.expired",
            message_zh="优惠券已过期",
            details={**details, "valid_until": coupon.valid_until.isoformat()},
        )
    if now < coupon.valid_from:
        raise ConflictError(
            "coupon is not valid yet",
            code="coupon.not_yet_valid",
            message_zh="优惠券尚未生效",
            details={**details, "valid_from": coupon.valid_from.isoformat()},
        )
    if order_amount is not None and order_amount < template.min_order_amount:
        raise ConflictError(
            f"order amount {order_amount} is below the coupon threshold {template.min_order_amount}",
            code="coupon.threshold_not_met",
            message_zh=f"订单金额 {order_amount} 未满 {template.min_order_amount}",
            details={**details, "threshold": str(template.min_order_amount)},
        )
    if template.kind == "free_item" and lines and not any(ln.sku == template.sku for ln in lines):
        raise ConflictError(
            f"the order has no {template.sku}",
            code="coupon.item_missing",
            message_zh=f"订单中没有 {template.sku}",
            details={**details, "sku": template.sku},
        )
    if others_on_order:
        if len(others_on_order) + 1 > max_per_order:
            raise ConflictError(
                f"at most {max_per_order} coupon(s) per order",
                code="coupon.not_stackable",
                message_zh=f"每单最多使用 {max_per_order} 张优惠券",
                details={**details, "max_per_order": max_per_order},
            )
        if not template.stackable or not all(t.stackable for t in others_on_order):
            raise ConflictError(
                "this coupon cannot be combined with the other coupons of the order",
                code="coupon.not_stackable",
                message_zh="该优惠券不能与本单其他优惠券同时使用",
                details=details,
            )
