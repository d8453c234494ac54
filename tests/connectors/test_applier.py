"""Webhooks acknowledged once stored and applied in the background: nothing applied twice
by concurrent appliers, nothing stranded by a service stopped between the acknowledgement
and the apply (in process, and a real ``huitouke serve`` killed with SIGKILL)."""

from __future__ import annotations

import json
import threading
import time
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select, text

from huitouke.app import connectors as uc
from huitouke.connectors.signatures import hmac_sha256_b64
from huitouke.connectors.tables import connector_inbox
from huitouke.settings import Settings
from huitouke.store.db import Store
from service.live import LiveServer

from .conftest import delivered, program_loyalty, snapshot
from .fakes import T0
from .test_webhooks import SECRET, rest_order

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

pytestmark = pytest.mark.timeout(180)


def _add(store: Store, settings: Settings) -> None:
    uc.add_connector(
        store,
        settings,
        uc.ConnectorIn(
            kind="shopify",
            name="shop1",
            api_base_url="http://127.0.0.1:9",
            webhook_secret=SECRET,
            access_token="shpat_test",
        ),
    )


def _headers(body: bytes, topic: str = "orders/create") -> dict[str, str]:
    return {
        "x-shopify-topic": topic,
        "x-shopify-hmac-sha256": hmac_sha256_b64(SECRET, body),
        "content-type": "application/json",
    }


def _inbox(store: Store) -> list[dict[str, Any]]:
    with store.connect() as conn:
        q = select(connector_inbox).order_by(connector_inbox.c.inbox_id)
        return [dict(r) for r in conn.execute(q).mappings()]


def _stream() -> list[bytes]:
    """Ten orders, each created then refunded in part; and one created again (a repeat)."""
    out = []
    for i in range(10):
        out.append(json.dumps(rest_order(i, T0 + timedelta(hours=1, minutes=i))).encode())
        refunded = rest_order(i, T0 + timedelta(hours=2, minutes=i), refunds=("30.00",))
        out.append(json.dumps(refunded).encode())
    return out


@pytest.fixture
def client(settings: Settings, store: Store) -> Iterator[TestClient]:
    from huitouke.service import create_app

    with TestClient(create_app(settings, store), raise_server_exceptions=False) as c:
        yield c


def test_acknowledged_pending_then_applied_once(
    client: TestClient, settings: Settings, store: Store
) -> None:
    _add(store, settings)
    answers = []
    for body in _stream():
        r = client.post("/v1/connectors/shop1/webhook", content=body, headers=_headers(body))
        assert r.status_code == 200, r.text
        answers.append(r.json())
    # the answer is given once the row is committed, before (or while) it is applied
    assert {a["status"] for a in answers} <= {"pending", "applied"}
    assert all(a["replayed"] is False for a in answers)
    last = delivered(client, r)
    assert last.acked == answers[-1]["status"] and last.json()["status"] == "applied"
    rows = _inbox(store)
    assert [r["status"] for r in rows] == ["applied"] * 20
    assert all(r["attempts"] == 1 for r in rows)
    once = snapshot(store, "shop1")
    assert len(once["orders"]) == 10
    assert {o[1] for o in once["orders"].values()} == {"partially_refunded"}
    # a sweep and a retry afterwards find nothing to apply; the platform resending changes
    # nothing either
    again = uc.apply_pending(store, settings, received_before=datetime.now(UTC) + timedelta(1))
    assert again == {}
    assert client.post(
        "/v1/connectors/shop1/webhook", content=_stream()[0], headers=_headers(_stream()[0])
    ).json() == {"inbox_id": rows[0]["inbox_id"], "replayed": True, "status": "replayed"}
    assert snapshot(store, "shop1") == once and len(_inbox(store)) == 20


