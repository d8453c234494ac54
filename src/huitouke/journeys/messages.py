"""User-facing texts of the journeys context (zh and en)."""

from __future__ import annotations

from huitouke.i18n import register

MESSAGES = {
    "journeys.reason.planned": {"zh": "将发送", "en": "will be sent"},
    "journeys.reason.already_ordered": {
        "zh": "旅程开始后已下单,不再打扰",
        "en": "ordered since the journey started",
    },
    "journeys.reason.not_ordered": {
        "zh": "旅程开始后未下单,此分支结束",
        "en": "has not ordered since the journey started; this branch ends",
    },
    "journeys.reason.not_in_audience": {
        "zh": "今天不在目标人群中",
        "en": "not in the audience today",
    },
    "journeys.reason.holdout": {
        "zh": "对照组(不发送,用于衡量效果)",
        "en": "holdout group (not sent, kept for measurement)",
    },
    "journeys.reason.no_contact": {
        "zh": "没有该渠道的联系方式",
        "en": "no address for this channel",
    },
    "journeys.word.next_tier": {"zh": "更高等级会员", "en": "the next tier"},
    "journeys.word.reward": {"zh": "奖励", "en": "your reward"},
    "journeys.word.warning": {"zh": "警告", "en": "warning"},
    "journeys.reason.already_queued": {
        "zh": "此前的运行已放入发件箱",
        "en": "already in the outbox from an earlier run",
    },
    "journeys.reason.already_run": {
        "zh": "该旅程今天已运行过,同一天不再运行",
        "en": "this journey was already run for this day; it is not run twice",
    },
    "journeys.already_run": {
        "zh": "已运行过 {day} 的旅程,未再运行:{journeys}",
        "en": "already run for {day}, not run again: {journeys}",
    },
    "journeys.reason.coupon_unreachable": {
        "zh": "旅程的消息无法送达该顾客(未同意或已退订),不发券",
        "en": "the journey's messages may not reach this customer (no consent or "
        "unsubscribed): no coupon",
    },
    "journeys.warn.shop_name_missing": {
        "zh": "旅程 {journey}:店铺名称/短信签名(HUITOUKE_SMS_SIGN_NAME)为空,"
        "消息中店名的位置将是空白",
        "en": "journey {journey}: the shop name / SMS signature (HUITOUKE_SMS_SIGN_NAME) is "
        "empty, so its messages print a blank where the shop's name goes",
    },
    "journeys.col.journey": {"zh": "旅程", "en": "journey"},
    "journeys.col.customer": {"zh": "顾客", "en": "customer"},
    "journeys.col.step": {"zh": "步骤", "en": "step"},
    "journeys.col.reason": {"zh": "原因", "en": "reason"},
    "journeys.col.count": {"zh": "人数", "en": "count"},
    "journeys.summary.due": {"zh": "今天到期", "en": "due today"},
    "journeys.summary.planned": {"zh": "计划发送", "en": "planned"},
    "journeys.status.enabled": {"zh": "已启用", "en": "enabled"},
    "journeys.status.disabled": {"zh": "未启用", "en": "disabled"},
}

register(MESSAGES)
