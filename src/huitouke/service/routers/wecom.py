"""WeCom private domain: the customer-contact callback and the welcome survey page.

- ``GET /v1/wecom/callback``: WeCom's URL check — answers the decrypted ``echostr``;
- ``POST /v1/wecom/callback``: change-external-contact events, verified (``msg_signature``)
  and decrypted; a body that is not WeCom's gets 401 and nothing is stored. Answered
  ``success`` as soon as the event is recorded and applied; the welcome message (its code
  is valid 20 s) and WeCom-side tags follow after the answer;
- ``GET /w/{token}``, ``POST /w/{token}``: the survey the welcome message links to (no key:
  the sealed token names the contact); answers become profile attributes and tags.
"""

from __future__ import annotations

import html
from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, BackgroundTasks, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, Response
from starlette.concurrency import run_in_threadpool

from huitouke.app import wecom as app_wecom
from huitouke.errors import ConfigError, HuitoukeError
from huitouke.messaging.channels.wecom_api import WeComClient
from huitouke.service.context import ServiceContext
from huitouke.service.lang import negotiate_lang
from huitouke.wecom import service as wecom
from huitouke.wecom.crypto import WeComCryptoError

router = APIRouter(tags=["wecom"])

_MAX_BODY = 64 * 1024


def _ctx(request: Request) -> ServiceContext:
    ctx: ServiceContext = request.app.state.ctx
    return ctx


def _client(ctx: ServiceContext) -> WeComClient:
    client = ctx.cache.get("wecom.client")
    if not isinstance(client, WeComClient):
        client = app_wecom.wecom_client(ctx.settings)
        ctx.cache["wecom.client"] = client
    return client


def _not_configured() -> PlainTextResponse:
    # a shop without WeCom: there is no callback here (nothing is read or stored)
    return PlainTextResponse("WeCom is not configured on this service", status_code=404)


def _refused(reason: str) -> PlainTextResponse:
    return PlainTextResponse(f"not a WeCom callback ({reason})", status_code=401)


@router.get("/v1/wecom/callback", response_class=PlainTextResponse, include_in_schema=False)
def verify(
    request: Request, msg_signature: str = "", timestamp: str = "", nonce: str = "",
    echostr: str = "",
) -> Response:  # fmt: skip
    """WeCom's callback URL check: the decrypted echostr. 企业微信回调地址验证。"""
    ctx = _ctx(request)
    try:
        echo = app_wecom.verify_url(ctx.settings, msg_signature, timestamp, nonce, echostr)
    except WeComCryptoError as exc:
        return _refused(exc.reason)
    except ConfigError:
        return _not_configured()
    return PlainTextResponse(echo)


@router.post("/v1/wecom/callback", response_class=PlainTextResponse, include_in_schema=False)
async def callback(
    request: Request,
    background: BackgroundTasks,
    msg_signature: str = "",
    timestamp: str = "",
    nonce: str = "",
) -> Response:
    """Customer-contact events (add, delete, edit a contact) and customer-group events
    (members joining a group). 客户联系与客户群变更事件。"""
    ctx = _ctx(request)
    body = await request.body()
    if len(body) > _MAX_BODY:
        return PlainTextResponse("body too large", status_code=413)
    try:
        client = _client(ctx)
        app_wecom.wecom_crypto(ctx.settings)
    except ConfigError:
        return _not_configured()

    def work() -> app_wecom.CallbackOutcome:
        return app_wecom.receive_callback(
            ctx.store, ctx.settings, client, body=body, msg_signature=msg_signature,
            timestamp=timestamp, nonce=nonce, now=ctx.clock(),
        )  # fmt: skip

    try:
        outcome = await run_in_threadpool(work)
    except WeComCryptoError as exc:
        return _refused(exc.reason)
    except HuitoukeError as exc:
        return PlainTextResponse(exc.message, status_code=exc.http_status)
    if outcome.status == "applied":
        background.add_task(
            app_wecom.run_followups, ctx.store, ctx.settings, client, outcome,
            lang=ctx.settings.lang,
        )  # fmt: skip
    return PlainTextResponse("success")


_TEXT = {
    "title": {"zh": "小问卷", "en": "A short survey"},
    "intro": {
        "zh": "回答几个问题,我们能给您更合适的建议。",
        "en": "A few answers help us suggest what suits you.",
    },
    "send": {"zh": "提交", "en": "Send"},
    "thanks": {"zh": "谢谢!已记录您的回答。", "en": "Thank you — your answers are saved."},
    "bad": {"zh": "问卷链接无效。", "en": "This survey link is not valid."},
    "none": {"zh": "这份问卷没有问题。", "en": "This survey has no questions."},
}


