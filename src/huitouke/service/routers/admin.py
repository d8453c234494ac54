"""Administration: API keys and the effective settings (admin scope)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel, Field, StringConstraints

from huitouke.service.apikeys import ApiKey, Scope, create_api_key, list_api_keys, revoke_api_key
from huitouke.service.context import ServiceContext
from huitouke.service.deps import get_ctx, require
from huitouke.service.error_handlers import ERROR_RESPONSES, ErrorResponse
from huitouke.store.uow import run_read, run_write

router = APIRouter(prefix="/v1", tags=["admin"], responses=ERROR_RESPONSES)


class ApiKeyOut(BaseModel):
    key_id: str
    name: str
    scope: Scope
    created_at: str
    revoked_at: str | None
    active: bool


class ApiKeyCreateIn(BaseModel):
    scope: Scope
    name: (
        Annotated[
            str, StringConstraints(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")
        ]
        | None
    ) = None


class ApiKeyCreatedOut(ApiKeyOut):
    key: str = Field(description="The key itself. Shown only in this response; store it safely.")


@router.get("/apikeys", response_model=list[ApiKeyOut])
def get_api_keys(
    ctx: ServiceContext = Depends(get_ctx), _: ApiKey = Depends(require("admin"))
) -> list[dict[str, Any]]:
    """All API keys (never their secrets). 全部 API 密钥(不含密钥本身)。"""
    return [k.to_dict() for k in run_read(ctx.store, list_api_keys)]


@router.post("/apikeys", response_model=ApiKeyCreatedOut, status_code=201)
def post_api_key(
    body: ApiKeyCreateIn,
    ctx: ServiceContext = Depends(get_ctx),
    key: ApiKey = Depends(require("admin")),
) -> dict[str, Any]:
    """Create an API key; the key text is returned once. 创建 API 密钥(只返回这一次)。"""
    now = ctx.clock()
    record, full = run_write(
        ctx.store,
        lambda conn: create_api_key(
            conn, scope=body.scope, name=body.name, now=now, actor=f"apikey:{key.key_id}"
        ),
    )
    return {**record.to_dict(), "key": full}


@router.delete(
    "/apikeys/{key_id}",
    response_model=ApiKeyOut,
    responses={404: {"model": ErrorResponse, "description": "apikey.not_found"}},
)
def delete_api_key(
    key_id: str = Path(min_length=1, max_length=32, pattern=r"^[0-9a-f]+$"),
    ctx: ServiceContext = Depends(get_ctx),
    key: ApiKey = Depends(require("admin")),
) -> dict[str, Any]:
    """Revoke an API key (kept for the audit trail). 吊销 API 密钥。"""
    now = ctx.clock()
    revoked = run_write(
        ctx.store,
        lambda conn: revoke_api_key(conn, key_id, now=now, actor=f"apikey:{key.key_id}"),
    )
    ctx.keys.evict(key_id)
    return revoked.to_dict()


@router.get("/settings", response_model=dict[str, Any])
def get_settings_view(
    ctx: ServiceContext = Depends(get_ctx), _: ApiKey = Depends(require("admin"))
) -> dict[str, Any]:
    """The effective settings: the environment with the stored values over it (secrets
    hidden). 当前生效的设置(隐藏密钥)。"""
    from huitouke.store.stored_settings import effective_settings

    data = effective_settings(ctx.store, ctx.settings, open_secrets=False).public_dump()
    data["database_url"] = ctx.store.engine.url.render_as_string(hide_password=True)
    return data
