"""A merchant's loyalty program: the configuration every mechanic reads.

A program is a YAML/JSON document (see ``loyalty/examples/``) validated into frozen
pydantic models. Unknown keys are refused so that a typo (``point_per_unit``) is an error
naming the field, not a silently ignored rule. Money and points are ``Decimal``; dates are
read in the program's time zone.

The models are pure data: no database, no clock. :func:`load_program` is the one entry point.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping
from datetime import date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from huitouke.errors import InputError

__all__ = [
    "Campaign",
    "CouponTemplate",
    "EarnRules",
    "GroupDeal",
    "MembershipPlan",
    "OrderCouponRule",
    "PointsExpiry",
    "PointsRedemption",
    "Program",
    "Referral",
    "ReferralMilestone",
    "RewardSpec",
    "StackingRules",
    "StampCard",
    "StampReward",
    "StoredValue",
    "Tier",
    "TierBenefits",
    "Tiers",
    "TopupRule",
    "load_program",
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _positive(v: Decimal, name: str) -> Decimal:
    if v <= 0:
        raise ValueError(f"{name} must be > 0")
    return v


class Campaign(_Model):
    """A dated bonus campaign: a points multiplier and/or bonus points per order."""

    id: str
    name: str = ""
    starts: date | datetime = Field(description="first instant (or local day) of the campaign")
    ends: date | datetime = Field(description="last local day (inclusive) or exclusive instant")
    multiplier: Decimal = Decimal(1)
    bonus_points: Decimal = Decimal(0)
    categories: list[str] = Field(default_factory=list, description="empty: every order")
    min_order_amount: Decimal = Decimal(0)

    def window(self, zone: ZoneInfo) -> tuple[datetime, datetime]:
        """The campaign as a half-open instant range ``[start, end)``."""

        def instant(v: datetime | date, *, end: bool) -> datetime:
            if isinstance(v, datetime):
                return v if v.tzinfo else v.replace(tzinfo=zone)
            day = date.fromordinal(v.toordinal() + (1 if end else 0))
            return datetime.combine(day, time(0), tzinfo=zone)

        return instant(self.starts, end=False), instant(self.ends, end=True)

    @model_validator(mode="after")
    def _check(self) -> Campaign:
        if self.multiplier < 1:
            raise ValueError("multiplier must be >= 1")
        if self.bonus_points < 0:
            raise ValueError("bonus_points must be >= 0")
        z = ZoneInfo("UTC")
        start, end = self.window(z)
        if end <= start:
            raise ValueError("ends must be after starts")
        return self


class EarnRules(_Model):
    """Points earned by a paid order.

    ``points = floor(Σ_line share_of_amount × points_per_unit / unit × line_multiplier ×
    member_multiplier × campaign_multiplier) + per_order + campaign bonus_points``.
    Line multipliers come from ``sku_multipliers`` first, then ``category_multipliers``.
    Orders below ``min_order_amount`` earn nothing.
    """

    points_per_unit: Decimal = Decimal(1)
    unit: Decimal = Decimal(1)
    per_order: Decimal = Decimal(0)
    min_order_amount: Decimal = Decimal(0)
    category_multipliers: dict[str, Decimal] = Field(default_factory=dict)
    sku_multipliers: dict[str, Decimal] = Field(default_factory=dict)
    campaigns: list[Campaign] = Field(default_factory=list)
    rounding: Literal["floor", "half_up"] = "floor"

    @field_validator("unit")
    @classmethod
    def _unit(cls, v: Decimal) -> Decimal:
        return _positive(v, "unit")

    @field_validator("points_per_unit", "per_order", "min_order_amount")
    @classmethod
    def _nonneg(cls, v: Decimal) -> Decimal:
        if v < 0:
            raise ValueError("must be >= 0")
        return v


class PointsExpiry(_Model):
    """When earned points expire.

    - ``never``;
    - ``rolling_days``: ``days`` after they were earned;
    - ``end_of_month``: at the end of the month of earning, ``after`` months later
      (``after: 0`` = end of the same month);
    - ``end_of_year``: at the end of the year of earning, ``after`` years later
      (``after: 1`` = "valid until the end of next year").
    """

    mode: Literal["never", "rolling_days", "end_of_month", "end_of_year"] = "never"
    days: int = Field(365, ge=1)
    after: int = Field(0, ge=0)


class RewardSpec(_Model):
    """What a customer receives: points and/or a coupon of a template."""

    points: Decimal = Field(Decimal(0), ge=0)
    template: str | None = None


def decimal_places(v: Decimal) -> int:
    """How many decimal places ``v`` needs (``2.50`` → 1, ``300`` → 0)."""
    exp = v.normalize().as_tuple().exponent
    return max(0, -exp) if isinstance(exp, int) else 0


class PointsSettings(_Model):
    """How points are counted. ``decimals``: the decimal places a points amount may carry
    (0, the default: whole points). Adjustments and redemptions with more places are refused
    (``points.fractional``), and so are the program's own points amounts (per-order and
    campaign bonus points, reward prices, referral rewards). Earning and take-backs round to
    whole points (``earn.rounding``)."""

    decimals: int = Field(0, ge=0, le=4)


class Reward(_Model):
    """A catalogue entry: spend ``points`` to receive a coupon of ``template``."""

    id: str
    name: str = ""
    points: Decimal
    template: str

    @field_validator("points")
    @classmethod
    def _pos(cls, v: Decimal) -> Decimal:
        return _positive(v, "points")


class PointsRedemption(_Model):
    """Redeeming points: for catalogue rewards, or as a cash discount on an order."""

    points_per_currency_unit: Decimal | None = Field(
        Decimal(100), description="cash discount rate: this many points = 1 currency unit"
    )
    min_points: Decimal = Decimal(0)
    rewards: list[Reward] = Field(default_factory=list)


class TierBenefits(_Model):
    discount_percent: Decimal = Field(Decimal(0), ge=0, le=100)
    points_multiplier: Decimal = Field(Decimal(1), ge=1)
    perks: list[str] = Field(default_factory=list)
    remember_preferences: bool = False


class Tier(_Model):
    id: str
    name: str = ""
    threshold: Decimal = Decimal(0)
    benefits: TierBenefits = TierBenefits()


class Tiers(_Model):
    """Membership tiers (会员等级).

    A customer qualifies for the highest level whose ``threshold`` the ``metric`` reaches
    over the ``window`` (the last ``window_days`` days, or the current calendar year).
    Upgrades happen at once; a tier is held until the end of its period (``window_days``
    after it was last (re)qualified, or the end of the calendar year), then reviewed; a
    customer who no longer qualifies keeps the tier for ``grace_days`` more and is reviewed
    again before being moved down.
    """

    metric: Literal["points", "spend", "orders"] = "spend"
    window: Literal["rolling", "calendar_year"] = "rolling"
    window_days: int = Field(365, ge=1)
    grace_days: int = Field(30, ge=0)
    levels: list[Tier]

    @model_validator(mode="after")
    def _check(self) -> Tiers:
        if not self.levels:
            raise ValueError("levels: at least one tier is needed")
        ths = [lv.threshold for lv in self.levels]
        if ths[0] != 0:
            raise ValueError("levels: the first tier must have threshold 0 (the base tier)")
        if any(b <= a for a, b in itertools.pairwise(ths)):
            raise ValueError("levels: thresholds must strictly increase")
        ids = [lv.id for lv in self.levels]
        if len(set(ids)) != len(ids):
            raise ValueError("levels: tier ids must be unique")
        return self

    def level(self, tier_id: str | None) -> Tier | None:
        for lv in self.levels:
            if lv.id == tier_id:
                return lv
        return None

    def rank(self, tier_id: str | None) -> int:
        for i, lv in enumerate(self.levels):
            if lv.id == tier_id:
                return i
        return -1


CouponKind = Literal["fixed", "percent", "threshold", "free_item", "next_order", "spend_back"]


class CouponTemplate(_Model):
    """A kind of coupon.

    - ``fixed``: ``value`` off; ``percent``: ``percent``% off (capped by ``max_discount``);
    - ``threshold`` (满200减30): ``value`` off when the order reaches ``min_order_amount``;
    - ``free_item``: the ``sku`` for free, worth at most ``value``;
    - ``next_order``: issued after an order, valid from ``delay_days`` later, ``value`` or
      ``percent`` off;
    - ``spend_back`` (返券): issued after an order, worth ``share`` of its amount (bounded by
      ``min_value``/``max_value``), usable from ``delay_days`` later.

    ``max_per_customer`` caps how many a customer may ever receive; ``transferable`` and
    ``max_transfers`` limit gifting; ``stackable`` coupons may share an order.
    """

    id: str
    name: str = ""
    kind: CouponKind
    value: Decimal | None = None
    percent: Decimal | None = Field(None, gt=0, le=100)
    max_discount: Decimal | None = None
    min_order_amount: Decimal = Decimal(0)
    sku: str | None = None
    share: Decimal | None = Field(None, gt=0, le=1)
    min_value: Decimal = Decimal(0)
    max_value: Decimal | None = None
    valid_days: int = Field(30, ge=1)
    delay_days: int = Field(0, ge=0)
    max_per_customer: int | None = Field(None, ge=1)
    transferable: bool = True
    max_transfers: int = Field(1, ge=0)
    stackable: bool = False

    @model_validator(mode="after")
    def _check(self) -> CouponTemplate:
        k = self.kind
        if k in ("fixed", "threshold", "free_item") and (self.value is None or self.value <= 0):
            raise ValueError(f"value: a {k} coupon needs value > 0")
        if k == "percent" and self.percent is None:
            raise ValueError("percent: a percent coupon needs percent (0 < percent <= 100)")
        if k == "threshold" and self.min_order_amount <= 0:
            raise ValueError("min_order_amount: a threshold coupon needs min_order_amount > 0")
        if k == "free_item" and not self.sku:
            raise ValueError("sku: a free_item coupon names the free sku")
        if k == "next_order" and (self.value is None) == (self.percent is None):
            raise ValueError("value/percent: a next_order coupon has exactly one of them")
        if k == "spend_back" and self.share is None:
            raise ValueError("share: a spend_back coupon needs share (0 < share <= 1)")
        return self


class OrderCouponRule(_Model):
    """Coupons issued when an order is paid (spend-back 返券, next-order coupons)."""

    template: str
    min_order_amount: Decimal = Decimal(0)
    first_order_only: bool = False


class StampReward(_Model):
    stamps: int = Field(ge=1)
    template: str


class StampCard(_Model):
    """An electronic stamp card (电子集章卡).

    One stamp per ``visit`` (at most one per local day), per ``order``, or per
    ``amount_step`` of the order amount. Reaching a ladder step pays out a coupon; at
    ``size`` stamps the card completes and a new card starts with the leftover stamps.
    Stamps expire ``expire_days`` after they were earned (never when unset).
    """

    id: str
    name: str = ""
    per: Literal["visit", "order", "amount"] = "visit"
    amount_step: Decimal | None = None
    min_order_amount: Decimal = Decimal(0)
    max_per_order: int | None = Field(None, ge=1)
    size: int = Field(ge=1)
    rewards: list[StampReward]
    expire_days: int | None = Field(None, ge=1)

    @model_validator(mode="after")
    def _check(self) -> StampCard:
        if self.per == "amount" and (self.amount_step is None or self.amount_step <= 0):
            raise ValueError("amount_step: a per-amount card needs amount_step > 0")
        steps = [r.stamps for r in self.rewards]
        if any(b <= a for a, b in itertools.pairwise(steps)):
            raise ValueError("rewards: stamp counts must strictly increase")
        if steps and steps[-1] > self.size:
            raise ValueError(f"rewards: a step ({steps[-1]}) is beyond the card size {self.size}")
        return self


class TopupRule(_Model):
    """Bonus for a top-up of at least ``min_amount`` (充200送200).

    The bonus (``bonus``, or ``bonus_percent`` of the top-up) is released in
    ``release_installments`` equal parts every ``release_every`` (the last part takes the
    rounding remainder); with ``release_first_immediately`` the first part comes with the
    top-up.
    """

    min_amount: Decimal
    bonus: Decimal = Decimal(0)
    bonus_percent: Decimal | None = Field(None, ge=0)
    release_installments: int = Field(1, ge=1)
    release_every: Literal["day", "week", "month"] = "month"
    release_first_immediately: bool = True

    @field_validator("min_amount")
    @classmethod
    def _pos(cls, v: Decimal) -> Decimal:
        return _positive(v, "min_amount")


class StoredValue(_Model):
    """Stored value (储值): paid balance + bonus balance, never negative.

    With ``return_on_order_refund`` an order event that refunds (part of) an order gives
    back the stored value paid on that order in proportion to the refunded share, to the
    paid and bonus balances in the proportion the payment took them.
    """

    spend_order: Literal["paid_first", "bonus_first"] = "paid_first"
    min_topup: Decimal = Decimal(0)
    topup_rules: list[TopupRule] = Field(default_factory=list)
    refund_forfeits_bonus: bool = True
    return_on_order_refund: bool = True


class MembershipPlan(_Model):
    """A paid membership (付费会员): ``fee`` buys ``benefits`` for a term."""

    id: str
    name: str = ""
    fee: Decimal
    term_days: int | None = Field(None, ge=1)
    term_months: int | None = Field(None, ge=1)
    benefits: TierBenefits = TierBenefits()

    @model_validator(mode="after")
    def _check(self) -> MembershipPlan:
        if (self.term_days is None) == (self.term_months is None):
            raise ValueError("term_days/term_months: give exactly one")
        if self.fee < 0:
            raise ValueError("fee must be >= 0")
        return self


class ReferralMilestone(_Model):
    """Extra reward for a referrer's ``count``-th rewarded referral (e.g. refer 2 → upgrade)."""

    count: int = Field(ge=1)
    upgrade_tier: str | None = None
    reward: RewardSpec = RewardSpec()


