"""Outbox and dispatcher on SQLite and PostgreSQL, sending to a real loopback webhook sink."""

from __future__ import annotations

import random
import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from msg_support import WEBHOOK_SECRET, Request, Sink, add_customers
from sqlalchemy import func, insert, select, update

from huitouke.messaging.channels.base import OutgoingMessage, SendResult
from huitouke.messaging.channels.http import RetryPolicy
from huitouke.messaging.channels.webhook import WebhookChannel
from huitouke.messaging.consent import load_customer_contexts, record_consent, unsubscribe
from huitouke.messaging.dispatcher import Dispatcher, DispatchStats
from huitouke.messaging.outbox import (
    OutboxMessage,
    campaign_cost,
    enqueue,
    list_messages,
    retry_messages,
    status_counts,
)
from huitouke.messaging.rules import ContactPolicy, parse_caps
from huitouke.messaging.tables import contact_log, delivery_receipts, outbox
from huitouke.store.db import Store
from huitouke.store.tables import orders

NOON = datetime(2026, 5, 6, 4, 0, tzinfo=UTC)  # 12:00 in Shanghai


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def msg(cid: str, step: str = "s1", occ: str = "2026-05-06", **kw: Any) -> OutboxMessage:
    base: dict[str, Any] = dict(
        journey_id="replenish",
        customer_id=cid,
        step_id=step,
        occurrence=occ,
        channel="webhook",
        rendered={"text": f"hello {cid}"},
        planned_at=NOON - timedelta(hours=1),
    )
    base.update(kw)
    return OutboxMessage(**base)


def webhook(sink: Sink) -> WebhookChannel:
    return WebhookChannel(
        sink.url, WEBHOOK_SECRET, retry=RetryPolicy(retries=2, base=0.01, cap=0.02)
    )


#: no caps, the default quiet hours, in the merchant zone of the fixtures
NO_CAPS = ContactPolicy(default_zone="Asia/Shanghai")


def dispatcher(store: Store, sink: Sink, clock: Clock, **kw: Any) -> Dispatcher:
    kw.setdefault(
        "policy",
        ContactPolicy(
            caps=parse_caps("marketing:*:3/7d,marketing:webhook:1/3d"), default_zone="Asia/Shanghai"
        ),
    )
    return Dispatcher(store, {"webhook": webhook(sink)}, clock, **kw)


def statuses(store: Store) -> dict[str, str]:
    with store.connect() as conn:
        return {
            r.message_id: r.status
            for r in conn.execute(select(outbox.c.message_id, outbox.c.status))
        }


def test_enqueue_is_idempotent_per_journey_customer_step_occurrence(store: Store) -> None:
    with store.begin() as conn:
        first = enqueue(conn, [msg("a"), msg("b"), msg("a")], now=NOON)
    assert (first.inserted, first.duplicates) == (2, 1)
    with store.begin() as conn:
        again = enqueue(
            conn, [msg("a"), msg("b"), msg("a", occ="2026-05-07"), msg("a", step="s2")], now=NOON
        )
    assert (again.inserted, again.duplicates) == (2, 2)
    with store.connect() as conn:
        assert conn.execute(select(func.count()).select_from(outbox)).scalar() == 4
    assert msg("a").message_id == msg("a").message_id != msg("b").message_id


def test_enqueue_rolls_back_with_the_callers_unit_of_work(store: Store) -> None:
    with pytest.raises(RuntimeError), store.begin() as conn:
        enqueue(conn, [msg("a")], now=NOON)
        raise RuntimeError("journey evaluation failed")
    assert statuses(store) == {}


def test_enqueue_rejects_bad_input_naming_the_message(store: Store) -> None:
    from huitouke.errors import InputError

    with pytest.raises(InputError) as err, store.begin() as conn:
        enqueue(conn, [msg("a"), msg("b", kind="promo")], now=NOON)
    assert "message #2" in err.value.message
    with pytest.raises(InputError), store.begin() as conn:
        enqueue(conn, [msg("a", not_before=datetime(2026, 5, 6))], now=NOON)


