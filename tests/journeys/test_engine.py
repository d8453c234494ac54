"""Journey evaluation: triggers, steps, branches, audience, holdout, contact rules, dry run."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from datetime import timedelta

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from huitouke.journeys.calendar import Promotion
from huitouke.journeys.engine import (
    EvaluationContext,
    GateDecision,
    PlannedMessage,
    evaluate,
)
from huitouke.journeys.holdout import is_holdout
from huitouke.journeys.loader import builtin_journeys
from huitouke.journeys.model import Journey, LocalizedText

from .conftest import at, d, frame

BUILTIN = {j.id: j for j in builtin_journeys()}


class FunctionGate:
    """A fake contact gate (``ContactGate``) over a plain function."""

    def __init__(self, fn: Callable[[PlannedMessage], GateDecision]) -> None:
        self._fn = fn

    def prepare(self, customer_ids: Sequence[str]) -> None:
        return None

    def check(self, message: PlannedMessage) -> GateDecision:
        return self._fn(message)


def no_holdout(j: Journey) -> Journey:
    return j.model_copy(update={"holdout": 0.0})


def reasons(plan: object, journey: str | None = None) -> dict[tuple[str, str], str]:
    rows = plan.rows  # type: ignore[attr-defined]
    if journey:
        rows = rows[rows["journey_id"] == journey]
    return {(r.customer_id, r.step_id): r.reason_code for r in rows.itertuples()}


def test_second_order_days_7_14_30_unless_ordered() -> None:
    as_of = d("2026-03-20")
    cust = frame(
        {"customer_id": "day7", "last_order_at": at("2026-03-13")},
        # ordered again two days later: the journey stops
        {
            "customer_id": "again",
            "orders": 2,
            "first_order_at": at("2026-03-13"),
            "last_order_at": at("2026-03-15"),
        },
        {"customer_id": "day14", "last_order_at": at("2026-03-06")},
        {"customer_id": "day30", "last_order_at": at("2026-02-18")},
        {"customer_id": "day8", "last_order_at": at("2026-03-12")},
        # 2026-03-12 22:00 UTC is already 03-13 in Shanghai: day 7 in the merchant's zone
        {"customer_id": "late", "last_order_at": at("2026-03-12", hour=22)},
    )
    plan = evaluate(
        [no_holdout(BUILTIN["second_order"])],
        cust,
        EvaluationContext(timezone="Asia/Shanghai"),
        as_of,
    )
    assert reasons(plan) == {
        ("day7", "day7"): "planned",
        ("again", "day7"): "already_ordered",
        ("day14", "coupon14"): "planned",
        ("day14", "day14"): "planned",
        ("day30", "day30"): "planned",
        ("late", "day7"): "planned",
    }
    row = plan.rows[plan.rows["customer_id"] == "day7"].iloc[0]
    assert row["occurrence"] == "2026-03-13"  # the first order's day: one occurrence per customer
    assert row["dedupe_key"] == "second_order|day7|day7|2026-03-13"
    assert row["send_at"].isoformat() == "2026-03-20T03:00:00+00:00"  # 11:00 in Shanghai
    [s] = plan.summary
    assert s["due_customers"] == 5 and s["not_due"] == 1


def test_replenishment_three_days_before_expected_with_coupon_first() -> None:
    as_of = d("2026-05-01")
    cust = frame(
        {
            "customer_id": "due",
            "orders": 3,
            "last_order_at": at("2026-04-01"),
            "next_expected_date": "2026-05-04",
        },
        {
            "customer_id": "lost",
            "orders": 3,
            "layer": "lost",
            "last_order_at": at("2025-01-01"),
            "next_expected_date": "2026-05-04",
        },
        {
            "customer_id": "later",
            "orders": 3,
            "last_order_at": at("2026-04-01"),
            "next_expected_date": "2026-05-05",
        },
        {
            "customer_id": "one",
            "orders": 1,
            "last_order_at": at("2026-04-01"),
            "next_expected_date": "2026-05-04",
        },
    )
    plan = evaluate(
        [no_holdout(BUILTIN["replenishment"])],
        cust,
        EvaluationContext(timezone="Asia/Shanghai"),
        as_of,
    )
    assert reasons(plan) == {
        ("due", "coupon"): "planned",
        ("due", "remind"): "planned",
        ("lost", "coupon"): "not_in_audience",
        ("lost", "remind"): "not_in_audience",
        ("one", "coupon"): "not_in_audience",
        ("one", "remind"): "not_in_audience",
    }
    planned = plan.planned()
    assert list(planned["action"]) == ["coupon", "send"]
    assert set(planned["coupon_template"]) == {"replenish"}


def test_holiday_broadcast_lists_only_the_audience_unless_explaining() -> None:
    as_of = d("2026-09-25")  # 中秋 2026
    cust = frame(
        {"customer_id": "recent", "last_order_at": at("2026-06-01")},
        {"customer_id": "old", "last_order_at": at("2025-06-01")},
    )
    j = no_holdout(BUILTIN["holiday_greetings"])
    plan = evaluate([j], cust, EvaluationContext(timezone="Asia/Shanghai"), as_of)
    assert reasons(plan) == {("recent", "greeting"): "planned"}
    assert plan.rows.iloc[0]["occurrence"] == "mid_autumn-2026"
    assert plan.summary[0]["by_reason"] == {"planned": 1, "not_in_audience": 1}
    full = evaluate([j], cust, EvaluationContext(explain_all=True, timezone="Asia/Shanghai"), as_of)
    assert reasons(full) == {
        ("recent", "greeting"): "planned",
        ("old", "greeting"): "not_in_audience",
    }
    assert evaluate(
        [j], cust, EvaluationContext(timezone="Asia/Shanghai"), d("2026-09-24")
    ).rows.empty


@pytest.mark.parametrize(
    ("day", "step", "days_left"),
    [
        ("2026-11-04", "d7", 7),
        ("2026-11-08", "d3", 3),
        ("2026-11-10", "d1", 1),
        ("2026-11-09", None, None),
    ],
)
def test_promotion_countdown_7_3_1(day: str, step: str | None, days_left: int | None) -> None:
    promo = Promotion("double11", LocalizedText(zh="双11", en="11.11"), d("2026-11-11"))
    cust = frame(
        {"customer_id": "r60", "last_order_at": at("2026-09-05")},
        {"customer_id": "r150", "last_order_at": at("2026-06-10")},
    )
    js = [
        no_holdout(BUILTIN["promotion_countdown_90"]),
        no_holdout(BUILTIN["promotion_countdown_180"]),
    ]
    plan = evaluate(
        js, cust, EvaluationContext(promotions=[promo], timezone="Asia/Shanghai"), d(day)
    )
    got = reasons(plan)
    if step is None:
        assert got == {}
        return
    assert reasons(plan, "promotion_countdown_90") == {("r60", step): "planned"}
    assert reasons(plan, "promotion_countdown_180") == {("r150", step): "planned"}
    assert set(plan.rows["occurrence"]) == {"double11"}
    assert (d("2026-11-11") - d(day)).days == days_left


def test_birthday_leap_day_and_year_boundary() -> None:
    leap = frame(
        {"customer_id": "feb29", "last_order_at": at("2026-12-01"), "birthday": "1992-02-29"},
        {"customer_id": "none", "last_order_at": at("2026-12-01")},
    )
    j = no_holdout(BUILTIN["birthday"])
    plan = evaluate([j], leap, EvaluationContext(timezone="Asia/Shanghai"), d("2027-02-28"))
    assert reasons(plan) == {("feb29", "coupon"): "planned", ("feb29", "greeting"): "planned"}
    assert set(plan.rows["occurrence"]) == {"2027"}
    assert evaluate(
        [j], leap, EvaluationContext(timezone="Asia/Shanghai"), d("2028-02-28")
    ).rows.empty
    assert not evaluate(
        [j], leap, EvaluationContext(timezone="Asia/Shanghai"), d("2028-02-29")
    ).rows.empty
    # a greeting the day before a 1 January birthday belongs to the next year's occurrence
    early = j.model_copy(update={"trigger": j.trigger.model_copy(update={"offset_days": -1})})
    jan1 = frame(
        {"customer_id": "jan1", "last_order_at": at("2026-12-01"), "birthday": "1990-01-01"}
    )
    plan = evaluate([early], jan1, EvaluationContext(timezone="Asia/Shanghai"), d("2026-12-31"))
    assert set(plan.rows["occurrence"]) == {"2027"}


def test_events_anchor_on_the_local_day_and_skip_unknown_customers() -> None:
    cust = frame({"customer_id": "a", "last_order_at": at("2026-03-18")})
    events = pd.DataFrame(
        {
            "customer_id": ["a", "ghost", "a"],
            "event": ["order_shipped", "order_shipped", "order_delivered"],
            "at": [at("2026-03-19", hour=20), at("2026-03-19", hour=20), at("2026-03-20")],
            "order_id": ["o1", "o2", "o1"],
        }
    )
    plan = evaluate(
        [BUILTIN["post_purchase_shipped"]],
        cust,
        EvaluationContext(events=events, timezone="Asia/Shanghai"),
        d("2026-03-20"),
    )
    assert reasons(plan) == {("a", "notice"): "planned"}
    assert plan.rows.iloc[0]["occurrence"] == "o1" and plan.rows.iloc[0]["kind"] == "transactional"


def test_inactive_window_and_disabled() -> None:
    cust = frame({"customer_id": "day7", "last_order_at": at("2026-03-13")})
    j = no_holdout(BUILTIN["second_order"])
    for off in (
        j.model_copy(update={"enabled": False}),
        j.model_copy(update={"active": j.active.model_copy(update={"end": d("2026-03-19")})}),
    ):
        plan = evaluate([off], cust, EvaluationContext(timezone="Asia/Shanghai"), d("2026-03-20"))
        assert plan.rows.empty and plan.summary[0]["active"] is False


def test_gate_reasons_delays_and_transactional_first() -> None:
    as_of = d("2026-11-04")
    promo = Promotion("p", LocalizedText(zh="大促", en="Sale"), d("2026-11-11"))
    cust = frame(
        {"customer_id": "ok", "last_order_at": at("2026-10-01")},
        {"customer_id": "noconsent", "last_order_at": at("2026-10-01")},
        {"customer_id": "night", "last_order_at": at("2026-10-01")},
        {"customer_id": "busy", "last_order_at": at("2026-10-01")},
    )
    events = pd.DataFrame(
        {
            "customer_id": ["busy"],
            "event": ["order_shipped"],
            "at": [at("2026-11-04", 1)],
            "order_id": ["o9"],
        }
    )
    sent: Counter[str] = Counter()
    seen: list[tuple[str, str]] = []

    def rules(m: PlannedMessage) -> GateDecision:
        seen.append((m.customer_id, m.kind))
        if m.customer_id == "noconsent":
            return GateDecision(False, "consent.missing")
        if m.customer_id == "night":
            return GateDecision(True, "quiet_hours", m.send_at + timedelta(hours=10))
        if sent[m.customer_id] >= 1:  # one message a day
            return GateDecision(False, "cap.global")
        sent[m.customer_id] += 1
        return GateDecision(True, "ok")

    ctx = EvaluationContext(
        promotions=[promo], events=events, gate=FunctionGate(rules), timezone="Asia/Shanghai"
    )
    js = [no_holdout(BUILTIN["promotion_countdown_90"]), BUILTIN["post_purchase_shipped"]]
    plan = evaluate(js, cust, ctx, as_of)
    got = reasons(plan)
    assert got[("ok", "d7")] == "planned"
    assert got[("noconsent", "d7")] == "consent.missing"
    assert got[("night", "d7")] == "quiet_hours"
    # the shipping notice was checked first and took the day's only slot
    assert got[("busy", "notice")] == "planned" and got[("busy", "d7")] == "cap.global"
    assert seen.index(("busy", "transactional")) < seen.index(("busy", "marketing"))
    night = plan.rows[plan.rows["customer_id"] == "night"].iloc[0]
    assert night["status"] == "planned" and night["deliver_after"] > night["send_at"]
    msgs = {m.customer_id: m for m in plan.messages()}
    assert set(msgs) == {"ok", "night", "busy"} and msgs["night"].send_at == night["deliver_after"]
    texts = {(e["customer_id"], e["reason_code"]): e["reason"] for e in plan.explain("zh")}
    assert "对照组" not in texts[("ok", "planned")]
    assert plan.to_json()["items_total"] == len(plan.rows)


def test_dry_run_explains_holdout() -> None:
    j = BUILTIN["second_order"].model_copy(update={"holdout": 0.5})
    cust = frame(*({"customer_id": f"c{i}", "last_order_at": at("2026-03-13")} for i in range(40)))
    plan = evaluate(
        [j], cust, EvaluationContext(salt="s", timezone="Asia/Shanghai"), d("2026-03-20")
    )
    items = plan.explain("en")
    held = [e for e in items if e["reason_code"] == "holdout"]
    assert held and all(e["status"] == "skipped" and e["group"] == "holdout" for e in held)
    assert all("holdout" in e["reason"] for e in held)
    assert {e["customer_id"] for e in held} == {
        f"c{i}" for i in range(40) if is_holdout(j.id, f"c{i}", 0.5, "s")
    }
    a = plan.assignments()
    assert len(a) == 40 and set(a["group"]) == {"treatment", "holdout"}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(1, 60),
    seed=st.integers(0, 10_000),
    share=st.sampled_from([0.0, 0.05, 0.3, 0.9]),
    day_offset=st.integers(0, 400),
)
def test_property_holdout_never_receives_marketing(
    n: int, seed: int, share: float, day_offset: int
) -> None:
    """For every built-in journey, a holdout customer never gets a planned step of it."""
    import numpy as np

    rng = np.random.default_rng(seed)
    as_of = d("2026-01-01") + timedelta(days=day_offset)
    rows = []
    for i in range(n):
        last = as_of - timedelta(days=int(rng.integers(0, 400)))
        rows.append(
            {
                "customer_id": f"p{seed}-{i}",
                "orders": int(rng.integers(1, 6)),
                "layer": str(
                    rng.choice(["new", "active", "cooling", "high_winback", "low_winback", "lost"])
                ),
                "last_order_at": at(last.isoformat()),
                "first_order_at": at((last - timedelta(days=int(rng.integers(0, 60)))).isoformat()),
                "next_expected_date": (
                    as_of + timedelta(days=int(rng.integers(-5, 10)))
                ).isoformat(),
                "birthday": (
                    as_of - timedelta(days=int(rng.integers(0, 3)) + 365 * 30)
                ).isoformat(),
                "points_expiring_on": (
                    as_of + timedelta(days=int(rng.integers(0, 10)))
                ).isoformat(),
                "next_tier_gap_ratio": float(rng.random()),
                "stamps_to_reward": int(rng.integers(1, 4)),
            }
        )
    cust = frame(*rows)
    promo = Promotion(
        "promo", LocalizedText(zh="促", en="Sale"), as_of + timedelta(days=int(rng.integers(1, 8)))
    )
    js = [j.model_copy(update={"holdout": share}) for j in BUILTIN.values()]
    plan = evaluate(
        js,
        cust,
        EvaluationContext(salt="prop", promotions=[promo], timezone="Asia/Shanghai"),
        as_of,
    )
    planned = plan.planned()
    for r in planned.itertuples():
        assert not is_holdout(r.journey_id, r.customer_id, share, "prop")
    held = plan.rows[plan.rows["group"] == "holdout"]
    assert (held["status"] == "skipped").all() and (held["reason_code"] == "holdout").all()
    assert len(plan.assignments()) <= len(plan.rows)
