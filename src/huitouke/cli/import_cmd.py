"""`huitouke import FILE --preset P`: import an order file into the store."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from huitouke.errors import InputError


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
            help="generic | cdnow | online-retail | taobao | youzan | shopify "
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
        from huitouke.i18n import t
        from huitouke.importing import import_file, read_orders, write_rejects
        from huitouke.settings import get_settings

        lang = get_settings().lang
        maps = parse_mapping(mapping)
        if dry_run:
            res = read_orders(
                file, preset, timezone=timezone, mapping=maps, sheet=sheet, progress=True,
                encoding=encoding,
            )  # fmt: skip
            if rejects is not None:
                write_rejects(rejects, res.rejects)
            summary = {
                "dry_run": True,
                "preset": res.preset,
                "rows_read": res.rows_read,
                "orders": res.orders.num_rows,
                "lines": res.lines.num_rows if res.lines is not None else 0,
                "rows_rejected": len(res.rejects),
                "rejects_path": str(rejects) if rejects is not None else None,
            }
            if as_json:
                typer.echo(json.dumps(summary, ensure_ascii=False))
            else:
                typer.echo(
                    t("import.dry_run_summary", lang, preset=res.preset, rows_read=res.rows_read,
                      orders=summary["orders"], lines=summary["lines"], rejected=len(res.rejects))
                )  # fmt: skip
                for r in res.rejects[:20]:
                    reason = r.reason_zh if lang == "zh" else r.reason_en
                    typer.echo(f"  {r.file}:{r.line} [{r.field}] {r.value!r}: {reason}", err=True)
            return
        from huitouke.store.db import open_store

        store = open_store(database_url)
        try:
            s = import_file(
                store, file, preset, timezone=timezone, mapping=maps, rejects_path=rejects,
                progress=True, sheet=sheet, encoding=encoding,
            )  # fmt: skip
        finally:
            store.dispose()
        if as_json:
            typer.echo(
                json.dumps(
                    {
                        "batch_id": s.batch_id,
                        "preset": s.preset,
                        "rows_read": s.rows_read,
                        "orders_inserted": s.orders_inserted,
                        "orders_updated": s.orders_updated,
                        "orders_unchanged": s.orders_unchanged,
                        "rows_rejected": s.rows_rejected,
                        "rejects_path": str(s.rejects_path) if s.rejects_path else None,
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
            if s.rejects_path:
                typer.echo(t("import.rejects_written", lang, path=s.rejects_path), err=True)
