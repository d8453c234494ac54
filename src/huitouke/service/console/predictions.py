"""The console's predictions page (预测): which model the one model policy chose for this
shop and why, its holdout check on the shop's own orders, and the P(alive) and CLV bands —
all from the customer facts snapshot's run (:mod:`huitouke.app.customer_facts`), so the
page fits nothing. Below the policy's data threshold (``model.too_little_data``) the
page says why instead of showing numbers.

Routes: ``GET /predictions``. 预测页。"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from huitouke.i18n import fmt_money, fmt_number, fmt_pct, t
from huitouke.service.console.kit import N_, gettext_for, page_context, request_ctx
from huitouke.service.console.segments import snapshot_state
from huitouke.store.uow import run_read

__all__ = ["router"]

router = APIRouter(include_in_schema=False)

#: model check statuses as the page names them
STATUS_TEXTS = (N_("chosen"), N_("accepted"), N_("rejected"), N_("failed"))


def _pct(v: Any, lang: str) -> str:
    return "—" if v is None else fmt_pct(v, lang, 1)


def _values(request: Request, lang: str) -> dict[str, Any]:
    from huitouke.app.customer_facts import snapshot_meta

    ctx = request_ctx(request)
    meta = run_read(ctx.store, snapshot_meta)
    out: dict[str, Any] = {"snapshot": snapshot_state(ctx, meta, lang), "hidden": None}
    if meta is None:
        return out
    zh = lang == "zh"
    if meta["model"] is None:
        out["hidden"] = {
            "code": meta["prediction_code"],
            "note": meta["prediction_note_zh"] if zh else meta["prediction_note"],
            "too_little": meta["prediction_code"] == "model.too_little_data",
        }
        return out
    details = meta["details"]
    gettext = gettext_for(lang)
    currency = meta["currency"] or ctx.settings.currency
    pred = details.get("prediction", {})
    selection = pred.get("selection") or {}
    comparison = [
        {
            **c,
            "label": c["model"],
            "bic_shown": "—" if c["bic"] is None else fmt_number(c["bic"], lang, 1),
            "why": (c.get("error_zh") if zh else c.get("error")) or c.get("problem") or "",
        }
        for c in pred.get("comparison") or []
    ]
    holdout = details.get("holdout")
    checks = []
    if holdout:
        for m in holdout["models"]:
            status = str(m["status"])
            checks.append(
                {
                    **m,
                    "status_shown": gettext(status),
                    "predicted": "—"
                    if m["predicted_repeat_orders"] is None
                    else fmt_number(m["predicted_repeat_orders"], lang, 0),
                    "actual": fmt_number(m["actual_repeat_orders"], lang, 0),
                    "error": _pct(m["error"], lang),
                    "coverage_observed": _pct(m["coverage_observed"], lang),
                    "coverage_expected": _pct(m["coverage_expected"], lang),
                    "reason": (m["reason_zh"] if zh else m["reason"]) or "",
                }
            )
    bands = details.get("bands") or {}
    hist = bands.get("p_alive_hist", [])
    p_chart = {
        "animation": False,
        "tooltip": {"trigger": "axis"},
        "grid": {"left": 48, "right": 16, "top": 24, "bottom": 40},
        "xAxis": {
            "type": "category",
            "name": "P(alive)",
            "data": [f"{i * 10}–{(i + 1) * 10}%" for i in range(len(hist))],
        },
        "yAxis": {"type": "value", "name": gettext("Customers")},
        "series": [{"name": gettext("Customers"), "type": "bar", "data": hist}],
    }
    clv_rows = [
        {
            **b,
            "band": f"{round(b['from_share'] * 100)}–{round(b['to_share'] * 100)}%",
            "customers_shown": fmt_number(b["customers"], lang, 0),
            "range": f"{fmt_money(b['clv_from'], currency, lang)} – "
            f"{fmt_money(b['clv_to'], currency, lang)}",
            "sum": fmt_money(b["clv_sum"], currency, lang),
            "share": _pct(
                b["clv_sum"] / bands["clv_total"] if bands.get("clv_total") else None, lang
            ),
        }
        for b in bands.get("clv", [])
    ]
    clv_chart = {
        "animation": False,
        "tooltip": {"trigger": "axis"},
        "grid": {"left": 64, "right": 16, "top": 24, "bottom": 40},
        "xAxis": {"type": "category", "data": [r["band"] for r in clv_rows]},
        "yAxis": {"type": "value", "name": f"CLV ({currency})"},
        "series": [
            {"name": "CLV", "type": "bar", "data": [round(r["clv_sum"], 2) for r in clv_rows]}
        ],
    }
    risk = [
        {
            **r,
            "label": t(f"prediction.risk.{r['band']}", lang),
            "range": f"{fmt_pct(r['from'], lang, 0)} – {fmt_pct(r['to'], lang, 0)}",
            "customers_shown": fmt_number(r["customers"], lang, 0),
        }
        for r in bands.get("churn_risk", [])
    ]
    holdout_error = details.get("holdout_error")
    out.update(
        {
            "model": meta["model"],
            "model_label": pred.get("model_label", meta["model"]),
            "reason": (selection.get("reason_zh") if zh else selection.get("reason")) or "",
            "horizon_days": pred.get("horizon_days"),
            "comparison": comparison,
            "holdout": holdout,
            "holdout_error": None
            if not holdout_error
            else (holdout_error["zh"] if zh else holdout_error["en"]),
            "checks": checks,
            "risk": risk,
            "clv_rows": clv_rows,
            "charts": {
                "p_alive": json.dumps(p_chart, ensure_ascii=False),
                "clv": json.dumps(clv_chart, ensure_ascii=False),
            },
        }
    )
    return out


@router.get("/predictions")
def predictions_page(request: Request) -> Response:
    """The model, its holdout check and the P(alive)/CLV bands. 预测。"""
    page = page_context(request)
    if isinstance(page, Response):
        return page
    from huitouke.service.apikeys import scope_allows

    return page.render(
        "predictions.html", **_values(request, page.lang),
        can_act=scope_allows(page.session.user.role, "operator"),
    )  # fmt: skip
