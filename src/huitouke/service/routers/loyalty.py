"""Loyalty over HTTP: balances, coupons, points, stored value, paid membership, referrals,
group buy, the program, and the periodic jobs. Each write is one idempotent use case of
:class:`huitouke.loyalty.service.LoyaltyService` in one unit of work.

Money and points are decimal strings in every response. Writes that move value take an
``idempotency_key`` (in the body, or the ``Idempotency-Key`` header): sending the same
request again changes nothing and returns the first result (header
``Idempotent-Replayed: true``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Header, Path, Query, Response
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from sqlalchemy import Connection

from huitouke.app.orders import order_reference, present_coupon, present_order_ref
from huitouke.errors import InputError, NotFoundError
from huitouke.loyalty import codes
from huitouke.loyalty.ledger import verify_ledger
from huitouke.loyalty.service import LoyaltyService
from huitouke.service.apikeys import ApiKey
from huitouke.service.context import ServiceContext
from huitouke.service.deps import get_ctx, require
from huitouke.service.error_handlers import ERROR_RESPONSES, ErrorResponse
from huitouke.service.programs import (
    loyalty_service,
    save_program_document,
)
from huitouke.service.schemas import ID_PATTERN, Identifier, Instant, MoneyIn, OrderLineIn, Text
from huitouke.store.uow import run_read, run_write

router = APIRouter(prefix="/v1", tags=["loyalty"], responses=ERROR_RESPONSES)

_ERRS: dict[int | str, dict[str, Any]] = {
    404: {
        "model": ErrorResponse,
        "description": "Unknown coupon, template, plan, deal… (*.not_found).",
    },
    409: {
        "model": ErrorResponse,
        "description": "The state forbids it (coupon.already_redeemed, …).",
    },
}

CustomerId = Annotated[str, Path(min_length=1, max_length=128, pattern=ID_PATTERN)]
CouponCode = Annotated[
    str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9\-]+$", description="Coupon code.")
]
IdemKey = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=ID_PATTERN)]
Points = Annotated[Any, Field(description="A decimal string or number.")]


# -- helpers ---------------------------------------------------------------------------------
def _idem(body_key: str | None, header_key: str | None) -> str:
    key = body_key or header_key
    if not key:
        raise InputError(
            "idempotency_key is required (in the body or the Idempotency-Key header)",
            code="input.invalid",
            message_zh="缺少 idempotency_key(请求体或 Idempotency-Key 请求头)",
            details={"fields": [{"field": "idempotency_key", "reason": "required"}]},
        )
    return key


HeaderKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        max_length=128,
        pattern=ID_PATTERN,
        description="Alternative to the body's idempotency_key.",
    ),
]


def _write(
    ctx: ServiceContext,
    response: Response,
    op: Callable[[LoyaltyService, Connection], dict[str, Any]],
    present: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
) -> dict[str, Any]:
    result = run_write(ctx.store, lambda conn: op(loyalty_service(conn, ctx), conn))
    if result.pop("replayed", False):
        response.headers["Idempotent-Replayed"] = "true"
    return result if present is None else present(dict(result))


def _read(ctx: ServiceContext, op: Callable[[LoyaltyService, Connection], Any]) -> Any:
    return run_read(ctx.store, lambda conn: op(loyalty_service(conn, ctx), conn))


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- customer view ---------------------------------------------------------------------------
class LoyaltyOut(BaseModel):
    points_balance: str
    tier: dict[str, Any] | None
    stamp_cards: list[dict[str, Any]]
    stored_value: dict[str, str | None] = Field(description="{paid, bonus, pending_bonus}")
    coupons: list[dict[str, Any]]
    membership: dict[str, Any] | None = None
    expiring_soon: list[dict[str, Any]] = Field(default_factory=list)


@router.get("/customers/{customer_id}/loyalty", response_model=LoyaltyOut)
def customer_loyalty(
    customer_id: CustomerId,
    expiring_within_days: int = Query(30, ge=1, le=3660),
    ctx: ServiceContext = Depends(get_ctx),
    _: ApiKey = Depends(require("read")),
) -> dict[str, Any]:
    """Points, tier, stamp cards, stored value, coupons, membership and what expires soon.
    顾客的积分、等级、集章卡、储值、优惠券、付费会员与即将到期项。"""
    return dict(
        _read(
            ctx,
            lambda s, c: s.customer_loyalty(
                c, customer_id, expiring_within_days=expiring_within_days
            ),
        )
    )


class PersonLoyaltyOut(BaseModel):
    customer_id: str
    person_id: str = Field(description="The person's primary account (docs/identity.md).")
    accounts: list[str]
    points_balance: str = Field(description="The accounts' points together.")
    stored_value: dict[str, str | None] = Field(description="{paid, bonus, pending_bonus}")
    tier: dict[str, Any] | None = Field(
        description="The higher of the accounts' tiers and the combined metric's."
    )
    coupons: list[dict[str, Any]] = Field(description="Issued coupons of every account.")
    per_account: dict[str, dict[str, Any]] = Field(description="Each account's own view.")


@router.get("/customers/{customer_id}/loyalty/person", response_model=PersonLoyaltyOut)
def person_loyalty(
    customer_id: CustomerId,
    expiring_within_days: int = Query(30, ge=1, le=3660),
    ctx: ServiceContext = Depends(get_ctx),
    _: ApiKey = Depends(require("read")),
) -> dict[str, Any]:
    """The standing of the customer's person — every account merged with it as one (points
    and stored value summed, tier from the combined metric, every coupon), with each
    account's own view. 同一个人(合并后各账户)的会员权益合计与各账户明细。"""
    return dict(
        _read(
            ctx,
            lambda s, c: s.person_loyalty(
                c, customer_id, expiring_within_days=expiring_within_days
            ),
        )
    )


