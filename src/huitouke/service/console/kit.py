"""What every console page shares: the request's context, session and language, the
guard (session, CSRF token, role), rendering with the security headers, masking and local
times. Each page module builds its own ``router`` from these; ``huitouke.service.app``
mounts every module in ``ROUTER_MODULES``. Every route starts with :func:`page_context`
(the guard, then the service context and the page's language), whose :class:`Page`
renders, refuses and translates in that language. 控制台各页面共用的工具。"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from huitouke.errors import HuitoukeError
from huitouke.i18n import t
from huitouke.service import messages as _messages  # noqa: F401  (registers the texts)
from huitouke.service.apikeys import Scope, scope_allows
from huitouke.service.console.i18n import LANG_COOKIE, LOCALES, choose_lang, translations
from huitouke.service.context import ServiceContext
from huitouke.service.sessions import Session, SessionPolicy, load_session

HERE = Path(__file__).parent
SESSION_COOKIE = "htk_session"
LOGIN_CSRF_COOKIE = "htk_login_csrf"
CSRF_HEADER = "x-csrf-token"
#: the files ``/static/console/{name}`` serves, and nothing else
STATIC_FILES: dict[str, tuple[Path, str]] = {
    "console.css": (HERE / "static" / "console.css", "text/css; charset=utf-8"),
    "console.js": (HERE / "static" / "console.js", "text/javascript; charset=utf-8"),
    "htmx.min.js": (HERE / "static" / "vendor" / "htmx.min.js", "text/javascript; charset=utf-8"),
    "echarts.min.js": (
        HERE / "static" / "vendor" / "echarts.min.js",
        "text/javascript; charset=utf-8",
    ),
}
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'; object-src 'none'"
)


def N_(message: str) -> str:
    """Marks a text for the catalogue where it is chosen by value (``_(period)``)."""
    return message


PERIODS = ("month", "quarter", "week")
#: texts the templates pick by value: period kinds, roles, user status
CHOSEN_TEXTS = (
    N_("month"), N_("quarter"), N_("week"), N_("read"), N_("operator"), N_("admin"),
    N_("paid"), N_("partially_refunded"), N_("refunded"), N_("cancelled"),
)  # fmt: skip

ENV = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(["html"]),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


# -- request helpers ------------------------------------------------------------------------------


def request_ctx(request: Request) -> ServiceContext:
    ctx: ServiceContext = request.app.state.ctx
    return ctx


def session_policy(ctx: ServiceContext) -> SessionPolicy:
    policy = ctx.cache.get("console.session_policy")
    if not isinstance(policy, SessionPolicy):
        policy = SessionPolicy.from_settings(ctx.settings)
        ctx.cache["console.session_policy"] = policy
    return policy


def now_of(ctx: ServiceContext) -> datetime:
    return ctx.clock()


def client_of(request: Request) -> str:
    return request.client.host if request.client else "-"


def is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request", "").lower() == "true"


def secure_cookie(request: Request, ctx: ServiceContext) -> bool:
    mode = ctx.settings.console_cookie_secure
    if mode == "always":
        return True
    if mode == "never":
        return False
    return request.url.scheme == "https" or ctx.settings.public_base_url.startswith("https://")


def safe_next(value: str | None) -> str:
    """``value`` when it is a path of this site (``/…``), else ``/``: never another host
    (``//evil.example``, ``https://…``, ``/\\evil.example``) nor a script URL."""
    if not value or not value.startswith("/") or value.startswith("//"):
        return "/"
    if "\\" in value or any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        return "/"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return "/"
    return value


def current_session(request: Request) -> Session | None:
    sid = request.cookies.get(SESSION_COOKIE)
    if not sid:
        return None
    ctx = request_ctx(request)
    return load_session(ctx.store, sid, now=now_of(ctx), policy=session_policy(ctx))


def lang_of(request: Request, session: Session | None) -> str:
    ctx = request_ctx(request)
    return choose_lang(
        user_lang=session.user.lang if session else None,
        cookie=request.cookies.get(LANG_COOKIE),
        accept_language=request.headers.get("accept-language"),
        default=ctx.settings.lang,
    )


def secure_headers(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    return response


def gettext_for(lang: str) -> Callable[..., str]:
    """The console catalogue's ``gettext`` in ``lang``: ``gettext(message, **params)``, the
    ``%(name)s`` placeholders filled from ``params``."""
    tr = translations(lang)

    def gettext(message: str, **params: Any) -> str:
        text = tr.gettext(message)
        return text % params if params else text

    return gettext


def render(
    request: Request,
    template: str,
    lang: str,
    *,
    session: Session | None,
    status: int = 200,
    **values: Any,
) -> HTMLResponse:
    html = ENV.get_template(template).render(
        _=gettext_for(lang),
        lang=lang,
        html_lang="zh-CN" if lang == "zh" else "en",
        session=session,
        user=session.user if session else None,
        csrf_token=session.csrf_token if session else "",
        path=request.url.path,
        langs=list(LOCALES),
        **values,
    )
    return secure_headers(HTMLResponse(html, status_code=status))  # type: ignore[return-value]


def error_page(
    request: Request, session: Session | None, status: int, message: str
) -> HTMLResponse:
    lang = lang_of(request, session)
    return render(
        request, "error.html", lang, session=session, status=status, status_code=status,
        message=message,
    )  # fmt: skip


def login_redirect(request: Request) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if is_htmx(request):
        # a fragment cannot be answered with the login page: htmx follows HX-Redirect
        referer = request.headers.get("hx-current-url", "")
        back = safe_next(urlsplit(referer).path) if referer else "/"
        lang = lang_of(request, None)
        response = Response(
            t("console.err.no_session", lang),
            status_code=401,
            media_type="text/plain; charset=utf-8",
            headers={"HX-Redirect": f"/login?next={quote(back, safe='/')}"},
        )
        return secure_headers(response)
    return secure_headers(
        RedirectResponse(f"/login?next={quote(target, safe='/')}", status_code=303)
    )


def guard(
    request: Request,
    *,
    role: Scope = "read",
    csrf: str | None = None,
    check_csrf: bool = False,
) -> Session | Response:
    """The request's session, or the response that refuses it: the login redirect (no
    session), 403 (CSRF token missing or wrong on a changing request, role too low)."""
    session = current_session(request)
    if session is None:
        return login_redirect(request)
    lang = lang_of(request, session)
    if check_csrf:
        given = request.headers.get(CSRF_HEADER) or csrf or ""
        if not hmac.compare_digest(given.encode(), session.csrf_token.encode()):
            return error_page(request, session, 403, t("console.err.csrf", lang))
    if not scope_allows(session.user.role, role):
        message = t("console.err.role", lang, required=role, role=session.user.role)
        return error_page(request, session, 403, message)
    return session


@dataclass(frozen=True)
class Page:
    """What a page's route has once :func:`page_context` let the request in: the request, its
    session, the page's language and the service context, with the helpers that need them."""

    request: Request
    session: Session
    lang: str
    ctx: ServiceContext

    def gettext(self, message: str, **params: Any) -> str:
        """A console text in the page's language (``%(name)s`` filled from ``params``)."""
        return gettext_for(self.lang)(message, **params)

    def render(self, template: str, *, status: int = 200, **values: Any) -> HTMLResponse:
        return render(
            self.request, template, self.lang, session=self.session, status=status, **values
        )

    def error(self, status: int, message: str) -> HTMLResponse:
        return error_page(self.request, self.session, status, message)

    def refuse(self, exc: HuitoukeError) -> HTMLResponse:
        """The error page of a use case's error: its status, its message in the language."""
        return self.error(exc.http_status, exc.localized(self.lang))


def page_context(
    request: Request,
    *,
    role: Scope = "read",
    csrf: str | None = None,
    check_csrf: bool = False,
) -> Page | Response:
    """Every route's preamble in one call: :func:`guard` (session, CSRF token, role), then
    the service context and the page's language. The :class:`Page`, or the response that
    refuses the request (return it as it is)."""
    guarded = guard(request, role=role, csrf=csrf, check_csrf=check_csrf)
    if isinstance(guarded, Response):
        return guarded
    return Page(request, guarded, lang_of(request, guarded), request_ctx(request))


# -- rows -----------------------------------------------------------------------------------------


def masked(row: dict[str, Any], session: Session) -> dict[str, Any]:
    """Names, phones and e-mail addresses masked for read users, as for read API keys."""
    from huitouke.service.masking import mask_email, mask_name, mask_phone

    if scope_allows(session.user.role, "operator"):
        return row
    return {
        **row,
        "name": mask_name(row.get("name")),
        "phone": mask_phone(row.get("phone")),
        "email": mask_email(row.get("email")),
    }


def local_time(ctx: ServiceContext, value: datetime | None) -> str:
    if value is None:
        return "—"
    return value.astimezone(ctx.settings.zone).strftime("%Y-%m-%d %H:%M")
