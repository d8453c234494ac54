"""`huitouke loyalty …`: the loyalty operations for scripts and operators.

A thin layer over :class:`huitouke.loyalty.LoyaltyService`: each command is one unit of
work on the store, prints its JSON result on stdout, and is idempotent by the key it is
given (``--key``), exactly like the REST API. The program comes from ``--program FILE`` or,
without it, from the program stored in the database (``huitouke loyalty program save``).
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer

from huitouke.errors import HuitoukeError, InputError, NotFoundError
from huitouke.i18n import t

DEFAULT_PROGRAM_ID = "default"

loyalty_app = typer.Typer(
    help="Loyalty ledger: points, coupons, stamps, stored value… 会员忠诚度账本。",
    no_args_is_help=True,
)
program_app = typer.Typer(help="Loyalty programs. 会员方案。", no_args_is_help=True)
customer_app = typer.Typer(help="A customer's loyalty. 顾客的会员权益。", no_args_is_help=True)
points_app = typer.Typer(help="Points. 积分。", no_args_is_help=True)
coupon_app = typer.Typer(help="Coupons. 优惠券。", no_args_is_help=True)
stamps_app = typer.Typer(
    help="Stamps without an order: visits and grants. 到店集章与补章。", no_args_is_help=True
)
sv_app = typer.Typer(help="Stored value. 储值。", no_args_is_help=True)
membership_app = typer.Typer(help="Paid membership. 付费会员。", no_args_is_help=True)
referral_app = typer.Typer(help="Referrals. 转介绍。", no_args_is_help=True)
groupbuy_app = typer.Typer(help="Group buy. 拼团。", no_args_is_help=True)
order_app = typer.Typer(help="Order events. 订单事件。", no_args_is_help=True)

PROGRAM_OPT = typer.Option(
    None, "--program", help="Program file (YAML/JSON); default: the stored program. 会员方案文件。"
)
DB_OPT = typer.Option(None, "--database-url", help="Store URL. 数据库地址。")
KEY_OPT = typer.Option(
    ..., "--key", help="Idempotency key: re-running with the same key changes nothing. 幂等键。"
)


def _out(data: Any) -> None:
    typer.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))


def _lang() -> str:
    from huitouke.settings import get_settings

    return get_settings().lang


def _store(database_url: str | None) -> Any:
    from huitouke.store.db import open_store

    return open_store(database_url)


def _as_of(value: str | None) -> datetime:
    if value is None:
        return datetime.now(UTC)
    try:
        dt = datetime.fromisoformat(value)
    except ValueError as exc:
        raise InputError(
            f"--as-of: not an ISO date/time: {value!r}",
            code="input.invalid",
            details={"field": "as_of"},
        ) from exc
    if dt.tzinfo is None:
        from huitouke.settings import get_settings

        dt = dt.replace(tzinfo=get_settings().zone)
    return dt


def _actor() -> str:
    """Who runs a correction from the terminal, for the corrections' audit trail."""
    import getpass

    try:
        return f"cli:{getpass.getuser()}"
    except (OSError, KeyError):
        return "cli"


def _service(program: Path | None, database_url: str | None) -> Any:
    """(bound service, store) for the chosen program."""
    from huitouke.loyalty import LoyaltyService, get_program, load_program
    from huitouke.settings import get_settings

    store = _store(database_url)
    if program is not None:
        prog = load_program(program)
    else:
        with store.connect() as conn:
            stored = get_program(conn, DEFAULT_PROGRAM_ID)
        if stored is None:
            raise NotFoundError(
                t("loyalty.no_program", "en"),
                code="loyalty.no_program",
                message_zh=t("loyalty.no_program", "zh"),
            )
        prog = stored
    return LoyaltyService(prog.in_store_zone(get_settings().timezone)).bound(store)


# -- program -----------------------------------------------------------------------------
@program_app.command("validate")
def program_validate(file: Path = typer.Argument(..., help="Program file. 会员方案文件。")) -> None:
    """Validate a program file; errors name the field. 校验会员方案文件。"""
    from huitouke.loyalty import load_program
    from huitouke.settings import get_settings

    prog = load_program(file).in_store_zone(get_settings().timezone)
    typer.echo(t("loyalty.program_ok", _lang(), program=prog.id), err=True)
    _out({"id": prog.id, "valid": True})