@router.get("/customers/{customer_id}/loyalty/history", response_model=list[dict[str, Any]])
def customer_history(
    customer_id: CustomerId,
    limit: int = Query(100, ge=1, le=1000),
    ctx: ServiceContext = Depends(get_ctx),
    _: ApiKey = Depends(require("read")),
) -> list[dict[str, Any]]:
    """The customer's latest ledger entries, newest first. 账户流水(最新在前)。"""
    return list(_read(ctx, lambda s, c: s.history(c, customer_id, limit=limit)))


@router.get("/customers/{customer_id}/loyalty/balances", response_model=dict[str, str])
def customer_balances(
    customer_id: CustomerId,
    ctx: ServiceContext = Depends(get_ctx),
    _: ApiKey = Depends(require("read")),
) -> dict[str, str]:
    """Every cached balance by asset (debts included). 各资产余额(含欠账)。"""
    return dict(_read(ctx, lambda s, c: s.balances(c, customer_id)))


@router.get("/points/expiring", response_model=list[dict[str, Any]])
def expiring_soon(
    within_days: int = Query(30, ge=1, le=3660),
    customer_id: str | None = Query(None, min_length=1, max_length=128, pattern=ID_PATTERN),
    as_of: Instant | None = Query(None, description="Default: now."),
    ctx: ServiceContext = Depends(get_ctx),
    _: ApiKey = Depends(require("read")),
) -> list[dict[str, Any]]:
    """Points, stamps and coupons expiring within N days (one customer or all).
    N 天内到期的积分、集章与优惠券。"""
    at = as_of or ctx.clock()
    return list(_read(ctx, lambda s, c: s.expiring_soon(c, customer_id, within_days, at)))


class PreferencesIn(_In):
    preferences: dict[
        Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=ID_PATTERN)],
        Annotated[str, StringConstraints(max_length=200)] | int | bool | None,
    ] = Field(max_length=50)


@router.put("/customers/{customer_id}/preferences", response_model=dict[str, Any], responses=_ERRS)
def set_preferences(
    customer_id: CustomerId,
    body: PreferencesIn,
    ctx: ServiceContext = Depends(get_ctx),
    _: ApiKey = Depends(require("operator")),
) -> dict[str, Any]:
    """Remembered preferences (size, taste…), a tier benefit. 记住顾客偏好(尺码、口味等)。"""
    return dict(
        run_write(
            ctx.store,
            lambda c: loyalty_service(c, ctx).set_preferences(c, customer_id, body.preferences),
        )
    )


# -- stamp cards -------------------------------------------------------------------------------
class StampsIn(_In):
    card_id: Identifier
    stamps: int | None = Field(
        None,
        ge=1,
        le=1000,
        description="Grant this many stamps (needs a reason). Omitted: record a visit.",
    )
    visited_at: Instant | None = Field(
        None,
        description="When the visit happened (default: now); picks the local day and starts "
        "the stamps' expiry.",
    )
    reason: (
        Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=ID_PATTERN)] | None
    ) = Field(None, description="Why the stamps are granted (required with stamps).")
    idempotency_key: IdemKey | None = None


