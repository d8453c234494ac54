"""Stamps without an order (``add_stamps``): visits and operator grants, on SQLite and
PostgreSQL. They share the order path's stamp code, so the ladder, card completion and
owed stamps behave exactly as for order stamps."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from huitouke.errors import ConflictError, InputError, NotFoundError
from huitouke.loyalty import LoyaltyService
from huitouke.loyalty import tables as lt
from huitouke.store.db import Store

from .conftest import T0, Clock, assert_ledger_ok, order

Make = Callable[[Any], LoyaltyService]
DAY = timedelta(days=1)


def _card(svc: Any, store: Store, customer: str = "c1") -> dict[str, Any]:
    with store.connect() as conn:
        return dict(svc.service.customer_loyalty(conn, customer)["stamp_cards"][0])


def test_visit_earns_one_stamp_per_local_day_and_pays_the_ladder(
    store: Store, make_svc: Make, clock: Clock
) -> None:
    svc = make_svc("cafe").bound(store)
    first = svc.add_stamps("c1", "coffee", idempotency_key="v1")
    assert first["kind"] == "visit" and first["ignored"] is None
    assert (first["added"], first["balance"], first["completed_cards"]) == (1, 1, 0)
    # cafe.yaml: 1 stamp → americano
    assert [c["template"] for c in first["coupons_issued"]] == ["americano"]
    assert first["rewards"] == [first["coupons_issued"][0]["code"]]
    assert first["day"] == "2026-03-01" and first["replayed"] is False
    # a second visit the same local day earns nothing, and says so
    again = svc.add_stamps(
        "c1", "coffee", idempotency_key="v2", visited_at=clock() - timedelta(hours=3)
    )
    assert again["added"] == 0 and again["ignored"] == "already_stamped_today"
    assert again["balance"] == 1 and again["coupons_issued"] == []
    # the same key is a replay: same result, nothing changes
    assert svc.add_stamps("c1", "coffee", idempotency_key="v1") == {**first, "replayed": True}
    nxt = svc.add_stamps("c1", "coffee", idempotency_key="v3", visited_at=clock.advance(days=1))
    assert nxt["added"] == 1 and nxt["balance"] == 2
    assert _card(svc, store)["stamps"] == 2
    assert_ledger_ok(store)


def test_local_day_is_cut_in_the_program_zone(store: Store, make_svc: Make, clock: Clock) -> None:
    svc = make_svc("cafe").bound(store)  # Asia/Shanghai, UTC+8
    clock.t = T0 + 10 * DAY
    late = T0.replace(hour=15, minute=30)  # 23:30 in Shanghai
    early = late + timedelta(hours=1)  # 00:30 the next local day, same UTC day
    assert svc.add_stamps("c1", "coffee", idempotency_key="a", visited_at=late)["added"] == 1
    r = svc.add_stamps("c1", "coffee", idempotency_key="b", visited_at=early)
    assert r["added"] == 1 and r["day"] == "2026-03-02"
    # 01:00 and 23:00 in Shanghai on one local day (two UTC dates): one stamp
    d1 = T0.replace(day=4, hour=17)  # 2026-03-05 01:00 local
    d2 = T0.replace(day=5, hour=15)  # 2026-03-05 23:00 local
    assert svc.add_stamps("c1", "coffee", idempotency_key="c", visited_at=d1)["added"] == 1
    r = svc.add_stamps("c1", "coffee", idempotency_key="d", visited_at=d2)
    assert r["ignored"] == "already_stamped_today"
    assert_ledger_ok(store)


def test_order_and_visit_share_the_day(store: Store, make_svc: Make, clock: Clock) -> None:
    svc = make_svc("cafe").bound(store)
    o = svc.apply_order(order("o1", amount="30", at=clock()))
    assert o["stamps"][0]["added"] == 1
    v = svc.add_stamps("c1", "coffee", idempotency_key="v1", visited_at=clock())
    assert v["ignored"] == "already_stamped_today"
    # a visit first, then an order the same day: the order earns no stamp
    day2 = clock.advance(days=1)
    assert svc.add_stamps("c1", "coffee", idempotency_key="v2", visited_at=day2)["added"] == 1
    o2 = svc.apply_order(order("o2", amount="30", at=day2))
    assert o2["stamps"] == [] and o2["points_earned"] == "30"
    assert _card(svc, store)["stamps"] == 2
    assert_ledger_ok(store)


def test_visits_complete_the_card_exactly_as_orders_do(
    store: Store, make_svc: Make, clock: Clock
) -> None:
    """Nine visits and nine orders on other days: the same ladder, completion and restart."""
    svc = make_svc("cafe").bound(store)
    clock.t = T0 + 20 * DAY
    by_visit, by_order = [], []
    for i in range(9):
        at = T0 + i * DAY
        v = svc.add_stamps("v", "coffee", idempotency_key=f"v{i}", visited_at=at)
        o = svc.apply_order(order(f"o{i}", "o", amount="30", at=at))
        by_visit.append((v["added"], v["balance"], v["completed_cards"], _templates(v)))
        (s,) = o["stamps"]
        by_order.append((s["added"], s["balance"], s["completed_cards"], _templates(o)))
    assert by_visit == by_order
    # 1 → americano, 5 → latte, 8 → signature and the card completes; the 9th starts anew
    assert [t for *_, t in by_visit if t] == [
        ["americano"],
        ["latte"],
        ["signature"],
        ["americano"],
    ]
    assert by_visit[7][1:3] == (0, 1)
    v_card, o_card = _card(svc, store, "v"), _card(svc, store, "o")
    assert v_card == o_card and v_card["stamps"] == 1 and v_card["completed"] == 1
    with store.connect() as conn:
        sc = lt.stamp_cards.c
        rows = {
            r.customer_id: (r.cycle, r.rewarded_upto, r.completed, r.last_stamp_day)
            for r in conn.execute(sa.select(lt.stamp_cards).where(sc.card_id == "coffee"))
        }
    assert rows["v"] == rows["o"] == (2, 1, 1, "2026-03-09")
    assert_ledger_ok(store)


def test_visits_recorded_late_check_every_stamped_day(
    store: Store, make_svc: Make, clock: Clock
) -> None:
    """A visit for an earlier day is checked against that day's orders and visits, not only
    the card's last stamped day; and it does not move the last stamped day back."""
    svc = make_svc("cafe").bound(store)
    d1, d2, d3 = (T0 - k * DAY for k in (3, 2, 1))
    svc.apply_order(order("o1", amount="30", at=d1))
    assert svc.add_stamps("c1", "coffee", idempotency_key="v2", visited_at=d2)["added"] == 1
    assert svc.add_stamps("c1", "coffee", idempotency_key="v3", visited_at=d3)["added"] == 1
    # late records for day 1 (an order stamped it) and day 2 (a visit did): nothing
    late1 = svc.add_stamps(
        "c1", "coffee", idempotency_key="late1", visited_at=d1 + timedelta(hours=1)
    )
    late2 = svc.add_stamps("c1", "coffee", idempotency_key="late2", visited_at=d2)
    assert late1["ignored"] == late2["ignored"] == "already_stamped_today"
    # a day nobody stamped still counts, and leaves day 3 the card's last stamped day
    d0 = T0 - 5 * DAY
    assert svc.add_stamps("c1", "coffee", idempotency_key="v0", visited_at=d0)["added"] == 1
    o3 = svc.apply_order(order("o3", amount="30", at=d3))
    assert o3["stamps"] == []  # day 3 was stamped by a visit
    with store.connect() as conn:
        sc = lt.stamp_cards.c
        last = conn.execute(sa.select(sc.last_stamp_day).where(sc.customer_id == "c1")).scalar()
    assert last == d3.astimezone(svc.service.zone).date().isoformat()
    assert _card(svc, store)["stamps"] == 4
    assert_ledger_ok(store)


