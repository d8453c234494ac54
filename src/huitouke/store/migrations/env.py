"""Alembic environment: runs on the engine the Store hands over (no alembic.ini needed)."""

from __future__ import annotations

from alembic import context

from huitouke.store.tables import load_all_tables

config = context.config
engine = config.attributes["engine"]

with engine.begin() as connection:
    context.configure(
        connection=connection,
        target_metadata=load_all_tables(),
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
