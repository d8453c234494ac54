"""API keys and scopes: 401 without or with a bad key, 403 with too low a scope."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from typer.testing import CliRunner

from huitouke.cli.main import app as cli_app
from huitouke.service.apikeys import authenticate, create_api_key, hash_key, list_api_keys
from huitouke.service.tables import api_keys
from huitouke.store.db import Store

from .conftest import Keys, make_keys


def test_no_key_is_401(client, keys: Keys) -> None:
    r = client.get("/v1/customers/c1")
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "auth.missing_key"


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    "header",
    [
        "Bearer htk_000000000000_notarealsecret",
        "Bearer garbage",
        "Basic dXNlcjpwYXNz",
        "Bearer ",
    ],
)
def test_bad_keys_are_401(client, keys: Keys, header: str) -> None:
    r = client.get("/v1/customers/c1", headers={"Authorization": header})
    assert r.status_code == 401
    assert r.json()["error"]["code"] in ("auth.invalid_key", "auth.missing_key")


def test_right_id_wrong_secret_is_401(client, keys: Keys) -> None:
    prefix = keys.admin.rsplit("_", 1)[0]
    r = client.get("/v1/apikeys", headers={"Authorization": f"Bearer {prefix}_{'x' * 43}"})
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "auth.invalid_key"


@pytest.mark.parametrize(
    ("method", "path", "body", "needed"),
    [
        ("GET", "/v1/customers/c1", None, "read"),
        ("PUT", "/v1/customers/c1", {"name": "张三"}, "operator"),
        ("PUT", "/v1/customers/c1/consent", {"consent": {"sms": True}}, "operator"),
        ("GET", "/v1/apikeys", None, "admin"),
        ("POST", "/v1/apikeys", {"scope": "read"}, "admin"),
        ("GET", "/v1/settings", None, "admin"),
    ],
)
def test_scope_matrix(client, keys: Keys, method: str, path: str, body, needed: str) -> None:
    order = ["read", "operator", "admin"]
    for scope in order:
        r = client.request(method, path, json=body, headers=keys.h(scope))
        if order.index(scope) < order.index(needed):
            assert r.status_code == 403, (scope, r.text)
            err = r.json()["error"]
            assert err["code"] == "auth.forbidden"
            assert err["details"] == {"required_scope": needed, "key_scope": scope}
        else:
            assert r.status_code not in (401, 403), (scope, r.text)


def test_keys_are_stored_hashed_and_revocation_is_immediate(
    client, keys: Keys, store: Store
) -> None:
    with store.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(api_keys.select())]
    assert all(keys.admin not in str(r) for r in rows)
    assert hash_key(keys.read) in {r["key_hash"] for r in rows}

    created = client.post(
        "/v1/apikeys", json={"scope": "read", "name": "tmp"}, headers=keys.h("admin")
    )
    assert created.status_code == 201
    new_key, key_id = created.json()["key"], created.json()["key_id"]
    assert (
        client.get("/v1/customers/none", headers={"Authorization": f"Bearer {new_key}"}).status_code
        == 404
    )
    listed = client.get("/v1/apikeys", headers=keys.h("admin")).json()
    assert all("key" not in k and "key_hash" not in k for k in listed)
    assert key_id in {k["key_id"] for k in listed}
    r = client.delete(f"/v1/apikeys/{key_id}", headers=keys.h("admin"))
    assert r.status_code == 200 and r.json()["active"] is False
    r = client.get("/v1/customers/none", headers={"Authorization": f"Bearer {new_key}"})
    assert r.status_code == 401
    assert (
        client.delete("/v1/apikeys/abcdef123456", headers=keys.h("admin")).json()["error"]["code"]
        == "apikey.not_found"
    )


def test_unknown_scope_is_refused(store: Store) -> None:
    from huitouke.errors import InputError

    with pytest.raises(InputError) as info, store.begin() as conn:
        create_api_key(conn, scope="root", name=None, now=datetime.now(UTC))
    assert info.value.code == "auth.unknown_scope"


def test_cli_prints_the_key_once_as_the_last_line(store_url: str, store: Store) -> None:
    runner = CliRunner()
    res = runner.invoke(
        cli_app,
        ["apikey", "create", "--scope", "operator", "--name", "pos", "--database-url", store_url],
    )
    assert res.exit_code == 0, res.output
    key = res.output.strip().splitlines()[-1]
    assert key.startswith("htk_")
    with store.connect() as conn:
        found = authenticate(conn, key)
        assert found.scope == "operator" and found.name == "pos"
    listed = runner.invoke(cli_app, ["apikey", "list", "--database-url", store_url])
    assert found.key_id in listed.output and key not in listed.output
    res = runner.invoke(cli_app, ["apikey", "revoke", found.key_id, "--database-url", store_url])
    assert res.exit_code == 0
    with store.connect() as conn:
        assert [k.active for k in list_api_keys(conn) if k.key_id == found.key_id] == [False]


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_key_cache_trusts_a_key_for_its_ttl_only(store: Store) -> None:
    import time

    from fastapi.testclient import TestClient

    from huitouke.service import create_app
    from huitouke.service.apikeys import revoke_api_key
    from huitouke.settings import Settings

    keys = make_keys(store)
    app = create_app(Settings(database_url=store.url, api_key_cache_seconds=0.5), store)
    client = TestClient(app)
    headers = keys.h("read")
    assert client.get("/v1/customers/x", headers=headers).status_code == 404
    with store.begin() as conn:  # revoked elsewhere (the CLI, another worker)
        key_id = authenticate(conn, keys.read).key_id
        revoke_api_key(conn, key_id, now=datetime.now(UTC))
    assert client.get("/v1/customers/x", headers=headers).status_code == 404  # still trusted
    time.sleep(0.6)
    assert client.get("/v1/customers/x", headers=headers).status_code == 401


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_cli_profile_set_show_consent(store_url: str, store: Store) -> None:
    import json

    runner = CliRunner()
    base = ["--database-url", store_url]
    r = runner.invoke(
        cli_app,
        [
            "profile",
            "set",
            "c9",
            "--name",
            "张三",
            "--phone",
            "13812345678",
            "--consent",
            "sms=on",
            *base,
        ],
    )
    assert r.exit_code == 0, r.output
    r = runner.invoke(
        cli_app, ["profile", "set", "c9", "--email", "z@example.com", "--tag", "vip", *base]
    )
    shown = json.loads(runner.invoke(cli_app, ["profile", "show", "c9", *base]).output)
    assert (shown["name"], shown["email"], shown["tags"], shown["consent"]) == (
        "张三",
        "z@example.com",
        ["vip"],
        {"sms": True},
    )
    masked = json.loads(runner.invoke(cli_app, ["profile", "show", "c9", "--masked", *base]).output)
    assert (masked["name"], masked["phone"]) == ("张*", "138****5678")
    r = runner.invoke(cli_app, ["profile", "consent", "c9", "sms=off", "email=on", *base])
    assert json.loads(r.output) == {"sms": False, "email": True}
    bad = runner.invoke(cli_app, ["profile", "set", "c9", "--phone", "call me", *base])
    assert bad.exit_code != 0
