"""One customer across platforms: a person's accounts, merge, unmerge, matches, history.

Merges and unmerges need an operator key and a reason; every one is recorded (who: the
key's id). Reads need a read key; no route returns a phone number or an e-mail address
(matching keys are stored hashed).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from huitouke.identity import service as identity
from huitouke.identity.keys import identity_secret
from huitouke.service.apikeys import ApiKey
from huitouke.service.context import ServiceContext
from huitouke.service.deps import get_ctx, require
from huitouke.service.error_handlers import ERROR_RESPONSES, ErrorResponse
from huitouke.service.schemas import ID_PATTERN
from huitouke.store.uow import run_read, run_write

router = APIRouter(prefix="/v1/identity", tags=["identity"], responses=ERROR_RESPONSES)

_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorResponse, "description": "No such customer (identity.unknown_customer)."}
}
_CHANGE: dict[int | str, dict[str, Any]] = {
    **_NOT_FOUND,
    409: {
        "model": ErrorResponse,
        "description": "One person already (identity.already_merged) or not merged "
        "(identity.not_merged).",
    },
}

CustomerId = Path(min_length=1, max_length=128, pattern=ID_PATTERN, description="Customer id.")


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


IdItem = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=ID_PATTERN)]


class MergeIn(_In):
    customer_ids: list[IdItem] = Field(
        ...,
        min_length=2,
        max_length=100,
        description="The accounts to make one person; the first one's person absorbs the rest.",
    )
    reason: str = Field(..., min_length=1, max_length=500)


class UnmergeIn(_In):
    customer_id: str = Field(..., min_length=1, max_length=128, pattern=ID_PATTERN)
    reason: str = Field(..., min_length=1, max_length=500)


def _actor(key: ApiKey) -> str:
    return f"apikey:{key.key_id}"


@router.post("/merge", response_model=dict[str, Any], responses=_CHANGE)
def merge(
    body: MergeIn,
    ctx: ServiceContext = Depends(get_ctx),
    key: ApiKey = Depends(require("operator")),
) -> dict[str, Any]:
    """Make these accounts one person (with a reason; recorded). 合并为同一个人。"""
    now = ctx.clock()
    return run_write(
        ctx.store,
        lambda conn: identity.merge(
            conn, body.customer_ids, actor=_actor(key), reason=body.reason, now=now
        ),
    )


@router.post("/unmerge", response_model=dict[str, Any], responses=_CHANGE)
def unmerge(
    body: UnmergeIn,
    ctx: ServiceContext = Depends(get_ctx),
    key: ApiKey = Depends(require("operator")),
) -> dict[str, Any]:
    """Take an account out of its person (with a reason; recorded). 拆分账户。"""
    now = ctx.clock()
    return run_write(
        ctx.store,
        lambda conn: identity.unmerge(
            conn, body.customer_id, actor=_actor(key), reason=body.reason, now=now
        ),
    )


@router.post("/index", response_model=dict[str, int])
def index(
    ctx: ServiceContext = Depends(get_ctx),
    _: ApiKey = Depends(require("operator")),
) -> dict[str, int]:
    """Rebuild the hashed matching keys of every customer. 重建匹配键。"""
    now = ctx.clock()
    secret = identity_secret(ctx.settings.secret_key.get_secret_value())
    region = ctx.settings.phone_region
    return run_write(
        ctx.store,
        lambda conn: identity.index_keys(conn, secret=secret, region=region, now=now),
    )


@router.get("/matches", response_model=list[dict[str, Any]])
def matches(
    ctx: ServiceContext = Depends(get_ctx),
    _: ApiKey = Depends(require("read")),
) -> list[dict[str, Any]]:
    """Accounts of different persons that share a phone, e-mail or union id (by key kind,
    never the key). 疑似同一人的账户。"""
    return [m.to_dict() for m in run_read(ctx.store, identity.matches)]


@router.get("/history", response_model=list[dict[str, Any]])
def history(
    customer_id: str | None = Query(None, max_length=128, pattern=ID_PATTERN),
    limit: int = Query(100, ge=1, le=1000),
    ctx: ServiceContext = Depends(get_ctx),
    _: ApiKey = Depends(require("read")),
) -> list[dict[str, Any]]:
    """Merges and unmerges, newest first. 合并与拆分记录。"""
    return run_read(ctx.store, lambda conn: identity.history(conn, customer_id, limit=limit))


@router.get("/{customer_id}", response_model=dict[str, Any], responses=_NOT_FOUND)
def person(
    customer_id: str = CustomerId,
    ctx: ServiceContext = Depends(get_ctx),
    _: ApiKey = Depends(require("read")),
) -> dict[str, Any]:
    """The person this account belongs to: its accounts and, per source, their orders.
    该账户所属的人及各来源的订单。"""
    return run_read(ctx.store, lambda conn: identity.person(conn, customer_id))
