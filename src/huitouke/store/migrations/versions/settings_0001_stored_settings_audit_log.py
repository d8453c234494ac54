"""settings: stored settings overrides; the sign-in audit becomes the audit log of changes

Revision ID: settings_0001
Revises:
Create Date: 2026-12-06 15:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import huitouke.store.types

revision: str = "settings_0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ("settings",)
depends_on: str | Sequence[str] | None = "service_0002"


def upgrade() -> None:
    op.create_table(
        "settings_overrides",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("sealed", sa.Boolean(), nullable=False),
        sa.Column("updated_at", huitouke.store.types.UTCDateTime(), nullable=False),
        sa.Column("updated_by", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_settings_overrides")),
    )
    with op.batch_alter_table("console_login_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("action", sa.String(length=48), nullable=True))
        batch_op.add_column(sa.Column("target", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("detail", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("console_login_events", schema=None) as batch_op:
        batch_op.drop_column("detail")
        batch_op.drop_column("target")
        batch_op.drop_column("action")
    op.drop_table("settings_overrides")
