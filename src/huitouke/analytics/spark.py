"""The analytics on Apache Spark: the same steps and queries as the DuckDB engine, run by a
SparkSession (local, a ``spark://`` cluster, or Spark Connect ``sc://``).

:class:`SparkAnalytics` has the interface of :class:`huitouke.analytics.Analytics` and gives
the same results: it registers the orders as a temporary view, materialises the shared steps
with ``CACHE TABLE`` and runs every query of :mod:`huitouke.analytics.sql` after checking it
is in the portable subset (:mod:`.portable`) and transpiling it with sqlglot. The session's
zone is set to UTC; periods are cut in the merchant's zone by the SQL itself
(``from_utc_timestamp``), as on DuckDB.

Orders come as the canonical Arrow table (what the importer or the store gives), or as a
Parquet path, glob or URI that Spark reads itself (columns of
:data:`huitouke.core.orders.ORDERS_SCHEMA`), so they need not fit in this process.

Every engine's temporary views carry a prefix of its own, so several engines (an engine and
its :meth:`~SparkAnalytics.until`) share one session.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import threading
import uuid
import warnings
from datetime import date, datetime
from typing import Any, ClassVar

import pyarrow as pa
import pyarrow.compute as pc

from huitouke.analytics import sql as q
from huitouke.analytics.backends import Backend
from huitouke.analytics.engine import (  # noqa: F401  (the checks, re-exported)
    NULLS_SQL,
    STATUSES_SQL,
    Analytics,
    _validate_orders,
)
from huitouke.analytics.portable import assert_portable
from huitouke.analytics.segments import LayerWindows, LifecycleRules
from huitouke.core.orders import DEFAULT_SOURCE, ORDERS_SCHEMA
from huitouke.errors import ConfigError, InputError

__all__ = [
    "TABLE_PREFIX",
    "SparkAnalytics",
    "SparkBackend",
    "driver_memory",
    "orders_frame",
    "spark_session",
    "spark_unavailable",
]

# PySpark 4.3 warns on import that it does not fully support pandas 3. The engine moves data
# between Spark and Python as Arrow only (createDataFrame of an Arrow table, toArrow), never
# through pandas, so the warning says nothing about what runs here.
warnings.filterwarnings(
    "ignore", message="PySpark does not yet fully support pandas", category=FutureWarning
)

_SPARK_TYPES = {
    "order_id": "STRING",
    "customer_id": "STRING",
    "ordered_at": "TIMESTAMP",
    "amount": "DECIMAL(18,4)",
    "currency": "STRING",
    "status": "STRING",
    "refunded_amount": "DECIMAL(18,4)",
    "channel": "STRING",
    "source": "STRING",
}


def _java() -> str | None:
    home = os.environ.get("JAVA_HOME")
    if home and os.access(os.path.join(home, "bin", "java"), os.X_OK):
        return os.path.join(home, "bin", "java")
    return shutil.which("java")


def spark_unavailable(master: str) -> str | None:
    """Why the Spark engine cannot run here for ``master`` (None when it can)."""
    if importlib.util.find_spec("pyspark") is None:
        return "pyspark is not installed (pip install 'huitouke[spark]')"
    if master.startswith("sc://"):
        if importlib.util.find_spec("grpc") is None:
            return "Spark Connect needs grpcio (pip install 'pyspark[connect]')"
        return None
    if _java() is None:
        return "no Java runtime found (java on PATH or JAVA_HOME); Spark needs Java 17 or 21"
    return None


def _unavailable_error(master: str, reason: str) -> ConfigError:
    return ConfigError(
        f"the Spark engine is not available for master {master!r}: {reason}",
        code="engine.spark_unavailable",
        message_zh=f"Spark 引擎不可用(master {master!r}):{reason}",
        details={"master": master, "reason": reason},
    )


def driver_memory(master: str) -> str | None:
    """``spark.driver.memory`` for a session the engine starts for ``master``: the setting
    ``HUITOUKE_SPARK_DRIVER_MEMORY`` when given; else, for a ``local`` master (whose driver
    is the only executor), half of this machine's memory; else None (the cluster's
    defaults). A Spark Connect session starts no driver here."""
    if master.startswith("sc://"):
        return None
    from huitouke.settings import get_settings

    given = get_settings().spark_driver_memory
    if given:
        return "".join(given.split()).lower()
    if not master.startswith("local"):
        return None
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not a POSIX system that tells
        return None
    return f"{max(1024, total // 2 // 1024**2)}m"


_sessions: dict[str, Any] = {}
_sessions_lock = threading.Lock()


def spark_session(master: str) -> Any:
    """A SparkSession for ``master`` (``local[*]``, ``local[2]``, ``spark://host:7077``, or a
    Spark Connect URL ``sc://host:15002``), created once per process, its UI off and its
    session zone UTC. Raises ``engine.spark_unavailable`` when Spark cannot start here."""
    reason = spark_unavailable(master)
    if reason is not None:
        raise _unavailable_error(master, reason)
    with _sessions_lock:
        if master in _sessions:
            return _sessions[master]
        from pyspark.sql import SparkSession

        if not master.startswith("sc://"):
            # the Python workers (scoring UDFs) run this interpreter, which has huitouke
            os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        try:
            if master.startswith("sc://"):
                # PySpark then marks the whole process as Spark Connect
                # (SPARK_CONNECT_MODE_ENABLED; its functions module dispatches on it): one
                # process talks to Connect or runs a local/cluster session, not both
                session = SparkSession.builder.remote(master).getOrCreate()
            else:
                builder = (
                    SparkSession.builder.master(master)
                    .appName("huitouke")
                    .config("spark.ui.enabled", "false")
                    .config("spark.ui.showConsoleProgress", "false")
                    .config("spark.sql.session.timeZone", "UTC")
                )
                memory = driver_memory(master)
                if memory is not None:  # read when the JVM starts (the first session)
                    builder = builder.config("spark.driver.memory", memory)
                session = builder.getOrCreate()
                session.sparkContext.setLogLevel("ERROR")
        except Exception as exc:  # the JVM did not start, the master cannot be reached, …
            raise _unavailable_error(master, f"{type(exc).__name__}: {exc}") from exc
        _sessions[master] = session
        return session


#: the prefix of an orders source that names a table (or view) of the Spark catalogue
TABLE_PREFIX = "spark-table:"


def orders_frame(session: Any, source: pa.Table | str) -> Any:
    """The orders as a Spark DataFrame in the canonical columns and Spark types.

    ``source`` is the canonical orders Arrow table, a Parquet path / glob / URI Spark
    reads itself, or ``spark-table:NAME`` — a table or view of the session's catalogue
    (``db.orders``, a Hive or Delta table, a temporary view) with the canonical columns.
    Without a ``source`` column the orders are the default source's. Nothing is read into
    this process but the schema."""
    if isinstance(source, pa.Table):
        return session.createDataFrame(_validate_orders(source))
    from pyspark.sql import functions as F

    if source.startswith(TABLE_PREFIX):
        name = source[len(TABLE_PREFIX) :]
        where = {"table": name}
        try:
            frame = session.table(name)
        except Exception as exc:
            raise InputError(
                f"cannot read the Spark table {name!r}: {type(exc).__name__}: "
                f"{str(exc).splitlines()[0] if str(exc) else ''}",
                code="input.bad_table",
                message_zh=f"无法读取 Spark 表 {name!r}:{exc}",
                details=where,
            ) from exc
    else:
        where = {"file": source}
        try:
            frame = session.read.parquet(source)
        except Exception as exc:
            raise InputError(
                f"cannot read Parquet orders at {source}: {type(exc).__name__}: {exc}",
                code="input.bad_file",
                message_zh=f"无法读取 Parquet 订单 {source}:{exc}",
                details={"file": source},
            ) from exc
    if "source" not in frame.columns:  # one source's orders, as for an Arrow table
        frame = frame.withColumn("source", F.lit(DEFAULT_SOURCE))
    missing = [f.name for f in ORDERS_SCHEMA if f.name not in frame.columns]
    if missing:
        label = where.get("table") or where.get("file")
        raise InputError(
            f"the orders at {label} lack column(s) {', '.join(missing)}",
            code="input.missing_column",
            message_zh=f"{label} 的订单缺少列:{', '.join(missing)}",
            details={"missing": missing, **where},
        )
    return frame.select(
        *[F.col(c).cast(t).alias(c) for c, t in _SPARK_TYPES.items()],
    )


class SparkBackend:
    """Runs the analytics SQL on a SparkSession under temporary views of its own."""

    name = "spark"

    def __init__(self, session: Any) -> None:
        self.session = session
        # Instants are stored and compared in UTC; the SQL converts to the merchant's zone.
        session.conf.set("spark.sql.session.timeZone", "UTC")
        self._prefix = f"huitouke_{uuid.uuid4().hex[:12]}_"
        self._names: dict[str, str] = {}
        self._cached: list[str] = []

    def _view(self, name: str) -> str:
        view = self._prefix + name
        self._names[name] = view
        return view

    def spark_sql(self, sql: str) -> str:
        """The Spark SQL of a portable query, the relations renamed to this backend's views."""
        assert_portable(sql)
        return q.to_spark(sql, self._names)

    def register(self, name: str, table: pa.Table) -> None:
        self.register_frame(name, self.session.createDataFrame(table))

    def register_frame(self, name: str, frame: Any) -> None:
        frame.createOrReplaceTempView(self._view(name))

    def materialise(self, step: q.Step) -> None:
        sql = self.spark_sql(step.sql)
        view = self._view(step.name)
        if step.kind == "view":
            self.session.sql(f"CREATE OR REPLACE TEMPORARY VIEW {view} AS\n{sql}")
        else:
            # computed once and kept (memory, spilling to disk), as DuckDB's temp table
            self.session.sql(f"CACHE TABLE {view} AS\n{sql}")
            self._cached.append(view)

    def query(self, sql: str) -> pa.Table:
        table: pa.Table = self.session.sql(self.spark_sql(sql)).toArrow()
        return table

    def write_parquet(self, sql: str, path: str) -> None:
        self.session.sql(self.spark_sql(sql)).write.mode("overwrite").parquet(path)

    def close(self) -> None:
        for view in self._cached:
            self.session.sql(f"UNCACHE TABLE IF EXISTS {view}")
        for view in self._names.values():
            self.session.catalog.dropTempView(view)
        self._cached.clear()
        self._names.clear()


class SparkAnalytics(Analytics):
    """:class:`~huitouke.analytics.Analytics` on Spark: the same methods and results.

    ``orders`` is the canonical orders Arrow table or a Parquet path/glob/URI of orders in
    the canonical columns. ``session`` is a SparkSession to use; without it one is made for
    ``master`` (default: the setting ``HUITOUKE_SPARK_MASTER``). The session's
    ``spark.sql.session.timeZone`` is set to UTC. ``before`` keeps only the orders placed
    before that instant (what :meth:`until` passes). Other arguments as for ``Analytics``.
    """

    engine: ClassVar[str] = "spark"

    def __init__(
        self,
        orders: pa.Table | str,
        *,
        timezone: str,
        lines: pa.Table | None = None,
        merge_same_day: bool = False,
        currency: str | None = None,
        windows: LayerWindows | None = None,
        lifecycle_rules: LifecycleRules | None = None,
        coverage_end: date | None = None,
        session: Any = None,
        master: str | None = None,
        before: datetime | None = None,
    ) -> None:
        if session is None:
            if master is None:
                from huitouke.settings import get_settings

                master = get_settings().spark_master
            session = spark_session(master)
        self._session = session
        self._source = orders
        self._before = before
        super().__init__(
            orders,
            timezone=timezone,
            lines=lines,
            merge_same_day=merge_same_day,
            currency=currency,
            windows=windows,
            lifecycle_rules=lifecycle_rules,
            coverage_end=coverage_end,
        )

    @property
    def session(self) -> Any:
        return self._session

    def _open_backend(self, threads: int | None) -> Backend:
        return SparkBackend(self._session)

    def _register_orders(self, orders: Any) -> None:
        backend = self._backend
        assert isinstance(backend, SparkBackend)
        if isinstance(orders, pa.Table):
            table = _validate_orders(orders)
            if self._before is not None:
                table = table.filter(
                    pc.less(
                        table.column("ordered_at"),
                        pa.scalar(self._before, pa.timestamp("us", tz="UTC")),
                    )
                )
            self.orders = table
            frame = self._session.createDataFrame(table)
        elif isinstance(orders, str | os.PathLike):
            frame = orders_frame(self._session, str(orders))
            if self._before is not None:
                from pyspark.sql import functions as F

                frame = frame.where(F.col("ordered_at") < F.lit(self._before))
        else:
            raise InputError(
                "orders must be a pyarrow.Table, a Parquet path or spark-table:NAME, "
                f"got {type(orders).__name__}",
                code="input.bad_orders",
                message_zh=f"订单必须是 pyarrow.Table 或 Parquet 路径,实际为 {type(orders).__name__}",
            )
        backend.register_frame("orders", frame)
        if not isinstance(orders, pa.Table):
            self._check_read_orders()

    def _read_parquet(self, path: str) -> Any:
        return orders_frame(self._session, path)

    def _orders_before(self, limit: datetime) -> Any:
        return limit

    def _derive(self, orders: Any, *, coverage_end: date | None) -> Analytics:
        limit: datetime = orders
        if self._before is not None:
            limit = min(limit, self._before)
        return SparkAnalytics(
            self._source,
            timezone=self.timezone,
            lines=self.lines,
            merge_same_day=self.merge_same_day,
            currency=self.currency,
            windows=self.windows,
            lifecycle_rules=self.lifecycle_rules,
            coverage_end=coverage_end,
            session=self._session,
            before=limit,
        )