@router.post(
    "/customers/{customer_id}/stamps",
    response_model=dict[str, Any],
    responses={
        **_ERRS,
        409: {
            "model": ErrorResponse,
            "description": "stamps.not_per_visit (the card counts orders or amounts), "
            "stamps.order_required (the card counts visits only with an order).",
        },
    },
)
def add_stamps(
    customer_id: CustomerId,
    body: StampsIn,
    response: Response,
    idempotency_key: HeaderKey = None,
    ctx: ServiceContext = Depends(get_ctx),
    _: ApiKey = Depends(require("operator")),
) -> dict[str, Any]:
    """Stamps without an order: record a visit (one stamp per local day on a per-visit
    card; a day that already earned one gives none and says so, ``ignored:
    already_stamped_today``) or grant N stamps with a reason. The ladder pays its coupons and
    the card completes and restarts exactly as with order stamps.
    到店集章(每个自然日最多一枚)或人工补章;奖励阶梯与满卡规则与订单集章相同。"""
    key = _idem(body.idempotency_key, idempotency_key)
    return _write(
        ctx,
        response,
        lambda s, c: s.add_stamps(
            c,
            customer_id,
            body.card_id,
            idempotency_key=key,
            stamps=body.stamps,
            visited_at=body.visited_at,
            reason=body.reason,
        ),
    )


# -- coupons -----------------------------------------------------------------------------------
class IssueIn(_In):
    template: Identifier
    customer_id: Identifier
    idempotency_key: IdemKey | None = None


@router.post("/coupons", response_model=dict[str, Any], responses=_ERRS)
def issue_coupon(
    body: IssueIn,
    response: Response,
    idempotency_key: HeaderKey = None,
    ctx: ServiceContext = Depends(get_ctx),
    _: ApiKey = Depends(require("operator")),
) -> dict[str, Any]:
    """Issue a coupon of a template to a customer. 发放优惠券。"""
    key = _idem(body.idempotency_key, idempotency_key)
    return _write(
        ctx,
        response,
        lambda s, c: s.issue_coupon(c, body.template, body.customer_id, idempotency_key=key),
    )


class IssueBatchIn(_In):
    template: Identifier
    customer_ids: list[Identifier] = Field(min_length=1, max_length=10_000)
    idempotency_key: IdemKey | None = None


@router.post(
    "/coupons/batch",
    response_model=dict[str, Any],
    responses={
        **_ERRS,
        422: {
            "model": ErrorResponse,
            "description": "input.invalid: lines that cannot be issued, in details.problems "
            "({line, customer_id, kind: unknown|duplicate|limit_reached|invalid, first}).",
        },
    },
)
def issue_coupon_batch(
    body: IssueBatchIn,
    response: Response,
    idempotency_key: HeaderKey = None,
    ctx: ServiceContext = Depends(get_ctx),
    _: ApiKey = Depends(require("operator")),
) -> dict[str, Any]:
    """Issue one coupon of a template to each of many customers, in one unit of work — the
    console's batch. Every id is checked first (a customer of the store, named once, below
    the template's limit); with one problem nothing is issued. Idempotent by key: the same
    batch again issues nothing new (``replayed`` counts them). 批量发券(先逐行校验,幂等)。"""
    from huitouke.app.coupon_batch import issue_coupon_batch as issue_batch

    key = _idem(body.idempotency_key, idempotency_key)
    entries = [(i + 1, cid) for i, cid in enumerate(body.customer_ids)]
    result = run_write(
        ctx.store,
        lambda c: issue_batch(
            loyalty_service(c, ctx), c, body.template, entries, batch_key=f"batch-{key}"
        ),
    )
    if result["issued"] == 0 and result["replayed"] == result["customers"]:
        response.headers["Idempotent-Replayed"] = "true"
    return dict(result)


@router.get("/coupons/{code}", response_model=dict[str, Any], responses=_ERRS)
def get_coupon(
    code: CouponCode, ctx: ServiceContext = Depends(get_ctx), _: ApiKey = Depends(require("read"))
) -> dict[str, Any]:
    """One coupon with its event history. 查询优惠券及其流转记录。"""
    return present_coupon(dict(_read(ctx, lambda s, c: s.coupon(c, code))))


_ORDER_SOURCE = Field(
    None,
    max_length=64,
    description="The order's source (the namespace of its id, as in POST /v1/orders); "
    "default: default.",
)


class RedeemIn(_In):
    order_id: Identifier
    source: str | None = _ORDER_SOURCE
    customer_id: Identifier
    order_amount: MoneyIn | None = Field(
        None, description="The order's amount, to check thresholds and compute the discount."
    )
    redemption_id: IdemKey | None = Field(
        None, description="Idempotency key of this redemption (default: code + order_id)."
    )
    lines: list[OrderLineIn] | None = Field(None, max_length=1000)


