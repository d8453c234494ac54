"""House rules that span every context: settings documented, texts bilingual, errors coded."""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

import pytest

import huitouke
from huitouke import errors, i18n
from huitouke.cli.admin_cmd import settings_markdown

REPO = Path(__file__).resolve().parents[1]


def _import_all() -> None:
    for mod in pkgutil.walk_packages(huitouke.__path__, "huitouke."):
        if ".migrations" in mod.name or mod.name.endswith("__main__"):
            continue
        importlib.import_module(mod.name)


def test_settings_doc_is_current() -> None:
    assert (REPO / "docs" / "settings.md").read_text(encoding="utf-8") == settings_markdown(), (
        "docs/settings.md is stale: run `huitouke settings --markdown > docs/settings.md`"
    )


def test_every_user_facing_text_has_zh_and_en() -> None:
    _import_all()
    catalog = i18n.all_messages()
    missing = [k for k, v in catalog.items() if not v.get("zh") or not v.get("en")]
    assert missing == []


def test_error_tree_is_public_and_coded() -> None:
    exported = {name for name in dir(errors) if isinstance(getattr(errors, name), type)}
    classes = {n for n in exported if issubclass(getattr(errors, n), errors.HuitoukeError)}
    assert classes == set(errors.__all__)
    for name in errors.__all__:
        cls = getattr(errors, name)
        assert cls.default_code and 400 <= cls.http_status < 600


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_error_localises(lang: str) -> None:
    err = errors.InputError("bad amount", message_zh="金额无效", details={"line": 3})
    body = err.to_dict(lang)
    assert body["code"] == "input.invalid"
    assert body["message"] == ("金额无效" if lang == "zh" else "bad amount")
    assert body["details"] == {"line": 3}
