"""The loyalty domain stays pure; the public API is curated."""

from __future__ import annotations

import ast
from pathlib import Path

import huitouke.loyalty as loyalty

PKG = Path(loyalty.__file__).parent
PURE = ("program.py", "rules.py", "codes.py", "context.py")
FORBIDDEN = (
    "sqlalchemy",
    "huitouke.store",
    "huitouke.service",
    "fastapi",
    "huitouke.loyalty.service",
    "huitouke.loyalty.ledger",
)


def test_domain_modules_import_no_database_or_web() -> None:
    for name in PURE:
        tree = ast.parse((PKG / name).read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            mods = []
            if isinstance(node, ast.Import):
                mods = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                mods = [node.module]
            for m in mods:
                assert not m.startswith(FORBIDDEN), f"{name} imports {m}"


def test_public_api_is_complete() -> None:
    public = {
        n
        for n in dir(loyalty)
        if (not n.startswith("_") and n[0].isupper()) or n in ("load_program", "verify_ledger")
    }
    assert {"LoyaltyService", "Program", "load_program", "verify_ledger", "Discrepancy"} <= set(
        loyalty.__all__
    )
    for name in loyalty.__all__:
        assert hasattr(loyalty, name), name
    assert public <= set(loyalty.__all__)