class RedeemOut(BaseModel):
    code: str
    status: str
    order_id: str
    source: str | None = None
    customer_id: str
    template: str | None = None
    kind: str | None = None
    discount: str | None = None
    currency: str | None = None
    redeemed_at: str | None = None
    redemption_id: str | None = None
    holder: str | None = Field(
        None,
        description="The account of the customer's person that held the coupon, when "
        "another than customer_id (docs/identity.md).",
    )


@router.post(
    "/coupons/{code}/redeem",
    response_model=RedeemOut,
    responses={
        **_ERRS,
        409: {
            "model": ErrorResponse,
            "description": "coupon.already_redeemed (another redemption won), coupon.expired, "
            "coupon.not_holder, …",
        },
    },
)
def redeem_coupon(
    code: CouponCode,
    body: RedeemIn,
    response: Response,
    ctx: ServiceContext = Depends(get_ctx),
    _: ApiKey = Depends(require("operator")),
) -> dict[str, Any]:
    """Redeem a coupon on an order. Of concurrent redemptions of one code exactly one
    succeeds; the others get 409 ``coupon.already_redeemed``. 核销优惠券(并发时只有一次成功)。"""
    lines = [ln.model_dump() for ln in body.lines] if body.lines is not None else None
    ref = order_reference(body.order_id, body.source)
    return _write(
        ctx,
        response,
        lambda s, c: s.redeem_coupon(
            c,
            code,
            order_id=ref,
            customer_id=body.customer_id,
            order_amount=body.order_amount,
            redemption_id=body.redemption_id,
            lines=lines,
        ),
        present_order_ref,
    )


class GiftIn(_In):
    from_customer: Identifier
    to_customer: Identifier
    idempotency_key: IdemKey | None = None


@router.post("/coupons/{code}/gift", response_model=dict[str, Any], responses=_ERRS)
def gift_coupon(
    code: CouponCode,
    body: GiftIn,
    response: Response,
    idempotency_key: HeaderKey = None,
    ctx: ServiceContext = Depends(get_ctx),
    _: ApiKey = Depends(require("operator")),
) -> dict[str, Any]:
    """Gift a coupon to a friend, who becomes its holder. 转赠优惠券给好友。"""
    return _write(
        ctx,
        response,
        lambda s, c: s.gift_coupon(
            c,
            code,
            body.from_customer,
            body.to_customer,
            idempotency_key=body.idempotency_key or idempotency_key,
        ),
    )


class VoidIn(_In):
    reason: Text = ""
    idempotency_key: IdemKey | None = None


@router.post("/coupons/{code}/void", response_model=dict[str, Any], responses=_ERRS)
def void_coupon(
    code: CouponCode,
    response: Response,
    idempotency_key: HeaderKey = None,
    body: VoidIn = Body(default_factory=VoidIn),
    ctx: ServiceContext = Depends(get_ctx),
    _: ApiKey = Depends(require("operator")),
) -> dict[str, Any]:
    """Void an unredeemed coupon. 作废未使用的优惠券。"""
    return _write(
        ctx,
        response,
        lambda s, c: s.void_coupon(
            c, code, reason=body.reason, idempotency_key=body.idempotency_key or idempotency_key
        ),
    )


class QuoteIn(_In):
    customer_id: Identifier
    amount: MoneyIn
    lines: list[OrderLineIn] | None = Field(None, max_length=1000)
    coupon_codes: list[
        Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9\-]+$")]
    ] = Field(default_factory=list, max_length=20)


@router.post("/checkout/quote", response_model=dict[str, Any], responses=_ERRS)
def checkout_quote(
    body: QuoteIn,
    ctx: ServiceContext = Depends(get_ctx),
    _: ApiKey = Depends(require("operator")),
) -> dict[str, Any]:
    """Price an order: member discount, then coupons with stacking rules (read-only).
    结账试算:会员折扣与优惠券叠加规则(不改变任何数据)。"""
    lines = [ln.model_dump() for ln in body.lines] if body.lines is not None else None
    return dict(
        _read(
            ctx,
            lambda s, c: s.checkout_quote(
                c, body.customer_id, body.amount, lines, body.coupon_codes
            ),
        )
    )


# -- points ------------------------------------------------------------------------------------
class AdjustIn(_In):
    delta: Annotated[
        Any, Field(description="Points to add (> 0) or take (< 0); decimal string or number.")
    ]
    reason: Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=ID_PATTERN)]
    idempotency_key: IdemKey | None = None


def _decimal_field(value: Any, field: str) -> Any:
    from decimal import Decimal, InvalidOperation

    try:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise InvalidOperation
        d = Decimal(str(value))
        if not d.is_finite() or abs(d) >= Decimal(10) ** 14 or d.as_tuple().exponent < -4:  # type: ignore[operator]
            raise InvalidOperation
    except InvalidOperation:
        raise InputError(
            f"{field}: a decimal number with at most 4 decimal places is required",
            code="input.invalid",
            message_zh=f"{field}:须为最多 4 位小数的数字",
            details={"fields": [{"field": field, "reason": "not a decimal"}]},
        ) from None
    return d