@program_app.command("show")
def program_show(program: Path | None = PROGRAM_OPT, database_url: str | None = DB_OPT) -> None:
    """Show the effective program as JSON. 查看会员方案。"""
    svc = _service(program, database_url)
    _out(svc.service.program.to_document())


@program_app.command("save")
def program_save(
    file: Path = typer.Argument(..., help="Program file. 会员方案文件。"),
    program_id: str = typer.Option(
        DEFAULT_PROGRAM_ID,
        "--id",
        help="Store under this id (the service runs 'default'). 保存的方案编号。",
    ),
    database_url: str | None = DB_OPT,
) -> None:
    """Store a program in the database (versioned). 保存会员方案到数据库。"""
    from huitouke.loyalty import load_program, save_program
    from huitouke.settings import get_settings

    prog = load_program(file).model_copy(update={"id": program_id})
    prog = prog.in_store_zone(get_settings().timezone)
    store = _store(database_url)
    with store.begin() as conn:
        version = save_program(conn, prog, now=datetime.now(UTC))
    typer.echo(t("loyalty.program_saved", _lang(), program=program_id, version=version), err=True)
    _out({"id": program_id, "version": version})


# -- customer ----------------------------------------------------------------------------
@customer_app.command("show")
def customer_show(
    customer_id: str,
    as_of: str | None = typer.Option(None, "--as-of", help="ISO date/time. 截止时间。"),
    person: bool = typer.Option(
        False,
        "--person",
        help="The person's standing: every merged account as one, each account's view "
        "kept. 同一个人(合并账户)的合计权益。",
    ),
    program: Path | None = PROGRAM_OPT,
    database_url: str | None = DB_OPT,
) -> None:
    """Points, tier, stamp cards, stored value, coupons, membership. 顾客权益一览。"""
    svc = _service(program, database_url)
    with svc.store.connect() as conn:
        if person:
            _out(svc.service.person_loyalty(conn, customer_id, as_of=_as_of(as_of)))
            return
        data = svc.service.customer_loyalty(conn, customer_id, as_of=_as_of(as_of))
        data["balances"] = svc.service.balances(conn, customer_id)
    _out(data)


@customer_app.command("history")
def customer_history(
    customer_id: str,
    limit: int = typer.Option(50, "--limit"),
    program: Path | None = PROGRAM_OPT,
    database_url: str | None = DB_OPT,
) -> None:
    """The customer's latest ledger entries. 账本流水。"""
    svc = _service(program, database_url)
    with svc.store.connect() as conn:
        _out(svc.service.history(conn, customer_id, limit=limit))


@customer_app.command("preferences")
def customer_preferences(
    customer_id: str,
    pairs: list[str] = typer.Argument(..., help="key=value pairs, e.g. size=L. 偏好,如 size=L。"),
    program: Path | None = PROGRAM_OPT,
    database_url: str | None = DB_OPT,
) -> None:
    """Remember preferences (size, taste…). 记录顾客偏好。"""
    prefs = {}
    for p in pairs:
        if "=" not in p:
            raise InputError(
                f"{p!r}: expected key=value", code="input.invalid", details={"field": "preferences"}
            )
        k, v = p.split("=", 1)
        prefs[k] = v
    _out(_service(program, database_url).set_preferences(customer_id, prefs))


# -- orders ------------------------------------------------------------------------------
def _record(svc: Any, events: list[Any]) -> list[dict[str, Any]]:
    """Order events recorded as every door records them: the orders rows and the ledger in
    one unit of work (:func:`huitouke.app.orders.record_order_events`)."""
    from huitouke.app.orders import key_writer, record_order_events
    from huitouke.settings import get_settings

    keys = key_writer(get_settings())
    with svc.store.begin() as conn:
        return record_order_events(conn, events, loyalty=svc.service, keys=keys).results


