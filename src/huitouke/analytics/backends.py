"""Where the analytics SQL runs: the embedded DuckDB (default) or Spark (:mod:`.spark`).

A backend registers Arrow tables under the names the queries read, materialises the shared
steps of :mod:`huitouke.analytics.sql` and runs a query, answering an Arrow table. The
queries are written once in the portable subset of DuckDB's dialect
(:mod:`huitouke.analytics.portable`); DuckDB runs them as they are, Spark after sqlglot
transpiled them.
"""

from __future__ import annotations

from typing import Protocol

import pyarrow as pa

from huitouke.analytics.sql import Step

__all__ = ["Backend", "DuckDBBackend"]


class Backend(Protocol):
    #: "duckdb" or "spark"
    name: str

    def register(self, name: str, table: pa.Table) -> None:
        """Make ``table`` readable as the relation ``name`` (replacing an earlier one)."""

    def materialise(self, step: Step) -> None:
        """Create the relation of ``step`` (a view, or a table computed once)."""

    def query(self, sql: str) -> pa.Table:
        """Run one query of :mod:`huitouke.analytics.sql` (DuckDB dialect, portable)."""

    def close(self) -> None:
        """Release what the backend holds."""


class DuckDBBackend:
    """An in-memory DuckDB connection whose session zone is UTC."""

    name = "duckdb"

    def __init__(self, threads: int | None = None) -> None:
        import duckdb

        self._con = duckdb.connect(":memory:")
        # Results never depend on the machine's zone: instants come back in UTC.
        self._con.execute("SET TimeZone = 'UTC'")
        if threads:
            self._con.execute(f"SET threads = {int(threads)}")

    def register(self, name: str, table: pa.Table) -> None:
        self._con.register(name, table)

    def materialise(self, step: Step) -> None:
        kind = "VIEW" if step.kind == "view" else "TABLE"
        self._con.execute(f"CREATE OR REPLACE TEMP {kind} {step.name} AS {step.sql}")

    def query(self, sql: str) -> pa.Table:
        return self._con.sql(sql).to_arrow_table()

    def close(self) -> None:
        self._con.close()
