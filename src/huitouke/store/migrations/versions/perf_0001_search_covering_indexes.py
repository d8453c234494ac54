"""perf: the customer search's prefix indexes cover what the search reads (PostgreSQL)

The search asks each field for its first 50 matches by id (``huitouke.service.customers.
search_customers``). With the prefix indexes of ``search_0001`` PostgreSQL finds the
matches in the index but fetches every matching row from the table to read its id — for a
common name prefix (王伟: about 700 of a million customers) 700 random page reads, 120 ms
when they are not cached. The same indexes with the id (and the searched column, which an
index on ``lower(name)`` needs for an index-only scan) included answer from the index
alone: 0.4 ms for the same prefix, cold (docs/BENCHMARKS.md). SQLite keeps its indexes.

Revision ID: perf_0001
Revises:
Create Date: 2026-12-06 18:50:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "perf_0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ("perf",)
depends_on: str | Sequence[str] | None = "search_0001"

_COVERING = {
    "ix_customers_phone_prefix": "(phone varchar_pattern_ops) INCLUDE (customer_id)",
    "ix_customers_email_prefix": "(lower(email) text_pattern_ops) INCLUDE (customer_id, email)",
    "ix_customers_name_prefix": "(lower(name) text_pattern_ops) INCLUDE (customer_id, name)",
}
_PLAIN = {
    "ix_customers_phone_prefix": "(phone varchar_pattern_ops)",
    "ix_customers_email_prefix": "(lower(email) text_pattern_ops)",
    "ix_customers_name_prefix": "(lower(name) text_pattern_ops)",
}


def _replace(indexes: dict[str, str]) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for name, expr in indexes.items():
        op.execute(f"DROP INDEX {name}")
        op.execute(f"CREATE INDEX {name} ON customers {expr}")
    op.execute("ANALYZE customers")


def upgrade() -> None:
    _replace(_COVERING)


def downgrade() -> None:
    _replace(_PLAIN)
