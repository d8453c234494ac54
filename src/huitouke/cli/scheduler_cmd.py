"""`huitouke scheduler` (the scheduler in the foreground), `scheduler jobs|history|run`."""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
from datetime import UTC, datetime
from typing import Any

import typer

scheduler_app = typer.Typer(
    help="The scheduler: the recurring jobs (outbox, journeys, loyalty expiry …). 定时任务。",
    invoke_without_command=True,
)

DB_HELP = "Store URL (default HUITOUKE_DATABASE_URL). 数据库地址。"


def _echo_json(data: Any) -> None:
    typer.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))


def _store(database_url: str | None) -> Any:
    from huitouke.store.db import open_store

    return open_store(database_url)


@scheduler_app.callback()
def scheduler_main(
    ctx: typer.Context,
    database_url: str | None = typer.Option(None, "--database-url", help=DB_HELP),
    log_level: str = typer.Option("info", "--log-level", help="Log level. 日志级别。"),
) -> None:
    """Run the scheduler in the foreground until SIGTERM or Ctrl-C (the runs in flight finish
    first). 在前台运行定时任务,收到 SIGTERM 或 Ctrl-C 时等正在运行的任务结束后退出。"""
    if ctx.invoked_subcommand is not None:
        ctx.obj = {"database_url": database_url}
        return
    from huitouke.app.scheduler import Scheduler
    from huitouke.i18n import t
    from huitouke.settings import get_settings

    logging.basicConfig(
        level=log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    settings = get_settings()
    store = _store(database_url)
    sched = Scheduler(store, settings)
    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        typer.echo(t("scheduler.stopping", settings.lang, signal=signum), err=True)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if not sched.acquire():
        raise sched.refuse()
    typer.echo(
        t(
            "scheduler.starting",
            settings.lang,
            holder=sched.holder,
            dialect=store.dialect,
            jobs=", ".join(f"{j.name}={s.spec}" for j, s in sched.jobs),
        ),
        err=True,
    )
    try:
        sched.run(stop)
    finally:
        store.dispose()
    typer.echo(t("scheduler.stopped", settings.lang), err=True)


def _db(ctx: typer.Context, database_url: str | None) -> str | None:
    return database_url or (ctx.obj or {}).get("database_url")


@scheduler_app.command("jobs")
def jobs_cmd(
    ctx: typer.Context,
    fmt: str = typer.Option("table", "--format", help="table or json. 输出格式。"),
    database_url: str | None = typer.Option(None, "--database-url", help=DB_HELP),
) -> None:
    """The jobs: schedule, next run (merchant's zone), last run. 任务列表:计划、下次运行、上次运行。"""
    from huitouke.app.scheduler.runner import scheduler_clock
    from huitouke.app.scheduler.views import job_views
    from huitouke.i18n import t
    from huitouke.settings import get_settings

    settings = get_settings()
    lang = settings.lang
    store = _store(_db(ctx, database_url))
    rows = job_views(store, settings, scheduler_clock(settings)(), lang)
    if fmt == "json":
        _echo_json(rows)
        return
    typer.echo(
        f"{t('scheduler.col.job', lang):<24} {t('scheduler.col.schedule', lang):<18} "
        f"{t('scheduler.col.next', lang):<27} {t('scheduler.col.last', lang)}"
    )
    for r in rows:
        last = r["last_run"]
        last_txt = (
            f"{last['started_at']} {t('scheduler.status.' + last['status'], lang)}"
            if last
            else t("scheduler.never", lang)
        )
        nxt = r["next_run"] or t("scheduler.off", lang)
        typer.echo(f"{r['name']:<24} {r['schedule']:<18} {nxt:<27} {last_txt}")
        typer.echo(f"{'':<24} {r['description']}")


@scheduler_app.command("history")
def history_cmd(
    ctx: typer.Context,
    job: str | None = typer.Option(None, "--job", help="Only this job. 只看此任务。"),
    failed: bool = typer.Option(False, "--failed", help="Only failed runs. 只看失败的运行。"),
    limit: int = typer.Option(50, "--limit", min=1, max=10_000, help="At most N runs. 最多条数。"),
    fmt: str = typer.Option("table", "--format", help="table or json. 输出格式。"),
    database_url: str | None = typer.Option(None, "--database-url", help=DB_HELP),
) -> None:
    """The latest runs: slot, trigger, status, duration, error. 运行记录。"""
    from huitouke.app.scheduler.views import run_views
    from huitouke.i18n import t
    from huitouke.settings import get_settings

    settings = get_settings()
    lang = settings.lang
    store = _store(_db(ctx, database_url))
    rows = run_views(store, settings, job=job, failed=failed, limit=limit, lang=lang)
    if fmt == "json":
        _echo_json(rows)
        return
    if not rows:
        typer.echo(t("scheduler.no_runs", lang), err=True)
        return
    zone = settings.zone
    for r in rows:
        started = datetime.fromisoformat(r["started_at"]).astimezone(zone)
        slot = (
            datetime.fromisoformat(r["slot"]).astimezone(zone).strftime("%Y-%m-%d %H:%M:%S")
            if r["slot"]
            else "—"
        )
        dur = f"{r['duration_ms']:.0f}" if r["duration_ms"] is not None else "—"
        line = (
            f"{r['run_id']:>6} {r['job']:<22} {slot:<19} {r['trigger']:<8} "
            f"{t('scheduler.status.' + r['status'], lang):<9} "
            f"{started.strftime('%Y-%m-%d %H:%M:%S')} {dur:>8}ms"
        )
        if r["error_code"]:
            line += f"  [{r['error_code']}] {r['error']}"
        typer.echo(line)


@scheduler_app.command("run")
def run_cmd(
    ctx: typer.Context,
    job: str = typer.Argument(..., help="Job name (see `huitouke scheduler jobs`). 任务名。"),
    database_url: str | None = typer.Option(None, "--database-url", help=DB_HELP),
) -> None:
    """Run a job now, under its lock (refused while another process runs it); exit 1 when
    the run failed. 立即运行一个任务(持锁运行);运行失败时退出码为 1。"""
    from huitouke.app.scheduler import Registry, run_job_now
    from huitouke.i18n import t
    from huitouke.settings import get_settings

    settings = get_settings()
    store = _store(_db(ctx, database_url))
    out = run_job_now(store, settings, Registry.load(settings), job)
    lang = settings.lang
    typer.echo(
        t(
            "scheduler.ran",
            lang,
            job=job,
            run_id=out.run_id,
            status=t("scheduler.status." + out.status, lang),
        ),
        err=True,
    )
    if out.error_code:
        error = out.error_zh if lang == "zh" and out.error_zh else out.error
        typer.echo(f"[{out.error_code}] {error}", err=True)
    _echo_json(
        {
            "run_id": out.run_id,
            "job": job,
            "status": out.status,
            "error_code": out.error_code,
            "result": out.result,
            "at": datetime.now(UTC).isoformat(),
        }
    )
    if out.status == "failed":
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.add_typer(scheduler_app, name="scheduler")
