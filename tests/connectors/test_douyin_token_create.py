"""Douyin's first token pair asked when a connector is added (``token.create``): from an
authorisation code (a tool app; the code used once) or, for the merchant's own self-use app,
from the shop id — through the use case, the CLI and REST (the console's form:
tests/console/test_ops_console.py). The pair is stored sealed with its expiry and used and renewed
by the syncs; a refused or spent code stores nothing and says so."""

from __future__ import annotations

import json
import warnings
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from huitouke.app import connectors as uc
from huitouke.connectors.model import PlatformError
from huitouke.errors import InputError
from huitouke.settings import Settings
from huitouke.store.db import Store

from .douyin_fake import APP_KEY, APP_SECRET, SHOP_ID, TOKEN_LIFE, FakeDouyin, douyin_order
from .fakes import T0
from .test_douyin import NOW, Clock, stored_credentials

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient


def _spec(fake: FakeDouyin, **kw: Any) -> uc.ConnectorIn:
    return uc.ConnectorIn(
        kind="douyin", name="dy", api_base_url=fake.url, webhook_secret=APP_SECRET,
        consumer_key=APP_KEY, page_size=10, **kw,
    )  # fmt: skip


def test_an_authorisation_code_gets_the_pair_once(store: Store, settings: Settings) -> None:
    settings = settings.model_copy(update={"currency": "CNY"})
    clock = Clock(NOW)
    with FakeDouyin(now=clock) as fake:
        for i in range(4):
            fake.put(douyin_order(i, T0 + timedelta(hours=i)))
        fake.authorise("code-abc")
        shown = uc.add_connector(store, settings, _spec(fake, auth_code="code-abc"), now=NOW)
        assert fake.creates == [{"code": "code-abc", "grant_type": "authorization_code"}]
        assert shown["credentials"]["access_token"] == "set"
        assert shown["credentials"]["refresh_token"] == "set"
        sealed, opened = stored_credentials(store, settings)
        assert opened["access_token"] == fake.token
        assert opened["refresh_token"].startswith("rft-douyin-shop-refresh-")
        assert datetime.fromisoformat(opened["access_token_expires_at"]) == NOW + timedelta(
            seconds=TOKEN_LIFE
        )
        assert "code-abc" not in json.dumps(opened)  # the code is not kept
        assert fake.token not in json.dumps(sealed) and fake.token not in json.dumps(shown)
        # the syncs use the pair (and renew it ahead of its expiry as before)
        assert uc.sync(store, settings, "dy", clock=clock).pulled == 4
        clock.now += timedelta(seconds=TOKEN_LIFE) - timedelta(minutes=10)
        uc.sync(store, settings, "dy", clock=clock)
        assert len(fake.refreshes) == 1
        # the code was spent: adding again with it is refused, nothing stored; a name taken
        # is refused before any code is spent
        uc.remove_connector(store, "dy")
        with pytest.raises(PlatformError) as refused:
            uc.add_connector(store, settings, _spec(fake, auth_code="code-abc"), now=NOW)
        assert "authorise the shop again" in refused.value.message
        assert "code-abc" not in refused.value.message
        assert uc.list_connectors(store) == []
        fake.authorise("code-2")
        uc.add_connector(store, settings, _spec(fake, auth_code="code-2"), now=NOW)
        fake.authorise("code-3")
        with pytest.raises(Exception) as taken:
            uc.add_connector(store, settings, _spec(fake, auth_code="code-3"), now=NOW)
        assert getattr(taken.value, "code", "") == "connector.exists"
        assert "code-3" in fake.codes  # not spent


def test_a_self_use_app_by_shop_id_and_the_errors(store: Store, settings: Settings) -> None:
    with FakeDouyin() as fake:
        with pytest.raises(InputError) as no_shop:
            uc.add_connector(store, settings, _spec(fake, authorise_self=True))
        assert no_shop.value.details["field"] == "shop"
        with pytest.raises(PlatformError):
            uc.add_connector(store, settings, _spec(fake, authorise_self=True, shop="1"))
        assert uc.list_connectors(store) == []
        uc.add_connector(store, settings, _spec(fake, authorise_self=True, shop=str(SHOP_ID)))
        assert fake.creates[-1] == {
            "code": "",
            "grant_type": "authorization_self",
            "shop_id": str(SHOP_ID),
        }
        assert stored_credentials(store, settings)[1]["access_token"] == fake.token
        with pytest.raises(InputError) as other_kind:
            uc.add_connector(
                store,
                settings,
                uc.ConnectorIn(
                    kind="shopify", name="s1", api_base_url=fake.url, webhook_secret="w",
                    access_token="t", auth_code="x",
                ),
            )  # fmt: skip
        assert other_kind.value.details["field"] == "auth_code"


def test_cli_and_rest_add_with_a_code(
    store: Store, settings: Settings, store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from huitouke.cli.main import app
    from huitouke.service import create_app
    from huitouke.service.apikeys import create_api_key
    from huitouke.settings import get_settings

    monkeypatch.setenv("HUITOUKE_DATABASE_URL", store_url)
    monkeypatch.setenv("HUITOUKE_LANG", "en")
    monkeypatch.setenv("HUITOUKE_ENCRYPTION_KEYS", settings.encryption_keys.get_secret_value())
    get_settings.cache_clear()
    try:
        with FakeDouyin() as fake:
            now = datetime.now(UTC).replace(microsecond=0)
            for i in range(3):
                fake.put(douyin_order(i, now - timedelta(hours=1, minutes=i)))
            fake.authorise("cli-code")
            runner = CliRunner()
            r = runner.invoke(
                app,
                ["connectors", "add", "douyin", "dycli", "--api-base-url", fake.url,
                 "--consumer-key", APP_KEY, "--webhook-secret", APP_SECRET,
                 "--auth-code", "cli-code"],
                input="",  # no token asked on stdin
            )  # fmt: skip
            assert r.exit_code == 0, r.output
            r = runner.invoke(app, ["connectors", "sync", "dycli", "--json"])
            assert r.exit_code == 0, r.output
            assert json.loads(r.stdout)["pulled"] == 3
            # REST, the self-use app
            with store.begin() as conn:
                key = create_api_key(conn, scope="admin", name="t", now=datetime.now(UTC))[1]
            with TestClient(create_app(get_settings(), store)) as c:
                h = {"Authorization": f"Bearer {key}"}
                body = {
                    "kind": "douyin", "name": "dyrest", "api_base_url": fake.url,
                    "webhook_secret": APP_SECRET, "consumer_key": APP_KEY,
                    "shop": str(SHOP_ID), "authorise_self": True,
                }  # fmt: skip
                r = c.post("/v1/connectors", json=body, headers=h)
                assert r.status_code == 201, r.text
                assert r.json()["credentials"]["access_token"] == "set"
                spent = c.post(
                    "/v1/connectors",
                    json={**body, "name": "dyrest2", "authorise_self": False,
                          "auth_code": "never-issued"},
                    headers=h,
                )  # fmt: skip
                assert spent.status_code == 502, spent.text
                assert spent.json()["error"]["code"] == "connector.platform_error"
                assert "never-issued" not in spent.text
    finally:
        get_settings.cache_clear()
