"""What every loyalty use case of one program shares: the program, its zone and the clock.

:class:`~huitouke.loyalty.service.LoyaltyService` is a :class:`LoyaltyContext`; the
mechanic modules (:mod:`~huitouke.loyalty.points`, :mod:`~huitouke.loyalty.coupons`, …)
and the batch ledger (:mod:`~huitouke.loyalty.order_batch`) take one as their first
argument, so they need neither the façade nor each other's classes.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from huitouke.errors import InputError
from huitouke.loyalty.program import Program

__all__ = ["LoyaltyContext"]


class LoyaltyContext:
    """One program (already in the store's zone) and the clock its use cases read."""

    def __init__(self, program: Program, clock: Callable[[], datetime] | None = None) -> None:
        self.program = program
        self.zone = program.zone
        self._clock = clock or (lambda: datetime.now(UTC))

    def now(self) -> datetime:
        t = self._clock()
        if t.tzinfo is None:
            raise InputError("the loyalty clock returned a naive datetime", code="input.invalid")
        return t.astimezone(UTC)
