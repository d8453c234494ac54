"""The messaging endpoints: unsubscribe page and one-click, inbound SMS "T", receipts."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi.testclient import TestClient
from msg_support import add_customers
from sqlalchemy import select

from huitouke.messaging.api import create_messaging_app
from huitouke.messaging.bootstrap import inbound_token
from huitouke.messaging.consent import load_customer_contexts
from huitouke.messaging.outbox import OutboxMessage, enqueue
from huitouke.messaging.tables import consent_events, delivery_receipts, outbox
from huitouke.messaging.tokens import make_unsubscribe_token
from huitouke.settings import Settings
from huitouke.store.db import Store

NOW = datetime(2026, 5, 6, 4, 0, tzinfo=UTC)
SETTINGS = Settings(secret_key="api-test-secret", database_url="sqlite:///unused.db")


def client(store: Store) -> TestClient:
    return TestClient(create_messaging_app(SETTINGS, store, clock=lambda: NOW))


def test_unsubscribe_page_then_one_click(store: Store) -> None:
    add_customers(store, [{"customer_id": "c1", "consent": {"email": True, "sms": True}}])
    c = client(store)
    tok = make_unsubscribe_token(
        "c1", "email", SETTINGS.secret_key.get_secret_value(), message_id="m1"
    )
    page = c.get(f"/u/{tok}")
    assert page.status_code == 200
    assert (
        "确认不再接收来自本店的邮件消息" in page.text
        and "Stop receiving email messages" in page.text
    )
    with store.connect() as conn:
        assert (
            load_customer_contexts(conn, ["c1"])["c1"].unsubscribed == frozenset()
        )  # GET changes nothing
    done = c.post(
        f"/u/{tok}",
        content="List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert done.status_code == 200 and "已退订" in done.text
    c.post(f"/u/{tok}", content="List-Unsubscribe=One-Click")  # a second click adds nothing
    with store.connect() as conn:
        ctx = load_customer_contexts(conn, ["c1"])["c1"]
        events = conn.execute(select(consent_events)).all()
    assert ctx.unsubscribed == frozenset({"email"}) and len(events) == 1
    assert events[0].source == "list_unsubscribe" and events[0].detail == {"message_id": "m1"}
    # The page's checkbox leaves every channel.
    c.post(f"/u/{tok}", content="scope=all")
    with store.connect() as conn:
        assert load_customer_contexts(conn, ["c1"])["c1"].unsubscribed == frozenset({"email", "*"})


def test_bad_unsubscribe_token(store: Store) -> None:
    r = client(store).post("/u/not-a-token")
    assert r.status_code == 400 and "退订链接无效" in r.text and "invalid" in r.text


def test_inbound_sms_t_unsubscribes_the_sender(store: Store) -> None:
    add_customers(
        store,
        [
            {"customer_id": "c1", "phone": "138 0000 0001", "consent": {"sms": True}},
            {"customer_id": "c2", "phone": "13800000002", "consent": {"sms": True}},
        ],
    )
    c = client(store)
    tok = inbound_token(SETTINGS)
    assert c.post("/v1/inbound/sms?token=wrong", json=[]).status_code == 401
    aliyun = [
        {
            "phone_number": "8613800000001",
            "content": "TD",
            "send_time": "2026-05-06 12:00:00",
            "sign_name": "回头客",
        },
        {"phone_number": "13800000002", "content": "好的,谢谢", "send_time": "2026-05-06 12:00:01"},
    ]
    r = c.post(f"/v1/inbound/sms?token={tok}", json=aliyun)
    assert r.status_code == 200 and r.json()["code"] == 0 and r.json()["unsubscribed"] == 1
    tencent = {
        "mobile": "13800000002",
        "nationcode": "86",
        "text": " 退订 ",
        "sign": "回头客",
        "time": 1778040000,
    }
    assert c.post(f"/v1/inbound/sms?token={tok}", json=tencent).json()["result"] == 0
    with store.connect() as conn:
        ctx = load_customer_contexts(conn, ["c1", "c2"])
    assert ctx["c1"].unsubscribed == frozenset({"sms"}) and ctx["c2"].unsubscribed == frozenset(
        {"sms"}
    )
    # A form-encoded generic reply works too.
    r = c.post(
        f"/v1/inbound/sms?token={tok}",
        content="from=13800000003&text=T",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert r.json()["unsubscribed"] == 1


def test_receipts_mark_delivery(store: Store) -> None:
    m1 = OutboxMessage(
        journey_id="j",
        customer_id="c1",
        step_id="s",
        occurrence="1",
        channel="sms",
        rendered={"text": "hi"},
    )
    m2 = OutboxMessage(
        journey_id="j",
        customer_id="c2",
        step_id="s",
        occurrence="1",
        channel="sms",
        rendered={"text": "hi"},
    )
    with store.begin() as conn:
        enqueue(conn, [m1, m2], now=NOW)
        conn.execute(
            outbox.update()
            .where(outbox.c.message_id == m2.message_id)
            .values(provider_message_id="sid-2", status="sent")
        )
    c = client(store)
    tok = inbound_token(SETTINGS)
    report = [
        {
            "phone_number": "138",
            "success": True,
            "err_code": "DELIVERED",
            "biz_id": "b1",
            "out_id": m1.message_id,
        }
    ]
    assert c.post(f"/v1/receipts/aliyun?token={tok}", json=report).json()["matched"] == 1
    tencent = [
        {"mobile": "138", "report_status": "FAIL", "errmsg": "MK:0001", "sid": "sid-2"},
        {"sid": "nobody", "report_status": "SUCCESS"},
    ]
    assert c.post(f"/v1/receipts/tencent?token={tok}", json=tencent).json() | {} == {
        "code": 0,
        "msg": "成功",
        "result": 0,
        "errmsg": "OK",
        "matched": 1,
        "unmatched": 1,
    }
    assert c.post(f"/v1/receipts/carrier-pigeon?token={tok}", json=[]).status_code == 422
    with store.connect() as conn:
        rows = {r.message_id: r for r in conn.execute(select(outbox))}
        rec = conn.execute(select(delivery_receipts.c.status, delivery_receipts.c.message_id)).all()
    assert rows[m1.message_id].delivered_at == NOW and rows[m2.message_id].delivered_at is None
    assert sorted((s, m is None) for s, m in rec) == [
        ("delivered", False),
        ("delivered", True),
        ("failed", False),
    ]
