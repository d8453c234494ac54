"""``read_orders``: any supported file → validated canonical orders, lines and rejects."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pyarrow as pa

from huitouke.errors import ImportFileError, InputError
from huitouke.importing.build import Reject, build
from huitouke.importing.presets import PRESETS, Preset
from huitouke.importing.sources import Grid, RawData, load_raw, preview

__all__ = ["ReadResult", "read_orders"]


@dataclass
class ReadResult:
    """What a file holds, validated: ``orders`` follow ``ORDERS_SCHEMA`` (one row per order
    id, the later state winning), ``lines`` the line items (or ``None``), ``customers``
    the customer attributes found (or ``None``), ``rejects`` every row that was refused."""

    orders: pa.Table
    lines: pa.Table | None
    customers: pa.Table | None
    rejects: list[Reject]
    preset: str
    rows_read: int
    encoding: str | None
    path: Path


def _zone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InputError(
            f"unknown time zone {name!r} (use an IANA name such as Asia/Shanghai)",
            code="input.bad_timezone",
            message_zh=f"未知时区 {name!r}(请使用 IANA 名称,如 Asia/Shanghai)",
        ) from exc
    return name


def _looks_headerless_cdnow(grid: Grid) -> bool:
    rows = grid.rows[:10]
    return bool(rows) and all(
        len(r) in (4, 5) and all(c.replace(".", "", 1).isdigit() for c in r) for r in rows
    )


def _choose(
    grid: Grid, preset: str | None, mapping: dict[str, str] | None, path: Path
) -> tuple[Preset, int | None]:
    if preset is not None and preset not in PRESETS:
        raise InputError(
            f"unknown preset {preset!r}; presets are {', '.join(PRESETS)}",
            code="import.unknown_preset",
            message_zh=f"未知预设 {preset!r};可用:{', '.join(PRESETS)}",
        )
    candidates = [PRESETS[preset]] if preset else list(PRESETS.values())
    best: tuple[float, int, Preset] | None = None
    for i, row in enumerate(grid.rows):
        for p in candidates:
            s = p.score(row)
            if mapping and preset == p.name and s == 0:
                mapped = p.columns(row, None)
                s = 0.1 if any(c in row for c in mapping) or mapped else 0.0
            if s > 0 and (best is None or s > best[0]):
                best = (s, i, p)
        if best is not None and i >= best[1] + 1:
            break
    if best is None:
        if (preset in (None, "cdnow")) and _looks_headerless_cdnow(grid):
            return PRESETS["cdnow"], None
        first = grid.rows[0]
        if preset is not None:
            # let the preset name what it misses in the first row
            return PRESETS[preset], 0
        raise ImportFileError(
            f"{path.name}: cannot tell what kind of order file this is; columns found: "
            f"{', '.join(first)}. Give --preset ({', '.join(PRESETS)}) and, if needed, "
            f"--mapping COLUMN=FIELD.",
            code="import.unknown_format",
            message_zh=f"{path.name}:无法识别订单文件类型;现有列:{', '.join(first)}。"
            f"请用 --preset 指定({', '.join(PRESETS)}),必要时用 --mapping 列名=字段。",
            details={"columns_found": first, "presets": list(PRESETS)},
        )
    _, idx, p = best
    if idx + 1 < len(grid.rows) and grid.kind != "parquet" and p.score(grid.rows[idx + 1]) > 0:
        line = grid.row_lines[idx + 1]
        raise ImportFileError(
            f"{path.name}: line {line} repeats the header of line {grid.row_lines[idx]} "
            f"(extra header rows); keep one header row above the data",
            code="import.extra_header_rows",
            message_zh=f"{path.name}:第 {line} 行重复了第 {grid.row_lines[idx]} 行的表头"
            f"(多余的表头行);数据上方只保留一行表头",
            details={"file": str(path), "line": line},
        )
    return p, idx


def read_orders(
    path: str | os.PathLike[str],
    preset: str | None = None,
    *,
    timezone: str | None = None,
    mapping: dict[str, str] | None = None,
    sheet: str | int | None = None,
    progress: bool = False,
    encoding: str | None = None,
) -> ReadResult:
    """Read and validate an order file.

    ``preset`` is detected from the header when ``None``. ``timezone`` is the zone of
    wall-clock times in the file: by default the preset's own (online-retail:
    Europe/London) or else the merchant's zone from settings (default Asia/Shanghai).
    ``mapping`` maps file columns to canonical fields (``{"下单日期": "ordered_at"}``).
    """
    p = Path(path)
    if mapping and preset is None:
        preset = "generic"  # a column mapping names generic fields
    grid = preview(p, sheet=sheet, encoding=encoding)
    chosen, header_idx = _choose(grid, preset, mapping, p)
    if timezone is None:
        if chosen.zone:
            timezone = chosen.zone
        else:
            from huitouke.settings import get_settings

            timezone = get_settings().timezone
    zone = _zone(timezone)
    if progress and p.stat().st_size > 5_000_000:
        # a plain line, not a spinner: no refresh thread racing Arrow's pools at exit
        from rich.console import Console

        from huitouke.i18n import t
        from huitouke.settings import get_settings

        word = t("import.progress_read", get_settings().lang)
        Console(stderr=True).print(f"{word} {p.name} ({chosen.name}) …", highlight=False)
    return _read(p, grid, chosen, header_idx, zone, mapping, sheet)


def _read(
    p: Path,
    grid: Grid,
    chosen: Preset,
    header_idx: int | None,
    zone: str,
    mapping: dict[str, str] | None,
    sheet: str | int | None,
) -> ReadResult:
    raw: RawData = load_raw(p, grid, header_idx, sheet=sheet)
    if raw.num_rows == 0 and not raw.malformed:
        raise ImportFileError(
            f"{p.name}: the file has a header but no data rows",
            code="import.empty_file",
            message_zh=f"{p.name}:文件只有表头,没有数据行",
            details={"file": str(p)},
        )
    canon = chosen.make(raw, dict(mapping or {}))
    built = build(raw, canon, zone)
    return ReadResult(
        built.orders,
        built.lines,
        built.customers,
        built.rejects,
        chosen.name,
        built.rows_read,
        raw.encoding,
        p,
    )
