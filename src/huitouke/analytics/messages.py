"""User-facing texts of the analytics context (zh and en)."""

from __future__ import annotations

from huitouke.i18n import register

MESSAGES: dict[str, dict[str, str]] = {
    # period metric columns
    "analytics.period": {"zh": "周期", "en": "Period"},
    "analytics.buyers": {"zh": "购买人数", "en": "Buyers"},
    "analytics.orders": {"zh": "订单数", "en": "Orders"},
    "analytics.revenue": {"zh": "销售额", "en": "Revenue"},
    "analytics.aov": {"zh": "客单价", "en": "AOV"},
    "analytics.returning_buyers": {"zh": "回头客数", "en": "Returning buyers"},
    "analytics.new_buyers": {"zh": "新客数", "en": "New buyers"},
    "analytics.customer_repurchase_rate": {"zh": "用户复购率", "en": "Customer repurchase rate"},
    "analytics.in_period_repurchase_rate": {
        "zh": "复购率(期内)",
        "en": "In-period repurchase rate",
    },
    "analytics.order_repurchase_rate": {"zh": "订单复购率", "en": "Order repurchase rate"},
    "analytics.buyback_rate": {"zh": "回购率", "en": "Buy-back rate"},
    "analytics.returning_revenue_share": {"zh": "老客销售占比", "en": "Returning revenue share"},
    "analytics.returning_buyer_share": {"zh": "老客占比", "en": "Returning buyer share"},
    # segments
    "analytics.segment": {"zh": "RFM 分群", "en": "RFM segment"},
    "analytics.layer": {"zh": "分层", "en": "Layer"},
    "analytics.customers": {"zh": "客户数", "en": "Customers"},
    "analytics.share": {"zh": "占比", "en": "Share"},
    "analytics.avg_spend": {"zh": "人均消费", "en": "Average spend"},
    "analytics.strategy": {"zh": "建议策略", "en": "Strategy"},
    "analytics.layer.new": {"zh": "新顾客", "en": "New"},
    "analytics.layer.active": {"zh": "活跃老顾客", "en": "Active returning"},
    "analytics.layer.cooling": {"zh": "观察期", "en": "Cooling"},
    "analytics.layer.high_winback": {"zh": "高挽回顾客", "en": "High win-back"},
    "analytics.layer.low_winback": {"zh": "低挽回顾客", "en": "Low win-back"},
    "analytics.layer.lost": {"zh": "流失顾客", "en": "Lost"},
    "analytics.rfm.champions": {"zh": "重要价值客户", "en": "Champions"},
    "analytics.rfm.loyal": {"zh": "忠诚客户", "en": "Loyal"},
    "analytics.rfm.potential_loyalist": {"zh": "潜力客户", "en": "Potential loyalist"},
    "analytics.rfm.new": {"zh": "新客户", "en": "New"},
    "analytics.rfm.promising": {"zh": "有希望的客户", "en": "Promising"},
    "analytics.rfm.need_attention": {"zh": "需要关注", "en": "Need attention"},
    "analytics.rfm.about_to_sleep": {"zh": "即将沉睡", "en": "About to sleep"},
    "analytics.rfm.at_risk": {"zh": "有流失风险", "en": "At risk"},
    "analytics.rfm.cant_lose": {"zh": "不能失去的客户", "en": "Can't lose"},
    "analytics.rfm.hibernating": {"zh": "沉睡客户", "en": "Hibernating"},
    "analytics.rfm.lost": {"zh": "已流失", "en": "Lost"},
    "analytics.lifecycle.acquisition": {"zh": "获取期", "en": "Acquisition"},
    "analytics.lifecycle.growth": {"zh": "提升期", "en": "Growth"},
    "analytics.lifecycle.maturity": {"zh": "成熟期", "en": "Maturity"},
    "analytics.lifecycle.decline": {"zh": "衰退期", "en": "Decline"},
    "analytics.lifecycle.lost": {"zh": "离开期", "en": "Lost"},
    # ladder / cohorts / churn
    "analytics.k": {"zh": "第 k 次购买", "en": "Purchase k"},
    "analytics.reached_k": {"zh": "完成第 k 次", "en": "Reached k"},
    "analytics.reached_k_plus_1": {"zh": "完成第 k+1 次", "en": "Reached k+1"},
    "analytics.median_days": {"zh": "间隔天数中位数", "en": "Median days"},
    "analytics.cohort": {"zh": "首购月份", "en": "First-order month"},
    "analytics.reason": {"zh": "流失原因", "en": "Reason"},
    "analytics.no_answer": {"zh": "(未回答)", "en": "(no answer)"},
    "analytics.no_orders": {"zh": "没有可统计的订单", "en": "No counted orders"},
}

register(MESSAGES)
