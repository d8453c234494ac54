"""The REST service and its API keys: `huitouke serve`, `huitouke apikey create|list|revoke`."""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
from datetime import UTC, datetime
from typing import Any

import typer

from huitouke.i18n import t
from huitouke.service import messages as _messages  # noqa: F401  (registers the texts)
from huitouke.settings import get_settings

apikey_app = typer.Typer(
    help="API keys for the REST service. REST 服务的 API 密钥。", no_args_is_help=True
)
profile_app = typer.Typer(
    help="Customer profiles and consent per channel (as the REST API). 顾客资料与各渠道营销同意。",
    no_args_is_help=True,
)


def _parse_consent(items: list[str]) -> dict[str, bool]:
    from huitouke.errors import InputError

    out: dict[str, bool] = {}
    for item in items:
        channel, sep, value = item.partition("=")
        flag = {
            "on": True,
            "yes": True,
            "true": True,
            "1": True,
            "off": False,
            "no": False,
            "false": False,
            "0": False,
        }.get(value.strip().lower())
        if not sep or flag is None or not channel.strip():
            raise InputError(
                f"consent {item!r}: write CHANNEL=on|off (e.g. sms=off)",
                code="input.invalid",
                message_zh=f"同意设置 {item!r} 格式应为 渠道=on|off(例如 sms=off)",
                details={"field": "consent", "value": item},
            )
        out[channel.strip().lower()] = flag
    return out


def _profile_json(row: dict[str, Any], masked: bool) -> str:
    from huitouke.service.masking import mask_email, mask_name, mask_phone

    out = dict(row)
    if masked:
        out["name"], out["phone"], out["email"] = (
            mask_name(out.get("name")),
            mask_phone(out.get("phone")),
            mask_email(out.get("email")),
        )
    return json.dumps(out, ensure_ascii=False, indent=2, default=str)


def log_config(level: str = "info") -> dict[str, Any]:
    """uvicorn's logging, with every handler behind the masking filter (phones, names)."""
    lvl = level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"mask": {"()": "huitouke.service.masking.MaskingFilter"}},
        "formatters": {"default": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "default",
                "filters": ["mask"],
                "stream": "ext://sys.stderr",
            }
        },
        "loggers": {
            "uvicorn": {"handlers": ["stderr"], "level": lvl, "propagate": False},
            "uvicorn.error": {"level": lvl},
            # replaced by huitouke.service.access (masked, with durations)
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
            "huitouke": {"handlers": ["stderr"], "level": lvl, "propagate": False},
        },
    }


def _store(database_url: str | None) -> Any:
    from huitouke.store.db import open_store

    return open_store(database_url)


def _lang() -> str:
    return get_settings().lang


def _exit_gracefully(signum: int, _frame: Any) -> None:
    raise SystemExit(0)


def _start_scheduler(url: str) -> tuple[threading.Event, threading.Thread]:
    """The scheduler on a thread of `huitouke serve` (``HUITOUKE_SCHEDULER=on``): on a SQLite
    store that another scheduler holds, it stands by until the lease is free."""
    from huitouke.app.scheduler import Scheduler

    settings = get_settings()
    store = _store(url)
    sched = Scheduler(store, settings)
    stop = threading.Event()

    def run() -> None:
        try:
            if not sched.acquire():
                typer.echo(t("scheduler.standby", settings.lang), err=True)
            sched.run(stop, standby=True)
        except Exception:
            logging.getLogger("huitouke.scheduler").exception("the scheduler stopped")
        finally:
            store.dispose()

    thread = threading.Thread(target=run, name="huitouke-scheduler", daemon=True)
    thread.start()
    return stop, thread


def _webhook_apply(settings: Any, url: str, workers: int) -> str:
    """``HUITOUKE_WEBHOOK_APPLY`` as this ``serve`` runs it: ``auto`` becomes ``scheduler``
    — the workers only answer, this (the parent) process's scheduler applies — on a
    PostgreSQL store served by two workers or more with the scheduler on; else ``service``
    (one process, or a SQLite store: its one writer at a time)."""
    chosen = str(settings.webhook_apply)
    if chosen != "auto":
        return chosen
    postgres = url.startswith(("postgresql", "postgres:"))
    return "scheduler" if postgres and workers > 1 and settings.scheduler == "on" else "service"


