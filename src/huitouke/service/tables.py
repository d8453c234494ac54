"""Tables of the service context: API keys (Alembic branch ``service``).

A key is shown once at creation and never stored: the table keeps its public id (the
lookup prefix) and the SHA-256 of the whole key. Keys are revoked, never deleted, so the
audit trail of who could call the API survives.
"""

from __future__ import annotations

from sqlalchemy import CheckConstraint, Column, Index, String, Table

from huitouke.store.tables import metadata
from huitouke.store.types import UTCDateTime

__all__ = ["api_keys"]

api_keys = Table(
    "api_keys",
    metadata,
    Column("key_id", String(32), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("scope", String(16), nullable=False),
    # hex SHA-256 of the full key text; the secret part itself is never stored
    Column("key_hash", String(64), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("revoked_at", UTCDateTime),
    CheckConstraint("scope IN ('read', 'operator', 'admin')", name="scope_known"),
    Index("ix_api_keys_created_at", "created_at"),
)
