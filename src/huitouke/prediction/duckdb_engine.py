"""Predictions with DuckDB over orders it reads itself (Parquet): the per-customer summary
computed in DuckDB, the fit in this process from distinct rows with weights, the scoring in
batches — none of the orders pass through this process.

1. :func:`duckdb_summary` — the counted orders (paid or partially refunded, one currency)
   up to ``as_of``, a customer's orders on one local day (``ordered_at AT TIME ZONE`` the
   merchant's zone) merged into one, and per customer ``frequency``, ``recency``, ``T`` and
   ``monetary_value`` exactly as :func:`huitouke.models.summary_from_transactions` defines
   them, plus ``own_mean`` (the mean merged order value, the spend fallback) — a temporary
   table of the DuckDB connection, which spills past its ``memory_limit`` like every
   operator of the analytics.
2. The summary collapsed in DuckDB to its distinct ``(frequency, recency, T)`` rows with
   their counts (and the repeat buyers' distinct ``(frequency, monetary_value)``) and fitted
   here by :func:`~huitouke.prediction.scoring.fit_weighted`, as the Spark path does.
3. :meth:`DuckDBPrediction.batches` — the summary rows streamed in customer-id order in
   batches and scored by :class:`~huitouke.prediction.scoring.Scorer` (the code
   :func:`~huitouke.prediction.predict` runs); :meth:`DuckDBPrediction.write_parquet`
   writes them batch by batch, so memory holds one batch of customers, not all of them.

The caller gives a connection whose relation ``orders`` holds the canonical orders
(:data:`huitouke.core.orders.ORDERS_SCHEMA`), checked as the analytics check them —
:func:`huitouke.analytics.engine.register_parquet_orders` registers a Parquet path so.
Same-day orders are always merged: without merging, which of a customer's orders on their
first day is "the first" depends on the row order, which a parallel reader does not keep.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from typing import Any, Protocol

import pyarrow as pa

from huitouke.core.orders import COUNTED_STATUSES
from huitouke.errors import InputError
from huitouke.models.summary import unit_days
from huitouke.prediction.scoring import (
    COVERAGE,
    DriverFit,
    Prediction,
    _arrow_backed,
    check_arguments,
    fit_weighted,
)
from huitouke.prediction.transactions import _check_zone

__all__ = [
    "SUMMARY_TABLE",
    "DuckDBPrediction",
    "SqlConnection",
    "counted_currency",
    "duckdb_summary",
    "last_order_day",
    "predict_duckdb",
]

#: the temporary table of the per-customer summary
SUMMARY_TABLE = "prediction_summary"
#: customers scored per batch
BATCH_ROWS = 262_144


class SqlConnection(Protocol):
    """What the predictions need of a DuckDB connection (the analytics' ``DuckDBBackend``)."""

    def query(self, sql: str) -> pa.Table: ...

    def execute(self, sql: str, params: list[object] | None = None) -> None: ...

    def batches(self, sql: str, rows: int) -> pa.RecordBatchReader: ...


def _text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _counted_where(currency: str | None) -> str:
    statuses = ", ".join(_text(s) for s in COUNTED_STATUSES)
    where = f"status IN ({statuses})"
    if currency is not None:
        where += f" AND currency = {_text(currency)}"
    return where


def _local_day(timezone: str) -> str:
    return f"CAST(ordered_at AT TIME ZONE {_text(timezone)} AS DATE)"


def counted_currency(con: SqlConnection, currency: str | None = None) -> str:
    """The one currency of the counted orders (``currency`` when given); several without
    ``currency`` is an error, as in :func:`~huitouke.prediction.transactions.counted_transactions`."""
    if currency is not None:
        return currency
    found = sorted(
        str(r["currency"])
        for r in con.query(
            f"SELECT DISTINCT currency FROM orders WHERE {_counted_where(None)}"
        ).to_pylist()
    )
    if len(found) > 1:
        raise InputError(
            f"the orders are in several currencies {found}; choose one (--currency)",
            code="input.mixed_currency",
            message_zh=f"订单含多种币种 {found};请指定一种(--currency)",
            details={"currencies": found},
        )
    return found[0] if found else ""


def last_order_day(con: SqlConnection, *, timezone: str, currency: str | None = None) -> date:
    """The merchant's local day of the last counted order (the default ``as_of``)."""
    _check_zone(timezone)
    cur = counted_currency(con, currency)
    row = con.query(
        f"SELECT MAX({_local_day(timezone)}) AS last FROM orders WHERE {_counted_where(cur)}"
    ).to_pylist()[0]
    if row["last"] is None:
        raise InputError(
            "there are no counted orders (paid or partially refunded) to predict from",
            code="input.no_orders",
            message_zh="没有可统计的订单(已支付或部分退款)可用于预测",
        )
    day: date = row["last"]
    return day


def _refuse_negative(con: SqlConnection, where: str, as_of: date, timezone: str) -> None:
    """A counted order whose refund exceeds its amount (the in-process summary refuses a
    negative order value as well)."""
    rows = con.query(
        "SELECT order_id, customer_id, CAST(amount - refunded_amount AS VARCHAR) AS revenue "
        f"FROM orders WHERE {where} AND amount - refunded_amount < 0 "
        f"AND {_local_day(timezone)} <= DATE '{as_of.isoformat()}' "
        "ORDER BY order_id LIMIT 1"
    ).to_pylist()
    if rows:
        r = rows[0]
        raise InputError(
            f"order {r['order_id']} of customer {r['customer_id']} has a negative value "
            f"{r['revenue']} (refunded more than its amount)",
            code="input.bad_amount",
            message_zh=f"客户 {r['customer_id']} 的订单 {r['order_id']} 金额为负 {r['revenue']}"
            "(退款超过订单金额)",
            details={"column": "refunded_amount", "order_id": r["order_id"]},
        )


def duckdb_summary(
    con: SqlConnection,
    *,
    timezone: str,
    as_of: date,
    currency: str | None = None,
    unit: str | float = "D",
) -> str:
    """Compute the per-customer summary (see the module docstring) into the temporary
    table :data:`SUMMARY_TABLE` of ``con``; returns the currency."""
    _check_zone(timezone)
    days = float(unit_days(unit))
    cur = counted_currency(con, currency)
    where = _counted_where(cur)
    _refuse_negative(con, where, as_of, timezone)
    end = f"DATE '{as_of.isoformat()}'"
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE {SUMMARY_TABLE} AS
WITH per_day AS (
    SELECT customer_id, {_local_day(timezone)} AS day,
           SUM(amount - refunded_amount) AS revenue
    FROM orders
    WHERE {where} AND {_local_day(timezone)} <= {end}
    GROUP BY customer_id, day
), per_customer AS (
    SELECT customer_id, MIN(day) AS first_day, MAX(day) AS last_day, COUNT(*) AS n,
           SUM(revenue) AS total, arg_min(revenue, day) AS first_revenue
    FROM per_day
    GROUP BY customer_id
)
SELECT customer_id,
       CAST(n - 1 AS DOUBLE) AS frequency,
       CAST(date_diff('day', first_day, last_day) AS DOUBLE) / {days!r} AS recency,
       CAST(date_diff('day', first_day, {end}) AS DOUBLE) / {days!r} AS "T",
       CASE WHEN n > 1 THEN CAST(total - first_revenue AS DOUBLE) / CAST(n - 1 AS DOUBLE)
            ELSE 0.0 END AS monetary_value,
       CAST(total AS DOUBLE) / CAST(n AS DOUBLE) AS own_mean
FROM per_customer"""
    )
    return cur


_SCORE_COLUMNS = 'customer_id, frequency, recency, "T", monetary_value, own_mean'


@dataclass(frozen=True)
class DuckDBPrediction:
    """A run over orders DuckDB reads: the fit, and the summary in ``con`` to score."""

    con: SqlConnection
    fit: DriverFit
    as_of: date
    horizon_days: int
    unit: str | float
    currency: str
    timezone: str
    batch_rows: int = BATCH_ROWS

    @property
    def model(self) -> str:
        return self.fit.scorer.name

    def batches(self) -> Iterator[pa.Table]:
        """The scores in customer-id order, one batch of customers at a time, with the
        columns of :func:`~huitouke.prediction.predict_customers` (``model`` last)."""
        reader = self.con.batches(
            f"SELECT {_SCORE_COLUMNS} FROM {SUMMARY_TABLE} ORDER BY customer_id",
            self.batch_rows,
        )
        s = self.fit.scorer
        for batch in reader:
            if batch.num_rows == 0:
                continue
            table = s.score(
                batch.column("customer_id").cast(pa.string()),
                batch.column("frequency").to_numpy(zero_copy_only=False),
                batch.column("recency").to_numpy(zero_copy_only=False),
                batch.column("T").to_numpy(zero_copy_only=False),
                batch.column("monetary_value").to_numpy(zero_copy_only=False),
                batch.column("own_mean").to_numpy(zero_copy_only=False),
            )
            yield table.append_column("model", pa.array([s.name] * batch.num_rows, pa.string()))

    def write_parquet(self, path: str) -> int:
        """Write the scores to one Parquet file batch by batch; returns the customers."""
        import pyarrow.parquet as pq

        n = 0
        writer: Any = None
        try:
            for table in self.batches():
                if writer is None:
                    writer = pq.ParquetWriter(path, table.schema)
                writer.write_table(table)
                n += table.num_rows
            if writer is None:  # no customer: an empty file with the columns
                empty = self._empty()
                writer = pq.ParquetWriter(path, empty.schema)
                writer.write_table(empty)
        finally:
            if writer is not None:
                writer.close()
        return n

    def _empty(self) -> pa.Table:
        import numpy as np

        s = self.fit.scorer
        e = np.empty(0, dtype=np.float64)
        table = s.score(pa.array([], pa.string()), e, e, e, e, e)
        return table.append_column("model", pa.array([], pa.string()))

    def to_prediction(self) -> Prediction:
        """All the scores as the :class:`Prediction` :func:`predict` gives (sorted by
        customer id, the same columns and types)."""
        tables = list(self.batches()) or [self._empty()]
        frame = pa.concat_tables(tables).to_pandas(types_mapper=_arrow_backed)
        return self.fit.prediction(
            frame, as_of=self.as_of, horizon_days=self.horizon_days, unit=self.unit,
            currency=self.currency, timezone=self.timezone,
        )  # fmt: skip


def predict_duckdb(
    con: SqlConnection,
    *,
    as_of: date | None,
    timezone: str,
    model: str = "auto",
    horizon_days: int = 90,
    unit: str | float = "D",
    currency: str | None = None,
    margin: float | None = None,
    discount_rate: float | None = None,
    coverage: float = COVERAGE,
    batch_rows: int = BATCH_ROWS,
) -> DuckDBPrediction:
    """:func:`huitouke.prediction.predict` on the relation ``orders`` of ``con``: the
    summary in DuckDB, the fit here from weighted distinct rows, the scores streamed by
    :meth:`DuckDBPrediction.batches`. ``as_of`` None is the last counted order's day."""
    margin_, rate = check_arguments(model, horizon_days, margin, discount_rate)
    _check_zone(timezone)
    day = as_of if as_of is not None else last_order_day(con, timezone=timezone, currency=currency)
    cur = duckdb_summary(con, timezone=timezone, as_of=day, currency=currency, unit=unit)
    rows = con.query(
        f'SELECT frequency, recency, "T", COUNT(*) AS w FROM {SUMMARY_TABLE} '
        'GROUP BY frequency, recency, "T"'
    )

    def spend_rows() -> pa.Table:
        return con.query(
            f"SELECT frequency, monetary_value, COUNT(*) AS w FROM {SUMMARY_TABLE} "
            "WHERE frequency > 0 AND monetary_value > 0 GROUP BY frequency, monetary_value"
        )

    fit = fit_weighted(
        rows,
        spend_rows,
        model=model,
        day=day,
        horizon_days=horizon_days,
        unit=unit,
        margin=margin_,
        discount_rate=rate,
        coverage=coverage,
    )
    return DuckDBPrediction(con, fit, day, horizon_days, unit, cur, timezone, batch_rows)
