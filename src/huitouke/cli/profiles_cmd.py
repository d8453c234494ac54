"""Tags and profile attributes: `huitouke tags add|remove|list|show`, `huitouke attributes
define|set|clear|list` — the same use cases as the console and /v1/tags (huitouke.app.profiles)."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer

from huitouke.i18n import register as register_texts
from huitouke.i18n import t
from huitouke.settings import get_settings

register_texts(
    {
        "cli.tags.none": {"zh": "还没有标签", "en": "no tags yet"},
        "cli.attributes.none": {"zh": "还没有定义属性", "en": "no attributes defined yet"},
        "cli.profiles.changed": {
            "zh": "{customers} 位顾客,{changed} 处更改",
            "en": "{customers} customer(s), {changed} change(s)",
        },
    }
)

tags_app = typer.Typer(help="Customer tags (标签). 顾客标签。", no_args_is_help=True)
attributes_app = typer.Typer(
    help="Custom profile attributes (画像属性). 顾客画像属性。", no_args_is_help=True
)

_DB = typer.Option(None, "--database-url", help="Store URL. 数据库地址。")
_CUSTOMER = typer.Option(
    None, "--customer", "-c", help="A customer id (repeatable). 顾客编号(可重复)。"
)
_FILE = typer.Option(
    None,
    "--customers-file",
    help="A file of customer ids, one per line ('-': stdin). 顾客编号文件。",
)
_AUDIENCE = typer.Option(
    None,
    "--audience",
    help='A journey audience as JSON, e.g. \'{"rfm_segments": ["at_risk"]}\'. 人群条件(JSON)。',
)


def _lang() -> str:
    return get_settings().lang


def _target(customers: list[str] | None, file: Path | None, audience: str | None) -> Any:
    from huitouke.app.profiles import Target, parse_audience
    from huitouke.errors import InputError

    ids: list[str] | None = None
    if customers or file is not None:
        ids = list(customers or [])
        if file is not None:
            text = sys.stdin.read() if str(file) == "-" else file.read_text(encoding="utf-8")
            ids += [line.strip() for line in text.splitlines() if line.strip()]
    parsed = None
    if audience is not None:
        try:
            data = json.loads(audience)
        except json.JSONDecodeError as exc:
            raise InputError(
                f"--audience is not JSON: {exc.msg} (column {exc.colno})",
                code="profile.bad_audience",
                message_zh=f"--audience 不是 JSON:{exc.msg}(第 {exc.colno} 列)",
                details={"field": "audience"},
            ) from None
        parsed = parse_audience(data)
    return Target(customer_ids=ids, audience=parsed)


def _store(database_url: str | None) -> Any:
    from huitouke.store.db import open_store

    return open_store(database_url)


def _echo(result: dict[str, Any]) -> None:
    typer.echo(json.dumps(result, ensure_ascii=False, indent=2, default=str))
    if "customers" in result and "changed" in result:
        typer.echo(t("cli.profiles.changed", _lang(), **result), err=True)


def register(app: typer.Typer) -> None:
    from huitouke.store.audit import cli_actor

    def tag_change(
        tags: list[str], customers: Any, file: Any, audience: Any, db: Any, remove: bool
    ) -> None:
        from huitouke.app.profiles import change_tags

        target = _target(customers, file, audience)
        store = _store(db)
        try:
            result = change_tags(
                store, get_settings(), target, tags, remove=remove, actor=cli_actor(),
                now=datetime.now(UTC), client="cli",
            )  # fmt: skip
        finally:
            store.dispose()
        _echo(result)

    @tags_app.command("add")
    def tags_add(
        tags: list[str] = typer.Argument(..., help="Tags to add. 要添加的标签。"),
        customers: list[str] | None = _CUSTOMER,
        customers_file: Path | None = _FILE,
        audience: str | None = _AUDIENCE,
        database_url: str | None = _DB,
    ) -> None:
        """Add tags to customers by id or to a whole audience. 给顾客或整个人群添加标签。"""
        tag_change(tags, customers, customers_file, audience, database_url, remove=False)

    @tags_app.command("remove")
    def tags_remove(
        tags: list[str] = typer.Argument(..., help="Tags to remove. 要移除的标签。"),
        customers: list[str] | None = _CUSTOMER,
        customers_file: Path | None = _FILE,
        audience: str | None = _AUDIENCE,
        database_url: str | None = _DB,
    ) -> None:
        """Remove tags from customers by id or from a whole audience. 移除标签。"""
        tag_change(tags, customers, customers_file, audience, database_url, remove=True)

    @tags_app.command("list")
    def tags_list(database_url: str | None = _DB) -> None:
        """Every tag with its number of customers. 列出标签及人数。"""
        from huitouke.app.profiles import profile_overview

        store = _store(database_url)
        try:
            overview = profile_overview(store)
        finally:
            store.dispose()
        if not overview["tags"]:
            typer.echo(t("cli.tags.none", _lang()), err=True)
        for row in overview["tags"]:
            typer.echo(f"{row['tag']}\t{row['customers']}")

    @tags_app.command("show")
    def tags_show(
        customer_id: str = typer.Argument(..., help="Customer id. 顾客编号。"),
        database_url: str | None = _DB,
    ) -> None:
        """A customer's tags, attributes and their history (JSON). 顾客标签与画像。"""
        from huitouke.app.profiles import customer_profile

        store = _store(database_url)
        try:
            profile = customer_profile(store, customer_id)
        finally:
            store.dispose()
        _echo(profile)

    @attributes_app.command("define")
    def attributes_define(
        key: str = typer.Argument(..., help="Attribute key (a-z, 0-9, _). 属性名。"),
        type_: str = typer.Option(..., "--type", help="text | number | date | choice. 类型。"),
        choices: list[str] | None = typer.Option(
            None, "--choice", help="An allowed value of a choice attribute (repeatable). 选项。"
        ),
        database_url: str | None = _DB,
    ) -> None:
        """Define a profile attribute. 定义画像属性。"""
        from huitouke.app.profiles import define_attribute

        store = _store(database_url)
        try:
            attr = define_attribute(
                store, key, type_, choices=choices or [], actor=cli_actor(),
                now=datetime.now(UTC), client="cli",
            )  # fmt: skip
        finally:
            store.dispose()
        _echo(attr.to_dict())

    def attr_change(
        key: str, value: str | None, customers: Any, file: Any, audience: Any, db: Any
    ) -> None:
        from huitouke.app.profiles import change_attribute

        target = _target(customers, file, audience)
        store = _store(db)
        try:
            result = change_attribute(
                store, get_settings(), target, key, value, actor=cli_actor(),
                now=datetime.now(UTC), client="cli",
            )  # fmt: skip
        finally:
            store.dispose()
        _echo(result)

    @attributes_app.command("set")
    def attributes_set(
        key: str = typer.Argument(..., help="Attribute key. 属性名。"),
        value: str = typer.Argument(..., help="The value (checked against the type). 值。"),
        customers: list[str] | None = _CUSTOMER,
        customers_file: Path | None = _FILE,
        audience: str | None = _AUDIENCE,
        database_url: str | None = _DB,
    ) -> None:
        """Set an attribute on customers by id or on a whole audience. 设置画像属性。"""
        attr_change(key, value, customers, customers_file, audience, database_url)

    @attributes_app.command("clear")
    def attributes_clear(
        key: str = typer.Argument(..., help="Attribute key. 属性名。"),
        customers: list[str] | None = _CUSTOMER,
        customers_file: Path | None = _FILE,
        audience: str | None = _AUDIENCE,
        database_url: str | None = _DB,
    ) -> None:
        """Clear an attribute's value. 清除画像属性值。"""
        attr_change(key, None, customers, customers_file, audience, database_url)

    @attributes_app.command("list")
    def attributes_list(database_url: str | None = _DB) -> None:
        """The defined attributes (JSON). 列出已定义的属性。"""
        from huitouke.app.profiles import profile_overview

        store = _store(database_url)
        try:
            attrs = profile_overview(store)["attributes"]
        finally:
            store.dispose()
        if not attrs:
            typer.echo(t("cli.attributes.none", _lang()), err=True)
        typer.echo(json.dumps(attrs, ensure_ascii=False, indent=2))

    app.add_typer(tags_app, name="tags")
    app.add_typer(attributes_app, name="attributes")