@router.post(
    "/customers/{customer_id}/points/adjust", response_model=dict[str, Any], responses=_ERRS
)
def adjust_points(
    customer_id: CustomerId,
    body: AdjustIn,
    response: Response,
    idempotency_key: HeaderKey = None,
    ctx: ServiceContext = Depends(get_ctx),
    api_key: ApiKey = Depends(require("operator")),
) -> dict[str, Any]:
    """Operator adjustment of points (credit or FIFO debit; never below zero), recorded in
    the corrections' audit trail with the key that made it. 人工调整积分(记入调整审计)。"""
    key = _idem(body.idempotency_key, idempotency_key)
    delta = _decimal_field(body.delta, "delta")
    actor = f"api-key:{api_key.key_id}"
    return _write(
        ctx,
        response,
        lambda s, c: s.adjust_points(
            c, customer_id, delta, reason=body.reason, idempotency_key=key, actor=actor
        ),
    )


class SvAdjustIn(_In):
    balance: Literal["paid", "bonus"] = Field(
        description="paid: the principal; bonus: the released bonus."
    )
    delta: Annotated[
        Any, Field(description="Amount to add (> 0) or take (< 0); decimal string or number.")
    ]
    reason: Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=ID_PATTERN)]
    idempotency_key: IdemKey | None = None


@router.post(
    "/customers/{customer_id}/stored-value/adjust",
    response_model=dict[str, Any],
    responses={
        409: {
            "model": ErrorResponse,
            "description": "stored_value.insufficient: the correction would make the balance "
            "negative.",
        }
    },
)
def adjust_stored_value(
    customer_id: CustomerId,
    body: SvAdjustIn,
    response: Response,
    idempotency_key: HeaderKey = None,
    ctx: ServiceContext = Depends(get_ctx),
    api_key: ApiKey = Depends(require("admin")),
) -> dict[str, Any]:
    """Correct a stored-value balance (paid or bonus) with a reason; never below zero;
    recorded in the corrections' audit trail. 更正储值余额(本金或赠送,须注明原因)。"""
    key = _idem(body.idempotency_key, idempotency_key)
    delta = _decimal_field(body.delta, "delta")
    actor = f"api-key:{api_key.key_id}"
    return _write(
        ctx,
        response,
        lambda s, c: s.adjust_stored_value(
            c,
            customer_id,
            delta,
            balance=body.balance,
            reason=body.reason,
            idempotency_key=key,
            actor=actor,
        ),
    )


class RedeemPointsIn(_In):
    points: Points | None = None
    reward: Identifier | None = Field(
        None, description="A catalogue reward id (pays out a coupon)."
    )
    idempotency_key: IdemKey | None = None


@router.post(
    "/customers/{customer_id}/points/redeem", response_model=dict[str, Any], responses=_ERRS
)
def redeem_points(
    customer_id: CustomerId,
    body: RedeemPointsIn,
    response: Response,
    idempotency_key: HeaderKey = None,
    ctx: ServiceContext = Depends(get_ctx),
    _: ApiKey = Depends(require("operator")),
) -> dict[str, Any]:
    """Spend points (earliest-expiring first) for a reward or a cash discount. 积分兑换。"""
    key = _idem(body.idempotency_key, idempotency_key)
    pts = _decimal_field(body.points, "points") if body.points is not None else None
    return _write(
        ctx,
        response,
        lambda s, c: s.redeem_points(c, customer_id, pts, reward=body.reward, idempotency_key=key),
    )


# -- stored value ----------------------------------------------------------------------------
class TopupIn(_In):
    amount: MoneyIn
    idempotency_key: IdemKey | None = None


@router.post("/customers/{customer_id}/topups", response_model=dict[str, Any], responses=_ERRS)
def topup(
    customer_id: CustomerId,
    body: TopupIn,
    response: Response,
    idempotency_key: HeaderKey = None,
    ctx: ServiceContext = Depends(get_ctx),
    _: ApiKey = Depends(require("operator")),
) -> dict[str, Any]:
    """Top up stored value; the bonus follows the program's release schedule (充200送200).
    储值充值(赠送部分按方案分期释放)。"""
    key = _idem(body.idempotency_key, idempotency_key)
    return _write(
        ctx, response, lambda s, c: s.topup(c, customer_id, body.amount, idempotency_key=key)
    )


