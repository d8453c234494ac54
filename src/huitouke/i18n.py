"""User-facing text in zh-CN and en.

Each bounded context keeps its texts in its own ``messages.py`` as
``MESSAGES = {"key": {"zh": "…", "en": "…"}}`` and calls :func:`register` at import time.
A test imports every context and fails if any key lacks either language. Babel formats
numbers, money and dates for the chosen locale.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal

from babel.dates import format_date
from babel.numbers import format_currency, format_decimal, format_percent

__all__ = [
    "LANGS",
    "all_messages",
    "fmt_date",
    "fmt_money",
    "fmt_number",
    "fmt_pct",
    "register",
    "t",
]

LANGS = ("zh", "en")
_LOCALE = {"zh": "zh_Hans_CN", "en": "en_US"}
_CATALOG: dict[str, dict[str, str]] = {}


def register(messages: Mapping[str, Mapping[str, str]]) -> None:
    for key, texts in messages.items():
        _CATALOG[key] = dict(texts)


def all_messages() -> dict[str, dict[str, str]]:
    return dict(_CATALOG)


def t(key: str, lang: str = "zh", /, **params: object) -> str:
    """The text of ``key`` in ``lang`` with ``{name}`` placeholders filled from ``params``."""
    texts = _CATALOG.get(key)
    if texts is None:
        raise KeyError(f"no user-facing text registered under {key!r}")
    text = texts.get(lang) or texts["en"]
    return text.format(**params) if params else text


def fmt_number(value: float | Decimal | int, lang: str = "zh", digits: int = 2) -> str:
    return format_decimal(
        value, format=f"#,##0.{'0' * digits}" if digits else "#,##0", locale=_LOCALE[lang]
    )


def fmt_pct(value: float | None, lang: str = "zh", digits: int = 1) -> str:
    if value is None:
        return "—"
    return format_percent(value, format=f"#,##0.{'0' * digits}%", locale=_LOCALE[lang])


def fmt_money(value: Decimal | float, currency: str, lang: str = "zh") -> str:
    return format_currency(value, currency, locale=_LOCALE[lang])


def fmt_date(value: date | datetime, lang: str = "zh") -> str:
    return format_date(value, format="medium", locale=_LOCALE[lang])
