"""The console's settings (stored channel and contact-rule settings, API keys, audit log) and
its tags and profiles, through the production app on SQLite and PostgreSQL: every new route
refuses a request without a session, with too low a role or without the CSRF token (and
changes nothing); secrets are never rendered back; every change is audited; the REST doors
and the CLI use the same use cases."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import func, select

from huitouke.core.secretbox import new_key
from huitouke.service.apikeys import create_api_key
from huitouke.service.tables import api_keys
from huitouke.store.audit import audit_events
from huitouke.store.profiles import (
    customer_attributes,
    customer_tags,
    define_attribute,
    profile_attributes,
)
from huitouke.store.stored_settings import settings_overrides
from huitouke.store.tables import customers

from .conftest import Console, cli, csrf_of, sign_in

KEY = new_key()
SMTP_PASSWORD = "Sm7p-pass-WORD-never-shown"
WEBHOOK_URL = "https://hooks.example.com/t/hook-token-never-shown-9f8e"
DINGTALK_SECRET = "SECdingtalk-never-shown-42"


@pytest.fixture
def shop(console: Console) -> dict[str, Any]:
    now = datetime(2026, 6, 1, 2, 0, tzinfo=UTC)
    with console.store.begin() as conn:
        conn.execute(
            customers.insert(),
            [
                {"customer_id": cid, "name": None, "tags": [], "attributes": {}, "consent": {},
                 "created_at": now, "updated_at": now}
                for cid in ("c1", "c2", "c3")
            ],
        )  # fmt: skip
        record, _ = create_api_key(conn, scope="read", name="old", now=now)
        define_attribute(
            conn, "city", "choice", choices=["Shanghai", "Beijing"], actor="ana", now=now
        )
    return {"key_id": record.key_id}


def state(console: Console) -> dict[str, Any]:
    """Everything a refused request must leave as it was."""
    with console.store.connect() as conn:

        def count(table: Any) -> int:
            return int(conn.execute(select(func.count()).select_from(table)).scalar_one())

        return {
            "settings": count(settings_overrides),
            "keys": [(r.key_id, r.revoked_at) for r in conn.execute(select(api_keys))],
            "tags": count(customer_tags),
            "attributes": count(profile_attributes),
            "values": count(customer_attributes),
            "changes": int(
                conn.execute(
                    select(func.count())
                    .select_from(audit_events)
                    .where(audit_events.c.action.is_not(None))
                ).scalar_one()
            ),
        }


def changing_requests(key_id: str) -> list[tuple[str, dict[str, str]]]:
    return [
        ("/settings/save/email", {"smtp_host": "mail.example.com"}),
        ("/settings/clear", {"name": "smtp_host"}),
        ("/settings/apikeys", {"scope": "admin", "name": "new"}),
        (f"/settings/apikeys/{key_id}/revoke", {}),
        ("/tags/apply", {"tag": "vip", "customer_ids": "c1"}),
        ("/attributes", {"key": "spend", "type": "number"}),
        ("/customers/c1/tags", {"tag": "vip", "action": "add"}),
        ("/customers/c1/attributes", {"key": "city", "value": "Shanghai", "action": "set"}),
    ]


#: the role each changing route needs
NEEDS = {
    "/settings/save/email": "admin", "/settings/clear": "admin", "/settings/apikeys": "admin",
    "revoke": "admin", "/tags/apply": "operator", "/attributes": "admin",
    "/customers/c1/tags": "operator", "/customers/c1/attributes": "operator",
}  # fmt: skip
PAGES = {"/settings": "read", "/settings/apikeys": "admin", "/audit": "admin", "/tags": "read",
         "/customers/c1/profile": "read"}  # fmt: skip
RANK = {"read": 0, "operator": 1, "admin": 2}
ROLE_OF = {"rita": "read", "otto": "operator", "ana": "admin"}


def _needs(path: str) -> str:
    return NEEDS["revoke"] if path.endswith("/revoke") else NEEDS[path]


def test_no_page_and_no_change_without_a_session(client, console: Console, shop) -> None:
    for path in PAGES:
        r = client.get(path, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith("/login"), path
        r = client.get(path, headers={"HX-Request": "true"}, follow_redirects=False)
        assert r.status_code == 401, path
    before = state(console)
    for path, data in changing_requests(shop["key_id"]):
        r = client.post(path, data=data, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith("/login"), path
    assert state(console) == before


@pytest.mark.parametrize("name", ["rita", "otto"])
def test_roles_below_what_a_route_needs_get_403_and_change_nothing(
    client, console: Console, shop, name: str
) -> None:
    sign_in(client, name)
    token = csrf_of(client)
    for path, need in PAGES.items():
        expected = 200 if RANK[ROLE_OF[name]] >= RANK[need] else 403
        assert client.get(path).status_code == expected, path
    before = state(console)
    for path, data in changing_requests(shop["key_id"]):
        if RANK[ROLE_OF[name]] >= RANK[_needs(path)]:
            continue
        r = client.post(path, data={**data, "csrf_token": token})
        assert r.status_code == 403, path
    assert state(console) == before


@pytest.mark.parametrize("token", [None, "", "wrong-token"])
def test_changes_without_the_csrf_token_are_refused(client, console: Console, shop, token) -> None:
    sign_in(client, "ana")
    before = state(console)
    for path, data in changing_requests(shop["key_id"]):
        sent = dict(data) if token is None else {**data, "csrf_token": token}
        assert client.post(path, data=sent).status_code == 403, path
    assert state(console) == before


def test_secrets_are_write_only_and_never_rendered(console: Console, shop) -> None:
    with console.client(encryption_keys=SecretStr(KEY)) as admin:
        sign_in(admin, "ana")
        token = csrf_of(admin)
        r = admin.post(
            "/settings/save/email",
            data={"csrf_token": token, "smtp_host": "mail.example.com", "smtp_port": "465",
                  "smtp_password": SMTP_PASSWORD, "smtp_ssl": "true", "smtp_starttls": "false"},
            follow_redirects=False,
        )  # fmt: skip
        assert r.status_code == 303 and r.headers["location"] == "/settings?saved=email"
        for group, data in (
            ("webhook", {"webhook_url": WEBHOOK_URL}),
            ("robots", {"dingtalk_secret": DINGTALK_SECRET}),
        ):
            r = admin.post(f"/settings/save/{group}", data={"csrf_token": token, **data})
            assert r.status_code == 200, r.text  # followed to the page
        page = admin.get("/settings").text
        row = re.search(r'<tr data-setting="smtp_password">.*?</tr>', page, re.S)
        assert row and 'data-badge="set"' in row.group(0) and 'value=""' in row.group(0)
        assert 'data-setting="smtp_host"' in page and 'value="mail.example.com"' in page
        # an empty secret field keeps the secret
        admin.post("/settings/save/email", data={"csrf_token": token, "smtp_password": ""})
        with console.store.connect() as conn:
            stored = {r.name: r for r in conn.execute(select(settings_overrides))}
        assert stored["smtp_password"].sealed and SMTP_PASSWORD not in stored["smtp_password"].value
        pages = ["/settings", "/settings?saved=email", "/settings/apikeys", "/audit", "/tags"]
        html = {p: admin.get(p).text for p in pages}
    for name in ("otto", "rita"):
        with console.client(encryption_keys=SecretStr(KEY)) as other:
            sign_in(other, name)
            html[f"/settings as {name}"] = other.get("/settings").text
            assert 'data-badge="set"' in html[f"/settings as {name}"]
            assert 'name="smtp_host"' not in html[f"/settings as {name}"]  # no form
            # non-secret values are shown to every role (our choice: they see every page)
            assert "mail.example.com" in html[f"/settings as {name}"]
    for where, text in html.items():
        for secret in (SMTP_PASSWORD, WEBHOOK_URL, "hook-token-never-shown", DINGTALK_SECRET):
            assert secret not in text, (where, secret)
        # not even a mask that tells the length
        assert "*" * len(SMTP_PASSWORD) not in text and "•" not in text, where
    # the REST views hide them too
    with console.store.begin() as conn:
        _, full = create_api_key(conn, scope="admin", name="t", now=console.clock.now)
    with console.client(encryption_keys=SecretStr(KEY)) as api:
        auth = {"Authorization": f"Bearer {full}"}
        for path in ("/v1/settings/stored", "/v1/settings", "/v1/audit"):
            r = api.get(path, headers=auth)
            assert r.status_code == 200, path
            assert SMTP_PASSWORD not in r.text and "hook-token-never-shown" not in r.text, path
        view = {s["name"]: s for s in api.get("/v1/settings/stored", headers=auth).json()}
        assert view["smtp_password"] == {**view["smtp_password"], "value": None, "is_set": True,
                                         "source": "stored", "updated_by": "ana"}  # fmt: skip
        assert api.get("/v1/settings", headers=auth).json()["smtp_host"] == "mail.example.com"
    # the clear action removes the stored secret
    with console.client(encryption_keys=SecretStr(KEY)) as admin:
        sign_in(admin, "ana")
        token = csrf_of(admin)
        assert 'data-clear="smtp_password"' in admin.get("/settings").text
        r = admin.post("/settings/clear", data={"csrf_token": token, "name": "smtp_password"})
        assert r.status_code == 200
        row = re.search(r'<tr data-setting="smtp_password">.*?</tr>', r.text, re.S)
        assert row and 'data-badge="unset"' in row.group(0)


def test_a_secret_without_encryption_keys_is_refused_on_the_page(
    client, console: Console, shop
) -> None:
    sign_in(client, "ana")
    token = csrf_of(client)
    page = client.get("/settings").text
    assert 'id="no-key-note"' in page
    r = client.post(
        "/settings/save/email",
        data={"csrf_token": token, "smtp_host": "mail.example.com", "smtp_password": SMTP_PASSWORD},
    )
    assert r.status_code == 422
    assert "HUITOUKE_ENCRYPTION_KEYS" in r.text and 'id="settings-error"' in r.text
    assert SMTP_PASSWORD not in r.text
    assert state(console)["settings"] == 0
    r = client.post("/settings/save/rules", data={"csrf_token": token, "contact_caps": "often"})
    assert r.status_code == 422 and "contact_caps" in r.text
    r = client.post("/settings/save/email", data={"csrf_token": token, "smtp_port": "port"})
    assert r.status_code == 422 and "smtp_port" in r.text
    assert state(console)["settings"] == 0
    # a change without a secret needs no key
    r = client.post(
        "/settings/save/rules",
        data={"csrf_token": token, "contact_caps": "marketing:sms:1/7d", "quiet_hours_start": "22:00",
              "quiet_hours_end": "08:00"},
    )  # fmt: skip
    assert r.status_code == 200 and 'id="settings-saved"' in r.text
    assert 'value="marketing:sms:1/7d"' in r.text


def test_api_keys_in_the_console_use_the_same_keys_as_the_api(
    client, console: Console, shop
) -> None:
    sign_in(client, "ana")
    token = csrf_of(client)
    r = client.post(
        "/settings/apikeys", data={"csrf_token": token, "scope": "admin", "name": "shop-erp"}
    )
    assert r.status_code == 201
    full = re.search(r'id="new-key-text">([^<]+)<', r.text)
    assert full
    key = full.group(1)
    auth = {"Authorization": f"Bearer {key}"}
    listed = client.get("/v1/apikeys", headers=auth)
    assert listed.status_code == 200 and "shop-erp" in listed.text
    page = client.get("/settings/apikeys").text
    assert "shop-erp" in page and key not in page  # shown once
    key_id = key.split("_")[1]
    r = client.post(
        f"/settings/apikeys/{key_id}/revoke", data={"csrf_token": token}, follow_redirects=False
    )
    assert r.status_code == 303
    assert client.get("/v1/apikeys", headers=auth).status_code == 401  # at once in this worker
    r = client.post("/settings/apikeys", data={"csrf_token": token, "scope": "root"})
    assert r.status_code == 422 and "root" in r.text


def test_the_audit_log_shows_who_changed_what(console: Console, shop) -> None:
    with console.client(encryption_keys=SecretStr(KEY)) as admin:
        sign_in(admin, "ana")
        token = csrf_of(admin)
        admin.post(
            "/settings/save/webhook", data={"csrf_token": token, "webhook_secret": "whsec-1234567"}
        )
        admin.post("/settings/save/rules", data={"csrf_token": token, "quiet_hours_start": "22:30"})
        admin.post("/settings/apikeys", data={"csrf_token": token, "scope": "read", "name": "bi"})
        admin.post(f"/settings/apikeys/{shop['key_id']}/revoke", data={"csrf_token": token})
        admin.post("/users", data={"csrf_token": token, "name": "eve", "role": "read",
                                   "password": "eve-password-123"})  # fmt: skip
        admin.post("/users/eve/disable", data={"csrf_token": token})
        admin.post(
            "/tags/apply", data={"csrf_token": token, "tag": "vip", "customer_ids": "c1\nc2\nc1"}
        )
        admin.post("/attributes", data={"csrf_token": token, "key": "spend", "type": "number"})
        admin.post("/customers/c3/attributes", data={"csrf_token": token, "key": "spend", "value": "12.5",
                                                     "action": "set"})  # fmt: skip
        page = admin.get("/audit").text
    rows = re.findall(
        r'<tr data-action="([^"]+)" data-target="([^"]*)">\s*<td>[^<]*</td><td>([^<]*)</td>', page
    )
    seen = {(a, tgt, who) for a, tgt, who in rows}
    for expected in [
        ("settings.set", "webhook_secret", "ana"),
        ("settings.set", "quiet_hours_start", "ana"),
        ("apikey.revoke", shop["key_id"], "ana"),
        ("user.create", "eve", "ana"),
        ("user.disable", "eve", "ana"),
        ("tags.add", "vip", "ana"),
        ("attribute.define", "spend", "ana"),
        ("attribute.set", "spend", "ana"),
        ("sign_in", "", "ana"),
    ]:
        assert expected in seen, expected
    assert any(a == "apikey.create" for a, _, _ in rows)
    assert "whsec-1234567" not in page
    # newest first
    assert rows[0][0] == "attribute.set"


def test_tags_and_attributes_in_the_console(client, console: Console, shop) -> None:
    sign_in(client, "otto")
    token = csrf_of(client)
    r = client.post("/tags/apply", data={"csrf_token": token, "tag": "vip", "customer_ids": "c1\nc2"},
                    follow_redirects=False)  # fmt: skip
    assert r.status_code == 303
    page = client.get(r.headers["location"]).text
    assert 'data-tag="vip"' in page and "vip:2:2" in page
    assert ">Champions</option>" in page and ">High win-back</option>" in page  # named, not codes
    # a whole segment: everybody with the tag vip (the customers have no orders, so the
    # audience, which a journey reads from the customers with orders, selects nobody)
    r = client.post("/tags/apply", data={"csrf_token": token, "tag": "gold", "tags_any": "vip"},
                    follow_redirects=False)  # fmt: skip
    assert r.status_code == 303 and "gold%3A0%3A0" in r.headers["location"]
    r = client.post("/tags/apply", data={"csrf_token": token, "tag": "x"})
    assert r.status_code == 422  # neither ids nor a segment
    r = client.post("/customers/c3/tags", data={"csrf_token": token, "tag": "new", "action": "add"},
                    headers={"HX-Request": "true"})  # fmt: skip
    assert r.status_code == 200 and 'data-tag="new"' in r.text and "<html" not in r.text
    r = client.post("/customers/c3/attributes", data={"csrf_token": token, "key": "city",
                    "value": "Paris", "action": "set"}, headers={"HX-Request": "true"})  # fmt: skip
    assert r.status_code == 422 and "Paris" in r.text
    r = client.post("/customers/c3/attributes", data={"csrf_token": token, "key": "city",
                    "value": "Beijing", "action": "set"}, follow_redirects=False)  # fmt: skip
    assert r.status_code == 303 and r.headers["location"] == "/customers/c3"
    fragment = client.get("/customers/c3/profile").text
    assert 'data-attribute="city"' in fragment and "Beijing" in fragment and "otto" in fragment
    assert client.get("/customers/nobody/profile").status_code == 404
    # operators may not define attributes
    assert (
        client.post(
            "/attributes", data={"csrf_token": token, "key": "x", "type": "text"}
        ).status_code
        == 403
    )


def test_rest_doors_for_settings_and_tags(console: Console, shop) -> None:
    with console.store.begin() as conn:
        _, admin_key = create_api_key(conn, scope="admin", name="a", now=console.clock.now)
        _, op_key = create_api_key(conn, scope="operator", name="o", now=console.clock.now)
        _, read_key = create_api_key(conn, scope="read", name="r", now=console.clock.now)
    with console.client() as api:

        def h(k: str) -> dict[str, str]:
            return {"Authorization": f"Bearer {k}"}

        r = api.put(
            "/v1/settings/stored", json={"values": {"quiet_hours_end": "07:30"}}, headers=h(op_key)
        )
        assert r.status_code == 403
        r = api.put(
            "/v1/settings/stored",
            json={"values": {"quiet_hours_end": "7 o'clock"}},
            headers=h(admin_key),
        )
        assert r.status_code == 422 and r.json()["error"]["code"] == "settings.bad_value"
        assert r.json()["error"]["details"]["field"] == "quiet_hours_end"
        r = api.put(
            "/v1/settings/stored",
            json={"values": {"smtp_password": "x-secret"}},
            headers=h(admin_key),
        )
        assert r.status_code == 422 and r.json()["error"]["code"] == "secret.no_key"
        r = api.put(
            "/v1/settings/stored",
            json={"values": {"quiet_hours_end": "07:30"}},
            headers=h(admin_key),
        )
        assert r.status_code == 200
        assert {s["name"]: s for s in r.json()}["quiet_hours_end"]["value"] == "07:30"
        assert api.get("/v1/settings", headers=h(admin_key)).json()["quiet_hours_end"] == "07:30"
        r = api.delete("/v1/settings/stored/quiet_hours_end", headers=h(admin_key))
        assert {s["name"]: s for s in r.json()}["quiet_hours_end"]["source"] != "stored"
        assert (
            api.delete("/v1/settings/stored/database_url", headers=h(admin_key)).status_code == 422
        )

        body = {"tags": ["vip"], "customer_ids": ["c1", "c2"]}
        assert api.post("/v1/tags", json=body, headers=h(read_key)).status_code == 403
        r = api.post("/v1/tags", json=body, headers=h(op_key))
        assert r.status_code == 200 and r.json() == {"tags": ["vip"], "customers": 2, "changed": 2}
        r = api.post(
            "/v1/tags", json={"tags": ["vip"], "customer_ids": ["c1", "zz"]}, headers=h(op_key)
        )
        assert r.status_code == 404 and r.json()["error"]["code"] == "customer.not_found"
        r = api.post(
            "/v1/tags", json={"tags": ["vip"], "audience": {"layers": ["moon"]}}, headers=h(op_key)
        )
        assert r.status_code == 422 and r.json()["error"]["code"] == "profile.bad_audience"
        r = api.post("/v1/attributes", json={"key": "spend", "type": "number"}, headers=h(op_key))
        assert r.status_code == 403
        r = api.post(
            "/v1/attributes", json={"key": "spend", "type": "number"}, headers=h(admin_key)
        )
        assert r.status_code == 201 and r.json()["type"] == "number"
        r = api.post(
            "/v1/attributes/spend/values",
            json={"value": "abc", "customer_ids": ["c1"]},
            headers=h(op_key),
        )
        assert r.status_code == 422 and r.json()["error"]["details"]["field"] == "spend"
        r = api.post(
            "/v1/attributes/spend/values",
            json={"value": "99.90", "customer_ids": ["c1"]},
            headers=h(op_key),
        )
        assert r.status_code == 200 and r.json()["changed"] == 1
        profile = api.get("/v1/customers/c1/profile", headers=h(read_key)).json()
        assert profile["tags"] == ["vip"] and profile["attributes"] == {"spend": "99.90"}
        assert profile["history"][0]["actor"].startswith("apikey:")
        tags = api.get("/v1/tags", headers=h(read_key)).json()
        assert tags["tags"] == [{"tag": "vip", "customers": 2}]
        audit = api.get("/v1/audit", headers=h(admin_key)).json()
        assert [a["action"] for a in audit[:3]] == ["attribute.set", "attribute.define", "tags.add"]
        assert api.get("/v1/audit", headers=h(op_key)).status_code == 403


def test_the_cli_tags_and_sets_attributes_through_the_same_use_case(
    console: Console, shop, store_url
) -> None:
    done = cli(store_url, "tags", "add", "vip", "north", "-c", "c1", "-c", "c2", "-c", "c1")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"tags": ["north", "vip"], "customers": 2, "changed": 4}
    done = cli(store_url, "tags", "remove", "north", "-c", "c2")
    assert json.loads(done.stdout)["changed"] == 1
    done = cli(store_url, "attributes", "set", "city", "Shanghai", "-c", "c1")
    assert done.returncode == 0, done.stderr
    done = cli(store_url, "attributes", "set", "city", "Mars", "-c", "c1")
    assert done.returncode == 2 and "attribute.bad_value" in done.stderr
    done = cli(store_url, "tags", "add", "vip", "-c", "ghost")
    assert done.returncode == 3 and "customer.not_found" in done.stderr
    done = cli(store_url, "tags", "show", "c1")
    profile = json.loads(done.stdout)
    assert profile["tags"] == ["north", "vip"] and profile["attributes"] == {"city": "Shanghai"}
    assert profile["history"][0]["actor"].startswith("cli:")
    listed = cli(store_url, "tags", "list")
    assert listed.stdout.splitlines() == ["vip\t2", "north\t1"]
    with console.store.connect() as conn:
        actions = [r.action for r in conn.execute(
            select(audit_events.c.action).where(audit_events.c.action.is_not(None)).order_by(audit_events.c.event_id)
        )]  # fmt: skip
    assert actions == ["tags.add", "tags.remove", "attribute.set"]
