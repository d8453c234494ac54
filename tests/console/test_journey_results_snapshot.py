"""The journeys' results snapshot: the list and a journey's page read the ``journey_results``
snapshot for the merchant's today, with the numbers of ``huitouke journeys results`` for the
same store and day; a new assignment, send, link click or order marks it stale; another day
is computed live; a journey run refreshes it. Through the production app, SQLite and
PostgreSQL."""

from __future__ import annotations

import html
import json
import re
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, update

from huitouke.app.snapshots import (
    read_snapshot,
    refresh_after_journey_run,
    refresh_snapshots,
    refresh_stale_snapshots,
    snapshot_status,
)
from huitouke.journeys.loader import builtin_journeys
from huitouke.journeys.service import run_journeys
from huitouke.journeys.tables import journey_assignments
from huitouke.measurement.tables import link_clicks
from huitouke.messaging.channels.file import FileChannel
from huitouke.messaging.dispatcher import Dispatcher
from huitouke.messaging.rules import ContactPolicy
from huitouke.messaging.tables import outbox
from huitouke.store.tables import customers, orders

from .conftest import Console, csrf_of
from .test_journeys_console import _cli, _client, _seed, run_now

AS_OF = "2026-03-20"


def state(page: str) -> str:
    found = re.search(r'id="journey-snapshot" data-state="([a-z]+)"', page)
    assert found, page[:3000]
    return found.group(1)


def shown(page: str) -> dict[str, Any]:
    """The results as the journey page carries them (the data-* of the results table)."""
    values = dict(re.findall(r'data-key="(\w+)" data-value="([^"]*)"', page))
    audience = re.search(r'data-key="audience">(\d+)<', page)
    assert audience, page[:3000]
    return {
        "audience": int(audience.group(1)),
        "incremental_repurchase": values["incremental_repurchase"],
        "incremental_ci95": json.loads(html.unescape(values["incremental_ci95"])),
        "incremental_revenue": values["incremental_revenue"],
        "cost": values["cost"],
        "roi": values["roi"],
    }


def expected(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "audience": row["audience"],
        "incremental_repurchase": str(row["incremental_repurchase"]),
        "incremental_ci95": row["incremental_ci95"],
        "incremental_revenue": str(row["incremental_revenue"]),
        "cost": str(row["cost"]),
        "roi": str(row["roi"]),
    }


def _order(i: int, when: datetime, updated: datetime) -> dict[str, Any]:
    return {
        "order_id": f"later{i}-{when:%m%d%H}",
        "customer_id": f"c{i}",
        "ordered_at": when,
        "amount": Decimal("120.00"),
        "currency": "CNY",
        "status": "paid",
        "refunded_amount": Decimal(0),
        "updated_at": updated,
    }


def _refresh(console: Console) -> None:
    [report] = refresh_snapshots(
        console.store, console.settings, kinds=["journey_results"], now=console.clock
    )
    assert report.error is None


