"""Column types that keep money exact and instants in UTC on every backend."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, DateTime, Numeric
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

__all__ = ["MONEY_SCALE", "Money", "UTCDateTime"]

#: Money is kept to 4 decimal places (enough for unit prices and proportional refunds).
MONEY_SCALE = 4
_FACTOR = Decimal(10) ** MONEY_SCALE


class Money(TypeDecorator[Decimal]):
    """Exact Decimal money.

    PostgreSQL stores ``NUMERIC(18, 4)``. SQLite has no decimal type (it would round-trip
    through a binary float), so there the value is stored as a scaled 64-bit integer of
    1/10,000 units; ``CHECK (col >= 0)`` constraints mean the same on both.
    """

    impl = Numeric(18, MONEY_SCALE)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(BigInteger())
        return dialect.type_descriptor(Numeric(18, MONEY_SCALE, asdecimal=True))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        d = Decimal(value).quantize(Decimal(1) / _FACTOR)
        if dialect.name == "sqlite":
            return int(d * _FACTOR)
        return d

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        if dialect.name == "sqlite":
            return (Decimal(int(value)) / _FACTOR).quantize(Decimal(1) / _FACTOR)
        return Decimal(value).quantize(Decimal(1) / _FACTOR)


class UTCDateTime(TypeDecorator[datetime]):
    """An instant. Stored as naive UTC, returned as an aware UTC datetime.

    Naive input is refused: time zones are explicit everywhere in huitouke.
    """

    impl = DateTime(timezone=False)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime, got {type(value).__name__}")
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; attach the merchant's zone first")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        return value.replace(tzinfo=UTC)
