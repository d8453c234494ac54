"""Messaging commands: `huitouke worker`, `outbox …`, `template preview`, `sms-count`, unsubscribes."""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import typer

from huitouke.errors import InputError


def _echo_json(data: Any) -> None:
    typer.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))


def _store(database_url: str | None) -> Any:
    from huitouke.store.db import open_store

    return open_store(database_url)


def mask_recipient(value: str | None) -> str | None:
    """138****5678 for phones, w***@example.cn for addresses."""
    from huitouke.messaging.templates import mask_phone

    if not value:
        return value
    if "@" in value:
        user, _, domain = value.partition("@")
        return f"{user[:1]}***@{domain}"
    return mask_phone(value)


def parse_rates(values: list[str] | None, channels: list[str]) -> dict[str, float]:
    """``["20"]`` → that rate for every channel; ``["sms=10", "webhook=500"]`` → per channel."""
    out: dict[str, float] = {}
    for v in values or []:
        name, sep, num = v.rpartition("=")
        try:
            rate = float(num)
        except ValueError as exc:
            raise InputError(
                f"--rate {v!r}: expected N or CHANNEL=N (messages per second)",
                code="input.bad_rate",
                message_zh=f"--rate {v!r}:格式应为 N 或 渠道=N(每秒条数)",
            ) from exc
        if rate <= 0:
            raise InputError(
                f"--rate {v!r}: must be > 0",
                code="input.bad_rate",
                message_zh=f"--rate {v!r}:必须大于 0",
            )
        if sep:
            out[name] = rate
        else:
            for ch in channels:
                out.setdefault(ch, rate)
    return out


def _load_template(path: Path) -> Any:
    import yaml

    from huitouke.messaging.templates import MessageTemplate

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise InputError(
            f"{path}: cannot read template: {exc}",
            code="template.invalid",
            message_zh=f"{path}:无法读取模板:{exc}",
        ) from exc
    if not isinstance(data, dict):
        raise InputError(
            f"{path}: a template is a mapping",
            code="template.invalid",
            message_zh=f"{path}:模板应为映射",
        )
    return MessageTemplate.from_dict(data, source=str(path))


