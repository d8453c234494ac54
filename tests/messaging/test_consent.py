"""Consent lives in the consent events: after any door changes it, the REST API, the CLI and
the dispatcher agree on it (SQLite and PostgreSQL, through ``create_app()`` and the CLI)."""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta

import pytest
from msg_support import WEBHOOK_SECRET, Sink
from sqlalchemy import select
from typer.testing import CliRunner

from huitouke.app.consent import consent_view, set_consent
from huitouke.cli.main import app as cli_app
from huitouke.messaging.channels.http import RetryPolicy
from huitouke.messaging.channels.webhook import WebhookChannel
from huitouke.messaging.consent import unsubscribe
from huitouke.messaging.dispatcher import Dispatcher
from huitouke.messaging.outbox import OutboxMessage, enqueue
from huitouke.messaging.rules import ContactPolicy
from huitouke.messaging.tables import consent_events, outbox
from huitouke.service.apikeys import create_api_key
from huitouke.settings import Settings
from huitouke.store.db import Store

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

CHANNELS = ("sms", "email", "webhook")
PROFILE = {"name": "王五", "consent": {"sms": True, "email": True, "webhook": True}}


@pytest.fixture
def api(store: Store) -> Iterator[tuple[TestClient, dict[str, str]]]:
    from huitouke.service import create_app

    with store.begin() as conn:
        key = create_api_key(conn, scope="operator", name="t", now=datetime.now(UTC))[1]
    app = create_app(Settings(database_url=store.url, lang="en"), store)
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c, {"Authorization": f"Bearer {key}"}


def _dispatched(store: Store, sink: Sink, occurrence: str) -> dict[str, bool]:
    """Send one message on every channel; which ones the dispatcher let through."""
    now = datetime.now(UTC)
    with store.begin() as conn:
        enqueue(
            conn,
            [
                OutboxMessage("consent", "c1", ch, occurrence, ch, {"text": "hi"}, planned_at=now)
                for ch in CHANNELS
            ],
            now=now,
        )
    chan = WebhookChannel(sink.url, WEBHOOK_SECRET, retry=RetryPolicy(retries=1, base=0.01))
    policy = ContactPolicy(quiet_start=time(0), quiet_end=time(0), default_zone="Asia/Shanghai")
    d = Dispatcher(store, {ch: chan for ch in CHANNELS}, policy=policy)
    try:
        d.drain()
    finally:
        d.close()
    with store.connect() as conn:
        rows = conn.execute(
            select(outbox.c.channel, outbox.c.status, outbox.c.reason_code).where(
                outbox.c.occurrence == occurrence
            )
        ).all()
    assert {r.status for r in rows} <= {"sent", "suppressed"}
    assert {r.reason_code for r in rows if r.status == "suppressed"} <= {
        "unsubscribed",
        "consent.missing",
    }
    return {r.channel: r.status == "sent" for r in rows}


def test_put_consent_then_get_shows_what_the_dispatcher_applies(
    store: Store, sink: Sink, api: tuple[TestClient, dict[str, str]]
) -> None:
    client, h = api
    assert client.put("/v1/customers/c1", json=PROFILE, headers=h).status_code == 201
    with store.begin() as conn:  # the customer clicks "unsubscribe from everything"
        unsubscribe(conn, "c1", "*", source="email_link", at=datetime.now(UTC) - timedelta(hours=1))

    get = client.get("/v1/customers/c1", headers=h).json()["consent"]
    assert get == {"sms": False, "email": False, "webhook": False}
    assert get == _dispatched(store, sink, "1")

    # the customer asks to get SMS again: an explicit opt-in restores that channel only
    put = client.put("/v1/customers/c1/consent", json={"consent": {"sms": True}}, headers=h)
    assert put.status_code == 200, put.text
    get = client.get("/v1/customers/c1", headers=h).json()["consent"]
    assert put.json()["consent"] == get == {"sms": True, "email": False, "webhook": False}
    assert get == _dispatched(store, sink, "2")

    # a profile sync (the shop's records say yes everywhere) does not override the unsubscribe
    assert client.put("/v1/customers/c1", json=PROFILE, headers=h).status_code == 200
    put = client.put(
        "/v1/customers/c1/consent", json={"consent": {"webhook": False}}, headers=h
    ).json()["consent"]
    get = client.get("/v1/customers/c1", headers=h).json()["consent"]
    assert put == get == {"sms": True, "email": False, "webhook": False}
    assert get == _dispatched(store, sink, "3")

    # withdrawing is recorded too, with its source
    client.put("/v1/customers/c1/consent", json={"consent": {"sms": False}}, headers=h)
    get = client.get("/v1/customers/c1", headers=h).json()["consent"]
    assert get == {"sms": False, "email": False, "webhook": False}
    assert get == _dispatched(store, sink, "4")
    with store.connect() as conn:
        events = conn.execute(
            select(consent_events.c.channel, consent_events.c.action, consent_events.c.source)
            .where(consent_events.c.customer_id == "c1")
            .order_by(consent_events.c.event_id)
        ).all()
    assert [tuple(e) for e in events] == [
        ("*", "unsubscribed", "email_link"),
        ("sms", "granted", "api"),
        ("sms", "revoked", "api"),
    ]


def test_an_automated_source_never_lifts_an_unsubscribe(
    store: Store, api: tuple[TestClient, dict[str, str]]
) -> None:
    client, h = api
    client.put("/v1/customers/c1", json=PROFILE, headers=h)
    now = datetime.now(UTC)
    with store.begin() as conn:
        unsubscribe(conn, "c1", "email", source="email_link", at=now - timedelta(minutes=5))
        change = set_consent(
            conn, "c1", {"email": True, "sms": True}, source="import", at=now, explicit=False
        )
        assert change.kept_unsubscribed == ("email",)
        assert change.recorded == {}  # sms already applied: nothing to record
        assert consent_view(conn, "c1") == {"sms": True, "email": False, "webhook": True}
    assert client.get("/v1/customers/c1", headers=h).json()["consent"]["email"] is False


def test_cli_profile_consent_records_an_event_and_prints_what_applies(
    store: Store, api: tuple[TestClient, dict[str, str]]
) -> None:
    client, h = api
    client.put("/v1/customers/c1", json=PROFILE, headers=h)
    with store.begin() as conn:
        unsubscribe(
            conn, "c1", "sms", source="sms_reply", at=datetime.now(UTC) - timedelta(hours=1)
        )
    runner = CliRunner()
    base = ["--database-url", store.url]
    r = runner.invoke(cli_app, ["profile", "consent", "c1", "email=off", *base])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output) == {"sms": False, "email": False, "webhook": True}
    r = runner.invoke(cli_app, ["profile", "set", "c1", "--consent", "sms=on", *base])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["consent"] == {"sms": True, "email": False, "webhook": True}
    assert client.get("/v1/customers/c1", headers=h).json()["consent"] == {
        "sms": True,
        "email": False,
        "webhook": True,
    }


def test_consent_for_an_unknown_customer_is_not_found(
    api: tuple[TestClient, dict[str, str]],
) -> None:
    client, h = api
    r = client.put("/v1/customers/nobody/consent", json={"consent": {"sms": True}}, headers=h)
    assert r.status_code == 404 and r.json()["error"]["code"] == "customer.not_found"
