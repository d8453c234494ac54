"""HTTP endpoints of the messaging context (a FastAPI router the service includes).

- ``GET /u/{token}``: the unsubscribe page (zh and en) with a confirm button. A GET never
  unsubscribes by itself — mail scanners follow links — RFC 8058's one-click is a POST.
- ``POST /u/{token}``: unsubscribe (the page's button, or a mail client's
  ``List-Unsubscribe=One-Click``); ``scope=all`` in the form leaves every channel.
- ``POST /v1/inbound/sms?token=…``: providers' SMS replies; "T", "TD", "退订" unsubscribe.
- ``POST /v1/receipts/{provider}?token=…``: delivery reports (aliyun, tencent, generic).

Callbacks carry the inbound token (``HUITOUKE_INBOUND_TOKEN``, by default derived from the
secret key; ``huitouke inbound-token`` prints it) since the providers do not sign them.

The router reads the settings, store and clock from ``app.state.ctx`` (the service's shared
context); :func:`create_messaging_app` builds a stand-alone app around it.
"""

from __future__ import annotations

import hmac
import html
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.concurrency import run_in_threadpool

from huitouke.errors import AuthError, HuitoukeError
from huitouke.i18n import t
from huitouke.messaging.bootstrap import inbound_token
from huitouke.messaging.consent import load_customer_contexts, unsubscribe
from huitouke.messaging.inbound import (
    handle_inbound_sms,
    parse_inbound_sms,
    parse_receipts,
    record_receipts,
)
from huitouke.messaging.tokens import UnsubscribeClaim, verify_unsubscribe_token
from huitouke.settings import Settings
from huitouke.store.db import Store

__all__ = ["create_messaging_app", "router"]

router = APIRouter(tags=["messaging"])

RECEIPT_PROVIDERS = ("aliyun", "tencent", "webhook", "generic")


@dataclass
class _Ctx:
    settings: Settings
    store: Store
    clock: Callable[[], datetime]


def _ctx(request: Request) -> _Ctx:
    c = request.app.state.ctx
    return _Ctx(
        settings=c.settings, store=c.store, clock=getattr(c, "clock", lambda: datetime.now(UTC))
    )


def _channel_name(channel: str, lang: str) -> str:
    key = "channel.all" if channel == "*" else f"channel.{channel}"
    try:
        return t(key, lang)
    except KeyError:
        return channel


def _page(
    title_key: str, body_zh: str, body_en: str, *, form: str = "", status: int = 200
) -> HTMLResponse:
    doc = f"""<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(t(title_key, "zh"))} / {html.escape(t(title_key, "en"))}</title>
<style>body{{font-family:system-ui,"PingFang SC","Microsoft YaHei",sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem;color:#222}}
p.en{{color:#555}}button{{font-size:1rem;padding:.5rem 1.2rem;margin:.3rem 0}}</style></head>
<body><h1>{html.escape(t(title_key, "zh"))} · {html.escape(t(title_key, "en"))}</h1>
<p lang="zh-CN">{html.escape(body_zh)}</p><p class="en" lang="en">{html.escape(body_en)}</p>{form}</body></html>"""
    return HTMLResponse(doc, status_code=status)


def _claim(ctx: _Ctx, token: str) -> UnsubscribeClaim | HTMLResponse:
    try:
        return verify_unsubscribe_token(token, ctx.settings.secret_key.get_secret_value())
    except AuthError:
        return _page(
            "unsubscribe.title",
            t("unsubscribe.bad_token", "zh"),
            t("unsubscribe.bad_token", "en"),
            status=400,
        )


@router.get("/u/{token}", response_class=HTMLResponse, include_in_schema=False)
def unsubscribe_page(token: str, request: Request) -> HTMLResponse:
    """The unsubscribe page with a confirm button. 退订页面。"""
    ctx = _ctx(request)
    claim = _claim(ctx, token)
    if isinstance(claim, HTMLResponse):
        return claim
    ch_zh, ch_en = _channel_name(claim.channel, "zh"), _channel_name(claim.channel, "en")
    action = html.escape(str(request.url.path))
    form = (
        f'<form method="post" action="{action}"><button type="submit">'
        f"{html.escape(t('unsubscribe.button', 'zh'))} / {html.escape(t('unsubscribe.button', 'en'))}</button>"
        f'<br><label><input type="checkbox" name="scope" value="all"> '
        f"{html.escape(t('channel.all', 'zh'))} / {html.escape(t('channel.all', 'en'))}</label></form>"
    )
    return _page(
        "unsubscribe.title",
        t("unsubscribe.confirm", "zh", channel=ch_zh),
        t("unsubscribe.confirm", "en", channel=ch_en),
        form=form,
    )


