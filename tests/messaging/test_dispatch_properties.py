"""Properties of the whole send path (outbox + dispatcher + rules on a real SQLite store) over
random customers, schedules and clocks: nothing reaches an unsubscribed or non-consenting
customer, nothing leaves in quiet hours (the customer's zone), no cap is ever exceeded."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from msg_support import add_customers
from sqlalchemy import delete, select

from huitouke.messaging.channels.base import OutgoingMessage, SendResult
from huitouke.messaging.consent import unsubscribe
from huitouke.messaging.dispatcher import Dispatcher
from huitouke.messaging.outbox import OutboxMessage, enqueue
from huitouke.messaging.rules import Cap, Contact, ContactPolicy
from huitouke.messaging.tables import consent_events, contact_log, delivery_receipts, outbox
from huitouke.store.db import Store
from huitouke.store.tables import customers

ZONES = ["Asia/Shanghai", "Europe/London", "America/New_York", "Asia/Kathmandu", None]
CHANNELS = ["sms", "email"]


class Recorder:
    """Records what left, and when by the dispatcher's clock (unit-level fake sink)."""

    delivery = "idempotent"

    def __init__(self, name: str, clock: Any) -> None:
        self.name = name
        self.clock = clock
        self.sent: list[tuple[str, str, str, datetime]] = []

    def send(self, message: OutgoingMessage) -> SendResult:
        self.sent.append((message.customer_id, message.channel, message.kind, self.clock()))
        return SendResult(provider="recorder")

    def close(self) -> None:
        pass


@pytest.fixture(scope="module")
def prop_store(tmp_path_factory: pytest.TempPathFactory) -> Any:
    path: Path = tmp_path_factory.mktemp("prop") / "p.db"
    s = Store(f"sqlite:///{path}")
    s.migrate()
    yield s
    s.dispose()


@st.composite
def worlds(draw: st.DrawFn) -> dict[str, Any]:
    n = draw(st.integers(1, 5))
    custs = []
    for i in range(n):
        custs.append(
            {
                "customer_id": f"c{i}",
                "consent": {ch: draw(st.booleans()) for ch in CHANNELS},
                "timezone": draw(st.sampled_from(ZONES)),
                "unsub": sorted(draw(st.sets(st.sampled_from([*CHANNELS, "*"]), max_size=1))),
            }
        )
    policy = ContactPolicy(
        caps=(
            Cap("marketing", "*", draw(st.integers(1, 3)), timedelta(days=draw(st.integers(1, 7)))),
            Cap("marketing", "sms", 1, timedelta(hours=draw(st.integers(6, 96)))),
        ),
        quiet_start=time(draw(st.integers(18, 23))),
        quiet_end=time(draw(st.integers(5, 10))),
        default_zone="Asia/Shanghai",
    )
    start = datetime(2026, 3, 1, tzinfo=UTC) + timedelta(
        minutes=draw(st.integers(0, 200 * 24 * 60))
    )
    msgs = []
    for j in range(draw(st.integers(1, 25))):
        msgs.append(
            {
                "customer": draw(st.integers(0, n - 1)),
                "channel": draw(st.sampled_from(CHANNELS)),
                "kind": draw(st.sampled_from(["marketing", "marketing", "transactional"])),
                "offset": timedelta(minutes=draw(st.integers(0, 5 * 24 * 60))),
                "step": j,
            }
        )
    steps = [
        timedelta(minutes=draw(st.integers(1, 12 * 60))) for _ in range(draw(st.integers(5, 40)))
    ]
    return {"customers": custs, "policy": policy, "start": start, "messages": msgs, "steps": steps}


def _quiet(local: time, p: ContactPolicy) -> bool:
    s, e = p.quiet_start, p.quiet_end
    return s <= local < e if s < e else (local >= s or local < e)


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(worlds())
def test_property_dispatch_never_breaks_the_rules(prop_store: Store, world: dict[str, Any]) -> None:
    store = prop_store
    with store.begin() as conn:
        for table in (outbox, contact_log, consent_events, delivery_receipts, customers):
            conn.execute(delete(table))
    add_customers(store, world["customers"])
    start = world["start"]
    with store.begin() as conn:
        for c in world["customers"]:
            for ch in c["unsub"]:
                unsubscribe(conn, c["customer_id"], ch, source="test", at=start - timedelta(days=1))
        enqueue(
            conn,
            [
                OutboxMessage(
                    journey_id="prop",
                    customer_id=f"c{m['customer']}",
                    step_id=str(m["step"]),
                    occurrence="1",
                    channel=m["channel"],
                    kind=m["kind"],
                    rendered={"text": "hi"},
                    not_before=start + m["offset"],
                )
                for m in world["messages"]
            ],
            now=start,
        )
    now = [start]
    clock = lambda: now[0]  # noqa: E731
    rec = {ch: Recorder(ch, clock) for ch in CHANNELS}
    d = Dispatcher(store, rec, clock, policy=world["policy"], concurrency=1, batch_size=7)
    for step in world["steps"]:
        d.drain()
        now[0] = now[0] + step
    d.drain()
    policy: ContactPolicy = world["policy"]
    by_id = {c["customer_id"]: c for c in world["customers"]}
    sent = [s for r in rec.values() for s in r.sent]
    for cid, ch, _kind, at in sent:
        c = by_id[cid]
        assert c["consent"][ch], "sent without consent"
        assert ch not in c["unsub"] and "*" not in c["unsub"], "sent after unsubscribe"
        zone = ZoneInfo(c["timezone"] or policy.default_zone)
        assert not _quiet(at.astimezone(zone).time(), policy), "sent in quiet hours"
    for cid in by_id:
        for cap in policy.caps:
            times = sorted(
                at for c2, ch, kind, at in sent if c2 == cid and cap.counts(Contact(ch, kind, at))
            )
            for j, end in enumerate(times):
                assert sum(1 for x in times[: j + 1] if x > end - cap.window) <= cap.count, (
                    f"{cap} exceeded"
                )
    # Every message ended in a final state or is still waiting for its time (never stuck sending).
    with store.connect() as conn:
        states = conn.execute(select(outbox.c.status)).scalars().all()
    assert "sending" not in states
