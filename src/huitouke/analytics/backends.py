"""Where the analytics SQL runs: the embedded DuckDB (default) or Spark (:mod:`.spark`).

A backend registers Arrow tables under the names the queries read, materialises the shared
steps of :mod:`huitouke.analytics.sql` and runs a query, answering an Arrow table. The
queries are written once in the portable subset of DuckDB's dialect
(:mod:`huitouke.analytics.portable`); DuckDB runs them as they are, Spark after sqlglot
transpiled them.
"""

from __future__ import annotations

import os
import re
from typing import Protocol

import pyarrow as pa

from huitouke.analytics.sql import Step
from huitouke.errors import InputError

__all__ = ["Backend", "DuckDBBackend", "check_memory_limit"]


class Backend(Protocol):
    #: "duckdb" or "spark"
    name: str

    def register(self, name: str, table: pa.Table) -> None:
        """Make ``table`` readable as the relation ``name`` (replacing an earlier one)."""

    def materialise(self, step: Step) -> None:
        """Create the relation of ``step`` (a view, or a table computed once)."""

    def query(self, sql: str) -> pa.Table:
        """Run one query of :mod:`huitouke.analytics.sql` (DuckDB dialect, portable)."""

    def write_parquet(self, sql: str, path: str) -> None:
        """Write the rows of a query to Parquet at ``path`` (the backend writes them)."""

    def close(self) -> None:
        """Release what the backend holds."""


_MEMORY = re.compile(r"^\s*\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KIB|MIB|GIB|TIB)\s*$", re.IGNORECASE)


def check_memory_limit(value: str) -> str:
    """``value`` when it is a DuckDB memory size (``12GB``, ``800MiB``), else an InputError."""
    if not _MEMORY.match(value):
        raise InputError(
            f"bad DuckDB memory limit {value!r}: give a size such as 12GB or 800MiB",
            code="input.bad_memory_limit",
            message_zh=f"DuckDB 内存上限 {value!r} 无效:应为 12GB、800MiB 这样的大小",
            details={"value": value},
        )
    return value.strip()


def _quoted(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


class DuckDBBackend:
    """An in-memory DuckDB connection whose session zone is UTC.

    ``memory_limit`` (DuckDB's, e.g. ``"12GB"``; None: DuckDB's default, 80 % of the
    machine's memory) bounds what its operators hold; past it they spill to
    ``temp_directory`` (None: ``huitouke-duckdb`` in the system's temporary directory).
    Every result the engine reads is ordered by its query, so DuckDB need not keep the
    insertion order of intermediate rows (which lets it stream and spill more).
    """

    name = "duckdb"

    def __init__(
        self,
        threads: int | None = None,
        *,
        memory_limit: str | None = None,
        temp_directory: str | None = None,
    ) -> None:
        import tempfile

        import duckdb

        self._con = duckdb.connect(":memory:")
        # Results never depend on the machine's zone: instants come back in UTC.
        self._con.execute("SET TimeZone = 'UTC'")
        self._con.execute("SET preserve_insertion_order = false")
        if threads:
            self._con.execute(f"SET threads = {int(threads)}")
        if memory_limit:
            self._con.execute(f"SET memory_limit = {_quoted(check_memory_limit(memory_limit))}")
        spill = temp_directory or os.path.join(tempfile.gettempdir(), "huitouke-duckdb")
        self._con.execute(f"SET temp_directory = {_quoted(str(spill))}")

    def execute(self, sql: str, params: list[object] | None = None) -> None:
        """Run a statement that answers nothing (DuckDB only: the Parquet views)."""
        self._con.execute(sql, params or [])

    def register(self, name: str, table: pa.Table) -> None:
        self._con.register(name, table)

    def materialise(self, step: Step) -> None:
        kind = "VIEW" if step.kind == "view" else "TABLE"
        self._con.execute(f"CREATE OR REPLACE TEMP {kind} {step.name} AS {step.sql}")

    def query(self, sql: str) -> pa.Table:
        return self._con.sql(sql).to_arrow_table()

    def batches(self, sql: str, rows: int) -> pa.RecordBatchReader:
        """The result of ``sql`` streamed as Arrow record batches of at most ``rows`` rows
        (DuckDB only: the predictions score the customers batch by batch)."""
        return self._con.sql(sql).to_arrow_reader(rows)

    def write_parquet(self, sql: str, path: str) -> None:
        self._con.execute(f"COPY ({sql}) TO {_quoted(path)} (FORMAT parquet)")

    def close(self) -> None:
        self._con.close()