def test_orders_arriving_out_of_order_check_the_day_they_were_placed(
    store: Store, make_svc: Make, clock: Clock
) -> None:
    """An order placed on a day before the card's last stamped day is checked against that
    day's orders and visits (one stamp per day on a visit card), and does not move the last
    stamped day back — one by one and within one batch alike."""
    d1, d2, d3 = (T0 - k * DAY for k in (3, 2, 1))
    zone_day = make_svc("cafe").zone
    for lane in ("one", "batch"):
        svc = make_svc("cafe").bound(store)
        c = f"{lane}-c"
        assert svc.add_stamps(c, "coffee", idempotency_key=f"{lane}-v2", visited_at=d2)["added"]
        evs = [
            order(f"{lane}-a", c, amount="30", at=d3),  # stamps day 3
            order(f"{lane}-b", c, amount="30", at=d1),  # day 1, late: a stamp
            order(f"{lane}-c", c, amount="30", at=d1 + timedelta(hours=2)),  # day 1 again
            order(f"{lane}-d", c, amount="30", at=d2 + timedelta(hours=1)),  # a visit did
            order(f"{lane}-e", c, amount="30", at=d3 + timedelta(hours=1)),  # day 3 again
        ]
        res = svc.apply_orders(evs) if lane == "batch" else [svc.apply_order(e) for e in evs]
        assert [sum(s["added"] for s in r["stamps"]) for r in res] == [1, 1, 0, 0, 0], lane
        late = svc.add_stamps(c, "coffee", idempotency_key=f"{lane}-late", visited_at=d1)
        assert late["ignored"] == "already_stamped_today"
        assert _card(svc, store, c)["stamps"] == 3
        with store.connect() as conn:
            sc = lt.stamp_cards.c
            last = conn.execute(sa.select(sc.last_stamp_day).where(sc.customer_id == c)).scalar()
        assert last == d3.astimezone(zone_day).date().isoformat()
    assert_ledger_ok(store)


