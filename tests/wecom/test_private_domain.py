"""The private-domain playbook on WeCom, end to end against a local fake of WeCom's API:
a channel live code, a buyer adding the staff member, the callback verified and decrypted,
the contact linked to the customer who bought (by phone or union id), tagged here and in
WeCom, greeted with a welcome message whose survey answers become profile attributes and
tags; deletes revoke the channel's consent; the ``wecom_contact`` channel sends 1:1."""

from __future__ import annotations

import base64
import contextlib
import io
import json
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime
from datetime import date as date_
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select

from huitouke.app.consent import consent_view
from huitouke.cli.main import main
from huitouke.identity.keys import identity_secret
from huitouke.identity.service import index_keys
from huitouke.messaging.channels.base import OutgoingMessage, PermanentSendError
from huitouke.messaging.channels.wecom_api import WeComClient
from huitouke.messaging.channels.wecom_contact import WeComContactChannel
from huitouke.settings import Settings
from huitouke.store.db import Store
from huitouke.store.profiles import attributes_for
from huitouke.store.tables import customers
from huitouke.wecom.crypto import WeComCrypto, signature
from huitouke.wecom.service import add_code
from huitouke.wecom.tables import wecom_contacts, wecom_events

from .fake_wecom import FakeWeCom, serve

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

NOW = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
AES_KEY = base64.b64encode(bytes(range(32))).decode().rstrip("=")
SURVEY = [
    {"key": "skin", "label": {"zh": "肤质", "en": "Skin type"},
     "choices": ["dry", "oily", "combination"]},
]  # fmt: skip


@pytest.fixture
def fake() -> Iterator[FakeWeCom]:
    with serve(FakeWeCom()) as f:
        yield f


def _settings(store_url: str, fake: FakeWeCom) -> Settings:
    return Settings(
        database_url=store_url, lang="zh", secret_key="s" * 32, public_base_url="http://testserver",
        wecom_corp_id=fake.corp_id, wecom_contact_secret=fake.secret,
        wecom_callback_token="cbtoken", wecom_encoding_aes_key=AES_KEY,
        wecom_api_base_url=fake.base_url,
    )  # fmt: skip


def _event(change: str, ext: str, *, user: str = "staff1", state: str | None = None,
           welcome: str | None = None, at: int = 1730000000) -> str:  # fmt: skip
    parts = [
        "<xml><ToUserName><![CDATA[ww-test-corp]]></ToUserName>",
        "<FromUserName><![CDATA[sys]]></FromUserName>",
        f"<CreateTime>{at}</CreateTime><MsgType><![CDATA[event]]></MsgType>",
        "<Event><![CDATA[change_external_contact]]></Event>",
        f"<ChangeType><![CDATA[{change}]]></ChangeType>",
        f"<UserID><![CDATA[{user}]]></UserID><ExternalUserID><![CDATA[{ext}]]></ExternalUserID>",
    ]
    if state:
        parts.append(f"<State><![CDATA[{state}]]></State>")
    if welcome:
        parts.append(f"<WelcomeCode><![CDATA[{welcome}]]></WelcomeCode>")
    return "".join(parts) + "</xml>"


def _post(client: Any, plain: str, *, forge: bool = False) -> Any:
    crypto = WeComCrypto("cbtoken", AES_KEY, "ww-test-corp")
    enc = crypto.encrypt(plain)
    sig = signature("cbtoken", "1730000001", "n1", enc)
    if forge:
        sig = "0" * 40
    body = f"<xml><ToUserName><![CDATA[ww-test-corp]]></ToUserName><Encrypt><![CDATA[{enc}]]></Encrypt><AgentID>1</AgentID></xml>"
    return client.post(
        f"/v1/wecom/callback?msg_signature={sig}&timestamp=1730000001&nonce=n1",
        content=body.encode(),
    )


def _contact(ext: str, *, name: str, unionid: str | None = None, mobiles: list[str] | None = None,
             tags: list[str] | None = None, state: str = "") -> dict[str, Any]:  # fmt: skip
    external: dict[str, Any] = {"external_userid": ext, "name": name, "type": 1}
    if unionid:
        external["unionid"] = unionid
    return {
        "external_contact": external,
        "follow_user": [{
            "userid": "staff1", "remark": "", "createtime": 1730000000, "add_way": 1,
            "state": state, "remark_mobiles": mobiles or [],
            "tags": [{"group_name": "g", "tag_name": t, "tag_id": f"x{t}", "type": 1}
                     for t in tags or []],
        }],
    }  # fmt: skip


