"""Stored settings and the audit log over REST (admin scope), through the same use case as
the console's settings page (:mod:`huitouke.app.settings`)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, Field

from huitouke.app.settings import clear_settings, save_settings, settings_view
from huitouke.service.apikeys import ApiKey
from huitouke.service.context import ServiceContext
from huitouke.service.deps import get_ctx, require
from huitouke.service.error_handlers import ERROR_RESPONSES
from huitouke.store.audit import list_audit
from huitouke.store.uow import run_read

router = APIRouter(prefix="/v1", tags=["admin"], responses=ERROR_RESPONSES)


class StoredSettingOut(BaseModel):
    name: str
    group: str
    secret: bool
    value: str | None = Field(description="The effective value; always null for a secret.")
    is_set: bool
    source: str = Field(description="stored, environment or default")
    updated_at: str | None
    updated_by: str | None


class StoredSettingsIn(BaseModel):
    values: dict[str, str] = Field(
        description="Setting name → value as text (as in the environment). An empty secret "
        "leaves it as it is; a value equal to the environment's removes the stored one."
    )


class AuditOut(BaseModel):
    event_id: int
    at: str
    actor: str
    action: str
    target: str
    outcome: str
    client: str
    detail: dict[str, Any]


def _client(request: Request) -> str:
    return request.client.host if request.client else "-"


@router.get("/settings/stored", response_model=list[StoredSettingOut])
def get_stored_settings(
    ctx: ServiceContext = Depends(get_ctx), _: ApiKey = Depends(require("admin"))
) -> list[dict[str, Any]]:
    """The editable settings, where each value comes from; secrets never. 可保存的设置。"""
    return [v.to_dict() for v in settings_view(ctx.store, ctx.settings)]


@router.put("/settings/stored", response_model=list[StoredSettingOut])
def put_stored_settings(
    body: StoredSettingsIn,
    request: Request,
    ctx: ServiceContext = Depends(get_ctx),
    key: ApiKey = Depends(require("admin")),
) -> list[dict[str, Any]]:
    """Store settings over the environment (validated as a whole). 保存设置。"""
    save_settings(
        ctx.store, ctx.settings, body.values, actor=f"apikey:{key.key_id}", now=ctx.clock(),
        client=_client(request),
    )  # fmt: skip
    return [v.to_dict() for v in settings_view(ctx.store, ctx.settings)]


@router.delete("/settings/stored/{name}", response_model=list[StoredSettingOut])
def delete_stored_setting(
    request: Request,
    name: str = Path(min_length=1, max_length=64, pattern=r"^[a-z0-9_]+$"),
    ctx: ServiceContext = Depends(get_ctx),
    key: ApiKey = Depends(require("admin")),
) -> list[dict[str, Any]]:
    """Remove a stored value; the environment's applies again. 清除已保存的设置。"""
    clear_settings(
        ctx.store, ctx.settings, [name], actor=f"apikey:{key.key_id}", now=ctx.clock(),
        client=_client(request),
    )  # fmt: skip
    return [v.to_dict() for v in settings_view(ctx.store, ctx.settings)]


@router.get("/audit", response_model=list[AuditOut])
def get_audit(
    limit: int = Query(100, ge=1, le=1000),
    before: int | None = Query(None, ge=1),
    ctx: ServiceContext = Depends(get_ctx),
    _: ApiKey = Depends(require("admin")),
) -> list[dict[str, Any]]:
    """The audit log, newest first. 操作日志。"""
    entries = run_read(ctx.store, lambda conn: list_audit(conn, limit=limit, before=before))
    return [e.to_dict() for e in entries]
