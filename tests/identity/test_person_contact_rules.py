"""The contact rules count per person: caps, consent changes, quiet hours and the last order
of every account merged into one person count together, through the dispatcher and a
journey run (SQLite and PostgreSQL); an unmerge gives each account its own counting back."""

from __future__ import annotations

import json
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path

from sqlalchemy import select

from huitouke.identity import service as identity
from huitouke.journeys.loader import builtin_journeys
from huitouke.journeys.service import run_journeys
from huitouke.messaging.channels.file import FileChannel
from huitouke.messaging.consent import load_customer_contexts, unsubscribe
from huitouke.messaging.dispatcher import Dispatcher
from huitouke.messaging.outbox import OutboxMessage, enqueue
from huitouke.messaging.rules import ContactPolicy, parse_caps
from huitouke.messaging.tables import outbox
from huitouke.settings import Settings
from huitouke.store.db import Store
from huitouke.store.tables import customers, orders

# 02:00 UTC: 10:00 in Shanghai (no quiet hours), 21:00 the day before in New York (quiet)
NOW = datetime(2026, 11, 10, 2, 0, tzinfo=UTC)
CAP = ContactPolicy(
    caps=parse_caps("marketing:sms:1/3d"),
    quiet_start=time(0),
    quiet_end=time(0),
    default_zone="Asia/Shanghai",
)


def _customer(store: Store, cid: str, *, day: int, timezone: str | None = None) -> None:
    with store.begin() as conn:
        conn.execute(
            customers.insert().values(
                customer_id=cid, phone=None, tags=[], attributes={}, consent={"sms": True},
                timezone=timezone, created_at=datetime(2026, 1, day, tzinfo=UTC), updated_at=NOW,
            )
        )  # fmt: skip


def _send(
    store: Store, tmp_path: Path, occurrence: str, ids: list[str], policy: ContactPolicy = CAP,
    *, at: datetime = NOW, suppress_if_ordered: bool = False,
) -> dict[str, tuple[str, str | None]]:  # fmt: skip
    """Enqueue one marketing SMS to each of ``ids`` and dispatch: status and reason each."""
    with store.begin() as conn:
        enqueue(
            conn,
            [
                OutboxMessage("promo", cid, "s1", occurrence, "sms", {"text": "hi"},
                              recipient="x", planned_at=at - timedelta(hours=1),
                              suppress_if_ordered=suppress_if_ordered)
                for cid in ids
            ],
            now=at,
        )  # fmt: skip
    sent = tmp_path / f"sent-{occurrence}.jsonl"
    d = Dispatcher(store, {"sms": FileChannel(sent, name="sms")}, lambda: at, policy=policy)
    try:
        d.drain()
    finally:
        d.close()
    with store.connect() as conn:
        rows = conn.execute(
            select(outbox.c.customer_id, outbox.c.status, outbox.c.reason_code).where(
                outbox.c.occurrence == occurrence
            )
        ).all()
    out = {r.customer_id: (r.status, r.reason_code) for r in rows}
    lines = sent.read_text("utf-8").splitlines() if sent.exists() else []
    # what the channel wrote is exactly what the outbox says went out
    assert sorted(json.loads(x)["customer_id"] for x in lines) == sorted(
        c for c, (s, _) in out.items() if s == "sent"
    )
    return out


def _merge(store: Store, *ids: str) -> None:
    with store.begin() as conn:
        identity.merge(conn, list(ids), actor="t", reason="same phone", now=NOW)


def _unmerge(store: Store, cid: str) -> None:
    with store.begin() as conn:
        identity.unmerge(conn, cid, actor="t", reason="two people", now=NOW)


def test_a_merged_person_gets_the_cap_once_and_an_unmerge_restores_per_account(
    store: Store, tmp_path: Path
) -> None:
    _customer(store, "shopify_1", day=1)
    _customer(store, "youzan_1", day=2)
    _customer(store, "other", day=3)
    _merge(store, "shopify_1", "youzan_1")
    first = _send(store, tmp_path, "1", ["shopify_1", "youzan_1", "other"])
    # one SMS for the person (its two accounts), one for the other customer
    assert sorted(first.values()) == [("sent", None), ("sent", None), ("suppressed", "cap.channel")]
    assert first["other"] == ("sent", None)
    # a second message to either account of the person is capped: the person had its one
    again = _send(store, tmp_path, "2", ["shopify_1", "youzan_1"])
    assert again == {
        "shopify_1": ("suppressed", "cap.channel"),
        "youzan_1": ("suppressed", "cap.channel"),
    }
    # taken apart, each account counts its own: the one that got nothing may get one
    _unmerge(store, "youzan_1")
    apart = _send(store, tmp_path, "3", ["shopify_1", "youzan_1"])
    empty = next(c for c in ("shopify_1", "youzan_1") if first[c] != ("sent", None))
    full = "youzan_1" if empty == "shopify_1" else "shopify_1"
    assert apart == {empty: ("sent", None), full: ("suppressed", "cap.channel")}


