"""`huitouke import FILE --preset P`: import an order file into the store."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, cast

import typer

from huitouke.errors import InputError

if TYPE_CHECKING:
    from huitouke.importing.convert import Decimal
    from huitouke.importing.dates import DateOrder


def parse_mapping(items: list[str] | None) -> dict[str, str]:
    """``["下单日期=ordered_at", ...]`` → ``{"下单日期": "ordered_at"}``."""
    out: dict[str, str] = {}
    for item in items or []:
        col, sep, fld = item.rpartition("=")
        if not sep or not col.strip() or not fld.strip():
            raise InputError(
                f"--mapping {item!r}: expected COLUMN=FIELD",
                code="import.bad_mapping",
                message_zh=f"--mapping {item!r}:格式应为 列名=字段",
            )
        out[col.strip()] = fld.strip()
    return out


def register(app: typer.Typer) -> None:
    @app.command("import")
    def import_cmd(
        file: Path = typer.Argument(
            ..., help="Order file: CSV/TSV/TXT, .xlsx or .parquet. 订单文件。"
        ),
        preset: str | None = typer.Option(
            None,
            "--preset",
            "-p",
            help="generic | cdnow | online-retail | taobao | youzan | shopify | pinduoduo | "
            "douyin | jd | kuaishou | wechat "
            "(detected when omitted). 预设格式(省略时自动识别)。",
        ),
        mapping: list[str] | None = typer.Option(
            None,
            "--mapping",
            "-m",
            help="COLUMN=FIELD, repeatable (e.g. 下单日期=ordered_at). 列映射,可重复。",
        ),
        rejects: Path | None = typer.Option(
            None, "--rejects", help="Where to write rejected rows (CSV). 拒收行输出文件。"
        ),
        timezone: str | None = typer.Option(
            None,
            "--timezone",
            help="Zone of the file's wall-clock times (default: the preset's or the merchant's). "
            "文件中时间的时区。",
        ),
        sheet: str | None = typer.Option(
            None, "--sheet", help="Excel sheet name. Excel 工作表名。"
        ),
        encoding: str | None = typer.Option(
            None, "--encoding", help="Force a text encoding (e.g. gbk). 强制指定编码。"
        ),
        order_key: str | None = typer.Option(
            None,
            "--order-key",
            help="Columns that together identify an order, for sources whose ids are not "
            "unique (e.g. date,store,ticket). 组合多列作为订单编号(如 date,store,ticket)。",
        ),
        source: str | None = typer.Option(
            None,
            "--source",
            help="The namespace of the file's order ids: the shop, platform or channel it was "
            "exported from (e.g. taobao, shopify; a-z 0-9 _ -, at most 32). The same id under "
            "two sources is two orders. Default: default. "
            "订单号所属来源(如 taobao、shopify);不同来源的相同订单号是不同订单。",
        ),
        decimal_comma: bool = typer.Option(
            False,
            "--decimal-comma",
            help="Amounts use a decimal comma (1.299,00). 金额使用小数逗号。",
        ),
        decimal_point: bool = typer.Option(
            False,
            "--decimal-point",
            help="Amounts use a decimal point (1,299.00). 金额使用小数点。",
        ),
        date_order: str | None = typer.Option(
            None,
            "--date-order",
            help="dmy | mdy | ymd: day/month order of dates such as 05/03/2024 (inferred when "
            "omitted). 日期的日/月顺序(省略时自动判断)。",
        ),
        strict: bool = typer.Option(
            False,
            "--strict",
            help="Store nothing and exit non-zero if any row is rejected. "
            "有任何拒收行时不写入并以非零退出。",
        ),
        dry_run: bool = typer.Option(
            False, "--dry-run", help="Read and validate only; store nothing. 只校验,不写入。"
        ),
        database_url: str | None = typer.Option(
            None, "--database-url", help="Store URL (default from settings). 数据库地址。"
        ),
        as_json: bool = typer.Option(
            False, "--json", help="Print the summary as JSON. 以 JSON 输出。"
        ),
    ) -> None:
        """Import orders from a file, idempotently. 导入订单文件(可重复导入,不重复入库)。"""
        from huitouke.app.imports import import_file
        from huitouke.i18n import t
        from huitouke.importing import read_orders, write_rejects
        from huitouke.settings import get_settings

        lang = get_settings().lang
        maps = parse_mapping(mapping)
        keys = parse_order_key(order_key)
        if decimal_comma and decimal_point:
            raise InputError(
                "--decimal-comma and --decimal-point exclude each other",
                code="import.bad_option",
                message_zh="--decimal-comma 与 --decimal-point 不能同时使用",
            )
        decimal: Decimal = "comma" if decimal_comma else "point" if decimal_point else "auto"
        dates = cast("DateOrder | None", date_order.lower() if date_order else None)
        from huitouke.app.orders import check_source

        source = check_source(source, field="--source")
        if dry_run:
            from huitouke.app.imports import rows_rejected_error

            res = read_orders(
                file, preset, timezone=timezone, mapping=maps, sheet=sheet, progress=True,
                encoding=encoding, order_key=keys, decimal=decimal, date_order=dates,
            )  # fmt: skip
            if rejects is not None:
                write_rejects(rejects, res.rejects)
            summary = {
                "dry_run": True,
                "source": source,
                "preset": res.preset,
                "rows_read": res.rows_read,
                "orders": res.orders.num_rows,
                "lines": res.lines.num_rows if res.lines is not None else 0,
                "rows_rejected": len(res.rejects),
                "rejects_by_reason": res.rejects_by_reason(),
                "rejects_path": str(rejects) if rejects is not None else None,
                "warnings": [en if lang == "en" else zh for en, zh in res.warnings],
            }
            _warn(res.warnings, lang)
            if as_json:
                typer.echo(json.dumps(summary, ensure_ascii=False))
            else:
                typer.echo(
                    t("import.dry_run_summary", lang, preset=res.preset, rows_read=res.rows_read,
                      orders=summary["orders"], lines=summary["lines"], rejected=len(res.rejects))
                )  # fmt: skip
                _by_reason(res.rejects_by_reason(), lang)
                for r in res.rejects[:20]:
                    reason = r.reason_zh if lang == "zh" else r.reason_en
                    typer.echo(f"  {r.file}:{r.line} [{r.field}] {r.value!r}: {reason}", err=True)
            if strict and res.rejects:
                raise rows_rejected_error(res, rejects)
            return
        from huitouke.store.db import open_store

        store = open_store(database_url)
        try:
            s = import_file(
                store, file, preset, timezone=timezone, mapping=maps, rejects_path=rejects,
                progress=True, sheet=sheet, encoding=encoding, order_key=keys, decimal=decimal,
                date_order=dates, strict=strict, source=source,
            )  # fmt: skip
        finally:
            store.dispose()
        _warn(s.warnings, lang)
        if as_json:
            typer.echo(
                json.dumps(
                    {
                        "batch_id": s.batch_id,
                        "source": s.source,
                        "preset": s.preset,
                        "rows_read": s.rows_read,
                        "orders_inserted": s.orders_inserted,
                        "orders_updated": s.orders_updated,
                        "orders_unchanged": s.orders_unchanged,
                        "rows_rejected": s.rows_rejected,
                        "rejects_by_reason": s.rejects_by_reason,
                        "rejects_path": str(s.rejects_path) if s.rejects_path else None,
                        "warnings": [en if lang == "en" else zh for en, zh in s.warnings],
                        "zone": s.zone,
                        "shop_zone": s.shop_zone,
                        "consent_recorded": s.consent_recorded,
                        "consent_kept": s.consent_kept,
                    },
                    ensure_ascii=False,
                )
            )
        else:
            typer.echo(
                t("import.summary", lang, batch_id=s.batch_id, rows_read=s.rows_read,
                  inserted=s.orders_inserted, updated=s.orders_updated,
                  unchanged=s.orders_unchanged, rejected=s.rows_rejected)
            )  # fmt: skip
            _by_reason(s.rejects_by_reason, lang)
            if s.consent_recorded or s.consent_kept:
                typer.echo(
                    t("import.consent", lang, recorded=s.consent_recorded, kept=s.consent_kept)
                )
            if s.rejects_path:
                typer.echo(t("import.rejects_written", lang, path=s.rejects_path), err=True)


def parse_order_key(value: str | None) -> list[str] | None:
    """``"date,store,ticket"`` → ``["date", "store", "ticket"]``."""
    if value is None:
        return None
    parts = [p.strip() for p in value.split(",")]
    if not all(parts):
        raise InputError(
            f"--order-key {value!r}: expected column names separated by commas",
            code="import.bad_order_key",
            message_zh=f"--order-key {value!r}:应为以逗号分隔的列名",
        )
    return parts


def _warn(warnings: list[tuple[str, str]], lang: str) -> None:
    for en, zh in warnings:
        typer.echo(("警告:" + zh) if lang == "zh" else ("warning: " + en), err=True)


def _by_reason(counts: dict[str, int], lang: str) -> None:
    from huitouke.i18n import t

    if not counts:
        return
    typer.echo(t("import.rejects_by_reason", lang))
    for code, n in counts.items():
        typer.echo(f"  {code}: {n:,}")
