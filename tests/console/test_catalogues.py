"""The console's texts and files: every marked text translated in both gettext catalogues,
the language chosen as documented, the vendored libraries as recorded."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from huitouke.service.console import i18n
from huitouke.service.console.web import STATIC_FILES

CONSOLE = Path(i18n.__file__).parent
VENDOR = CONSOLE / "static" / "vendor"


def marked_texts() -> set[str]:
    """Every text marked for translation in the console's code and templates (Babel's
    extractors, as `pybabel extract` runs them)."""
    method_map = [("**.py", "python"), ("templates/**.html", "jinja2")]
    keywords = {"_": None, "N_": None, "gettext": None}
    found = set()
    for _file, _line, message, _comments, _ctx in extract_from_dir(
        str(CONSOLE), method_map, keywords=keywords
    ):
        found.add(message if isinstance(message, str) else message[0])
    return found


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_every_marked_text_is_translated(lang: str) -> None:
    with i18n.po_path(lang).open("rb") as fh:
        catalog = read_po(fh)
    translated = {m.id: m.string for m in catalog if m.id}
    marked = marked_texts()
    assert len(marked) > 40
    missing = sorted(m for m in marked if not translated.get(m))
    assert missing == [], f"untranslated in {lang}: {missing}"
    stale = sorted(set(translated) - marked)
    assert stale == [], f"no longer used, remove from the {lang} catalogue: {stale}"
    for msgid, text in translated.items():  # the same placeholders in both
        assert sorted(re.findall(r"%\(\w+\)s", msgid)) == sorted(
            re.findall(r"%\(\w+\)s", str(text))
        ), msgid


def test_catalogues_compile_without_a_build_step() -> None:
    assert i18n.translations("zh").gettext("Repurchase rate") == "复购率"
    assert i18n.translations("zh").gettext("Buy-back rate") == "回购率"
    assert i18n.translations("zh").gettext("Returning buyer share") == "老客占比"
    assert i18n.translations("zh").gettext("Average order value") == "客单价"
    assert i18n.translations("en").gettext("Repurchase rate") == "Repurchase rate"


@pytest.mark.parametrize(
    "user,cookie,header,default,expected",
    [
        ("en", "zh", "zh-CN,zh;q=0.9", "zh", "en"),  # the user's own choice first
        (None, "en", "zh-CN", "zh", "en"),  # then the cookie
        (None, None, "en-GB,en;q=0.8,zh;q=0.5", "zh", "en"),  # then Accept-Language
        (None, None, "fr-FR", "zh", "zh"),  # then the merchant's default
        (None, "xx", None, "en", "en"),  # an unknown cookie is ignored
    ],
)
def test_language_order(user, cookie, header, default, expected) -> None:
    got = i18n.choose_lang(user_lang=user, cookie=cookie, accept_language=header, default=default)
    assert got == expected


def test_vendored_files_are_the_recorded_releases() -> None:
    table = (VENDOR / "README.md").read_text(encoding="utf-8")
    rows = re.findall(r"\| `([\w.]+\.js)` \|.*\| `([0-9a-f]{64})` \|", table)
    assert {name for name, _ in rows} == {"echarts.min.js", "htmx.min.js"}
    for name, digest in rows:
        assert hashlib.sha256((VENDOR / name).read_bytes()).hexdigest() == digest, name
    for licence in ("echarts.LICENSE.txt", "echarts.NOTICE.txt", "htmx.LICENSE.txt"):
        assert (VENDOR / licence).stat().st_size > 100
    for path, _media in STATIC_FILES.values():
        assert path.is_file(), path


def test_cookie_secure_setting_is_checked() -> None:
    from huitouke.errors import ConfigError
    from huitouke.settings import Settings, settings_error

    with pytest.raises(Exception) as caught:
        Settings(console_cookie_secure="sometimes")
    err = settings_error(caught.value)  # type: ignore[arg-type]
    assert isinstance(err, ConfigError) and err.code == "settings.invalid"
    assert "HUITOUKE_CONSOLE_COOKIE_SECURE='sometimes'" in err.message
    assert "只能是 auto、always 或 never" in err.message_zh


@pytest.mark.parametrize("lang", ["zh_CN", "en"])
def test_no_text_is_in_a_catalogue_twice(lang: str) -> None:
    """A text written twice (two changes adding it) keeps only its first translation when
    read — the second, maybe different, would be silently ignored: refuse it."""
    path = CONSOLE / "locale" / lang / "LC_MESSAGES" / "console.po"
    ids = re.findall(r'^msgid ((?:".*"\n)+)', path.read_text(encoding="utf-8"), re.M)
    seen: set[str] = set()
    twice = sorted({i.strip() for i in ids if i in seen or seen.add(i)} - {'""'})
    assert twice == [], f"{path.name} ({lang}) has these texts twice: {twice}"
