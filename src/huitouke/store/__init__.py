"""The store: SQLAlchemy tables, engines for SQLite and PostgreSQL, Alembic migrations.

Other contexts (loyalty, journeys, measurement) declare their tables on the same
:data:`metadata` in their own ``tables`` modules, with their own Alembic branch.
"""

from huitouke.store.db import Store, open_store
from huitouke.store.tables import metadata

__all__ = ["Store", "metadata", "open_store"]
