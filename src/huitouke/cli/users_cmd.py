"""Console users: `huitouke users create|list|passwd|disable|enable|delete`.

A password is read from standard input (one line), never from the command line, where it
would stay in the shell's history and in the process list: ``echo "$PW" | huitouke users
create ana --role admin``. On a terminal it is asked for without echo, twice.
"""

from __future__ import annotations

import getpass
import json
import sys
from datetime import UTC, datetime

import typer

from huitouke.cli.stores import read, write
from huitouke.i18n import t
from huitouke.service import messages as _messages  # noqa: F401  (registers the texts)
from huitouke.settings import get_settings
from huitouke.store.audit import cli_actor

users_app = typer.Typer(
    help="Users of the web console (/) and their roles. 网页控制台的用户与角色。",
    no_args_is_help=True,
)

_DB = typer.Option(None, "--database-url", help="Store URL. 数据库地址。")


def _lang() -> str:
    return get_settings().lang


def read_password() -> str:
    """One line of standard input (without its line end); on a terminal, asked twice."""
    from huitouke.errors import InputError
    from huitouke.service.users import MIN_PASSWORD_LENGTH

    if sys.stdin.isatty():
        prompt = t("cli.users.password_prompt", _lang(), n=MIN_PASSWORD_LENGTH)
        first = getpass.getpass(prompt)
        if getpass.getpass(prompt) != first:
            raise InputError(
                "the two passwords differ",
                code="user.password_mismatch",
                message_zh="两次输入的密码不一致",
                details={"field": "password"},
            )
        return first
    return sys.stdin.readline().rstrip("\r\n")


def register(app: typer.Typer) -> None:
    @users_app.command("create")
    def users_create(
        name: str = typer.Argument(..., help="User name (sign-in name). 用户名。"),
        role: str = typer.Option(..., "--role", help="admin | operator | read. 角色。"),
        database_url: str | None = _DB,
    ) -> None:
        """Create a console user; the password is read from standard input.
        创建控制台用户(密码从标准输入读取)。"""
        from huitouke.service.users import check_password, create_user

        password = check_password(read_password())
        user = write(
            database_url,
            lambda conn: create_user(
                conn,
                name=name,
                role=role,
                password=password,
                now=datetime.now(UTC),
                actor=cli_actor(),
            ),
        )
        typer.echo(t("cli.users.created", _lang(), name=user.name, role=user.role))

    @users_app.command("list")
    def users_list(
        as_json: bool = typer.Option(False, "--json", help="JSON output. 以 JSON 输出。"),
        database_url: str | None = _DB,
    ) -> None:
        """List users (never their passwords). 列出用户(不含密码)。"""
        from huitouke.service.users import list_users

        users = read(database_url, list_users)
        if as_json:
            typer.echo(json.dumps([u.to_dict() for u in users], ensure_ascii=False, indent=2))
            return
        if not users:
            typer.echo(t("cli.users.none", _lang()), err=True)
            return
        typer.echo("name\trole\tstatus\tlast_login_at\tcreated_at")
        for u in users:
            status = "active" if u.active else f"disabled {u.disabled_at:%Y-%m-%d}"
            last = f"{u.last_login_at:%Y-%m-%d %H:%M}" if u.last_login_at else "-"
            typer.echo(f"{u.name}\t{u.role}\t{status}\t{last}\t{u.created_at:%Y-%m-%d %H:%M}")

    @users_app.command("passwd")
    def users_passwd(
        name: str = typer.Argument(..., help="User name. 用户名。"),
        database_url: str | None = _DB,
    ) -> None:
        """Set a new password (from standard input); ends the user's sessions and lifts a
        lock-out. 修改密码(从标准输入读取),结束其所有会话并解除锁定。"""
        from huitouke.service.users import check_password, set_password

        password = check_password(read_password())
        write(
            database_url,
            lambda conn: set_password(
                conn, name, password, now=datetime.now(UTC), actor=cli_actor()
            ),
        )
        typer.echo(t("cli.users.password_changed", _lang(), name=name))

    @users_app.command("disable")
    def users_disable(
        name: str = typer.Argument(..., help="User name. 用户名。"),
        database_url: str | None = _DB,
    ) -> None:
        """Disable a user at once (their sessions end). 立即停用用户(结束其会话)。"""
        from huitouke.service.users import disable_user

        write(
            database_url,
            lambda conn: disable_user(conn, name, now=datetime.now(UTC), actor=cli_actor()),
        )
        typer.echo(t("cli.users.disabled", _lang(), name=name))

    @users_app.command("enable")
    def users_enable(
        name: str = typer.Argument(..., help="User name. 用户名。"),
        database_url: str | None = _DB,
    ) -> None:
        """Enable a disabled user again (and lift a lock-out). 重新启用用户。"""
        from huitouke.service.users import enable_user

        write(database_url, lambda conn: enable_user(conn, name, actor=cli_actor()))
        typer.echo(t("cli.users.enabled", _lang(), name=name))

    @users_app.command("delete")
    def users_delete(
        name: str = typer.Argument(..., help="User name. 用户名。"),
        database_url: str | None = _DB,
    ) -> None:
        """Delete a user and their sessions (the sign-in audit keeps the name).
        删除用户及其会话(登录审计保留其名称)。"""
        from huitouke.service.users import delete_user

        write(database_url, lambda conn: delete_user(conn, name, actor=cli_actor()))
        typer.echo(t("cli.users.deleted", _lang(), name=name))

    app.add_typer(users_app, name="users")
