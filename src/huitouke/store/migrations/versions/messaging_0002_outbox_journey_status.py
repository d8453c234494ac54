"""messaging: the outbox's journey index carries the status, so counts need no table reads

The console's journey pages count a journey's messages by status (``huitouke.messaging.
outbox.status_counts``). With an index on ``journey_id`` alone every message of the journey
was read from the table for its status: 100k messages of one journey, 28–44 ms on
PostgreSQL (docs/BENCHMARKS.md). An index on ``(journey_id, status)`` answers the count from
the index (an index-only scan on PostgreSQL, a covering index on SQLite) and still serves
every look-up by journey, so it replaces the old one.

Revision ID: messaging_0002
Revises: messaging_0001
Create Date: 2026-12-07 02:30:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "messaging_0002"
down_revision: str | Sequence[str] | None = "messaging_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.create_index("ix_outbox_journey_status", ["journey_id", "status"], unique=False)
        batch_op.drop_index("ix_outbox_journey")


def downgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.create_index("ix_outbox_journey", ["journey_id"], unique=False)
        batch_op.drop_index("ix_outbox_journey_status")