def register(app: typer.Typer) -> None:
    @app.command("worker")
    def worker_cmd(
        once: bool = typer.Option(
            False, "--once", help="Send what is due, then exit. 发送到期消息后退出。"
        ),
        channel: list[str] | None = typer.Option(
            None,
            "--channel",
            "-c",
            help="Only these channels (repeatable). 只处理这些渠道(可重复)。",
        ),
        rate: list[str] | None = typer.Option(
            None,
            "--rate",
            help="Messages/s: N for every channel, or CHANNEL=N (repeatable). 每秒发送上限。",
        ),
        batch: int = typer.Option(500, "--batch", help="Rows claimed per round. 每轮领取条数。"),
        concurrency: int = typer.Option(16, "--concurrency", help="Parallel sends. 并发发送数。"),
        lease_seconds: float = typer.Option(
            120.0, "--lease-seconds", help="Claim lease. 领取租约秒数。"
        ),
        max_attempts: int = typer.Option(
            8, "--max-attempts", help="Attempts before dead letter. 进入死信前的尝试次数。"
        ),
        idle: float = typer.Option(
            1.0, "--idle", help="Seconds to wait when nothing is due. 空闲等待秒数。"
        ),
        database_url: str | None = typer.Option(
            None, "--database-url", help="Store URL. 数据库地址。"
        ),
    ) -> None:
        """Run the dispatcher: send due outbox messages; SIGTERM stops after the round in flight.
        运行发送进程:发送到期的发件箱消息;收到 SIGTERM 时处理完当前一轮后退出。"""
        from huitouke.messaging.bootstrap import build_channels, make_dispatcher
        from huitouke.settings import get_settings

        logging.basicConfig(
            level=logging.INFO,
            stream=sys.stderr,
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        )
        from huitouke.store.stored_settings import effective_settings

        store = _store(database_url)
        settings = effective_settings(store, get_settings())
        channels = build_channels(settings, channel or None)
        if not channels:
            raise InputError(
                "no channel is configured (set e.g. HUITOUKE_WEBHOOK_URL or HUITOUKE_SMTP_HOST)",
                code="settings.channel_missing",
                message_zh="没有配置任何渠道(例如设置 HUITOUKE_WEBHOOK_URL 或 HUITOUKE_SMTP_HOST)",
            )
        d = make_dispatcher(
            settings,
            store,
            channels=channels,
            rate_limits=parse_rates(rate, list(channels)),
            batch_size=batch,
            concurrency=concurrency,
            lease_seconds=lease_seconds,
            max_attempts=max_attempts,
        )
        stop = threading.Event()

        def on_signal(signum: int, _frame: Any) -> None:
            logging.getLogger("huitouke.worker").info(
                "signal %d: finishing the round in flight", signum
            )
            stop.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        logging.getLogger("huitouke.worker").info(
            "worker %s on %s: channels %s", d.worker_id, store.dialect, sorted(channels)
        )
        try:
            stats = d.drain() if once else d.run_forever(stop, idle_sleep=idle)
        finally:
            d.close()
            store.dispose()
        _echo_json(stats.to_dict())

    outbox_app = typer.Typer(
        help="The outbox: list, retry, dead letters. 发件箱。", no_args_is_help=True
    )

    @outbox_app.command("list")
    def outbox_list(
        status: list[str] | None = typer.Option(
            None, "--status", help="queued|sending|sent|failed|dead|suppressed"
        ),
        journey: str | None = typer.Option(None, "--journey", help="Journey id. 旅程。"),
        customer: str | None = typer.Option(None, "--customer", help="Customer id. 顾客。"),
        channel_: str | None = typer.Option(None, "--channel", help="Channel. 渠道。"),
        limit: int = typer.Option(50, "--limit", help="Rows. 行数。"),
        unmask: bool = typer.Option(
            False, "--unmask", help="Show phone numbers and addresses in full. 显示完整号码与地址。"
        ),
        database_url: str | None = typer.Option(
            None, "--database-url", help="Store URL. 数据库地址。"
        ),
    ) -> None:
        """List outbox messages as JSON, newest first; recipients masked.
        列出发件箱消息(JSON),收件人打码。"""
        from huitouke.messaging.outbox import list_messages

        store = _store(database_url)
        with store.connect() as conn:
            rows = list_messages(
                conn,
                status=status or None,
                customer_id=customer,
                journey_id=journey,
                channel=channel_,
                limit=limit,
            )
        if not unmask:
            for r in rows:
                r["recipient"] = mask_recipient(r.get("recipient"))
        _echo_json(rows)

    @outbox_app.command("dead")
    def outbox_dead(
        limit: int = typer.Option(50, "--limit", help="Rows. 行数。"),
        database_url: str | None = typer.Option(
            None, "--database-url", help="Store URL. 数据库地址。"
        ),
    ) -> None:
        """Dead letters with their reasons. 死信及原因。"""
        from huitouke.messaging.outbox import list_messages

        store = _store(database_url)
        with store.connect() as conn:
            rows = list_messages(conn, status="dead", limit=limit)
        _echo_json(
            [
                {
                    k: r[k]
                    for k in (
                        "message_id",
                        "journey_id",
                        "customer_id",
                        "channel",
                        "attempts",
                        "reason_code",
                        "last_error",
                        "updated_at",
                    )
                }
                for r in rows
            ]
        )

    @outbox_app.command("retry")
    def outbox_retry(
        message_ids: list[str] | None = typer.Argument(None, help="Message ids. 消息编号。"),
        all_dead: bool = typer.Option(False, "--all-dead", help="Every dead letter. 全部死信。"),
        database_url: str | None = typer.Option(
            None, "--database-url", help="Store URL. 数据库地址。"
        ),
    ) -> None:
        """Queue dead or failed messages again (contact rules still apply). 重新排队(仍受联系规则约束)。"""
        from huitouke.messaging.outbox import retry_messages

        store = _store(database_url)
        with store.begin() as conn:
            n = retry_messages(
                conn, now=datetime.now(UTC), message_ids=message_ids or (), all_dead=all_dead
            )
        _echo_json({"requeued": n})

    @outbox_app.command("stats")
    def outbox_stats(
        journey: str | None = typer.Option(None, "--journey", help="Journey id. 旅程。"),
        database_url: str | None = typer.Option(
            None, "--database-url", help="Store URL. 数据库地址。"
        ),
    ) -> None:
        """Messages per journey and status, and the SMS cost so far. 各旅程消息数与短信费用。"""
        from huitouke.messaging.outbox import campaign_cost, status_counts
        from huitouke.settings import get_settings

        s = get_settings()
        store = _store(database_url)
        with store.connect() as conn:
            counts = status_counts(conn, journey_id=journey)
            out = {
                jid: {
                    "statuses": st,
                    "sms_sent": campaign_cost(
                        conn,
                        price_per_segment=s.sms_price_per_segment,
                        currency=s.currency,
                        journey_id=jid,
                    ).to_dict(),
                    "sms_planned": campaign_cost(
                        conn,
                        price_per_segment=s.sms_price_per_segment,
                        currency=s.currency,
                        journey_id=jid,
                        statuses=("queued", "failed", "sending"),
                    ).to_dict(),
                }
                for jid, st in counts.items()
            }
        _echo_json(out)

    app.add_typer(outbox_app, name="outbox")

    template_app = typer.Typer(help="Message templates. 消息模板。", no_args_is_help=True)

    @template_app.command("preview")
    def template_preview(
        file: Path = typer.Argument(
            ..., help="Template YAML (name, channel, kind, body, subject, html). 模板文件。"
        ),
        customer: str = typer.Option(..., "--customer", help="Customer id. 顾客编号。"),
        lang: str | None = typer.Option(None, "--lang", help="zh or en. 语言。"),
        coupon: str | None = typer.Option(
            None, "--coupon-json", help="Coupon fields as JSON. 优惠券字段(JSON)。"
        ),
        recs: str | None = typer.Option(
            None, "--recommendations-json", help="Products as a JSON list. 推荐商品(JSON 列表)。"
        ),
        database_url: str | None = typer.Option(
            None, "--database-url", help="Store URL. 数据库地址。"
        ),
    ) -> None:
        """Render a template for one customer (text, SMS segments and cost). 为一位顾客预览模板。"""
        from huitouke.messaging.preview import preview
        from huitouke.settings import get_settings

        def parse(name: str, value: str | None) -> Any:
            if value is None:
                return None
            try:
                return json.loads(value)
            except ValueError as exc:
                raise InputError(
                    f"{name}: not valid JSON: {exc}",
                    code="input.bad_json",
                    message_zh=f"{name}:不是有效的 JSON",
                ) from exc

        tpl = _load_template(file)
        store = _store(database_url)
        with store.connect() as conn:
            _, info = preview(
                conn,
                tpl,
                customer,
                get_settings(),
                lang=lang,
                coupon=parse("--coupon-json", coupon),
                recommendations=parse("--recommendations-json", recs) or (),
            )
        _echo_json(info)

    app.add_typer(template_app, name="template")

    @app.command("sms-count")
    def sms_count_cmd(
        text: str = typer.Argument(..., help="The SMS body. 短信正文。"),
        sign: str | None = typer.Option(
            None, "--sign", help="Signature 【店名】 (default from settings). 签名。"
        ),
        transactional: bool = typer.Option(
            False, "--transactional", help="No unsubscribe footer. 服务通知(无退订尾注)。"
        ),
        messages: int = typer.Option(
            1, "--messages", "-n", help="Recipients, for the cost. 发送人数(估算费用)。"
        ),
        lang: str | None = typer.Option(
            None, "--lang", help="zh or en: the footer's language (default: setting). 尾注语言。"
        ),
    ) -> None:
        """Count SMS length, segments and cost (signature and 回T退订 included). 计算短信字数、条数与费用。"""
        from huitouke.messaging.sms import compose_sms, count_sms, estimate_cost
        from huitouke.settings import get_settings

        s = get_settings()
        full = compose_sms(
            text,
            sign_name=s.sms_sign_name if sign is None else sign,
            footer=s.sms_footer if (lang or s.lang) == "zh" else s.sms_footer_en,
            marketing=not transactional,
        )
        c = count_sms(full)
        _echo_json(
            {
                "text": full,
                **c.to_dict(),
                "messages": messages,
                "price_per_segment": str(s.sms_price_per_segment),
                "cost": str(estimate_cost(c.segments * messages, Decimal(s.sms_price_per_segment))),
                "currency": s.currency,
            }
        )

    @app.command("unsubscribe")
    def unsubscribe_cmd(
        customer: str = typer.Argument(..., help="Customer id. 顾客编号。"),
        channel_: str = typer.Option(
            "*", "--channel", help="Channel, or * for all. 渠道,* 表示全部。"
        ),
        source: str = typer.Option("cli", "--source", help="Where the request came from. 来源。"),
        database_url: str | None = typer.Option(
            None, "--database-url", help="Store URL. 数据库地址。"
        ),
    ) -> None:
        """Record an unsubscribe (it wins over every consent flag). 记录退订(优先于任何同意标记)。"""
        from huitouke.messaging.consent import unsubscribe

        store = _store(database_url)
        with store.begin() as conn:
            unsubscribe(conn, customer, channel_, source=source, at=datetime.now(UTC))
        _echo_json({"customer_id": customer, "channel": channel_, "unsubscribed": True})

    @app.command("unsubscribe-link")
    def unsubscribe_link_cmd(
        customer: str = typer.Argument(..., help="Customer id. 顾客编号。"),
        channel_: str = typer.Option("email", "--channel", help="Channel the link leaves. 渠道。"),
    ) -> None:
        """Print a customer's signed unsubscribe link. 输出顾客的签名退订链接。"""
        from huitouke.messaging.tokens import make_unsubscribe_token, unsubscribe_url
        from huitouke.settings import get_settings

        s = get_settings()
        typer.echo(
            unsubscribe_url(
                s.public_base_url,
                make_unsubscribe_token(customer, channel_, s.secret_key.get_secret_value()),
            )
        )

    @app.command("inbound-token")
    def inbound_token_cmd() -> None:
        """Print the token SMS providers must add (?token=) to callback URLs. 输出回调令牌。"""
        from huitouke.messaging.bootstrap import inbound_token
        from huitouke.settings import get_settings

        typer.echo(inbound_token(get_settings()))
