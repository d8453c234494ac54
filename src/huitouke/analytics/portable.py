"""The portable subset of SQL the analytics are written in, checked with sqlglot.

The queries of :mod:`huitouke.analytics.sql` are DuckDB SQL that sqlglot transpiles to Spark
SQL. Transpiling alone is not enough: some constructs come out as Spark SQL that fails
(``quantile_cont(x, 0.9)`` becomes a ``PERCENTILE_CONT(x, 0.9)`` Spark rejects; a
``range(3) t(i)`` table function becomes invalid SQL) or, worse, as Spark SQL that runs and
answers something else (``QUALIFY … LIMIT`` moves the limit into the subquery that computes
the window, so it limits before filtering). So the queries may only use the constructs
listed here — each of them run on both engines by the parity tests
(``tests/analytics/test_spark_parity.py``) — and :func:`portability_problems` names every
other one. The Spark engine refuses a query with a problem instead of running it.

Rules:

* every syntax node must be of an allowed kind (:data:`ALLOWED_NODES`); an unknown function
  parses as ``Anonymous`` and is refused;
* ``LIMIT`` only on the outermost query, ordered, and never together with ``QUALIFY``
  (``QUALIFY`` is not allowed at all);
* a relation in ``FROM``/``JOIN`` is a table name or a subquery, never a table function;
* casts only to the types in :data:`ALLOWED_TYPES`.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError

__all__ = ["ALLOWED_NODES", "ALLOWED_TYPES", "assert_portable", "portability_problems"]

#: Syntax nodes (sqlglot expression classes) known to mean the same on DuckDB and Spark
#: once transpiled; the parity tests run every one of them on both.
ALLOWED_NODES: frozenset[type[exp.Expression]] = frozenset(
    {
        # query structure
        exp.Select,
        exp.From,
        exp.Join,
        exp.Where,
        exp.Group,
        exp.Having,
        exp.Order,
        exp.Ordered,
        exp.Limit,
        exp.Distinct,
        exp.With,
        exp.CTE,
        exp.Subquery,
        exp.Table,
        exp.TableAlias,
        exp.Alias,
        exp.Column,
        exp.Identifier,
        exp.Star,
        exp.Paren,
        # windows
        exp.Window,
        exp.WindowSpec,
        exp.RowNumber,
        exp.FirstValue,
        exp.Lag,
        exp.Lead,
        # values and types
        exp.Literal,
        exp.Null,
        exp.Boolean,
        exp.Var,
        exp.Cast,
        exp.DataType,
        exp.DataTypeParam,
        # logic and arithmetic
        exp.Case,
        exp.If,
        exp.And,
        exp.Or,
        exp.Not,
        exp.EQ,
        exp.NEQ,
        exp.GT,
        exp.GTE,
        exp.LT,
        exp.LTE,
        exp.Between,
        exp.In,
        exp.Is,
        exp.Add,
        exp.Sub,
        exp.Mul,
        exp.Div,
        exp.Neg,
        exp.Coalesce,
        exp.Greatest,
        exp.Floor,
        # aggregates
        exp.Count,
        exp.Sum,
        exp.Min,
        exp.Max,
        exp.Median,
        # dates and zones
        exp.AtTimeZone,
        exp.TimestampTrunc,
        exp.DateDiff,
        exp.Year,
        exp.Month,
    }
)

#: Types a query may cast to.
ALLOWED_TYPES: frozenset[Any] = frozenset(
    {
        exp.DataType.Type.INT,
        exp.DataType.Type.BIGINT,
        exp.DataType.Type.DOUBLE,
        exp.DataType.Type.DECIMAL,
        exp.DataType.Type.DATE,
        exp.DataType.Type.TEXT,
        exp.DataType.Type.VARCHAR,
        exp.DataType.Type.TIMESTAMPTZ,
        exp.DataType.Type.BOOLEAN,
    }
)


def _walk_problems(tree: Any) -> list[str]:
    problems: list[str] = []
    for node in tree.walk():
        kind = type(node)
        if isinstance(node, exp.Qualify):
            problems.append(
                "QUALIFY: sqlglot rewrites it for Spark as a subquery, and a LIMIT beside it "
                "then limits before the filter (silently wrong); filter a windowed subquery"
            )
            continue
        if isinstance(node, exp.Anonymous):
            problems.append(f"function {node.name}(): not known to run the same on Spark")
            continue
        if kind not in ALLOWED_NODES:
            sql = node.sql("duckdb")
            problems.append(
                f"{kind.__name__} ({sql[:60]}): not in the portable subset"
                + (" (a table function)" if isinstance(node.parent, exp.Table) else "")
            )
            continue
        if isinstance(node, exp.Table) and not isinstance(node.this, exp.Identifier):
            problems.append(f"table function {node.sql('duckdb')[:60]}: not portable")
        if isinstance(node, exp.DataType) and node.this not in ALLOWED_TYPES:
            problems.append(f"type {node.sql('duckdb')}: not in the portable subset")
        if isinstance(node, exp.Limit):
            parent = node.parent
            if parent is None or parent is not tree or not isinstance(parent, exp.Select):
                problems.append("LIMIT below the outermost query: not portable")
            elif not parent.args.get("order"):
                problems.append("LIMIT without ORDER BY: which rows it keeps is not defined")
    return problems


@lru_cache(maxsize=1024)
def portability_problems(sql: str) -> tuple[str, ...]:
    """What in ``sql`` (DuckDB dialect, one statement) is outside the portable subset —
    empty when the query may run on both engines."""
    try:
        trees = sqlglot.parse(sql, read="duckdb")
    except ParseError as exc:
        return (f"does not parse as DuckDB SQL: {exc}",)
    if len(trees) != 1 or trees[0] is None:
        return ("expected exactly one statement",)
    return tuple(_walk_problems(trees[0]))


def assert_portable(sql: str) -> None:
    """Raise ValueError naming every construct of ``sql`` outside the portable subset."""
    problems = portability_problems(sql)
    if problems:
        raise ValueError("SQL outside the portable subset: " + "; ".join(problems))
