"""Pure rules: no database, no clock."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from huitouke.errors import ConflictError, ForbiddenError, InputError
from huitouke.loyalty import codes, load_program
from huitouke.loyalty.program import EarnRules, PointsExpiry, StampCard, TopupRule
from huitouke.loyalty.rules import (
    CouponView,
    Line,
    LotView,
    add_months,
    allocate_fifo,
    bonus_schedule,
    check_redeemable,
    compute_earn,
    coupon_discount,
    coupon_value_for_order,
    expiry_at,
    proportional_target,
    split_stored_spend,
    stamp_advance,
    stamps_for_order,
    topup_bonus,
)

from .conftest import example

SH = ZoneInfo("Asia/Shanghai")
D = Decimal


# -- codes ---------------------------------------------------------------------------------
def test_codes_are_short_unique_and_check_every_single_typo() -> None:
    made = {codes.generate() for _ in range(2000)}
    assert len(made) == 2000
    code = next(iter(made))
    assert len(code) == 12 and set(code) <= set(codes.ALPHABET)
    assert codes.is_valid(code)
    for i, ch in itertools.product(range(len(code)), codes.ALPHABET):
        if ch != code[i]:
            assert not codes.is_valid(code[:i] + ch + code[i + 1 :]), (i, ch)


def test_codes_catch_adjacent_swaps_and_accept_human_forms() -> None:
    assert codes.is_valid("0Z" + codes.check_symbol("0Z"))
    assert codes.is_valid("Z0" + codes.check_symbol("0Z"))  # the documented blind spot
    code = codes.generate()
    for i in range(len(code) - 1):
        # Luhn mod N's one blind spot: swapping the first and last symbols (0 and Z)
        if code[i] != code[i + 1] and {code[i], code[i + 1]} != {"0", "Z"}:
            swapped = code[:i] + code[i + 1] + code[i] + code[i + 2 :]
            assert not codes.is_valid(swapped)
    shown = codes.display(code)
    assert shown.count("-") == 2
    assert codes.normalize(shown.lower(), check=True) == code
    assert codes.normalize("o1l-i", check=False) == "0111"
    with pytest.raises(ValueError, match="not a code symbol"):
        codes.normalize("ABU*")


# -- expiry -------------------------------------------------------------------------------
def test_expiry_modes_in_merchant_zone() -> None:
    earned = datetime(2026, 1, 31, 17, 0, tzinfo=UTC)  # Feb 1, 01:00 in Shanghai
    assert expiry_at(PointsExpiry(mode="never"), earned, SH) is None
    assert expiry_at(PointsExpiry(mode="rolling_days", days=30), earned, SH) == datetime(
        2026, 3, 2, 17, 0, tzinfo=UTC
    )
    # end of (local) February = March 1 00:00 Shanghai = Feb 28 16:00 UTC
    assert expiry_at(PointsExpiry(mode="end_of_month"), earned, SH) == datetime(
        2026, 2, 28, 16, 0, tzinfo=UTC
    )
    assert expiry_at(PointsExpiry(mode="end_of_month", after=12), earned, SH) == datetime(
        2027, 2, 28, 16, 0, tzinfo=UTC
    )
    assert expiry_at(PointsExpiry(mode="end_of_year", after=1), earned, SH) == datetime(
        2027, 12, 31, 16, 0, tzinfo=UTC
    )
    assert add_months(datetime(2024, 1, 31).date(), 1).isoformat() == "2024-02-29"


# -- earning ------------------------------------------------------------------------------
def test_earn_per_unit_per_order_minimum_and_multipliers() -> None:
    rules = EarnRules(
        points_per_unit=D(1),
        unit=D(10),
        per_order=D(5),
        min_order_amount=D(20),
        category_multipliers={"drinks": D("0.5")},
        sku_multipliers={"gift": D(0)},
    )
    at = datetime(2026, 5, 1, tzinfo=UTC)
    assert compute_earn(rules, D("19.99"), at, SH).points == 0
    assert compute_earn(rules, D("199"), at, SH).points == 19 + 5  # floor(19.9) + per order
    lines = [
        Line("hotpot", "food", 1, D(100)),
        Line("beer", "drinks", 2, D(50)),
        Line("gift", "x", 1, D(100)),
    ]
    # amount 270 spread over line totals 100/100/100: 90 food ×1 + 90 drinks ×0.5 + 90 gift ×0
    res = compute_earn(rules, D(270), at, SH, lines=lines, member_multiplier=D(2))
    assert res.points == (D(9) + D("4.5")) * 2 // 1 + 5  # floor(27) + 5
    assert res.points == 32


def test_dated_campaigns_use_local_days() -> None:
    program = example("shop")
    rules = program.earn
    # 2026-11-11 00:30 in Shanghai is Nov 10 16:30 UTC: inside the double-11 campaign.
    inside = datetime(2026, 11, 10, 16, 30, tzinfo=UTC)
    outside = datetime(2026, 11, 10, 15, 30, tzinfo=UTC)
    a = compute_earn(rules, D(100), inside, SH)
    b = compute_earn(rules, D(100), outside, SH)
    assert a.campaigns == ("double11",) and b.campaigns == ()
    assert a.points == 300 + 10 + 100 and b.points == 100 + 10


def test_proportional_reversal_targets() -> None:
    assert proportional_target(D(100), D(200), D(50)) == 25
    assert proportional_target(D(101), D(200), D(100)) == 51  # half up
    assert proportional_target(D(101), D(200), D(200)) == 101
    assert proportional_target(D(7), D(0), D(0)) == 7


# -- FIFO ---------------------------------------------------------------------------------
def test_fifo_spends_earliest_expiring_first_never_expiring_last() -> None:
    t = lambda d: datetime(2026, 1, d, tzinfo=UTC)  # noqa: E731
    lots = [
        LotView(1, D(10), None),
        LotView(2, D(10), t(20)),
        LotView(3, D(10), t(5)),
        LotView(4, D(0), t(1)),
    ]
    alloc, short = allocate_fifo(lots, D(25))
    assert alloc == [(3, D(10)), (2, D(10)), (1, D(5))] and short == 0
    alloc, short = allocate_fifo(lots, D(35))
    assert short == 5
    alloc, _ = allocate_fifo(lots, D(12), prefer=1)
    assert alloc == [(1, D(10)), (3, D(2))]


# -- stamps -------------------------------------------------------------------------------
def test_hotpot_ladder_pays_each_step_once_and_restarts() -> None:
    card = example("hotpot").stamp_card("visits")
    adv = stamp_advance(card, 0, 0, 12)
    assert [t for _, t in adv.rewards] == [
        "bingfen",
        "mianmianbing",
        "feiniu",
        "xueshanbing",
        "maodu",
        "bingfen",
    ]
    assert adv.completions == 1 and adv.balance == 2 and adv.rewarded_upto == 2
    # expired stamps earned back do not pay the same step twice on the same card
    again = stamp_advance(card, 1, 2, 1)
    assert again.rewards == [] and again.balance == 2


def test_cafe_ladder_and_visit_rule() -> None:
    card = example("cafe").stamp_card("coffee")
    assert [t for _, t in stamp_advance(card, 0, 0, 1).rewards] == ["americano"]
    assert [t for _, t in stamp_advance(card, 4, 1, 1).rewards] == ["latte"]
    assert [t for _, t in stamp_advance(card, 7, 5, 1).rewards] == ["signature"]
    assert stamps_for_order(card, D(30), already_stamped_today=True) == 0
    assert stamps_for_order(card, D(30), already_stamped_today=False) == 1
    per_amount = StampCard(
        id="x", per="amount", amount_step=D(50), size=10, rewards=[], max_per_order=3
    )
    assert stamps_for_order(per_amount, D(149), already_stamped_today=False) == 2
    assert stamps_for_order(per_amount, D(1000), already_stamped_today=False) == 3


# -- stored value -------------------------------------------------------------------------
def test_200_get_200_released_20_a_month_for_10_months() -> None:
    rules = example("shop").stored_value.topup_rules
    bonus, rule = topup_bonus(rules, D(200))
    assert bonus == 200 and rule is not None
    start = datetime(2026, 1, 31, 4, 0, tzinfo=UTC)
    sched = bonus_schedule(rule, bonus, start, SH)
    assert [a for _, a in sched] == [D(20)] * 10
    assert sched[0][0] == start
    assert sched[1][0] == datetime(2026, 2, 28, 4, 0, tzinfo=UTC)  # month-end clamped
    assert sched[9][0].astimezone(SH).date().isoformat() == "2026-10-31"
    odd = bonus_schedule(
        TopupRule(min_amount=D(1), bonus=D(100), release_installments=3), D(100), start, SH
    )
    assert [a for _, a in odd] == [D("33.33"), D("33.33"), D("33.34")]
    assert topup_bonus(rules, D(199)) == (0, None)
    assert topup_bonus(rules, D(800))[0] == 600


def test_stored_value_split_and_never_negative() -> None:
    assert split_stored_spend(D(50), D(30), D(60), "paid_first") == (D(50), D(10))
    assert split_stored_spend(D(50), D(30), D(60), "bonus_first") == (D(30), D(30))
    with pytest.raises(ConflictError) as e:
        split_stored_spend(D(50), D(30), D(81), "paid_first")
    assert e.value.code == "stored_value.insufficient"
    with pytest.raises(InputError):
        split_stored_spend(D(50), D(30), D(0), "paid_first")


# -- coupons ------------------------------------------------------------------------------
def _view(**kw: object) -> CouponView:
    base: dict[str, object] = dict(
        code="C",
        template_id="t",
        kind="threshold",
        status="issued",
        holder="a",
        value=D(30),
        percent=None,
        valid_from=datetime(2026, 1, 1, tzinfo=UTC),
        valid_until=datetime(2026, 2, 1, tzinfo=UTC),
    )
    base.update(kw)
    return CouponView(**base)  # type: ignore[arg-type]


def test_coupon_discounts() -> None:
    p = example("shop")
    assert coupon_discount(p.template("man200jian30"), D(30), D(250)) == 30
    assert coupon_discount(p.template("pct10"), None, D(1000)) == 80  # capped
    assert coupon_discount(p.template("next15"), None, D(100)) == 15
    assert coupon_discount(p.template("fixed20"), D(20), D(12)) == 12  # never above the amount
    assert coupon_value_for_order(p.template("spendback10"), D("345.67")) == D("34.57")
    assert coupon_value_for_order(p.template("spendback10"), D(5000)) == 100
    cafe = example("cafe")
    assert (
        coupon_discount(cafe.template("latte"), D(28), D(60), [Line("latte", None, 1, D(25))]) == 25
    )


@pytest.mark.parametrize(
    ("view", "kw", "code", "exc"),
    [
        ({"status": "redeemed"}, {}, "coupon.already_redeemed", ConflictError),
        ({"status": "voided"}, {}, "coupon.voided", ConflictError),
        ({}, {"now": datetime(2026, 2, 1, tzinfo=UTC)}, "coupon.expired", ConflictError),
        ({}, {"now": datetime(2025, 12, 31, tzinfo=UTC)}, "coupon.not_yet_valid", ConflictError),
        ({"holder": "b"}, {}, "coupon.not_holder", ForbiddenError),
        ({}, {"order_amount": D("199.99")}, "coupon.threshold_not_met", ConflictError),
    ],
)
def test_redeem_checks_name_the_reason(
    view: dict[str, object], kw: dict[str, object], code: str, exc: type[Exception]
) -> None:
    tpl = example("shop").template("man200jian30")
    args: dict[str, object] = {
        "customer_id": "a",
        "now": datetime(2026, 1, 15, tzinfo=UTC),
        "order_amount": D(200),
    }
    args.update(kw)
    with pytest.raises(exc) as e:
        check_redeemable(_view(**view), tpl, **args)  # type: ignore[arg-type]
    assert e.value.code == code  # type: ignore[attr-defined]
    check_redeemable(
        _view(), tpl, customer_id="a", now=datetime(2026, 1, 15, tzinfo=UTC), order_amount=D(200)
    )


def test_stacking_rules() -> None:
    p = example("shop")
    now = datetime(2026, 1, 15, tzinfo=UTC)
    fixed = p.template("fixed20")
    with pytest.raises(ConflictError, match="combined"):
        check_redeemable(
            _view(),
            p.template("man200jian30"),
            customer_id="a",
            now=now,
            order_amount=D(300),
            others_on_order=[fixed],
            max_per_order=2,
        )
    check_redeemable(
        _view(kind="fixed"),
        fixed,
        customer_id="a",
        now=now,
        order_amount=D(300),
        others_on_order=[fixed],
        max_per_order=2,
    )
    with pytest.raises(ConflictError) as e:
        check_redeemable(
            _view(kind="fixed"),
            fixed,
            customer_id="a",
            now=now,
            order_amount=D(300),
            others_on_order=[fixed, fixed],
            max_per_order=2,
        )
    assert e.value.code == "coupon.not_stackable"


# -- program validation ---------------------------------------------------------------------
def test_program_errors_name_the_field(tmp_path: object) -> None:
    with pytest.raises(InputError) as e:
        load_program({"earn": {"point_per_unit": 1}})
    assert "earn.point_per_unit" in e.value.message
    with pytest.raises(InputError) as e:
        load_program(
            {
                "stamp_cards": [
                    {"id": "x", "size": 5, "rewards": [{"stamps": 2, "template": "nope"}]}
                ]
            }
        )
    assert "stamp_cards.0.rewards.0.template" in e.value.message
    with pytest.raises(InputError) as e:
        load_program(
            {"tiers": {"levels": [{"id": "a", "threshold": 0}, {"id": "b", "threshold": "lots"}]}}
        )
    assert "tiers.levels.1.threshold" in e.value.message
    with pytest.raises(InputError) as e:
        load_program({"coupon_templates": [{"id": "t", "kind": "threshold", "value": 30}]})
    assert "min_order_amount" in e.value.message
    assert e.value.code == "loyalty.program_invalid"


def test_program_file_errors_name_file_and_line(tmp_path: pytest.TempPathFactory) -> None:
    from pathlib import Path

    f = Path(str(tmp_path)) / "bad.yaml"
    f.write_text("id: x\nearn: [1,\n", encoding="utf-8")
    with pytest.raises(InputError) as e:
        load_program(f)
    assert e.value.details["file"] == str(f) and e.value.details["line"] is not None
    doc = example("hotpot").to_document()
    assert load_program(doc) == example("hotpot")


def test_rewards_and_referral_thresholds_are_never_negative() -> None:
    """A reward takes nothing away and a referral's minimum first order is an amount: the
    program refuses negatives and names the field (the console's forms show it there)."""
    with pytest.raises(InputError) as e:
        load_program({"referral": {"referrer_reward": {"points": "-50"}}})
    assert "referral.referrer_reward.points" in e.value.message
    with pytest.raises(InputError) as e:
        load_program({"referral": {"min_first_order_amount": "-1"}})
    assert "referral.min_first_order_amount" in e.value.message
    ok = load_program({"referral": {"referrer_reward": {"points": "50"}}})
    assert ok.referral is not None and ok.referral.referrer_reward.points == Decimal(50)
