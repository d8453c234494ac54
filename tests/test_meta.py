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


# -- the error-code registry (docs/errors.md) ------------------------------------------------


def _code_pattern(node: object) -> str | None:
    """A code from the source: a literal, or an f-string with ``*`` for each value."""
    import ast

    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(
            v.value if isinstance(v, ast.Constant) else "*"  # type: ignore[misc]
            for v in node.values
        )
    return None


def codes_in_source() -> dict[str, list[str]]:
    """Every error code the package uses: each ``code=`` argument and each error class's
    ``default_code``, with where it occurs."""
    import ast

    found: dict[str, list[str]] = {}
    src = REPO / "src" / "huitouke"
    for path in sorted(src.rglob("*.py")):
        where = str(path.relative_to(src))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            values: list[object] = []
            if isinstance(node, ast.Call):
                values = [kw.value for kw in node.keywords if kw.arg == "code"]
            elif isinstance(node, ast.ClassDef):
                values = [
                    st.value
                    for st in node.body
                    if (
                        isinstance(st, ast.Assign)
                        and any(
                            isinstance(t, ast.Name) and t.id == "default_code" for t in st.targets
                        )
                    )
                    or (
                        isinstance(st, ast.AnnAssign)
                        and isinstance(st.target, ast.Name)
                        and st.target.id == "default_code"
                    )
                ]
            for value in values:
                code = _code_pattern(value)
                if code is not None:
                    found.setdefault(code, []).append(f"{where}:{getattr(value, 'lineno', 0)}")
    return found


def documented_codes() -> list[list[str]]:
    rows = []
    for line in (REPO / "docs" / "errors.md").read_text(encoding="utf-8").splitlines():
        if line.startswith("| `"):
            cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
            rows.append([cells[0].strip("`"), *cells[1:]])
    return rows


def test_every_error_code_is_documented_once() -> None:
    rows = documented_codes()
    codes = [r[0] for r in rows]
    assert len(codes) == len(set(codes)), "a code is documented twice in docs/errors.md"
    for row in rows:
        assert len(row) == 5 and all(row), f"docs/errors.md row {row[0]}: code, HTTP, exit, en, zh"
    used = codes_in_source()
    missing = {c: used[c][:2] for c in sorted(set(used) - set(codes))}
    assert missing == {}, "codes used in the source but not in docs/errors.md"
    stale = sorted(set(codes) - set(used))
    assert stale == [], "codes in docs/errors.md that the source no longer uses"


def test_error_classes_match_their_documented_status() -> None:
    rows = {r[0]: r for r in documented_codes()}
    for name in errors.__all__:
        cls = getattr(errors, name)
        _, http, exit_, *_ = rows[cls.default_code]
        assert str(cls.http_status) in http and str(cls.exit_code) in exit_, name
