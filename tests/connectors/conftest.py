"""Fixtures of the connector tests: settings with an encryption key, a loyalty program so
double-recorded orders would show as double points, and a reference store to compare with."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Connection, func, select

from huitouke.core.secretbox import new_key
from huitouke.loyalty import tables as lt
from huitouke.loyalty.program import load_program
from huitouke.loyalty.service import LoyaltyService
from huitouke.settings import Settings
from huitouke.store.db import Store
from huitouke.store.tables import orders

TZ = "Asia/Shanghai"


@pytest.fixture
def settings(store_url: str) -> Settings:
    return Settings(database_url=store_url, lang="en", encryption_keys=new_key(), timezone=TZ)


@pytest.fixture
def ref_store(tmp_path: Any) -> Iterator[Store]:
    """A second, empty SQLite store to record the expected orders into."""
    s = Store(f"sqlite:///{tmp_path / 'ref.db'}")
    s.migrate()
    yield s
    s.dispose()


def program_loyalty(currency: str) -> Callable[[Connection], LoyaltyService]:
    svc = LoyaltyService(
        load_program(
            {"id": "default", "currency": currency, "earn": {"points_per_unit": 1, "unit": 1}}
        ).in_store_zone(TZ)
    )
    return lambda conn: svc


def snapshot(store: Store, source: str) -> dict[str, Any]:
    """The orders of ``source`` and the ledger's totals: what a gap or a double would change."""
    with store.connect() as conn:
        rows = {
            r.order_id: (r.customer_id, r.status, r.amount, r.refunded_amount, r.currency)
            for r in conn.execute(select(orders).where(orders.c.source == source))
        }
        ledger = conn.execute(
            select(func.count(), func.coalesce(func.sum(lt.entries.c.delta), 0))
        ).one()
    return {"orders": rows, "entries": ledger[0], "points": ledger[1]}


@dataclass
class Keys:
    read: str
    operator: str
    admin: str

    def h(self, scope: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {getattr(self, scope)}"}


def make_keys(store: Store) -> Keys:
    from huitouke.service.apikeys import create_api_key

    now = datetime.now(UTC)
    out = {}
    with store.begin() as conn:
        for scope in ("read", "operator", "admin"):
            out[scope] = create_api_key(conn, scope=scope, name=f"test-{scope}", now=now)[1]
    return Keys(**out)


@pytest.fixture
def keys(store: Store) -> Keys:
    return make_keys(store)


@dataclass
class Answer:
    """A webhook's answer once the service's background applier is done with it:
    ``acked`` is the status the answer said (``pending`` until applied), ``json()`` the
    answer with ``status`` as the inbox row says it after the apply."""

    status_code: int
    acked: str | None
    body: dict[str, Any]
    text: str

    def json(self) -> dict[str, Any]:
        return self.body


def delivered(client: Any, response: Any) -> Answer:
    """Wait for the app's background applier (``client``: a ``TestClient`` of the
    production app), then read the delivery's inbox row."""
    from huitouke.connectors.tables import connector_inbox
    from huitouke.service.webhook_door import applier

    ctx = client.app.state.ctx
    assert applier(ctx).wait_idle(60), "the background applier did not finish"
    body = response.json()
    if response.status_code != 200:
        return Answer(response.status_code, None, body, response.text)
    with ctx.store.connect() as conn:
        status = conn.execute(
            select(connector_inbox.c.status).where(connector_inbox.c.inbox_id == body["inbox_id"])
        ).scalar_one()
    acked = body["status"]
    assert acked in ("pending", "failed", "ignored", "replayed"), body
    return Answer(200, acked, {**body, "status": status}, response.text)