@order_app.command("apply")
def order_apply(
    order_id: str = typer.Option(..., "--order-id"),
    customer_id: str = typer.Option(..., "--customer"),
    amount: str = typer.Option(..., "--amount"),
    ordered_at: str | None = typer.Option(
        None, "--at", help="ISO date/time (default now). 下单时间。"
    ),
    status: str = typer.Option(
        "paid", "--status", help="paid|partially_refunded|refunded|cancelled"
    ),
    refunded: str | None = typer.Option(
        None, "--refunded", help="Default: the amount when refunded, else 0. 退款金额。"
    ),
    currency: str = typer.Option("", "--currency"),
    channel: str | None = typer.Option(None, "--channel"),
    source: str | None = typer.Option(
        None,
        "--source",
        help="The order id's namespace: the shop, platform or channel (default: default). "
        "订单号所属来源(店铺/平台/渠道)。",
    ),
    program: Path | None = PROGRAM_OPT,
    database_url: str | None = DB_OPT,
) -> None:
    """Record one order event: the order and its loyalty effects, as POST /v1/orders does
    (idempotent per order and state). 记录一个订单事件(订单与积分等,同 POST /v1/orders)。"""
    from huitouke.app.orders import order_event

    svc = _service(program, database_url)
    raw = {
        "source": source,
        "order_id": order_id,
        "customer_id": customer_id,
        "ordered_at": _as_of(ordered_at),
        "amount": amount,
        "currency": currency,
        "status": status,
        "refunded_amount": refunded,
        "channel": channel,
    }
    _out(_record(svc, [order_event(raw, currency=svc.service.program.currency)])[0])


@order_app.command("apply-file")
def order_apply_file(
    file: Path = typer.Argument(
        ..., help="JSON lines, one order event per line. 每行一个订单 JSON。"
    ),
    program: Path | None = PROGRAM_OPT,
    database_url: str | None = DB_OPT,
    batch: int = typer.Option(
        500, "--batch", min=1, help="Events per unit of work. 每个事务的事件数。"
    ),
) -> None:
    """Record a stream of order events, in batches of --batch (one unit of work each), as
    POST /v1/orders/batch does. 批量记录订单事件(每批一个事务)。"""
    from huitouke.app.orders import order_event

    svc = _service(program, database_url)
    currency = svc.service.program.currency
    applied = replayed = 0
    events: list[tuple[int, Any]] = []

    def where(exc: HuitoukeError, lineno: int) -> HuitoukeError:
        exc.details.update({"file": str(file), "line": lineno})
        return exc

    def flush() -> None:
        nonlocal applied, replayed
        if not events:
            return
        try:
            results = _record(svc, [ev for _, ev in events])
        except HuitoukeError as exc:
            index = exc.details.get("index")
            if isinstance(index, int) and 0 <= index < len(events):
                where(exc, events[index][0])
            raise
        replayed += sum(bool(r.get("replayed")) for r in results)
        applied += len(results)
        events.clear()

    with file.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                raw = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(
                    f"{file}:{lineno}: not JSON: {exc.msg}",
                    code="input.invalid",
                    details={"file": str(file), "line": lineno},
                ) from exc
            if not isinstance(raw, dict):
                raise InputError(
                    f"{file}:{lineno}: not a JSON object",
                    code="input.invalid",
                    details={"file": str(file), "line": lineno},
                )
            try:
                events.append((lineno, order_event(raw, currency=currency)))
            except InputError as exc:
                raise where(exc, lineno) from None
            if len(events) >= batch:
                flush()
    flush()
    _out({"events": applied, "replayed": replayed})


# -- the program at a glance ---------------------------------------------------------------
@loyalty_app.command("summary")
def loyalty_summary(
    start: str | None = typer.Option(None, "--start", help="Default: --end minus 30 days."),
    end: str | None = typer.Option(None, "--end", help="Exclusive; default: --as-of."),
    as_of: str | None = typer.Option(None, "--as-of", help="Liabilities at; default: now."),
    program: Path | None = PROGRAM_OPT,
    database_url: str | None = DB_OPT,
) -> None:
    """Liabilities, redemption rates of a period, members per tier (as GET
    /v1/loyalty/summary). 负债、期间核销率与等级分布。"""
    from datetime import timedelta

    svc = _service(program, database_url)
    now = _as_of(as_of)
    hi = _as_of(end) if end is not None else now
    lo = _as_of(start) if start is not None else hi - timedelta(days=30)
    with svc.store.connect() as conn:
        _out(svc.service.summary(conn, as_of=now, start=lo, end=hi))


