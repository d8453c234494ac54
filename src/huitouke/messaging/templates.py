"""Message templates: Jinja2 in a sandbox, zh-CN and en, for SMS, email and webhooks.

A template names its channel and kind and holds one text per language::

    name: replenish
    channel: sms
    kind: marketing
    body:
      zh: "{{ customer.name }},您常买的{{ order.lines[0].name }}快用完了吧?{{ coupon.value|money }}券已到账"
      en: "{{ customer.name }}, running low on {{ order.lines[0].name }}? A {{ coupon.value|money }} coupon is yours"
    subject: {zh: "...", en: "..."}      # email only
    html: {zh: "...", en: "..."}         # email only, autoescaped

The context has ``customer`` (id, name, phone_masked, email, tags, attributes), ``order``
(the last order: order_id, ordered_at, amount, currency, ``lines`` — also ``order['items']``),
``coupon`` (code, value,
currency, expires_at …), ``recommendations`` (a list of products: sku, name, url …),
``shop`` (name) and ``unsubscribe_url``. Templates run in Jinja2's immutable sandbox with
undefined fields as errors: a merchant-edited template cannot reach Python internals and a
misspelt field fails at preview, not silently at send time.

A template is also bounded: each part renders to at most :data:`MAX_OUTPUT_CHARS` characters
in at most :data:`MAX_RENDER_SECONDS` (``range`` counts its steps against the clock, and
``*``/``**`` refuse results past the output limit), and a runtime error such as ``1/0`` is a
``template.render_error`` naming the template, part and language — never a traceback.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

from huitouke.errors import InputError
from huitouke.i18n import LANGS, fmt_date, fmt_money
from huitouke.messaging.sms import SmsCount, compose_sms, count_sms

__all__ = [
    "MAX_OUTPUT_CHARS",
    "MAX_RENDER_SECONDS",
    "MessageTemplate",
    "Rendered",
    "mask_phone",
    "render",
    "template_context",
]


def mask_phone(phone: str | None) -> str:
    """138****5678: enough to recognise, not enough to misuse."""
    if not phone:
        return ""
    digits = phone.strip()
    if len(digits) < 7:
        return "*" * len(digits)
    return f"{digits[:3]}{'*' * (len(digits) - 7)}{digits[-4:]}"


@dataclass(frozen=True)
class MessageTemplate:
    """One message in every language; ``subject``/``html`` are for email."""

    name: str
    channel: str
    body: Mapping[str, str]
    kind: str = "marketing"
    subject: Mapping[str, str] = field(default_factory=dict)
    html: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "template") -> MessageTemplate:
        missing = [k for k in ("name", "channel", "body") if k not in data]
        if missing:
            raise InputError(
                f"{source}: missing field(s) {', '.join(missing)}",
                code="template.invalid",
                message_zh=f"{source}:缺少字段 {', '.join(missing)}",
                details={"source": source, "fields": missing},
            )
        kind = str(data.get("kind", "marketing"))
        if kind not in ("marketing", "transactional"):
            raise InputError(
                f"{source}: kind must be marketing or transactional, not {kind!r}",
                code="template.invalid",
                message_zh=f"{source}:kind 应为 marketing 或 transactional,而不是 {kind!r}",
                details={"source": source, "field": "kind"},
            )

        def langs(key: str) -> dict[str, str]:
            value = data.get(key) or {}
            if isinstance(value, str):
                return {lang: value for lang in LANGS}
            if not isinstance(value, Mapping):
                raise InputError(
                    f"{source}: {key} must be a text or a mapping of language to text",
                    code="template.invalid",
                    message_zh=f"{source}:{key} 应为文本或 语言→文本 的映射",
                    details={"source": source, "field": key},
                )
            return {str(k): str(v) for k, v in value.items()}

        return cls(
            name=str(data["name"]),
            channel=str(data["channel"]),
            kind=kind,
            body=langs("body"),
            subject=langs("subject"),
            html=langs("html"),
        )


@dataclass(frozen=True)
class Rendered:
    """A rendered message; ``text`` is what is sent (for SMS: with signature and footer)."""

    template: str
    channel: str
    kind: str
    lang: str
    text: str
    subject: str | None = None
    html: str | None = None
    sms: SmsCount | None = None

    def to_payload(self) -> dict[str, Any]:
        """The ``rendered`` column of an outbox row."""
        out: dict[str, Any] = {"template": self.template, "lang": self.lang, "text": self.text}
        if self.subject is not None:
            out["subject"] = self.subject
        if self.html is not None:
            out["html"] = self.html
        if self.sms is not None:
            out["sms_segments"] = self.sms.segments
            out["sms_encoding"] = self.sms.encoding
        return out


def _money(value: Any, currency: str | None = None, lang: str = "zh") -> str:
    if value is None or value == "":
        return ""
    return fmt_money(Decimal(str(value)), currency or "CNY", lang)


def _date(value: Any, lang: str = "zh") -> str:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if isinstance(value, datetime | date):
        return fmt_date(value, lang)
    return str(value)


#: longest text one part of a template may render to (an e-mail body is far shorter)
MAX_OUTPUT_CHARS = 100_000
#: longest one part of a template may take to render
MAX_RENDER_SECONDS = 2.0
_RANGE_MAX = 10_000


class _TooLong(Exception):
    pass


class _TooSlow(Exception):
    pass


_deadline = threading.local()


def _check_clock() -> None:
    end = getattr(_deadline, "at", None)
    if end is not None and time.monotonic() > end:
        raise _TooSlow()


class _BoundedRange:
    """``range`` for templates: at most ``_RANGE_MAX`` steps, each counted against the clock."""

    def __init__(self, *args: int) -> None:
        self.r = range(*args)
        if len(self.r) > _RANGE_MAX:
            raise _TooLong(f"range of {len(self.r)} steps (at most {_RANGE_MAX})")

    def __len__(self) -> int:
        return len(self.r)

    def __iter__(self) -> Iterator[int]:
        for i, v in enumerate(self.r):
            if i % 64 == 0:
                _check_clock()
            yield v


class _Sandbox(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        _check_clock()
        if operator == "*":
            for seq, n in ((left, right), (right, left)):
                sized = isinstance(seq, str | list | tuple) and isinstance(n, int)
                if sized and len(seq) * n > MAX_OUTPUT_CHARS:
                    raise _TooLong(f"a repetition of {len(seq) * n} items")
        if operator == "**" and isinstance(right, int | float) and abs(right) > 64:
            raise _TooLong(f"a power of {right}")
        return super().call_binop(context, operator, left, right)


@lru_cache(maxsize=8)
def _env(lang: str, *, html: bool) -> jinja2.Environment:
    env = _Sandbox(
        undefined=jinja2.StrictUndefined,
        autoescape=html,
        keep_trailing_newline=False,
    )
    env.globals["range"] = _BoundedRange
    env.filters["money"] = lambda v, currency=None: _money(v, currency, lang)
    env.filters["date"] = lambda v: _date(v, lang)
    env.filters["mask_phone"] = mask_phone
    return env


@lru_cache(maxsize=512)
def _compiled(source: str, lang: str, html: bool) -> jinja2.Template:
    return _env(lang, html=html).from_string(source)


def _bounded_render(template: jinja2.Template, ctx: Mapping[str, Any]) -> str:
    _deadline.at = time.monotonic() + MAX_RENDER_SECONDS
    try:
        out: list[str] = []
        size = 0
        for chunk in template.generate(**ctx):
            size += len(chunk)
            if size > MAX_OUTPUT_CHARS:
                raise _TooLong(f"more than {MAX_OUTPUT_CHARS} characters")
            _check_clock()
            out.append(chunk)
        return "".join(out)
    finally:
        _deadline.at = None


def _render_one(
    source: str, ctx: Mapping[str, Any], *, name: str, part: str, lang: str, html: bool
) -> str:
    where = f"template {name!r} ({part}, {lang})"
    details = {"template": name, "part": part, "lang": lang}
    try:
        return _bounded_render(_compiled(source, lang, html), ctx).strip()
    except jinja2.TemplateSyntaxError as exc:
        raise InputError(
            f"{where}, line {exc.lineno}: {exc.message}",
            code="template.syntax",
            message_zh=f"模板 {name!r}({part},{lang})第 {exc.lineno} 行语法错误:{exc.message}",
            details={"template": name, "part": part, "lang": lang, "line": exc.lineno},
        ) from exc
    except jinja2.UndefinedError as exc:
        raise InputError(
            f"{where}: {exc.message}",
            code="template.missing_field",
            message_zh=f"模板 {name!r}({part},{lang})引用了不存在的字段:{exc.message}",
            details={"template": name, "part": part, "lang": lang},
        ) from exc
    except SecurityError as exc:
        raise InputError(
            f"{where}: not allowed in a template: {exc}",
            code="template.unsafe",
            message_zh=f"模板 {name!r}({part},{lang})包含不允许的操作:{exc}",
            details={"template": name, "part": part, "lang": lang},
        ) from exc
    except (_TooLong, OverflowError, MemoryError) as exc:
        raise InputError(
            f"{where}: output too long: {exc}",
            code="template.too_long",
            message_zh=f"模板 {name!r}({part},{lang})输出过长:{exc}",
            details={**details, "max_chars": MAX_OUTPUT_CHARS},
        ) from exc
    except _TooSlow as exc:
        raise InputError(
            f"{where}: rendering took longer than {MAX_RENDER_SECONDS:g} s",
            code="template.too_slow",
            message_zh=f"模板 {name!r}({part},{lang})渲染超过 {MAX_RENDER_SECONDS:g} 秒",
            details={**details, "max_seconds": MAX_RENDER_SECONDS},
        ) from exc
    except jinja2.TemplateError as exc:
        raise InputError(
            f"{where}: {exc}",
            code="template.render_error",
            message_zh=f"模板 {name!r}({part},{lang})渲染出错:{exc}",
            details=details,
        ) from exc
    except (ArithmeticError, TypeError, ValueError, LookupError, AttributeError) as exc:
        # what a template expression can raise on its data (1/0, "a" + 1, int("x"), x[9])
        raise InputError(
            f"{where}: {type(exc).__name__}: {exc}",
            code="template.render_error",
            message_zh=f"模板 {name!r}({part},{lang})渲染出错:{type(exc).__name__}: {exc}",
            details={**details, "error": type(exc).__name__},
        ) from exc


def render(
    template: MessageTemplate,
    context: Mapping[str, Any],
    lang: str = "zh",
    *,
    sms_sign_name: str = "",
    sms_footer: str = "回T退订",
    sms_footer_en: str = "Reply STOP to opt out",
) -> Rendered:
    """Render ``template`` in ``lang`` (falling back to the other language if it lacks one).

    A marketing SMS ends with the opt-out footer of the language it is written in:
    ``sms_footer`` for Chinese, ``sms_footer_en`` (plain GSM-7) for English, so an English
    text does not turn into UCS-2 (and cost more segments) because of a Chinese footer."""
    if lang not in template.body:
        fallback = next((lg for lg in LANGS if lg in template.body), None)
        if fallback is None:
            raise InputError(
                f"template {template.name!r} has no body",
                code="template.invalid",
                message_zh=f"模板 {template.name!r} 没有正文",
                details={"template": template.name},
            )
        lang = fallback
    text = _render_one(
        template.body[lang], context, name=template.name, part="body", lang=lang, html=False
    )
    subject = html = None
    if lang in template.subject:
        subject = _render_one(
            template.subject[lang],
            context,
            name=template.name,
            part="subject",
            lang=lang,
            html=False,
        )
    if lang in template.html:
        html = _render_one(
            template.html[lang], context, name=template.name, part="html", lang=lang, html=True
        )
    count = None
    if template.channel == "sms":
        text = compose_sms(
            text,
            sign_name=sms_sign_name,
            footer=sms_footer if lang == "zh" else sms_footer_en,
            marketing=template.kind == "marketing",
        )
        count = count_sms(text)
    return Rendered(
        template=template.name,
        channel=template.channel,
        kind=template.kind,
        lang=lang,
        text=text,
        subject=subject,
        html=html,
        sms=count,
    )


def template_context(
    customer: Mapping[str, Any],
    *,
    order: Mapping[str, Any] | None = None,
    coupon: Mapping[str, Any] | None = None,
    recommendations: Sequence[Mapping[str, Any]] = (),
    shop_name: str = "",
    unsubscribe_url: str = "",
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The standard template context; the customer's phone is only shown masked."""
    cust = {
        "id": customer.get("customer_id") or customer.get("id"),
        "name": customer.get("name") or "",
        "phone_masked": mask_phone(customer.get("phone")),
        "email": customer.get("email") or "",
        "birthday": customer.get("birthday"),
        "tags": list(customer.get("tags") or []),
        "attributes": dict(customer.get("attributes") or {}),
    }
    order_ctx = None
    if order is not None:
        order_ctx = dict(order)
        # ``order.items`` would be the dict method inside Jinja: ``order.lines`` is the alias.
        order_ctx.setdefault("lines", list(order_ctx.get("items") or []))
    ctx: dict[str, Any] = {
        "customer": cust,
        "order": order_ctx,
        "coupon": dict(coupon) if coupon is not None else None,
        "recommendations": [dict(r) for r in recommendations],
        "shop": {"name": shop_name},
        "unsubscribe_url": unsubscribe_url,
    }
    if extra:
        ctx.update(extra)
    return ctx
