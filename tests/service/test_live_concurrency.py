"""A real server under real concurrency: of 10,000 redemption attempts of 100 coupon codes
from 50 concurrent clients, exactly 100 succeed and every other attempt gets
409 ``coupon.already_redeemed`` — on SQLite (writers queue on BEGIN IMMEDIATE with a busy
timeout and retries) and on PostgreSQL (a conditional UPDATE decides the winner)."""

from __future__ import annotations

import random
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from huitouke.loyalty import tables as lt
from huitouke.loyalty.ledger import verify_ledger
from huitouke.loyalty.programs_repo import get_program
from huitouke.loyalty.service import LoyaltyService
from huitouke.settings import Settings
from huitouke.store.db import Store

from .conftest import make_keys
from .live import LiveServer
from .test_orders_api import install_shop_program

CODES = 100
ATTEMPTS = 10_000
CLIENTS = 50


def issue_coupons(store: Store, n: int) -> list[tuple[str, str]]:
    """n fixed-value coupons, each to its own customer: [(code, holder)]."""
    with store.begin() as conn:
        program = get_program(conn)
        assert program is not None
        svc = LoyaltyService(program.in_store_zone(Settings().timezone))
        out = []
        for i in range(n):
            c = svc.issue_coupon(conn, "fixed20", f"holder{i:03d}", idempotency_key=f"bench-{i}")
            out.append((c["code"], f"holder{i:03d}"))
    return out


@pytest.mark.slow
def test_each_code_is_redeemed_exactly_once(store: Store, store_url: str, tmp_path: Path) -> None:
    install_shop_program(store)
    keys = make_keys(store)
    coupons = issue_coupons(store, CODES)
    attempts = [
        (code, holder, f"order-{code}-{k}")
        for code, holder in coupons
        for k in range(ATTEMPTS // CODES)
    ]
    random.Random(7).shuffle(attempts)

    server = LiveServer(store_url, tmp_path / "server.log").start()
    local = threading.local()

    def attempt(a: tuple[str, str, str]) -> tuple[int, str]:
        client = getattr(local, "client", None)
        if client is None:
            client = local.client = httpx.Client(
                base_url=server.base_url, headers=keys.h("operator"), timeout=60
            )
        code, holder, order_id = a
        r = client.post(
            f"/v1/coupons/{code}/redeem", json={"order_id": order_id, "customer_id": holder}
        )
        body = r.json()
        return r.status_code, body.get("error", {}).get("code", body.get("code", ""))

    try:
        with ThreadPoolExecutor(max_workers=CLIENTS) as pool:
            results = list(pool.map(attempt, attempts))
    finally:
        server.stop()

    statuses = Counter(s for s, _ in results)
    assert statuses == {200: CODES, 409: ATTEMPTS - CODES}, (
        statuses,
        server.log_path.read_text()[-3000:],
    )
    assert {c for s, c in results if s == 409} == {"coupon.already_redeemed"}
    winners = {c for (s, c) in results if s == 200}
    assert winners == {code for code, _ in coupons}
    with store.connect() as conn:
        redeemed = conn.execute(
            sa.select(lt.coupons.c.code, lt.coupons.c.redeemed_order_id).where(
                lt.coupons.c.status == "redeemed"
            )
        ).all()
        events = conn.execute(
            sa.select(sa.func.count())
            .select_from(lt.coupon_events)
            .where(lt.coupon_events.c.kind == "redeemed")
        ).scalar_one()
        assert verify_ledger(conn) == []
    assert len(redeemed) == CODES and events == CODES
    assert "database is locked" not in server.log_path.read_text()