def test_dispatch_sends_each_message_once_with_signature_and_receipt(
    store: Store, sink: Sink
) -> None:
    add_customers(store, [{"customer_id": c, "consent": {"webhook": True}} for c in "abc"])
    with store.begin() as conn:
        enqueue(conn, [msg(c) for c in "abc"], now=NOON)
    d = dispatcher(store, sink, Clock(NOON))
    stats = d.drain()
    d.close()
    assert stats.sent == 3 and sink.bad_signatures == 0
    assert sum(sink.arrivals.values()) == 3 and set(sink.arrivals.values()) == {1}
    body = sink.requests[0].json()
    assert body["journey_id"] == "replenish" and body["rendered"]["text"].startswith("hello")
    with store.connect() as conn:
        rows = conn.execute(select(outbox)).all()
        assert {r.status for r in rows} == {"sent"}
        assert all(r.provider_message_id and r.provider_message_id.startswith("rcv-") for r in rows)
        assert conn.execute(select(func.count()).select_from(delivery_receipts)).scalar() == 3
        assert conn.execute(select(func.count()).select_from(contact_log)).scalar() == 3
    # Nothing is sent twice: a second drain finds nothing due.
    assert dispatcher(store, sink, Clock(NOON + timedelta(days=9))).drain().claimed == 0


def test_rules_at_send_time(store: Store, sink: Sink) -> None:
    add_customers(
        store,
        [
            {"customer_id": "ok", "consent": {"webhook": True}},
            {"customer_id": "noconsent", "consent": {"sms": True}},
            {"customer_id": "unsub", "consent": {"webhook": True}},
            {"customer_id": "ordered", "consent": {"webhook": True}},
            {
                "customer_id": "night",
                "consent": {"webhook": True},
                "timezone": "America/Los_Angeles",
            },
        ],
    )
    with store.begin() as conn:
        unsubscribe(conn, "unsub", "webhook", source="test", at=NOON - timedelta(days=1))
        conn.execute(
            insert(orders),
            [
                {
                    "order_id": "o1",
                    "customer_id": "ordered",
                    "ordered_at": NOON - timedelta(minutes=30),
                    "amount": Decimal("10"),
                    "currency": "CNY",
                    "status": "paid",
                    "refunded_amount": Decimal("0"),
                    "updated_at": NOON,
                }
            ],
        )
        enqueue(
            conn,
            [
                msg("ok"),
                msg("ok", step="s2"),  # second marketing message in 3 days: capped
                msg("noconsent"),
                msg("unsub"),
                msg("ordered", suppress_if_ordered=True),
                msg("night"),  # 21:00 in Los Angeles: delayed to 08:00 there
            ],
            now=NOON,
        )
    clock = Clock(NOON)
    d = dispatcher(store, sink, clock)
    stats = d.drain()
    assert stats.sent == 1 and stats.delayed == 1 and stats.suppressed == 4
    assert stats.reasons == {
        "cap.channel": 1,
        "consent.missing": 1,
        "unsubscribed": 1,
        "suppressed.ordered": 1,
        "quiet_hours": 1,
    }
    with store.connect() as conn:
        night = conn.execute(select(outbox).where(outbox.c.customer_id == "night")).one()
    assert night.status == "queued" and night.reason_code == "quiet_hours" and night.attempts == 0
    assert night.not_before == datetime(2026, 5, 6, 15, 0, tzinfo=UTC)  # 08:00 PDT
    clock.now = night.not_before
    assert d.drain().sent == 1
    d.close()
    ok_ids = {msg("ok").message_id, msg("ok", step="s2").message_id}
    assert len(sink.arrivals) == 2 and msg("night").message_id in sink.arrivals
    assert len(set(sink.arrivals) & ok_ids) == 1


def test_transient_failures_retry_with_backoff_then_dead_letter(store: Store, sink: Sink) -> None:
    add_customers(
        store,
        [{"customer_id": c, "consent": {"webhook": True}} for c in ("flaky", "broken", "gone")],
    )
    calls: dict[str, int] = {}

    def handler(req: Request) -> tuple[int, dict[str, str], bytes]:
        cid = req.json()["customer_id"]
        calls[cid] = calls.get(cid, 0) + 1
        if cid == "flaky" and calls[cid] <= 4:
            return 503, {}, b"busy"
        if cid == "broken":
            return 500, {}, b"down"
        if cid == "gone":
            return 410, {}, b"gone"
        return 200, {}, b"{}"

    sink.handler = handler
    with store.begin() as conn:
        enqueue(conn, [msg(c, kind="transactional") for c in ("flaky", "broken", "gone")], now=NOON)
    clock = Clock(NOON)
    d = dispatcher(store, sink, clock, max_attempts=3, rng=random.Random(1))
    s1 = d.run_once()
    assert (s1.sent, s1.failed, s1.dead) == (0, 2, 1)
    assert s1.reasons["http.410"] == 1
    with store.connect() as conn:
        flaky = conn.execute(select(outbox).where(outbox.c.customer_id == "flaky")).one()
    assert flaky.status == "failed" and "http.503" in flaky.last_error
    assert NOON + timedelta(seconds=15) <= flaky.not_before <= NOON + timedelta(seconds=30)
    assert d.run_once().claimed == 0  # not due yet
    for _ in range(3):
        clock.now += timedelta(hours=1)
        d.run_once()
    d.close()
    st = {r["customer_id"]: r for r in _rows(store)}
    assert st["flaky"]["status"] == "sent"
    assert st["broken"]["status"] == "dead" and st["broken"]["reason_code"] == "attempts.exhausted"
    assert st["gone"]["status"] == "dead" and st["gone"]["reason_code"] == "http.410"
    with store.connect() as conn:
        assert conn.execute(select(func.count()).select_from(contact_log)).scalar() == 1
    # Dead letters can be retried by hand.
    with store.begin() as conn:
        assert retry_messages(conn, now=clock.now, all_dead=True) == 2
        assert {r["status"] for r in list_messages(conn, status="queued")} == {"queued"}


