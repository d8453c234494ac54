"""The snapshot store (Alembic branch ``snapshots``): results computed ahead of time from
the orders, so a page reads one row instead of scanning every order
(:mod:`huitouke.app.snapshots` computes, saves and judges them).

A snapshot is keyed by its ``kind`` (``overview``…) and its parameters as canonical JSON
(``params_key``: sorted keys, no spaces — e.g. the period kind, the merchant zone), and
carries the fingerprint of the orders it was computed from: how many orders there were, the
newest ``orders.updated_at`` and how many import batches had been recorded. A page compares
that fingerprint with the store's (two index look-ups) to say whether orders changed since.
"""

from __future__ import annotations

from sqlalchemy import JSON, BigInteger, Column, Float, Integer, String, Table

from huitouke.store.tables import metadata
from huitouke.store.types import UTCDateTime

__all__ = ["snapshots"]

snapshots = Table(
    "snapshots",
    metadata,
    Column("kind", String(64), primary_key=True),
    Column("params_key", String(512), primary_key=True),
    Column("params", JSON, nullable=False),
    Column("computed_at", UTCDateTime, nullable=False),
    # seconds the refresh of this kind took (all of its parameter sets together)
    Column("seconds", Float, nullable=False),
    # the fingerprint of the orders, read before the computation
    Column("orders_count", BigInteger, nullable=False),
    Column("orders_updated_max", UTCDateTime),
    Column("import_batches", Integer, nullable=False),
    Column("payload", JSON, nullable=False),
)
