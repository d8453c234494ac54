"""Shop connectors: ``huitouke connectors add|list|show|sync|pause|resume|remove|inbox|retry``.

A credential given without its option (``--access-token``, ``--consumer-secret``) is read
from standard input (one line), so it stays out of the shell's history and the process
list: ``echo "$TOKEN" | huitouke connectors add shopify myshop --api-base-url … ``.
"""

from __future__ import annotations

import getpass
import json
import sys
from typing import Any

import typer

from huitouke.connectors import messages as _messages  # noqa: F401  (registers the texts)
from huitouke.i18n import t
from huitouke.settings import get_settings

connectors_app = typer.Typer(
    help="Shop connectors (Shopify, WooCommerce): pull and webhooks. 店铺连接器:拉取与推送。",
    no_args_is_help=True,
)

_DB = typer.Option(None, "--database-url", help="Store URL. 数据库地址。")
_JSON = typer.Option(False, "--json", help="JSON output. 以 JSON 输出。")


def _lang() -> str:
    return get_settings().lang


def _store(database_url: str | None) -> Any:
    from huitouke.store.db import open_store

    return open_store(database_url)


def _read_secret() -> str:
    if sys.stdin.isatty():
        return getpass.getpass(t("connectors.token_prompt", _lang()))
    return sys.stdin.readline().rstrip("\r\n")


def _echo_json(value: Any) -> None:
    typer.echo(json.dumps(value, ensure_ascii=False, indent=2, default=str))


