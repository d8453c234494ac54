"""The portable SQL lint: every analytics query parses (sqlglot, DuckDB dialect) into only
the constructs known to run the same on DuckDB and Spark; the constructs that transpile to
failing or silently wrong Spark SQL are refused, each shown by a test. The Spark engine runs
the lint before every query, so a query outside the subset never reaches Spark."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from huitouke.analytics import LayerWindows, LifecycleRules
from huitouke.analytics import sql as q
from huitouke.analytics.periods import custom_range
from huitouke.analytics.portable import assert_portable, portability_problems
from huitouke.analytics.spark import SparkBackend


def every_query() -> list[str]:
    """Every text the engines run: the steps in every variant, the queries for every
    period kind and option, and the order checks of the engine."""
    w, r = LayerWindows(), LifecycleRules()
    out = [
        s.sql
        for merge in (False, True)
        for currency in (None, "CNY")
        for s in q.all_steps("America/New_York", currency, merge)
    ]
    out += [q.period_sql(k) for k in ("day", "week", "month", "quarter", "year")]
    out.append(q.period_sql(custom=custom_range(date(2024, 1, 1), date(2024, 3, 31))))
    out += [q.cohort_sql(), q.ladder_sql(5), q.category_cycles_sql()]
    out += [
        q.category_cycles_sql(date(2024, 1, 1)),
        q.category_cycles_sql(datetime(2024, 1, 1, tzinfo=UTC)),
    ]
    for as_of in (date(2024, 6, 30), datetime(2024, 6, 30, 12, tzinfo=UTC)):
        for lines in (False, True):
            for p_alive in (False, True):
                out.append(q.customers_sql(as_of, w, r, with_lines=lines, with_p_alive=p_alive))
    return out


def test_every_analytics_query_is_portable() -> None:
    queries = every_query()
    assert len(queries) > 20
    for sql in queries:
        assert portability_problems(sql) == (), sql


def test_engine_checks_are_portable() -> None:
    """The checks the engines run on the orders before any query."""
    from huitouke.analytics import engine, spark

    for sql in (engine.CURRENCIES_SQL, engine.DUPLICATES_SQL, spark.NULLS_SQL, spark.STATUSES_SQL):
        assert portability_problems(sql) == (), sql


# --- the three failures the lint exists for --------------------------------------------------


def test_qualify_with_limit_refused() -> None:
    """sqlglot moves the LIMIT into the subquery it makes of QUALIFY: Spark would keep the
    first rows before filtering — a silently wrong answer."""
    sql = (
        "SELECT customer_id, order_id FROM orders "
        "QUALIFY ROW_NUMBER() OVER (PARTITION BY customer_id ORDER BY ordered_at) = 1 "
        "ORDER BY customer_id LIMIT 3"
    )
    spark = q.to_spark(sql)
    # what transpiling does: the limit lands inside, before the filter
    inner = spark[spark.index("(") : spark.rindex(")")]
    assert "LIMIT 3" in inner
    problems = portability_problems(sql)
    assert any(p.startswith("QUALIFY") for p in problems)
    with pytest.raises(ValueError, match="QUALIFY"):
        assert_portable(sql)


def test_quantile_cont_refused() -> None:
    """quantile_cont(x, 0.9) transpiles to PERCENTILE_CONT(x, 0.9), which Spark rejects."""
    sql = "SELECT quantile_cont(gap_days, 0.9) AS p90 FROM counted"
    assert "PERCENTILE_CONT(gap_days, 0.9)" in q.to_spark(sql)
    problems = portability_problems(sql)
    assert problems and "PercentileCont" in problems[0]


def test_range_table_function_refused() -> None:
    """range(3) t(i) transpiles to EXPLODE(SEQUENCE(…), …) in FROM: invalid Spark SQL."""
    sql = "SELECT i FROM range(3) t(i)"
    assert "EXPLODE(SEQUENCE(" in q.to_spark(sql)
    problems = portability_problems(sql)
    assert any("table function" in p for p in problems)


@pytest.mark.parametrize(
    ("sql", "fragment"),
    [
        ("SELECT my_udf(x) FROM t", "function my_udf()"),
        ("SELECT * FROM (SELECT x FROM t ORDER BY x LIMIT 3) s", "LIMIT below"),
        ("SELECT x FROM t LIMIT 3", "LIMIT without ORDER BY"),
        ("SELECT CAST(x AS HUGEINT) FROM t", "type INT128"),
        ("SELECT list(x) FROM t", "not in the portable subset"),
        ("SELECT x FROM t; SELECT y FROM t", "exactly one statement"),
        ("SELECT FROM WHERE", "does not parse"),
    ],
)
def test_other_constructs_refused(sql: str, fragment: str) -> None:
    assert any(fragment in p for p in portability_problems(sql)), portability_problems(sql)


def test_spark_backend_refuses_before_running() -> None:
    """The Spark engine lints every text it is given; no session is touched on refusal."""

    class NoSession:
        class conf:
            @staticmethod
            def set(key: str, value: str) -> None:
                assert (key, value) == ("spark.sql.session.timeZone", "UTC")

        def sql(self, text: str) -> None:
            raise AssertionError("a refused query reached Spark")

    backend = SparkBackend(NoSession())
    with pytest.raises(ValueError, match="PercentileCont"):
        backend.query("SELECT quantile_cont(x, 0.9) FROM orders")
