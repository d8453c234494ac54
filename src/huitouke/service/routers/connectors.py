"""Shop connectors over REST: the registry, sync, the inbox, and the platforms' webhooks.

``POST /v1/connectors/{name}/webhook`` takes no API key: the request guard lets it through
and the delivery is authenticated by its platform signature over the raw body
(``connector.bad_signature``, 401, nothing stored). A verified delivery is stored in the
inbox and committed, answered 200, and applied in the background
(:mod:`huitouke.service.webhook_door`, which also serves this route ahead of the router);
a delivery that cannot be mapped or recorded stays in the inbox as ``failed`` with its
reason (the platform must not resend it in a loop).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field, SecretStr
from sqlalchemy import Connection

from huitouke.app import connectors as uc
from huitouke.core.orders import SOURCE_PATTERN
from huitouke.loyalty.service import LoyaltyService
from huitouke.service.apikeys import ApiKey
from huitouke.service.context import ServiceContext
from huitouke.service.deps import get_ctx, require
from huitouke.service.error_handlers import ERROR_RESPONSES, ErrorResponse
from huitouke.service.programs import loyalty_service
from huitouke.service.webhook_door import forget_key, receive

router = APIRouter(prefix="/v1/connectors", tags=["connectors"], responses=ERROR_RESPONSES)

_NAME = Path(pattern=SOURCE_PATTERN, description="The connector's name (also its orders' source).")


class ConnectorIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: str = Field(
        description="shopify | woocommerce | youzan | taobao | douyin | pinduoduo | wechat_shop | jd"
    )
    name: str = Field(pattern=SOURCE_PATTERN, description="Also the source of its orders.")
    api_base_url: str = Field(max_length=500, description="The platform's base URL.")
    webhook_secret: SecretStr = Field(description="Signs the platform's webhooks.")
    shop: str | None = Field(None, max_length=200)
    access_token: SecretStr | None = Field(None, description="Shopify Admin API token.")
    consumer_key: SecretStr | None = Field(None, description="WooCommerce REST key.")
    consumer_secret: SecretStr | None = Field(None, description="WooCommerce REST secret.")
    overlap_seconds: int = Field(300, ge=0, le=86_400)
    page_size: int = Field(100, ge=1, le=250)
    refresh_token: SecretStr | None = Field(
        None, description="Douyin: the shop's refresh token (renews the access token)."
    )
    auth_code: SecretStr | None = Field(
        None,
        description="Douyin without access_token: the code the shop's authorisation "
        "returned; the first token pair is asked with token.create (used once, not stored).",
    )
    authorise_self: bool = Field(
        False,
        description="Douyin without access_token, the merchant's own self-use app: the first "
        "token pair for the shop id in `shop` (token.create, authorization_self).",
    )


def _plain(v: SecretStr | None) -> str | None:
    return None if v is None else v.get_secret_value()


def _loyalty(ctx: ServiceContext) -> uc.LoyaltyFactory:
    def factory(conn: Connection) -> LoyaltyService | None:
        return loyalty_service(conn, ctx)

    return factory


@router.get("", response_model=list[dict[str, Any]])
def get_connectors(
    ctx: ServiceContext = Depends(get_ctx), _: ApiKey = Depends(require("read"))
) -> list[dict[str, Any]]:
    """Every connector (credentials only as "set"). 全部连接器(凭据只显示"已设置")。"""
    return uc.list_connectors(ctx.store)


@router.post("", status_code=201, responses={409: {"model": ErrorResponse}})
def post_connector(
    body: ConnectorIn,
    ctx: ServiceContext = Depends(get_ctx),
    _: ApiKey = Depends(require("admin")),
) -> dict[str, Any]:
    """Add a connector; its credentials are stored encrypted. 添加连接器(凭据加密保存)。"""
    spec = uc.ConnectorIn(
        kind=body.kind,
        name=body.name,
        api_base_url=body.api_base_url,
        webhook_secret=body.webhook_secret.get_secret_value(),
        shop=body.shop,
        access_token=_plain(body.access_token),
        consumer_key=_plain(body.consumer_key),
        consumer_secret=_plain(body.consumer_secret),
        overlap_seconds=body.overlap_seconds,
        page_size=body.page_size,
        refresh_token=_plain(body.refresh_token),
        auth_code=_plain(body.auth_code),
        authorise_self=body.authorise_self,
    )
    return uc.add_connector(ctx.store, ctx.settings, spec, now=ctx.clock())


@router.get("/{name}", responses={404: {"model": ErrorResponse}})
def get_connector(
    name: str = _NAME, ctx: ServiceContext = Depends(get_ctx), _: ApiKey = Depends(require("read"))
) -> dict[str, Any]:
    """One connector, with its sync cursor. 单个连接器及其同步游标。"""
    return uc.show_connector(ctx.store, name)


@router.delete("/{name}", status_code=204, responses={404: {"model": ErrorResponse}})
def delete_connector(
    name: str = _NAME, ctx: ServiceContext = Depends(get_ctx), _: ApiKey = Depends(require("admin"))
) -> None:
    """Remove a connector, its cursor and inbox (its orders stay). 删除连接器(订单保留)。"""
    uc.remove_connector(ctx.store, name)
    forget_key(ctx, name)


@router.post("/{name}/pause", responses={404: {"model": ErrorResponse}})
def pause_connector(
    name: str = _NAME,
    ctx: ServiceContext = Depends(get_ctx),
    _: ApiKey = Depends(require("operator")),
) -> dict[str, Any]:
    """Pause pulls and the applying of webhooks (deliveries are still stored).
    暂停拉取与推送处理(推送仍会存入收件箱)。"""
    forget_key(ctx, name)
    return uc.set_paused(ctx.store, name, True, now=ctx.clock())


@router.post("/{name}/resume", responses={404: {"model": ErrorResponse}})
def resume_connector(
    name: str = _NAME,
    ctx: ServiceContext = Depends(get_ctx),
    _: ApiKey = Depends(require("operator")),
) -> dict[str, Any]:
    """Resume a paused connector. 恢复连接器。"""
    forget_key(ctx, name)
    return uc.set_paused(ctx.store, name, False, now=ctx.clock())


@router.post(
    "/{name}/sync", responses={404: {"model": ErrorResponse}, 409: {"model": ErrorResponse}}
)
def sync_connector(
    name: str = _NAME,
    bulk: bool = Query(False, description="Shopify: through a bulk operation (backfill)."),
    ctx: ServiceContext = Depends(get_ctx),
    _: ApiKey = Depends(require("operator")),
) -> dict[str, Any]:
    """Pull the orders updated since the connector's cursor (less its overlap window).
    增量拉取订单(游标减去重叠窗口之后更新的订单)。"""
    return uc.sync(
        ctx.store, ctx.settings, name, loyalty=_loyalty(ctx), clock=ctx.clock, bulk=bulk
    ).as_dict()


@router.get("/{name}/inbox", responses={404: {"model": ErrorResponse}})
def get_inbox(
    name: str = _NAME,
    failed: bool = Query(False, description="Only the failed deliveries."),
    limit: int = Query(100, ge=1, le=1000),
    ctx: ServiceContext = Depends(get_ctx),
    _: ApiKey = Depends(require("read")),
) -> list[dict[str, Any]]:
    """The connector's webhook inbox, oldest update first. 推送收件箱。"""
    return uc.inbox(ctx.store, name, failed_only=failed, limit=limit)


