"""Tags and profile attributes over REST, through the same use cases as the console and
``huitouke tags|attributes`` (:mod:`huitouke.app.profiles`). Reading needs ``read``,
tagging and setting values ``operator``, defining an attribute ``admin``."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel, Field, StringConstraints, model_validator

from huitouke.app.profiles import (
    Target,
    change_attribute,
    change_tags,
    customer_profile,
    define_attribute,
    parse_audience,
    profile_overview,
)
from huitouke.service.apikeys import ApiKey
from huitouke.service.context import ServiceContext
from huitouke.service.deps import get_ctx, require
from huitouke.service.error_handlers import ERROR_RESPONSES, ErrorResponse
from huitouke.service.schemas import ID_PATTERN

router = APIRouter(prefix="/v1", tags=["profiles"], responses=ERROR_RESPONSES)

Tag = Annotated[str, StringConstraints(min_length=1, max_length=64)]
_NO_CUSTOMER: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorResponse, "description": "customer.not_found"}
}
_NO_ATTRIBUTE: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorResponse, "description": "customer.not_found / attribute.not_found"}
}
_CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"model": ErrorResponse, "description": "attribute.conflict"}
}


class TargetIn(BaseModel):
    customer_ids: list[Annotated[str, StringConstraints(min_length=1, max_length=128)]] | None = (
        Field(None, max_length=100_000)
    )
    audience: dict[str, Any] | None = Field(
        None, description="A journey audience (segments, layers, tags, attributes…)."
    )

    def target(self) -> Target:
        audience = parse_audience(self.audience) if self.audience is not None else None
        return Target(customer_ids=self.customer_ids, audience=audience)


class TagsIn(TargetIn):
    tags: list[Tag] = Field(min_length=1, max_length=100)
    action: Literal["add", "remove"] = "add"


class AttributeIn(BaseModel):
    key: str = Field(min_length=1, max_length=64)
    type: Literal["text", "number", "date", "choice"]
    choices: list[Annotated[str, StringConstraints(min_length=1, max_length=100)]] = []


class AttributeValueIn(TargetIn):
    value: str | None = Field(None, description="The new value as text; null clears it.")

    @model_validator(mode="after")
    def _short(self) -> AttributeValueIn:
        if self.value is not None and len(self.value) > 500:
            raise ValueError("value: at most 500 characters")
        return self


def _client(request: Request) -> str:
    return request.client.host if request.client else "-"


@router.get("/tags")
def get_tags(
    ctx: ServiceContext = Depends(get_ctx), _: ApiKey = Depends(require("read"))
) -> dict[str, Any]:
    """Every tag with its number of customers, and the defined attributes. 标签与属性。"""
    return profile_overview(ctx.store)


@router.post("/tags", responses=_NO_CUSTOMER)
def post_tags(
    body: TagsIn,
    request: Request,
    ctx: ServiceContext = Depends(get_ctx),
    key: ApiKey = Depends(require("operator")),
) -> dict[str, Any]:
    """Add or remove tags on customers by id or on an audience. 批量添加或移除标签。"""
    return change_tags(
        ctx.store, ctx.settings, body.target(), body.tags, remove=body.action == "remove",
        actor=f"apikey:{key.key_id}", now=ctx.clock(), client=_client(request),
    )  # fmt: skip


@router.post("/attributes", status_code=201, responses=_CONFLICT)
def post_attribute(
    body: AttributeIn,
    request: Request,
    ctx: ServiceContext = Depends(get_ctx),
    key: ApiKey = Depends(require("admin")),
) -> dict[str, Any]:
    """Define a profile attribute (text, number, date, choice). 定义画像属性。"""
    attr = define_attribute(
        ctx.store, body.key, body.type, choices=body.choices, actor=f"apikey:{key.key_id}",
        now=ctx.clock(), client=_client(request),
    )  # fmt: skip
    return attr.to_dict()


@router.post("/attributes/{attr_key}/values", responses=_NO_ATTRIBUTE)
def post_attribute_values(
    body: AttributeValueIn,
    request: Request,
    attr_key: str = Path(min_length=1, max_length=64),
    ctx: ServiceContext = Depends(get_ctx),
    key: ApiKey = Depends(require("operator")),
) -> dict[str, Any]:
    """Set (or clear, with null) an attribute on customers or an audience. 设置画像属性。"""
    return change_attribute(
        ctx.store, ctx.settings, body.target(), attr_key, body.value,
        actor=f"apikey:{key.key_id}", now=ctx.clock(), client=_client(request),
    )  # fmt: skip


@router.get("/customers/{customer_id}/profile", responses=_NO_CUSTOMER)
def get_customer_profile(
    customer_id: str = Path(min_length=1, max_length=128, pattern=ID_PATTERN),
    ctx: ServiceContext = Depends(get_ctx),
    _: ApiKey = Depends(require("read")),
) -> dict[str, Any]:
    """A customer's tags, attribute values and their history. 顾客标签与画像。"""
    profile = customer_profile(ctx.store, customer_id)
    profile["history"] = [{**h, "at": h["at"].isoformat()} for h in profile["history"]]
    return profile
