"""`huitouke journeys …`, `huitouke inserts`, `huitouke callbacks`, `huitouke recommend`."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import typer

from huitouke.errors import InputError

journeys_app = typer.Typer(
    help="Reminder journeys: list, show, validate, switch on, run, results. 复购提醒旅程。",
    no_args_is_help=True,
)


def _echo_json(data: Any) -> None:
    typer.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))


def _as_of(value: str | None) -> date:
    from zoneinfo import ZoneInfo

    from huitouke.settings import get_settings

    if value is None:
        return datetime.now(ZoneInfo(get_settings().timezone)).date()
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise InputError(
            f"--as-of {value!r} is not a date YYYY-MM-DD",
            code="input.bad_date",
            message_zh=f"--as-of {value!r} 不是 YYYY-MM-DD 格式的日期",
            details={"option": "--as-of"},
        ) from exc


def _warn(entry: dict[str, Any], lang: str) -> None:
    from huitouke.i18n import t

    text = entry["message_zh"] if lang == "zh" else entry["message"]
    typer.echo(f"{t('journeys.word.warning', lang)}: {text}", err=True)


def _store(database_url: str | None) -> Any:
    from huitouke.store.db import open_store

    return open_store(database_url)


def _loyalty(store: Any) -> Any:
    """The merchant's loyalty service when a program is stored, else None."""
    from huitouke.loyalty.programs_repo import get_program
    from huitouke.loyalty.service import LoyaltyService
    from huitouke.settings import get_settings

    with store.connect() as conn:
        program = get_program(conn)
    if program is None:
        return None
    return LoyaltyService(program.in_store_zone(get_settings().timezone))


@journeys_app.command("list")
def list_cmd(
    fmt: str = typer.Option("table", "--format", help="table or json. 输出格式。"),
    database_url: str | None = typer.Option(None, "--database-url", help="Store URL. 数据库地址。"),
) -> None:
    """List built-in and stored journeys with their state. 列出旅程及启用状态。"""
    from huitouke.journeys.repo import all_journeys
    from huitouke.settings import get_settings

    lang = get_settings().lang
    store = _store(database_url)
    with store.connect() as conn:
        rows = all_journeys(conn)
    data = [
        {
            "id": r["journey"].id,
            "name": r["journey"].name.get(lang),
            "trigger": r["journey"].trigger.type,
            "holdout": r["journey"].holdout,
            "enabled": r["enabled"],
            "source": r["source"],
        }
        for r in rows
    ]
    if fmt == "json":
        _echo_json(data)
        return
    for d in data:
        mark = "●" if d["enabled"] else "○"
        typer.echo(f"{mark} {d['id']:<26} {d['trigger']:<10} holdout={d['holdout']:<4} {d['name']}")


@journeys_app.command("show")
def show_cmd(
    journey_id: str = typer.Argument(..., help="Journey id. 旅程编号。"),
    fmt: str = typer.Option("yaml", "--format", help="yaml or json."),
    database_url: str | None = typer.Option(None, "--database-url", help="Store URL. 数据库地址。"),
) -> None:
    """Show one journey's definition. 查看旅程定义。"""
    import yaml

    from huitouke.journeys.repo import all_journeys
    from huitouke.journeys.service import get_journey

    store = _store(database_url)
    with store.connect() as conn:
        j = get_journey([r["journey"] for r in all_journeys(conn)], journey_id)
    data = j.model_dump(mode="json", exclude_none=True)
    if fmt == "json":
        _echo_json(data)
    else:
        typer.echo(yaml.safe_dump(data, allow_unicode=True, sort_keys=False))


@journeys_app.command("validate")
def validate_cmd(
    files: list[Path] = typer.Argument(..., help="Journey YAML files or directories. 旅程文件。"),
) -> None:
    """Validate journey files; errors name file, line and field. 校验旅程文件。"""
    from huitouke.journeys.loader import load_journeys

    for j in load_journeys(files):
        typer.echo(f"ok {j.id}")