@loyalty_app.command("corrections")
def loyalty_corrections(
    customer_id: str | None = typer.Option(None, "--customer"),
    limit: int = typer.Option(50, "--limit", min=1, max=1000),
    program: Path | None = PROGRAM_OPT,
    database_url: str | None = DB_OPT,
) -> None:
    """The corrections' audit trail, newest first. 账户调整审计记录。"""
    svc = _service(program, database_url)
    with svc.store.connect() as conn:
        _out(svc.service.corrections(conn, customer_id=customer_id, limit=limit))


# -- points ------------------------------------------------------------------------------
@points_app.command("adjust")
def points_adjust(
    customer_id: str,
    delta: str = typer.Argument(..., help="+N credits, -N debits. 正数加分,负数扣分。"),
    reason: str = typer.Option(..., "--reason"),
    key: str = KEY_OPT,
    program: Path | None = PROGRAM_OPT,
    database_url: str | None = DB_OPT,
) -> None:
    """Adjust points (credit or FIFO debit; audited). 调整积分(记入调整审计)。"""
    _out(
        _service(program, database_url).adjust_points(
            customer_id, delta, reason=reason, idempotency_key=key, actor=_actor()
        )
    )


@points_app.command("redeem")
def points_redeem(
    customer_id: str,
    points: str | None = typer.Argument(None),
    reward: str | None = typer.Option(None, "--reward", help="Catalogue reward id. 兑换项。"),
    key: str = KEY_OPT,
    program: Path | None = PROGRAM_OPT,
    database_url: str | None = DB_OPT,
) -> None:
    """Redeem points for a reward coupon or a cash discount. 积分兑换。"""
    _out(
        _service(program, database_url).redeem_points(
            customer_id, points, reward=reward, idempotency_key=key
        )
    )


@points_app.command("expiring")
def points_expiring(
    within_days: int = typer.Option(30, "--within-days"),
    customer_id: str | None = typer.Option(None, "--customer"),
    as_of: str | None = typer.Option(None, "--as-of"),
    program: Path | None = PROGRAM_OPT,
    database_url: str | None = DB_OPT,
) -> None:
    """Points, stamps and coupons expiring soon. 即将过期。"""
    svc = _service(program, database_url)
    with svc.store.connect() as conn:
        _out(svc.service.expiring_soon(conn, customer_id, within_days, _as_of(as_of)))


# -- stamps ------------------------------------------------------------------------------
@stamps_app.command("visit")
def stamps_visit(
    customer_id: str,
    card_id: str,
    visited_at: str | None = typer.Option(
        None, "--at", help="ISO date/time of the visit (default now). 到店时间。"
    ),
    key: str = KEY_OPT,
    program: Path | None = PROGRAM_OPT,
    database_url: str | None = DB_OPT,
) -> None:
    """Record a visit: one stamp per local day on a per-visit card. 记录到店(每天最多一枚章)。"""
    _out(
        _service(program, database_url).add_stamps(
            customer_id,
            card_id,
            idempotency_key=key,
            visited_at=_as_of(visited_at) if visited_at is not None else None,
        )
    )


@stamps_app.command("grant")
def stamps_grant(
    customer_id: str,
    card_id: str,
    stamps: int = typer.Argument(..., min=1, max=1000, help="How many stamps. 补章数量。"),
    reason: str = typer.Option(..., "--reason", help="Why (kept in the ledger). 原因。"),
    at: str | None = typer.Option(
        None, "--at", help="ISO date/time the stamps count from (default now). 起算时间。"
    ),
    key: str = KEY_OPT,
    program: Path | None = PROGRAM_OPT,
    database_url: str | None = DB_OPT,
) -> None:
    """Grant stamps on a card (operator correction; the ladder pays as usual). 人工补章。"""
    _out(
        _service(program, database_url).add_stamps(
            customer_id,
            card_id,
            idempotency_key=key,
            stamps=stamps,
            reason=reason,
            visited_at=_as_of(at) if at is not None else None,
        )
    )