def test_an_unsubscribe_on_one_account_stops_the_person_until_unmerged(
    store: Store, tmp_path: Path
) -> None:
    no_caps = ContactPolicy(quiet_start=time(0), quiet_end=time(0), default_zone="Asia/Shanghai")
    _customer(store, "tb_nick", day=1)
    _customer(store, "yz_phone", day=2)
    _merge(store, "tb_nick", "yz_phone")
    with store.begin() as conn:
        unsubscribe(conn, "yz_phone", "sms", source="sms_reply", at=NOW - timedelta(days=1))
        ctx = load_customer_contexts(conn, ["tb_nick", "yz_phone"])
        apart = load_customer_contexts(conn, ["tb_nick"], per_person=False)
    assert not ctx["tb_nick"].allows("sms") and not ctx["yz_phone"].allows("sms")
    assert apart["tb_nick"].allows("sms")  # the account's own view is kept
    out = _send(store, tmp_path, "u1", ["tb_nick", "yz_phone"], no_caps)
    assert out == {
        "tb_nick": ("suppressed", "unsubscribed"),
        "yz_phone": ("suppressed", "unsubscribed"),
    }
    _unmerge(store, "yz_phone")
    out = _send(store, tmp_path, "u2", ["tb_nick", "yz_phone"], no_caps)
    assert out == {"tb_nick": ("sent", None), "yz_phone": ("suppressed", "unsubscribed")}


def test_quiet_hours_and_the_last_order_are_the_persons(store: Store, tmp_path: Path) -> None:
    quiet = ContactPolicy(default_zone="Asia/Shanghai")  # 21:00–08:00
    _customer(store, "sh_ny", day=1, timezone="America/New_York")
    _customer(store, "yz_nozone", day=2)
    _merge(store, "sh_ny", "yz_nozone")
    # an account without a zone is reached in its person's: 21:00 in New York is quiet
    out = _send(store, tmp_path, "q1", ["yz_nozone"], quiet)
    assert out == {"yz_nozone": ("queued", "quiet_hours")}
    with store.begin() as conn:  # an order on the other account after the message was planned
        conn.execute(
            orders.insert().values(
                order_id="o1", customer_id="sh_ny", ordered_at=NOW - timedelta(minutes=30),
                amount=Decimal("10"), currency="CNY", status="paid", refunded_amount=Decimal(0),
                updated_at=NOW,
            )
        )  # fmt: skip
    no_quiet = ContactPolicy(quiet_start=time(0), quiet_end=time(0), default_zone="Asia/Shanghai")
    out = _send(store, tmp_path, "q2", ["yz_nozone"], no_quiet, suppress_if_ordered=True)
    assert out == {"yz_nozone": ("suppressed", "suppressed.ordered")}
    _unmerge(store, "yz_nozone")
    out = _send(store, tmp_path, "q3", ["yz_nozone"], quiet, suppress_if_ordered=True)
    assert out == {"yz_nozone": ("sent", None)}  # its own zone (Shanghai, 10:00), no order


def test_a_journey_counts_what_the_persons_other_account_was_sent(
    store: Store, tmp_path: Path
) -> None:
    # a Youzan account got a marketing SMS today; its person (primary: the Taobao account)
    # bought once and is due the second-order journey's SMS: the person's SMS cap is spent
    _customer(store, "tb_1", day=1)
    _customer(store, "yz_1", day=2)
    with store.begin() as conn:
        conn.execute(
            orders.insert().values(
                order_id="o1", customer_id="tb_1", ordered_at=datetime(2026, 11, 3, 4, tzinfo=UTC),
                amount=Decimal("88"), currency="CNY", status="paid", refunded_amount=Decimal(0),
                updated_at=NOW,
            )
        )  # fmt: skip
        conn.execute(customers.update().values(phone="13800138000"))
    settings = Settings(
        holdout_salt="t", sms_sign_name="小店", contact_caps="marketing:sms:1/3d",
        timezone="Asia/Shanghai",
    )  # fmt: skip
    journey = next(j for j in builtin_journeys() if j.id == "second_order")
    journey = journey.model_copy(update={"holdout": 0.0})
    as_of = NOW.date()

    def planned() -> dict[str, str]:
        res = run_journeys(store, [journey], as_of, settings=settings, dry_run=True, now=NOW)
        return {r.customer_id: r.reason_code for r in res.plan.rows.itertuples()}

    assert planned() == {"tb_1": "planned"}
    _send(store, tmp_path, "j1", ["yz_1"], at=NOW - timedelta(hours=2))
    assert planned() == {"tb_1": "planned"}  # two accounts: the Youzan one's SMS is its own
    _merge(store, "tb_1", "yz_1")
    assert planned() == {"tb_1": "cap.channel"}
    _unmerge(store, "yz_1")
    assert planned() == {"tb_1": "planned"}