def test_a_visit_that_only_settles_owed_stamps_still_uses_the_day(
    store: Store, make_svc: Make, clock: Clock
) -> None:
    program = {
        "id": "x",
        "coupon_templates": [{"id": "free", "kind": "fixed", "value": 10}],
        "stamp_cards": [
            {"id": "v", "per": "visit", "size": 2, "rewards": [{"stamps": 2, "template": "free"}]}
        ],
    }
    svc = make_svc(program).bound(store)
    svc.apply_order(order("o1", amount="10", at=T0 - 5 * DAY))
    svc.apply_order(order("o2", amount="10", at=T0 - 4 * DAY))  # completes the card
    svc.apply_order(order("o2", amount="10", at=T0 - 4 * DAY, status="refunded", refunded="10"))
    day = T0 - 2 * DAY
    v = svc.add_stamps("c1", "v", idempotency_key="a", visited_at=day)
    assert (v["added"], v["debt_settled"], v["balance"]) == (1, 1, 0)  # no lot: owed stamp paid
    svc.add_stamps("c1", "v", idempotency_key="b", visited_at=T0 - DAY)  # a later day
    again = svc.add_stamps("c1", "v", idempotency_key="c", visited_at=day + timedelta(hours=2))
    assert again["ignored"] == "already_stamped_today"
    assert_ledger_ok(store)


def _templates(result: dict[str, Any]) -> list[str]:
    return [c["template"] for c in result["coupons_issued"]]


def test_grant_adds_n_stamps_with_a_reason_outside_the_daily_rule(
    store: Store, make_svc: Make, clock: Clock
) -> None:
    svc = make_svc("cafe").bound(store)
    g = svc.add_stamps("c1", "coffee", idempotency_key="g1", stamps=5, reason="migrated card")
    assert g["kind"] == "grant" and g["reason"] == "migrated card"
    assert (g["added"], g["balance"]) == (5, 5)
    assert _templates(g) == ["americano", "latte"]
    # a grant does not use up the day: today's visit still earns its stamp
    v = svc.add_stamps("c1", "coffee", idempotency_key="v1")
    assert v["added"] == 1 and v["balance"] == 6
    g2 = svc.add_stamps("c1", "coffee", idempotency_key="g2", stamps=4, reason="complaint")
    assert (g2["balance"], g2["completed_cards"]) == (2, 1)  # 6 + 4 = 10: done at 8, 2 left
    assert _templates(g2) == ["signature", "americano"]
    with store.connect() as conn:
        hist = svc.service.history(conn, "c1")
    assert {h["reference"] for h in hist if h["kind"] == "stamp"} == {
        "grant:migrated card",
        "grant:complaint",
        "visit:2026-03-01:v1",
    }
    assert_ledger_ok(store)