# -- coupons -----------------------------------------------------------------------------
@coupon_app.command("issue")
def coupon_issue(
    template_id: str,
    customer_id: str,
    key: str = KEY_OPT,
    program: Path | None = PROGRAM_OPT,
    database_url: str | None = DB_OPT,
) -> None:
    """Issue a coupon. 发券。"""
    _out(
        _service(program, database_url).issue_coupon(template_id, customer_id, idempotency_key=key)
    )


ORDER_SOURCE_OPT = typer.Option(
    None,
    "--source",
    help="The order's source (the namespace of its id; default: default). 订单所属来源。",
)


@coupon_app.command("redeem")
def coupon_redeem(
    code: str,
    order_id: str = typer.Option(..., "--order-id"),
    source: str | None = ORDER_SOURCE_OPT,
    customer_id: str = typer.Option(..., "--customer"),
    amount: str | None = typer.Option(
        None, "--amount", help="Order amount (checks the threshold). 订单金额。"
    ),
    redemption_id: str | None = typer.Option(None, "--redemption-id"),
    program: Path | None = PROGRAM_OPT,
    database_url: str | None = DB_OPT,
) -> None:
    """Redeem a coupon on an order. 核销优惠券。"""
    from huitouke.app.orders import order_reference, present_order_ref

    ref = order_reference(order_id, source, field="--source")
    _out(
        present_order_ref(
            _service(program, database_url).redeem_coupon(
                code,
                order_id=ref,
                customer_id=customer_id,
                order_amount=amount,
                redemption_id=redemption_id,
            )
        )
    )


@coupon_app.command("void")
def coupon_void(
    code: str,
    reason: str = typer.Option("", "--reason"),
    program: Path | None = PROGRAM_OPT,
    database_url: str | None = DB_OPT,
) -> None:
    """Void an unredeemed coupon. 作废优惠券。"""
    _out(_service(program, database_url).void_coupon(code, reason=reason))


@coupon_app.command("gift")
def coupon_gift(
    code: str,
    from_customer: str,
    to_customer: str,
    program: Path | None = PROGRAM_OPT,
    database_url: str | None = DB_OPT,
) -> None:
    """Gift a coupon to a friend. 转赠优惠券。"""
    _out(_service(program, database_url).gift_coupon(code, from_customer, to_customer))


@coupon_app.command("show")
def coupon_show(
    code: str, program: Path | None = PROGRAM_OPT, database_url: str | None = DB_OPT
) -> None:
    """A coupon and its history. 查看优惠券。"""
    from huitouke.app.orders import present_coupon

    svc = _service(program, database_url)
    with svc.store.connect() as conn:
        _out(present_coupon(svc.service.coupon(conn, code)))


@coupon_app.command("quote")
def coupon_quote(
    customer_id: str,
    amount: str,
    codes: list[str] = typer.Option([], "--coupon", help="Coupon codes, in order. 优惠券码。"),
    program: Path | None = PROGRAM_OPT,
    database_url: str | None = DB_OPT,
) -> None:
    """Price an order: member discount, coupons, points to earn. 结算试算。"""
    svc = _service(program, database_url)
    with svc.store.connect() as conn:
        _out(svc.service.checkout_quote(conn, customer_id, amount, None, codes))


# -- stored value ------------------------------------------------------------------------
@sv_app.command("topup")
def sv_topup(
    customer_id: str,
    amount: str,
    key: str = KEY_OPT,
    program: Path | None = PROGRAM_OPT,
    database_url: str | None = DB_OPT,
) -> None:
    """Top up (bonus per the program's rules). 充值。"""
    _out(_service(program, database_url).topup(customer_id, amount, idempotency_key=key))


@sv_app.command("spend")
def sv_spend(
    customer_id: str,
    amount: str,
    order_id: str = typer.Option(..., "--order-id"),
    source: str | None = ORDER_SOURCE_OPT,
    program: Path | None = PROGRAM_OPT,
    database_url: str | None = DB_OPT,
) -> None:
    """Pay an order from stored value. 储值消费。"""
    from huitouke.app.orders import order_reference, present_order_ref

    ref = order_reference(order_id, source, field="--source")
    svc = _service(program, database_url)
    _out(present_order_ref(svc.spend_stored_value(customer_id, amount, order_id=ref)))