class SpendIn(_In):
    amount: MoneyIn
    order_id: Identifier
    source: str | None = _ORDER_SOURCE
    idempotency_key: IdemKey | None = None


@router.post(
    "/customers/{customer_id}/stored-value/spend", response_model=dict[str, Any], responses=_ERRS
)
def spend_stored_value(
    customer_id: CustomerId,
    body: SpendIn,
    response: Response,
    idempotency_key: HeaderKey = None,
    ctx: ServiceContext = Depends(get_ctx),
    _: ApiKey = Depends(require("operator")),
) -> dict[str, Any]:
    """Pay (part of) an order from stored value. 用储值支付订单。"""
    ref = order_reference(body.order_id, body.source)
    return _write(
        ctx,
        response,
        lambda s, c: s.spend_stored_value(
            c,
            customer_id,
            body.amount,
            order_id=ref,
            idempotency_key=body.idempotency_key or idempotency_key,
        ),
        present_order_ref,
    )


class SvRefundIn(_In):
    amount: MoneyIn | None = Field(None, description="Default: the whole unspent paid balance.")
    idempotency_key: IdemKey | None = None


@router.post(
    "/customers/{customer_id}/stored-value/refund", response_model=dict[str, Any], responses=_ERRS
)
def refund_stored_value(
    customer_id: CustomerId,
    body: SvRefundIn,
    response: Response,
    idempotency_key: HeaderKey = None,
    ctx: ServiceContext = Depends(get_ctx),
    _: ApiKey = Depends(require("operator")),
) -> dict[str, Any]:
    """Refund unspent paid balance. 退还未消费的储值本金。"""
    key = _idem(body.idempotency_key, idempotency_key)
    return _write(
        ctx,
        response,
        lambda s, c: s.refund_stored_value(c, customer_id, body.amount, idempotency_key=key),
    )


class SvReverseIn(_In):
    order_id: Identifier
    source: str | None = _ORDER_SOURCE
    amount: MoneyIn | None = Field(
        None, description="Default: everything paid on the order not given back yet."
    )
    idempotency_key: IdemKey | None = None


@router.post(
    "/customers/{customer_id}/stored-value/reverse",
    response_model=dict[str, Any],
    responses={
        404: {
            "model": ErrorResponse,
            "description": "stored_value.spend_not_found: no stored value was paid on the order.",
        },
        409: {
            "model": ErrorResponse,
            "description": "stored_value.return_exceeds_spend: more than is left to give back.",
        },
    },
)
def reverse_stored_value_spend(
    customer_id: CustomerId,
    body: SvReverseIn,
    response: Response,
    idempotency_key: HeaderKey = None,
    ctx: ServiceContext = Depends(get_ctx),
    _: ApiKey = Depends(require("operator")),
) -> dict[str, Any]:
    """Give back stored value paid on an order (all that is left, or ``amount``), to the
    paid and bonus balances in the proportion the payment took them. Order events that
    refund the order do this by themselves (program ``stored_value.return_on_order_refund``).
    退回订单的储值支付(按原支付的本金/赠送比例)。"""
    key = _idem(body.idempotency_key, idempotency_key)
    ref = order_reference(body.order_id, body.source)
    return _write(
        ctx,
        response,
        lambda s, c: s.reverse_stored_value_spend(
            c, customer_id, ref, body.amount, idempotency_key=key
        ),
        present_order_ref,
    )


# -- paid membership -------------------------------------------------------------------------
class MembershipIn(_In):
    plan_id: Identifier | None = Field(None, description="Required to buy; optional to renew.")
    paid_with: Literal["external", "stored_value"] = "external"
    idempotency_key: IdemKey | None = None


@router.post("/customers/{customer_id}/memberships", response_model=dict[str, Any], responses=_ERRS)
def buy_membership(
    customer_id: CustomerId,
    body: MembershipIn,
    response: Response,
    idempotency_key: HeaderKey = None,
    ctx: ServiceContext = Depends(get_ctx),
    _: ApiKey = Depends(require("operator")),
) -> dict[str, Any]:
    """Buy a paid membership (付费会员). 购买付费会员。"""
    key = _idem(body.idempotency_key, idempotency_key)
    if body.plan_id is None:
        raise InputError(
            "plan_id is required",
            code="input.invalid",
            message_zh="缺少 plan_id",
            details={"fields": [{"field": "plan_id", "reason": "required"}]},
        )
    plan = body.plan_id
    return _write(
        ctx,
        response,
        lambda s, c: s.buy_membership(
            c, customer_id, plan, idempotency_key=key, paid_with=body.paid_with
        ),
    )