def _survey_page(lang: str, body: str, status: int = 200) -> HTMLResponse:
    doc = f"""<!doctype html>
<html lang="{"zh-CN" if lang == "zh" else "en"}"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(_TEXT["title"][lang])}</title>
<style>body{{font-family:system-ui,"PingFang SC","Microsoft YaHei",sans-serif;max-width:32rem;margin:2rem auto;padding:0 1rem;color:#222}}
fieldset{{border:1px solid #ddd;margin:1rem 0;border-radius:6px}}label{{display:block;padding:.3rem 0}}
button{{font-size:1rem;padding:.5rem 1.2rem}}</style></head>
<body><h1>{html.escape(_TEXT["title"][lang])}</h1>{body}</body></html>"""
    return HTMLResponse(
        doc, status_code=status, headers={"Cache-Control": "no-store", "X-Frame-Options": "DENY"}
    )


def _lang(request: Request, ctx: ServiceContext) -> str:
    return negotiate_lang(request.headers.get("accept-language"), ctx.settings.lang)


def _questions(lang: str, survey: list[dict[str, Any]], given: dict[str, Any]) -> str:
    parts = []
    for q in survey:
        options = "".join(
            f'<label><input type="radio" name="{html.escape(q["key"])}" '
            f'value="{html.escape(c)}"{" checked" if given.get(q["key"]) == c else ""}> '
            f"{html.escape(c)}</label>"
            for c in q["choices"]
        )
        parts.append(
            f"<fieldset><legend>{html.escape(q['label'][lang])}</legend>{options}</fieldset>"
        )
    return "".join(parts)


@router.get("/w/{token}", response_class=HTMLResponse, include_in_schema=False)
def survey_form(token: str, request: Request) -> HTMLResponse:
    ctx = _ctx(request)
    lang = _lang(request, ctx)
    try:
        ext = app_wecom.survey_contact(ctx.settings, token)
        with ctx.store.connect() as conn:
            _, survey, given = wecom.survey_of(conn, ext)
    except HuitoukeError:
        return _survey_page(lang, f"<p>{html.escape(_TEXT['bad'][lang])}</p>", 404)
    if not survey:
        return _survey_page(lang, f"<p>{html.escape(_TEXT['none'][lang])}</p>")
    form = (
        f'<p>{html.escape(_TEXT["intro"][lang])}</p><form method="post">'
        f'{_questions(lang, survey, given)}<button type="submit">'
        f"{html.escape(_TEXT['send'][lang])}</button></form>"
    )
    return _survey_page(lang, form)


@router.post("/w/{token}", response_class=HTMLResponse, include_in_schema=False)
async def survey_submit(token: str, request: Request, background: BackgroundTasks) -> HTMLResponse:
    ctx = _ctx(request)
    lang = _lang(request, ctx)
    raw = await request.body()
    if len(raw) > 8192:
        return _survey_page(lang, "<p>413</p>", 413)
    try:
        answers = dict(parse_qsl(raw.decode("utf-8"), max_num_fields=50))
    except (UnicodeDecodeError, ValueError):
        return _survey_page(lang, f"<p>{html.escape(_TEXT['bad'][lang])}</p>", 400)

    def work() -> tuple[str, list[str], str, str]:
        ext = app_wecom.survey_contact(ctx.settings, token)
        with ctx.store.begin() as conn:
            customer_id, tags = wecom.save_survey(conn, ext, answers, now=ctx.clock())
            follow = app_wecom.follow_user_of(conn, ext)
        return customer_id, tags, ext, follow

    try:
        _, tags, ext, follow = await run_in_threadpool(work)
    except HuitoukeError as exc:
        status = exc.http_status if exc.http_status < 500 else 400
        return _survey_page(lang, f"<p>{html.escape(exc.localized(lang))}</p>", status)
    if tags and ctx.settings.wecom_corp_id and ctx.settings.wecom_contact_secret.get_secret_value():
        background.add_task(app_wecom.mirror_tags, _client(ctx), follow, ext, tags)
    return _survey_page(lang, f"<p>{html.escape(_TEXT['thanks'][lang])}</p>")
