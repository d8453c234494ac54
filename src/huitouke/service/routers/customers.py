"""Customer profiles with consent per channel (personal fields masked for read keys)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Path, Response

from huitouke.app.consent import set_consent
from huitouke.service.apikeys import ApiKey
from huitouke.service.context import ServiceContext
from huitouke.service.customers import get_customer, put_customer
from huitouke.service.deps import get_ctx, require
from huitouke.service.error_handlers import ERROR_RESPONSES, ErrorResponse
from huitouke.service.masking import mask_email, mask_name, mask_phone
from huitouke.service.schemas import ID_PATTERN, ConsentIn, CustomerOut, CustomerProfileIn
from huitouke.store.uow import run_read, run_write

router = APIRouter(prefix="/v1/customers", tags=["customers"], responses=ERROR_RESPONSES)

CustomerId = Path(min_length=1, max_length=128, pattern=ID_PATTERN, description="Customer id.")
_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorResponse, "description": "No such customer (customer.not_found)."}
}


def present_customer(row: dict[str, Any], key: ApiKey) -> CustomerOut:
    """The profile as a key of this scope may see it: read keys get masked personal data."""
    masked = key.scope == "read"
    out = dict(row)
    if masked:
        out["name"] = mask_name(out.get("name"))
        out["phone"] = mask_phone(out.get("phone"))
        out["email"] = mask_email(out.get("email"))
    out["masked"] = masked
    return CustomerOut.model_validate(out)


@router.get("/{customer_id}", response_model=CustomerOut, responses=_NOT_FOUND)
def read_customer(
    customer_id: str = CustomerId,
    ctx: ServiceContext = Depends(get_ctx),
    key: ApiKey = Depends(require("read")),
) -> CustomerOut:
    """A customer's profile. 顾客资料(只读密钥看到的姓名、手机号、邮箱已脱敏)。"""
    row = run_read(ctx.store, lambda conn: get_customer(conn, customer_id))
    return present_customer(row, key)


@router.put("/{customer_id}", response_model=CustomerOut, responses={201: {"model": CustomerOut}})
def replace_customer(
    body: CustomerProfileIn,
    response: Response,
    customer_id: str = CustomerId,
    ctx: ServiceContext = Depends(get_ctx),
    key: ApiKey = Depends(require("operator")),
) -> CustomerOut:
    """Create or replace a customer's profile. 新建或替换顾客资料(含各渠道的营销同意)。"""
    now = ctx.clock()
    row, created = run_write(
        ctx.store, lambda conn: put_customer(conn, customer_id, body.model_dump(), now=now)
    )
    if created:
        response.status_code = 201
    return present_customer(row, key)


@router.put("/{customer_id}/consent", response_model=CustomerOut, responses=_NOT_FOUND)
def update_consent(
    body: ConsentIn,
    customer_id: str = CustomerId,
    ctx: ServiceContext = Depends(get_ctx),
    key: ApiKey = Depends(require("operator")),
) -> CustomerOut:
    """Record the customer's explicit consent choice per channel (others unchanged); an opt-in
    after an unsubscribe restores that channel. Answers the consent the dispatcher applies.
    按渠道记录顾客明确的同意选择;退订后明确同意可恢复该渠道。"""
    now = ctx.clock()

    def write(conn: Any) -> dict[str, Any]:
        set_consent(conn, customer_id, body.consent, source="api", at=now)
        return get_customer(conn, customer_id)

    row = run_write(ctx.store, write)
    return present_customer(row, key)
