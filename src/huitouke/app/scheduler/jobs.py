"""The built-in jobs: each calls the same use case as the command a person would type.

| job | default schedule | use case (and the command that runs it by hand) |
|---|---|---|
| ``outbox`` | every 15s | the dispatcher sends what is due (``huitouke worker --once``) |
| ``journeys`` | every 5m | the switched-on journeys whose send time (``trigger.at``) has come today in the merchant's zone and that were not run for today (``huitouke journeys run``) |
| ``loyalty.expiry`` | 00:05 daily | points, stamps, coupons, memberships due (``huitouke loyalty expire``) |
| ``loyalty.tiers`` | 00:10 daily | the tier review of members whose period ended |
| ``loyalty.bonus_release`` | 00:20 daily | stored-value bonus installments due (``huitouke loyalty stored-value release-bonus``) |
| ``scheduler.prune`` | 04:00 daily | forget runs older than ``HUITOUKE_SCHEDULER_HISTORY_DAYS`` |

Daily times are wall-clock times of the merchant's zone. There is no model-refit job: the
predictions are fitted when they are asked for (``huitouke predict``, the customers view,
the journeys' frame) and nothing stores a fitted model to refresh.
"""

from __future__ import annotations

from typing import Any

from huitouke.app.scheduler.history import prune_runs
from huitouke.app.scheduler.registry import Job, JobContext, JobFailed, JobSkipped, register_job
from huitouke.store.uow import run_write

__all__ = ["journeys_due"]


def _outbox(ctx: JobContext) -> dict[str, Any]:
    from huitouke.messaging.bootstrap import build_channels, make_dispatcher

    channels = build_channels(ctx.settings)
    if not channels:
        raise JobSkipped(
            "no channel is configured (set e.g. HUITOUKE_WEBHOOK_URL or HUITOUKE_SMTP_HOST)",
            code="settings.channel_missing",
            message_zh="没有配置任何渠道(例如设置 HUITOUKE_WEBHOOK_URL 或 HUITOUKE_SMTP_HOST)",
        )
    d = make_dispatcher(ctx.settings, ctx.store, channels=channels)
    try:
        return d.drain().to_dict()
    finally:
        d.close()


def journeys_due(ctx: JobContext) -> list[Any]:
    """The switched-on journeys whose send time has come today and that were not run today."""
    from huitouke.journeys.days import days_run
    from huitouke.journeys.repo import enabled_journeys

    local = ctx.now.astimezone(ctx.zone)
    with ctx.store.connect() as conn:
        enabled = enabled_journeys(conn)
        done = days_run(conn, local.date())
    clock = local.time().replace(tzinfo=None)
    return [j for j in enabled if j.id not in done and j.trigger.at <= clock]


def _journeys(ctx: JobContext) -> dict[str, Any]:
    from huitouke.app.orders import stored_loyalty
    from huitouke.journeys.service import run_journeys

    day = ctx.today
    due = journeys_due(ctx)
    if not due:
        return {"day": day.isoformat(), "run": []}
    with ctx.store.connect() as conn:
        loyalty = stored_loyalty(conn, ctx.settings.timezone)
    res = run_journeys(
        ctx.store,
        due,
        day,
        settings=ctx.settings,
        dry_run=False,
        loyalty=loyalty,
        run_by=f"scheduler {ctx.holder}",
    )
    from huitouke.app.snapshots import refresh_after_journey_run

    refresh_after_journey_run(ctx.store, ctx.settings, now=lambda: ctx.now)
    failed = {f["journey_id"]: f["code"] for f in res.failures}
    out = {
        "day": day.isoformat(),
        "run": [j.id for j in due if j.id not in failed and j.id not in res.already_run],
        "already_run": list(res.already_run),
        "failed": failed,
        "written": {
            "assignments": res.assignments_inserted,
            "coupons": res.coupons_issued,
            "enqueued": res.enqueued,
            "duplicates": res.duplicates,
        },
    }
    if failed:
        first = res.failures[0]
        raise JobFailed(
            f"{len(failed)} journey(s) failed and wrote nothing: "
            + "; ".join(f"{f['journey_id']} [{f['code']}] {f['message']}" for f in res.failures),
            code=first["code"],
            message_zh=f"{len(failed)} 个旅程失败,未写入任何内容:"
            + ";".join(f"{f['journey_id']} [{f['code']}] {f['message_zh']}" for f in res.failures),
            result=out,
        )
    return out


def _loyalty(ctx: JobContext) -> Any:
    from huitouke.app.orders import stored_loyalty

    with ctx.store.connect() as conn:
        svc = stored_loyalty(conn, ctx.settings.timezone)
    if svc is None:
        raise JobSkipped(
            "no loyalty program is saved",
            code="loyalty.no_program",
            message_zh="尚未保存会员方案",
        )
    return svc.bound(ctx.store)


def _ledger_changed(ctx: JobContext) -> None:
    """After a loyalty job: the loyalty summary's snapshot recomputed, when the store has
    one (:func:`huitouke.app.snapshots.refresh_after_ledger_change`)."""
    from huitouke.app.snapshots import refresh_after_ledger_change

    refresh_after_ledger_change(ctx.store, ctx.settings)


def _expiry(ctx: JobContext) -> dict[str, Any]:
    out: dict[str, Any] = _loyalty(ctx).expire(ctx.now)
    _ledger_changed(ctx)
    return out


def _tiers(ctx: JobContext) -> dict[str, Any]:
    out: dict[str, Any] = _loyalty(ctx).review_tiers(ctx.now)
    _ledger_changed(ctx)
    return out


def _bonus(ctx: JobContext) -> dict[str, Any]:
    out: dict[str, Any] = _loyalty(ctx).release_bonus(ctx.now)
    _ledger_changed(ctx)
    return out


def _prune(ctx: JobContext) -> dict[str, Any]:
    days = ctx.settings.scheduler_history_days
    n = run_write(ctx.store, lambda conn: prune_runs(conn, ctx.now, days))
    return {"deleted": n, "kept_days": days}


register_job(
    Job(
        "outbox",
        "every 15s",
        _outbox,
        {"en": "send the due outbox messages", "zh": "发送发件箱中到期的消息"},
    )
)
register_job(
    Job(
        "journeys",
        "every 5m",
        _journeys,
        {
            "en": "run the switched-on journeys whose send time has come today, once a day",
            "zh": "运行今天已到发送时间的已启用旅程(每天一次)",
        },
    )
)
register_job(
    Job(
        "loyalty.expiry",
        "cron 5 0 * * *",
        _expiry,
        {
            "en": "expire points, stamps, coupons and memberships that are due",
            "zh": "过期到期的积分、集章、优惠券和付费会员",
        },
    )
)
register_job(
    Job(
        "loyalty.tiers",
        "cron 10 0 * * *",
        _tiers,
        {"en": "review the tiers whose period ended", "zh": "复核周期结束的会员等级"},
    )
)
register_job(
    Job(
        "loyalty.bonus_release",
        "cron 20 0 * * *",
        _bonus,
        {"en": "release the stored-value bonus installments due", "zh": "释放到期的储值赠送金"},
    )
)
register_job(
    Job(
        "scheduler.prune",
        "cron 0 4 * * *",
        _prune,
        {"en": "forget old runs of the history", "zh": "清理过旧的运行记录"},
    )
)
