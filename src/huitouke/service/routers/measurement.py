"""Measurement over HTTP: the tracked-link redirect ``/r/{token}``, the page a package-insert
QR code opens and insert-code claims (:mod:`huitouke.measurement` does the work)."""

from __future__ import annotations

import html
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import BaseModel
from sqlalchemy import Connection

from huitouke.errors import InputError
from huitouke.i18n import t
from huitouke.measurement.codes import claim_code
from huitouke.measurement.links import record_click, verify_link_token
from huitouke.service import messages as _messages  # noqa: F401  (registers the texts)
from huitouke.service.apikeys import ApiKey
from huitouke.service.context import ServiceContext
from huitouke.service.deps import get_ctx, require
from huitouke.service.error_handlers import ERROR_RESPONSES, ErrorResponse
from huitouke.service.programs import loyalty_service
from huitouke.store.uow import run_write

__all__ = ["router"]

router = APIRouter(tags=["measurement"], responses=ERROR_RESPONSES)


def _link_error_page(exc: InputError) -> HTMLResponse:
    """A page a person can read (the link was clicked in a message, not called by code)."""
    old = exc.code == "link.old_format"
    key = "link.old_format_page" if old else "link.invalid_page"
    title = f"{t('link.page_title', 'zh')} · {t('link.page_title', 'en')}"
    return HTMLResponse(
        "<!doctype html><meta charset=utf-8><meta name=viewport content='width=device-width'>"
        f"<title>{html.escape(title)}</title><h1>{html.escape(title)}</h1>"
        f"<p lang=zh-CN>{html.escape(t(key, 'zh'))}</p><p lang=en>{html.escape(t(key, 'en'))}</p>"
        f"<p><small>{html.escape(exc.code)}</small></p>",
        status_code=410 if old else 400,
    )


@router.get(
    "/r/{token}",
    summary="Tracked link: record the click and redirect",
    status_code=307,
    response_model=None,
    responses={
        400: {"description": "link.invalid: a page saying the link is not valid"},
        410: {"description": "link.old_format: a page saying the link is from an old version"},
    },
)
def redirect(
    token: str, request: Request, ctx: ServiceContext = Depends(get_ctx)
) -> RedirectResponse | HTMLResponse:
    try:
        claim = verify_link_token(token, ctx.settings.secret_key.get_secret_value())
    except InputError as exc:
        return _link_error_page(exc)
    ua = request.headers.get("user-agent")
    run_write(ctx.store, lambda conn: record_click(conn, claim, ctx.clock(), ua))
    return RedirectResponse(claim.url, status_code=307)


@router.get(
    "/claim/{code}", response_class=HTMLResponse, summary="The page a package-insert QR code opens"
)
def claim_page(code: str) -> HTMLResponse:
    c = html.escape(code.strip().upper())
    return HTMLResponse(
        "<!doctype html><meta charset=utf-8><meta name=viewport content='width=device-width'>"
        f"<title>{c}</title><h1>{c}</h1>"
        "<p>请在店铺结账时输入此券码,或告诉客服领取优惠券。</p>"
        "<p>Enter this code at checkout, or give it to our service staff, to get your coupon.</p>"
    )


class ClaimIn(BaseModel):
    customer_id: str
    coupon_template: str | None = None


@router.post(
    "/v1/insert-codes/{code}/claim",
    summary="Claim a package-insert code for a customer",
    responses={
        404: {"model": ErrorResponse, "description": "insert_code.not_found"},
        409: {"model": ErrorResponse, "description": "insert_code.used"},
    },
)
def claim(
    code: str,
    body: ClaimIn,
    ctx: ServiceContext = Depends(get_ctx),
    _: ApiKey = Depends(require("operator")),
) -> dict[str, Any]:
    def write(conn: Connection) -> dict[str, Any]:
        loyalty = loyalty_service(conn, ctx) if body.coupon_template else None
        row = claim_code(
            conn,
            code,
            body.customer_id,
            ctx.clock(),
            loyalty=loyalty,
            coupon_template=body.coupon_template,
        )
        return {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in row.items()}

    return run_write(ctx.store, write)