def test_grant_on_an_order_card_settles_owed_stamps_first(
    store: Store, make_svc: Make, clock: Clock
) -> None:
    program = {
        "id": "x",
        "coupon_templates": [{"id": "free", "kind": "fixed", "value": 10}],
        "stamp_cards": [
            {"id": "c", "per": "order", "size": 2, "rewards": [{"stamps": 2, "template": "free"}]}
        ],
    }
    svc = make_svc(program).bound(store)
    svc.apply_order(order("o1", amount="10"))
    svc.apply_order(order("o2", amount="10"))  # completes the card
    svc.apply_order(order("o2", amount="10", status="refunded", refunded="10"))  # owes 1
    g = svc.add_stamps("c1", "c", idempotency_key="g", stamps=2, reason="goodwill")
    assert (g["added"], g["debt_settled"], g["balance"]) == (2, 1, 1)
    with store.connect() as conn:
        bal = svc.service.balances(conn, "c1")
    assert bal["stamps:c"] == "1" and bal["stamps_debt:c"] == "0"
    # a visit on an order card is refused
    with pytest.raises(ConflictError) as e:
        svc.add_stamps("c1", "c", idempotency_key="v")
    assert e.value.code == "stamps.not_per_visit"
    assert_ledger_ok(store)


def test_refusals_store_nothing(store: Store, make_svc: Make, clock: Clock) -> None:
    svc = make_svc("hotpot").bound(store)
    cases: list[tuple[dict[str, Any], type[Exception], str]] = [
        ({"card_id": "visits"}, ConflictError, "stamps.order_required"),  # from 100 CNY
        ({"card_id": "nope"}, NotFoundError, "stamp_card.not_found"),
        ({"card_id": "visits", "stamps": 2}, InputError, "input.missing_field"),
        ({"card_id": "visits", "stamps": 0, "reason": "x"}, InputError, "input.invalid"),
        ({"card_id": "visits", "stamps": True, "reason": "x"}, InputError, "input.invalid"),
        (
            {"card_id": "visits", "stamps": 1, "reason": "x", "visited_at": clock() + DAY},
            InputError,
            "input.invalid",
        ),
        (
            {"card_id": "visits", "stamps": 1, "reason": "x", "visited_at": "2026-03-01T10:00"},
            InputError,
            "input.invalid",
        ),
    ]
    for kw, exc, code in cases:
        card = kw.pop("card_id")
        with pytest.raises(exc) as e:
            svc.add_stamps("c1", card, idempotency_key="k", **kw)
        assert getattr(e.value, "code", None) == code, kw
    with store.connect() as conn:
        for table in (lt.operations, lt.entries, lt.stamp_cards):
            assert conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one() == 0
    # a grant on the hotpot card works (a grant ignores what the card counts)
    ok = svc.add_stamps("c1", "visits", idempotency_key="k", stamps=2, reason="x")
    assert _templates(ok) == ["bingfen"]
    assert_ledger_ok(store)


def test_visit_stamps_expire_from_the_visit(store: Store, make_svc: Make, clock: Clock) -> None:
    svc = make_svc("cafe").bound(store)  # expire_days: 180
    at = T0 - 10 * DAY
    svc.add_stamps("c1", "coffee", idempotency_key="v", visited_at=at)
    with store.connect() as conn:
        soon = svc.service.expiring_soon(conn, "c1", 200, T0)
    (item,) = [x for x in soon if x["kind"] == "stamps"]
    assert item["expires_at"] == (at + 180 * DAY).isoformat()
    clock.t = at + 181 * DAY
    assert svc.expire(clock())["stamps"] == "1"
    assert _card(svc, store)["stamps"] == 0
    assert_ledger_ok(store)
