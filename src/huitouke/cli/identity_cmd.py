"""One customer across platforms: `huitouke identity index|matches|merge|unmerge|show|history`.

``index`` hashes every customer's normalised phone (E.164, read in HUITOUKE_PHONE_REGION),
e-mail and union id; ``matches`` lists accounts of different persons that share one
(``--apply`` merges each group into its earliest created account); ``merge`` and
``unmerge`` change one person by hand, with a reason. Every change is kept in the history.
The analytics, segments and journeys read a merged person as one customer.
"""

from __future__ import annotations

import getpass
import json
from datetime import UTC, datetime
from typing import Any

import typer

from huitouke.cli.stores import read, write
from huitouke.i18n import register as register_texts
from huitouke.i18n import t
from huitouke.settings import get_settings

identity_app = typer.Typer(
    help="One customer across platforms: match, merge, unmerge. 跨平台识别同一顾客:匹配、合并、拆分。",
    no_args_is_help=True,
)

register_texts(
    {
        "cli.identity.indexed": {
            "en": "indexed {accounts} customers: {phone} phones, {email} e-mail addresses, "
            "{union_id} union ids ({phone_unreadable} phone numbers not valid in {region})",
            "zh": "已索引 {accounts} 位顾客:手机号 {phone} 个,邮箱 {email} 个,union id "
            "{union_id} 个({phone_unreadable} 个手机号在 {region} 下无效)",
        },
        "cli.identity.no_matches": {
            "en": "no accounts of different persons share a key (run `huitouke identity index` "
            "after new customers arrive)",
            "zh": "没有共用匹配键的不同顾客(新顾客到来后请运行 `huitouke identity index`)",
        },
        "cli.identity.match": {
            "en": "{ids}  (shared: {kinds}; primary {primary})",
            "zh": "{ids}  (共用:{kinds};主账户 {primary})",
        },
        "cli.identity.applied": {
            "en": "merged {groups} groups ({accounts} accounts moved)",
            "zh": "已合并 {groups} 组(移动 {accounts} 个账户)",
        },
        "cli.identity.merged": {
            "en": "{moved} now belong to person {person}",
            "zh": "{moved} 已归入 {person}",
        },
        "cli.identity.unmerged": {
            "en": "{customer} is its own person again (the others: person {person})",
            "zh": "{customer} 已拆分为独立的人(其余账户:{person})",
        },
    }
)

_DB = typer.Option(None, "--database-url", help="Store URL. 数据库地址。")
_REASON = typer.Option(..., "--reason", help="Why (kept in the history). 原因(记入历史)。")


def _lang() -> str:
    return get_settings().lang


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except OSError:
        return "cli"


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, indent=2, default=str)


def register(app: typer.Typer) -> None:
    @identity_app.command("index")
    def index_cmd(database_url: str | None = _DB) -> None:
        """(Re)build every customer's hashed matching keys. 重建所有顾客的匹配键(哈希)。"""
        from huitouke.identity.keys import identity_secret
        from huitouke.identity.service import index_keys

        settings = get_settings()
        secret = identity_secret(settings.secret_key.get_secret_value())
        counts = write(
            database_url,
            lambda conn: index_keys(
                conn, secret=secret, region=settings.phone_region, now=datetime.now(UTC)
            ),
        )
        typer.echo(t("cli.identity.indexed", _lang(), region=settings.phone_region, **counts))

    @identity_app.command("matches")
    def matches_cmd(
        apply: bool = typer.Option(
            False, "--apply", help="Merge every group found. 合并找到的每一组。"
        ),
        reason: str = typer.Option(
            "shared key", "--reason", help="Reason recorded with --apply. 合并原因。"
        ),
        as_json: bool = typer.Option(False, "--json", help="JSON output. 以 JSON 输出。"),
        database_url: str | None = _DB,
    ) -> None:
        """Accounts of different persons sharing a phone, e-mail or union id.
        列出共用手机号、邮箱或 union id 的不同顾客账户。"""
        from huitouke.identity.service import matches, merge

        def find_and_apply(conn: Any) -> tuple[list[Any], int]:
            found = matches(conn)
            moved = 0
            if apply:
                now = datetime.now(UTC)
                for m in found:
                    rule = m.kinds[0] if len(m.kinds) == 1 else "manual"
                    done = merge(
                        conn, list(m.customer_ids), actor=_actor(), reason=reason, now=now,
                        rule=rule,
                    )  # fmt: skip
                    moved += len(done["merged"])
            return found, moved

        found, moved = write(database_url, find_and_apply)
        lang = _lang()
        if as_json:
            typer.echo(_json([m.to_dict() for m in found]))
        elif not found:
            typer.echo(t("cli.identity.no_matches", lang), err=True)
        else:
            for m in found:
                typer.echo(
                    t(
                        "cli.identity.match",
                        lang,
                        ids=", ".join(m.customer_ids),
                        kinds=", ".join(m.kinds),
                        primary=m.primary,
                    )
                )
        if apply and found:
            typer.echo(t("cli.identity.applied", lang, groups=len(found), accounts=moved))

    @identity_app.command("merge")
    def merge_cmd(
        customer_ids: list[str] = typer.Argument(
            ...,
            help="Two or more customer ids; the first one's person absorbs the others. "
            "两个或以上顾客编号;并入第一个所属的人。",
        ),
        reason: str = _REASON,
        database_url: str | None = _DB,
    ) -> None:
        """Make these accounts one person. 将这些账户合并为同一个人。"""
        from huitouke.identity.service import merge

        done = write(
            database_url,
            lambda conn: merge(
                conn, customer_ids, actor=_actor(), reason=reason, now=datetime.now(UTC)
            ),
        )
        typer.echo(
            t(
                "cli.identity.merged",
                _lang(),
                moved=", ".join(done["merged"]),
                person=done["person_id"],
            )
        )

    @identity_app.command("unmerge")
    def unmerge_cmd(
        customer_id: str = typer.Argument(..., help="Customer id. 顾客编号。"),
        reason: str = _REASON,
        database_url: str | None = _DB,
    ) -> None:
        """Take an account out of its person. 将账户从所属的人中拆分出来。"""
        from huitouke.identity.service import unmerge

        done = write(
            database_url,
            lambda conn: unmerge(
                conn, customer_id, actor=_actor(), reason=reason, now=datetime.now(UTC)
            ),
        )
        typer.echo(
            t("cli.identity.unmerged", _lang(), customer=customer_id, person=done["person_id"])
        )

    @identity_app.command("show")
    def show_cmd(
        customer_id: str = typer.Argument(..., help="Customer id. 顾客编号。"),
        database_url: str | None = _DB,
    ) -> None:
        """The person an account belongs to, its accounts and their orders per source (JSON).
        账户所属的人、各账户及各来源订单(JSON)。"""
        from huitouke.identity.service import person

        typer.echo(_json(read(database_url, lambda conn: person(conn, customer_id))))

    @identity_app.command("history")
    def history_cmd(
        customer_id: str | None = typer.Argument(None, help="Customer id. 顾客编号。"),
        limit: int = typer.Option(100, "--limit", min=1, help="At most. 最多条数。"),
        database_url: str | None = _DB,
    ) -> None:
        """Merges and unmerges, newest first (JSON). 合并与拆分记录(JSON,新的在前)。"""
        from huitouke.identity.service import history

        typer.echo(_json(read(database_url, lambda conn: history(conn, customer_id, limit=limit))))

    app.add_typer(identity_app, name="identity")
