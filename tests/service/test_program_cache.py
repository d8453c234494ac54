"""A worker's cached loyalty program: a program saved through the API applies at once; one
saved elsewhere (the CLI, another worker) applies once ``program_cache_seconds`` pass."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient

from huitouke.loyalty.program import load_program
from huitouke.loyalty.programs_repo import save_program
from huitouke.settings import Settings
from huitouke.store.db import Store

from .conftest import Keys

LATTE = {"id": "latte", "kind": "free_item", "value": 28, "sku": "latte"}


def _client(store_url: str, store: Store, ttl: float) -> Iterator[TestClient]:
    from huitouke.service import create_app

    settings = Settings(database_url=store_url, lang="en", program_cache_seconds=ttl)
    with TestClient(create_app(settings, store), raise_server_exceptions=False) as c:
        yield c


def _issue(client: TestClient, keys: Keys, key: str) -> int:
    r = client.post(
        "/v1/coupons",
        json={"template": "latte", "customer_id": "c1", "idempotency_key": key},
        headers=keys.h("operator"),
    )
    return r.status_code


def _save_elsewhere(store: Store) -> None:
    """What `huitouke loyalty program set` does: a new version, not through the worker."""
    program = load_program({"id": "default", "name": "咖啡", "coupon_templates": [LATTE]})
    with store.begin() as conn:
        save_program(conn, program, now=datetime.now(UTC))


@pytest.mark.parametrize("ttl", [0.0, 0.5])
def test_program_saved_elsewhere_applies_within_the_cache_time(
    store_url: str, store: Store, keys: Keys, ttl: float
) -> None:
    client = _client(store_url, store, ttl)
    c = next(client)
    try:
        assert _issue(c, keys, "a") == 404  # the default program has no such template
        _save_elsewhere(store)
        if ttl:
            # still the cached program within the cache time…
            assert _issue(c, keys, "b") == 404
            time.sleep(ttl + 0.1)
        # …and the new one after it (at once with 0)
        assert _issue(c, keys, "c") == 200
    finally:
        next(client, None)


def test_program_saved_through_the_api_applies_at_once(
    store_url: str, store: Store, keys: Keys
) -> None:
    client = _client(store_url, store, 3600)
    c = next(client)
    try:
        assert _issue(c, keys, "a") == 404
        r = c.put(
            "/v1/program",
            json={"name": "咖啡", "coupon_templates": [LATTE]},
            headers=keys.h("admin"),
        )
        assert r.status_code == 200
        assert _issue(c, keys, "b") == 200
    finally:
        next(client, None)
