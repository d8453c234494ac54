"""The same order events through every door give the same store.

``POST /v1/orders`` (one event per request), ``POST /v1/orders/batch``, ``huitouke loyalty
order apply`` / ``apply-file`` and ``huitouke import`` all record order events through
``huitouke.app.orders.record_order_events``: the orders rows (status, amounts, refunds,
channel) and the whole loyalty ledger (balances, entries, lots, orders, members, coupons,
stored results) come out equal, and so do the per-event answers of the doors that give them.
Each door writes under its own id prefix into one store, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import csv
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from huitouke.cli.main import main
from huitouke.loyalty.ledger import verify_ledger
from huitouke.loyalty.service import LoyaltyService
from huitouke.service import create_app
from huitouke.settings import Settings
from huitouke.store.db import Store

from .conftest import Keys
from .test_orders_api import install_shop_program
from .test_orders_batch_api import T0, core_snapshot

DOORS = ("rest", "batch", "cli", "import")


def _ev(oid: str, cid: str, day: int, amount: str, **kw: Any) -> dict[str, Any]:
    at = T0 - timedelta(days=40) + timedelta(days=day, hours=3)
    return {
        "order_id": oid,
        "customer_id": cid,
        "ordered_at": at.isoformat(),
        "amount": amount,
        "currency": "CNY",
        "status": "paid",
        "refunded_amount": "0",
        "channel": "tmall",
        **kw,
    }


def waves() -> list[list[dict[str, Any]]]:
    """Waves of events, each naming an order at most once and sorted by order time (a file
    holds one state per order): first purchases, then refunds and more purchases, then
    cancellations, full refunds, stale states and replays."""
    o1 = _ev("o1", "c1", 0, "299.90")
    o2 = _ev("o2", "c1", 1, "1200")
    o3 = _ev("o3", "c2", 2, "88")
    o4 = _ev("o4", "c3", 3, "2400", channel="pos")
    o5 = _ev("o5", "c2", 10, "488")
    o6 = _ev("o6", "c3", 11, "39.90")
    return [
        [o1, o2, o3, o4],
        [
            {**o1, "status": "partially_refunded", "refunded_amount": "100"},
            {**o2, "status": "partially_refunded", "refunded_amount": "300"},
            o5,
            o6,
        ],
        [
            {**o1, "status": "cancelled", "refunded_amount": "0"},  # cancels after a refund
            {**o2, "status": "paid"},  # stale
            o3,  # a replay
            {**o4, "status": "refunded", "refunded_amount": "2400"},
            {**o5, "channel": "fix"},  # a correction of the channel
        ],
    ]


def _prefixed(ev: dict[str, Any], p: str) -> dict[str, Any]:
    return {**ev, "order_id": p + ev["order_id"], "customer_id": p + ev["customer_id"]}


def _cli(*args: str) -> str:
    import contextlib
    import io

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(list(args))
            rc = 0
        except SystemExit as exc:
            rc = int(exc.code or 0)
    assert rc == 0, (out.getvalue(), err.getvalue())
    return out.getvalue()


def run_door(
    door: str, client: TestClient, keys: Keys, url: str, tmp: Path, p: str
) -> list[dict[str, Any]]:
    """Every wave through ``door``; the per-event answers where the door gives them."""
    op = keys.h("operator")
    answers: list[dict[str, Any]] = []
    for w, wave in enumerate(waves()):
        events = [_prefixed(ev, p) for ev in wave]
        if door == "rest":
            for ev in events:
                r = client.post("/v1/orders", json=ev, headers=op)
                assert r.status_code == 200, r.text
                replayed = r.headers.get("Idempotent-Replayed") == "true"
                answers.append({**r.json(), "replayed": replayed})
        elif door == "batch":
            r = client.post("/v1/orders/batch", json={"events": events}, headers=op)
            assert r.status_code == 200, r.text
            answers += r.json()["results"]
        elif door == "cli" and w == 0:  # one command per event: each prints its answer
            for ev in events:
                out = _cli(
                    "loyalty", "order", "apply", "--database-url", url,
                    "--order-id", ev["order_id"], "--customer", ev["customer_id"],
                    "--amount", ev["amount"], "--at", ev["ordered_at"],
                    "--status", ev["status"], "--refunded", ev["refunded_amount"],
                    "--currency", ev["currency"], "--channel", ev["channel"],
                )  # fmt: skip
                answers.append(json.loads(out))
        elif door == "cli":
            stream = tmp / f"{p}wave{w}.jsonl"
            stream.write_text("\n".join(json.dumps(e) for e in events) + "\n", encoding="utf-8")
            out = _cli("loyalty", "order", "apply-file", str(stream), "--database-url", url)
            assert json.loads(out)["events"] == len(events)
        else:
            f = tmp / f"{p}wave{w}.csv"
            with f.open("w", newline="", encoding="utf-8") as fh:
                wr = csv.DictWriter(fh, fieldnames=list(events[0]))
                wr.writeheader()
                wr.writerows(events)
            _cli("import", str(f), "--database-url", url)
    return answers


def test_the_same_events_through_every_door_give_the_same_store(
    store: Store,
    store_url: str,
    keys: Keys,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from loyalty.test_batch import coupon_codes, normalise, snapshot

    install_shop_program(store)
    # one instant for every door's loyalty clock (entries, lots and coupons carry it)
    monkeypatch.setattr(LoyaltyService, "now", lambda self: T0)
    monkeypatch.chdir(tmp_path)
    app = create_app(Settings(database_url=store_url, lang="en"), store, clock=lambda: T0)
    answers, ledgers, cores = {}, {}, {}
    with TestClient(app, raise_server_exceptions=False) as client:
        for door in DOORS:
            p = f"{door}~"
            raw = run_door(door, client, keys, store_url, tmp_path, p)
            codes = coupon_codes(store, p)
            answers[door] = normalise(raw, p, codes)
            ledgers[door] = snapshot(store, p)
            core = core_snapshot(store, p)
            for o in core["orders"].values():
                o.pop("batch_id")  # the import's batch number
            cores[door] = normalise(core, p, codes)
    with store.connect() as conn:
        assert verify_ledger(conn) == []
    for door in DOORS[1:]:
        assert cores[door] == cores["rest"], door
        assert ledgers[door] == ledgers["rest"], door
    # the answers of the first wave: one event per command or request, or one batch
    assert answers["batch"] == answers["rest"]
    assert answers["cli"] == answers["rest"][:4]
    # what the stream did, so that the equality above means something
    orders = cores["rest"]["orders"]
    assert orders["o1"]["status"] == "cancelled" and orders["o2"]["status"] == "partially_refunded"
    assert orders["o4"]["status"] == "refunded" and orders["o5"]["channel"] == "fix"
    stale = answers["rest"][9]
    assert stale["order"]["order_id"] == "o2" and stale["loyalty"]["ignored"] == "stale"
    assert any(e for e in ledgers["rest"]["entries"].values())