def test_the_pages_read_the_snapshot_with_the_numbers_of_the_cli(
    console: Console, monkeypatch: pytest.MonkeyPatch
) -> None:
    _seed(console)
    today = console.clock().date().isoformat()  # the console's clock: the merchant's today
    c = _client(console)
    try:
        token = csrf_of(c)
        c.post("/journeys/second_order/enable", data={"csrf_token": token})
        run_now(c, "second_order", AS_OF, token)
        with console.store.connect() as conn:  # no snapshot yet: a run does not make one
            assert read_snapshot(conn, "journey_results", _params(console)) is None
        sent_at = datetime(2026, 3, 20, 3, tzinfo=UTC)
        with console.store.begin() as conn:
            conn.execute(
                update(outbox).values(status="sent", sent_at=sent_at, delivered_at=sent_at)
            )
            conn.execute(
                orders.insert(),
                [_order(i, datetime(2026, 3, 22, 4, tzinfo=UTC), sent_at) for i in range(0, 30, 3)],
            )
        # no snapshot yet: computed live
        page = c.get("/journeys/second_order").text
        assert state(page) == "live"
        assert state(c.get("/journeys").text) == "live"

        _refresh(console)
        cli = _cli(console, monkeypatch, "journeys", "results", "--as-of", today,
                   "--format", "json")  # fmt: skip
        [row] = [r for r in cli["journeys"] if r["journey_id"] == "second_order"]
        assert row["treatment_measured"] > 0 and row["converted_treatment"] > 0
        with console.store.connect() as conn:
            snap = read_snapshot(conn, "journey_results", _params(console))
        assert snap is not None and snap.payload["as_of"] == today
        # the stored rows are the CLI's rows, field for field
        assert snap.payload["rows"] == cli["journeys"]

        # the pages no longer compute: the live computation is not called
        import huitouke.journeys.results as results

        def refuse(*args: Any, **kwargs: Any) -> Any:
            raise AssertionError("computed live")

        monkeypatch.setattr(results, "journey_results", refuse)
        page = c.get("/journeys/second_order").text
        assert state(page) == "fresh"
        assert 'id="journey-snapshot-refresh"' in page  # an operator may refresh
        assert shown(page) == expected(row)
        listed = c.get("/journeys").text
        assert state(listed) == "fresh"
        line = re.search(r'<tr data-journey="second_order".*?</tr>', listed, re.S)
        assert line and "pp" in line.group(0)  # the uplift, from the snapshot
        monkeypatch.undo()

        # another day: computed live, the CLI's numbers for that day
        page = c.get("/journeys/second_order", params={"as_of": "2026-04-30"}).text
        assert state(page) == "live"
        other = _cli(console, monkeypatch, "journeys", "results", "--as-of", "2026-04-30",
                     "--format", "json")  # fmt: skip
        [row_other] = [r for r in other["journeys"] if r["journey_id"] == "second_order"]
        assert shown(page) == expected(row_other)
    finally:
        c.__exit__(None, None, None)


def _params(console: Console) -> dict[str, Any]:
    from huitouke.app.snapshots import journey_results_params

    return journey_results_params(console.settings)


def _stale(console: Console, c: Any) -> bool:
    page = c.get("/journeys/second_order").text
    listed = c.get("/journeys").text
    assert state(page) == state(listed)
    assert state(page) in ("fresh", "stale")
    # `huitouke snapshots status` (the real clock: the test's clock is set to now) agrees
    rows, _ = snapshot_status(console.store)
    [mine] = [r for r in rows if r.kind == "journey_results"]
    assert mine.stale == (state(page) == "stale")
    return state(page) == "stale"


