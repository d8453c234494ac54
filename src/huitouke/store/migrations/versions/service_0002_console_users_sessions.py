"""service: console users, sessions and the sign-in audit

Revision ID: service_0002
Revises: service_0001
Create Date: 2026-12-06 11:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import huitouke.store.types

revision: str = "service_0002"
down_revision: str | Sequence[str] | None = "service_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "console_users",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("lang", sa.String(length=8), nullable=True),
        sa.Column("created_at", huitouke.store.types.UTCDateTime(), nullable=False),
        sa.Column("password_changed_at", huitouke.store.types.UTCDateTime(), nullable=False),
        sa.Column("disabled_at", huitouke.store.types.UTCDateTime(), nullable=True),
        sa.Column("failed_logins", sa.Integer(), nullable=False),
        sa.Column("locked_until", huitouke.store.types.UTCDateTime(), nullable=True),
        sa.Column("last_login_at", huitouke.store.types.UTCDateTime(), nullable=True),
        sa.CheckConstraint(
            "role IN ('read', 'operator', 'admin')", name=op.f("ck_console_users_role_known")
        ),
        sa.CheckConstraint(
            "failed_logins >= 0", name=op.f("ck_console_users_failed_logins_nonnegative")
        ),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_console_users")),
    )
    op.create_table(
        "console_sessions",
        sa.Column("session_hash", sa.String(length=64), nullable=False),
        sa.Column("user_name", sa.String(length=64), nullable=False),
        sa.Column("csrf_token", sa.String(length=64), nullable=False),
        sa.Column("created_at", huitouke.store.types.UTCDateTime(), nullable=False),
        sa.Column("last_seen_at", huitouke.store.types.UTCDateTime(), nullable=False),
        sa.Column("expires_at", huitouke.store.types.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_name"],
            ["console_users.name"],
            name=op.f("fk_console_sessions_user_name_console_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("session_hash", name=op.f("pk_console_sessions")),
    )
    with op.batch_alter_table("console_sessions", schema=None) as batch_op:
        batch_op.create_index("ix_console_sessions_user_name", ["user_name"], unique=False)
    op.create_table(
        "console_login_events",
        sa.Column("event_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", huitouke.store.types.UTCDateTime(), nullable=False),
        sa.Column("user_name", sa.String(length=64), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("client", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_console_login_events")),
    )
    with op.batch_alter_table("console_login_events", schema=None) as batch_op:
        batch_op.create_index("ix_console_login_events_at", ["at"], unique=False)
        batch_op.create_index("ix_console_login_events_client_at", ["client", "at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("console_login_events", schema=None) as batch_op:
        batch_op.drop_index("ix_console_login_events_client_at")
        batch_op.drop_index("ix_console_login_events_at")
    op.drop_table("console_login_events")
    with op.batch_alter_table("console_sessions", schema=None) as batch_op:
        batch_op.drop_index("ix_console_sessions_user_name")
    op.drop_table("console_sessions")
    op.drop_table("console_users")