class Referral(_Model):
    """Referral (转介绍): both sides rewarded after the first paid order clears refunds."""

    referrer_reward: RewardSpec = RewardSpec()
    referred_reward: RewardSpec = RewardSpec()
    refund_window_days: int = Field(7, ge=0)
    min_first_order_amount: Decimal = Field(Decimal(0), ge=0)
    max_referrals_per_referrer: int | None = Field(None, ge=1)
    milestones: list[ReferralMilestone] = Field(default_factory=list)


class GroupDeal(_Model):
    """A group-buy deal (拼团): ``price`` holds if ``required`` people join within ``hours``."""

    id: str
    name: str = ""
    price: Decimal
    required: int = Field(ge=2)
    hours: int = Field(ge=1)
    sku: str | None = None


class StackingRules(_Model):
    max_coupons_per_order: int = Field(1, ge=1)
    member_discount_with_coupons: bool = True


class Program(_Model):
    """One merchant's loyalty program."""

    id: str = "default"
    name: str = ""
    currency: str = "CNY"
    #: the merchant's zone (local days of stamps, tiers, expiry). Omitted, it is the
    #: store's zone (``HUITOUKE_TIMEZONE``); given, it must equal it (:meth:`in_store_zone`)
    timezone: str | None = None
    earn: EarnRules = EarnRules()
    points_expiry: PointsExpiry = PointsExpiry()
    redemption: PointsRedemption = PointsRedemption()
    tiers: Tiers | None = None
    coupon_templates: list[CouponTemplate] = Field(default_factory=list)
    order_coupons: list[OrderCouponRule] = Field(default_factory=list)
    stamp_cards: list[StampCard] = Field(default_factory=list)
    stored_value: StoredValue = StoredValue()
    membership_plans: list[MembershipPlan] = Field(default_factory=list)
    referral: Referral | None = None
    group_deals: list[GroupDeal] = Field(default_factory=list)
    stacking: StackingRules = StackingRules()
    points: PointsSettings = PointsSettings()

    @field_validator("timezone")
    @classmethod
    def _zone(cls, v: str | None) -> str | None:
        if v is None:
            return None
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {v!r}") from exc
        return v

    @field_validator("currency")
    @classmethod
    def _currency(cls, v: str) -> str:
        if len(v) != 3 or not v.isalpha():
            raise ValueError("currency must be an ISO 4217 code such as CNY")
        return v.upper()

    @model_validator(mode="after")
    def _references(self) -> Program:
        templates = {t.id for t in self.coupon_templates}
        if len(templates) != len(self.coupon_templates):
            raise ValueError("coupon_templates: template ids must be unique")

        def need(tid: str | None, where: str) -> None:
            if tid is not None and tid not in templates:
                raise ValueError(f"{where}: unknown coupon template {tid!r}")

        for i, oc in enumerate(self.order_coupons):
            need(oc.template, f"order_coupons.{i}.template")
        for i, c in enumerate(self.stamp_cards):
            for j, sr in enumerate(c.rewards):
                need(sr.template, f"stamp_cards.{i}.rewards.{j}.template")
        for i, rw in enumerate(self.redemption.rewards):
            need(rw.template, f"redemption.rewards.{i}.template")
        if self.referral is not None:
            need(self.referral.referrer_reward.template, "referral.referrer_reward.template")
            need(self.referral.referred_reward.template, "referral.referred_reward.template")
            for i, m in enumerate(self.referral.milestones):
                need(m.reward.template, f"referral.milestones.{i}.reward.template")
                if m.upgrade_tier is not None and (
                    self.tiers is None or self.tiers.level(m.upgrade_tier) is None
                ):
                    raise ValueError(
                        f"referral.milestones.{i}.upgrade_tier: unknown tier {m.upgrade_tier!r}"
                    )
        amounts = [("earn.per_order", self.earn.per_order)]
        amounts += [
            (f"earn.campaigns.{i}.bonus_points", c.bonus_points)
            for i, c in enumerate(self.earn.campaigns)
        ]
        amounts.append(("redemption.min_points", self.redemption.min_points))
        amounts += [
            (f"redemption.rewards.{i}.points", r.points)
            for i, r in enumerate(self.redemption.rewards)
        ]
        if self.referral is not None:
            amounts.append(
                ("referral.referrer_reward.points", self.referral.referrer_reward.points)
            )
            amounts.append(
                ("referral.referred_reward.points", self.referral.referred_reward.points)
            )
            amounts += [
                (f"referral.milestones.{i}.reward.points", m.reward.points)
                for i, m in enumerate(self.referral.milestones)
            ]
        for where, v in amounts:
            if decimal_places(v) > self.points.decimals:
                raise ValueError(
                    f"{where}: {v} has more decimal places than points.decimals "
                    f"({self.points.decimals})"
                )
        for name, items in (
            ("stamp_cards", self.stamp_cards),
            ("membership_plans", self.membership_plans),
            ("group_deals", self.group_deals),
            ("redemption.rewards", self.redemption.rewards),
        ):
            ids = [x.id for x in items]
            if len(set(ids)) != len(ids):
                raise ValueError(f"{name}: ids must be unique")
        return self

    # -- look-ups ------------------------------------------------------------------------
    def in_store_zone(self, zone: str) -> Program:
        """This program in the store's zone ``zone`` (the settings' ``HUITOUKE_TIMEZONE``,
        passed by the door): the zone filled in when the program names none, the program
        refused when it names another — a loyalty day must be the analytics' day."""
        if self.timezone is None:
            return self.model_copy(update={"timezone": zone})
        if self.timezone != zone:
            raise InputError(
                f"timezone: the program's zone {self.timezone!r} is not the store's zone "
                f"{zone!r} (HUITOUKE_TIMEZONE); remove it from the program or set the same zone",
                code="loyalty.timezone_mismatch",
                message_zh=f"timezone:会员方案的时区 {self.timezone!r} 与店铺时区 {zone!r}"
                "(HUITOUKE_TIMEZONE)不一致;请从方案中删除该项或设为相同时区",
                details={"field": "timezone", "program": self.timezone, "settings": zone},
            )
        return self

    @property
    def zone(self) -> ZoneInfo:
        if self.timezone is None:
            raise InputError(
                "the loyalty program has no time zone: it takes the store's (in_store_zone)",
                code="loyalty.no_timezone",
                message_zh="会员方案没有时区:应取店铺时区(in_store_zone)",
                details={"field": "timezone"},
            )
        return ZoneInfo(self.timezone)

    def template(self, template_id: str) -> CouponTemplate:
        for t in self.coupon_templates:
            if t.id == template_id:
                return t
        from huitouke.errors import NotFoundError

        raise NotFoundError(
            f"unknown coupon template {template_id!r}",
            code="coupon.template_not_found",
            message_zh=f"没有这个优惠券模板:{template_id!r}",
            details={"template_id": template_id},
        )

    def stamp_card(self, card_id: str) -> StampCard:
        for c in self.stamp_cards:
            if c.id == card_id:
                return c
        from huitouke.errors import NotFoundError

        raise NotFoundError(
            f"unknown stamp card {card_id!r}",
            code="stamp_card.not_found",
            message_zh=f"没有这个集章卡:{card_id!r}",
            details={"card_id": card_id},
        )

    def plan(self, plan_id: str) -> MembershipPlan:
        for p in self.membership_plans:
            if p.id == plan_id:
                return p
        from huitouke.errors import NotFoundError

        raise NotFoundError(
            f"unknown membership plan {plan_id!r}",
            code="membership.plan_not_found",
            message_zh=f"没有这个付费会员方案:{plan_id!r}",
            details={"plan_id": plan_id},
        )

    def deal(self, deal_id: str) -> GroupDeal:
        for d in self.group_deals:
            if d.id == deal_id:
                return d
        from huitouke.errors import NotFoundError

        raise NotFoundError(
            f"unknown group-buy deal {deal_id!r}",
            code="groupbuy.deal_not_found",
            message_zh=f"没有这个拼团活动:{deal_id!r}",
            details={"deal_id": deal_id},
        )

    def reward(self, reward_id: str) -> Reward:
        for r in self.redemption.rewards:
            if r.id == reward_id:
                return r
        from huitouke.errors import NotFoundError

        raise NotFoundError(
            f"unknown points reward {reward_id!r}",
            code="points.reward_not_found",
            message_zh=f"没有这个积分兑换项:{reward_id!r}",
            details={"reward": reward_id},
        )

    def to_document(self) -> dict[str, Any]:
        """The program as a JSON-ready document (what the database stores)."""
        return self.model_dump(mode="json", exclude_defaults=False)


