"""Engines, migrations and units of work for SQLite (default) and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
from sqlalchemy import Connection, Engine, create_engine, event, inspect, select
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from huitouke.core.orders import ORDERS_SCHEMA
from huitouke.errors import StoreError
from huitouke.store import tables as t

__all__ = ["Store", "open_store"]

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    # WAL: readers never block the writer; a killed writer leaves the last commit intact.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


class Store:
    """One database: its engine, its migrations and its units of work."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = url
        try:
            parsed = make_url(url)
        except Exception as exc:
            raise StoreError(
                f"not a database URL: {url!r}",
                code="store.bad_url",
                message_zh=f"数据库地址无效:{url!r}",
            ) from exc
        self.dialect = parsed.get_backend_name()
        kwargs: dict[str, Any] = {"echo": echo, "future": True}
        if self.dialect == "sqlite":
            db = parsed.database
            if db and db != ":memory:":
                Path(db).expanduser().parent.mkdir(parents=True, exist_ok=True)
            kwargs["poolclass"] = NullPool
            kwargs["connect_args"] = {"timeout": 30, "check_same_thread": False}
        elif self.dialect == "postgresql":
            if parsed.drivername == "postgresql":
                url = str(parsed.set(drivername="postgresql+psycopg"))
            kwargs["pool_pre_ping"] = True
            kwargs["pool_size"] = 10
            kwargs["max_overflow"] = 60
        else:
            raise StoreError(
                f"unsupported database {self.dialect!r}: use sqlite:/// or postgresql://",
                code="store.unsupported",
                message_zh=f"不支持的数据库 {self.dialect!r}:请使用 sqlite:/// 或 postgresql://",
            )
        self.engine: Engine = create_engine(url, **kwargs)
        if self.dialect == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)

    # -- schema ---------------------------------------------------------------------------
    def alembic_config(self) -> Any:
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
        cfg.set_main_option("path_separator", "os")
        cfg.attributes["engine"] = self.engine
        return cfg

    def migrate(self, revision: str = "heads") -> None:
        """Bring the schema up to date (every context's branch)."""
        from alembic import command

        # Contexts register their tables on import; the migration scripts are the truth.
        command.upgrade(self.alembic_config(), revision)

    def is_migrated(self) -> bool:
        return "orders" in inspect(self.engine).get_table_names()

    # -- units of work --------------------------------------------------------------------
    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """One unit of work: commits on success, rolls back entirely on any error."""
        with self.engine.begin() as conn:
            yield conn

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            yield conn

    # -- reads for analytics ----------------------------------------------------------------
    def load_orders(self) -> pa.Table:
        """All orders as the canonical Arrow table (see :mod:`huitouke.core.orders`)."""
        cols = [c.name for c in ORDERS_SCHEMA]
        with self.connect() as conn:
            rows = conn.execute(select(*[t.orders.c[c] for c in cols])).all()
        data: dict[str, list[Any]] = {c: [] for c in cols}
        for row in rows:
            for c, v in zip(cols, row, strict=True):
                data[c].append(v)
        for c in ("amount", "refunded_amount"):
            data[c] = [Decimal(v) for v in data[c]]
        return pa.table(data, schema=ORDERS_SCHEMA)

    def dispose(self) -> None:
        self.engine.dispose()


def open_store(url: str | None = None, *, migrate: bool = True) -> Store:
    """Open the configured store (or ``url``), migrating it to the latest schema."""
    if url is None:
        from huitouke.settings import get_settings

        url = get_settings().database_url
    store = Store(url)
    if migrate:
        store.migrate()
    return store
