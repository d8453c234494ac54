"""snapshots: the snapshot store and an index on orders.updated_at for its staleness check

Revision ID: snapshots_0001
Revises:
Create Date: 2026-12-06 15:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import huitouke.store.types

revision: str = "snapshots_0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ("snapshots",)
depends_on: str | Sequence[str] | None = "core_0003"


def upgrade() -> None:
    op.create_table(
        "snapshots",
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("params_key", sa.String(length=512), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("computed_at", huitouke.store.types.UTCDateTime(), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.Column("orders_count", sa.BigInteger(), nullable=False),
        sa.Column("orders_updated_max", huitouke.store.types.UTCDateTime(), nullable=True),
        sa.Column("import_batches", sa.Integer(), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("kind", "params_key", name=op.f("pk_snapshots")),
    )
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.create_index("ix_orders_updated_at", ["updated_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_index("ix_orders_updated_at")
    op.drop_table("snapshots")