def _format_errors(exc: ValidationError) -> list[str]:
    out = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(program)"
        msg = err["msg"].removeprefix("Value error, ")
        out.append(f"{loc}: {msg}")
    return out


def load_program(source: str | Path | Mapping[str, Any]) -> Program:
    """Read and validate a program from a YAML/JSON file or a mapping.

    Errors raise :class:`~huitouke.errors.InputError` (code ``loyalty.program_invalid``)
    whose message and ``details["errors"]`` name every bad field as a dotted path, e.g.
    ``tiers.levels.1.threshold: Input should be a valid decimal``.
    """
    origin = "(dict)"
    if isinstance(source, Mapping):
        data: Any = dict(source)
    else:
        path = Path(source)
        origin = str(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise InputError(
                f"cannot read program file {path}: {exc.strerror}",
                code="loyalty.program_unreadable",
                message_zh=f"无法读取会员方案文件 {path}:{exc.strerror}",
                details={"file": origin},
            ) from exc
        try:
            if path.suffix.lower() == ".json":
                data = json.loads(text)
            else:
                import yaml

                data = yaml.safe_load(text)
        except Exception as exc:
            line = getattr(getattr(exc, "problem_mark", None), "line", None)
            raise InputError(
                f"program file {path} is not valid YAML/JSON: {exc}",
                code="loyalty.program_invalid",
                message_zh=f"会员方案文件 {path} 不是有效的 YAML/JSON:{exc}",
                details={"file": origin, "line": (line + 1) if line is not None else None},
            ) from exc
    if not isinstance(data, Mapping):
        raise InputError(
            f"program {origin} must be a mapping at the top level",
            code="loyalty.program_invalid",
            message_zh=f"会员方案 {origin} 的顶层必须是键值映射",
            details={"file": origin},
        )
    try:
        return Program.model_validate(dict(data))
    except ValidationError as exc:
        errors = _format_errors(exc)
        raise InputError(
            f"invalid loyalty program {origin}: " + "; ".join(errors),
            code="loyalty.program_invalid",
            message_zh=f"会员方案 {origin} 有误:" + ";".join(errors),
            details={"file": origin, "errors": errors},
        ) from exc
