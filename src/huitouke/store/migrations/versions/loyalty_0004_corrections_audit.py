"""loyalty: the audit trail of ledger corrections (who, when, which balance, how much, why)

Revision ID: loyalty_0004
Revises: loyalty_0003
Create Date: 2026-12-06 15:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import huitouke.store.types

revision: str = "loyalty_0004"
down_revision: str | Sequence[str] | None = "loyalty_0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "loyalty_corrections",
        sa.Column(
            "correction_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("op_key", sa.String(length=255), nullable=False),
        sa.Column("customer_id", sa.String(length=128), nullable=False),
        sa.Column("asset", sa.String(length=80), nullable=False),
        sa.Column("delta", huitouke.store.types.Money(precision=18, scale=4), nullable=False),
        sa.Column(
            "balance_after", huitouke.store.types.Money(precision=18, scale=4), nullable=False
        ),
        sa.Column("reason", sa.String(length=255), nullable=False),
        sa.Column("actor", sa.String(length=160), nullable=False),
        sa.Column("created_at", huitouke.store.types.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("correction_id", name=op.f("pk_loyalty_corrections")),
        sa.UniqueConstraint("op_key", name=op.f("uq_loyalty_corrections_op_key")),
    )
    with op.batch_alter_table("loyalty_corrections", schema=None) as batch_op:
        batch_op.create_index(
            "ix_loyalty_corrections_customer", ["customer_id", "correction_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("loyalty_corrections", schema=None) as batch_op:
        batch_op.drop_index("ix_loyalty_corrections_customer")
    op.drop_table("loyalty_corrections")
