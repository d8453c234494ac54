"""Customer-group joins (群活码): WeCom's ``change_external_chat`` callback (``update`` /
``add_member``, ``JoinScene``, ``MemChangeCnt``, ``MemChangeList``), encrypted and signed with
the Token, EncodingAESKey and corp id of WeCom's published callback example, recorded once
with the group's member list (``groupchat/get`` of the local fake); the joining contact is
linked to its customer, who gets a tag a journey audience selects (SQLite and PostgreSQL)."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from huitouke.identity.keys import identity_secret
from huitouke.identity.service import index_keys
from huitouke.journeys.loader import builtin_journeys
from huitouke.journeys.model import Audience
from huitouke.journeys.service import run_journeys
from huitouke.messaging.channels.wecom_api import WeComClient
from huitouke.settings import Settings
from huitouke.store.db import Store
from huitouke.store.profiles import tags_for
from huitouke.store.tables import customers, orders
from huitouke.wecom.crypto import WeComCrypto, signature
from huitouke.wecom.service import add_code
from huitouke.wecom.tables import wecom_events, wecom_group_joins

from .fake_wecom import FakeWeCom, serve

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

# the parameters of WeCom's published callback example (加解密方案说明)
CORP = "wx5823bf96d3bd56c7"
TOKEN = "QDG6eK"
AES_KEY = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"
NOW = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
T = 1793606400  # WeCom's CreateTime of the first join (seconds)
CHAT = "wrOgQhDgAAMYQiS5ol9G7gK9JVAAAA"


@pytest.fixture
def fake() -> Iterator[FakeWeCom]:
    with serve(FakeWeCom(corp_id=CORP)) as f:
        yield f


def _chat_event(*, at: int, members: list[str] | None, scene: int = 3,
                detail: str = "add_member") -> str:  # fmt: skip
    parts = [
        f"<xml><ToUserName><![CDATA[{CORP}]]></ToUserName>",
        "<FromUserName><![CDATA[sys]]></FromUserName>",
        f"<CreateTime>{at}</CreateTime><MsgType><![CDATA[event]]></MsgType>",
        "<Event><![CDATA[change_external_chat]]></Event>",
        f"<ChatId><![CDATA[{CHAT}]]></ChatId><ChangeType><![CDATA[update]]></ChangeType>",
        f"<UpdateDetail><![CDATA[{detail}]]></UpdateDetail>",
        f"<JoinScene>{scene}</JoinScene><QuitScene>0</QuitScene>",
        f"<MemChangeCnt>{len(members or []) or 1}</MemChangeCnt>",
    ]
    if members is not None:
        items = "".join(f"<Item><![CDATA[{m}]]></Item>" for m in members)
        parts.append(f"<MemChangeList>{items}</MemChangeList>")
    parts.append("<LastMemVer><![CDATA[9c3f97c2ada667dfb5f6d03308d963e1]]></LastMemVer>")
    parts.append("<CurMemVer><![CDATA[71217227bbd112ecfe3a49c482195cb4]]></CurMemVer>")
    return "".join(parts) + "</xml>"


def _contact_event(ext: str, *, at: int) -> str:
    return (
        f"<xml><ToUserName><![CDATA[{CORP}]]></ToUserName><FromUserName><![CDATA[sys]]>"
        f"</FromUserName><CreateTime>{at}</CreateTime><MsgType><![CDATA[event]]></MsgType>"
        "<Event><![CDATA[change_external_contact]]></Event>"
        "<ChangeType><![CDATA[add_external_contact]]></ChangeType>"
        f"<UserID><![CDATA[staff1]]></UserID><ExternalUserID><![CDATA[{ext}]]></ExternalUserID>"
        "<State><![CDATA[insert-skin]]></State></xml>"
    )


def _post(http: Any, plain: str, *, forge: bool = False) -> Any:
    enc = WeComCrypto(TOKEN, AES_KEY, CORP).encrypt(plain)
    sig = "0" * 40 if forge else signature(TOKEN, "1409659589", "263014780", enc)
    body = f"<xml><ToUserName><![CDATA[{CORP}]]></ToUserName><Encrypt><![CDATA[{enc}]]></Encrypt><AgentID>1</AgentID></xml>"
    return http.post(
        f"/v1/wecom/callback?msg_signature={sig}&timestamp=1409659589&nonce=263014780",
        content=body.encode(),
    )


def _tags(store: Store, cid: str) -> list[str]:
    with store.connect() as conn:
        return tags_for(conn, [cid]).get(cid, [])


def test_group_joins_are_recorded_once_linked_tagged_and_selectable(
    store_url: str, store: Store, fake: FakeWeCom
) -> None:
    from huitouke.service import create_app

    settings = Settings(
        database_url=store_url, lang="zh", secret_key="s" * 32, public_base_url="http://testserver",
        wecom_corp_id=CORP, wecom_contact_secret=fake.secret, wecom_callback_token=TOKEN,
        wecom_encoding_aes_key=AES_KEY, wecom_api_base_url=fake.base_url, holdout_salt="g",
        sms_sign_name="小店", timezone="Asia/Shanghai",
    )  # fmt: skip
    first = NOW - timedelta(days=7)
    with store.begin() as conn:
        conn.execute(
            customers.insert(),
            [
                {"customer_id": cid, "phone": phone, "tags": [], "attributes": attrs,
                 "consent": {"sms": True}, "created_at": NOW, "updated_at": NOW}
                for cid, phone, attrs in (
                    ("tb_ana", "13800138000", {}),
                    ("mp_bo", None, {"union_id": "UNION-BO"}),
                    ("mp_cy", None, {"union_id": "UNION-CY"}),
                )
            ],
        )  # fmt: skip
        conn.execute(
            orders.insert(),
            [
                {"order_id": f"o-{cid}", "customer_id": cid, "ordered_at": first,
                 "amount": Decimal("88"), "currency": "CNY", "status": "paid",
                 "refunded_amount": Decimal(0), "updated_at": NOW}
                for cid in ("tb_ana", "mp_bo", "mp_cy")
            ],
        )  # fmt: skip
        index_keys(conn, secret=identity_secret("s" * 32), region="CN", now=NOW)
        client = WeComClient(fake.base_url, fake.corp_id, fake.secret)
        add_code(
            conn, client, code="insert-skin", users=["staff1"], source="package_insert",
            tags=[], welcome_zh="感谢购买!", welcome_en="Thanks!", survey=[], now=NOW,
            group_chats=[CHAT],
        )  # fmt: skip
    fake.contacts["wmANA"] = {
        "external_contact": {"external_userid": "wmANA", "name": "Ana", "type": 1},
        "follow_user": [{"userid": "staff1", "state": "insert-skin", "createtime": T - 60,
                         "remark_mobiles": ["13800138000"], "tags": []}],
    }  # fmt: skip
    with TestClient(create_app(settings, store), raise_server_exceptions=False) as http:
        assert _post(http, _contact_event("wmANA", at=T - 60)).status_code == 200
        # Ana (an external contact of ours) scans the after-sales group's live code
        fake.join(CHAT, "wmANA", at=T, scene=3)
        r = _post(http, _chat_event(at=T, members=["wmANA"]))
        assert r.status_code == 200 and r.text == "success", r.text
        with store.connect() as conn:
            [join] = conn.execute(select(wecom_group_joins)).mappings().all()
        assert join["external_userid"] == "wmANA" and join["customer_id"] == "tb_ana"
        assert join["join_scene"] == 3 and join["code"] == "insert-skin"
        assert f"wecom_group:{CHAT}" in _tags(store, "tb_ana")
        with store.connect() as conn:
            attrs = conn.execute(
                select(customers.c.attributes).where(customers.c.customer_id == "tb_ana")
            ).scalar_one()
        assert attrs["wecom_groups"] == [CHAT] and attrs["wecom_group_code"] == "insert-skin"

        # the same delivery again changes nothing; a forged one is refused, stores nothing
        assert _post(http, _chat_event(at=T, members=["wmANA"])).status_code == 200
        assert _post(http, _chat_event(at=T + 5, members=["x"]), forge=True).status_code == 401
        with store.connect() as conn:
            assert len(conn.execute(select(wecom_group_joins)).all()) == 1
            assert len(conn.execute(select(wecom_events)).all()) == 2

        # an older event shape without MemChangeList: the members who joined then; a
        # mini-program buyer known by union id is linked, a stranger is recorded unlinked
        fake.join(CHAT, "wmCY", at=T + 100, scene=2, unionid="UNION-CY")
        fake.join(CHAT, "wmSTRANGER", at=T + 100, scene=1)
        assert _post(http, _chat_event(at=T + 100, members=None, scene=0)).status_code == 200
        with store.connect() as conn:
            rows = (
                conn.execute(
                    select(wecom_group_joins).order_by(wecom_group_joins.c.external_userid)
                )
                .mappings()
                .all()
            )
        got = {r["external_userid"]: (r["customer_id"], r["code"]) for r in rows}
        assert got == {
            "wmANA": ("tb_ana", "insert-skin"),
            "wmCY": ("mp_cy", None),  # joined by a link, not the group's live code
            "wmSTRANGER": (None, None),
        }
        # other group changes are no joins
        assert (
            _post(http, _chat_event(at=T + 200, members=["wmANA"], detail="del_member")).status_code
            == 200
        )
        with store.connect() as conn:
            assert len(conn.execute(select(wecom_group_joins)).all()) == 3

    # the group's members, by tag, in a journey audience (Bo bought too but never joined)
    journey = next(j for j in builtin_journeys() if j.id == "second_order").model_copy(
        update={"holdout": 0.0, "audience": Audience(tags_all=[f"wecom_group:{CHAT}"])}
    )
    res = run_journeys(store, [journey], NOW.date(), settings=settings, dry_run=True)
    planned = {r.customer_id for r in res.plan.rows.itertuples() if r.reason_code == "planned"}
    assert planned == {"tb_ana", "mp_cy"}
