"""Alembic environment: runs on the engine the Store hands over (no alembic.ini needed)."""

from __future__ import annotations

from alembic import context

import huitouke.journeys.tables  # noqa: F401  (journeys branch: definitions, assignments, events)
import huitouke.loyalty.tables  # noqa: F401  (loyalty branch tables)
import huitouke.measurement.tables  # noqa: F401  (measurement branch: clicks, campaign codes)
import huitouke.messaging.tables  # noqa: F401  (messaging branch: outbox, consent, receipts)
import huitouke.service.tables  # noqa: F401  (service branch: api_keys)
from huitouke.store.tables import metadata

config = context.config
engine = config.attributes["engine"]

with engine.begin() as connection:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
