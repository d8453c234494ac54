"""Tables of the service context (Alembic branch ``service``): API keys, and the console's
users, sessions and sign-in audit.

A key is shown once at creation and never stored: the table keeps its public id (the
lookup prefix) and the SHA-256 of the whole key. Keys are revoked, never deleted, so the
audit trail of who could call the API survives.

Console users keep an Argon2id hash of their password (never the password). A session is
known by the SHA-256 of its random id: the id itself lives only in the browser's cookie,
so a copy of the database opens no session. Every sign-in, failed sign-in and sign-out is
one row of ``console_login_events`` (also what the per-client rate limit counts).
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
)

from huitouke.store.audit import audit_events
from huitouke.store.tables import metadata
from huitouke.store.types import UTCDateTime

__all__ = [
    "api_keys",
    "console_imports",
    "console_login_events",
    "console_sessions",
    "console_users",
]

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

console_users = Table(
    "console_users",
    metadata,
    Column("name", String(64), primary_key=True),
    # the same rights as the API key scopes (read < operator < admin)
    Column("role", String(16), nullable=False),
    # Argon2id, PHC string format ($argon2id$v=19$m=…,t=…,p=…$salt$hash)
    Column("password_hash", String(255), nullable=False),
    # the user's own choice of language (zh or en); NULL: cookie, then Accept-Language
    Column("lang", String(8)),
    Column("created_at", UTCDateTime, nullable=False),
    Column("password_changed_at", UTCDateTime, nullable=False),
    Column("disabled_at", UTCDateTime),
    # failed sign-ins in a row, and until when the user is locked out after too many
    Column("failed_logins", Integer, nullable=False, default=0),
    Column("locked_until", UTCDateTime),
    Column("last_login_at", UTCDateTime),
    CheckConstraint("role IN ('read', 'operator', 'admin')", name="role_known"),
    CheckConstraint("failed_logins >= 0", name="failed_logins_nonnegative"),
)

console_sessions = Table(
    "console_sessions",
    metadata,
    # hex SHA-256 of the session id the cookie carries
    Column("session_hash", String(64), primary_key=True),
    Column(
        "user_name",
        String(64),
        ForeignKey("console_users.name", ondelete="CASCADE"),
        nullable=False,
    ),
    # the per-session token every form and htmx request must carry
    Column("csrf_token", String(64), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("last_seen_at", UTCDateTime, nullable=False),
    # the absolute end (created_at + console_session_max_hours)
    Column("expires_at", UTCDateTime, nullable=False),
    Index("ix_console_sessions_user_name", "user_name"),
)

# the sign-in audit is the audit log's table, declared in the store so every layer can write
# changes to it (huitouke.store.audit)
console_login_events = audit_events

#: Export files uploaded in the console (the Data page) and what their import did: who, when,
#: which file, the preset detected, the counts, the rejects by reason and the rejects file
#: itself (a CSV, at most as large as the upload, which the upload limit bounds), so the
#: history and the rejects download outlive the process that imported them. ``batch_id``
#: is the ``import_batches`` row of a finished import.
console_imports = Table(
    "console_imports",
    metadata,
    Column("import_id", String(32), primary_key=True),
    Column("user_name", String(64), nullable=False),
    Column("file_name", String(255), nullable=False),
    Column("size_bytes", Integer, nullable=False),
    Column("source", String(64), nullable=False),
    # running, done, failed
    Column("status", String(16), nullable=False),
    Column("preset", String(40)),
    Column("batch_id", Integer),
    Column("started_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime),
    Column("rows_read", Integer),
    Column("orders_inserted", Integer),
    Column("orders_updated", Integer),
    Column("orders_unchanged", Integer),
    Column("rows_rejected", Integer),
    Column("rejects_by_reason", JSON),
    Column("rejects_csv", LargeBinary),
    # [[en, zh], …]
    Column("warnings", JSON),
    Column("error_code", String(64)),
    # {"en": …, "zh": …}
    Column("error", JSON),
    CheckConstraint("status IN ('running', 'done', 'failed')", name="status_known"),
    Index("ix_console_imports_started_at", "started_at"),
)
