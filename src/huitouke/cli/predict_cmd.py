"""`huitouke predict`: per-customer repurchase forecasts — thin over
:func:`huitouke.prediction.predict`.

Orders come from PATH (read by the importer) or, without PATH, from the configured store,
through the analytics CLI's loader. One row per customer goes to stdout (or ``--out``);
progress and notes go to stderr.
"""

from __future__ import annotations

import csv
import io
import json
import math
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
import typer

from huitouke.errors import InputError

__all__ = ["register"]

FORMATS = ("table", "json", "csv", "parquet")
UNITS = {"day": "D", "week": "W"}
#: rows a terminal table shows when --top is not given
TABLE_ROWS = 20
_TABLE_COLUMNS = (
    "customer_id",
    "frequency",
    "p_alive",
    "expected_orders",
    "expected_spend",
    "clv",
    "next_order_median",
    "next_order_low",
    "next_order_high",
    "p_no_further_order",
    "churn_risk_label",
)


def _missing(v: Any) -> bool:
    return v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v))


def _plain(v: Any) -> Any:
    """JSON value: money (Decimal, already in cents) as a number, dates ISO, NaN as null."""
    if _missing(v):
        return None
    if isinstance(v, Decimal):
        return float(v)
    if hasattr(v, "isoformat"):
        return v.isoformat()
    if hasattr(v, "item"):  # numpy scalars
        return v.item()
    return v


def _records(df: pd.DataFrame) -> list[dict[str, Any]]:
    cols = [str(c) for c in df.columns]
    return [
        {c: _plain(v) for c, v in zip(cols, row, strict=True)}
        for row in df.itertuples(index=False, name=None)
    ]


def _csv_text(df: pd.DataFrame) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow([str(c) for c in df.columns])
    for row in df.itertuples(index=False, name=None):
        # Decimal keeps its exact cents; dates ISO; None empty
        w.writerow(
            ["" if _missing(v) else v.isoformat() if hasattr(v, "isoformat") else v for v in row]
        )
    return buf.getvalue()


def _table(df: pd.DataFrame, title: str, lang: str) -> None:
    from rich.console import Console
    from rich.table import Table

    from huitouke.i18n import t

    table = Table(title=title)
    for c in _TABLE_COLUMNS:
        table.add_column(
            t(f"prediction.{c}", lang),
            justify="left" if c.startswith(("customer", "churn", "next")) else "right",
        )
    for row in df[list(_TABLE_COLUMNS)].itertuples(index=False, name=None):
        cells = []
        for c, v in zip(_TABLE_COLUMNS, row, strict=True):
            if _missing(v):
                cells.append("—")
            elif c.startswith("p_"):
                cells.append(f"{v:.1%}")
            elif c == "expected_orders":
                cells.append(f"{v:.2f}")
            elif isinstance(v, Decimal):
                cells.append(f"{v:,.2f}")
            elif hasattr(v, "isoformat"):
                cells.append(v.isoformat())
            else:
                cells.append(str(v))
        table.add_row(*cells)
    Console(width=max(170, 15 * len(_TABLE_COLUMNS))).print(table)


def _write(text: str, out: Path | None, fmt: str) -> None:
    if out is None:
        typer.echo(text, nl=False)
        return
    try:
        out.write_text(text, encoding="utf-8-sig" if fmt == "csv" else "utf-8")
    except OSError as exc:
        raise InputError(
            f"--out {out}: cannot write: {exc.strerror or exc}",
            code="input.bad_out",
            message_zh=f"--out {out}:无法写入:{exc.strerror or exc}",
            details={"option": "--out", "path": str(out)},
        ) from exc
    typer.echo(str(out), err=True)


