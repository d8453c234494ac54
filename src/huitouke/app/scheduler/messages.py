"""User-facing texts of the scheduler (zh and en): the CLI's and the service's."""

from __future__ import annotations

from huitouke.i18n import register

MESSAGES = {
    "scheduler.starting": {
        "zh": "定时任务进程已启动({holder},{dialect}),任务:{jobs}",
        "en": "scheduler started ({holder}, {dialect}), jobs: {jobs}",
    },
    "scheduler.stopping": {
        "zh": "收到信号 {signal}:等待正在运行的任务结束后退出",
        "en": "signal {signal}: stopping once the runs in flight have finished",
    },
    "scheduler.stopped": {"zh": "定时任务进程已停止", "en": "scheduler stopped"},
    "scheduler.standby": {
        "zh": "此 SQLite 数据库已有定时任务进程在运行;本服务的定时任务处于待命状态",
        "en": "another scheduler runs on this SQLite store; this service's scheduler stands by",
    },
    "scheduler.serve_off": {
        "zh": "定时任务未在本服务中运行(HUITOUKE_SCHEDULER=off)",
        "en": "the scheduler is not run by this service (HUITOUKE_SCHEDULER=off)",
    },
    "scheduler.webhooks_by_scheduler": {
        "zh": "推送由定时任务进程处理(HUITOUKE_WEBHOOK_APPLY=scheduler)",
        "en": "webhook deliveries are applied by the scheduler's process "
        "(HUITOUKE_WEBHOOK_APPLY=scheduler)",
    },
    "scheduler.webhooks_unapplied": {
        "zh": "推送只存储不处理:HUITOUKE_WEBHOOK_APPLY=scheduler 而本服务不运行定时任务;"
        "请另行运行 `huitouke scheduler`",
        "en": "webhook deliveries are stored, not applied: HUITOUKE_WEBHOOK_APPLY=scheduler "
        "and this service runs no scheduler; run `huitouke scheduler` beside it",
    },
    "scheduler.col.job": {"zh": "任务", "en": "job"},
    "scheduler.col.schedule": {"zh": "计划", "en": "schedule"},
    "scheduler.col.next": {"zh": "下次运行", "en": "next run"},
    "scheduler.col.last": {"zh": "上次运行", "en": "last run"},
    "scheduler.col.slot": {"zh": "计划时刻", "en": "slot"},
    "scheduler.col.trigger": {"zh": "触发", "en": "trigger"},
    "scheduler.col.status": {"zh": "状态", "en": "status"},
    "scheduler.col.started": {"zh": "开始", "en": "started"},
    "scheduler.col.duration": {"zh": "耗时(毫秒)", "en": "duration ms"},
    "scheduler.col.error": {"zh": "错误", "en": "error"},
    "scheduler.off": {"zh": "已关闭", "en": "off"},
    "scheduler.never": {"zh": "从未运行", "en": "never run"},
    "scheduler.no_runs": {"zh": "还没有运行记录", "en": "no runs yet"},
    "scheduler.status.running": {"zh": "运行中", "en": "running"},
    "scheduler.status.succeeded": {"zh": "成功", "en": "succeeded"},
    "scheduler.status.skipped": {"zh": "跳过", "en": "skipped"},
    "scheduler.status.failed": {"zh": "失败", "en": "failed"},
    "scheduler.ran": {
        "zh": "任务 {job} 已运行(第 {run_id} 次记录):{status}",
        "en": "job {job} ran (run {run_id}): {status}",
    },
}

register(MESSAGES)