def _customer(store: Store, cid: str, **values: Any) -> dict[str, Any]:
    with store.connect() as conn:
        row = (
            conn.execute(select(customers).where(customers.c.customer_id == cid)).mappings().first()
        )
    return dict(row) if row else {}


def _seed(store: Store, settings: Settings) -> None:
    with store.begin() as conn:
        conn.execute(
            customers.insert(),
            [
                {"customer_id": "tb_ana", "phone": "13800138000", "tags": [], "attributes": {},
                 "consent": {}, "created_at": NOW, "updated_at": NOW},
                {"customer_id": "mp_bo", "phone": None, "tags": [], "attributes": {"union_id": "UNION-BO"},
                 "consent": {}, "created_at": NOW, "updated_at": NOW},
            ],
        )  # fmt: skip
        index_keys(
            conn, secret=identity_secret(settings.secret_key.get_secret_value()),
            region="CN", now=NOW,
        )  # fmt: skip


def test_buyer_adds_staff_and_is_linked_tagged_welcomed_and_surveyed(
    store_url: str, store: Store, fake: FakeWeCom
) -> None:
    from huitouke.service import create_app

    settings = _settings(store_url, fake)
    _seed(store, settings)
    client = WeComClient(fake.base_url, fake.corp_id, fake.secret)
    with store.begin() as conn:
        add_code(
            conn, client, code="insert-skin", users=["staff1"], source="package_insert",
            tags=["私域", "skincare"], welcome_zh="感谢购买!", welcome_en="Thanks!",
            survey=SURVEY, now=NOW, group_chats=["wrAfterSales1"],
        )  # fmt: skip
    assert fake.calls_to("/cgi-bin/externalcontact/add_contact_way")[0]["state"] == "insert-skin"
    # the buyer's phone as the staff member noted it, in another spelling
    fake.contacts["wmANA"] = _contact("wmANA", name="Ana", mobiles=["+86 138-0013-8000"],
                                      state="insert-skin")  # fmt: skip
    fake.contacts["wmBO"] = _contact("wmBO", name="Bo", unionid="UNION-BO")
    fake.contacts["wmNEW"] = _contact("wmNEW", name="New")
    app = create_app(settings, store)
    with TestClient(app, raise_server_exceptions=False) as http:
        r = _post(http, _event("add_external_contact", "wmANA", state="insert-skin",
                               welcome="WELCOME1"))  # fmt: skip
        assert r.status_code == 200 and r.text == "success", r.text
        ana = _customer(store, "tb_ana")
        assert ana["attributes"]["wecom_external_userid"] == "wmANA"
        assert ana["attributes"]["wecom_source"] == "package_insert"
        assert sorted(ana["tags"]) == ["skincare", "私域"]
        assert consent_view_of(store, "tb_ana")["wecom_contact"] is True
        # the welcome message went out with the survey link, and the tags exist in WeCom
        [welcome] = fake.calls_to("/cgi-bin/externalcontact/send_welcome_msg")
        assert welcome["welcome_code"] == "WELCOME1" and welcome["text"]["content"] == "感谢购买!"
        link = welcome["attachments"][0]["link"]["url"]
        group = welcome["attachments"][1]["link"]
        assert group["title"] == "加入售后群" and group["url"].endswith("group-1")
        [join] = fake.calls_to("/cgi-bin/externalcontact/groupchat/add_join_way")
        assert join["chat_id_list"] == ["wrAfterSales1"] and join["state"] == "insert-skin"
        [mark] = fake.calls_to("/cgi-bin/externalcontact/mark_tag")
        assert mark["external_userid"] == "wmANA" and len(mark["add_tag"]) == 2
        assert set(fake.tags) == {"私域", "skincare"}
        with store.connect() as conn:
            row = conn.execute(select(wecom_contacts)).mappings().one()
        assert row["linked_by"] == "phone" and row["welcome"] == "sent"

        # a redelivery changes nothing twice
        r = _post(http, _event("add_external_contact", "wmANA", state="insert-skin",
                               welcome="WELCOME1"))  # fmt: skip
        assert r.status_code == 200
        assert len(fake.calls_to("/cgi-bin/externalcontact/send_welcome_msg")) == 1
        # a forged one is refused and stores nothing
        r = _post(http, _event("add_external_contact", "wmEVIL"), forge=True)
        assert r.status_code == 401
        with store.connect() as conn:
            assert len(conn.execute(select(wecom_events)).all()) == 1

        # the survey page: zh form, a refused choice, then the answers kept
        path = urlsplit(link).path
        page = http.get(path)
        assert page.status_code == 200 and "肤质" in page.text and 'value="oily"' in page.text
        bad = http.post(path, content=b"skin=greasy",
                        headers={"Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip
        assert bad.status_code == 422 and "greasy" in bad.text
        ok = http.post(path, content=b"skin=oily",
                       headers={"Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip
        assert ok.status_code == 200
        ana = _customer(store, "tb_ana")
        assert ana["attributes"]["skin"] == "oily" and "skin:oily" in ana["tags"]
        with store.connect() as conn:  # a typed profile attribute, as audiences read them
            assert attributes_for(conn, ["tb_ana"])["tb_ana"]["skin"] == "oily"
        assert "skin:oily" in fake.tags
        assert http.get(path[:-3] + "xyz").status_code == 404
        en = http.get(path, headers={"Accept-Language": "en"})
        assert "Skin type" in en.text and "checked" in en.text

        # union id links a mini-program buyer; nobody known makes a new customer
        _post(http, _event("add_external_contact", "wmBO", at=1730000100))
        assert _customer(store, "mp_bo")["attributes"]["wecom_external_userid"] == "wmBO"
        _post(http, _event("add_external_contact", "wmNEW", at=1730000200))
        assert _customer(store, "wecom:wmNEW")["name"] == "New"

        # tags edited in WeCom come back; the customer deleting the staff member revokes
        fake.contacts["wmANA"] = _contact("wmANA", name="Ana", tags=["VIP"])
        _post(http, _event("edit_external_contact", "wmANA", at=1730000300))
        assert "VIP" in _customer(store, "tb_ana")["tags"]
        fake.contacts["wmANA"] = _contact("wmANA", name="Ana", tags=[])
        _post(http, _event("edit_external_contact", "wmANA", at=1730000400))
        tags = _customer(store, "tb_ana")["tags"]
        assert "VIP" not in tags and "skincare" in tags
        _post(http, _event("del_external_contact", "wmANA", at=1730000500))
        assert consent_view_of(store, "tb_ana")["wecom_contact"] is False


def consent_view_of(store: Store, cid: str) -> dict[str, bool]:
    with store.connect() as conn:
        return consent_view(conn, cid)


def test_url_check_with_the_published_example(store_url: str, store: Store) -> None:
    from huitouke.service import create_app

    settings = Settings(
        database_url=store_url, wecom_corp_id="wx5823bf96d3bd56c7", wecom_contact_secret="x",
        wecom_callback_token="QDG6eK",
        wecom_encoding_aes_key="jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C",
    )  # fmt: skip
    echo = "P9nAzCzyDtyTWESHep1vC5X9xho%2FqYX3Zpb4yKa9SKld1DsH3Iyt3tP3zNdtp%2B4RPcs8TgAE7OaBO%2BFZXvnaqQ%3D%3D"
    with TestClient(create_app(settings, store), raise_server_exceptions=False) as http:
        r = http.get(
            "/v1/wecom/callback?msg_signature=5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3"
            f"&timestamp=1409659589&nonce=263014780&echostr={echo}"
        )
        assert r.status_code == 200 and r.text == "1616140317555161061"
        r = http.get(
            f"/v1/wecom/callback?msg_signature={'0' * 40}&timestamp=1&nonce=2&echostr={echo}"
        )
        assert r.status_code == 401


def _cli(env: dict[str, str], monkeypatch: pytest.MonkeyPatch, *args: str, expect: int = 0) -> str:
    from huitouke.settings import get_settings

    for k, v in env.items():
        monkeypatch.setenv(k, v)
    get_settings.cache_clear()
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(list(args))
            rc = 0
        except SystemExit as exc:
            rc = int(exc.code or 0)
    get_settings.cache_clear()
    assert rc == expect, (rc, out.getvalue(), err.getvalue())
    return out.getvalue()


def test_failed_event_is_kept_with_its_reason_and_retried_from_the_cli(
    store_url: str,
    store: Store,
    fake: FakeWeCom,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    from huitouke.service import create_app

    settings = _settings(store_url, fake)
    env = {"HUITOUKE_DATABASE_URL": store_url, "HUITOUKE_WECOM_CORP_ID": fake.corp_id,
           "HUITOUKE_WECOM_CONTACT_SECRET": fake.secret, "HUITOUKE_WECOM_API_BASE_URL":
           fake.base_url, "HUITOUKE_SECRET_KEY": "s" * 32, "HUITOUKE_LANG": "en"}  # fmt: skip
    survey = tmp_path / "survey.json"
    survey.write_text(json.dumps(SURVEY), encoding="utf-8")
    out = _cli(env, monkeypatch, "wecom", "code", "add", "order-page", "--user", "staff1",
               "--source", "order_page", "--welcome-zh", "你好", "--welcome-en", "Hi", "--survey", str(survey),
               "--database-url", store_url)  # fmt: skip
    assert "order-page" in out and "cfg" in out
    _cli(env, monkeypatch, "wecom", "code", "add", "order-page", "--user", "staff1",
         "--source", "x", "--welcome-zh", "a", "--welcome-en", "b", "--database-url", store_url,
         expect=4)  # fmt: skip
    survey.write_text("[{", encoding="utf-8")
    _cli(env, monkeypatch, "wecom", "code", "add", "other", "--user", "staff1", "--source", "x",
         "--welcome-zh", "a", "--welcome-en", "b", "--survey", str(survey),
         "--database-url", store_url, expect=2)  # fmt: skip
    fake.fail_get_with = 84061
    with TestClient(create_app(settings, store), raise_server_exceptions=False) as http:
        r = _post(http, _event("add_external_contact", "wmX", state="order-page"))
        assert r.status_code == 200  # acknowledged: kept in the events with its reason
    failed = json.loads(_cli(env, monkeypatch, "wecom", "events", "--failed",
                             "--database-url", store_url))  # fmt: skip
    assert len(failed) == 1 and "wecom.84061" in failed[0]["reason"]
    fake.fail_get_with = None
    fake.contacts["wmX"] = _contact("wmX", name="X")
    out = _cli(env, monkeypatch, "wecom", "retry", str(failed[0]["event_id"]),
               "--database-url", store_url)  # fmt: skip
    assert "applied" in out
    codes = json.loads(_cli(env, monkeypatch, "wecom", "code", "list", "--database-url", store_url))
    assert codes[0]["contacts_added"] == 1 and codes[0]["contacts_kept"] == 1


def test_contact_channel_sends_a_task_from_the_staff_member(fake: FakeWeCom) -> None:
    fake.contacts["wmA"] = _contact("wmA", name="A")
    channel = WeComContactChannel(WeComClient(fake.base_url, fake.corp_id, fake.secret))
    msg = OutgoingMessage(
        message_id="m1", customer_id="c1", channel="wecom_contact", kind="marketing",
        recipient="wmA", rendered={"text": "回来看看"}, payload={"sender": "staff1"},
    )  # fmt: skip
    fake.expire_next_call = True  # the cached token expired: fetched again once
    sent = channel.send(msg)
    assert sent.provider_message_id == "msg0001"
    [task] = fake.calls_to("/cgi-bin/externalcontact/add_msg_template")
    assert task == {"chat_type": "single", "external_userid": ["wmA"], "sender": "staff1",
                    "text": {"content": "回来看看"}}  # fmt: skip
    assert fake.tokens_issued == 2
    with pytest.raises(PermanentSendError) as err:
        channel.send(OutgoingMessage(**{**msg.__dict__, "recipient": "wmGONE"}))
    assert err.value.code == "wecom.-2"
    with pytest.raises(PermanentSendError) as err:
        channel.send(OutgoingMessage(**{**msg.__dict__, "payload": {}}))
    assert err.value.code == "wecom.no_contact"


def test_a_journey_step_on_wecom_contact_goes_to_the_contact_from_its_staff_member(
    store: Store,
) -> None:
    from decimal import Decimal

    from huitouke.journeys.loader import builtin_journeys
    from huitouke.journeys.service import run_journeys
    from huitouke.messaging.tables import outbox
    from huitouke.store.tables import orders

    now = datetime(2026, 3, 1, tzinfo=UTC)
    with store.begin() as conn:
        conn.execute(
            customers.insert(),
            [
                {"customer_id": f"c{i}", "name": f"顾客{i}", "phone": None, "tags": [],
                 "attributes": {"wecom_external_userid": f"wm{i}", "wecom_follow_user": "staff1"}
                 if i else {},
                 "consent": {"wecom_contact": True}, "created_at": now, "updated_at": now}
                for i in range(4)
            ],
        )  # fmt: skip
        conn.execute(
            orders.insert(),
            [
                {"order_id": f"o{i}", "customer_id": f"c{i}",
                 "ordered_at": datetime(2026, 3, 13, 2, tzinfo=UTC), "amount": Decimal("88.00"),
                 "currency": "CNY", "status": "paid", "refunded_amount": Decimal(0),
                 "updated_at": now}
                for i in range(4)
            ],
        )  # fmt: skip
    j = next(j for j in builtin_journeys() if j.id == "second_order")
    steps = [s.model_copy(update={"channel": "wecom_contact"}) for s in j.steps]
    j = j.model_copy(update={"holdout": 0.0, "steps": steps})
    run_journeys(store, [j], date_(2026, 3, 20), settings=Settings(holdout_salt="w"), dry_run=False)
    with store.connect() as conn:
        rows = {r["customer_id"]: r for r in conn.execute(select(outbox)).mappings()}
    assert rows["c1"]["recipient"] == "wm1" and rows["c1"]["payload"]["sender"] == "staff1"
    assert rows["c1"]["channel"] == "wecom_contact"
    # c0 has no WeCom contact: queued without a recipient, the channel refuses it by name
    assert "c0" not in rows or rows["c0"]["recipient"] is None


def test_push_tags_sets_ours_and_takes_off_what_was_removed(store: Store, fake: FakeWeCom) -> None:
    from sqlalchemy import update

    from huitouke.wecom.service import push_tags

    client = WeComClient(fake.base_url, fake.corp_id, fake.secret)
    with store.begin() as conn:
        conn.execute(
            customers.insert(),
            [{"customer_id": "c1", "phone": None, "tags": ["vip", "from-wecom"],
              "attributes": {"wecom_tags": ["from-wecom"]}, "consent": {},
              "created_at": NOW, "updated_at": NOW}],
        )  # fmt: skip
        conn.execute(
            wecom_contacts.insert().values(
                external_userid="wm1",
                follow_user="staff1",
                customer_id="c1",
                linked_by="new",
                added_at=NOW,
                welcome="none",
            )
        )
        assert push_tags(conn, client, now=NOW) == {"contacts": 1, "added": 1, "removed": 0}
        [first] = fake.calls_to("/cgi-bin/externalcontact/mark_tag")
        assert first["add_tag"] == [fake.tags["vip"]] and first["remove_tag"] == []
        assert "from-wecom" not in fake.tags  # a tag WeCom gave is not pushed back
        assert push_tags(conn, client, now=NOW) == {"contacts": 0, "added": 0, "removed": 0}
        conn.execute(update(customers).values(tags=["from-wecom", "repurchaser"]))
        assert push_tags(conn, client, now=NOW) == {"contacts": 1, "added": 1, "removed": 1}
        second = fake.calls_to("/cgi-bin/externalcontact/mark_tag")[1]
        assert second["add_tag"] == [fake.tags["repurchaser"]]
        assert second["remove_tag"] == [fake.tags["vip"]]


def test_an_event_recorded_but_never_applied_is_applied_on_redelivery(
    store_url: str, store: Store, fake: FakeWeCom
) -> None:
    """A process that stopped between recording and applying leaves the event
    ``received``; WeCom's redelivery applies it (an applied one is never applied twice)."""
    from huitouke.service import create_app
    from huitouke.wecom.service import parse_event, record_event

    settings = _settings(store_url, fake)
    fake.contacts["wmZ"] = _contact("wmZ", name="Z")
    plain = _event("add_external_contact", "wmZ", at=1730000900)
    with store.begin() as conn:
        assert record_event(conn, parse_event(plain), now=NOW)[1] is True
    with TestClient(create_app(settings, store), raise_server_exceptions=False) as http:
        assert _post(http, plain).status_code == 200
        assert _customer(store, "wecom:wmZ")["name"] == "Z"
        gets = len(fake.calls_to("/cgi-bin/externalcontact/get"))
        assert _post(http, plain).status_code == 200
        assert len(fake.calls_to("/cgi-bin/externalcontact/get")) == gets
    with store.connect() as conn:
        assert conn.execute(select(wecom_events.c.status)).scalars().all() == ["applied"]
