"""The console's texts: gettext catalogues (``locale/<locale>/LC_MESSAGES/console.po``).

The pages are Jinja2 templates whose texts are marked ``{{ _("…") }}``; the catalogues
are plain ``.po`` files in the package, one per language, that a translator edits with
any gettext tool. They are compiled in memory when first used (Babel reads the ``.po`` and
writes the binary catalogue into a buffer that :class:`babel.support.Translations` loads),
so there is no compile step at build or install time and no binary file in the sources.
A test extracts every marked text from the templates and the code (Babel's extractor) and
fails when one lacks a translation in either catalogue.

The language of a page: the signed-in user's own choice, then the ``htk_lang`` cookie,
then ``Accept-Language``, then the merchant's default (``HUITOUKE_LANG``).
"""

from __future__ import annotations

import io
from functools import lru_cache
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations

from huitouke.service.lang import negotiate_lang

__all__ = ["LANG_COOKIE", "LOCALES", "LOCALE_DIR", "choose_lang", "po_path", "translations"]

LOCALE_DIR = Path(__file__).with_name("locale")
#: the console's languages and their catalogue's locale directory
LOCALES = {"zh": "zh_CN", "en": "en"}
LANG_COOKIE = "htk_lang"
DOMAIN = "console"


def po_path(lang: str) -> Path:
    return LOCALE_DIR / LOCALES[lang] / "LC_MESSAGES" / f"{DOMAIN}.po"


@lru_cache(maxsize=len(LOCALES))
def translations(lang: str) -> Translations:
    """The compiled catalogue of ``lang`` (zh or en), built once per process."""
    with po_path(lang).open("rb") as fh:
        catalog = read_po(fh, locale=LOCALES[lang], domain=DOMAIN)
    buf = io.BytesIO()
    write_mo(buf, catalog)
    buf.seek(0)
    return Translations(buf, domain=DOMAIN)


def choose_lang(
    *, user_lang: str | None, cookie: str | None, accept_language: str | None, default: str
) -> str:
    for choice in (user_lang, cookie):
        if choice in LOCALES:
            return str(choice)
    return negotiate_lang(accept_language, default)