def register(app: typer.Typer) -> None:
    @connectors_app.command("add")
    def add(
        kind: str = typer.Argument(
            ...,
            help="shopify | woocommerce | youzan | taobao | douyin | pinduoduo | wechat_shop | jd. 平台。",
        ),
        name: str = typer.Argument(..., help="Name, also the orders' source. 名称(即订单来源)。"),
        api_base_url: str = typer.Option(
            ..., "--api-base-url", help="Platform base URL. 平台地址。"
        ),
        webhook_secret: str = typer.Option(
            ..., "--webhook-secret", help="Signs the webhooks. 推送签名密钥。"
        ),
        shop: str | None = typer.Option(None, "--shop", help="Shop domain. 店铺域名。"),
        access_token: str | None = typer.Option(
            None, "--access-token", help="Shopify token (else read from stdin). Shopify 令牌。"
        ),
        consumer_key: str | None = typer.Option(
            None, "--consumer-key", help="WooCommerce key. WooCommerce 密钥 ID。"
        ),
        consumer_secret: str | None = typer.Option(
            None,
            "--consumer-secret",
            help="WooCommerce secret (else read from stdin). WooCommerce 密钥。",
        ),
        overlap_seconds: int = typer.Option(
            300, "--overlap-seconds", help="Pull overlap window. 拉取重叠窗口(秒)。"
        ),
        page_size: int = typer.Option(100, "--page-size", help="Orders per page. 每页订单数。"),
        refresh_token: str | None = typer.Option(
            None,
            "--refresh-token",
            help="Douyin: the shop's refresh token (renews the access token). "
            "抖店:店铺的 refresh_token(用于刷新 access_token)。",
        ),
        auth_code: str | None = typer.Option(
            None,
            "--auth-code",
            help="Douyin: the code the shop's authorisation of your app returned; the first "
            "token pair is asked with token.create (the code is used once, not stored). "
            "抖店:店铺授权返回的 code,用 token.create 换取令牌(只用一次,不保存)。",
        ),
        authorise_self: bool = typer.Option(
            False,
            "--authorise-self",
            help="Douyin, your own self-use app: the first token pair for the shop id in "
            "--shop (token.create, authorization_self). 抖店自用型应用:按 --shop 店铺 ID 换取令牌。",
        ),
        database_url: str | None = _DB,
    ) -> None:
        """Add a connector; credentials are stored encrypted, never shown.
        添加连接器(凭据加密保存,不回显)。"""
        from huitouke.app.connectors import ConnectorIn, add_connector

        created = kind == "douyin" and (auth_code is not None or authorise_self)
        if (
            kind in ("shopify", "youzan", "taobao", "douyin", "pinduoduo", "jd")
            and access_token is None
            and not created
        ):
            access_token = _read_secret()
        if kind in ("woocommerce", "wechat_shop") and consumer_secret is None:
            consumer_secret = _read_secret()
        spec = ConnectorIn(
            kind=kind,
            name=name,
            api_base_url=api_base_url,
            webhook_secret=webhook_secret,
            shop=shop,
            access_token=access_token,
            consumer_key=consumer_key,
            consumer_secret=consumer_secret,
            overlap_seconds=overlap_seconds,
            page_size=page_size,
            refresh_token=refresh_token,
            auth_code=auth_code,
            authorise_self=authorise_self,
        )
        store = _store(database_url)
        try:
            add_connector(store, get_settings(), spec)
        finally:
            store.dispose()
        typer.echo(t("connectors.added", _lang(), name=name, kind=kind))

    @connectors_app.command("list")
    def list_(as_json: bool = _JSON, database_url: str | None = _DB) -> None:
        """List connectors. 列出连接器。"""
        from huitouke.app.connectors import list_connectors

        store = _store(database_url)
        try:
            rows = list_connectors(store)
        finally:
            store.dispose()
        if as_json:
            _echo_json(rows)
            return
        if not rows:
            typer.echo(t("connectors.none", _lang()), err=True)
            return
        typer.echo("name\tkind\tstatus\twatermark\tpulled\tlast_error")
        for r in rows:
            typer.echo(
                f"{r['name']}\t{r['kind']}\t{r['status']}\t{r['watermark'] or '-'}\t"
                f"{r['pulled']}\t{r['last_error'] or '-'}"
            )

    @connectors_app.command("show")
    def show(
        name: str = typer.Argument(..., help="Connector. 连接器。"), database_url: str | None = _DB
    ) -> None:
        """One connector, its cursor and credentials (only as "set"). 查看连接器。"""
        from huitouke.app.connectors import show_connector

        store = _store(database_url)
        try:
            _echo_json(show_connector(store, name))
        finally:
            store.dispose()

    @connectors_app.command("sync")
    def sync_(
        name: str = typer.Argument(..., help="Connector. 连接器。"),
        bulk: bool = typer.Option(
            False, "--bulk", help="Shopify: through a bulk operation (backfill). 批量操作回填。"
        ),
        as_json: bool = _JSON,
        database_url: str | None = _DB,
    ) -> None:
        """Pull the orders updated since the cursor, with progress. 增量拉取订单(显示进度)。"""
        from huitouke.app.connectors import SyncResult, sync

        def progress(r: SyncResult) -> None:
            mark = r.watermark.isoformat() if r.watermark else "-"
            typer.echo(
                t("connectors.progress", _lang(), pulled=r.pulled, pages=r.pages, watermark=mark),
                err=True,
            )

        store = _store(database_url)
        try:
            result = sync(store, get_settings(), name, progress=progress, bulk=bulk)
        finally:
            store.dispose()
        if as_json:
            _echo_json(result.as_dict())
            return
        d = result.as_dict()
        typer.echo(
            t(
                "connectors.synced",
                _lang(),
                name=name,
                pulled=d["pulled"],
                pages=d["pages"],
                watermark=d["watermark"] or "-",
            )
        )

    def _set(name: str, paused: bool, database_url: str | None) -> None:
        from huitouke.app.connectors import set_paused

        store = _store(database_url)
        try:
            row = set_paused(store, name, paused)
        finally:
            store.dispose()
        typer.echo(t("connectors.status_set", _lang(), name=name, status=row["status"]))

    @connectors_app.command("pause")
    def pause(
        name: str = typer.Argument(..., help="Connector. 连接器。"), database_url: str | None = _DB
    ) -> None:
        """Pause pulls and applying webhooks (deliveries are still stored). 暂停。"""
        _set(name, True, database_url)

    @connectors_app.command("resume")
    def resume(
        name: str = typer.Argument(..., help="Connector. 连接器。"), database_url: str | None = _DB
    ) -> None:
        """Resume a paused connector. 恢复。"""
        _set(name, False, database_url)

    @connectors_app.command("remove")
    def remove(
        name: str = typer.Argument(..., help="Connector. 连接器。"), database_url: str | None = _DB
    ) -> None:
        """Remove a connector, its cursor and inbox (its orders stay). 删除连接器(订单保留)。"""
        from huitouke.app.connectors import remove_connector

        store = _store(database_url)
        try:
            remove_connector(store, name)
        finally:
            store.dispose()
        typer.echo(t("connectors.removed", _lang(), name=name))

    @connectors_app.command("inbox")
    def inbox_(
        name: str = typer.Argument(..., help="Connector. 连接器。"),
        failed: bool = typer.Option(False, "--failed", help="Only failed. 只看失败的。"),
        limit: int = typer.Option(100, "--limit", help="At most. 最多条数。"),
        as_json: bool = _JSON,
        database_url: str | None = _DB,
    ) -> None:
        """The webhook inbox, oldest update first. 推送收件箱。"""
        from huitouke.app.connectors import inbox

        store = _store(database_url)
        try:
            rows = inbox(store, name, failed_only=failed, limit=limit)
        finally:
            store.dispose()
        if as_json:
            _echo_json(rows)
            return
        if not rows:
            typer.echo(t("connectors.inbox_empty", _lang()), err=True)
            return
        typer.echo("inbox_id\tobject_id\tupdated_at\ttopic\tstatus\tattempts\treason")
        for r in rows:
            typer.echo(
                f"{r['inbox_id']}\t{r['object_id']}\t{r['updated_at']}\t{r['topic']}\t"
                f"{r['status']}\t{r['attempts']}\t{r['reason'] or '-'}"
            )

    @connectors_app.command("retry")
    def retry_(
        name: str = typer.Argument(..., help="Connector. 连接器。"), database_url: str | None = _DB
    ) -> None:
        """Apply the failed and pending deliveries again. 重试失败与待处理的推送。"""
        from huitouke.app.connectors import retry

        store = _store(database_url)
        try:
            counts = retry(store, get_settings(), name)
        finally:
            store.dispose()
        n = sum(counts.values())
        typer.echo(
            t(
                "connectors.retried",
                _lang(),
                name=name,
                n=n,
                applied=counts["applied"],
                failed=counts["failed"],
            )
        )

    app.add_typer(connectors_app, name="connectors")