def register(app: typer.Typer) -> None:
    @app.command("serve")
    def serve_cmd(
        host: str | None = typer.Option(None, "--host", help="Bind address. 监听地址。"),
        port: int | None = typer.Option(None, "--port", help="Port. 端口。"),
        workers: int = typer.Option(1, "--workers", min=1, help="Worker processes. 进程数。"),
        database_url: str | None = typer.Option(
            None, "--database-url", help="Store URL (default HUITOUKE_DATABASE_URL). 数据库地址。"
        ),
        access_log: bool = typer.Option(
            True, "--access-log/--no-access-log", help="Log each request (masked). 访问日志。"
        ),
        log_level: str = typer.Option("info", "--log-level", help="Log level. 日志级别。"),
    ) -> None:
        """Run the REST API on uvicorn (OpenAPI at /docs). 启动 REST 服务(接口文档 /docs)。"""
        import uvicorn

        settings = get_settings()
        if database_url:
            # Worker processes read the store from the environment.
            os.environ["HUITOUKE_DATABASE_URL"] = database_url
        url = database_url or settings.database_url
        _store(url).dispose()  # migrate once, before any worker starts
        h, p = host or settings.host, port or settings.port
        cfg = log_config(log_level)
        if not access_log:
            cfg["loggers"]["huitouke.service.access"] = {"level": "WARNING"}
        typer.echo(t("cli.serve.starting", _lang(), host=h, port=p), err=True)
        # the recurring jobs run in this (the parent) process, once however many workers
        from huitouke.app import scheduler as _scheduler  # noqa: F401  (registers the texts)

        apply = _webhook_apply(settings, url, workers)
        if apply != settings.webhook_apply:  # the workers and the scheduler read it so
            os.environ["HUITOUKE_WEBHOOK_APPLY"] = apply
            get_settings.cache_clear()
            settings = get_settings()
        scheduler = _start_scheduler(url) if settings.scheduler == "on" else None
        if apply == "scheduler":
            key = (
                "scheduler.webhooks_unapplied"
                if scheduler is None
                else "scheduler.webhooks_by_scheduler"
            )
            typer.echo(t(key, _lang()), err=True)
        if scheduler is None:
            typer.echo(t("scheduler.serve_off", _lang()), err=True)
        else:
            # uvicorn raises the SIGTERM it caught again once the server has stopped, with the
            # handler found before it ran: this one, so the scheduler's runs in flight finish
            # (the `finally` below) instead of the process dying with them
            signal.signal(signal.SIGTERM, _exit_gracefully)
        try:
            uvicorn.run(
                "huitouke.service.app:app_from_env",
                factory=True,
                host=h,
                port=p,
                workers=workers,
                log_config=cfg,
                access_log=False,
                log_level=log_level,
            )
        finally:
            if scheduler is not None:
                stop, thread = scheduler
                stop.set()
                thread.join()

    @apikey_app.command("create")
    def apikey_create(
        scope: str = typer.Option(..., "--scope", help="read | operator | admin. 权限范围。"),
        name: str | None = typer.Option(None, "--name", help="A label. 名称。"),
        database_url: str | None = typer.Option(None, "--database-url", help="Store URL."),
    ) -> None:
        """Create a key; it is printed once, as the last line. 创建密钥(只打印一次,在最后一行)。"""
        from huitouke.service.apikeys import create_api_key
        from huitouke.store.audit import cli_actor

        store = _store(database_url)
        try:
            with store.begin() as conn:
                record, full = create_api_key(
                    conn, scope=scope, name=name, now=datetime.now(UTC), actor=cli_actor()
                )
        finally:
            store.dispose()
        typer.echo(
            t(
                "cli.apikey.created",
                _lang(),
                key_id=record.key_id,
                scope=record.scope,
                name=record.name,
            )
        )
        typer.echo(full)

    @apikey_app.command("list")
    def apikey_list(
        as_json: bool = typer.Option(False, "--json", help="JSON output. 以 JSON 输出。"),
        database_url: str | None = typer.Option(None, "--database-url", help="Store URL."),
    ) -> None:
        """List keys (never their secrets). 列出密钥(不含密钥本身)。"""
        from huitouke.service.apikeys import list_api_keys

        store = _store(database_url)
        try:
            with store.connect() as conn:
                keys = list_api_keys(conn)
        finally:
            store.dispose()
        if as_json:
            typer.echo(json.dumps([k.to_dict() for k in keys], ensure_ascii=False, indent=2))
            return
        if not keys:
            typer.echo(t("cli.apikey.none", _lang()), err=True)
            return
        typer.echo("key_id\tscope\tstatus\tcreated_at\tname")
        for k in keys:
            status = "active" if k.active else f"revoked {k.revoked_at:%Y-%m-%d}"
            typer.echo(f"{k.key_id}\t{k.scope}\t{status}\t{k.created_at:%Y-%m-%d %H:%M}\t{k.name}")

    @apikey_app.command("revoke")
    def apikey_revoke(
        key_id: str = typer.Argument(..., help="Key id (from `apikey list`). 密钥编号。"),
        database_url: str | None = typer.Option(None, "--database-url", help="Store URL."),
    ) -> None:
        """Revoke a key at once. 立即吊销密钥。"""
        from huitouke.service.apikeys import revoke_api_key
        from huitouke.store.audit import cli_actor

        store = _store(database_url)
        try:
            with store.begin() as conn:
                revoke_api_key(conn, key_id, now=datetime.now(UTC), actor=cli_actor())
        finally:
            store.dispose()
        typer.echo(t("cli.apikey.revoked", _lang(), key_id=key_id))

    app.add_typer(apikey_app, name="apikey")

    @profile_app.command("show")
    def profile_show(
        customer_id: str = typer.Argument(..., help="Customer id. 顾客编号。"),
        masked: bool = typer.Option(False, "--masked", help="Mask name, phone, e-mail. 脱敏显示。"),
        database_url: str | None = typer.Option(None, "--database-url", help="Store URL."),
    ) -> None:
        """Show a profile as JSON. 以 JSON 显示顾客资料。"""
        from huitouke.service.customers import get_customer

        store = _store(database_url)
        try:
            with store.connect() as conn:
                row = get_customer(conn, customer_id)
        finally:
            store.dispose()
        typer.echo(_profile_json(row, masked))

    @profile_app.command("set")
    def profile_set(
        customer_id: str = typer.Argument(..., help="Customer id. 顾客编号。"),
        name: str | None = typer.Option(None, "--name", help="Name. 姓名。"),
        phone: str | None = typer.Option(None, "--phone", help="Phone. 手机号。"),
        email: str | None = typer.Option(None, "--email", help="E-mail. 邮箱。"),
        birthday: str | None = typer.Option(None, "--birthday", help="YYYY-MM-DD. 生日。"),
        timezone: str | None = typer.Option(None, "--timezone", help="IANA zone. 时区。"),
        tag: list[str] = typer.Option([], "--tag", help="A tag (repeatable). 标签(可重复)。"),
        consent: list[str] = typer.Option(
            [], "--consent", help="CHANNEL=on|off (repeatable). 渠道同意。"
        ),
        database_url: str | None = typer.Option(None, "--database-url", help="Store URL."),
    ) -> None:
        """Create a profile or change the given fields (others are kept), validated as the API
        does. 新建或修改顾客资料(未给出的字段保持不变)。"""
        from pydantic import ValidationError

        from huitouke.errors import InputError, NotFoundError
        from huitouke.service.customers import get_customer, put_customer
        from huitouke.service.schemas import CustomerProfileIn

        store = _store(database_url)
        try:
            with store.begin() as conn:
                try:
                    current = get_customer(conn, customer_id)
                except NotFoundError:
                    current = {}
                doc = {
                    k: current.get(k)
                    for k in CustomerProfileIn.model_fields
                    if current.get(k) is not None
                }
                given = {
                    "name": name,
                    "phone": phone,
                    "email": email,
                    "birthday": birthday,
                    "timezone": timezone,
                }
                doc.update({k: v for k, v in given.items() if v is not None})
                if tag:
                    doc["tags"] = list(dict.fromkeys([*(doc.get("tags") or []), *tag]))
                try:
                    profile = CustomerProfileIn.model_validate(doc)
                except ValidationError as exc:
                    fields = [".".join(str(p) for p in e["loc"]) for e in exc.errors()]
                    raise InputError(
                        f"invalid profile: {', '.join(fields)}",
                        code="input.invalid",
                        message_zh=f"顾客资料有误:{', '.join(fields)}",
                        details={"fields": fields},
                    ) from exc
                row, _ = put_customer(
                    conn, customer_id, profile.model_dump(), now=datetime.now(UTC)
                )
                if consent:  # a choice recorded as consent events, as `profile consent` does
                    from huitouke.app.consent import set_consent

                    set_consent(
                        conn,
                        customer_id,
                        _parse_consent(consent),
                        source="cli",
                        at=datetime.now(UTC),
                    )
                    row = get_customer(conn, customer_id)
        finally:
            store.dispose()
        typer.echo(_profile_json(row, masked=False))

    @profile_app.command("consent")
    def profile_consent(
        customer_id: str = typer.Argument(..., help="Customer id. 顾客编号。"),
        settings_: list[str] = typer.Argument(
            ..., metavar="CHANNEL=on|off...", help="e.g. sms=off email=on"
        ),
        database_url: str | None = typer.Option(None, "--database-url", help="Store URL."),
    ) -> None:
        """Record the customer's consent choice per channel (an opt-in after an unsubscribe
        restores that channel); prints the consent the dispatcher applies. 按渠道记录营销同意。"""
        from huitouke.app.consent import set_consent

        store = _store(database_url)
        try:
            with store.begin() as conn:
                change = set_consent(
                    conn, customer_id, _parse_consent(settings_), source="cli", at=datetime.now(UTC)
                )
        finally:
            store.dispose()
        typer.echo(json.dumps(change.consent, ensure_ascii=False))

    app.add_typer(profile_app, name="profile")
