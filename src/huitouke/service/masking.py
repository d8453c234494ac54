"""Masking of personal data: phone numbers, names and e-mail addresses.

BRIEF "Private": phone numbers and names are masked where they need not be seen. The
service masks them in responses to keys of the ``read`` scope and *always* in logs, through
:class:`MaskingFilter` (attached to the service's loggers and to the server's handlers by
:func:`install_log_masking`).

- ``13812345678`` → ``138****5678`` (the first 3 and the last 4 digits stay, the rest are
  starred; a ``+86`` country code is kept as it is);
- ``张三`` → ``张*``, ``欧阳娜娜`` → ``欧***``, ``John Smith`` → ``J*** S****``;
- ``alice@example.com`` → ``a****@example.com``.

Customer ids are often phone numbers (the Youzan preset keys buyers by their mobile): for
``read`` keys, :class:`ReadKeyMasking` masks every customer-id field of a JSON answer whose
value is a phone number, and phone numbers in error messages, whatever the endpoint.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
from collections.abc import Mapping
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "CUSTOMER_ID_FIELDS",
    "MaskingFilter",
    "ReadKeyMasking",
    "install_log_masking",
    "mask_customer_ids",
    "mask_email",
    "mask_mapping",
    "mask_name",
    "mask_phone",
    "mask_text",
]

_NAME_FIELDS = frozenset({"name", "customer_name", "real_name", "nickname", "contact_name"})
_PHONE_FIELDS = frozenset({"phone", "mobile"})


def mask_phone(phone: str | None) -> str | None:
    """``13812345678`` → ``138****5678``: keep the first 3 and last 4 national digits."""
    if phone is None:
        return None
    digits = [i for i, ch in enumerate(phone) if ch.isdigit()]
    start = 0
    stripped = phone.lstrip()
    if stripped.startswith("+86") or (stripped.startswith("86") and len(digits) == 13):
        start = 2  # the country code is not personal
    national = digits[start:]
    if len(national) < 7:
        # too short to keep 7 digits visible: keep only the last 2
        hide = set(national[:-2]) if len(national) > 2 else set(national)
    else:
        hide = set(national[3:-4])
    out = ["*" if i in hide else ch for i, ch in enumerate(phone)]
    return "".join(out)


def mask_name(name: str | None) -> str | None:
    """Keep the first character of each word (of the first character for CJK names)."""
    if name is None:
        return None
    words = name.split(" ")
    if len(words) > 1 and all(w.isascii() for w in words):
        return " ".join(w[:1] + "*" * (len(w) - 1) for w in words)
    stripped = name.strip()
    if not stripped:
        return name
    return stripped[0] + "*" * max(1, len(stripped) - 1)


def mask_email(email: str | None) -> str | None:
    if email is None:
        return None
    local, at, domain = email.partition("@")
    if not at:
        return mask_name(email)
    return (local[:1] + "*" * max(1, len(local) - 1)) + "@" + domain


def mask_mapping(data: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``data`` with personal fields masked, recursively."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        out[key] = _mask_value(key, value)
    return out


def _mask_value(key: str, value: Any) -> Any:
    if isinstance(value, Mapping):
        return mask_mapping(value)
    if isinstance(value, list):
        return [_mask_value(key, v) for v in value]
    if not isinstance(value, str):
        return value
    k = key.lower()
    if k in _PHONE_FIELDS:
        return mask_phone(value)
    if k == "email":
        return mask_email(value)
    if k in _NAME_FIELDS:
        return mask_name(value)
    return value


# -- free text (log lines) ---------------------------------------------------------------

# Chinese mobile numbers (11 digits starting 1[3-9]), with an optional +86 / 86 prefix, and
# other international numbers written with a leading "+".
_CN_MOBILE = re.compile(r"(?<![\dA-Za-z])(?:\+?86[- ]?)?1[3-9]\d[- ]?\d{4}[- ]?\d{4}(?![\dA-Za-z])")
_INTL_PHONE = re.compile(r"(?<![\w+])\+\d[\d -]{6,18}\d(?!\d)")
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
# key=value / "key": "value" pairs whose key names a personal field
_PAIR = re.compile(
    r"(?i)(?P<key>\b(?:customer_name|real_name|nickname|contact_name|name|phone|mobile|email)\b)"
    r"(?P<sep>[\"']?\s*[:=]\s*[\"']?)(?P<value>[^\"',;&}\]\s][^\"',;&}\]]*?)(?=[\"',;&}\]]|\s*$|\s+\w+[:=])"
)


def mask_text(text: str) -> str:
    """Mask phone numbers, e-mail addresses and ``name=…``-style values in free text."""

    def pair(m: re.Match[str]) -> str:
        masked = _mask_value(m.group("key"), m.group("value"))
        return f"{m.group('key')}{m.group('sep')}{masked}"

    text = _PAIR.sub(pair, text)
    text = _EMAIL.sub(lambda m: mask_email(m.group(0)) or "", text)
    text = _CN_MOBILE.sub(lambda m: mask_phone(m.group(0)) or "", text)
    text = _INTL_PHONE.sub(lambda m: mask_phone(m.group(0)) or "", text)
    return text


class MaskingFilter(logging.Filter):
    """Rewrites every record so no phone number, name or e-mail leaves in clear text.

    The message is rendered once (``msg % args``), masked and stored back with no args;
    ``extra`` values that are mappings are masked by field name.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "_huitouke_masked", False):
            return True
        try:
            rendered = record.getMessage()
        except Exception:  # a broken format string: mask what there is
            rendered = str(record.msg)
        record.msg = mask_text(rendered)
        record.args = None
        for key, value in list(record.__dict__.items()):
            if isinstance(value, Mapping) and key not in ("args",):
                record.__dict__[key] = mask_mapping(value)
        if record.exc_info and record.exc_info[1] is not None and not record.exc_text:
            record.exc_text = mask_text(logging.Formatter().formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = mask_text(record.exc_text)
        record._huitouke_masked = True
        return True


#: Loggers whose records the service produces or relays.
SERVICE_LOGGERS = (
    "huitouke",
    "huitouke.service",
    "huitouke.service.access",
    "uvicorn",
    "uvicorn.error",
    "uvicorn.access",
)

_FILTER = MaskingFilter()


def install_log_masking() -> MaskingFilter:
    """Attach the masking filter to the service's loggers and to every handler they and the
    root logger use (handler filters also see records propagated from other loggers)."""
    loggers = [logging.getLogger(n) for n in SERVICE_LOGGERS] + [logging.getLogger()]
    for lg in loggers:
        if _FILTER not in lg.filters:
            lg.addFilter(_FILTER)
        for handler in lg.handlers:
            if _FILTER not in handler.filters:
                handler.addFilter(_FILTER)
    return _FILTER


# -- customer ids that are phone numbers (read keys) -------------------------------------------

#: Fields whose value is a customer id.
CUSTOMER_ID_FIELDS = frozenset(
    {
        "customer_id",
        "customer",
        "holder",
        "holder_id",
        "from_customer",
        "to_customer",
        "leader_id",
        "referrer_id",
        "referred_id",
        "referred_customer_id",
        "claimed_by",
        "issued_to",
    }
)


def _is_phone(value: str) -> bool:
    return bool(_CN_MOBILE.fullmatch(value) or _INTL_PHONE.fullmatch(value))


def mask_customer_ids(data: Any) -> Any:
    """A copy of a JSON value with every customer id that is a phone number masked (and
    phone numbers in ``message`` texts): what a ``read`` key may see."""
    if isinstance(data, list):
        return [mask_customer_ids(v) for v in data]
    if not isinstance(data, Mapping):
        return data
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, str) and key in CUSTOMER_ID_FIELDS and _is_phone(value):
            out[key] = mask_phone(value)
        elif isinstance(value, str) and key == "message":
            out[key] = mask_text(value)
        else:
            out[key] = mask_customer_ids(value)
    return out


