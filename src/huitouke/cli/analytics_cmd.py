"""Analytics commands: `metrics`, `customers`, `segments`, `cohorts`, `ladder`,
`churn-reasons`, `decompose` — thin over :class:`huitouke.analytics.Analytics`.

Orders come from PATH (an order file read by the importer, exactly what importing it into a
fresh store and loading it back gives) or, without PATH, from the configured store.
Machine-readable output goes to stdout (or ``--out``); notes go to stderr.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass
from datetime import date, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import typer

from huitouke.errors import InputError

__all__ = ["ENGINE_OPT", "Loaded", "load_orders", "open_spark", "register"]

CENT = Decimal("0.01")
FORMATS = ("table", "json", "csv", "xlsx")


@dataclass
class Loaded:
    orders: pa.Table
    lines: pa.Table | None
    source: str


def _store_lines(store: Any) -> pa.Table | None:
    from huitouke.app.orders import load_order_lines

    return load_order_lines(store)


def store_label(database_url: str) -> str:
    """The store's URL as it may be shown (password hidden)."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(database_url).render_as_string(hide_password=True)
    except Exception:  # an unparsable URL fails later with its own error
        return database_url


def store_has_orders(database_url: str) -> bool:
    """Whether the store holds any order — without creating a SQLite file just by looking."""
    from sqlalchemy import func, select

    from huitouke.store import tables as t
    from huitouke.store.db import Store

    store = Store(database_url)
    try:
        if store.dialect == "sqlite":
            db = store.engine.url.database
            if not db or db == ":memory:" or not Path(db).expanduser().exists():
                return False
        if not store.is_migrated():
            return False
        with store.connect() as conn:
            return bool(conn.execute(select(func.count()).select_from(t.orders)).scalar())
    finally:
        store.dispose()


def no_orders_error(database_url: str) -> InputError:
    label = store_label(database_url)
    return InputError(
        f"no orders in {label}; import first, or --sample",
        code="input.no_orders",
        message_zh=f"{label} 中没有订单;请先导入,或用 --sample",
        details={"store": label},
    )


def load_orders(
    path: Path | None,
    *,
    preset: str | None,
    timezone: str | None,
    database_url: str | None = None,
    sample: bool = False,
) -> Loaded:
    """Orders (and lines) from an order file, the bundled sample (``sample``) or the
    configured store — an empty or missing store is an error, never silently the sample."""
    if sample:
        from huitouke.data import CDNOW_MASTER

        if path is not None:
            raise InputError(
                "give either PATH or --sample, not both",
                code="input.conflicting_options",
                message_zh="PATH 与 --sample 只能二选一",
            )
        path, preset = CDNOW_MASTER, "cdnow"
    if path is not None:
        from huitouke.importing import read_orders

        result = read_orders(path, preset, timezone=timezone)
        if result.rejects:
            typer.echo(
                f"{len(result.rejects)} row(s) of {path} were rejected; run `huitouke import` "
                f"to see why — analysing the rest ({len(result.rejects)} 行被拒收)",
                err=True,
            )
        return Loaded(result.orders, result.lines, str(path))
    from huitouke.app.orders import load_orders as load_recorded_orders
    from huitouke.store.db import open_store

    if database_url is None:
        from huitouke.settings import get_settings

        database_url = get_settings().database_url
    if not store_has_orders(database_url):
        raise no_orders_error(database_url)
    store = open_store(database_url)
    try:
        return Loaded(load_recorded_orders(store), _store_lines(store), "store")
    finally:
        store.dispose()


