"""search: indexes for the customer search by id, phone, e-mail or name prefix

PostgreSQL: B-tree indexes with the pattern operator classes, which serve ``LIKE 'abc%'``
whatever the database's collation (a default B-tree does so only under the C collation);
e-mail and name are searched without regard to case, so theirs are on ``lower(...)``.
SQLite: plain indexes (on ``lower(...)`` for e-mail and name): the search there asks for
the range ``[prefix, prefix with its last character incremented)``, which any B-tree serves
(SQLite's LIKE would need a ``NOCASE`` column index and no ESCAPE clause).

Revision ID: search_0001
Revises:
Create Date: 2026-12-06 15:10:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "search_0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ("search",)
depends_on: str | Sequence[str] | None = "core_0001"

_PG = {
    "ix_customers_id_prefix": "customer_id varchar_pattern_ops",
    "ix_customers_phone_prefix": "phone varchar_pattern_ops",
    "ix_customers_email_prefix": "lower(email) text_pattern_ops",
    "ix_customers_name_prefix": "lower(name) text_pattern_ops",
}
_SQLITE = {
    "ix_customers_id_prefix": "customer_id",
    "ix_customers_phone_prefix": "phone",
    "ix_customers_email_prefix": "lower(email)",
    "ix_customers_name_prefix": "lower(name)",
}


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for name, expr in (_PG if postgres else _SQLITE).items():
        op.execute(f"CREATE INDEX {name} ON customers ({expr})")
    if postgres:
        # statistics of the new expressions: without them the planner guesses how many
        # customers a prefix of lower(email) matches and may walk the whole id order
        op.execute("ANALYZE customers")


def downgrade() -> None:
    for name in _PG:
        op.execute(f"DROP INDEX {name}")