def _rows(store: Store) -> list[dict[str, Any]]:
    with store.connect() as conn:
        return list_messages(conn, limit=1000)


class RecordingChannel:
    """A fake that can stop mid-send, to stand in for a crash (unit level only)."""

    name = "webhook"

    def __init__(self, delivery: str = "idempotent", crash: bool = False) -> None:
        self.delivery = delivery
        self.crash = crash
        self.sent: list[str] = []

    def send(self, message: OutgoingMessage) -> SendResult:
        self.sent.append(message.message_id)
        if self.crash:
            raise SystemExit("killed")  # escapes like a dying process would
        return SendResult(provider="fake", provider_message_id=f"p-{message.message_id[:8]}")

    def close(self) -> None:
        pass


def test_a_dead_workers_lease_is_taken_over(store: Store) -> None:
    add_customers(store, [{"customer_id": c, "consent": {"webhook": True}} for c in "ab"])
    with store.begin() as conn:
        enqueue(conn, [msg("a"), msg("b")], now=NOON)
    clock = Clock(NOON)
    dying = RecordingChannel(crash=True)
    d1 = Dispatcher(
        store, {"webhook": dying}, clock, lease_seconds=60, concurrency=1, policy=NO_CAPS
    )
    with pytest.raises(SystemExit):
        d1.run_once()
    assert set(statuses(store).values()) == {"sending"}
    ok = RecordingChannel()
    d2 = Dispatcher(store, {"webhook": ok}, clock, lease_seconds=60, policy=NO_CAPS)
    assert d2.run_once().claimed == 0  # the lease still holds
    clock.now += timedelta(seconds=61)
    assert d2.drain().sent == 2
    assert set(statuses(store).values()) == {"sent"}
    with store.connect() as conn:
        assert conn.execute(select(func.count()).select_from(contact_log)).scalar() == 2
    # The late worker cannot mark what it no longer holds (fenced by lease owner).
    with store.connect() as conn:
        owners = conn.execute(select(outbox.c.lease_owner)).scalars().all()
    assert owners == [None, None]


def test_at_most_once_channel_dead_letters_after_a_crash(store: Store) -> None:
    add_customers(store, [{"customer_id": "a", "consent": {"webhook": True}}])
    with store.begin() as conn:
        enqueue(conn, [msg("a")], now=NOON)
    clock = Clock(NOON)
    with pytest.raises(SystemExit):
        Dispatcher(
            store,
            {"webhook": RecordingChannel("at_most_once", crash=True)},
            clock,
            lease_seconds=5,
            policy=NO_CAPS,
        ).run_once()
    clock.now += timedelta(seconds=10)
    again = RecordingChannel("at_most_once")
    stats = Dispatcher(store, {"webhook": again}, clock, policy=NO_CAPS).drain()
    assert stats.dead == 1 and again.sent == []
    assert _rows(store)[0]["reason_code"] == "crash.unknown"


def test_at_most_once_sends_a_dead_workers_rows_it_never_started(store: Store) -> None:
    """Only a started send is lost: rows a dead worker claimed but never sent go out once."""
    add_customers(store, [{"customer_id": c, "consent": {"webhook": True}} for c in "ab"])
    with store.begin() as conn:
        enqueue(conn, [msg("a"), msg("b")], now=NOON)
    clock = Clock(NOON)
    dead = Dispatcher(
        store, {"webhook": RecordingChannel()}, clock, policy=NO_CAPS, lease_seconds=5
    )
    assert dead._claim_and_decide(None, DispatchStats()) is not None  # claimed, then killed
    clock.now += timedelta(seconds=10)
    again = RecordingChannel()
    stats = Dispatcher(
        store, {"webhook": again}, clock, policy=NO_CAPS, at_most_once=["webhook"]
    ).drain()
    assert stats.sent == 2 and stats.dead == 0 and len(again.sent) == 2


