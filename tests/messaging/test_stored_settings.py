"""Settings stored over the environment (``huitouke.app.settings``), on SQLite and PostgreSQL:
a stored channel and stored contact rules take effect in the real dispatcher built by
``make_dispatcher`` and in ``huitouke worker``; secrets are sealed, refused without keys;
bad values are refused naming the field; every change is audited."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from msg_support import WEBHOOK_SECRET, Sink, add_customers
from sqlalchemy import select

from huitouke.app.settings import clear_settings, save_settings, settings_view
from huitouke.core.secretbox import new_key
from huitouke.errors import InputError
from huitouke.messaging.bootstrap import make_dispatcher
from huitouke.messaging.outbox import OutboxMessage, enqueue
from huitouke.messaging.tables import outbox
from huitouke.settings import Settings
from huitouke.store.audit import list_audit
from huitouke.store.db import Store
from huitouke.store.stored_settings import effective_settings, settings_overrides

NOON = datetime(2026, 5, 6, 4, 0, tzinfo=UTC)  # 12:00 in Shanghai
KEY = new_key()


def base(**kw: Any) -> Settings:
    values: dict[str, Any] = {"timezone": "Asia/Shanghai", "encryption_keys": KEY}
    values.update(kw)
    return Settings(**values)


def msg(cid: str, step: str = "s1") -> OutboxMessage:
    return OutboxMessage(
        journey_id="replenish", customer_id=cid, step_id=step, occurrence="2026-05-06",
        channel="webhook", rendered={"text": f"hello {cid}"}, planned_at=NOON - timedelta(hours=1),
    )  # fmt: skip


def test_a_stored_webhook_and_stored_caps_take_effect_in_the_dispatcher(
    store: Store, sink: Sink
) -> None:
    env = base(contact_caps="")  # the environment: no webhook, no caps
    assert effective_settings(store, env) is env
    changed = save_settings(
        store, env,
        {"webhook_url": sink.url, "webhook_secret": WEBHOOK_SECRET,
         "contact_caps": "marketing:webhook:1/3d", "quiet_hours_start": "23:00",
         "quiet_hours_end": "06:00"},
        actor="ana", now=NOON,
    )  # fmt: skip
    assert set(changed) == {
        "webhook_url", "webhook_secret", "contact_caps", "quiet_hours_start", "quiet_hours_end"
    }  # fmt: skip
    # sealed at rest: neither secret is in the table in clear
    with store.connect() as conn:
        rows = {r.name: r for r in conn.execute(select(settings_overrides))}
    assert rows["webhook_url"].sealed and sink.url not in rows["webhook_url"].value
    assert WEBHOOK_SECRET not in rows["webhook_secret"].value
    assert rows["contact_caps"].value == "marketing:webhook:1/3d"

    add_customers(store, [{"customer_id": c, "consent": {"webhook": True}} for c in ("a", "b")])
    with store.begin() as conn:
        enqueue(conn, [msg("a"), msg("a", step="s2"), msg("b")], now=NOON)
    d = make_dispatcher(env, store, clock=lambda: NOON)
    try:
        stats = d.drain()
    finally:
        d.close()
    # the stored channel sent (the sink checks the stored HMAC secret) and the stored cap
    # dropped the second marketing message to "a"
    assert sink.bad_signatures == 0
    assert stats.sent == 2 and stats.reasons == {"cap.channel": 1}
    assert len(sink.arrivals) == 2
    eff = effective_settings(store, env)
    assert eff.quiet_hours_start == "23:00" and eff.webhook_url.get_secret_value() == sink.url


def test_huitouke_worker_sends_through_a_stored_channel(
    store_url: str, store: Store, sink: Sink
) -> None:
    env = base()
    save_settings(
        store, env, {"webhook_url": sink.url, "webhook_secret": WEBHOOK_SECRET},
        actor="ana", now=NOON,
    )  # fmt: skip
    add_customers(store, [{"customer_id": "a", "consent": {"webhook": True}}])
    now = datetime.now(UTC)
    with store.begin() as conn:
        enqueue(
            conn,
            [OutboxMessage(journey_id="j", customer_id="a", step_id="s", occurrence="o",
                           channel="webhook", rendered={"text": "hi"}, kind="transactional",
                           planned_at=now)],
            now=now,
        )  # fmt: skip
    env_vars = {k: v for k, v in os.environ.items() if not k.startswith("HUITOUKE_")}
    done = subprocess.run(
        [sys.executable, "-m", "huitouke", "worker", "--once"],
        capture_output=True, text=True, timeout=300,
        env={**env_vars, "HUITOUKE_DATABASE_URL": store_url, "HUITOUKE_ENCRYPTION_KEYS": KEY,
             "HUITOUKE_QUIET_HOURS_START": "00:00", "HUITOUKE_QUIET_HOURS_END": "00:00"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert len(sink.arrivals) == 1 and sink.bad_signatures == 0
    with store.connect() as conn:
        assert conn.execute(select(outbox.c.status)).scalar_one() == "sent"


def test_a_secret_is_refused_without_encryption_keys_and_nothing_is_stored(store: Store) -> None:
    env = base(encryption_keys="")
    with pytest.raises(InputError) as err:
        save_settings(
            store, env, {"smtp_host": "mail.example.com", "smtp_password": "pw-123456"},
            actor="ana", now=NOON,
        )  # fmt: skip
    assert err.value.code == "secret.no_key"
    assert "HUITOUKE_ENCRYPTION_KEYS" in err.value.message
    with store.connect() as conn:
        assert conn.execute(select(settings_overrides)).first() is None
    # a setting without a secret is stored without keys
    assert save_settings(store, env, {"smtp_host": "mail.example.com"}, actor="ana", now=NOON)


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"smtp_port": "not-a-port"}, "smtp_port"),
        ({"smtp_starttls": "perhaps"}, "smtp_starttls"),
        ({"contact_caps": "marketing:sms:often"}, "contact_caps"),
        ({"quiet_hours_start": "25:99"}, "quiet_hours_start"),
        ({"sms_provider": "pigeon"}, "sms_provider"),
        ({"sms_price_per_segment": "cheap"}, "sms_price_per_segment"),
        ({"database_url": "sqlite:///elsewhere.db"}, "database_url"),
    ],
)
def test_a_bad_value_is_refused_naming_the_field(store: Store, values, field) -> None:
    with pytest.raises(InputError) as err:
        save_settings(store, base(), values, actor="ana", now=NOON)
    assert err.value.code in ("settings.bad_value", "settings.not_editable")
    assert err.value.details["field"] == field and field in err.value.message
    with store.connect() as conn:
        assert conn.execute(select(settings_overrides)).first() is None


def test_changes_are_audited_and_a_secret_never_is(store: Store) -> None:
    env = base(smtp_host="env.example.com")
    save_settings(
        store, env, {"smtp_host": "stored.example.com", "smtp_password": "hunter2-secret"},
        actor="ana", now=NOON,
    )  # fmt: skip
    # the same value again changes nothing; the environment's value removes the stored one
    assert (
        save_settings(store, env, {"smtp_host": "stored.example.com"}, actor="ana", now=NOON) == []
    )
    assert save_settings(store, env, {"smtp_host": "env.example.com"}, actor="otto", now=NOON) == [
        "smtp_host"
    ]
    assert clear_settings(store, env, ["smtp_password"], actor="ana", now=NOON) == ["smtp_password"]
    with store.connect() as conn:
        entries = list_audit(conn, changes_only=True)
    seen = [(e.actor, e.action, e.target) for e in reversed(entries)]
    assert seen == [
        ("ana", "settings.set", "smtp_host"),
        ("ana", "settings.set", "smtp_password"),
        ("otto", "settings.clear", "smtp_host"),
        ("ana", "settings.clear", "smtp_password"),
    ]
    assert all("hunter2" not in str(e.detail) for e in entries)
    assert entries[-1].detail == {"from": "env.example.com", "to": "stored.example.com"}
    view = {v.name: v for v in settings_view(store, env)}
    assert (
        view["smtp_host"].source == "environment" and view["smtp_host"].value == "env.example.com"
    )
    assert not view["smtp_password"].is_set and view["smtp_password"].value == ""


def test_a_stored_secret_sealed_for_one_setting_opens_for_no_other(store: Store) -> None:
    env = base()
    save_settings(store, env, {"smtp_password": "pw-abcdef"}, actor="ana", now=NOON)
    with store.begin() as conn:
        sealed = conn.execute(
            select(settings_overrides.c.value).where(settings_overrides.c.name == "smtp_password")
        ).scalar_one()
        conn.execute(
            settings_overrides.insert().values(
                name="webhook_secret", value=sealed, sealed=True, updated_at=NOON, updated_by="eve"
            )
        )
    with pytest.raises(InputError) as err:
        effective_settings(store, env)
    assert err.value.code == "secret.unreadable"


def test_a_stored_shop_name_counts_when_a_journey_is_enabled(store_url: str, store: Store) -> None:
    env_vars = {k: v for k, v in os.environ.items() if not k.startswith("HUITOUKE_")}
    env = {**env_vars, "HUITOUKE_DATABASE_URL": store_url, "HUITOUKE_LANG": "en"}

    def enable() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "huitouke", "journeys", "enable", "second_order"],
            capture_output=True, text=True, timeout=300, env=env,
        )  # fmt: skip

    first = enable()
    assert first.returncode == 0, first.stderr
    assert "HUITOUKE_SMS_SIGN_NAME" in first.stderr
    save_settings(store, base(), {"sms_sign_name": "回头客小店"}, actor="ana", now=NOON)
    again = enable()
    assert again.returncode == 0, again.stderr
    assert "warning" not in again.stderr and "SMS_SIGN_NAME" not in again.stderr