def _per_shop(
    orders: Any,
    column: str,
    day: Any,
    zone: str,
    model: str,
    horizon_days: int,
    unit: str,
    currency: str | None,
    margin: float | None,
    discount_rate: float | None,
    fmt: str,
    out: Path | None,
) -> None:
    """``predict --engine spark --per-shop COLUMN``: one model per shop, rows sorted by
    shop and customer (csv, json or parquet; not a terminal table)."""
    from huitouke.prediction.spark import predict_by_shop, run_job

    if fmt == "table":
        raise InputError(
            "--per-shop writes csv, json or parquet, not a table",
            code="input.bad_format",
            message_zh="--per-shop 只输出 csv、json 或 parquet",
            details={"option": "--format"},
        )
    rows = predict_by_shop(
        orders,
        as_of=day,
        timezone=zone,
        by=column,
        model=model,
        horizon_days=horizon_days,
        unit=unit,
        currency=currency,
        margin=margin,
        discount_rate=discount_rate,
    )
    if fmt == "parquet":
        assert out is not None
        run_job(lambda: rows.write.mode("overwrite").parquet(str(out)))
        typer.echo(str(out), err=True)
        return
    from huitouke.prediction.scoring import _arrow_backed

    table = run_job(lambda: rows.orderBy(column, "customer_id").toArrow())
    df = table.to_pandas(types_mapper=_arrow_backed)
    if fmt == "csv":
        _write(_csv_text(df), out, fmt)
        return
    _write(json.dumps(_records(df), ensure_ascii=False, indent=1) + "\n", out, fmt)


def _write_parquet(df: pd.DataFrame, out: Path) -> None:
    """The customers' rows as one Parquet file (money decimal(18,2), dates date32)."""
    import pyarrow.parquet as pq

    from huitouke.cli.analytics_cmd import arrow_of

    try:
        pq.write_table(arrow_of(df), out)
    except OSError as exc:
        raise InputError(
            f"--out {out}: cannot write: {exc.strerror or exc}",
            code="input.bad_out",
            message_zh=f"--out {out}:无法写入:{exc.strerror or exc}",
            details={"option": "--out", "path": str(out)},
        ) from exc
    typer.echo(str(out), err=True)


def _scoring_note(fit: Any, lang: str) -> None:
    """The fit made from weighted distinct rows, before the scoring starts (stderr)."""
    from huitouke.i18n import t
    from huitouke.prediction import MODEL_LABELS

    typer.echo(
        t(
            "prediction.progress.scoring",
            lang,
            model=MODEL_LABELS.get(fit.scorer.name, fit.scorer.name),
            customers=f"{fit.customers:,}",
            rows=f"{fit.distinct_rows:,}",
        ),
        err=True,
    )


def _predict_parquet(
    path: Path,
    *,
    day: Any,
    zone: str,
    model: str,
    horizon: str,
    unit: str,
    currency: str | None,
    margin: float | None,
    discount_rate: float | None,
    lang: str,
    out: Path | None,
) -> tuple[Any, Any, int] | None:
    """``predict`` on a Parquet file of canonical orders that DuckDB reads itself
    (:mod:`huitouke.prediction.duckdb_engine`): with ``out``, the scores are written there
    batch by batch and None is returned; else ``(prediction, as_of, horizon_days)``."""
    from huitouke.analytics.backends import DuckDBBackend
    from huitouke.analytics.engine import refuse_duplicate_ids, register_parquet_orders
    from huitouke.i18n import t
    from huitouke.prediction import parse_horizon
    from huitouke.prediction.duckdb_engine import last_order_day, predict_duckdb
    from huitouke.settings import get_settings

    s = get_settings()
    backend = DuckDBBackend(
        memory_limit=s.duckdb_memory_limit,
        temp_directory=None if s.duckdb_temp_directory is None else str(s.duckdb_temp_directory),
    )
    try:
        register_parquet_orders(backend, path)
        refuse_duplicate_ids(backend)
        n = backend.query("SELECT COUNT(*) AS n FROM orders").to_pylist()[0]["n"]
        typer.echo(t("prediction.progress.read", lang, orders=f"{n:,}", source=str(path)), err=True)
        if day is None:
            day = last_order_day(backend, timezone=zone, currency=currency)
        horizon_days = parse_horizon(horizon, day)
        typer.echo(t("prediction.progress.fit", lang, model=model), err=True)
        run = predict_duckdb(
            backend,
            as_of=day,
            timezone=zone,
            model=model,
            horizon_days=horizon_days,
            unit=unit,
            currency=currency,
            margin=margin,
            discount_rate=discount_rate,
        )
        _scoring_note(run.fit, lang)
        if out is not None:
            try:
                run.write_parquet(str(out))
            except OSError as exc:
                raise InputError(
                    f"--out {out}: cannot write: {exc.strerror or exc}",
                    code="input.bad_out",
                    message_zh=f"--out {out}:无法写入:{exc.strerror or exc}",
                    details={"option": "--out", "path": str(out)},
                ) from exc
            typer.echo(str(out), err=True)
            return None
        return run.to_prediction(), day, horizon_days
    finally:
        backend.close()