@journeys_app.command("enable")
def enable_cmd(
    journey_id: str = typer.Argument(..., help="Journey id (a built-in or stored one). 旅程编号。"),
    database_url: str | None = typer.Option(None, "--database-url", help="Store URL. 数据库地址。"),
) -> None:
    """Switch a journey on (built-ins are off until switched on); warns of what to fix before
    it sends (e.g. an empty shop name). 启用旅程(并提示发送前需修正的设置)。"""
    from huitouke.journeys.repo import set_enabled
    from huitouke.journeys.service import journey_warnings
    from huitouke.settings import get_settings
    from huitouke.store.stored_settings import effective_settings

    store = _store(database_url)
    # the shop name an admin stored counts as set
    settings = effective_settings(store, get_settings(), open_secrets=False)
    with store.begin() as conn:
        j = set_enabled(conn, journey_id, True)
    typer.echo(f"enabled {journey_id}")
    for w in journey_warnings([j], settings):
        _warn(w, settings.lang)


@journeys_app.command("disable")
def disable_cmd(
    journey_id: str = typer.Argument(..., help="Journey id. 旅程编号。"),
    database_url: str | None = typer.Option(None, "--database-url", help="Store URL. 数据库地址。"),
) -> None:
    """Switch a journey off. 停用旅程。"""
    from huitouke.journeys.repo import set_enabled

    store = _store(database_url)
    with store.begin() as conn:
        set_enabled(conn, journey_id, False)
    typer.echo(f"disabled {journey_id}")


@journeys_app.command("run")
def run_cmd(
    as_of: str | None = typer.Option(
        None,
        "--as-of",
        help="Evaluation day YYYY-MM-DD (default: today in the merchant's zone). 评估日期。",
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Explain, write nothing. 只解释,不写入。"
    ),
    fmt: str = typer.Option("table", "--format", help="table or json. 输出格式。"),
    files: list[Path] = typer.Option(
        [], "--file", help="Also run these journey files. 额外的旅程文件。"
    ),
    all_builtin: bool = typer.Option(
        False,
        "--all-builtin",
        help="Run every built-in journey, switched on or not. 运行全部内置旅程。",
    ),
    only: list[str] = typer.Option(
        [], "--journey", help="Only these journey ids. 只运行这些旅程。"
    ),
    customer: str | None = typer.Option(
        None, "--customer", help="Explain one customer, including audience misses. 解释单个顾客。"
    ),
    limit: int | None = typer.Option(
        None, "--limit", help="At most N items in the JSON list. 最多列出 N 条。"
    ),
    database_url: str | None = typer.Option(None, "--database-url", help="Store URL. 数据库地址。"),
    frame_path: Path | None = typer.Option(
        None,
        "--frame",
        help="Read the customers frame from Parquet (a file or Spark's directory of parts) "
        "instead of computing it from the store. 从 Parquet 读取客户表(文件或 Spark 输出目录)。",
    ),
    audience_only: bool = typer.Option(
        False,
        "--audience-only",
        help="With --frame: read only the customers some journey's audience can hold (the "
        "filters run in DuckDB on the file; the summary then counts only them). "
        "配合 --frame:只读取可能属于某旅程受众的顾客(筛选在 DuckDB 中对文件执行)。",
    ),
) -> None:
    """Evaluate journeys: who gets what today, and why not for the rest. 运行旅程(或试运行)。"""
    from huitouke.journeys.loader import builtin_journeys, load_journeys
    from huitouke.journeys.repo import enabled_journeys
    from huitouke.journeys.service import run_journeys
    from huitouke.settings import get_settings

    settings = get_settings()
    day = _as_of(as_of)
    store = _store(database_url)
    with store.connect() as conn:
        journeys = {j.id: j for j in enabled_journeys(conn)}
    if all_builtin:
        for j in builtin_journeys():
            journeys.setdefault(j.id, j.model_copy(update={"enabled": True}))
    for j in load_journeys(files):
        journeys[j.id] = j
    if only:
        missing = [x for x in only if x not in journeys]
        if missing:
            raise InputError(
                f"journey {missing[0]!r} is not enabled or given (use --all-builtin or --file)",
                code="journey.not_found",
                message_zh=f"旅程 {missing[0]!r} 未启用也未给出(可用 --all-builtin 或 --file)",
            )
        journeys = {k: v for k, v in journeys.items() if k in only}
    customers = None
    if frame_path is not None:
        from huitouke.journeys.integration import frame_from_parquet

        customers = frame_from_parquet(
            str(frame_path),
            journeys=list(journeys.values()) if audience_only and customer is None else None,
            as_of=day,
        )
    elif audience_only:
        raise InputError(
            "--audience-only reads a customers frame file: it needs --frame",
            code="input.conflicting_options",
            message_zh="--audience-only 读取客户表文件,需要 --frame",
            details={"option": "--audience-only"},
        )
    if customer is not None:
        from huitouke.journeys.integration import customers_frame

        frame = (
            customers
            if customers is not None
            else customers_frame(store, day, settings=settings, loyalty=_loyalty(store))
        )
        customers = frame[frame["customer_id"] == customer]
    res = run_journeys(
        store,
        list(journeys.values()),
        day,
        settings=settings,
        customers=customers,
        dry_run=dry_run,
        loyalty=_loyalty(store),
        recommender=None,
        explain_all=customer is not None,
    )
    if not dry_run:
        from huitouke.app.snapshots import refresh_after_journey_run

        refresh_after_journey_run(store, settings)
    if fmt == "json":
        _echo_json(res.to_json(settings.lang, limit=limit))
        return
    from huitouke.i18n import t

    lang = settings.lang
    for s in res.plan.summary:
        reasons = ", ".join(f"{k}={v}" for k, v in sorted(s["by_reason"].items()))
        typer.echo(
            f"{s['journey_id']:<26} {t('journeys.summary.due', lang)}={s['due_customers']:<7} {reasons}"
        )
    out = res.to_json(lang)
    for f in out["failures"]:
        typer.echo(f"{f['journey_id']:<26} FAILED [{f['code']}] {f['message']}", err=True)
    for w in res.warnings:
        _warn(w, lang)
    if res.already_run:
        typer.echo(
            t(
                "journeys.already_run",
                lang,
                day=day.isoformat(),
                journeys=", ".join(res.already_run),
            ),
            err=True,
        )
    typer.echo(("DRY RUN " if dry_run else "") + json.dumps(out["written"], ensure_ascii=False))


