"""measurement: tracked-link clicks and package-insert campaign codes

Revision ID: measurement_0001
Revises:
Create Date: 2026-11-23 14:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import huitouke.store.types

revision: str = "measurement_0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ("measurement",)
depends_on: str | Sequence[str] | None = "core_0001"


def upgrade() -> None:
    op.create_table(
        "link_clicks",
        sa.Column("click_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("token_id", sa.String(length=32), nullable=False),
        sa.Column("journey_id", sa.String(length=128), nullable=False),
        sa.Column("customer_id", sa.String(length=128), nullable=False),
        sa.Column("step_id", sa.String(length=128), nullable=False),
        sa.Column("occurrence", sa.String(length=128), nullable=False),
        sa.Column("url", sa.String(length=2000), nullable=False),
        sa.Column("clicked_at", huitouke.store.types.UTCDateTime(), nullable=False),
        sa.Column("user_agent", sa.String(length=300), nullable=True),
        sa.PrimaryKeyConstraint("click_id", name=op.f("pk_link_clicks")),
    )
    with op.batch_alter_table("link_clicks", schema=None) as batch_op:
        batch_op.create_index("ix_link_clicks_journey", ["journey_id", "customer_id"], unique=False)
    op.create_table(
        "campaign_codes",
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("campaign_id", sa.String(length=128), nullable=False),
        sa.Column("created_at", huitouke.store.types.UTCDateTime(), nullable=False),
        sa.Column("claimed_by", sa.String(length=128), nullable=True),
        sa.Column("claimed_at", huitouke.store.types.UTCDateTime(), nullable=True),
        sa.Column("coupon_code", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_campaign_codes")),
    )
    with op.batch_alter_table("campaign_codes", schema=None) as batch_op:
        batch_op.create_index("ix_campaign_codes_campaign", ["campaign_id"], unique=False)


def downgrade() -> None:
    op.drop_table("campaign_codes")
    op.drop_table("link_clicks")
