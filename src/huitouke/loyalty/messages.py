"""User-facing loyalty texts in zh and en (CLI output, printable cards)."""

from __future__ import annotations

from huitouke.i18n import register

MESSAGES = {
    "loyalty.program_ok": {"zh": "会员方案 {program} 有效", "en": "program {program} is valid"},
    "loyalty.program_saved": {
        "zh": "会员方案 {program} 已保存(第 {version} 版)",
        "en": "program {program} saved (version {version})",
    },
    "loyalty.ledger_ok": {
        "zh": "账本一致:所有账户余额等于分录之和",
        "en": "ledger consistent: every balance equals the sum of its entries",
    },
    "loyalty.ledger_broken": {"zh": "账本发现 {n} 处不一致", "en": "ledger has {n} discrepancies"},
    "loyalty.points_balance": {"zh": "积分余额", "en": "points balance"},
    "loyalty.tier": {"zh": "会员等级", "en": "tier"},
    "loyalty.stored_value": {"zh": "储值", "en": "stored value"},
    "loyalty.coupons": {"zh": "优惠券", "en": "coupons"},
    "loyalty.stamp_cards": {"zh": "集章卡", "en": "stamp cards"},
    "loyalty.membership": {"zh": "付费会员", "en": "paid membership"},
    "loyalty.expiring_soon": {"zh": "即将过期", "en": "expiring soon"},
    "loyalty.no_program": {
        "zh": "未指定会员方案:请用 --program 指定文件,或先执行 huitouke loyalty program save",
        "en": "no loyalty program: pass --program FILE or run `huitouke loyalty program save` first",
    },
    "loyalty.key_reused": {
        "zh": "幂等键 {key} 已用于另一个请求(内容不同):新的操作请使用新的键",
        "en": "idempotency key {key} was already used with a different request: "
        "use a new key for a new operation",
    },
    "loyalty.points_fractional": {
        "zh": "{field}:积分须为整数(本方案 points.decimals = {decimals})",
        "en": "{field}: points are whole units in this program (points.decimals = {decimals})",
    },
}

register(MESSAGES)
