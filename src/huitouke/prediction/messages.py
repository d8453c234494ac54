"""User-facing texts of the prediction context (zh and en)."""

from __future__ import annotations

from huitouke.i18n import register

MESSAGES: dict[str, dict[str, str]] = {
    # churn-risk bands on P(alive)
    "prediction.risk.low": {"zh": "低流失风险", "en": "Low churn risk"},
    "prediction.risk.medium": {"zh": "中流失风险", "en": "Medium churn risk"},
    "prediction.risk.high": {"zh": "高流失风险", "en": "High churn risk"},
    "prediction.risk.lost": {"zh": "已流失", "en": "Lost"},
    # alive vs dormant
    "prediction.status.alive": {"zh": "活跃", "en": "Alive"},
    "prediction.status.uncertain": {"zh": "不确定", "en": "Uncertain"},
    "prediction.status.dormant": {"zh": "沉睡", "en": "Dormant"},
    # model names
    "prediction.model.bgnbd": {"zh": "BG/NBD 模型", "en": "BG/NBD"},
    "prediction.model.pnbd": {"zh": "Pareto/NBD 模型", "en": "Pareto/NBD"},
    "prediction.model.mbgnbd": {"zh": "MBG/NBD 模型", "en": "MBG/NBD"},
    # columns
    "prediction.customer_id": {"zh": "客户编号", "en": "Customer"},
    "prediction.frequency": {"zh": "复购次数", "en": "Repeat orders"},
    "prediction.recency": {"zh": "末单时客龄", "en": "Recency"},
    "prediction.T": {"zh": "客龄", "en": "Age (T)"},
    "prediction.p_alive": {"zh": "存活概率", "en": "P(alive)"},
    "prediction.expected_orders": {"zh": "预计订单数", "en": "Expected orders"},
    "prediction.p_order_in_horizon": {"zh": "期内下单概率", "en": "P(order in horizon)"},
    "prediction.expected_order_value": {"zh": "预计客单价", "en": "Expected order value"},
    "prediction.expected_spend": {"zh": "预计消费", "en": "Expected spend"},
    "prediction.clv": {"zh": "客户终身价值", "en": "CLV"},
    "prediction.next_order_median": {"zh": "预计下单日", "en": "Next order (median)"},
    "prediction.next_order_low": {"zh": "最早(10%)", "en": "Next order, 10%"},
    "prediction.next_order_high": {"zh": "最晚(90%)", "en": "Next order, 90%"},
    "prediction.p_no_further_order": {"zh": "不再下单概率", "en": "P(no further order)"},
    "prediction.churn_risk": {"zh": "流失风险", "en": "Churn risk"},
    "prediction.churn_risk_label": {"zh": "流失风险", "en": "Churn risk"},
    "prediction.model": {"zh": "模型", "en": "Model"},
    "prediction.currency": {"zh": "币种", "en": "Currency"},
    # CLI progress
    "prediction.progress.read": {
        "zh": "已读取 {orders} 笔订单({source})",
        "en": "read {orders} orders ({source})",
    },
    "prediction.progress.fit": {
        "zh": "正在拟合 {model}…",
        "en": "fitting {model}…",
    },
    "prediction.progress.scoring": {
        "zh": "{model} 已在 {customers} 位客户({rows} 个不同的 (x, t_x, T) 组合)上拟合完成;正在打分…",
        "en": "{model} fitted on {customers} customers ({rows} distinct (x, t_x, T) rows); scoring…",
    },
    "prediction.progress.chosen": {
        "zh": "自动选择了 {model}。理由:{reason}",
        "en": "auto chose {model}. Why: {reason}",
    },
    "prediction.progress.done": {
        "zh": "已为 {customers} 位客户打分,用时 {seconds} 秒",
        "en": "scored {customers} customers in {seconds} s",
    },
    "prediction.progress.spend_fallback": {
        "zh": "Gamma-Gamma 模型不可用({reason});预计客单价改用客户自己的平均订单金额",
        "en": "Gamma-Gamma unavailable ({reason}); expected order value is each customer's "
        "own mean order value",
    },
    "prediction.progress.top": {
        "zh": "仅显示按客户终身价值排序的前 {shown} 位(共 {total} 位);用 --top 或 --format csv 查看全部",
        "en": "showing the top {shown} of {total} customers by CLV; use --top or --format csv for all",
    },
    # holdout check (--evaluate)
    "prediction.eval.title": {
        "zh": "留出期检验:用 {cal_end} 及之前的订单拟合,检验 {cal_end} 之后至 {end}({days} 天)"
        "{customers} 位客户的 {actual} 次实际复购",
        "en": "Holdout check: fitted on orders up to {cal_end}, checked on the {actual} actual "
        "repeat orders of {customers} customers from {cal_end} to {end} ({days} days)",
    },
    "prediction.eval.model": {"zh": "模型", "en": "Model"},
    "prediction.eval.status": {"zh": "状态", "en": "Status"},
    "prediction.eval.predicted": {"zh": "预测复购", "en": "Predicted repeat orders"},
    "prediction.eval.actual": {"zh": "实际复购", "en": "Actual"},
    "prediction.eval.error": {"zh": "误差", "en": "Error"},
    "prediction.eval.coverage": {
        "zh": "区间覆盖率(模型预期)",
        "en": "Interval coverage (expected)",
    },
    "prediction.eval.reason": {"zh": "说明", "en": "Note"},
    "prediction.eval.status.chosen": {"zh": "自动选中", "en": "chosen by auto"},
    "prediction.eval.status.accepted": {"zh": "可用", "en": "usable"},
    "prediction.eval.status.rejected": {"zh": "被拒绝", "en": "rejected"},
    "prediction.eval.status.failed": {"zh": "拟合失败", "en": "failed"},
    "prediction.eval.none": {
        "zh": "留出期检验:没有模型能在校准期上拟合({reason})",
        "en": "Holdout check: no model could be fitted on the calibration period ({reason})",
    },
    "prediction.eval.legend": {
        "zh": "误差 =(预测 − 实际)÷ 实际;覆盖率:留出期内下单的客户中,首单落在其 {coverage} 下次下单区间内的比例"
        "(括号内为模型在留出期截断下的预期);* 为正则化拟合。",
        "en": "Error = (predicted − actual) ÷ actual; coverage: of the customers who ordered in "
        "the holdout, the share whose first order fell inside their {coverage} next-order "
        "interval (in brackets what the model expects once the holdout cuts it); * a "
        "regularised fit.",
    },
    "prediction.table.title": {
        "zh": "复购预测({model},未来 {days} 天,截至 {as_of})",
        "en": "Repurchase prediction ({model}, next {days} days, as of {as_of})",
    },
}

register(MESSAGES)
