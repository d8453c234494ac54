"""journeys: the days each journey was run for (never twice for one day)

Revision ID: journeys_0002
Revises: journeys_0001
Create Date: 2026-12-06 15:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import huitouke.store.types

revision: str = "journeys_0002"
down_revision: str | Sequence[str] | None = "journeys_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "journey_run_days",
        sa.Column("journey_id", sa.String(length=64), nullable=False),
        sa.Column("run_day", sa.Date(), nullable=False),
        sa.Column("run_at", huitouke.store.types.UTCDateTime(), nullable=False),
        sa.Column("by", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("journey_id", "run_day", name=op.f("pk_journey_run_days")),
    )


def downgrade() -> None:
    op.drop_table("journey_run_days")
