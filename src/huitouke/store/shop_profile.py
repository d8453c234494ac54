"""What the store knows about the shop itself: one value per key (``shop_profile``).

``timezone`` is the merchant zone in force when the shop's first orders were imported: the
zone its days, weeks and months were first counted in. Reports show it, and an import under
another zone says so (changing the zone moves orders near midnight to other days).
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Connection, insert, select

from huitouke.store import tables as t
from huitouke.store.db import Store

__all__ = ["TIMEZONE", "record_first", "shop_value", "shop_zone"]

TIMEZONE = "timezone"


def record_first(conn: Connection, key: str, value: str, batch_id: int | None = None) -> str:
    """Store ``value`` under ``key`` unless a value is there already; the stored value."""
    row = conn.execute(select(t.shop_profile.c.value).where(t.shop_profile.c.key == key)).first()
    if row is not None:
        return str(row.value)
    conn.execute(
        insert(t.shop_profile).values(
            key=key, value=value, set_at=datetime.now(UTC), batch_id=batch_id
        )
    )
    return value


def shop_value(store: Store, key: str) -> str | None:
    with store.connect() as conn:
        row = conn.execute(
            select(t.shop_profile.c.value).where(t.shop_profile.c.key == key)
        ).first()
    return None if row is None else str(row.value)


def shop_zone(store: Store) -> str | None:
    """The zone recorded with the shop's first import (``None`` before any import)."""
    return shop_value(store, TIMEZONE)
