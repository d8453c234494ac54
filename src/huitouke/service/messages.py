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
    # -- the console's errors (the pages themselves are translated by gettext catalogues) --
    "console.err.bad_credentials": {
        "zh": "用户名或密码错误",
        "en": "wrong user name or password",
    },
    "console.err.locked_out": {
        "zh": "登录失败次数过多,该用户已锁定至 {until}",
        "en": "too many failed sign-ins: this user is locked until {until}",
    },
    "console.err.rate_limited": {
        "zh": "此地址登录失败次数过多,请 {minutes} 分钟后再试",
        "en": "too many failed sign-ins from this address; try again in {minutes} minutes",
    },
    "console.err.disabled": {"zh": "该用户已停用", "en": "this user is disabled"},
    "console.err.no_session": {
        "zh": "请先登录控制台(会话不存在或已过期)",
        "en": "sign in to the console first (no session, or it has expired)",
    },
    "console.err.csrf": {
        "zh": "表单已失效(缺少或错误的 CSRF 令牌),请刷新页面后重试",
        "en": "the form is no longer valid (missing or wrong CSRF token); reload the page and retry",
    },
    "console.err.role": {
        "zh": "此操作需要 {required} 角色,当前用户为 {role}",
        "en": "this needs the {required} role; you are {role}",
    },
    "console.err.bad_lang": {
        "zh": "不支持的语言 {lang!r}:可选 zh、en",
        "en": "unknown language {lang!r}: use zh or en",
    },
    "console.err.self_disable": {
        "zh": "不能停用自己(请让另一位管理员操作)",
        "en": "you cannot disable yourself (ask another admin)",
    },
    "cli.users.created": {
        "zh": "已创建控制台用户 {name}(角色 {role})",
        "en": "created console user {name} (role {role})",
    },
    "cli.users.password_prompt": {
        "zh": "请输入密码(至少 {n} 个字符):",
        "en": "password (at least {n} characters): ",
    },
    "cli.users.password_changed": {
        "zh": "已修改 {name} 的密码,其所有会话已结束",
        "en": "changed the password of {name}; every session of theirs has ended",
    },
    "cli.users.disabled": {
        "zh": "已停用 {name},其所有会话已结束",
        "en": "disabled {name}; every session of theirs has ended",
    },
    "cli.users.enabled": {"zh": "已启用 {name}", "en": "enabled {name}"},
    "cli.users.deleted": {"zh": "已删除 {name}", "en": "deleted {name}"},
    "cli.users.none": {
        "zh": "还没有控制台用户(huitouke users create 名称 --role admin)",
        "en": "no console users yet (huitouke users create NAME --role admin)",
    },
}

register(MESSAGES)
