"""loyalty: find the stored-value payments on an order whichever account paid

A merged person (huitouke.identity) pays with the stored value of any of its accounts, each
payment entry staying with its account, so an unmerge moves nothing. A refund of the order
gives back to every account that paid: the ``spend`` entries referencing the order are found
by this partial index (only ``spend`` entries, few beside the points: the other kinds'
writes are unaffected).

Revision ID: conngaps_0001
Revises:
Create Date: 2026-12-06 23:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "conngaps_0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ("conngaps",)
depends_on: str | Sequence[str] | None = "loyalty_0001"


def upgrade() -> None:
    op.create_index(
        "ix_loyalty_entries_spend_reference",
        "loyalty_entries",
        ["reference"],
        postgresql_where=sa.text("kind = 'spend'"),
        sqlite_where=sa.text("kind = 'spend'"),
    )


def downgrade() -> None:
    op.drop_index("ix_loyalty_entries_spend_reference", table_name="loyalty_entries")