@router.post("/{name}/retry", responses={404: {"model": ErrorResponse}})
def retry_inbox(
    name: str = _NAME,
    ctx: ServiceContext = Depends(get_ctx),
    _: ApiKey = Depends(require("operator")),
) -> dict[str, int]:
    """Apply the failed and pending deliveries again. 重试失败与待处理的推送。"""
    return uc.retry(ctx.store, ctx.settings, name, loyalty=_loyalty(ctx), now=ctx.clock())


@router.get("/{name}/webhook", response_class=PlainTextResponse, include_in_schema=False)
def verify_webhook_url(request: Request, name: str = _NAME) -> PlainTextResponse:
    """WeChat's check of a push URL: ``echostr`` when ``signature`` is right (401 else).
    微信消息推送地址验证。"""
    ctx: ServiceContext = request.app.state.ctx
    query = dict(request.query_params)
    return PlainTextResponse(uc.verify_webhook_url(ctx.store, ctx.settings, name, query))


@router.post(
    "/{name}/webhook",
    response_model=dict[str, Any],
    responses={401: {"model": ErrorResponse}, 404: {"model": ErrorResponse}},
)
async def post_webhook(request: Request, name: str = _NAME) -> Any:
    """A platform's webhook delivery, authenticated by its signature over the raw body (no
    API key): stored in the inbox and committed, then answered; applied in the background
    (``status``: the inbox row's when answered). 平台推送(按签名验证,入收件箱提交后即应答,随后在后台处理)。"""
    ctx: ServiceContext = request.app.state.ctx
    headers = {k.lower(): v for k, v in request.headers.items()}
    out = await receive(ctx, name, headers, await request.body(), dict(request.query_params))
    return PlainTextResponse(out) if isinstance(out, str) else out
