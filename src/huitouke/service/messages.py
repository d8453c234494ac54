"""User-facing texts of the service (zh and en)."""

from __future__ import annotations

from huitouke.i18n import register

MESSAGES = {
    "service.title": {"zh": "回头客 huitouke API", "en": "huitouke (回头客) API"},
    "service.missing_key": {
        "zh": "缺少 API 密钥:请在请求头中发送 Authorization: Bearer <密钥>",
        "en": "missing API key: send Authorization: Bearer <key>",
    },
    "service.invalid_input": {
        "zh": "请求参数无效:{fields}",
        "en": "invalid request: {fields}",
    },
    "service.bad_request": {
        "zh": "无法读取请求体(须为 UTF-8 编码的 JSON)",
        "en": "the request body could not be read (send UTF-8 JSON)",
    },
    "service.not_found": {"zh": "没有这个地址:{path}", "en": "no such endpoint: {path}"},
    "service.method_not_allowed": {
        "zh": "该地址不支持 {method} 方法",
        "en": "method {method} is not allowed here",
    },
    "service.http_error": {"zh": "请求失败(HTTP {status})", "en": "request failed (HTTP {status})"},
    "service.internal": {
        "zh": "服务器内部错误,已记录;请稍后重试",
        "en": "internal server error (logged); please retry later",
    },
    "service.customer_not_found": {
        "zh": "没有编号为 {customer_id} 的顾客",
        "en": "no customer with id {customer_id}",
    },
    "service.batch_too_long": {
        "zh": "一次最多提交 {limit} 个订单事件,本次 {n} 个",
        "en": "at most {limit} order events per request, got {n}",
    },
    "service.order_not_found": {
        "zh": "没有编号为 {order_id} 的订单",
        "en": "no order with id {order_id}",
    },
    "service.refund_exceeds": {
        "zh": "退款金额 {refunded} 超过订单金额 {amount}",
        "en": "refunded_amount {refunded} exceeds amount {amount}",
    },
    "service.too_large": {
        "zh": "请求体过大:此接口最多接受 {limit} 字节",
        "en": "request body too large: this endpoint takes at most {limit} bytes",
    },
    # the pages of tracked links (a person clicked them in a message)
    "link.page_title": {"zh": "链接无效", "en": "Link not valid"},
    "link.invalid_page": {
        "zh": "此链接无效或已被改动。请从店铺的最新消息中打开链接。",
        "en": "This link is not valid or was altered. Please open the link from the "
        "shop's latest message.",
    },
    "link.old_format_page": {
        "zh": "此链接来自旧版本,已停用。请从店铺的最新消息中打开链接。",
        "en": "This link comes from an earlier version and no longer works. Please open "
        "the link from the shop's latest message.",
    },
    "cli.apikey.created": {
        "zh": "已创建 API 密钥 {key_id}(权限 {scope},名称 {name})。密钥只显示这一次,请妥善保存:",
        "en": "created API key {key_id} (scope {scope}, name {name}). It is shown only this once; store it safely:",
    },
    "cli.apikey.revoked": {"zh": "已吊销 API 密钥 {key_id}", "en": "revoked API key {key_id}"},
    "cli.apikey.none": {"zh": "还没有 API 密钥", "en": "no API keys yet"},
    "cli.serve.starting": {
        "zh": "huitouke 服务启动于 http://{host}:{port}(接口文档 /docs)",
        "en": "huitouke service on http://{host}:{port} (API docs at /docs)",
    },
}

register(MESSAGES)