@router.post(
    "/customers/{customer_id}/memberships/renew", response_model=dict[str, Any], responses=_ERRS
)
def renew_membership(
    customer_id: CustomerId,
    body: MembershipIn,
    response: Response,
    idempotency_key: HeaderKey = None,
    ctx: ServiceContext = Depends(get_ctx),
    _: ApiKey = Depends(require("operator")),
) -> dict[str, Any]:
    """Renew a paid membership (from the end of the current term). 续费付费会员。"""
    key = _idem(body.idempotency_key, idempotency_key)
    return _write(
        ctx,
        response,
        lambda s, c: s.renew_membership(
            c, customer_id, idempotency_key=key, plan_id=body.plan_id, paid_with=body.paid_with
        ),
    )


# -- referrals ---------------------------------------------------------------------------------
@router.post(
    "/customers/{customer_id}/referral-code", response_model=dict[str, Any], responses=_ERRS
)
def referral_code(
    customer_id: CustomerId,
    ctx: ServiceContext = Depends(get_ctx),
    _: ApiKey = Depends(require("operator")),
) -> dict[str, Any]:
    """The customer's referral code (created once, then stable). 顾客的转介绍码。"""
    return dict(
        run_write(ctx.store, lambda c: loyalty_service(c, ctx).referral_code(c, customer_id))
    )


class ReferralIn(_In):
    referred_customer_id: Identifier
    code: Annotated[
        str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9\-]+$")
    ]


@router.post("/referrals", response_model=dict[str, Any], responses=_ERRS)
def register_referral(
    body: ReferralIn,
    ctx: ServiceContext = Depends(get_ctx),
    _: ApiKey = Depends(require("operator")),
) -> dict[str, Any]:
    """Record that a new customer arrived with a referral code; both sides are rewarded
    after the first paid order clears the refund window. 登记转介绍。"""
    return dict(
        run_write(
            ctx.store,
            lambda c: loyalty_service(c, ctx).register_referral(
                c, body.referred_customer_id, body.code
            ),
        )
    )


# -- group buy -------------------------------------------------------------------------------
class GroupOpenIn(_In):
    deal_id: Identifier
    leader_id: Identifier
    paid_with: Literal["external", "stored_value"] = "external"
    idempotency_key: IdemKey | None = None


@router.post("/group-buys", response_model=dict[str, Any], responses=_ERRS)
def groupbuy_open(
    body: GroupOpenIn,
    response: Response,
    idempotency_key: HeaderKey = None,
    ctx: ServiceContext = Depends(get_ctx),
    _: ApiKey = Depends(require("operator")),
) -> dict[str, Any]:
    """Open a group for a deal (拼团); the leader joins at once. 开团。"""
    key = _idem(body.idempotency_key, idempotency_key)
    return _write(
        ctx,
        response,
        lambda s, c: s.groupbuy_open(
            c, body.deal_id, body.leader_id, idempotency_key=key, paid_with=body.paid_with
        ),
    )


class GroupJoinIn(_In):
    customer_id: Identifier
    paid_with: Literal["external", "stored_value"] = "external"
    idempotency_key: IdemKey | None = None


GroupId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9\-]+$")]


def _group_id(raw: str) -> str:
    """A group id in canonical form; a string that cannot be one is simply not found."""
    try:
        return codes.normalize(raw)
    except ValueError as exc:
        raise NotFoundError(
            f"no group {raw!r} ({exc})",
            code="groupbuy.not_found",
            message_zh=f"没有这个拼团 {raw!r}",
            details={"group_id": raw},
        ) from exc


@router.post("/group-buys/{group_id}/join", response_model=dict[str, Any], responses=_ERRS)
def groupbuy_join(
    group_id: GroupId,
    body: GroupJoinIn,
    response: Response,
    idempotency_key: HeaderKey = None,
    ctx: ServiceContext = Depends(get_ctx),
    _: ApiKey = Depends(require("operator")),
) -> dict[str, Any]:
    """Join an open group; it forms when full. 参团。"""
    gid = _group_id(group_id)
    return _write(
        ctx,
        response,
        lambda s, c: s.groupbuy_join(
            c,
            gid,
            body.customer_id,
            idempotency_key=body.idempotency_key or idempotency_key,
            paid_with=body.paid_with,
        ),
    )


@router.get("/group-buys/{group_id}", response_model=dict[str, Any], responses=_ERRS)
def groupbuy_get(
    group_id: GroupId, ctx: ServiceContext = Depends(get_ctx), _: ApiKey = Depends(require("read"))
) -> dict[str, Any]:
    """A group and its members. 查询拼团。"""
    gid = _group_id(group_id)
    return dict(_read(ctx, lambda s, c: s.groupbuy(c, gid)))


