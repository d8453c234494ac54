"""Reliability: `huitouke worker` killed with SIGKILL at random points while it dispatches
10,000 messages to a loopback webhook sink; after restarts every message arrived exactly once."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from msg_support import WEBHOOK_SECRET, Sink, add_customers
from sqlalchemy import func, select

from huitouke.messaging.outbox import OutboxMessage, enqueue
from huitouke.messaging.tables import contact_log, outbox
from huitouke.store.db import Store

N = 10_000
LEASE = 2.0
HUITOUKE = str(Path(sys.executable).with_name("huitouke"))


def _env(store: Store, sink: Sink) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        HUITOUKE_DATABASE_URL=store.url,
        HUITOUKE_WEBHOOK_URL=sink.url,
        HUITOUKE_WEBHOOK_SECRET=WEBHOOK_SECRET,
        HUITOUKE_QUIET_HOURS_START="00:00",  # equal start and end: no quiet hours, whatever the hour
        HUITOUKE_QUIET_HOURS_END="00:00",
        HUITOUKE_CONTACT_CAPS="",
        HUITOUKE_SMTP_HOST="",
        HUITOUKE_SMS_PROVIDER="",
    )
    return env


def _worker(env: dict[str, str], *extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            HUITOUKE,
            "worker",
            "--channel",
            "webhook",
            "--batch",
            "250",
            "--concurrency",
            "8",
            "--lease-seconds",
            str(LEASE),
            "--max-attempts",
            "1000",
            "--idle",
            "0.2",
            *extra,
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _wait_for_traffic(sink: Sink, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    seen = len(sink.requests)
    end = time.monotonic() + timeout
    while len(sink.requests) == seen and proc.poll() is None and time.monotonic() < end:
        time.sleep(0.02)


def _pending(store: Store) -> int:
    with store.connect() as conn:
        return int(
            conn.execute(
                select(func.count()).select_from(outbox).where(outbox.c.status != "sent")
            ).scalar_one()
        )


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_killed_worker_delivers_every_message_exactly_once(store: Store, sink: Sink) -> None:
    rng = random.Random(20261123)
    add_customers(
        store, [{"customer_id": f"c{i:05d}", "consent": {"webhook": True}} for i in range(N)]
    )
    now = datetime.now(UTC) - timedelta(minutes=1)
    with store.begin() as conn:
        counts = enqueue(
            conn,
            [
                OutboxMessage(
                    journey_id="reliability",
                    customer_id=f"c{i:05d}",
                    step_id="notice",
                    occurrence="1",
                    channel="webhook",
                    kind="transactional",
                    rendered={"text": f"订单 {i} 已发货"},
                )
                for i in range(N)
            ],
            now=now,
        )
    assert counts.inserted == N
    env = _env(store, sink)
    kills = 0
    deadline = time.monotonic() + 420
    while time.monotonic() < deadline and kills < 8:
        proc = _worker(env)
        # Kill mid-dispatch: once this worker has started sending, at a random moment.
        _wait_for_traffic(sink, proc)
        time.sleep(rng.uniform(0.0, 1.2))
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        kills += 1
        if _pending(store) == 0:
            break
    # Let the last victim's leases run out, then a worker that is allowed to finish.
    time.sleep(LEASE + 0.5)
    final = _worker(env, "--once")
    assert final.wait(300) == 0
    assert kills >= 3
    expected = {
        OutboxMessage("reliability", f"c{i:05d}", "notice", "1", "webhook", {}).message_id
        for i in range(N)
    }
    assert sink.bad_signatures == 0
    assert sink.delivered_ids() == expected  # every message arrived …
    assert (
        len(sink.accepted) == N
    )  # … and was processed once: the sink de-duplicates by Idempotency-Key
    redelivered = sum(c - 1 for c in sink.arrivals.values())
    print(f"\n{kills} kills, {redelivered} re-sends after crashes absorbed by the Idempotency-Key")
    with store.connect() as conn:
        by_status = dict(
            conn.execute(select(outbox.c.status, func.count()).group_by(outbox.c.status)).all()
        )
        logged = conn.execute(select(func.count()).select_from(contact_log)).scalar_one()
    assert by_status == {"sent": N}
    assert logged == N  # one contact per message, however many times it was claimed


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_sigterm_finishes_the_round_in_flight(store: Store, sink: Sink) -> None:
    add_customers(
        store, [{"customer_id": f"c{i}", "consent": {"webhook": True}} for i in range(300)]
    )
    with store.begin() as conn:
        enqueue(
            conn,
            [
                OutboxMessage(
                    "t", f"c{i}", "s", "1", "webhook", {"text": "hi"}, kind="transactional"
                )
                for i in range(300)
            ],
        )
    proc = _worker(_env(store, sink), "--rate", "200")
    _wait_for_traffic(sink, proc)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) == 0
    with store.connect() as conn:
        sending = conn.execute(
            select(func.count()).select_from(outbox).where(outbox.c.status == "sending")
        ).scalar_one()
    assert sending == 0  # nothing left half-done: the round was recorded before exiting
