"""Group commit of ``POST /v1/orders``: concurrent events share units of work, each is
answered as if it had been posted alone, and an event that fails fails alone."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from huitouke.loyalty.ledger import verify_ledger
from huitouke.service.combine import GroupCommit
from huitouke.store.db import Store

from .conftest import Keys
from .test_orders_api import install_shop_program, order


# -- the mechanism, without a database ------------------------------------------------------
def _run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_requests_that_arrive_while_a_unit_runs_share_the_next_unit() -> None:
    release = threading.Event()
    units: list[list[int]] = []

    def many(items: Sequence[int]) -> list[int]:
        units.append(list(items))
        release.wait(5)
        return [i * 10 for i in items]

    def one(item: int) -> int:
        units.append([item])
        release.wait(5)
        return item * 10

    gc: GroupCommit[int, int] = GroupCommit(many, one, max_items=4)

    async def main() -> list[int]:
        first = asyncio.ensure_future(gc.submit(0))
        await asyncio.sleep(0.05)  # the first runs alone; the next ten queue behind it
        rest = [asyncio.ensure_future(gc.submit(i)) for i in range(1, 11)]
        await asyncio.sleep(0.05)
        release.set()
        return await asyncio.gather(first, *rest)

    assert _run(main()) == [i * 10 for i in range(11)]
    # one alone, then the queued ten in arrival order, at most four per unit
    assert units == [[0], [1, 2, 3, 4], [5, 6, 7, 8], [9, 10]]
    assert (gc.units, gc.items, gc.fallbacks) == (4, 11, 0)


class BadItem(ValueError):
    def __init__(self, index: int) -> None:
        super().__init__(f"bad item at {index}")
        self.index = index


@pytest.mark.parametrize("named", [True, False], ids=["culprit-named", "bisect"])
def test_a_failed_unit_is_split_so_only_the_culprit_fails(named: bool) -> None:
    release = threading.Event()
    stored: list[int] = []
    calls: list[list[int]] = []

    def many(items: Sequence[int]) -> list[int]:
        release.wait(5)
        calls.append(list(items))
        if 3 in items:
            raise BadItem(list(items).index(3))  # the unit stores nothing
        stored.extend(items)
        return list(items)

    def one(item: int) -> int:
        release.wait(5)
        calls.append([item])
        if item == 3:
            raise BadItem(0)
        stored.append(item)
        return item

    culprit = (lambda exc, n: exc.index if isinstance(exc, BadItem) else None) if named else None
    gc: GroupCommit[int, int] = (
        GroupCommit(many, one, max_items=100, culprit=culprit)
        if culprit
        else GroupCommit(many, one, max_items=100)
    )

    async def main() -> list[Any]:
        first = asyncio.ensure_future(gc.submit(0))
        await asyncio.sleep(0.05)
        rest = [asyncio.ensure_future(gc.submit(i)) for i in range(1, 6)]
        await asyncio.sleep(0.05)
        release.set()
        return await asyncio.gather(first, *rest, return_exceptions=True)

    out = _run(main())
    assert out[:3] == [0, 1, 2] and out[4:] == [4, 5]
    assert isinstance(out[3], BadItem)
    assert stored == [0, 1, 2, 4, 5]  # arrival order kept
    if named:  # before the culprit, the culprit alone, after it
        assert calls == [[0], [1, 2, 3, 4, 5], [1, 2], [3], [4, 5]]
        assert gc.fallbacks == 1
    else:  # halves until the culprit is alone
        assert calls == [[0], [1, 2, 3, 4, 5], [1, 2], [3, 4, 5], [3], [4, 5]]
        assert gc.fallbacks == 2
    assert gc.items == 6


def test_a_cancelled_request_does_not_break_the_queue() -> None:
    release = threading.Event()

    def one(item: int) -> int:
        release.wait(5)
        return item

    gc: GroupCommit[int, int] = GroupCommit(lambda items: list(items), one, max_items=10)

    async def main() -> list[Any]:
        first = asyncio.ensure_future(gc.submit(0))
        await asyncio.sleep(0.05)
        gone = asyncio.ensure_future(gc.submit(1))
        kept = asyncio.ensure_future(gc.submit(2))
        await asyncio.sleep(0.01)
        gone.cancel()
        release.set()
        return await asyncio.gather(first, kept)

    assert _run(main()) == [0, 2]


# -- through the service, on SQLite and PostgreSQL -------------------------------------------
def _events() -> list[dict[str, Any]]:
    """60 events of 7 customers, with a conflict, a duplicate and a refund among them. Each
    customer spends under 2,000 (the shop program's first tier step), so the points do not
    depend on the order in which concurrent events arrive."""
    events = [
        order(
            order_id=f"g{i}",
            customer_id=f"c{i % 7}",
            amount=f"{100 + i}.50",
            ordered_at=f"2026-11-{1 + i % 20:02d}T12:00:00+08:00",
        )
        for i in range(60)
    ]
    events[17] = order(order_id="taken", customer_id="someone-else", status="refunded")
    events[30] = {**events[5]}  # the same event twice: one of the two is a replay
    events[41] = {**events[6], "status": "refunded", "refunded_amount": events[6]["amount"]}
    return events


def _state(client: Any, keys: Keys) -> dict[str, Any]:
    out = {}
    for c in [f"c{i}" for i in range(7)]:
        body = client.get(f"/v1/customers/{c}/loyalty", headers=keys.h("read")).json()
        out[c] = (
            body["points_balance"],
            body["tier"]["id"],
            sorted((cp["template"], cp["status"], cp["value"]) for cp in body["coupons"]),
        )
    return out


def test_concurrent_orders_end_as_if_posted_one_by_one(
    client: Any, keys: Keys, store: Store, tmp_path: Any
) -> None:
    from fastapi.testclient import TestClient

    from huitouke.service import create_app
    from huitouke.settings import Settings

    from .conftest import make_keys

    install_shop_program(store)
    events = _events()
    taken = order(order_id="taken")  # stored first: event 17 names another customer
    assert client.post("/v1/orders", json=taken, headers=keys.h("operator")).status_code == 200
    with ThreadPoolExecutor(max_workers=24) as pool:
        responses = list(
            pool.map(
                lambda ev: client.post("/v1/orders", json=ev, headers=keys.h("operator")), events
            )
        )
    for i, r in enumerate(responses):
        if i == 17:  # fails alone, with the error it gets alone
            assert r.status_code == 409, r.text
            assert r.json()["error"]["code"] == "order.conflict"
        else:
            assert r.status_code == 200, (i, r.text)
    assert responses[30].json() == responses[5].json()
    replays = [i for i, r in enumerate(responses) if r.headers.get("Idempotent-Replayed")]
    assert len(replays) == 1 and replays[0] in (5, 30)
    gc = client.app.state.ctx.cache["orders.group_commit"]
    assert gc.items == len(events) + 1 and gc.units < gc.items  # events shared units
    with store.connect() as conn:
        assert verify_ledger(conn) == []
    assert client.get("/v1/orders/taken", headers=keys.h("read")).json()["status"] == "paid"
    assert client.get("/v1/orders/g6", headers=keys.h("read")).json()["status"] == "refunded"

    # the same events posted one by one to a fresh SQLite store end in the same state
    ref_store = Store(f"sqlite:///{tmp_path}/reference.db")
    ref_store.migrate()
    install_shop_program(ref_store)
    ref_keys = make_keys(ref_store)
    app = create_app(Settings(database_url=str(ref_store.engine.url), lang="en"), ref_store)
    try:
        with TestClient(app, raise_server_exceptions=False) as ref:
            ref.post("/v1/orders", json=taken, headers=ref_keys.h("operator"))
            statuses = [
                ref.post("/v1/orders", json=ev, headers=ref_keys.h("operator")).status_code
                for ev in events
            ]
            assert statuses == [r.status_code for r in responses]
            assert ref.app.state.ctx.cache["orders.group_commit"].units == len(events) + 1
            assert _state(client, keys) == _state(ref, ref_keys)
    finally:
        ref_store.dispose()
