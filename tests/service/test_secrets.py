"""No secret leaves through a door: every secret setting is set to a value of its own and
every output is searched for it — ``GET /v1/settings``, ``huitouke settings``, a settings
error, and the log of a real ``huitouke serve`` that answered requests."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import make_url

from huitouke.messaging.bootstrap import inbound_token
from huitouke.service import create_app
from huitouke.settings import Settings
from huitouke.store.db import Store

from .conftest import make_keys
from .live import LiveServer

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

#: The secrets the settings must hide (a test fails if one of them stops being secret).
KNOWN_SECRETS = {
    "secret_key",
    "smtp_password",
    "aliyun_access_key_secret",
    "tencent_secret_key",
    "webhook_secret",
    "dingtalk_secret",
    "inbound_token",
    "webhook_url",
    "wecom_robot_url",
    "dingtalk_robot_url",
}
DB_PASSWORD = "Pw-database-7f3a9c"


def secret_values() -> dict[str, str]:
    """A value of its own for every secret setting; URLs carry it in each place a URL can
    carry a credential (user info, path, query)."""
    out = {}
    for name in Settings.model_fields:
        if not Settings.is_secret(name):
            continue
        token = f"Tok-{name.replace('_', '-')}-5e1d"
        if name.endswith("_url"):
            out[name] = f"https://bot:{token}@hooks.example.com/send/{token}?access_token={token}"
        else:
            out[name] = token
    return out


def leaks(text: str, values: dict[str, str]) -> list[str]:
    needles = {n: v for n, v in values.items() if not n.endswith("_url")}
    needles.update({f"{n}.token": f"Tok-{n.replace('_', '-')}-5e1d" for n in values})
    needles["database password"] = DB_PASSWORD
    return sorted(name for name, needle in needles.items() if needle in text)


def with_password(url: str) -> str:
    u = make_url(url)
    if u.drivername.startswith("sqlite"):
        return url
    # the test server trusts local connections, so any password connects
    return u.set(password=DB_PASSWORD).render_as_string(hide_password=False)


def secret_env(database_url: str) -> dict[str, str]:
    env = {f"HUITOUKE_{n.upper()}": v for n, v in secret_values().items()}
    env["HUITOUKE_DATABASE_URL"] = database_url
    return env


def test_the_known_secrets_are_declared_secret() -> None:
    declared = {n for n in Settings.model_fields if Settings.is_secret(n)}
    assert declared >= KNOWN_SECRETS


def test_api_settings_show_no_secret(store_url: str, store: Store) -> None:
    values = secret_values()
    settings = Settings(database_url=with_password(store_url), lang="en", **values)
    keys = make_keys(store)
    with TestClient(create_app(settings, store), raise_server_exceptions=False) as c:
        r = c.get("/v1/settings", headers=keys.h("admin"))
    assert r.status_code == 200
    assert leaks(r.text, values) == []
    body = r.json()
    assert body["smtp_password"] == "***" and body["inbound_token"] == "***"
    assert body["wecom_robot_url"] == "https://hooks.example.com/***"
    assert body["timezone"] == "Asia/Shanghai"  # the rest is shown as it is


def test_cli_settings_show_no_secret(tmp_path: Path) -> None:
    values = secret_values()
    url = f"postgresql+psycopg://shop:{DB_PASSWORD}@db.example.com:5432/shop"
    env = {**os.environ, **secret_env(url)}
    r = subprocess.run(
        [sys.executable, "-m", "huitouke", "settings"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env=env,
    )
    assert r.returncode == 0, r.stderr
    assert leaks(r.stdout + r.stderr, values) == []
    lines = dict(line.split(" = ", 1) for line in r.stdout.splitlines())
    assert lines["database_url"] == "postgresql+psycopg://shop:***@db.example.com:5432/shop"
    assert lines["dingtalk_secret"] == "***" and lines["webhook_url"].endswith("/***")
    # and a settings error next to them names the bad variable, not the secrets
    bad = subprocess.run(
        [sys.executable, "-m", "huitouke", "settings"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={**env, "HUITOUKE_SMTP_PORT": "not-a-port"},
    )
    assert bad.returncode == 2 and "HUITOUKE_SMTP_PORT" in bad.stderr
    assert leaks(bad.stdout + bad.stderr, values) == []


def test_settings_repr_hides_secrets() -> None:
    values = secret_values()
    s = Settings(**values)
    assert leaks(repr(s) + str(s.model_dump()), values) == []
    assert s.smtp_password.get_secret_value() == values["smtp_password"]


@pytest.mark.slow
def test_a_real_serve_logs_no_secret(store_url: str, store: Store, tmp_path: Path) -> None:
    values = secret_values()
    keys = make_keys(store)
    url = with_password(store_url)
    log = tmp_path / "server.log"
    server = LiveServer(url, log, env=secret_env(url), log_level="debug", access_log=True).start()
    try:
        token = inbound_token(Settings(**values))
        with httpx.Client(base_url=server.base_url, timeout=30) as http:
            s = http.get("/v1/settings", headers=keys.h("admin"))
            assert s.status_code == 200 and leaks(s.text, values) == []
            sms = http.post(
                f"/v1/inbound/sms?token={token}",
                json=[{"phone_number": "13800000000", "content": "T"}],
            )
            assert sms.status_code == 200, sms.text
            assert http.post("/v1/inbound/sms?token=wrong", json=[]).status_code == 401
            assert http.get("/v1/no-such-thing").status_code == 404
            assert http.get("/v1/settings").status_code == 401
    finally:
        server.stop()
    text = log.read_text(encoding="utf-8", errors="replace")
    assert "/v1/settings" in text  # the access log was on
    assert leaks(text, values) == []