@sv_app.command("refund")
def sv_refund(
    customer_id: str,
    amount: str | None = typer.Argument(None),
    key: str = KEY_OPT,
    program: Path | None = PROGRAM_OPT,
    database_url: str | None = DB_OPT,
) -> None:
    """Refund unspent paid balance. 退还储值本金。"""
    _out(
        _service(program, database_url).refund_stored_value(
            customer_id, amount, idempotency_key=key
        )
    )


@sv_app.command("reverse")
def sv_reverse(
    customer_id: str,
    amount: str | None = typer.Argument(
        None, help="Default: everything not given back yet. 默认:全部未退回部分。"
    ),
    order_id: str = typer.Option(..., "--order-id"),
    source: str | None = ORDER_SOURCE_OPT,
    key: str = KEY_OPT,
    program: Path | None = PROGRAM_OPT,
    database_url: str | None = DB_OPT,
) -> None:
    """Give back stored value paid on an order (split like the payment). 退回订单的储值支付。"""
    from huitouke.app.orders import order_reference, present_order_ref

    ref = order_reference(order_id, source, field="--source")
    _out(
        present_order_ref(
            _service(program, database_url).reverse_stored_value_spend(
                customer_id, ref, amount, idempotency_key=key
            )
        )
    )


@sv_app.command("adjust")
def sv_adjust(
    customer_id: str,
    delta: str = typer.Argument(..., help="+N adds, -N takes. 正数增加,负数扣减。"),
    balance: str = typer.Option(..., "--balance", help="paid | bonus. 本金或赠送。"),
    reason: str = typer.Option(..., "--reason"),
    key: str = KEY_OPT,
    program: Path | None = PROGRAM_OPT,
    database_url: str | None = DB_OPT,
) -> None:
    """Correct a stored-value balance, never below zero (audited). 更正储值余额(记入审计)。"""
    _out(
        _service(program, database_url).adjust_stored_value(
            customer_id,
            delta,
            balance=balance,
            reason=reason,
            idempotency_key=key,
            actor=_actor(),
        )
    )


@sv_app.command("release-bonus")
def sv_release(
    as_of: str | None = typer.Option(None, "--as-of"),
    program: Path | None = PROGRAM_OPT,
    database_url: str | None = DB_OPT,
) -> None:
    """Release due bonus installments. 释放到期赠送金。"""
    _out(_service(program, database_url).release_bonus(_as_of(as_of)))


# -- membership ----------------------------------------------------------------------------
@membership_app.command("buy")
def membership_buy(
    customer_id: str,
    plan_id: str,
    key: str = KEY_OPT,
    paid_with: str = typer.Option("external", "--paid-with", help="external|stored_value"),
    program: Path | None = PROGRAM_OPT,
    database_url: str | None = DB_OPT,
) -> None:
    """Buy a paid membership. 购买付费会员。"""
    _out(
        _service(program, database_url).buy_membership(
            customer_id, plan_id, idempotency_key=key, paid_with=paid_with
        )
    )


@membership_app.command("renew")
def membership_renew(
    customer_id: str,
    key: str = KEY_OPT,
    plan_id: str | None = typer.Option(None, "--plan"),
    paid_with: str = typer.Option("external", "--paid-with"),
    program: Path | None = PROGRAM_OPT,
    database_url: str | None = DB_OPT,
) -> None:
    """Renew a paid membership. 续费。"""
    _out(
        _service(program, database_url).renew_membership(
            customer_id, idempotency_key=key, plan_id=plan_id, paid_with=paid_with
        )
    )


# -- referral ------------------------------------------------------------------------------
@referral_app.command("code")
def referral_code(
    customer_id: str, program: Path | None = PROGRAM_OPT, database_url: str | None = DB_OPT
) -> None:
    """The customer's referral code. 推荐码。"""
    _out(_service(program, database_url).referral_code(customer_id))


