"""Repurchase metrics over the store's orders — the same JSON as ``huitouke metrics``."""

from __future__ import annotations

from datetime import date
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from huitouke.errors import InputError
from huitouke.service.apikeys import ApiKey
from huitouke.service.context import ServiceContext
from huitouke.service.deps import get_ctx, require
from huitouke.service.error_handlers import ERROR_RESPONSES

router = APIRouter(prefix="/v1", tags=["analytics"], responses=ERROR_RESPONSES)

_PERIOD_DAYS = {"day": 1, "week": 7, "month": 28, "quarter": 90, "year": 365}
#: More periods than this in one answer is almost surely a mistake (and slow).
MAX_PERIODS = 20_000


class MetricsOut(BaseModel):
    period_kind: str
    timezone: str
    currency: str | None
    periods: list[dict[str, Any]] = Field(
        description="One object per period: period, period_start, period_end, buyers, orders, "
        "revenue, aov, returning_buyers, new_buyers and the BRIEF's rates (null when undefined), "
        "complete (the data cover the whole period) and buyback_null_reason."
    )
    coverage_end: str | None = Field(
        None, description="The last local day the data cover (ISO date); null without orders."
    )
    headline: dict[str, Any] = Field(
        default_factory=dict,
        description="The last complete period against the one before and a year earlier.",
    )


def _check_range(
    period: str, start: date | None, end: date | None, as_of: date | None = None
) -> None:
    lo, hi = date(1970, 1, 1), date(2200, 1, 1)
    for name, d in (("start", start), ("end", end), ("as_of", as_of)):
        if d is not None and not lo <= d < hi:
            raise InputError(
                f"{name} must be between 1970-01-01 and 2200-01-01",
                code="input.invalid",
                message_zh=f"{name} 须在 1970-01-01 与 2200-01-01 之间",
                details={"fields": [{"field": name, "reason": "out of range"}]},
            )
    if start is not None and end is not None:
        if end < start:
            raise InputError(
                "end must not be before start",
                code="input.invalid",
                message_zh="end 不能早于 start",
                details={"fields": [{"field": "end", "reason": "before start"}]},
            )
        if (end - start).days // _PERIOD_DAYS[period] > MAX_PERIODS:
            raise InputError(
                f"more than {MAX_PERIODS} periods requested; choose a longer period or a shorter range",
                code="input.invalid",
                message_zh=f"请求的周期数超过 {MAX_PERIODS};请选更长的周期或更短的范围",
                details={"fields": [{"field": "period", "reason": "too many periods"}]},
            )


@router.get("/metrics", response_model=MetricsOut)
def get_metrics(
    period: Literal["day", "week", "month", "quarter", "year"] = Query("month"),
    start: date | None = Query(None, description="First local day (inclusive)."),
    end: date | None = Query(None, description="Last local day (inclusive)."),
    currency: str | None = Query(None, pattern=r"^[A-Z]{3}$", description="Analyse one currency."),
    as_of: date | None = Query(
        None, description="Only orders up to this local day (what the numbers were then)."
    ),
    ctx: ServiceContext = Depends(get_ctx),
    _: ApiKey = Depends(require("read")),
) -> dict[str, Any]:
    """Per-period repurchase metrics (BRIEF definitions). 按周期的复购指标(定义见产品说明)。"""
    from huitouke.analytics.engine import Analytics
    from huitouke.app.orders import load_orders

    _check_range(period, start, end, as_of)
    orders = load_orders(ctx.store)
    s = ctx.settings
    with Analytics(
        orders, timezone=s.timezone, merge_same_day=s.merge_same_day_orders, currency=currency
    ) as analytics:
        if as_of is None:
            return analytics.metrics_json(period, start=start, end=end)
        # as `huitouke metrics --as-of`: history after the day does not exist yet
        with analytics.until(as_of) as past:
            hi = min(end, as_of) if end else None
            return past.metrics_json(period, start=start, end=hi)