def _do_unsubscribe(ctx: _Ctx, claim: UnsubscribeClaim, channel: str, source: str) -> None:
    with ctx.store.begin() as conn:
        current = load_customer_contexts(conn, [claim.customer_id])[claim.customer_id]
        if current.is_unsubscribed(channel):
            return  # a second click changes nothing
        unsubscribe(
            conn,
            claim.customer_id,
            channel,
            source=source,
            at=ctx.clock(),
            detail={"message_id": claim.message_id} if claim.message_id else {},
        )


@router.post("/u/{token}", response_class=HTMLResponse, include_in_schema=False)
async def unsubscribe_post(token: str, request: Request) -> HTMLResponse:
    """One-click unsubscribe (RFC 8058) and the page's confirm button. 一键退订。"""
    ctx = _ctx(request)
    claim = _claim(ctx, token)
    if isinstance(claim, HTMLResponse):
        return claim
    form = dict(parse_qsl((await request.body()).decode("utf-8", "replace")))
    one_click = form.get("List-Unsubscribe") == "One-Click"
    channel = "*" if form.get("scope") == "all" else claim.channel
    await run_in_threadpool(
        _do_unsubscribe,
        ctx,
        claim,
        channel,
        "list_unsubscribe" if one_click else "unsubscribe_link",
    )
    return _page(
        "unsubscribe.title",
        t("unsubscribe.done", "zh", channel=_channel_name(channel, "zh")),
        t("unsubscribe.done", "en", channel=_channel_name(channel, "en")),
    )


def _check_token(ctx: _Ctx, request: Request) -> None:
    given = request.query_params.get("token", "")
    if not hmac.compare_digest(given.encode(), inbound_token(ctx.settings).encode()):
        raise AuthError(
            "missing or wrong inbound token",
            code="auth.bad_inbound_token",
            message_zh="回调令牌缺失或错误",
        )


async def _payload(request: Request) -> Any:
    raw = await request.body()
    ctype = request.headers.get("content-type", "")
    text = raw.decode("utf-8", "replace")
    if "json" in ctype or text.lstrip().startswith(("[", "{")):
        try:
            return json.loads(text)
        except ValueError as exc:
            raise HuitoukeError(
                "callback body is not valid JSON",
                code="input.bad_json",
                message_zh="回调内容不是有效的 JSON",
            ) from exc
    return dict(parse_qsl(text))


def _error(exc: HuitoukeError) -> JSONResponse:
    status = 401 if isinstance(exc, AuthError) else 422
    return JSONResponse({"error": exc.to_dict("en")}, status_code=status)


@router.post("/v1/inbound/sms")
async def inbound_sms(request: Request) -> JSONResponse:
    """Providers' SMS replies; T/TD/退订 unsubscribe the sender from SMS. 短信上行(退订)。"""
    ctx = _ctx(request)
    try:
        _check_token(ctx, request)
        messages = parse_inbound_sms(await _payload(request))
    except HuitoukeError as exc:
        return _error(exc)

    def work() -> list[dict[str, Any]]:
        with ctx.store.begin() as conn:
            return handle_inbound_sms(conn, messages, now=ctx.clock())

    results = await run_in_threadpool(work)
    unsub = sum(1 for r in results if r["unsubscribe"])
    # The acknowledgement each provider expects: Aliyun {"code":0}, Tencent {"result":0}.
    return JSONResponse(
        {
            "code": 0,
            "msg": "成功",
            "result": 0,
            "errmsg": "OK",
            "received": len(results),
            "unsubscribed": unsub,
        }
    )


@router.post("/v1/receipts/{provider}")
async def receipts(provider: str, request: Request) -> JSONResponse:
    """Delivery reports from a provider (aliyun, tencent, webhook, generic). 回执。"""
    ctx = _ctx(request)
    try:
        _check_token(ctx, request)
        if provider not in RECEIPT_PROVIDERS:
            raise HuitoukeError(
                f"unknown receipt provider {provider!r} ({', '.join(RECEIPT_PROVIDERS)})",
                code="input.bad_provider",
                message_zh=f"未知的回执来源 {provider!r}",
            )
        parsed = parse_receipts(provider, await _payload(request))
    except HuitoukeError as exc:
        return _error(exc)
    channel = "sms" if provider in ("aliyun", "tencent") else provider

    def work() -> dict[str, int]:
        with ctx.store.begin() as conn:
            return record_receipts(conn, channel, provider, parsed, now=ctx.clock())

    counts = await run_in_threadpool(work)
    return JSONResponse({"code": 0, "msg": "成功", "result": 0, "errmsg": "OK", **counts})


def create_messaging_app(
    settings: Settings, store: Store, clock: Callable[[], datetime] | None = None
) -> FastAPI:
    """A stand-alone app with just the messaging endpoints (tests, small deployments)."""
    app = FastAPI(title="huitouke messaging")
    app.state.ctx = _Ctx(settings=settings, store=store, clock=clock or (lambda: datetime.now(UTC)))
    app.include_router(router)
    return app
