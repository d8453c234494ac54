"""The loyalty program's zone is the store's zone: derived from the settings when the program
names none, refused at save (CLI and REST) when it names another."""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from huitouke.cli.main import main
from huitouke.errors import InputError
from huitouke.loyalty import load_program
from huitouke.service.apikeys import create_api_key
from huitouke.settings import Settings, get_settings
from huitouke.store.db import Store

from .conftest import EXAMPLES

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient


@pytest.fixture
def zone_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    get_settings.cache_clear()
    yield monkeypatch
    get_settings.cache_clear()


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    try:
        main(["loyalty", *args])
        rc = 0
    except SystemExit as exc:
        rc = int(exc.code or 0)
    out, err = capsys.readouterr()
    return rc, out, err


def test_in_store_zone_fills_or_refuses() -> None:
    bare = load_program({"id": "p"})
    assert bare.timezone is None
    assert bare.in_store_zone("Europe/London").timezone == "Europe/London"
    same = load_program({"id": "p", "timezone": "Europe/London"})
    assert same.in_store_zone("Europe/London") is same
    with pytest.raises(InputError) as info:
        same.in_store_zone("Asia/Shanghai")
    assert info.value.code == "loyalty.timezone_mismatch"
    assert info.value.details == {
        "field": "timezone",
        "program": "Europe/London",
        "settings": "Asia/Shanghai",
    }
    with pytest.raises(InputError, match="no time zone"):
        _ = bare.zone


def test_cli_program_save_takes_the_store_zone_and_refuses_another(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], zone_env: pytest.MonkeyPatch
) -> None:
    db = ["--database-url", f"sqlite:///{tmp_path / 'h.db'}"]
    zone_env.setenv("HUITOUKE_TIMEZONE", "America/New_York")
    rc, _, err = _cli(capsys, "program", "save", str(EXAMPLES / "cafe.yaml"), *db)
    assert rc == 0, err
    rc, out, err = _cli(capsys, "program", "show", *db)
    assert rc == 0, err
    assert json.loads(out)["timezone"] == "America/New_York"

    london = tmp_path / "london.yaml"
    doc = yaml.safe_load((EXAMPLES / "cafe.yaml").read_text(encoding="utf-8"))
    london.write_text(yaml.safe_dump({**doc, "timezone": "Europe/London"}), encoding="utf-8")
    rc, _, err = _cli(capsys, "program", "save", str(london), *db)
    assert rc == 2
    assert "loyalty.timezone_mismatch" in err and "Europe/London" in err
    assert "America/New_York" in err
    rc, _, err = _cli(capsys, "program", "validate", str(london))
    assert rc == 2 and "loyalty.timezone_mismatch" in err
    # the stored program is unchanged
    rc, out, _ = _cli(capsys, "program", "show", *db)
    assert json.loads(out)["timezone"] == "America/New_York"


def test_rest_program_put_refuses_another_zone(store_url: str) -> None:
    store = Store(store_url)
    store.migrate()
    try:
        from datetime import UTC, datetime

        from huitouke.service import create_app

        with store.begin() as conn:
            admin = create_api_key(conn, scope="admin", name="t", now=datetime.now(UTC))[1]
        h = {"Authorization": f"Bearer {admin}"}
        settings = Settings(database_url=store_url, lang="en", timezone="Europe/Berlin")
        with TestClient(create_app(settings, store), raise_server_exceptions=False) as client:
            bad = client.put("/v1/program", json={"timezone": "Asia/Shanghai"}, headers=h)
            assert bad.status_code == 422, bad.text
            err = bad.json()["error"]
            assert err["code"] == "loyalty.timezone_mismatch"
            assert err["details"]["settings"] == "Europe/Berlin"
            ok = client.put("/v1/program", json={"name": "x"}, headers=h)
            assert ok.status_code == 200, ok.text
            assert ok.json()["program"]["timezone"] == "Europe/Berlin"
            assert client.get("/v1/program", headers=h).json()["timezone"] == "Europe/Berlin"
    finally:
        store.dispose()
