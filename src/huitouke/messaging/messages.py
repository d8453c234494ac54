"""User-facing texts of the messaging context (zh and en)."""

from __future__ import annotations

from huitouke.i18n import register

MESSAGES: dict[str, dict[str, str]] = {
    # contact-rule reason codes (stable; the dry run and the outbox show them)
    "reason.ok": {"zh": "可以发送", "en": "may be sent"},
    "reason.cap.global": {
        "zh": "已达到该顾客的总频次上限",
        "en": "the customer's frequency cap across all channels is reached",
    },
    "reason.cap.channel": {
        "zh": "已达到该顾客在此渠道的频次上限",
        "en": "the customer's frequency cap on this channel is reached",
    },
    "reason.quiet_hours": {
        "zh": "处于顾客所在时区的免打扰时段,延后发送",
        "en": "quiet hours in the customer's time zone: delayed",
    },
    "reason.consent.missing": {
        "zh": "顾客未同意通过此渠道接收消息",
        "en": "the customer has not consented to this channel",
    },
    "reason.unsubscribed": {"zh": "顾客已退订", "en": "the customer has unsubscribed"},
    "reason.suppressed.ordered": {
        "zh": "顾客在计划发送后已下单,不再发送营销消息",
        "en": "the customer ordered after the message was planned",
    },
    "reason.expired": {"zh": "消息已过期", "en": "the message expired before it could be sent"},
    "reason.transactional_first": {
        "zh": "先发送该顾客待发的服务通知,营销消息随后",
        "en": "queued behind the customer's pending service notices",
    },
    "reason.crash.unknown": {
        "zh": "发送中途进程中断,无法确认是否已送达(最多一次渠道),请人工确认后重试",
        "en": "the worker stopped mid-send and delivery is unknown (at-most-once channel); "
        "check and retry by hand",
    },
    "reason.attempts.exhausted": {
        "zh": "重试次数已用完",
        "en": "no attempts left",
    },
    "reason.channel.missing": {
        "zh": "此渠道未配置",
        "en": "the channel is not configured",
    },
    # unsubscribe page
    "unsubscribe.title": {"zh": "退订", "en": "Unsubscribe"},
    "unsubscribe.confirm": {
        "zh": "确认不再接收来自本店的{channel}消息?",
        "en": "Stop receiving {channel} messages from this shop?",
    },
    "unsubscribe.button": {"zh": "确认退订", "en": "Unsubscribe"},
    "unsubscribe.done": {
        "zh": "已退订,您将不再收到本店的{channel}营销消息。",
        "en": "Done: you will no longer receive {channel} messages from this shop.",
    },
    "unsubscribe.bad_token": {
        "zh": "退订链接无效或已被篡改",
        "en": "this unsubscribe link is invalid or was altered",
    },
    "unsubscribe.sms_reply": {
        "zh": "您已成功退订,将不再收到本店短信。",
        "en": "You are unsubscribed and will receive no more SMS from this shop.",
    },
    "channel.all": {"zh": "所有渠道", "en": "any channel"},
    "channel.sms": {"zh": "短信", "en": "SMS"},
    "channel.email": {"zh": "邮件", "en": "email"},
    "channel.webhook": {"zh": "Webhook", "en": "webhook"},
    "channel.wecom": {"zh": "企业微信", "en": "WeCom"},
    "channel.dingtalk": {"zh": "钉钉", "en": "DingTalk"},
    "channel.file": {"zh": "文件", "en": "file"},
}

register(MESSAGES)
