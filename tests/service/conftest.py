"""Fixtures for the REST service: a migrated store per backend, keys of each scope, and an
in-process client (FastAPI TestClient)."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from huitouke.service.apikeys import create_api_key
from huitouke.settings import Settings
from huitouke.store.db import Store

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient


@dataclass
class Keys:
    read: str
    operator: str
    admin: str

    def h(self, scope: str, **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {getattr(self, scope)}", **extra}


def make_keys(store: Store) -> Keys:
    now = datetime.now(UTC)
    out = {}
    with store.begin() as conn:
        for scope in ("read", "operator", "admin"):
            out[scope] = create_api_key(conn, scope=scope, name=f"test-{scope}", now=now)[1]
    return Keys(**out)


@pytest.fixture
def settings(store_url: str) -> Settings:
    return Settings(database_url=store_url, lang="en")


@pytest.fixture
def keys(store: Store) -> Keys:
    return make_keys(store)


@pytest.fixture
def client(settings: Settings, store: Store) -> Iterator[TestClient]:
    from huitouke.service import create_app

    app = create_app(settings, store)
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c