def test_a_new_assignment_send_click_or_order_marks_it_stale(
    console: Console, tmp_path: Path
) -> None:
    console.clock.now = datetime.now(UTC)  # the merchant's today is the scheduler's today
    _seed(console)
    c = _client(console)
    try:
        token = csrf_of(c)
        c.post("/journeys/second_order/enable", data={"csrf_token": token})
        run_now(c, "second_order", AS_OF, token)
        _refresh(console)
        assert not _stale(console, c)
        with console.store.connect() as conn:
            ids = [r[0] for r in conn.execute(select(outbox.c.message_id))]
        assert len(ids) > 2

        # a message sent, by the outbox worker (its receipt is written with the status)
        at = datetime(2026, 3, 21, 3, tzinfo=UTC)
        stats = Dispatcher(
            console.store,
            {"sms": FileChannel(tmp_path / "sent.jsonl", name="sms")},
            lambda: at,
            policy=ContactPolicy(default_zone="Asia/Shanghai"),
        ).drain()
        assert stats.sent > 0, stats
        assert _stale(console, c)
        # the scheduler's stale refresh recomputes it
        assert "journey_results" in [
            r.kind for r in refresh_stale_snapshots(console.store, console.settings)
        ]
        assert not _stale(console, c)
        assert "journey_results" not in [
            r.kind for r in refresh_stale_snapshots(console.store, console.settings)
        ]

        # an order
        with console.store.begin() as conn:
            conn.execute(orders.insert(), [_order(3, datetime(2026, 3, 22, 4, tzinfo=UTC), at)])
        assert _stale(console, c)
        _refresh(console)
        assert not _stale(console, c)

        # a link click
        with console.store.connect() as conn:
            m = conn.execute(select(outbox).where(outbox.c.message_id == ids[0])).mappings().one()
        with console.store.begin() as conn:
            conn.execute(
                link_clicks.insert().values(
                    token_id="t1", journey_id=m["journey_id"], customer_id=m["customer_id"],
                    step_id=m["step_id"], occurrence=m["occurrence"], url="https://example.com/",
                    clicked_at=at,
                )
            )  # fmt: skip
        assert _stale(console, c)
        _refresh(console)
        assert not _stale(console, c)

        # an assignment, written by a run of another day (the use case the CLI and the
        # scheduler call; neither of those refreshes here)
        # (a new buyer of 03-14 first, whose second-order reminder is due on 03-21)
        first = datetime(2026, 3, 14, 4, tzinfo=UTC)
        with console.store.begin() as conn:
            conn.execute(
                customers.insert().values(
                    customer_id="new1", tags=[], attributes={}, consent={"sms": True},
                    phone="13800009999", created_at=first, updated_at=first,
                )
            )  # fmt: skip
            conn.execute(orders.insert(), [{**_order(1, first, first), "customer_id": "new1"}])
        _refresh(console)
        assert not _stale(console, c)
        [journey] = [j for j in builtin_journeys() if j.id == "second_order"]
        with console.store.connect() as conn:
            before = conn.execute(select(func.count()).select_from(journey_assignments)).scalar()
        res = run_journeys(
            console.store, [journey.model_copy(update={"enabled": True})], date(2026, 3, 21),
            settings=console.settings, dry_run=False, now=datetime(2026, 3, 21, 2, tzinfo=UTC),
        )  # fmt: skip
        assert res.assignments_inserted > 0, res.plan.summary
        with console.store.connect() as conn:
            after = conn.execute(select(func.count()).select_from(journey_assignments)).scalar()
        assert after == before + res.assignments_inserted
        assert _stale(console, c)
        _refresh(console)
        assert not _stale(console, c)

        # a journey run refreshes it (the console's run button)
        ran = run_now(c, "second_order", "2026-03-27", token)
        assert state(ran) == "live"  # the run's page shows the run's day
        assert not _stale(console, c)
        with console.store.connect() as conn:
            snap = read_snapshot(conn, "journey_results", _params(console))
            n = conn.execute(
                select(journey_assignments.c.customer_id).where(
                    journey_assignments.c.journey_id == "second_order"
                )
            ).all()
        assert snap is not None
        [row] = [r for r in snap.payload["rows"] if r["journey_id"] == "second_order"]
        assert row["audience"] == len(n)
    finally:
        c.__exit__(None, None, None)


def test_a_run_refreshes_only_a_store_that_has_the_snapshot(
    console: Console, monkeypatch: pytest.MonkeyPatch
) -> None:
    _seed(console, n=6)
    assert refresh_after_journey_run(console.store, console.settings, now=console.clock) == []
    _refresh(console)
    [report] = refresh_after_journey_run(console.store, console.settings, now=console.clock)
    assert report.kind == "journey_results" and report.error is None
    with console.store.connect() as conn:
        before = read_snapshot(conn, "journey_results", _params(console))
    assert before is not None and before.payload["rows"] == []
    # `huitouke journeys run` (not a dry run) recomputes it: the new assignments are in it
    from huitouke.journeys import repo

    with console.store.begin() as conn:
        repo.set_enabled(conn, "second_order", True)
    _cli(console, monkeypatch, "journeys", "run", "--as-of", AS_OF, "--format", "json")
    with console.store.connect() as conn:
        after = read_snapshot(conn, "journey_results", _params(console))
        assigned = conn.execute(select(journey_assignments.c.customer_id)).all()
    assert assigned and after is not None and after.computed_at != before.computed_at
    assert sum(r["audience"] for r in after.payload["rows"]) == len(assigned)
