"""Loyalty test helpers: a settable clock, example programs, order factories."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from huitouke.loyalty import LoyaltyService, Program, load_program, verify_ledger
from huitouke.store.db import Store

EXAMPLES = Path(__file__).resolve().parents[2] / "src" / "huitouke" / "loyalty" / "examples"
T0 = datetime(2026, 3, 1, 4, 0, tzinfo=UTC)  # 12:00 in Shanghai


class Clock:
    def __init__(self, t: datetime = T0) -> None:
        self.t = t

    def __call__(self) -> datetime:
        return self.t

    def advance(self, **kw: float) -> datetime:
        self.t = self.t + timedelta(**kw)
        return self.t


def example(name: str) -> Program:
    return load_program(EXAMPLES / f"{name}.yaml")


def order(
    order_id: str,
    customer_id: str = "c1",
    amount: str | Decimal = "100",
    *,
    at: datetime = T0,
    status: str = "paid",
    refunded: str | Decimal = "0",
    lines: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    o: dict[str, Any] = {
        "order_id": order_id,
        "customer_id": customer_id,
        "ordered_at": at,
        "amount": Decimal(amount),
        "currency": "CNY",
        "status": status,
        "refunded_amount": Decimal(refunded),
    }
    if lines is not None:
        o["lines"] = lines
    return o


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def make_svc(clock: Clock) -> Callable[[Program | dict[str, Any] | str], LoyaltyService]:
    def make(program: Program | dict[str, Any] | str) -> LoyaltyService:
        if isinstance(program, str):
            program = example(program)
        elif isinstance(program, dict):
            program = load_program(program)
        if program.timezone is None:  # as the doors do, in the fixtures' store zone
            program = program.in_store_zone("Asia/Shanghai")
        return LoyaltyService(program, clock=clock)

    return make


def assert_ledger_ok(store: Store) -> None:
    with store.connect() as conn:
        assert verify_ledger(conn) == []
