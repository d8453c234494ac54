"""The merchant's zone is one explicit input: only the settings hold its default."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "huitouke"


def _zone_defaults(tree: ast.AST) -> list[int]:
    """Lines where a parameter or a class field defaults to a literal zone name."""

    def is_zone(node: ast.AST | None) -> bool:
        return (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and node.value.count("/") == 1
            and node.value.split("/")[0] in {"Asia", "Europe", "America", "Africa", "Australia"}
        ) or (isinstance(node, ast.Constant) and node.value == "UTC")

    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            args = node.args
            lines += [d.lineno for d in [*args.defaults, *args.kw_defaults] if is_zone(d)]
        elif isinstance(node, ast.ClassDef):
            for stmt in node.body:
                if isinstance(stmt, ast.AnnAssign) and is_zone(stmt.value):
                    lines.append(stmt.lineno)
    return lines


def test_no_function_or_model_defaults_the_zone() -> None:
    found = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC).as_posix()
        if rel == "settings.py":
            continue  # HUITOUKE_TIMEZONE: the one default
        found += [f"{rel}:{n}" for n in _zone_defaults(ast.parse(path.read_text()))]
    assert not found, "a zone default outside settings.py: " + ", ".join(found)