def _parse_date(value: str | None, option: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise InputError(
            f"{option} {value!r}: expected a date YYYY-MM-DD",
            code="input.bad_date",
            message_zh=f"{option} {value!r}:日期格式应为 YYYY-MM-DD",
            details={"option": option},
        ) from exc


def _check_format(fmt: str, allowed: tuple[str, ...]) -> str:
    if fmt not in allowed:
        raise InputError(
            f"--format must be one of {', '.join(allowed)}, got {fmt!r}",
            code="input.bad_format",
            message_zh=f"--format 只能是 {', '.join(allowed)},实际为 {fmt!r}",
        )
    return fmt


# --- output ------------------------------------------------------------------------------------


def _plain(v: Any) -> Any:
    """A JSON/CSV/Excel-friendly value: money to cents, dates ISO, NaN/None to None."""
    if v is None:
        return None
    if isinstance(v, Decimal):
        return float(v.quantize(CENT, rounding=ROUND_HALF_EVEN))
    if isinstance(v, pd.Timestamp):
        return v.isoformat()
    if isinstance(v, datetime | date):
        return v.isoformat()
    if isinstance(v, float) and math.isnan(v):
        return None
    if hasattr(v, "item"):  # numpy scalars
        return v.item()
    return v


def _records(df: pd.DataFrame) -> list[dict[str, Any]]:
    return [{str(k): _plain(v) for k, v in row.items()} for row in df.to_dict("records")]


def _cell(v: Any, col: str) -> str:
    v = _plain(v)
    if v is None:
        return "—"
    if isinstance(v, float) and (col.endswith("_rate") or col.endswith("share")):
        return f"{v:.1%}"
    if isinstance(v, float):
        return f"{v:,.2f}"
    return str(v)


def _label(col: str, lang: str) -> str:
    from huitouke.i18n import all_messages, t

    key = f"analytics.{col}"
    return t(key, lang) if key in all_messages() else col


def _table(df: pd.DataFrame, title: str, lang: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for c in df.columns:
        table.add_column(
            _label(str(c), lang),
            justify="right" if pd.api.types.is_numeric_dtype(df[c]) else "left",
        )
    for row in df.itertuples(index=False):
        table.add_row(*[_cell(v, str(c)) for v, c in zip(row, df.columns, strict=True)])
    Console(width=max(120, 16 * len(df.columns))).print(table)


def _excel_frame(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    for c in out.columns:
        if isinstance(out[c].dtype, pd.DatetimeTZDtype):
            # Excel has no zones: wall-clock time in the merchant's zone
            out[c] = out[c].dt.tz_localize(None)
        elif out[c].dtype == object:
            out[c] = [float(v) if isinstance(v, Decimal) else v for v in out[c]]
    return out


def arrow_of(df: pd.DataFrame) -> pa.Table:
    """A frame as the Arrow table written to Parquet: plain ``string`` columns (pandas 3
    gives ``large_string``), money decimals and dates as they are, no pandas metadata —
    the types Spark writes for the same columns."""
    table = pa.Table.from_pandas(df, preserve_index=False)
    fields = [
        pa.field(f.name, pa.string()) if pa.types.is_large_string(f.type) else f
        for f in table.schema
    ]
    return table.cast(pa.schema(fields)).replace_schema_metadata(None)


def _emit(
    sheets: dict[str, pd.DataFrame],
    fmt: str,
    out: Path | None,
    lang: str,
    *,
    json_body: Any = None,
) -> None:
    """Write one or more frames in ``fmt`` to ``out`` (or stdout)."""
    if fmt == "parquet":
        if out is None or len(sheets) != 1:
            raise InputError(
                "--format parquet needs --out FILE.parquet",
                code="input.out_required",
                message_zh="--format parquet 需要用 --out 指定 .parquet 文件",
            )
        import pyarrow.parquet as pq

        pq.write_table(arrow_of(next(iter(sheets.values()))), out)
        typer.echo(str(out), err=True)
        return
    if fmt == "xlsx":
        if out is None:
            raise InputError(
                "--format xlsx needs --out FILE.xlsx",
                code="input.out_required",
                message_zh="--format xlsx 需要用 --out 指定 .xlsx 文件",
            )
        with pd.ExcelWriter(out, engine="openpyxl") as xw:
            for name, df in sheets.items():
                _excel_frame(df).to_excel(xw, sheet_name=name[:31], index=False)
        typer.echo(str(out), err=True)
        return
    if fmt == "table":
        for name, df in sheets.items():
            _table(df, name, lang)
        return
    if fmt == "json":
        body = json_body
        if body is None:
            body = (
                {name: _records(df) for name, df in sheets.items()}
                if len(sheets) > 1
                else _records(next(iter(sheets.values())))
            )
        text = json.dumps(body, ensure_ascii=False, indent=2) + "\n"
    else:  # csv
        buf = io.StringIO()
        for i, (name, df) in enumerate(sheets.items()):
            rows = _records(df)
            if len(sheets) > 1:
                if i:
                    buf.write("\n")
                buf.write(f"# {name}\n")
            w = csv.DictWriter(buf, fieldnames=[str(c) for c in df.columns], lineterminator="\n")
            w.writeheader()
            w.writerows(rows)
        text = buf.getvalue()
    if out is None:
        typer.echo(text, nl=False)
    else:
        out.write_text(text, encoding="utf-8-sig" if fmt == "csv" else "utf-8")
        typer.echo(str(out), err=True)


# --- options -------------------------------------------------------------------------------------

PATH_ARG = typer.Argument(
    None,
    help="Order file (CSV/TSV/Excel/Parquet); omitted: the configured store. "
    "订单文件;省略时使用已配置的数据库。",
    exists=True,
    dir_okay=False,
)
PRESET_OPT = typer.Option(
    None,
    "--preset",
    help="Import preset of PATH (detected when omitted). 导入预设(省略时自动识别)。",
)
SAMPLE_OPT = typer.Option(
    False,
    "--sample",
    help="Use the bundled CDNOW sample instead of PATH or the store. 使用内置 CDNOW 示例数据。",
)
TZ_OPT = typer.Option(
    None, "--timezone", help="The merchant's IANA time zone (default: settings). 商家时区。"
)
CURRENCY_OPT = typer.Option(
    None, "--currency", help="Analyse one currency of a multi-currency shop. 指定币种。"
)
MERGE_OPT = typer.Option(
    None,
    "--merge-same-day/--no-merge-same-day",
    help="Count a customer's orders on one day as one (default: settings). 同一天的多笔订单合并为一笔。",
)
LANG_OPT = typer.Option(None, "--lang", help="Labels in zh or en (default: settings). 语言。")
OUT_OPT = typer.Option(None, "--out", "-o", help="Write to FILE instead of stdout. 输出文件。")
ENGINE_OPT = typer.Option(
    "duckdb",
    "--engine",
    help="duckdb (embedded, default) or spark (HUITOUKE_SPARK_MASTER; pip install "
    "'huitouke[spark]' and Java 17). 计算引擎:duckdb(内嵌,默认)或 spark。",
)
ENGINES = ("duckdb", "spark")
TABLE_OPT = typer.Option(
    None,
    "--table",
    help="Read the orders from this table or view of the Spark catalogue (with --engine "
    "spark). 从 Spark 目录中的表或视图读取订单(需 --engine spark)。",
)
AS_OF_OPT = typer.Option(
    None,
    "--as-of",
    help="Reference date YYYY-MM-DD (default: the day of the last order). 参考日期(默认最后一笔订单的日期)。",
)


def open_spark(engine: str, master: str) -> Any:
    """The SparkSession of ``--engine spark`` (None for duckdb); a wrong engine name or a
    Spark that cannot run here is an error."""
    if engine not in ENGINES:
        raise InputError(
            f"--engine must be one of {', '.join(ENGINES)}, got {engine!r}",
            code="input.bad_engine",
            message_zh=f"--engine 只能是 {'、'.join(ENGINES)},实际为 {engine!r}",
            details={"option": "--engine"},
        )
    if engine == "duckdb":
        return None
    from huitouke.analytics.spark import spark_session

    return spark_session(master)


def direct_parquet(path: Path | None, preset: str | None) -> bool:
    """Whether PATH is a Parquet file with the canonical order columns, that Spark reads
    itself (no preset to apply)."""
    if path is None or preset is not None or path.suffix.lower() != ".parquet":
        return False
    import pyarrow.parquet as pq

    from huitouke.core.orders import ORDERS_SCHEMA

    try:
        schema = pq.read_schema(path)
    except (OSError, pa.ArrowException):
        return False
    if not {f.name for f in ORDERS_SCHEMA if f.name != "source"} <= set(schema.names):
        return False
    # naive times are the merchant's wall clock: the importer reads those
    when = schema.field("ordered_at").type
    return pa.types.is_timestamp(when) and when.tz is not None


def spark_orders_source(
    path: Path | None,
    *,
    preset: str | None,
    table: str | None,
    sample: bool,
    timezone: str | None,
    database_url: str | None = None,
) -> tuple[pa.Table | str, str]:
    """What the Spark engine reads, and its label: ``spark-table:NAME`` for ``--table``, the
    Parquet PATH itself when it already has the canonical order columns (Spark reads it, the
    rows never pass through this process), else the orders the importer reads (any file
    format, a preset, the store, the sample) as an Arrow table."""
    from huitouke.analytics.spark import TABLE_PREFIX

    if table is not None:
        if path is not None or sample:
            raise InputError(
                "give PATH, --sample or --table, not several",
                code="input.conflicting_options",
                message_zh="PATH、--sample 与 --table 只能选其一",
                details={"option": "--table"},
            )
        return TABLE_PREFIX + table, f"Spark table {table}"
    if path is not None and direct_parquet(path, preset):
        return str(path), str(path)
    loaded = load_orders(
        path, preset=preset, timezone=timezone, database_url=database_url, sample=sample
    )
    return loaded.orders, loaded.source


@dataclass
class _Ctx:
    analytics: Any
    lang: str
    loaded: Loaded
    #: the orders as a Spark DataFrame when Spark reads them itself (Parquet, --table)
    spark_orders: Any = None
    #: the Parquet file DuckDB reads itself (its orders are not in ``loaded``)
    parquet: Path | None = None
    timezone: str | None = None

    def model_orders(self) -> pa.Table:
        """The orders as an Arrow table, for the in-process model fit: read from the
        Parquet file when DuckDB reads it itself (the fit needs them in this process)."""
        if self.parquet is None:
            return self.loaded.orders
        return load_orders(self.parquet, preset=None, timezone=self.timezone).orders


def _open(
    path: Path | None,
    preset: str | None,
    timezone: str | None,
    currency: str | None,
    merge: bool | None,
    lang: str | None,
    sample: bool = False,
    engine: str = "duckdb",
    table: str | None = None,
) -> _Ctx:
    from huitouke.analytics import Analytics, LayerWindows
    from huitouke.settings import get_settings

    s = get_settings()
    zone = timezone or s.timezone
    # refuse before reading the orders when Spark cannot run here
    session = open_spark(engine, s.spark_master)
    if session is None and table is not None:
        raise InputError(
            "--table reads a table of the Spark catalogue: it needs --engine spark",
            code="input.conflicting_options",
            message_zh="--table 读取 Spark 目录中的表,需要 --engine spark",
            details={"option": "--table"},
        )
    spark_orders: Any = None
    parquet: Path | None = None
    if session is None and direct_parquet(path, preset):
        from huitouke.core.orders import ORDERS_SCHEMA

        # DuckDB reads the file itself (read_parquet): the orders never pass through this
        # process, and past the memory limit its operators spill to disk
        parquet = path
        loaded = Loaded(ORDERS_SCHEMA.empty_table(), None, str(path))
    elif session is not None and (table is not None or direct_parquet(path, preset)):
        from huitouke.analytics.spark import orders_frame
        from huitouke.core.orders import ORDERS_SCHEMA

        source, label = spark_orders_source(
            path, preset=preset, table=table, sample=sample, timezone=timezone
        )
        # the orders stay in Spark: none of them pass through this process
        spark_orders = orders_frame(session, source)
        loaded = Loaded(ORDERS_SCHEMA.empty_table(), None, label)
    else:
        loaded = load_orders(
            path, preset=preset, timezone=timezone, database_url=s.database_url, sample=sample
        )
    options: dict[str, Any] = {
        "timezone": zone,
        "lines": loaded.lines,
        "merge_same_day": s.merge_same_day_orders if merge is None else merge,
        "currency": currency,
        "windows": LayerWindows.from_settings(s),
    }
    if session is not None:
        from huitouke.analytics.spark import SparkAnalytics

        a: Analytics = SparkAnalytics(
            loaded.orders if spark_orders is None else source, session=session, **options
        )
    else:
        a = Analytics(loaded.orders if parquet is None else str(parquet), **options)
    lang = lang or s.lang
    if lang not in ("zh", "en"):
        raise InputError(
            f"--lang must be zh or en, got {lang!r}",
            code="input.bad_lang",
            message_zh=f"--lang 只能是 zh 或 en,实际为 {lang!r}",
        )
    return _Ctx(a, lang, loaded, spark_orders, parquet, timezone)


def _as_of(ctx: _Ctx, value: str | None) -> date:
    day = _parse_date(value, "--as-of")
    if day is not None:
        return day
    span = ctx.analytics.date_span
    if span is None:
        raise InputError(
            "there are no counted orders to analyse",
            code="input.no_orders",
            message_zh="没有可统计的订单",
        )
    return span[1]


#: coded columns of the customer table and the message prefix of their names
_CODED = {
    "rfm_segment": "analytics.rfm",
    "layer": "analytics.layer",
    "lifecycle": "analytics.lifecycle",
    "next_expected_source": "analytics.source",
    "churn_risk": "prediction.risk",
}


def _readable(df: pd.DataFrame, lang: str) -> pd.DataFrame:
    """The customer table as a person reads it in ``lang``: segment, layer and lifecycle
    names instead of codes, times as the merchant's wall clock (no ISO "T" and offset).
    Only for ``--format table``: files keep the codes and the ISO times."""
    from huitouke.i18n import all_messages, t

    known = all_messages()
    out = df.copy()
    for col, prefix in _CODED.items():
        if col in out.columns:
            out[col] = [
                v if v is None or f"{prefix}.{v}" not in known else t(f"{prefix}.{v}", lang)
                for v in out[col]
            ]
    for col in out.columns:
        if isinstance(out[col].dtype, pd.DatetimeTZDtype):
            out[col] = [None if pd.isna(v) else v.strftime("%Y-%m-%d %H:%M") for v in out[col]]
    return out


def _localise(df: pd.DataFrame, col: str, prefix: str, lang: str) -> pd.DataFrame:
    from huitouke.i18n import t

    out = df.copy()
    out.insert(1, "name", [t(f"analytics.{prefix}.{v}", lang) for v in out[col]])
    return out


# --- commands ------------------------------------------------------------------------------------


def register(app: typer.Typer) -> None:
    @app.command("metrics")
    def metrics_cmd(
        path: Path | None = PATH_ARG,
        preset: str | None = PRESET_OPT,
        sample: bool = SAMPLE_OPT,
        period: str = typer.Option(
            "month", "--period", help="day, week, month, quarter or year. 统计周期。"
        ),
        start: str | None = typer.Option(None, "--start", help="First day YYYY-MM-DD. 起始日期。"),
        end: str | None = typer.Option(None, "--end", help="Last day YYYY-MM-DD. 结束日期。"),
        timezone: str | None = TZ_OPT,
        fmt: str = typer.Option(
            "table", "--format", "-f", help="json, table, csv or xlsx. 输出格式。"
        ),
        currency: str | None = CURRENCY_OPT,
        merge_same_day: bool | None = MERGE_OPT,
        lang: str | None = LANG_OPT,
        out: Path | None = OUT_OPT,
        as_of: str | None = typer.Option(
            None, "--as-of", help="Only orders up to this day YYYY-MM-DD. 只统计该日及之前的订单。"
        ),
        engine: str = ENGINE_OPT,
        table: str | None = TABLE_OPT,
    ) -> None:
        """Repurchase metrics per period (复购率, 回购率, 老客占比 …).
        按周期输出复购指标(复购率、回购率、老客占比等)。"""
        _check_format(fmt, FORMATS)
        ctx = _open(path, preset, timezone, currency, merge_same_day, lang, sample, engine, table)
        a = ctx.analytics
        lo, hi = _parse_date(start, "--start"), _parse_date(end, "--end")
        cut = _parse_date(as_of, "--as-of")
        if cut is not None:
            a = a.until(cut)  # history after the as-of day does not exist yet
            hi = min(hi, cut) if hi else None
        if fmt == "json":
            _emit({}, "json", out, ctx.lang, json_body=a.metrics_json(period, start=lo, end=hi))
            return
        df = a.period_metrics(period, start=lo, end=hi)
        partial = not df.empty and not bool(df["complete"].all())
        if fmt == "table":
            df = df.assign(
                period=[
                    p if c else f"{p} *" for p, c in zip(df["period"], df["complete"], strict=True)
                ]
            )
            df = df[
                [
                    "period",
                    "buyers",
                    "orders",
                    "revenue",
                    "aov",
                    "returning_buyers",
                    "customer_repurchase_rate",
                    "in_period_repurchase_rate",
                    "order_repurchase_rate",
                    "buyback_rate",
                    "returning_revenue_share",
                ]
            ]
        _emit({"metrics": df}, fmt, out, ctx.lang)
        if fmt == "table" and partial:
            from huitouke.i18n import t

            typer.echo(t("analytics.partial_footnote", ctx.lang, end=str(a.coverage_end)))

    @app.command("customers")
    def customers_cmd(
        path: Path | None = PATH_ARG,
        preset: str | None = PRESET_OPT,
        sample: bool = SAMPLE_OPT,
        as_of: str | None = AS_OF_OPT,
        timezone: str | None = TZ_OPT,
        fmt: str = typer.Option(
            "table",
            "--format",
            "-f",
            help="csv, json, table, xlsx or parquet (xlsx and parquet need --out). 输出格式。",
        ),
        currency: str | None = CURRENCY_OPT,
        merge_same_day: bool | None = MERGE_OPT,
        lang: str | None = LANG_OPT,
        out: Path | None = OUT_OPT,
        due_days: int | None = typer.Option(
            None,
            "--due-within",
            help="Only customers expected to order within N days (today and the N−1 after). "
            "仅输出 N 天内(含今天)预计复购的客户。",
        ),
        predict: bool = typer.Option(
            True,
            "--predict/--no-predict",
            help="Add model predictions (P(alive), expected orders and spend, CLV, next-order "
            "interval, churn risk). 附加模型预测列(存活概率、预期订单与消费、CLV、下次购买区间、流失风险)。",
        ),
        model: str = typer.Option(
            "auto", "--model", help="auto, bgnbd, pnbd or mbgnbd. 预测模型。"
        ),
        horizon: str = typer.Option(
            "90d", "--horizon", help="Prediction horizon: Nd, Nw or Nm. 预测期。"
        ),
        engine: str = ENGINE_OPT,
        table: str | None = TABLE_OPT,
    ) -> None:
        """One row per customer: orders, spend, last order, cycle, next expected date, RFM,
        layer, lifecycle, and the model's predictions.
        每位客户一行:订单数、消费额、最近购买、购买周期、预计下次购买、RFM、分层、生命周期及模型预测。"""
        _check_format(fmt, (*FORMATS, "parquet"))
        ctx = _open(path, preset, timezone, currency, merge_same_day, lang, sample, engine, table)
        day = _as_of(ctx, as_of)
        from huitouke.app.customer_frame import PREDICTION_COLUMNS, customer_frame
        from huitouke.prediction import parse_horizon
        from huitouke.settings import get_settings

        zone = timezone or get_settings().timezone
        run = None
        if predict and ctx.parquet is not None:
            # DuckDB reads the Parquet itself: the summary is computed there, the orders
            # never enter this process for the model
            from huitouke.app.spark_predictions import duckdb_policy_prediction

            run = duckdb_policy_prediction(
                ctx.analytics._backend,
                as_of=day,
                timezone=zone,
                model=model,
                horizon_days=parse_horizon(horizon, day),
                currency=currency,
            )
        if predict and ctx.spark_orders is not None:
            from huitouke.app.spark_predictions import spark_policy_prediction

            run = spark_policy_prediction(
                ctx.spark_orders,
                as_of=day,
                timezone=zone,
                model=model,
                horizon_days=parse_horizon(horizon, day),
                currency=currency,
            )
        view = customer_frame(
            ctx.analytics,
            ctx.model_orders() if predict and run is None else ctx.loaded.orders,
            as_of=day,
            timezone=zone,
            model=model,
            horizon_days=parse_horizon(horizon, day),
            currency=currency,
            predictions=predict,
            lang=ctx.lang,
            run=run,
        )
        df = view.frame
        if view.error is not None:
            typer.echo(view.note(ctx.lang), err=True)
        if due_days is not None:
            df = ctx.analytics.due_for_reminder(day, due_days, customers=df)
        cols = [
            "customer_id",
            "orders",
            "spend",
            "first_order_at",
            "last_order_at",
            "days_since_last",
            "cycle_days",
            "next_expected_date",
            "next_expected_source",
            "r_score",
            "f_score",
            "m_score",
            "rfm_segment",
            "layer",
            "lifecycle",
        ]
        if ctx.analytics.lines is not None:
            cols.insert(8, "main_category")
        if predict:
            cols += PREDICTION_COLUMNS
            if view.error is not None:
                cols.append("prediction_note")
        df = df[cols]
        typer.echo(f"as of {day} ({len(df)} customers / 客户)", err=True)
        if fmt == "table":
            df = _readable(df, ctx.lang)
        _emit({"customers": df}, fmt, out, ctx.lang)

    @app.command("segments")
    def segments_cmd(
        path: Path | None = PATH_ARG,
        preset: str | None = PRESET_OPT,
        sample: bool = SAMPLE_OPT,
        as_of: str | None = AS_OF_OPT,
        timezone: str | None = TZ_OPT,
        fmt: str = typer.Option(
            "table", "--format", "-f", help="json, table, csv or xlsx. 输出格式。"
        ),
        currency: str | None = CURRENCY_OPT,
        merge_same_day: bool | None = MERGE_OPT,
        lang: str | None = LANG_OPT,
        out: Path | None = OUT_OPT,
        engine: str = ENGINE_OPT,
        table: str | None = TABLE_OPT,
    ) -> None:
        """RFM segments and the seed layering with the strategy per layer.
        RFM 分群与分层(新顾客/活跃/高挽回/低挽回/流失)及对应策略。"""
        _check_format(fmt, FORMATS)
        ctx = _open(path, preset, timezone, currency, merge_same_day, lang, sample, engine, table)
        day = _as_of(ctx, as_of)
        seg = ctx.analytics.segments(day)
        rfm = _localise(seg["rfm"], "segment", "rfm", ctx.lang)
        layers = _localise(seg["layers"], "layer", "layer", ctx.lang)
        typer.echo(f"as of {day}", err=True)
        if fmt == "table":
            layers = layers.drop(
                columns=["strategy_en" if ctx.lang == "zh" else "strategy_zh", "from_seed"]
            )
        if fmt == "json":
            body = {"as_of": day.isoformat(), "rfm": _records(rfm), "layers": _records(layers)}
            _emit({}, "json", out, ctx.lang, json_body=body)
            return
        _emit({"rfm": rfm, "layers": layers}, fmt, out, ctx.lang)

    @app.command("cohorts")
    def cohorts_cmd(
        path: Path | None = PATH_ARG,
        preset: str | None = PRESET_OPT,
        sample: bool = SAMPLE_OPT,
        value: str = typer.Option("share", "--value", help="share, customers or revenue. 取值。"),
        timezone: str | None = TZ_OPT,
        fmt: str = typer.Option(
            "table", "--format", "-f", help="json, table, csv or xlsx. 输出格式。"
        ),
        currency: str | None = CURRENCY_OPT,
        merge_same_day: bool | None = MERGE_OPT,
        lang: str | None = LANG_OPT,
        out: Path | None = OUT_OPT,
        engine: str = ENGINE_OPT,
        table: str | None = TABLE_OPT,
    ) -> None:
        """Cohort retention by first-order month (k = months since).
        按首购月份的同期群留存矩阵(k = 之后第几个月)。"""
        _check_format(fmt, FORMATS)
        ctx = _open(path, preset, timezone, currency, merge_same_day, lang, sample, engine, table)
        m = ctx.analytics.cohorts(value)
        df = m.reset_index()
        df.columns = ["cohort"] + [f"k{k}" for k in m.columns]
        if fmt == "table" and value == "share":
            df = df.copy()
            for c in df.columns[1:]:
                df[c] = ["—" if v is None else f"{v:.1%}" for v in df[c]]
        _emit({f"cohorts_{value}": df}, fmt, out, ctx.lang)

    @app.command("ladder")
    def ladder_cmd(
        path: Path | None = PATH_ARG,
        preset: str | None = PRESET_OPT,
        sample: bool = SAMPLE_OPT,
        max_k: int = typer.Option(5, "--max-k", min=1, help="Last step k. 最大购买次数。"),
        timezone: str | None = TZ_OPT,
        fmt: str = typer.Option(
            "table", "--format", "-f", help="json, table, csv or xlsx. 输出格式。"
        ),
        currency: str | None = CURRENCY_OPT,
        merge_same_day: bool | None = MERGE_OPT,
        lang: str | None = LANG_OPT,
        out: Path | None = OUT_OPT,
        engine: str = ENGINE_OPT,
        table: str | None = TABLE_OPT,
    ) -> None:
        """Purchase ladder: share moving from purchase k to k+1, median days between.
        购买阶梯:第 k 次到第 k+1 次购买的转化率与间隔天数中位数。"""
        _check_format(fmt, FORMATS)
        ctx = _open(path, preset, timezone, currency, merge_same_day, lang, sample, engine, table)
        df = ctx.analytics.ladder(max_k)
        if fmt == "table":
            df = df.copy()
            df["share"] = ["—" if v is None else f"{v:.1%}" for v in df["share"]]
        _emit({"ladder": df}, fmt, out, ctx.lang)

    @app.command("decompose")
    def decompose_cmd(
        path: Path | None = PATH_ARG,
        preset: str | None = PRESET_OPT,
        sample: bool = SAMPLE_OPT,
        period: str = typer.Option(
            "month", "--period", help="day, week, month, quarter or year. 统计周期。"
        ),
        visitors: Path | None = typer.Option(
            None,
            "--visitors",
            exists=True,
            dir_okay=False,
            help="CSV with columns period, visitors (optional). 访客数文件(可选)。",
        ),
        timezone: str | None = TZ_OPT,
        fmt: str = typer.Option(
            "table", "--format", "-f", help="json, table, csv or xlsx. 输出格式。"
        ),
        currency: str | None = CURRENCY_OPT,
        merge_same_day: bool | None = MERGE_OPT,
        lang: str | None = LANG_OPT,
        out: Path | None = OUT_OPT,
        engine: str = ENGINE_OPT,
        table: str | None = TABLE_OPT,
    ) -> None:
        """Revenue = visitors × conversion × AOV × orders per buyer, per period.
        销售额 = 流量 × 转化率 × 客单价 × 人均订单数。"""
        _check_format(fmt, FORMATS)
        ctx = _open(path, preset, timezone, currency, merge_same_day, lang, sample, engine, table)
        v = _read_visitors(visitors) if visitors else None
        df = ctx.analytics.revenue_decomposition(period, v)
        _emit({"decomposition": df}, fmt, out, ctx.lang)

    @app.command("churn-reasons")
    def churn_cmd(
        survey: Path = typer.Argument(
            ..., help="Survey file (CSV or Excel) with customer_id, reason. 回访调查文件。"
        ),
        fmt: str = typer.Option(
            "table", "--format", "-f", help="json, table, csv or xlsx. 输出格式。"
        ),
        lang: str | None = LANG_OPT,
        out: Path | None = OUT_OPT,
    ) -> None:
        """Structure analysis of the reasons lost customers give (share × 100%).
        流失原因结构分析(各原因占比)。"""
        from huitouke.analytics import churn_reasons, read_survey
        from huitouke.settings import get_settings

        _check_format(fmt, FORMATS)
        df = churn_reasons(read_survey(survey))
        if fmt == "table":
            df = df.copy()
            df["share"] = [f"{v:.1%}" for v in df["share"]]
            df = df.drop(columns=["share_pct"])
        _emit({"churn_reasons": df}, fmt, out, lang or get_settings().lang)


def _read_visitors(path: Path) -> dict[str, int]:
    out: dict[str, int] = {}
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        if not reader.fieldnames or not {"period", "visitors"} <= set(reader.fieldnames):
            raise InputError(
                f"{path}: needs columns period, visitors (has {', '.join(reader.fieldnames or [])})",
                code="input.missing_column",
                message_zh=f"{path}:需要 period、visitors 两列",
                details={"file": str(path)},
            )
        for line, row in enumerate(reader, start=2):
            try:
                n = int(row["visitors"])
                if n < 0:
                    raise ValueError
            except (TypeError, ValueError) as exc:
                raise InputError(
                    f"{path}, line {line}, field visitors: {row['visitors']!r} is not a whole number ≥ 0",
                    code="input.bad_number",
                    message_zh=f"{path} 第 {line} 行 visitors:{row['visitors']!r} 不是非负整数",
                    details={"file": str(path), "line": line, "field": "visitors"},
                ) from exc
            out[row["period"].strip()] = n
    return out
