"""`huitouke report`: the repurchase report as one self-contained HTML file."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pyarrow as pa
import typer

from huitouke.cli.analytics_cmd import ENGINE_OPT, open_spark
from huitouke.errors import InputError

__all__ = ["LoadedOrders", "load_report_orders", "register"]


@dataclass
class LoadedOrders:
    orders: pa.Table
    lines: pa.Table | None
    source: dict[str, Any]


def _sample(timezone: str | None) -> LoadedOrders:
    from huitouke.cli.analytics_cmd import load_orders
    from huitouke.data import CDNOW_MASTER

    loaded = load_orders(CDNOW_MASTER, preset="cdnow", timezone=timezone)
    return LoadedOrders(
        loaded.orders,
        loaded.lines,
        {
            "kind": "sample",
            "label": CDNOW_MASTER.name,
            "name": CDNOW_MASTER.name,
            "preset": "cdnow",
        },
    )


def load_report_orders(
    path: Path | None,
    *,
    preset: str | None,
    timezone: str | None,
    sample: bool,
    database_url: str,
) -> LoadedOrders:
    """Where the report's orders come from: a file, the bundled sample (``--sample``), or
    the store — an empty or missing store is an error (``input.no_orders``), never a
    silent switch to the sample. Files and the store are read exactly as ``huitouke
    metrics`` reads them."""
    from huitouke.cli.analytics_cmd import load_orders, no_orders_error, store_has_orders

    if sample and path is not None:
        raise InputError(
            "give either PATH or --sample, not both",
            code="input.conflicting_options",
            message_zh="PATH 与 --sample 只能二选一",
        )
    if sample:
        return _sample(timezone)
    if path is not None:
        loaded = load_orders(path, preset=preset, timezone=timezone, database_url=database_url)
        return LoadedOrders(
            loaded.orders,
            loaded.lines,
            {"kind": "file", "label": Path(path).name, "preset": preset},
        )
    if not store_has_orders(database_url):
        raise no_orders_error(database_url)
    from sqlalchemy.engine import make_url

    loaded = load_orders(None, preset=None, timezone=timezone, database_url=database_url)
    label = make_url(database_url).render_as_string(hide_password=True)
    return LoadedOrders(loaded.orders, loaded.lines, {"kind": "store", "label": label})


def register(app: typer.Typer) -> None:
    @app.command("report")
    def report_cmd(
        path: Path | None = typer.Argument(
            None,
            help="Order file (CSV/TSV/Excel/Parquet); omitted: the configured store. "
            "订单文件;省略时使用已配置的数据库。",
            exists=True,
            dir_okay=False,
        ),
        preset: str | None = typer.Option(
            None, "--preset", help="Import preset of PATH (detected when omitted). 导入预设。"
        ),
        lang: str | None = typer.Option(
            None, "--lang", help="Report language: zh or en (default: settings). 报告语言。"
        ),
        out: Path = typer.Option(
            Path("report.html"), "--out", "-o", help="HTML file to write. 输出的 HTML 文件。"
        ),
        as_of: str | None = typer.Option(
            None,
            "--as-of",
            help="Reference date YYYY-MM-DD (default: the day of the last order). "
            "参考日期(默认为最后一笔订单的日期)。",
        ),
        timezone: str | None = typer.Option(
            None, "--timezone", help="The merchant's IANA time zone (default: settings). 商家时区。"
        ),
        sample: bool = typer.Option(
            False,
            "--sample",
            help="Report on the bundled CDNOW sample (Fader & Hardie). 使用内置 CDNOW 示例数据。",
        ),
        currency: str | None = typer.Option(
            None, "--currency", help="Report one currency of a multi-currency shop. 指定币种。"
        ),
        predictions: bool = typer.Option(
            True,
            "--predictions/--no-predictions",
            help="Include the model predictions section. 是否包含预测部分。",
        ),
        model: str = typer.Option(
            "auto", "--model", help="auto, bgnbd, pnbd or mbgnbd. 预测模型。"
        ),
        horizon: int = typer.Option(
            90, "--horizon", min=1, help="Prediction horizon in days. 预测期(天)。"
        ),
        engine: str = ENGINE_OPT,
    ) -> None:
        """Write the repurchase report (one offline HTML file) and print its path.
        生成复购报告(单个离线 HTML 文件)并输出其路径。"""
        from huitouke.analytics import LayerWindows
        from huitouke.i18n import t
        from huitouke.report import build_report_data, render_html
        from huitouke.settings import get_settings

        settings = get_settings()
        lang = lang or settings.lang
        if lang not in ("zh", "en"):
            raise InputError(
                f"--lang must be zh or en, got {lang!r}",
                code="input.bad_lang",
                message_zh=f"--lang 只能是 zh 或 en,实际为 {lang!r}",
            )
        if model not in ("auto", "bgnbd", "pnbd", "mbgnbd"):
            raise InputError(
                f"--model must be auto, bgnbd, pnbd or mbgnbd, got {model!r}",
                code="input.bad_model",
                message_zh=f"--model 只能是 auto、bgnbd、pnbd 或 mbgnbd,实际为 {model!r}",
            )
        day = _parse_date(as_of) if as_of else None
        spark = open_spark(engine, settings.spark_master)
        loaded = load_report_orders(
            path,
            preset=preset,
            timezone=timezone,
            sample=sample,
            database_url=settings.database_url,
        )
        data = build_report_data(
            loaded.orders,
            timezone=timezone or settings.timezone,
            source=loaded.source,
            as_of=day,
            lines=loaded.lines,
            merge_same_day=settings.merge_same_day_orders,
            windows=LayerWindows.from_settings(settings),
            currency=currency,
            predictions=predictions,
            horizon_days=horizon,
            model=model,
            spark=spark,
        )
        if loaded.source["kind"] == "store":
            from huitouke.report import reminders_from_store
            from huitouke.store.db import open_store
            from huitouke.store.shop_profile import shop_zone

            zone_store = open_store(settings.database_url)
            try:
                data["shop_timezone"] = shop_zone(zone_store)
            finally:
                zone_store.dispose()

            data["reminders"] = reminders_from_store(
                settings.database_url,
                date.fromisoformat(data["as_of"]),
                window_days=settings.attribution_window_days,
                timezone=timezone or settings.timezone,
                price_per_segment=settings.sms_price_per_segment,
                currency=settings.currency,
            )
        html = render_html(data, lang)
        target = out.expanduser().resolve()
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(html, encoding="utf-8")
        totals = data["totals"]
        typer.echo(
            t(
                "report.cli.done",
                lang,
                customers=f"{totals['customers']:,}",
                orders=f"{totals['orders']:,}",
                as_of=data["as_of"],
                tz=data["timezone"],
            ),
            err=True,
        )
        typer.echo(str(target))


def _parse_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise InputError(
            f"--as-of must be a date YYYY-MM-DD, got {text!r}",
            code="input.bad_date",
            message_zh=f"--as-of 必须是 YYYY-MM-DD 格式的日期,实际为 {text!r}",
            details={"option": "--as-of", "value": text},
        ) from exc
