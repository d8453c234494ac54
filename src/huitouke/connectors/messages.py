"""User-facing texts of the connectors context (zh and en)."""

from __future__ import annotations

from huitouke.i18n import register

MESSAGES = {
    "connectors.not_found": {
        "zh": "没有名为 {name} 的连接器(`huitouke connectors list` 可查看)",
        "en": "no connector named {name} (see `huitouke connectors list`)",
    },
    "connectors.exists": {
        "zh": "已有名为 {name} 的连接器;请换一个名称或先删除它",
        "en": "a connector named {name} already exists; choose another name or remove it first",
    },
    "connectors.bad_kind": {
        "zh": "不支持的平台 {kind}(可用:{kinds})",
        "en": "unknown connector kind {kind} (one of: {kinds})",
    },
    "connectors.bad_name": {
        "zh": "连接器名称 {name} 无效:需为 1–32 个小写字母、数字、_ 或 -(它也是订单的来源)",
        "en": "connector name {name} is invalid: 1–32 lower-case letters, digits, _ or - "
        "(it is also the source of its orders)",
    },
    "connectors.bad_url": {
        "zh": "--api-base-url {url} 不是 http(s) 地址",
        "en": "--api-base-url {url} is not an http(s) URL",
    },
    "connectors.missing_credential": {
        "zh": "{kind} 连接器需要 {field}",
        "en": "a {kind} connector needs {field}",
    },
    "connectors.douyin_only": {
        "zh": "{kind} 连接器不接受 --auth-code / --authorise-self(仅抖店用 token.create 换取令牌)",
        "en": "a {kind} connector takes no --auth-code / --authorise-self (only Douyin's "
        "token.create issues a token)",
    },
    "connectors.paused": {
        "zh": "连接器 {name} 已暂停;`huitouke connectors resume {name}` 可恢复",
        "en": "connector {name} is paused; `huitouke connectors resume {name}` resumes it",
    },
    "connectors.bad_signature": {
        "zh": "连接器 {name} 的 webhook 签名缺失或错误",
        "en": "missing or wrong webhook signature for connector {name}",
    },
    "connectors.unmappable": {
        "zh": "无法映射为订单:{reason}",
        "en": "cannot be mapped to an order: {reason}",
    },
    "connectors.platform_error": {
        "zh": "{kind} 接口返回错误({status}):{detail}",
        "en": "the {kind} API answered an error ({status}): {detail}",
    },
    "connectors.platform_unreachable": {
        "zh": "无法连接 {url}:{detail}",
        "en": "cannot reach {url}: {detail}",
    },
    "connectors.bad_body": {
        "zh": "推送内容不是 JSON 对象:{detail}",
        "en": "the delivery body is not a JSON object: {detail}",
    },
    "connectors.added": {
        "zh": "已添加连接器 {name}({kind});webhook 地址:/v1/connectors/{name}/webhook",
        "en": "connector {name} ({kind}) added; webhook URL: /v1/connectors/{name}/webhook",
    },
    "connectors.removed": {"zh": "已删除连接器 {name}", "en": "connector {name} removed"},
    "connectors.status_set": {
        "zh": "连接器 {name} 状态:{status}",
        "en": "connector {name} is now {status}",
    },
    "connectors.synced": {
        "zh": "{name}:拉取 {pulled} 个订单({pages} 页),游标 {watermark}",
        "en": "{name}: {pulled} orders pulled ({pages} pages), cursor at {watermark}",
    },
    "connectors.retried": {
        "zh": "{name}:重试 {n} 条,成功 {applied} 条,仍失败 {failed} 条",
        "en": "{name}: {n} retried, {applied} applied, {failed} still failing",
    },
    "connectors.progress": {
        "zh": "已拉取 {pulled} 个订单({pages} 页),游标 {watermark}",
        "en": "{pulled} orders pulled ({pages} pages), cursor at {watermark}",
    },
    "connectors.none": {"zh": "还没有连接器", "en": "no connectors yet"},
    "connectors.inbox_empty": {"zh": "收件箱为空", "en": "the inbox is empty"},
    "connectors.token_prompt": {
        "zh": "访问令牌(不回显):",
        "en": "Access token (not echoed): ",
    },
    "connectors.bad_wechat_secret": {
        "zh": "微信小店的 --webhook-secret 须为「令牌:EncodingAESKey」:令牌为 3–32 个字母或数字,"
        "EncodingAESKey 为 43 个字符(消息推送的安全模式)",
        "en": "a WeChat shop's --webhook-secret is TOKEN:ENCODING_AES_KEY: the push token "
        "(3–32 letters or digits) and the 43-character EncodingAESKey (safe mode)",
    },
}

register(MESSAGES)