@journeys_app.command("results")
def results_cmd(
    as_of: str | None = typer.Option(
        None, "--as-of", help="Results up to this day. 统计截止日期。"
    ),
    fmt: str = typer.Option("table", "--format", help="table or json. 输出格式。"),
    window: int | None = typer.Option(
        None, "--window-days", help="Attribution window (default: setting). 归因窗口天数。"
    ),
    database_url: str | None = typer.Option(None, "--database-url", help="Store URL. 数据库地址。"),
) -> None:
    """Per journey: audience, holdout, sent, converted, uplift with 95% CI, revenue, cost, ROI. 旅程效果。"""
    from huitouke.journeys.results import journey_results
    from huitouke.measurement.attribution import campaign_results
    from huitouke.settings import get_settings

    s = get_settings()
    day = _as_of(as_of)
    store = _store(database_url)
    with store.connect() as conn:
        rows = journey_results(
            conn,
            day,
            window_days=window or s.attribution_window_days,
            timezone=s.timezone,
            price_per_segment=s.sms_price_per_segment,
            currency=s.currency,
        )
        camps = campaign_results(
            conn,
            day,
            window_days=window or s.attribution_window_days,
            timezone=s.timezone,
            currency=s.currency,
        )
    if fmt == "json":
        _echo_json({"as_of": day.isoformat(), "journeys": rows, "insert_campaigns": camps})
        return
    for r in rows:
        ci = r["incremental_ci95"]
        ci_txt = f"[{ci[0]:+.3f}, {ci[1]:+.3f}]" if ci else "—"
        uplift = (
            f"{r['incremental_repurchase']:+.3f}"
            if r["incremental_repurchase"] is not None
            else "—"
        )
        typer.echo(
            f"{r['journey_id']:<26} audience={r['audience']} holdout={r['holdout']} sent={r['sent']} "
            f"uplift={uplift} {ci_txt} inc_revenue={r['incremental_revenue']} cost={r['cost']}"
        )
    for c in camps:
        typer.echo(
            f"[insert] {c['campaign_id']:<19} printed={c['printed']} claimed={c['claimed']} converted={c['converted']}"
        )