def _evaluation_table(check: Any, lang: str) -> None:
    """The holdout check as a table on stderr (stdout stays the customers' rows)."""
    from rich.console import Console
    from rich.table import Table

    from huitouke.i18n import t

    title = t(
        "prediction.eval.title",
        lang,
        cal_end=check.calibration_end.isoformat(),
        end=check.holdout_end.isoformat(),
        days=check.holdout_days,
        customers=f"{check.customers:,}",
        actual=f"{check.actual_repeat_orders:,}",
    )
    table = Table(title=title)
    for key in ("model", "status", "predicted", "actual", "error", "coverage", "reason"):
        table.add_column(t(f"prediction.eval.{key}", lang), justify="left")

    def pct(v: float | None) -> str:
        return "—" if v is None else f"{v:+.1%}"

    for m in check.models:
        label = m.to_dict()["model_label"] + (" *" if m.penalized else "")
        cov = (
            "—"
            if m.coverage_observed is None
            else f"{m.coverage_observed:.1%} ({m.coverage_expected or 0:.1%})"
        )
        table.add_row(
            label,
            t(f"prediction.eval.status.{m.status}", lang),
            "—" if m.predicted is None else f"{m.predicted:,.1f}",
            f"{m.actual:,}",
            pct(m.error),
            cov,
            m.reason_zh if lang == "zh" else m.reason,
        )
    console = Console(stderr=True, width=160)
    if check.note:
        console.print(
            t("prediction.eval.none", lang, reason=check.note_zh if lang == "zh" else check.note)
        )
        return
    console.print(table)
    console.print(t("prediction.eval.legend", lang, coverage=f"{check.coverage:.0%}"))