def test_concurrent_appliers_apply_each_row_once(settings: Settings, store: Store) -> None:
    """The service's applier and the scheduler's sweep (or two workers) at the same rows:
    each row is applied by one of them, once (its attempts say so), the orders and the
    ledger as if each delivery had been applied once."""
    _add(store, settings)
    key = uc.webhook_key(store, settings, "shop1")
    now = datetime.now(UTC)
    deliveries = [uc.accept_delivery("shop1", key, _headers(b), b, now) for b in _stream()]
    receipts = uc.store_deliveries(store, deliveries)
    loyalty = program_loyalty("USD")
    errors: list[BaseException] = []

    def background() -> None:
        try:
            uc.apply_received(
                store, settings, "shop1", "shopify", list(zip(receipts, deliveries, strict=True)),
                loyalty=loyalty,
            )  # fmt: skip
        except BaseException as exc:  # reported below
            errors.append(exc)

    def sweep() -> None:
        try:
            uc.apply_pending(
                store, settings, received_before=now + timedelta(seconds=1), loyalty=loyalty
            )
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=f) for f in (background, sweep, background, sweep)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(120)
    assert not errors, errors
    rows = _inbox(store)
    assert [r["status"] for r in rows] == ["applied"] * 20
    assert [r["attempts"] for r in rows] == [1] * 20  # never applied twice
    got = snapshot(store, "shop1")
    assert {o[1] for o in got["orders"].values()} == {"partially_refunded"}
    # the ledger: 10 orders earned 100 points each and gave back 30 each, once
    assert got["points"] == 10 * 100 - 10 * 30


def test_start_applies_what_a_stopped_service_acknowledged(
    settings: Settings, store: Store
) -> None:
    """Deliveries stored and acknowledged by a service that stopped before applying them
    are applied when the service starts again."""
    _add(store, settings)
    for body in _stream()[:6]:
        uc.receive_webhook(store, settings, "shop1", _headers(body), body)  # stored only
    assert {r["status"] for r in _inbox(store)} == {"pending"}
    assert snapshot(store, "shop1")["orders"] == {}
    from huitouke.service import create_app
    from huitouke.service.webhook_door import applier

    with TestClient(create_app(settings, store)) as c:
        assert applier(c.app.state.ctx).wait_idle(60)  # type: ignore[attr-defined]
    rows = _inbox(store)
    assert [r["status"] for r in rows] == ["applied"] * 6 and all(r["attempts"] == 1 for r in rows)
    assert {o[1] for o in snapshot(store, "shop1")["orders"].values()} == {"partially_refunded"}


@pytest.mark.postgres
def test_killed_after_the_acknowledgement_applied_after_restart(
    postgres_url: str, tmp_path: Path
) -> None:
    """A real ``huitouke serve`` acknowledges a delivery (200), is killed (SIGKILL) before
    it applied it — a transaction holding the orders table keeps the applier from getting
    there — and applies it when started again: no delivery acknowledged is lost."""
    from huitouke.core.secretbox import new_key

    enc = new_key()
    settings = Settings(database_url=postgres_url, lang="en", encryption_keys=enc)
    store = Store(postgres_url)
    store.migrate()
    try:
        _add(store, settings)
        server = LiveServer(
            postgres_url, tmp_path / "serve.log", env={"HUITOUKE_ENCRYPTION_KEYS": enc}
        )
        body = json.dumps(rest_order(1, T0 + timedelta(hours=1))).encode()
        with store.engine.connect() as blocker:
            blocker.execute(text("LOCK TABLE orders IN EXCLUSIVE MODE"))  # held: no commit
            server.start()
            try:
                r = httpx.post(
                    f"{server.base_url}/v1/connectors/shop1/webhook",
                    content=body,
                    headers=_headers(body),
                    timeout=30,
                )
                assert r.status_code == 200 and r.json()["status"] == "pending", r.text
                time.sleep(0.5)  # the applier is waiting for the lock
            finally:
                server.kill()
            blocker.rollback()
        (row,) = _inbox(store)
        assert row["status"] == "pending" and snapshot(store, "shop1")["orders"] == {}
        server.start()
        try:
            deadline = time.monotonic() + 60
            while _inbox(store)[0]["status"] == "pending" and time.monotonic() < deadline:
                time.sleep(0.2)
        finally:
            server.stop()
        (row,) = _inbox(store)
        assert row["status"] == "applied" and row["attempts"] == 1
        assert snapshot(store, "shop1")["orders"]["1001"][1] == "paid"
    finally:
        store.dispose()