def register(app: typer.Typer) -> None:
    app.add_typer(journeys_app, name="journeys")

    @app.command("inserts")
    def inserts_cmd(
        campaign: str = typer.Option(..., "--campaign", help="Campaign id. 活动编号。"),
        count: int = typer.Option(
            ..., "--count", min=1, max=100_000, help="Number of cards. 卡片数量。"
        ),
        out: Path = typer.Option(..., "--out", help="PDF file to write. 输出 PDF。"),
        title: str | None = typer.Option(None, "--title", help="Card headline. 卡片标题。"),
        offer: str | None = typer.Option(
            None, "--offer", help="Offer line, e.g. 扫码领10元无门槛券. 优惠说明。"
        ),
        database_url: str | None = typer.Option(
            None, "--database-url", help="Store URL. 数据库地址。"
        ),
    ) -> None:
        """Printable package-insert cards, each with a unique QR code. 生成包裹卡片 PDF。"""
        from huitouke.journeys.offline import write_insert_cards
        from huitouke.measurement.codes import create_codes
        from huitouke.settings import get_settings

        s = get_settings()
        store = _store(database_url)
        with store.begin() as conn:
            codes = create_codes(conn, campaign, count, datetime.now(UTC))
        write_insert_cards(
            out, campaign, codes, base_url=s.public_base_url, lang=s.lang, title=title, offer=offer
        )
        typer.echo(f"{out} ({len(codes)} cards)")

    @app.command("callbacks")
    def callbacks_cmd(
        out: Path = typer.Option(..., "--out", help="CSV or XLSX file. 输出 CSV 或 Excel。"),
        as_of: str | None = typer.Option(None, "--as-of", help="Reference day. 参考日期。"),
        layers: list[str] = typer.Option(
            ["high_winback", "cooling"], "--layer", help="Layers to call. 回访分层。"
        ),
        limit: int = typer.Option(200, "--limit", help="At most N customers. 最多人数。"),
        database_url: str | None = typer.Option(
            None, "--database-url", help="Store URL. 数据库地址。"
        ),
    ) -> None:
        """Call-back list for service staff: who, history, suggested offer. 客服回访名单。"""
        from huitouke.journeys.offline import callback_list, write_callback_list
        from huitouke.settings import get_settings

        s = get_settings()
        store = _store(database_url)
        rows = callback_list(store, _as_of(as_of), settings=s, layers=layers, limit=limit)
        write_callback_list(rows, out, lang=s.lang)
        typer.echo(f"{out} ({len(rows)} customers)")

    @app.command("recommend")
    def recommend_cmd(
        fmt: str = typer.Option("table", "--format", help="table or json. 输出格式。"),
        kind: str = typer.Option(
            "basket",
            "--kind",
            help="basket (same order) or sequence (bought A, later B). 规则类型。",
        ),
        by: str = typer.Option("sku", "--by", help="sku or category. 按商品或品类。"),
        min_support: int = typer.Option(
            3, "--min-support", help="Minimum co-occurrence count. 最小共现次数。"
        ),
        top: int = typer.Option(30, "--top", help="Rules to show. 显示条数。"),
        database_url: str | None = typer.Option(
            None, "--database-url", help="Store URL. 数据库地址。"
        ),
    ) -> None:
        """Association rules (support, confidence, lift) from order lines. 关联推荐规则。"""
        from huitouke.journeys.associations import baskets_from_store, mine_rules

        store = _store(database_url)
        if kind not in ("basket", "sequence"):
            raise InputError(
                f"--kind {kind!r}: use basket or sequence",
                code="input.bad_option",
                message_zh=f"--kind {kind!r}:应为 basket 或 sequence",
            )
        baskets = baskets_from_store(store, by=by)
        rules = mine_rules(
            baskets, kind="basket" if kind == "basket" else "sequence", min_count=min_support
        )
        data = rules.head(top).to_dict("records")
        if fmt == "json":
            _echo_json(data)
            return
        for r in data:
            typer.echo(
                f"{r['antecedent']} → {r['consequent']}  support={r['support']:.4f} "
                f"confidence={r['confidence']:.3f} lift={r['lift']:.2f}"
            )