def register(app: typer.Typer) -> None:
    from huitouke.cli.analytics_cmd import (
        ENGINE_OPT,
        LANG_OPT,
        PATH_ARG,
        PRESET_OPT,
        TABLE_OPT,
        TZ_OPT,
    )

    @app.command("predict")
    def predict_cmd(
        path: Path | None = PATH_ARG,
        preset: str | None = PRESET_OPT,
        model: str = typer.Option(
            "auto",
            "--model",
            "-m",
            help="auto (lowest BIC of the usable fits), bgnbd, pnbd or mbgnbd. 模型:auto(在可用拟合中按 BIC 自动选择)、bgnbd、pnbd、mbgnbd。",
        ),
        horizon: str = typer.Option(
            "90d",
            "--horizon",
            help="Forecast horizon: Nd days, Nw weeks or Nm calendar months. 预测期:天(d)、周(w)或月(m)。",
        ),
        as_of: str | None = typer.Option(
            None,
            "--as-of",
            help="Reference day YYYY-MM-DD; later orders are ignored (default: the last order day). "
            "参考日期,之后的订单不计(默认最后一笔订单的日期)。",
        ),
        timezone: str | None = TZ_OPT,
        fmt: str = typer.Option(
            "table",
            "--format",
            "-f",
            help="json, csv, table or parquet (needs --out). 输出格式(parquet 需 --out)。",
        ),
        out: Path | None = typer.Option(
            None, "--out", "-o", help="Write to FILE instead of stdout. 输出文件。", dir_okay=False
        ),
        currency: str | None = typer.Option(
            None, "--currency", help="Model one currency of a multi-currency shop. 指定币种。"
        ),
        unit: str = typer.Option(
            "day", "--unit", help="Time unit of frequency/recency/T: day or week. 时间单位。"
        ),
        merge_same_day: bool = typer.Option(
            True,
            "--merge-same-day/--no-merge-same-day",
            help="Merge a customer's orders on one day, as the models assume (default). 同一天的订单合并为一笔(模型惯例,默认)。",
        ),
        margin: float | None = typer.Option(
            None,
            "--margin",
            help="Share of spend kept as profit for CLV, 0–1 (default: settings). 毛利率(默认取设置)。",
        ),
        discount_rate: float | None = typer.Option(
            None,
            "--discount-rate",
            help="Annual discount rate for CLV, e.g. 0.1 (default: settings). 年折现率(默认取设置)。",
        ),
        top: int | None = typer.Option(
            None,
            "--top",
            help="Only the N customers of highest CLV. 只输出客户终身价值最高的 N 位。",
        ),
        lang: str | None = LANG_OPT,
        sample: bool = typer.Option(
            False,
            "--sample",
            help="Use the bundled CDNOW sample instead of PATH or the store. 使用内置 CDNOW 样例数据。",
        ),
        evaluate: bool = typer.Option(
            False,
            "--evaluate",
            help="Also check every model on a holdout: the last --holdout-share of the history. "
            "同时用留出期检验每个模型(历史的最后 --holdout-share 部分)。",
        ),
        holdout_share: float = typer.Option(
            0.3,
            "--holdout-share",
            help="Share of the history's span held out by --evaluate (default 0.3). 留出比例(默认 0.3)。",
        ),
        engine: str = ENGINE_OPT,
        table: str | None = TABLE_OPT,
        per_shop: str | None = typer.Option(
            None,
            "--per-shop",
            help="With --engine spark: one model per value of this orders column (e.g. source); "
            "rows carry the column, the model and a note (csv, json or parquet). "
            "按该列(如 source)分店铺各拟合一个模型(需 --engine spark)。",
        ),
    ) -> None:
        """Per-customer forecast: P(alive), expected orders and spend, CLV, next-order date.
        逐客户预测:存活概率、预计订单与消费、客户终身价值、预计下次下单日期。"""
        from huitouke.cli.analytics_cmd import (
            _parse_date,
            direct_parquet,
            load_orders,
            open_spark,
            spark_orders_source,
        )
        from huitouke.i18n import t
        from huitouke.prediction import (
            MODEL_CHOICES,
            alive_summary,
            churn_risk_label,
            parse_horizon,
            predict,
        )
        from huitouke.prediction.transactions import last_order_day
        from huitouke.settings import get_settings

        if fmt not in FORMATS:
            raise InputError(
                f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}",
                code="input.bad_format",
                message_zh=f"--format 只能是 {', '.join(FORMATS)},实际为 {fmt!r}",
                details={"option": "--format"},
            )
        if model not in MODEL_CHOICES:
            raise InputError(
                f"--model must be one of {', '.join(MODEL_CHOICES)}, got {model!r}",
                code="input.model_argument",
                message_zh=f"--model 只能是 {', '.join(MODEL_CHOICES)},实际为 {model!r}",
                details={"option": "--model"},
            )
        if unit not in UNITS:
            raise InputError(
                f"--unit must be day or week, got {unit!r}",
                code="input.bad_unit",
                message_zh=f"--unit 只能是 day 或 week,实际为 {unit!r}",
                details={"option": "--unit"},
            )
        if top is not None and top < 1:
            raise InputError(
                f"--top must be at least 1, got {top}",
                code="input.bad_top",
                message_zh=f"--top 至少为 1,实际为 {top}",
                details={"option": "--top"},
            )
        s = get_settings()
        lang = lang or s.lang
        if lang not in ("zh", "en"):
            raise InputError(
                f"--lang must be zh or en, got {lang!r}",
                code="input.bad_lang",
                message_zh=f"--lang 只能是 zh 或 en,实际为 {lang!r}",
            )
        zone = timezone or s.timezone
        parse_horizon(horizon)  # fail on a bad horizon before reading any data
        day = _parse_date(as_of, "--as-of")

        if not 0.0 < holdout_share < 1.0:
            raise InputError(
                f"--holdout-share must be between 0 and 1 (exclusive), got {holdout_share}",
                code="input.bad_split",
                message_zh=f"--holdout-share 必须介于 0 和 1 之间,实际为 {holdout_share}",
                details={"option": "--holdout-share"},
            )
        if sample and path is not None:
            raise InputError(
                "give either PATH or --sample, not both",
                code="input.conflicting_options",
                message_zh="PATH 与 --sample 只能二选一",
            )

        if fmt == "parquet" and out is None:
            raise InputError(
                "--format parquet needs --out FILE.parquet",
                code="input.out_required",
                message_zh="--format parquet 需要用 --out 指定 .parquet 文件",
            )
        session = open_spark(engine, s.spark_master)
        if session is not None and (evaluate or not merge_same_day):
            raise InputError(
                "--engine spark predicts with same-day orders merged and without --evaluate; "
                "use --engine duckdb for --evaluate or --no-merge-same-day",
                code="input.conflicting_options",
                message_zh="--engine spark 不支持 --evaluate 与 --no-merge-same-day;请用 --engine duckdb",
                details={"option": "--engine"},
            )
        started = time.perf_counter()
        spark_run = None
        if session is not None:
            from huitouke.analytics.spark import orders_frame
            from huitouke.prediction.spark import predict_spark

            source, label = spark_orders_source(
                path, preset=preset, table=table, sample=sample, timezone=timezone
            )
            orders_df = orders_frame(session, source)
            typer.echo(
                t("prediction.progress.read", lang, orders=f"{orders_df.count():,}", source=label),
                err=True,
            )
            if day is None:
                from huitouke.prediction.spark import last_order_day as spark_last_day

                day = spark_last_day(orders_df, timezone=zone, currency=currency)
            horizon_days = parse_horizon(horizon, day)
            typer.echo(t("prediction.progress.fit", lang, model=model), err=True)
            if per_shop is not None:
                _per_shop(
                    orders_df,
                    per_shop,
                    day,
                    zone,
                    model,
                    horizon_days,
                    UNITS[unit],
                    currency,
                    margin,
                    discount_rate,
                    fmt,
                    out,
                )
                return
            spark_run = predict_spark(
                orders_df,
                as_of=day,
                timezone=zone,
                model=model,
                horizon_days=horizon_days,
                unit=UNITS[unit],
                currency=currency,
                margin=margin,
                discount_rate=discount_rate,
            )
            _scoring_note(spark_run.fit, lang)
            if fmt == "parquet":
                assert out is not None
                spark_run.write_parquet(str(out))
                typer.echo(str(out), err=True)
                return
            result = spark_run.to_prediction()
        elif (
            per_shop is None
            and table is None
            and not sample
            and merge_same_day
            and not evaluate
            and direct_parquet(path, preset)
        ):
            # DuckDB reads the Parquet itself: the summary is computed there, the orders
            # never pass through this process and the customers are scored batch by batch
            assert path is not None
            duck = _predict_parquet(
                path,
                day=day,
                zone=zone,
                model=model,
                horizon=horizon,
                unit=UNITS[unit],
                currency=currency,
                margin=margin,
                discount_rate=discount_rate,
                lang=lang,
                out=out if fmt == "parquet" else None,
            )
            if duck is None:
                return
            result, day, horizon_days = duck
        else:
            if per_shop is not None:
                raise InputError(
                    "--per-shop fits one model per shop on Spark: it needs --engine spark",
                    code="input.conflicting_options",
                    message_zh="--per-shop 在 Spark 上按店铺分别建模,需要 --engine spark",
                    details={"option": "--per-shop"},
                )
            if table is not None:
                raise InputError(
                    "--table reads a table of the Spark catalogue: it needs --engine spark",
                    code="input.conflicting_options",
                    message_zh="--table 读取 Spark 目录中的表,需要 --engine spark",
                    details={"option": "--table"},
                )
            if sample:
                from huitouke.data import CDNOW_MASTER

                loaded = load_orders(CDNOW_MASTER, preset="cdnow", timezone=timezone)
            else:
                loaded = load_orders(
                    path, preset=preset, timezone=timezone, database_url=s.database_url
                )
            typer.echo(
                t(
                    "prediction.progress.read",
                    lang,
                    orders=f"{loaded.orders.num_rows:,}",
                    source=loaded.source,
                ),
                err=True,
            )
            if day is None:
                day = last_order_day(loaded.orders, timezone=zone, currency=currency)
            horizon_days = parse_horizon(horizon, day)
            typer.echo(t("prediction.progress.fit", lang, model=model), err=True)
            result = predict(
                loaded.orders,
                as_of=day,
                timezone=zone,
                model=model,
                horizon_days=horizon_days,
                unit=UNITS[unit],
                currency=currency,
                merge_same_day=merge_same_day,
                margin=margin,
                discount_rate=discount_rate,
            )
        if result.comparison is not None:
            why = result.selection_reason_zh if lang == "zh" else result.selection_reason
            typer.echo(
                t("prediction.progress.chosen", lang, model=result.model_label, reason=why),
                err=True,
            )
        if result.spend_source != "gamma_gamma":
            typer.echo(
                t("prediction.progress.spend_fallback", lang, reason=result.spend_note), err=True
            )
        typer.echo(
            t(
                "prediction.progress.done",
                lang,
                customers=f"{len(result.customers):,}",
                seconds=f"{time.perf_counter() - started:.2f}",
            ),
            err=True,
        )

        check = None
        if evaluate:
            from huitouke.prediction import evaluate_models

            check = evaluate_models(
                loaded.orders,
                timezone=zone,
                as_of=day,
                holdout_share=holdout_share,
                unit=UNITS[unit],
                currency=currency,
                merge_same_day=merge_same_day,
            )
            _evaluation_table(check, lang)  # stderr: stdout stays the customers' rows

        if fmt == "parquet":
            assert out is not None
            _write_parquet(result.customers, out)
            return
        df = result.customers
        df.insert(
            list(df.columns).index("churn_risk") + 1,
            "churn_risk_label",
            df["churn_risk"].map({c: churn_risk_label(c, lang) for c in df["churn_risk"].unique()}),
        )
        total = len(df)
        if top is None and fmt == "table" and total > TABLE_ROWS:
            top = TABLE_ROWS
            typer.echo(
                t("prediction.progress.top", lang, shown=TABLE_ROWS, total=f"{total:,}"), err=True
            )
        if top is not None:
            order = df["clv"].astype(float).to_numpy().argsort(kind="stable")[::-1]
            df = df.iloc[order[:top]].reset_index(drop=True)

        if fmt == "table":
            title = t(
                "prediction.table.title",
                lang,
                model=result.model_label,
                days=horizon_days,
                as_of=day.isoformat(),
            )
            _table(df, title, lang)
            return
        if fmt == "csv":
            _write(_csv_text(df), out, fmt)
            return
        body = {
            "model": result.model,
            "params": result.params,
            "horizon_days": horizon_days,
            "as_of": day.isoformat(),
            **{
                k: v
                for k, v in result.meta().items()
                if k not in ("model", "params", "horizon_days", "as_of")
            },
            "evaluation": None if check is None else check.to_dict(),
            "summary": _records(alive_summary(result.customers, lang)),
            "customers": _records(df),
        }
        _write(json.dumps(body, ensure_ascii=False, indent=1) + "\n", out, fmt)