@referral_app.command("register")
def referral_register(
    customer_id: str,
    code: str,
    program: Path | None = PROGRAM_OPT,
    database_url: str | None = DB_OPT,
) -> None:
    """Record that a new customer came with a referral code. 登记推荐关系。"""
    _out(_service(program, database_url).register_referral(customer_id, code))


@referral_app.command("release")
def referral_release(
    as_of: str | None = typer.Option(None, "--as-of"),
    program: Path | None = PROGRAM_OPT,
    database_url: str | None = DB_OPT,
) -> None:
    """Reward referrals whose refund window has passed. 发放推荐奖励。"""
    _out(_service(program, database_url).release_referral_rewards(_as_of(as_of)))


# -- group buy ------------------------------------------------------------------------------
@groupbuy_app.command("open")
def groupbuy_open(
    deal_id: str,
    leader_id: str,
    key: str = KEY_OPT,
    paid_with: str = typer.Option("external", "--paid-with"),
    program: Path | None = PROGRAM_OPT,
    database_url: str | None = DB_OPT,
) -> None:
    """Open a group for a deal. 开团。"""
    _out(
        _service(program, database_url).groupbuy_open(
            deal_id, leader_id, idempotency_key=key, paid_with=paid_with
        )
    )


@groupbuy_app.command("join")
def groupbuy_join(
    group_id: str,
    customer_id: str,
    paid_with: str = typer.Option("external", "--paid-with"),
    program: Path | None = PROGRAM_OPT,
    database_url: str | None = DB_OPT,
) -> None:
    """Join a group. 参团。"""
    _out(_service(program, database_url).groupbuy_join(group_id, customer_id, paid_with=paid_with))


@groupbuy_app.command("settle")
def groupbuy_settle(
    as_of: str | None = typer.Option(None, "--as-of"),
    program: Path | None = PROGRAM_OPT,
    database_url: str | None = DB_OPT,
) -> None:
    """Fail overdue groups and release reservations. 结算超时拼团。"""
    _out(_service(program, database_url).groupbuy_settle(_as_of(as_of)))


@groupbuy_app.command("show")
def groupbuy_show(
    group_id: str, program: Path | None = PROGRAM_OPT, database_url: str | None = DB_OPT
) -> None:
    """Show a group. 查看拼团。"""
    svc = _service(program, database_url)
    with svc.store.connect() as conn:
        _out(svc.service.groupbuy(conn, group_id))


# -- batch jobs ----------------------------------------------------------------------------
@loyalty_app.command("expire")
def expire_cmd(
    as_of: str | None = typer.Option(None, "--as-of"),
    program: Path | None = PROGRAM_OPT,
    database_url: str | None = DB_OPT,
) -> None:
    """Expire points, stamps, coupons, memberships; review tiers. 过期处理与等级复核。"""
    _out(_service(program, database_url).expire(_as_of(as_of)))


@loyalty_app.command("verify")
def verify_cmd(database_url: str | None = DB_OPT) -> None:
    """Check Σ entries == balance for every account (exit 7 when not). 校验账本。"""
    from huitouke.loyalty import verify_ledger

    store = _store(database_url)
    with store.connect() as conn:
        problems = verify_ledger(conn)
    lang = _lang()
    if problems:
        typer.echo(t("loyalty.ledger_broken", lang, n=len(problems)), err=True)
        _out([asdict(p) for p in problems])
        sys.exit(7)
    typer.echo(t("loyalty.ledger_ok", lang), err=True)
    _out([])


def register(app: typer.Typer) -> None:
    from huitouke.loyalty import messages as _messages  # noqa: F401  (registers the texts)

    loyalty_app.add_typer(program_app, name="program")
    loyalty_app.add_typer(customer_app, name="customer")
    loyalty_app.add_typer(order_app, name="order")
    loyalty_app.add_typer(points_app, name="points")
    loyalty_app.add_typer(coupon_app, name="coupon")
    loyalty_app.add_typer(stamps_app, name="stamps")
    loyalty_app.add_typer(sv_app, name="stored-value")
    loyalty_app.add_typer(membership_app, name="membership")
    loyalty_app.add_typer(referral_app, name="referral")
    loyalty_app.add_typer(groupbuy_app, name="groupbuy")
    app.add_typer(loyalty_app, name="loyalty")