def test_transactional_goes_first_and_is_not_capped(store: Store) -> None:
    add_customers(store, [{"customer_id": "a", "consent": {"webhook": True}}])
    with store.begin() as conn:
        enqueue(
            conn,
            [
                msg("a", step="promo"),
                msg("a", step="shipped", kind="transactional"),
                msg("a", step="delivered", kind="transactional"),
            ],
            now=NOON,
        )
    ch = RecordingChannel()
    stats = Dispatcher(
        store,
        {"webhook": ch},
        Clock(NOON),
        policy=ContactPolicy(caps=parse_caps("*:*:1/1d"), default_zone="Asia/Shanghai"),
    ).drain()
    # The all-kinds cap of 1 a day lets the first service notice through; the rest are capped.
    assert ch.sent[0] in (
        msg("a", step="shipped").message_id,
        msg("a", step="delivered").message_id,
    )
    assert stats.sent == 1 and stats.suppressed == 2
    ch2 = RecordingChannel()
    with store.begin() as conn:
        conn.execute(update(outbox).values(status="queued", attempts=0))
        conn.execute(contact_log.delete())
    stats = Dispatcher(
        store,
        {"webhook": ch2},
        Clock(NOON),
        policy=ContactPolicy(caps=parse_caps("marketing:*:1/1d"), default_zone="Asia/Shanghai"),
    ).drain()
    assert stats.sent == 3 and ch2.sent[-1] == msg("a", step="promo").message_id


def test_unsubscribe_wins_over_consent_flags_until_explicit_opt_in(store: Store) -> None:
    add_customers(store, [{"customer_id": "a", "consent": {"sms": True, "email": True}}])
    with store.begin() as conn:
        unsubscribe(conn, "a", "sms", source="sms_reply", at=NOON)
        ctx = load_customer_contexts(conn, ["a", "ghost"])
        assert ctx["a"].unsubscribed == frozenset({"sms"}) and ctx["a"].consent["sms"] is True
        assert ctx["ghost"].consent == {}
        record_consent(
            conn, "a", "sms", "granted", source="double_opt_in", at=NOON + timedelta(days=1)
        )
        assert load_customer_contexts(conn, ["a"])["a"].unsubscribed == frozenset()


def test_rate_limit_per_channel(store: Store, sink: Sink) -> None:
    import time

    add_customers(
        store, [{"customer_id": f"c{i}", "consent": {"webhook": True}} for i in range(12)]
    )
    with store.begin() as conn:
        enqueue(conn, [msg(f"c{i}", kind="transactional") for i in range(12)], now=NOON)
    d = dispatcher(store, sink, Clock(NOON), rate_limits={"webhook": 20.0})
    d.buckets["webhook"].tokens = 1  # start empty-ish: 11 more tokens at 20/s ≈ 0.55 s
    t0 = time.monotonic()
    assert d.drain().sent == 12
    assert time.monotonic() - t0 >= 0.5
    d.close()


def test_costs_and_counts(store: Store) -> None:
    with store.begin() as conn:
        enqueue(
            conn,
            [
                msg("a", channel="sms", rendered={"text": "中" * 71}),  # 2 segments
                msg("b", channel="sms", rendered={"text": "hi"}),
            ],
            now=NOON,
        )
        planned = campaign_cost(
            conn,
            price_per_segment=Decimal("0.045"),
            currency="CNY",
            journey_id="replenish",
            statuses=("queued",),
        )
        assert (planned.messages, planned.segments, planned.cost) == (2, 3, Decimal("0.1350"))
        assert status_counts(conn) == {"replenish": {"queued": 2}}


@pytest.mark.postgres
def test_two_workers_on_postgres_never_share_a_message(postgres_url: str, sink: Sink) -> None:
    store = Store(postgres_url)
    store.migrate()
    try:
        n = 400
        add_customers(
            store, [{"customer_id": f"c{i}", "consent": {"webhook": True}} for i in range(n)]
        )
        with store.begin() as conn:
            enqueue(conn, [msg(f"c{i}", kind="transactional") for i in range(n)], now=NOON)
        ds = [dispatcher(store, sink, Clock(NOON), batch_size=50) for _ in range(3)]
        threads = [threading.Thread(target=d.drain) for d in ds]
        for th in threads:
            th.start()
        for th in threads:
            th.join(60)
        for d in ds:
            d.close()
        assert len(sink.arrivals) == n and set(sink.arrivals.values()) == {1}
        assert set(statuses(store).values()) == {"sent"}
    finally:
        store.dispose()
