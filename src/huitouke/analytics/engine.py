"""The analytics engine: the SQL of :mod:`huitouke.analytics.sql` run by the embedded DuckDB
over the canonical orders Arrow table.

The engine validates its input, registers the relations the queries read, materialises the
shared steps once (counted orders with their sequence numbers; category orders) and turns
results into pandas frames. Definitions are the BRIEF's; every docstring of a metric says
which.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from functools import cached_property
from typing import Any, ClassVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from huitouke.analytics import sql as q
from huitouke.analytics.backends import Backend, DuckDBBackend
from huitouke.analytics.periods import (
    Period,
    check_kind,
    custom_range,
    is_complete,
    periods_between,
)
from huitouke.analytics.segments import (
    LAYER_STRATEGY,
    LAYERS,
    RFM_GRID,
    RFM_SEGMENTS,
    LayerWindows,
    LifecycleRules,
)
from huitouke.core.orders import (
    DEFAULT_SOURCE,
    MONEY,
    ORDERS_SCHEMA,
    OrderStatus,
    duplicate_ids_error,
    null_value_error,
    unknown_status_error,
    with_source,
)
from huitouke.errors import InputError

__all__ = ["LINES_COLUMNS", "PERIOD_COLUMNS", "Analytics"]

#: Columns of :meth:`Analytics.period_metrics`, in order.
PERIOD_COLUMNS: tuple[str, ...] = (
    "period",
    "period_start",
    "period_end",
    "buyers",
    "orders",
    "revenue",
    "aov",
    "returning_buyers",
    "new_buyers",
    "multi_buyers",
    "repeat_orders",
    "returning_revenue",
    "buyback_buyers",
    "customer_repurchase_rate",
    "in_period_repurchase_rate",
    "order_repurchase_rate",
    "buyback_rate",
    "returning_revenue_share",
    "returning_buyer_share",
    "complete",
    "buyback_null_reason",
)
_RATES = (
    "customer_repurchase_rate",
    "in_period_repurchase_rate",
    "order_repurchase_rate",
    "buyback_rate",
    "returning_revenue_share",
    "returning_buyer_share",
)

#: Columns an order-lines table must have.
LINES_COLUMNS: tuple[str, ...] = (
    "source",
    "order_id",
    "sku",
    "product_name",
    "category",
    "quantity",
    "unit_price",
)

CENT = Decimal("0.01")

#: The checks every engine runs on the orders it registered (portable SQL, like the queries).
CURRENCIES_SQL = "SELECT DISTINCT currency FROM orders"
DUPLICATES_SQL = (
    "SELECT order_id, COUNT(*) OVER () AS n FROM orders GROUP BY source, order_id "
    "HAVING COUNT(*) > 1 ORDER BY order_id, source LIMIT 5"
)
#: The checks of orders an engine reads itself from Parquet (an Arrow table's are made in Python).
NULLS_SQL = (
    "SELECT "
    + ", ".join(
        f"SUM(CASE WHEN {f.name} IS NULL THEN 1 ELSE 0 END) AS {f.name}"
        for f in ORDERS_SCHEMA
        if not f.nullable
    )
    + " FROM orders"
)
STATUSES_SQL = "SELECT DISTINCT status FROM orders"
_Q4 = Decimal("0.0001")


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InputError(
            f"unknown time zone {name!r} (use an IANA name such as Asia/Shanghai)",
            code="input.bad_timezone",
            message_zh=f"未知时区 {name!r}(请使用 IANA 名称,如 Asia/Shanghai)",
            details={"timezone": name},
        ) from exc


def _validate_orders(orders: pa.Table) -> pa.Table:
    """The canonical orders table, or an InputError naming what is wrong."""
    if not isinstance(orders, pa.Table):
        raise InputError(
            f"orders must be a pyarrow.Table, got {type(orders).__name__}",
            code="input.bad_orders",
            message_zh=f"订单必须是 pyarrow.Table,实际为 {type(orders).__name__}",
        )
    orders = with_source(orders)  # a table without sources: one source, the default
    missing = [f.name for f in ORDERS_SCHEMA if f.name not in orders.column_names]
    if missing:
        raise InputError(
            f"the orders table lacks column(s) {', '.join(missing)}",
            code="input.missing_column",
            message_zh=f"订单表缺少列:{', '.join(missing)}",
            details={"missing": missing},
        )
    cols = []
    for field in ORDERS_SCHEMA:
        col = orders.column(field.name)
        if not col.type.equals(field.type):
            try:
                col = col.cast(field.type)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise InputError(
                    f"column {field.name} is {col.type}, expected {field.type}: {exc}",
                    code="input.bad_column_type",
                    message_zh=f"列 {field.name} 的类型为 {col.type},应为 {field.type}",
                    details={"column": field.name},
                ) from exc
        if not field.nullable and col.null_count:
            raise InputError(
                f"column {field.name} has {col.null_count} empty value(s)",
                code="input.null_value",
                message_zh=f"列 {field.name} 有 {col.null_count} 个空值",
                details={"column": field.name},
            )
        cols.append(col)
    table = pa.Table.from_arrays(cols, schema=ORDERS_SCHEMA)
    known = {s.value for s in OrderStatus}
    statuses = set(pc.unique(table.column("status")).to_pylist())
    if statuses - known:
        raise InputError(
            f"unknown order status(es) {sorted(statuses - known)}; expected {sorted(known)}",
            code="input.bad_status",
            message_zh=f"未知的订单状态 {sorted(statuses - known)};应为 {sorted(known)}",
            details={"column": "status"},
        )
    return table


def _validate_lines(lines: pa.Table) -> pa.Table:
    lines = with_source(lines)
    missing = [c for c in LINES_COLUMNS if c not in lines.column_names]
    if missing:
        raise InputError(
            f"the order lines table lacks column(s) {', '.join(missing)}",
            code="input.missing_column",
            message_zh=f"订单明细表缺少列:{', '.join(missing)}",
            details={"missing": missing},
        )
    types = {
        "source": pa.string(),
        "order_id": pa.string(),
        "sku": pa.string(),
        "product_name": pa.string(),
        "category": pa.string(),
        "quantity": pa.int64(),
        "unit_price": MONEY,
    }
    cols = []
    for name, typ in types.items():
        col = lines.column(name)
        try:
            cols.append(col.cast(typ) if not col.type.equals(typ) else col)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise InputError(
                f"order lines column {name} is {col.type}, expected {typ}",
                code="input.bad_column_type",
                message_zh=f"订单明细列 {name} 的类型为 {col.type},应为 {typ}",
                details={"column": name},
            ) from exc
    return pa.Table.from_arrays(cols, names=list(types))


def _dec(v: Any) -> Decimal:
    return v if isinstance(v, Decimal) else Decimal(str(v or 0))


def register_parquet_orders(
    backend: Backend, source: Any, *, before: datetime | None = None
) -> None:
    """Orders read by DuckDB from Parquet (``read_parquet``) as they are queried: none of
    them pass through this process, so they need not fit in its memory. The columns
    are checked and cast to the canonical types as :func:`_validate_orders` does; a
    file without ``source`` is the default source's. Registers the view ``orders`` of
    ``backend`` and checks its empty values and statuses (:func:`check_read_orders`)."""
    assert isinstance(backend, DuckDBBackend)
    paths = [str(source)] if isinstance(source, str | os.PathLike) else [str(x) for x in source]
    files = [os.path.join(x, "**", "*.parquet") if os.path.isdir(x) else x for x in paths]
    label = ", ".join(paths)
    listing = "[" + ", ".join(q.lit(f) for f in files) + "]"
    try:
        described = backend.query(f"DESCRIBE SELECT * FROM read_parquet({listing})")
    except Exception as exc:  # missing file, not Parquet, unreadable
        raise InputError(
            f"cannot read Parquet orders at {label}: {type(exc).__name__}: {exc}",
            code="input.bad_file",
            message_zh=f"无法读取 Parquet 订单 {label}:{exc}",
            details={"file": label},
        ) from exc
    types = {r["column_name"]: str(r["column_type"]).upper() for r in described.to_pylist()}
    missing = [f.name for f in ORDERS_SCHEMA if f.name not in types and f.name != "source"]
    if missing:
        raise InputError(
            f"the orders at {label} lack column(s) {', '.join(missing)}",
            code="input.missing_column",
            message_zh=f"{label} 的订单缺少列:{', '.join(missing)}",
            details={"missing": missing, "file": label},
        )
    selects = []
    for field in ORDERS_SCHEMA:
        have = types.get(field.name)
        if have is None:  # only source: one source's orders, as for an Arrow table
            selects.append(f"{q.lit(DEFAULT_SOURCE)} AS source")
            continue
        if pa.types.is_timestamp(field.type):
            ok = have == "TIMESTAMP WITH TIME ZONE"
            want, cast = "an instant (timestamp with a time zone)", "TIMESTAMPTZ"
        elif pa.types.is_decimal(field.type):
            ok = have.startswith(("DECIMAL", "BIGINT", "INTEGER", "SMALLINT", "TINYINT"))
            want, cast = "decimal(18,4)", "DECIMAL(18,4)"
        else:
            ok = not have.endswith("[]") and not have.startswith(("STRUCT", "MAP"))
            want, cast = "string", "VARCHAR"
        if not ok:
            raise InputError(
                f"column {field.name} of {label} is {have}, expected {want}",
                code="input.bad_column_type",
                message_zh=f"{label} 的列 {field.name} 的类型为 {have},应为 {want}",
                details={"column": field.name, "file": label},
            )
        selects.append(f"CAST({field.name} AS {cast}) AS {field.name}")
    where = ""
    if before is not None:
        where = f"\nWHERE ordered_at < {q.lit(before)}"
    backend.execute(
        "CREATE OR REPLACE TEMP VIEW orders AS\nSELECT "
        + ", ".join(selects)
        + f"\nFROM read_parquet({listing}){where}"
    )
    check_read_orders(backend)


def check_read_orders(backend: Backend) -> None:
    """Empty required values and unknown statuses of orders the backend read itself."""
    required = [f.name for f in ORDERS_SCHEMA if not f.nullable]
    counts = backend.query(NULLS_SQL).to_pylist()[0]
    for c in required:
        n = int(counts[c] or 0)
        if n:
            raise null_value_error(c, n)
    known = {s.value for s in OrderStatus}
    statuses = {r["status"] for r in backend.query(STATUSES_SQL).to_pylist()}
    if statuses - known:
        raise unknown_status_error(sorted(statuses - known))


def refuse_duplicate_ids(backend: Backend) -> None:
    """Refuse an order id that occurs twice within a source."""
    # A parallel hash aggregate: several times faster than Arrow's value_counts.
    rows = backend.query(DUPLICATES_SQL).to_pylist()
    if rows:
        raise duplicate_ids_error([r["order_id"] for r in rows], int(rows[0]["n"]))


class Analytics:
    """Exact repurchase analytics over one merchant's orders (definitions: BRIEF).

    ``orders`` is the canonical orders table (:data:`huitouke.core.orders.ORDERS_SCHEMA`)
    with one row per order — per ``(source, order_id)``: two sources may use the same id,
    and a table without a ``source`` column is one source's; ``lines`` the optional order
    lines (``source`` as for the orders, ``order_id, sku,
    product_name, category, quantity, unit_price``) needed for category cycles. Only
    counted orders (paid, partially refunded) count; revenue = amount − refunded_amount.
    Periods are cut in ``timezone`` (the merchant's zone, required: the doors pass the
    settings' ``HUITOUKE_TIMEZONE``). With ``merge_same_day`` a customer's orders on one
    local day count as one order. Orders in several currencies cannot be added up: pass
    ``currency`` to analyse one of them.

    ``coverage_end`` is the last local day the data cover (default: the day of the last
    counted order). A period ending after it is marked incomplete, and the buy-back rate of
    a period whose next period is incomplete is None (see :meth:`period_metrics`).
    """

    #: which backend runs the SQL ("duckdb"; "spark" for :class:`.spark.SparkAnalytics`)
    engine: ClassVar[str] = "duckdb"

    def __init__(
        self,
        orders: Any,
        *,
        timezone: str,
        lines: pa.Table | None = None,
        merge_same_day: bool = False,
        currency: str | None = None,
        windows: LayerWindows | None = None,
        lifecycle_rules: LifecycleRules | None = None,
        threads: int | None = None,
        coverage_end: date | None = None,
        memory_limit: str | None = None,
        temp_directory: str | None = None,
        before: datetime | None = None,
    ) -> None:
        self.zone = _zone(timezone)
        self._memory_limit = memory_limit
        self._temp_directory = temp_directory
        if not hasattr(self, "_source"):  # SparkAnalytics sets its own first
            self._source = orders
            self._before = before
        self.timezone = timezone
        self.merge_same_day = merge_same_day
        self.lines = _validate_lines(lines) if lines is not None else None
        self.windows = windows
        self.lifecycle_rules = lifecycle_rules or LifecycleRules()
        self._coverage_end = coverage_end
        self._lock = threading.RLock()
        self._materialised: set[str] = set()
        self._customers_cache: tuple[tuple[Any, ...], pa.Table] | None = None
        #: the customer rows kept in the backend (relation name per as-of and windows)
        self._customer_tables: dict[tuple[Any, ...], str] = {}
        #: the canonical orders as an Arrow table (None when a backend reads them itself)
        self.orders: pa.Table | None = None
        self._backend: Backend = self._open_backend(threads)
        try:
            self._register_orders(orders)
            currencies = sorted(
                r["currency"]
                for r in self._backend.query("SELECT DISTINCT currency FROM orders").to_pylist()
            )
            if currency is None:
                if len(currencies) > 1:
                    raise InputError(
                        f"orders are in several currencies ({', '.join(currencies)}); "
                        "choose one with currency=…",
                        code="input.mixed_currency",
                        message_zh=f"订单含多种币种({', '.join(currencies)});请指定一种币种",
                        details={"currencies": currencies},
                    )
                currency = currencies[0] if currencies else None
            self.currency = currency
            self._filter_currency = len(currencies) > 1
            self._refuse_duplicate_ids()
            if self.lines is not None:
                self._backend.register("order_lines", self.lines)
            grid = pa.table(
                {
                    "r_score": pa.array([k[0] for k in RFM_GRID], pa.int32()),
                    "f_score": pa.array([k[1] for k in RFM_GRID], pa.int32()),
                    "segment": list(RFM_GRID.values()),
                }
            )
            self._backend.register("rfm_segment_map", grid)
        except BaseException:
            self._backend.close()
            raise

    def _open_backend(self, threads: int | None) -> Backend:
        memory_limit, temp_directory = self._memory_limit, self._temp_directory
        if memory_limit is None or temp_directory is None:
            from huitouke.settings import get_settings

            s = get_settings()
            memory_limit = memory_limit or s.duckdb_memory_limit
            temp_directory = temp_directory or (
                None if s.duckdb_temp_directory is None else str(s.duckdb_temp_directory)
            )
        return DuckDBBackend(threads, memory_limit=memory_limit, temp_directory=temp_directory)

    def _register_orders(self, orders: Any) -> None:
        """Check the orders and register them as the relation ``orders``: an Arrow table,
        or a Parquet path / glob (or a list of them) that DuckDB reads itself."""
        if isinstance(orders, str | os.PathLike | list | tuple):
            self._register_parquet(orders)
            return
        table = _validate_orders(orders)
        if self._before is not None:
            table = table.filter(
                pc.less(
                    table.column("ordered_at"),
                    pa.scalar(self._before, pa.timestamp("us", tz="UTC")),
                )
            )
        self.orders = table
        self._backend.register("orders", self.orders)

    def _register_parquet(self, source: Any) -> None:
        """Orders read by DuckDB from Parquet (:func:`register_parquet_orders`)."""
        register_parquet_orders(self._backend, source, before=self._before)

    def _check_read_orders(self) -> None:
        check_read_orders(self._backend)

    # -- plumbing -------------------------------------------------------------------------------
    def _refuse_duplicate_ids(self) -> None:
        refuse_duplicate_ids(self._backend)

    def close(self) -> None:
        self._backend.close()

    def __enter__(self) -> Analytics:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _steps(self) -> dict[str, q.Step]:
        steps = q.all_steps(
            self.timezone, self.currency if self._filter_currency else None, self.merge_same_day
        )
        return {s.name: s for s in steps}

    _DEPENDS: ClassVar[dict[str, tuple[str, ...]]] = {
        "counted_base": (),
        "counted": ("counted_base",),
        "category_orders": ("counted_base", "counted"),
    }

    def _ensure(self, *names: str) -> None:
        """Materialise the named steps (and what they read) once."""
        steps = self._steps()
        with self._lock:
            for name in names:
                for dep in (*self._DEPENDS[name], name):
                    if dep in self._materialised:
                        continue
                    self._backend.materialise(steps[dep])
                    self._materialised.add(dep)

    def prepare(self) -> Analytics:
        """Materialise the shared steps now (counted orders, and category orders when lines
        are given) instead of on the first query; returns self."""
        self._ensure("counted", *(["category_orders"] if self.lines is not None else []))
        return self

    def sql(self, query: str) -> pa.Table:
        """Run a query of :mod:`huitouke.analytics.sql` (after the steps it reads)."""
        with self._lock:
            return self._backend.query(query)

    @cached_property
    def _date_span(self) -> tuple[date, date] | None:
        self._ensure("counted")
        row = self.sql(
            "SELECT MIN(local_date) AS lo, MAX(local_date) AS hi FROM counted"
        ).to_pylist()[0]
        if row["lo"] is None:
            return None
        return row["lo"], row["hi"]

    def until(self, as_of: date) -> Analytics:
        """The same analytics on the orders placed up to the local day ``as_of`` (inclusive):
        what the numbers were on that day."""
        limit = datetime.combine(as_of + timedelta(days=1), datetime.min.time(), self.zone)
        # on that day the data covered that whole day, whenever its last order was
        return self._derive(self._orders_before(limit.astimezone(UTC)), coverage_end=as_of)

    def _orders_before(self, limit: datetime) -> Any:
        """The orders argument of an engine over the orders placed before ``limit``."""
        if self.orders is None:  # read from Parquet: the new engine filters as it reads
            return limit
        keep = pc.less(
            self.orders.column("ordered_at"), pa.scalar(limit, pa.timestamp("us", tz="UTC"))
        )
        return self.orders.filter(keep)

    def _derive(self, orders: Any, *, coverage_end: date | None) -> Analytics:
        """An engine of the same kind and options over other orders (or, for orders read
        from Parquet, over the same files' orders placed before the instant ``orders``)."""
        before = None
        if isinstance(orders, datetime):
            before = orders if self._before is None else min(orders, self._before)
            orders = self._source
        return Analytics(
            orders,
            timezone=self.timezone,
            lines=self.lines,
            merge_same_day=self.merge_same_day,
            currency=self.currency,
            windows=self.windows,
            lifecycle_rules=self.lifecycle_rules,
            coverage_end=coverage_end,
            memory_limit=self._memory_limit,
            temp_directory=self._temp_directory,
            before=before,
        )

    @property
    def coverage_end(self) -> date | None:
        """The last local day the data cover: the one given, else the day of the last
        counted order (None without orders)."""
        if self._coverage_end is not None:
            return self._coverage_end
        span = self._date_span
        return None if span is None else span[1]

    @coverage_end.setter
    def coverage_end(self, day: date | None) -> None:
        self._coverage_end = day

    @property
    def date_span(self) -> tuple[date, date] | None:
        """The first and last local dates with a counted order (None without any)."""
        return self._date_span

    def _windows(self, windows: LayerWindows | None) -> LayerWindows:
        return windows or self.windows or LayerWindows.from_settings()

    # -- per period -------------------------------------------------------------------------------
    def _register_periods(self, periods: list[Period]) -> None:
        end = self.coverage_end
        table = pa.table(
            {
                "period": pa.array([p.label for p in periods], pa.string()),
                "period_start": pa.array([p.start for p in periods], pa.date32()),
                "period_end": pa.array([p.end for p in periods], pa.date32()),
                "next_start": pa.array([p.next_start for p in periods], pa.date32()),
                "complete": pa.array([is_complete(p.end, end) for p in periods], pa.bool_()),
                # The buy-back rate needs the whole next period: a partly observed one
                # would read as customers not coming back.
                "next_complete": pa.array(
                    [is_complete(p.next_end, end) for p in periods], pa.bool_()
                ),
            }
        )
        with self._lock:
            self._backend.register("periods", table)

    def _period_frame(self, table: pa.Table) -> pd.DataFrame:
        df = table.to_pandas(date_as_object=True)
        df["revenue"] = [_dec(v) for v in df["revenue"]]
        df["returning_revenue"] = [_dec(v) for v in df["returning_revenue"]]
        df["aov"] = [
            (r / o).quantize(_Q4, rounding=ROUND_HALF_EVEN) if o else None
            for r, o in zip(df["revenue"], df["orders"], strict=True)
        ]
        for c in (
            "buyers",
            "orders",
            "returning_buyers",
            "new_buyers",
            "multi_buyers",
            "repeat_orders",
        ):
            df[c] = df[c].astype("int64")
        df["buyback_buyers"] = df["buyback_buyers"].astype("Int64")
        for c in _RATES:
            df[c] = df[c].astype("object").where(df[c].notna(), None)
        df["complete"] = df["complete"].astype(bool)
        df["buyback_null_reason"] = (
            df["buyback_null_reason"]
            .astype("object")
            .where(df["buyback_null_reason"].notna(), None)
        )
        return df[list(PERIOD_COLUMNS)]

    def period_metrics(
        self, period: str = "month", *, start: date | None = None, end: date | None = None
    ) -> pd.DataFrame:
        """The BRIEF's per-period metrics for every period from the first to the last counted
        order (or the periods overlapping ``[start, end]``), empty periods included.

        Columns: :data:`PERIOD_COLUMNS`. ``revenue`` and ``aov`` are Decimal (aov rounded to
        4 places, half-even; None without orders). Rates are floats in [0, 1], None when
        their denominator is 0 (an empty period). ``complete`` is whether the data cover
        the whole period (its last day on or before :attr:`coverage_end`); ``buyback_rate``
        is None unless the next period is complete, and ``buyback_null_reason`` says why
        (``no_buyers``, ``next_period_incomplete``).
        """
        kind = check_kind(period)
        span = self._date_span
        if span is None and (start is None or end is None):
            return pd.DataFrame(columns=list(PERIOD_COLUMNS))
        lo = start if start is not None else span[0]  # type: ignore[index]
        hi = end if end is not None else span[1]  # type: ignore[index]
        periods = periods_between(lo, hi, kind)
        self._ensure("counted")
        with self._lock:
            self._register_periods(periods)
            table = self.sql(q.period_sql(kind))
        return self._period_frame(table)

    def range_metrics(self, start: date, end: date) -> pd.DataFrame:
        """The same metrics for one custom range ``[start, end]`` (inclusive); its buy-back
        rate compares with the following range of equal length."""
        p = custom_range(start, end)
        self._ensure("counted")
        with self._lock:
            self._register_periods([p])
            table = self.sql(q.period_sql(custom=p))
        return self._period_frame(table)

    def metrics_json(
        self, period: str = "month", *, start: date | None = None, end: date | None = None
    ) -> dict[str, Any]:
        """The CLI's JSON contract: ``{"period_kind", "timezone", "currency", "coverage_end",
        "periods": [{"period", "buyers", "orders", "revenue", "aov", "returning_buyers",
        "customer_repurchase_rate", "in_period_repurchase_rate", "order_repurchase_rate",
        "buyback_rate", "returning_revenue_share", …, "complete", "buyback_null_reason"}],
        "headline": …}`` — the headline is :func:`huitouke.analytics.compare.headline`.

        Money is the exact Decimal rounded half-even to 2 decimals and emitted as a JSON
        number; rates are numbers in [0, 1] or null (see :meth:`period_metrics`).
        """
        from huitouke.analytics.compare import headline

        df = self.period_metrics(period, start=start, end=end)
        out = []
        for row in df.to_dict("records"):
            out.append(
                {
                    "period": row["period"],
                    "period_start": row["period_start"].isoformat(),
                    "period_end": row["period_end"].isoformat(),
                    "buyers": int(row["buyers"]),
                    "orders": int(row["orders"]),
                    "revenue": float(row["revenue"].quantize(CENT, rounding=ROUND_HALF_EVEN)),
                    "aov": None
                    if row["aov"] is None
                    else float(row["aov"].quantize(CENT, rounding=ROUND_HALF_EVEN)),
                    "returning_buyers": int(row["returning_buyers"]),
                    "new_buyers": int(row["new_buyers"]),
                    **{c: None if row[c] is None else float(row[c]) for c in _RATES},
                    "complete": bool(row["complete"]),
                    "buyback_null_reason": row["buyback_null_reason"],
                }
            )
        end = self.coverage_end
        return {
            "period_kind": period,
            "timezone": self.timezone,
            "currency": self.currency,
            "coverage_end": None if end is None else end.isoformat(),
            "periods": out,
            "headline": headline(out, period),
        }

    # -- cohorts and ladder ---------------------------------------------------------------------
    def cohorts(self, value: str = "share") -> pd.DataFrame:
        """Cohort matrix by first-order month (rows, ``YYYY-MM``) and months since (columns
        k = 0..K). ``customers``: customers of the cohort with a counted order in month k;
        ``share``: that over the cohort size (k = 0 is 1.0); ``revenue``: their revenue
        (Decimal). Cells after the last month of data are None; earlier empty cells are 0.
        Months in which nobody made a first order have no row."""
        if value not in ("share", "revenue", "customers"):
            raise InputError(
                f"unknown cohort value {value!r}; use share, revenue or customers",
                code="input.bad_cohort_value",
                message_zh=f"未知的同期群取值 {value!r};可选 share、revenue、customers",
            )
        span = self._date_span
        if span is None:
            return pd.DataFrame()
        self._ensure("counted")
        rows = self.sql(q.cohort_sql()).to_pylist()
        last = span[1].year * 12 + span[1].month - 1
        first = span[0].year * 12 + span[0].month - 1
        n_k = last - first + 1
        labels = [f"{m // 12:04d}-{m % 12 + 1:02d}" for m in range(first, last + 1)]
        size: dict[str, int] = {}
        cells: dict[tuple[str, int], tuple[int, Decimal]] = {}
        for r in rows:
            label = f"{r['cohort'].year:04d}-{r['cohort'].month:02d}"
            cells[(label, int(r["k"]))] = (int(r["customers"]), _dec(r["revenue"]))
            if r["k"] == 0:
                size[label] = int(r["customers"])
        data: dict[int, list[Any]] = {k: [] for k in range(n_k)}
        for i, label in enumerate(labels):
            for k in range(n_k):
                if k > n_k - 1 - i:
                    data[k].append(None)
                    continue
                n, rev = cells.get((label, k), (0, Decimal(0)))
                if value == "customers":
                    data[k].append(n)
                elif value == "revenue":
                    data[k].append(rev)
                else:
                    data[k].append(n / size[label] if size.get(label) else None)
        df = pd.DataFrame(data, index=pd.Index(labels, name="cohort"), dtype=object)
        df.columns.name = "k"
        # A month in which nobody bought for the first time is no cohort.
        return df.loc[[label for label in labels if size.get(label)]]

    def ladder(self, max_k: int = 5) -> pd.DataFrame:
        """BRIEF purchase ladder: of customers who made purchase k, the share who made
        purchase k+1 (k = 1..max_k), with the median days between purchases k and k+1."""
        self._ensure("counted")
        rows = {int(r["seq"]): r for r in self.sql(q.ladder_sql(max_k)).to_pylist()}
        out = []
        for k in range(1, max_k + 1):
            reached = int(rows[k]["customers"]) if k in rows else 0
            nxt = int(rows[k + 1]["customers"]) if k + 1 in rows else 0
            med = rows[k + 1]["median_days"] if k + 1 in rows else None
            out.append(
                {
                    "k": k,
                    "reached_k": reached,
                    "reached_k_plus_1": nxt,
                    "share": nxt / reached if reached else None,
                    "median_days": None if med is None else float(med),
                }
            )
        return pd.DataFrame(
            out, columns=["k", "reached_k", "reached_k_plus_1", "share", "median_days"]
        )

    # -- purchase cycles and customers --------------------------------------------------------------
    def _need_lines(self) -> None:
        if self.lines is None:
            raise InputError(
                "category cycles need order lines (order_id, sku, product_name, category, "
                "quantity, unit_price)",
                code="input.lines_required",
                message_zh="品类购买周期需要订单明细(order_id、sku、product_name、category、quantity、unit_price)",
            )

    def category_cycles(self, as_of: date | datetime | None = None) -> pd.DataFrame:
        """BRIEF: per category, the median over the category's consecutive-order gaps (days
        between a customer's consecutive counted orders that contain the category)."""
        self._need_lines()
        self._ensure("counted", "category_orders")
        df = self.sql(q.category_cycles_sql(as_of)).to_pandas()
        df["median_days"] = (
            df["median_days"].astype("object").where(df["median_days"].notna(), None)
        )
        return df[["category", "median_days", "n_gaps", "customers"]]

    def customers(
        self,
        as_of: date | datetime,
        *,
        windows: LayerWindows | None = None,
        p_alive: pd.Series | None = None,
    ) -> pd.DataFrame:
        """One row per customer with a counted order up to ``as_of`` (a local date — orders
        on that day included — or an aware datetime).

        Columns: customer_id, orders, spend (Decimal), first_order_at, last_order_at (in the
        merchant's zone), last_order_date, days_since_last, cycle_days (median gap, None with
        fewer than 2 orders), main_category, next_expected_date, next_expected_source
        (own / category / shop / none), r_score, f_score, m_score, rfm_segment, layer,
        lifecycle, p_alive. See :func:`huitouke.analytics.sql.customers_sql`.
        """
        return self._customer_frame(self._customers_arrow(as_of, windows, p_alive))

    def _customers_arrow(
        self,
        as_of: date | datetime,
        windows: LayerWindows | None,
        p_alive: pd.Series | None = None,
    ) -> pa.Table:
        as_of = self._check_as_of(as_of)
        w = self._windows(windows)
        key = (as_of, w)
        cached = self._customers_cache
        if p_alive is None and cached is not None and cached[0] == key:
            return cached[1]
        steps = ["counted"] + (["category_orders"] if self.lines is not None else [])
        self._ensure(*steps)
        with self._lock:
            if p_alive is not None:
                pa_tab = pa.table(
                    {
                        "customer_id": pa.array([str(i) for i in p_alive.index], pa.string()),
                        "p_alive": pa.array(p_alive.astype(float).to_numpy(), pa.float64()),
                    }
                )
                self._backend.register("p_alive", pa_tab)
            table = self.sql(
                q.customers_sql(
                    as_of,
                    w,
                    self.lifecycle_rules,
                    with_lines=self.lines is not None,
                    with_p_alive=p_alive is not None,
                )
            )
        if p_alive is None:
            # segments() right after customers() for the same day reuses the rows
            self._customers_cache = (key, table)
        return table

    def _customer_table(self, as_of: date | datetime, windows: LayerWindows | None) -> str:
        """The name of a backend relation holding :meth:`customers`' rows (no P(alive)),
        computed once per as-of and windows and kept by the backend (DuckDB spills it past
        its memory limit; Spark caches it)."""
        as_of = self._check_as_of(as_of)
        w = self._windows(windows)
        key = (as_of, w)
        with self._lock:
            name = self._customer_tables.get(key)
            if name is None:
                self._ensure("counted", *(["category_orders"] if self.lines is not None else []))
                name = f"customer_table_{len(self._customer_tables)}"
                sql = q.customers_sql(
                    as_of,
                    w,
                    self.lifecycle_rules,
                    with_lines=self.lines is not None,
                    with_p_alive=False,
                )
                self._backend.materialise(q.Step(name, sql))
                self._customer_tables[key] = name
        return name

    def write_customers(
        self, as_of: date | datetime, path: str, *, windows: LayerWindows | None = None
    ) -> int:
        """Write :meth:`customers`' rows (no P(alive)) to Parquet at ``path`` — a file on
        DuckDB, a directory of part files on Spark — without bringing them into this
        process; returns the number of rows. The rows stay in the backend for
        :meth:`segments` of the same day."""
        name = self._customer_table(as_of, windows)
        with self._lock:
            self._backend.write_parquet(f"SELECT * FROM {name} ORDER BY customer_id", path)
            return int(self.sql(f"SELECT COUNT(*) AS n FROM {name}").to_pylist()[0]["n"])

    def _check_as_of(self, as_of: date | datetime) -> date | datetime:
        if isinstance(as_of, datetime) and as_of.tzinfo is None:
            raise InputError(
                "as_of datetime must carry a time zone (or pass a local date)",
                code="input.naive_datetime",
                message_zh="as_of 时间必须带时区(或传入本地日期)",
            )
        if isinstance(as_of, datetime):
            # The as-of day for day counts is the merchant's local day of that instant.
            return as_of.astimezone(self.zone)
        if not isinstance(as_of, date):
            raise InputError(
                f"as_of must be a date or datetime, got {type(as_of).__name__}",
                code="input.bad_as_of",
                message_zh="as_of 必须是日期或时间",
            )
        return as_of

    def _customer_frame(self, table: pa.Table) -> pd.DataFrame:
        df = table.to_pandas(date_as_object=True)  # decimal128 arrives as Decimal objects
        for c in ("first_order_at", "last_order_at"):
            df[c] = pd.to_datetime(df[c], utc=True).dt.tz_convert(self.timezone)
        for c in ("cycle_days", "used_cycle", "p_alive", "main_category"):
            df[c] = df[c].astype("object").where(df[c].notna(), None)
        for c in ("orders", "days_since_last", "r_score", "f_score", "m_score"):
            df[c] = df[c].astype("int64")
        return df

    def due_for_reminder(
        self, as_of: date, days: int = 7, *, customers: pd.DataFrame | None = None
    ) -> pd.DataFrame:
        """Customers whose expected next order date falls in the ``days`` days from
        ``as_of`` on — ``[as_of, as_of + days − 1]``, so 7 days are today and the 6 after —
        soonest first (excluding the lost layer)."""
        df = customers if customers is not None else self.customers(as_of)
        day = as_of.date() if isinstance(as_of, datetime) else as_of
        hi = day + timedelta(days=days - 1)
        mask = df["next_expected_date"].map(lambda d: d is not None and day <= d <= hi)
        mask &= df["layer"] != "lost"
        return df[mask].sort_values(["next_expected_date", "customer_id"]).reset_index(drop=True)

    # -- segments ---------------------------------------------------------------------------------
    def segments(
        self,
        as_of: date | datetime,
        *,
        windows: LayerWindows | None = None,
        customers: pd.DataFrame | None = None,
    ) -> dict[str, pd.DataFrame]:
        """``{"rfm": …, "layers": …}``: per RFM segment and per seed layer, the customers,
        their share of all customers, their revenue (spend to date, Decimal) and average
        spend; the layer table carries the seed's strategy (zh and en)."""
        if customers is not None:
            total = len(customers)

            def counts_sums(col: str) -> tuple[dict[str, int], dict[str, Decimal]]:
                counts: dict[str, int] = {}
                sums: dict[str, Decimal] = {}
                for name, spend in zip(customers[col], customers["spend"], strict=True):
                    counts[name] = counts.get(name, 0) + 1
                    sums[name] = sums.get(name, Decimal(0)) + spend
                return counts, sums
        else:
            key = (self._check_as_of(as_of), self._windows(windows))
            cached = self._customers_cache
            if cached is not None and cached[0] == key:
                with self._lock:
                    self._backend.register("customer_rows", cached[1])
                relation = "customer_rows"
            else:
                # computed and kept by the backend: the rows never come into this process
                relation = self._customer_table(as_of, windows)
            total = int(self.sql(f"SELECT COUNT(*) AS n FROM {relation}").to_pylist()[0]["n"])

            def counts_sums(col: str) -> tuple[dict[str, int], dict[str, Decimal]]:
                with self._lock:
                    if relation == "customer_rows":
                        self._backend.register("customer_rows", cached[1])  # type: ignore[index]
                    res = self.sql(
                        f"SELECT {col} AS name, COUNT(*) AS n, SUM(spend) AS revenue "
                        f"FROM {relation} GROUP BY {col}"
                    ).to_pylist()
                return {r["name"]: r["n"] for r in res}, {r["name"]: r["revenue"] for r in res}

        def summary(col: str, names: tuple[str, ...]) -> pd.DataFrame:
            counts, sums = counts_sums(col)
            rows = []
            for name in names:
                n = int(counts.get(name, 0))
                rev = _dec(sums.get(name, Decimal(0)))
                rows.append(
                    {
                        col if col != "rfm_segment" else "segment": name,
                        "customers": n,
                        "share": n / total if total else None,
                        "revenue": rev,
                        "avg_spend": (rev / n).quantize(_Q4) if n else None,
                    }
                )
            return pd.DataFrame(rows)

        rfm = summary("rfm_segment", RFM_SEGMENTS)
        layers = summary("layer", LAYERS)
        layers["strategy_zh"] = [LAYER_STRATEGY[x]["zh"] for x in layers["layer"]]
        layers["strategy_en"] = [LAYER_STRATEGY[x]["en"] for x in layers["layer"]]
        layers["from_seed"] = [LAYER_STRATEGY[x]["from_seed"] for x in layers["layer"]]
        return {"rfm": rfm, "layers": layers}

    # -- revenue decomposition ------------------------------------------------------------------
    def revenue_decomposition(
        self, period: str = "month", visitors: Mapping[str, int] | None = None
    ) -> pd.DataFrame:
        """BRIEF: revenue = visitors × conversion × AOV × orders per buyer, per period.

        conversion = buyers / visitors; AOV = revenue / orders; orders per buyer =
        orders / buyers. Without visitors (or for a period missing from ``visitors``) the
        identity reads revenue = buyers × AOV × orders per buyer. ``aov`` is exact
        (a Decimal to 28 significant digits); the product equals revenue to that precision.
        """
        pm = self.period_metrics(period)
        rows = []
        for r in pm.to_dict("records"):
            v = None if visitors is None else visitors.get(r["period"])
            if v is not None and v < 0:
                raise InputError(
                    f"visitors for {r['period']} is negative ({v})",
                    code="input.bad_visitors",
                    message_zh=f"{r['period']} 的访客数为负({v})",
                )
            buyers, orders, revenue = int(r["buyers"]), int(r["orders"]), r["revenue"]
            rows.append(
                {
                    "period": r["period"],
                    "visitors": v,
                    "buyers": buyers,
                    "conversion": (buyers / v) if v else None,
                    "aov": (revenue / orders) if orders else None,
                    "orders_per_buyer": (orders / buyers) if buyers else None,
                    "orders": orders,
                    "revenue": revenue,
                }
            )
        df = pd.DataFrame(
            rows,
            columns=[
                "period",
                "visitors",
                "buyers",
                "conversion",
                "aov",
                "orders_per_buyer",
                "orders",
                "revenue",
            ],
        )
        for c in ("visitors", "conversion", "aov", "orders_per_buyer"):
            # None where undefined; visitors stay whole numbers
            df[c] = pd.Series([r[c] for r in rows], index=df.index, dtype=object)
        return df

    # -- Spark ------------------------------------------------------------------------------------
    def spark_sql(self, as_of: date, period: str = "month") -> dict[str, str]:
        """The Spark SQL of every step and query this engine runs (via sqlglot); run them in
        order on a Spark session whose ``spark.sql.session.timeZone`` is UTC, with ``orders``,
        ``order_lines``, ``periods``, ``rfm_segment_map`` (and ``p_alive``) registered as
        temporary views."""
        from huitouke.analytics.sql import spark_queries

        return spark_queries(
            self.timezone,
            self.currency if self._filter_currency else None,
            self.merge_same_day,
            period=period,
            as_of=as_of,
            windows=self._windows(None),
            rules=self.lifecycle_rules,
        )
