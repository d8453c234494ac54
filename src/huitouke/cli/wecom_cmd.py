"""Private domain on WeCom: `huitouke wecom code add|list`, `wecom contacts`, `wecom events`,
`wecom retry`, `wecom push-tags`.

A channel live code (渠道活码) is created in WeCom (``add_contact_way``) with our code as its
``state``: every contact added through it is linked to a customer, tagged with the code's
tags and greeted with its welcome text and survey link (``POST /v1/wecom/callback``).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer

from huitouke.cli.stores import opened_store, read, write
from huitouke.i18n import register as register_texts
from huitouke.i18n import t
from huitouke.settings import get_settings

wecom_app = typer.Typer(
    help="Private domain on WeCom: channel codes, contacts, callback events. "
    "企业微信私域:渠道活码、客户、回调事件。",
    no_args_is_help=True,
)
code_app = typer.Typer(help="Channel live codes. 渠道活码。", no_args_is_help=True)

register_texts(
    {
        "cli.wecom.code_added": {
            "en": "channel code {code} created in WeCom (config {config_id}); QR code: {qr}",
            "zh": "已在企业微信创建渠道码 {code}(配置 {config_id});二维码:{qr}",
        },
        "cli.wecom.pushed": {
            "en": "tags pushed to {contacts} contacts in WeCom ({added} set, {removed} taken off)",
            "zh": "已向企业微信中 {contacts} 位客户同步标签(新增 {added} 个,移除 {removed} 个)",
        },
        "cli.wecom.retried": {
            "en": "event {event_id}: {status}",
            "zh": "事件 {event_id}:{status}",
        },
    }
)

_DB = typer.Option(None, "--database-url", help="Store URL. 数据库地址。")


def _lang() -> str:
    return get_settings().lang


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, indent=2, default=str)


def register(app: typer.Typer) -> None:
    @code_app.command("add")
    def code_add(
        code: str = typer.Argument(..., help="Code name, also WeCom's state (≤30). 渠道码名称。"),
        users: list[str] = typer.Option(
            ..., "--user", help="Staff WeCom user id (repeatable). 接待员工 userid(可重复)。"
        ),
        source: str = typer.Option(
            ..., "--source", help="Where it is printed (package_insert, order_page…). 投放位置。"
        ),
        tags: list[str] = typer.Option(
            [], "--tag", help="Tag applied (repeatable). 自动打的标签。"
        ),
        welcome_zh: str = typer.Option(..., "--welcome-zh", help="Welcome text (zh). 中文欢迎语。"),
        welcome_en: str = typer.Option(..., "--welcome-en", help="Welcome text (en). 英文欢迎语。"),
        groups: list[str] = typer.Option(
            [],
            "--group",
            help="After-sales group chat id for a group live code (repeatable). "
            "售后群 chat_id,生成群活码(可重复)。",
        ),
        survey: Path | None = typer.Option(
            None, "--survey", help="Survey questions (JSON file). 问卷(JSON 文件)。"
        ),
        database_url: str | None = _DB,
    ) -> None:
        """Create a channel live code in WeCom and keep it. 在企业微信创建渠道活码。"""
        from huitouke.app.wecom import wecom_client
        from huitouke.errors import InputError
        from huitouke.wecom.service import add_code

        questions: Any = []
        if survey is not None:
            try:
                questions = json.loads(survey.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise InputError(
                    f"{survey}: cannot read the survey as JSON: {exc}",
                    code="wecom.bad_input",
                    message_zh=f"{survey}:无法按 JSON 读取问卷:{exc}",
                    details={"field": "survey", "file": str(survey)},
                ) from None
        settings = get_settings()
        client = wecom_client(settings)
        try:
            row = write(
                database_url,
                lambda conn: add_code(
                    conn, client, code=code, users=users, source=source, tags=tags,
                    welcome_zh=welcome_zh, welcome_en=welcome_en, survey=questions,
                    now=datetime.now(UTC), group_chats=groups,
                ),
            )  # fmt: skip
        finally:
            client.close()
        typer.echo(
            t(
                "cli.wecom.code_added",
                _lang(),
                code=code,
                config_id=row["config_id"],
                qr=row["qr_code"],
            )
        )

    @code_app.command("list")
    def code_list(database_url: str | None = _DB) -> None:
        """Codes with the contacts each brought (JSON). 渠道码及带来的客户数(JSON)。"""
        from huitouke.wecom.service import list_codes

        typer.echo(_json(read(database_url, list_codes)))

    @wecom_app.command("contacts")
    def contacts(
        code: str | None = typer.Option(None, "--code", help="Only this code. 仅此渠道码。"),
        database_url: str | None = _DB,
    ) -> None:
        """External contacts and the customers they are linked to (JSON). 外部联系人(JSON)。"""
        from sqlalchemy import select

        from huitouke.wecom.tables import wecom_contacts

        q = select(wecom_contacts).order_by(wecom_contacts.c.added_at)
        if code:
            q = q.where(wecom_contacts.c.code == code)
        typer.echo(
            _json(read(database_url, lambda conn: [dict(r) for r in conn.execute(q).mappings()]))
        )

    @wecom_app.command("events")
    def events(
        failed: bool = typer.Option(False, "--failed", help="Only failed ones. 仅失败的。"),
        limit: int = typer.Option(100, "--limit", min=1, help="At most. 最多条数。"),
        database_url: str | None = _DB,
    ) -> None:
        """Callback events received, newest first (JSON). 收到的回调事件(JSON)。"""
        from sqlalchemy import select

        from huitouke.wecom.tables import wecom_events

        q = select(wecom_events).order_by(wecom_events.c.event_id.desc()).limit(limit)
        if failed:
            q = q.where(wecom_events.c.status == "failed")
        typer.echo(
            _json(read(database_url, lambda conn: [dict(r) for r in conn.execute(q).mappings()]))
        )

    @wecom_app.command("retry")
    def retry(
        event_id: int = typer.Argument(..., help="Event id. 事件编号。"),
        database_url: str | None = _DB,
    ) -> None:
        """Apply a failed event again. 重新处理失败的事件。"""
        from huitouke.app.wecom import retry_event, wecom_client

        settings = get_settings()
        client = wecom_client(settings)
        try:
            with opened_store(database_url) as store:
                out = retry_event(store, settings, client, event_id, now=datetime.now(UTC))
        finally:
            client.close()
        typer.echo(t("cli.wecom.retried", _lang(), event_id=event_id, status=out.status))
        if out.status == "failed":
            raise typer.Exit(1)

    @wecom_app.command("push-tags")
    def push_tags_cmd(database_url: str | None = _DB) -> None:
        """Set each contact's huitouke tags on the contact in WeCom (and take off those
        removed here since). 将顾客标签同步到企业微信。"""
        from huitouke.app.wecom import wecom_client
        from huitouke.wecom.service import push_tags

        settings = get_settings()
        client = wecom_client(settings)
        try:
            counts = write(
                database_url, lambda conn: push_tags(conn, client, now=datetime.now(UTC))
            )
        finally:
            client.close()
        typer.echo(t("cli.wecom.pushed", _lang(), **counts))

    wecom_app.add_typer(code_app, name="code")
    app.add_typer(wecom_app, name="wecom")
