"""The rejects file: every row an import refused, with where and why (en and zh)."""

from __future__ import annotations

import csv
from pathlib import Path

from huitouke.importing.build import Reject

__all__ = ["REJECT_COLUMNS", "write_rejects"]

REJECT_COLUMNS = ("file", "line", "field", "value", "reason_code", "reason_en", "reason_zh")


def write_rejects(path: Path, rejects: list[Reject]) -> None:
    """The rejects as CSV (UTF-8 with BOM so that spreadsheet programs read the Chinese)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8-sig") as fh:
        w = csv.writer(fh)
        w.writerow(REJECT_COLUMNS)
        for r in rejects:
            w.writerow([r.file, r.line, r.field, r.value, r.reason_code, r.reason_en, r.reason_zh])
