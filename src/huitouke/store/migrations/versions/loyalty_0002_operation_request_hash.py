"""loyalty: the fingerprint of each operation's request (idempotency keys reused with another payload)

Revision ID: loyalty_0002
Revises: loyalty_0001
Create Date: 2026-12-06 08:50:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "loyalty_0002"
down_revision: str | Sequence[str] | None = "loyalty_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # operations claimed before keep NULL: they are answered as before (no fingerprint)
    with op.batch_alter_table("loyalty_operations") as batch:
        batch.add_column(sa.Column("request_hash", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("loyalty_operations") as batch:
        batch.drop_column("request_hash")