class ReadKeyMasking:
    """ASGI middleware: the JSON answers to ``read`` keys go through :func:`mask_customer_ids`.

    The scope dependency (``require``) records the request's key in ``request.state``; the
    answer of a request made with a read key is buffered, masked and re-encoded. Answers to
    operator and admin keys, and non-JSON answers, pass untouched."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state: dict[str, Any] = scope.setdefault("state", {})
        start: Message | None = None
        chunks: list[bytes] = []

        async def masking_send(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                key = state.get("api_key")
                ctype = dict(message.get("headers", [])).get(b"content-type", b"")
                if getattr(key, "scope", None) == "read" and ctype.startswith(b"application/json"):
                    start = message
                    return
                await send(message)
                return
            if start is None or message["type"] != "http.response.body":
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            body = b"".join(chunks)
            with contextlib.suppress(ValueError):  # not JSON after all: sent as it came
                data = json.loads(body)
                masked = mask_customer_ids(data)
                if masked != data:  # untouched answers keep their bytes
                    body = json.dumps(masked, ensure_ascii=False, separators=(",", ":")).encode()
            headers = [(k, v) for k, v in start.get("headers", []) if k != b"content-length"]
            headers.append((b"content-length", str(len(body)).encode()))
            await send({**start, "headers": headers})
            await send({"type": "http.response.body", "body": body})

        await self.app(scope, receive, masking_send)
