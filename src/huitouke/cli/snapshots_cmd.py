"""Snapshots: `huitouke snapshots refresh|status` — the precomputed results the console's
pages read (:mod:`huitouke.app.snapshots`)."""

from __future__ import annotations

import json
import sys
import time

import typer

from huitouke.i18n import register as register_texts
from huitouke.i18n import t
from huitouke.settings import get_settings

register_texts(
    {
        "cli.snapshots.step": {
            "zh": "快照 {kind}:第 {step}/{steps} 步({seconds:.1f} 秒)",
            "en": "snapshot {kind}: step {step}/{steps} ({seconds:.1f} s)",
        },
        "cli.snapshots.refreshed": {
            "zh": "{kind}:已重新计算 {n} 个快照,基于 {orders} 笔订单,用时 {seconds:.1f} 秒",
            "en": "{kind}: {n} snapshots recomputed from {orders} orders in {seconds:.1f} s",
        },
        "cli.snapshots.failed": {
            "zh": "{kind}:未能重新计算({code}),保留上一次的快照",
            "en": "{kind}: not recomputed ({code}); the previous snapshots stay",
        },
        "cli.snapshots.up_to_date": {
            "zh": "所有快照都是最新的",
            "en": "every snapshot is up to date",
        },
        "cli.snapshots.missing": {
            "zh": "{kind}:还没有快照(运行 huitouke snapshots refresh)",
            "en": "{kind}: no snapshot yet (run huitouke snapshots refresh)",
        },
        "cli.snapshots.stale": {"zh": "已过期", "en": "stale"},
        "cli.snapshots.fresh": {"zh": "最新", "en": "fresh"},
    }
)

snapshots_app = typer.Typer(
    help="Precomputed results the console reads (overview…). 控制台读取的预计算快照。",
    no_args_is_help=True,
)

_DB = typer.Option(None, "--database-url", help="Store URL. 数据库地址。")


def register(app: typer.Typer) -> None:
    @snapshots_app.command("refresh")
    def refresh_cmd(
        kind: list[str] | None = typer.Option(
            None, "--kind", help="Only this kind (repeatable). 只刷新此类型(可重复)。"
        ),
        stale_only: bool = typer.Option(
            False, "--stale-only", help="Only kinds whose orders changed. 只刷新已过期的。"
        ),
        as_json: bool = typer.Option(False, "--json", help="JSON output. 以 JSON 输出。"),
        database_url: str | None = _DB,
    ) -> None:
        """Recompute the snapshots from the orders, with progress on standard error.
        从订单重新计算快照(进度输出到标准错误)。"""
        from huitouke.app.snapshots import refresh_snapshots
        from huitouke.store.db import open_store

        settings = get_settings()
        lang = settings.lang
        started = time.perf_counter()

        def progress(k: str, step: int, steps: int) -> None:
            seconds = time.perf_counter() - started
            typer.echo(
                t("cli.snapshots.step", lang, kind=k, step=step, steps=steps, seconds=seconds),
                err=True,
            )

        store = open_store(database_url)
        try:
            reports = refresh_snapshots(
                store, settings, kinds=kind or None, only_stale=stale_only, progress=progress
            )
        finally:
            store.dispose()
        if as_json:
            typer.echo(
                json.dumps(
                    [
                        {"kind": r.kind, "snapshots": r.snapshots, "orders": r.orders,
                         "seconds": round(r.seconds, 3), "error": r.error}
                        for r in reports
                    ],
                    ensure_ascii=False,
                )
            )  # fmt: skip
        elif not reports:
            typer.echo(t("cli.snapshots.up_to_date", lang))
        for r in reports:
            if r.error:
                typer.echo(t("cli.snapshots.failed", lang, kind=r.kind, code=r.error), err=True)
            elif not as_json:
                typer.echo(
                    t("cli.snapshots.refreshed", lang, kind=r.kind, n=r.snapshots,
                      orders=r.orders, seconds=r.seconds)
                )  # fmt: skip
        if any(r.error for r in reports):
            sys.exit(1)

    @snapshots_app.command("status")
    def status_cmd(
        as_json: bool = typer.Option(False, "--json", help="JSON output. 以 JSON 输出。"),
        database_url: str | None = _DB,
    ) -> None:
        """Every snapshot: when computed, from how many orders, stale or fresh.
        列出快照:计算时间、订单数、是否过期。"""
        from huitouke.app.snapshots import snapshot_status
        from huitouke.store.db import open_store

        lang = get_settings().lang
        store = open_store(database_url)
        try:
            rows, missing = snapshot_status(store)
        finally:
            store.dispose()
        if as_json:
            typer.echo(
                json.dumps(
                    {
                        "snapshots": [
                            {"kind": r.kind, "params": r.params,
                             "computed_at": r.computed_at.isoformat(),
                             "seconds": round(r.seconds, 3), "orders": r.orders,
                             "stale": r.stale}
                            for r in rows
                        ],
                        "missing": missing,
                    },
                    ensure_ascii=False,
                )
            )  # fmt: skip
            return
        typer.echo("kind\tparams\tcomputed_at\tseconds\torders\tstate")
        for r in rows:
            state = t("cli.snapshots.stale" if r.stale else "cli.snapshots.fresh", lang)
            params = json.dumps(r.params, ensure_ascii=False, sort_keys=True)
            typer.echo(
                f"{r.kind}\t{params}\t{r.computed_at:%Y-%m-%d %H:%M:%S}Z\t{r.seconds:.1f}\t"
                f"{r.orders}\t{state}"
            )
        for kind in missing:
            typer.echo(t("cli.snapshots.missing", lang, kind=kind), err=True)

    app.add_typer(snapshots_app, name="snapshots")