# -- periodic jobs ---------------------------------------------------------------------------
Job = Literal[
    "expire", "release-bonus", "release-referral-rewards", "settle-group-buys", "review-tiers"
]


class JobIn(_In):
    as_of: Instant | None = Field(None, description="Default: now.")
    limit: int | None = Field(None, ge=1, le=1_000_000)


@router.post("/loyalty/jobs/{job}", response_model=dict[str, Any])
def run_job(
    job: Job,
    body: JobIn = Body(default_factory=JobIn),
    ctx: ServiceContext = Depends(get_ctx),
    _: ApiKey = Depends(require("operator")),
) -> dict[str, Any]:
    """Run a periodic job as of an instant (idempotent: a second run finds nothing due).
    运行定期任务:积分/集章过期、赠送储值释放、转介绍奖励、拼团结算、等级复核。"""
    at: datetime = body.as_of or ctx.clock()

    def op(s: LoyaltyService, c: Connection) -> dict[str, Any]:
        if job == "expire":
            return s.expire(c, at, limit=body.limit)
        if job == "release-bonus":
            return s.release_bonus(c, at, limit=body.limit)
        if job == "release-referral-rewards":
            return s.release_referral_rewards(c, at, limit=body.limit)
        if job == "settle-group-buys":
            return s.groupbuy_settle(c, at)
        return s.review_tiers(c, at, limit=body.limit)

    return dict(run_write(ctx.store, lambda c: op(loyalty_service(c, ctx), c)))


# -- program and ledger check ------------------------------------------------------------------
@router.get("/program", response_model=dict[str, Any])
def get_program_doc(
    ctx: ServiceContext = Depends(get_ctx), _: ApiKey = Depends(require("read"))
) -> dict[str, Any]:
    """The loyalty program in force (the stored one, else the defaults). 当前会员方案。"""
    return dict(_read(ctx, lambda s, c: s.program.to_document()))


@router.put("/program", response_model=dict[str, Any], responses={422: {"model": ErrorResponse}})
def put_program_doc(
    document: dict[str, Any] = Body(..., description="The program document (see docs/loyalty.md)."),
    ctx: ServiceContext = Depends(get_ctx),
    key: ApiKey = Depends(require("admin")),
) -> dict[str, Any]:
    """Replace the loyalty program (validated; errors name each bad field; audited).
    替换会员方案。"""
    return save_program_document(ctx, document, actor=f"apikey:{key.key_id}")


@router.get("/loyalty/summary", response_model=dict[str, Any])
def loyalty_summary(
    start: Instant | None = Query(
        None, description="Start of the period (default: end - 30 days)."
    ),
    end: Instant | None = Query(None, description="End of the period, exclusive (default: as_of)."),
    as_of: Instant | None = Query(None, description="Liabilities at this instant (default: now)."),
    ctx: ServiceContext = Depends(get_ctx),
    _: ApiKey = Depends(require("read")),
) -> dict[str, Any]:
    """What the program owes now (points and their value, stored value paid / bonus /
    pending, coupons outstanding), the redemption rates of a period and the members per
    tier — the numbers of the console's loyalty page, from the same function.
    负债(积分、储值本金/赠送/待释放、未用优惠券)、期间核销率与会员等级分布。"""
    now = as_of or ctx.clock()
    hi = end or now
    lo = start or hi - timedelta(days=30)
    return dict(_read(ctx, lambda s, c: s.summary(c, as_of=now, start=lo, end=hi)))


@router.get("/loyalty/corrections", response_model=list[dict[str, Any]])
def loyalty_corrections(
    customer_id: str | None = Query(None, min_length=1, max_length=128, pattern=ID_PATTERN),
    limit: int = Query(50, ge=1, le=1000),
    ctx: ServiceContext = Depends(get_ctx),
    _: ApiKey = Depends(require("read")),
) -> list[dict[str, Any]]:
    """The audit trail of ledger corrections (points and stored-value adjustments), newest
    first: who, when, which balance, how much, why. 账户调整审计记录(最新在前)。"""
    return list(_read(ctx, lambda s, c: s.corrections(c, customer_id=customer_id, limit=limit)))


@router.get("/loyalty/verify", response_model=dict[str, Any])
def verify(
    ctx: ServiceContext = Depends(get_ctx), _: ApiKey = Depends(require("admin"))
) -> dict[str, Any]:
    """Check the ledger: Σ entries = cached balance for every account, lots agree, no
    coupon redeemed twice. 校验账本。"""
    problems = run_read(ctx.store, lambda c: verify_ledger(c))
    return {"ok": not problems, "discrepancies": [dataclasses.asdict(p) for p in problems]}
