"""Reliability of planning through messaging's real contact rules (property tests):
zero planned messages to unsubscribed or non-consenting customers, none inside quiet hours,
and no frequency cap exceeded by what is planned — over random customers, histories, days
and send times."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from huitouke.journeys.calendar import Promotion
from huitouke.journeys.engine import EvaluationContext, evaluate
from huitouke.journeys.gate import Loaded, MessagingGate
from huitouke.journeys.loader import builtin_journeys
from huitouke.journeys.model import LocalizedText
from huitouke.messaging.rules import Contact, ContactPolicy, CustomerContext, parse_caps

from .conftest import at, d, frame

JOURNEYS = [j.model_copy(update={"holdout": 0.1}) for j in builtin_journeys()]
POLICY = ContactPolicy(
    caps=parse_caps("marketing:*:2/7d,marketing:sms:1/3d,marketing:sms:3/30d"),
    default_zone="Asia/Shanghai",
)
ZONE = ZoneInfo("Asia/Shanghai")


def _quiet(t: datetime, tz: str | None) -> bool:
    local = t.astimezone(ZoneInfo(tz) if tz else ZONE).time()
    return local >= time(21, 0) or local < time(8, 0)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(1, 40),
    seed=st.integers(0, 100_000),
    day=st.integers(0, 700),
    hour=st.integers(0, 23),
)
def test_planned_messages_respect_consent_quiet_hours_and_caps(
    n: int, seed: int, day: int, hour: int
) -> None:
    import numpy as np

    rng = np.random.default_rng(seed)
    as_of = d("2025-01-01") + timedelta(days=day)
    js = [
        j.model_copy(update={"trigger": j.trigger.model_copy(update={"at": time(hour, 30)})})
        for j in JOURNEYS
    ]
    rows, contexts, history = [], {}, defaultdict(list)
    zones = [None, "Asia/Shanghai", "Europe/London", "America/New_York"]
    now = datetime.combine(as_of, time(0), tzinfo=ZONE).astimezone(UTC)
    for i in range(n):
        cid = f"p{i}"
        last = as_of - timedelta(days=int(rng.integers(0, 300)))
        rows.append(
            {
                "customer_id": cid,
                "orders": int(rng.integers(1, 5)),
                "layer": str(
                    rng.choice(["new", "active", "cooling", "high_winback", "low_winback"])
                ),
                "last_order_at": at(last.isoformat()),
                "first_order_at": at((last - timedelta(days=int(rng.integers(0, 40)))).isoformat()),
                "next_expected_date": (as_of + timedelta(days=int(rng.integers(0, 6)))).isoformat(),
                "birthday": (
                    as_of - timedelta(days=365 * 30 + int(rng.integers(0, 2)))
                ).isoformat(),
                "points_expiring_on": (as_of + timedelta(days=int(rng.integers(0, 9)))).isoformat(),
                "next_tier_gap_ratio": float(rng.random() * 0.2),
                "stamps_to_reward": int(rng.integers(1, 3)),
            }
        )
        contexts[cid] = CustomerContext(
            customer_id=cid,
            consent={"sms": bool(rng.random() < 0.8)},
            unsubscribed=frozenset({"sms"}) if rng.random() < 0.15 else frozenset(),
            timezone=zones[int(rng.integers(0, len(zones)))],
        )
        for _ in range(int(rng.integers(0, 3))):
            history[cid].append(
                Contact("sms", "marketing", now - timedelta(hours=int(rng.integers(1, 24 * 20))))
            )

    def loader(ids: Sequence[str]) -> Loaded:
        return Loaded({c: contexts[c] for c in ids}, {c: list(history[c]) for c in ids}, set())

    promo = Promotion(
        "p", LocalizedText(zh="促", en="Sale"), as_of + timedelta(days=int(rng.integers(1, 8)))
    )
    gate = MessagingGate(POLICY, loader, planned_at=now)
    plan = evaluate(
        js,
        frame(*rows),
        EvaluationContext(gate=gate, promotions=[promo], timezone="Asia/Shanghai"),
        as_of,
    )
    sends = plan.planned()
    sends = sends[sends["action"] == "send"]
    for r in sends.itertuples():
        ctx = contexts[r.customer_id]
        assert ctx.consent.get(r.channel) and r.channel not in ctx.unsubscribed
        when = r.deliver_after if r.deliver_after is not None else r.send_at
        assert not isinstance(when, type(pd.NaT))
        assert not _quiet(when, ctx.timezone), (when, ctx.timezone)
        assert when < r.expires_at
    # caps: history + planned marketing messages, in every sliding window
    for cid, g in sends[sends["kind"] == "marketing"].groupby("customer_id"):
        times = sorted(
            [c.at for c in history[cid]]
            + [
                t if t is not None else s
                for t, s in zip(g["deliver_after"], g["send_at"], strict=True)
            ]
        )
        planned_times = [
            t if t is not None else s for t, s in zip(g["deliver_after"], g["send_at"], strict=True)
        ]
        for cap in POLICY.caps:
            for t in planned_times:
                used = sum(1 for x in times if t - cap.window < x <= t)
                assert used <= cap.count, (cid, str(cap), times)
