"""facts: customer_facts (per-customer snapshot) and customer_facts_meta (its run)

Revision ID: facts_0001
Revises:
Create Date: 2026-12-06 15:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import huitouke.store.types

revision: str = "facts_0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ("facts",)
depends_on: str | Sequence[str] | None = "core_0001"


def upgrade() -> None:
    op.create_table(
        "customer_facts",
        sa.Column("customer_id", sa.String(length=128), nullable=False),
        sa.Column("orders", sa.Integer(), nullable=False),
        sa.Column("revenue", huitouke.store.types.Money(precision=18, scale=4), nullable=False),
        sa.Column("first_order_at", huitouke.store.types.UTCDateTime(), nullable=False),
        sa.Column("last_order_at", huitouke.store.types.UTCDateTime(), nullable=False),
        sa.Column("days_since_last", sa.Integer(), nullable=False),
        sa.Column("r_score", sa.SmallInteger(), nullable=False),
        sa.Column("f_score", sa.SmallInteger(), nullable=False),
        sa.Column("m_score", sa.SmallInteger(), nullable=False),
        sa.Column("rfm_segment", sa.String(length=32), nullable=False),
        sa.Column("layer", sa.String(length=32), nullable=False),
        sa.Column("lifecycle", sa.String(length=32), nullable=False),
        sa.Column("p_alive", sa.Float(), nullable=True),
        sa.Column("expected_orders", sa.Float(), nullable=True),
        sa.Column("clv", huitouke.store.types.Money(precision=18, scale=4), nullable=True),
        sa.Column("churn_risk", sa.String(length=16), nullable=True),
        sa.Column("next_order_date", sa.Date(), nullable=True),
        sa.Column("next_order_low", sa.Date(), nullable=True),
        sa.Column("next_order_high", sa.Date(), nullable=True),
        sa.Column("next_order_source", sa.String(length=16), nullable=False),
        sa.Column("model", sa.String(length=16), nullable=True),
        sa.Column("computed_at", huitouke.store.types.UTCDateTime(), nullable=False),
        sa.CheckConstraint("orders >= 1", name=op.f("ck_customer_facts_orders_positive")),
        sa.CheckConstraint(
            "p_alive IS NULL OR (p_alive >= 0 AND p_alive <= 1)",
            name=op.f("ck_customer_facts_p_alive_share"),
        ),
        sa.PrimaryKeyConstraint("customer_id", name=op.f("pk_customer_facts")),
    )
    for col in ("rfm_segment", "layer", "lifecycle", "p_alive", "next_order_date"):
        op.create_index(f"ix_customer_facts_{col}", "customer_facts", [col], unique=False)
    op.create_table(
        "customer_facts_meta",
        sa.Column("snapshot", sa.String(length=16), nullable=False),
        sa.Column("as_of", sa.Date(), nullable=False),
        sa.Column("computed_at", huitouke.store.types.UTCDateTime(), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("currency", sa.String(length=8), nullable=True),
        sa.Column("customers", sa.Integer(), nullable=False),
        sa.Column("model", sa.String(length=16), nullable=True),
        sa.Column("prediction_code", sa.String(length=64), nullable=True),
        sa.Column("prediction_note", sa.Text(), nullable=True),
        sa.Column("prediction_note_zh", sa.Text(), nullable=True),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.CheckConstraint(
            "snapshot = 'current'", name=op.f("ck_customer_facts_meta_one_snapshot")
        ),
        sa.PrimaryKeyConstraint("snapshot", name=op.f("pk_customer_facts_meta")),
    )


def downgrade() -> None:
    op.drop_table("customer_facts_meta")
    for col in ("rfm_segment", "layer", "lifecycle", "p_alive", "next_order_date"):
        op.drop_index(f"ix_customer_facts_{col}", table_name="customer_facts")
    op.drop_table("customer_facts")
