"""The ``huitouke connectors`` commands on the real Typer app: the token read from standard
input and never printed back; sync with progress against the fake Shopify; inbox and retry."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from typer.testing import CliRunner

from huitouke.cli.main import app, main
from huitouke.core.secretbox import new_key
from huitouke.settings import get_settings

from .fakes import T0, FakeShopify, shopify_order

pytestmark = pytest.mark.timeout(120)


def test_connectors_cli(
    store_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HUITOUKE_DATABASE_URL", store_url)
    monkeypatch.setenv("HUITOUKE_LANG", "en")
    monkeypatch.setenv("HUITOUKE_ENCRYPTION_KEYS", new_key())
    get_settings.cache_clear()
    runner = CliRunner()
    try:
        with FakeShopify(token="shpat_from_stdin") as fake:
            for i in range(12):
                fake.put(shopify_order(i, T0 + timedelta(seconds=i)))
            r = runner.invoke(
                app,
                ["connectors", "add", "shopify", "myshop", "--api-base-url", fake.url,
                 "--webhook-secret", "whsec", "--page-size", "5"],
                input="shpat_from_stdin\n",
            )  # fmt: skip
            assert r.exit_code == 0, r.output
            assert "/v1/connectors/myshop/webhook" in r.output
            r = runner.invoke(app, ["connectors", "show", "myshop"])
            assert (
                r.exit_code == 0 and "shpat_from_stdin" not in r.output and "whsec" not in r.output
            )
            assert json.loads(r.output)["credentials"]["access_token"] == "set"
            r = runner.invoke(app, ["connectors", "sync", "myshop", "--json"])
            assert r.exit_code == 0, r.output
            out = json.loads(r.stdout)
            assert (out["pulled"], out["pages"]) == (12, 3)
            fake.bulk_polls = 0
            r = runner.invoke(app, ["connectors", "sync", "myshop", "--bulk", "--json"])
            assert r.exit_code == 0, r.output
            assert json.loads(r.stdout)["pulled"] == 12  # the overlap window: all again
            r = runner.invoke(app, ["connectors", "list"])
            assert "myshop\tshopify\tactive" in r.output
            r = runner.invoke(app, ["connectors", "inbox", "myshop", "--failed"])
            assert r.exit_code == 0 and "the inbox is empty" in r.output
            r = runner.invoke(app, ["connectors", "retry", "myshop"])
            assert r.exit_code == 0 and "0 retried" in r.output
            assert runner.invoke(app, ["connectors", "pause", "myshop"]).exit_code == 0
            with pytest.raises(SystemExit) as exited:  # the entry point maps errors to exits
                main(["connectors", "sync", "myshop"])
            assert exited.value.code == 4 and "connector.paused" in capsys.readouterr().err
            assert runner.invoke(app, ["connectors", "remove", "myshop"]).exit_code == 0
            with pytest.raises(SystemExit) as exited:
                main(["connectors", "show", "myshop"])
            assert exited.value.code == 3 and "connector.not_found" in capsys.readouterr().err
    finally:
        get_settings.cache_clear()
