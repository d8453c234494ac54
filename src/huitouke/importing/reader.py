"""``read_orders``: any supported file → validated canonical orders, lines and rejects."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pyarrow as pa
import pyarrow.compute as pc

from huitouke.errors import ImportFileError, InputError
from huitouke.importing.build import ReadOptions, Reject, build
from huitouke.importing.convert import Decimal
from huitouke.importing.dates import DateOrder
from huitouke.importing.presets import PRESETS, Preset
from huitouke.importing.sources import Grid, RawData, load_raw, preview

__all__ = ["ReadResult", "read_orders", "rejects_by_reason"]


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
    warnings: list[tuple[str, str]] = field(default_factory=list)  # (en, zh)
    zone: str = ""  # the zone the file's wall-clock times were read in
    #: marketing consent the file gives per customer and channel (customer_id, channel,
    #: granted); recorded by the import use case through the one consent use case
    consent: pa.Table | None = None

    def rejects_by_reason(self) -> dict[str, int]:
        """How many rows each reason rejected, the most frequent first."""
        return rejects_by_reason(self.rejects)


def rejects_by_reason(rejects: list[Reject]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for r in rejects:
        counts[r.reason_code] = counts.get(r.reason_code, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


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
    order_key: list[str] | None = None,
    decimal: Decimal = "auto",
    date_order: DateOrder | None = None,
    consent_channels: tuple[str, ...] = (),
) -> ReadResult:
    """Read and validate an order file.

    ``preset`` is detected from the header when ``None``. ``timezone`` is the zone of
    wall-clock times in the file: by default the preset's own (online-retail:
    Europe/London) or else the merchant's zone from settings (default Asia/Shanghai).
    ``mapping`` maps file columns to canonical fields (``{"下单日期": "ordered_at"}``).
    ``order_key`` names columns whose values together identify an order, for sources
    whose order ids are not unique (a ticket number that restarts every day:
    ``["date", "store", "ticket"]``). ``decimal`` declares the decimal separator of
    amounts (``"comma"``/``"point"``; inferred per column by default) and ``date_order``
    the day/month order (``"dmy"``/``"mdy"``/``"ymd"``; inferred per file by default).
    ``consent_channels`` are the channels whose marketing-consent columns to read into
    ``consent`` (``consent_sms``, ``email_opt_in``…: yes/no cells; another value rejects
    the row as ``import.bad_consent``).
    """
    from huitouke.settings import get_settings

    p = Path(path)
    if mapping and preset is None:
        preset = "generic"  # a column mapping names generic fields
    grid = preview(p, sheet=sheet, encoding=encoding)
    chosen, header_idx = _choose(grid, preset, mapping, p)
    merchant_zone = get_settings().timezone
    if timezone is None:
        timezone = chosen.zone or merchant_zone
    zone = _zone(timezone)
    if date_order is not None and date_order not in ("dmy", "mdy", "ymd"):
        raise InputError(
            f"--date-order {date_order!r}: expected dmy, mdy or ymd",
            code="import.bad_option",
            message_zh=f"--date-order {date_order!r}:应为 dmy、mdy 或 ymd",
        )
    if decimal not in ("auto", "comma", "point"):
        raise InputError(
            f"decimal separator {decimal!r}: expected auto, comma or point",
            code="import.bad_option",
            message_zh=f"小数分隔符 {decimal!r}:应为 auto、comma 或 point",
        )
    options = ReadOptions(
        decimal=decimal,
        date_order=date_order,
        merchant_zone=merchant_zone,
        consent_channels=consent_channels,
    )
    if progress and p.stat().st_size > 5_000_000:
        # a plain line, not a spinner: no refresh thread racing Arrow's pools at exit
        from rich.console import Console

        from huitouke.i18n import t
        from huitouke.settings import get_settings

        word = t("import.progress_read", get_settings().lang)
        Console(stderr=True).print(f"{word} {p.name} ({chosen.name}) …", highlight=False)
    return _read(p, grid, chosen, header_idx, zone, mapping, sheet, order_key, options)


ORDER_KEY_COLUMN = "(order key)"


def _with_order_key(raw: RawData, columns: list[str], mapping: dict[str, str]) -> None:
    """A column joining the named columns' values (``2024-03-05|S1|17``), mapped to the
    order id; a row missing any part has no order id (and is rejected for it)."""
    from huitouke.importing.convert import clean
    from huitouke.importing.sources import norm_header

    by_norm = {norm_header(h): h for h in raw.header}
    found: list[str] = []
    for col in columns:
        actual = col if col in raw.header else by_norm.get(norm_header(col))
        if actual is None:
            raise ImportFileError(
                f"--order-key {','.join(columns)}: the file has no column {col!r}; columns "
                f"found: {', '.join(raw.header)}",
                code="import.bad_order_key",
                message_zh=f"--order-key {','.join(columns)}:文件中没有列 {col!r};"
                f"现有列:{', '.join(raw.header)}",
                details={"column": col, "columns_found": raw.header},
            )
        found.append(actual)
    parts = [clean(raw.table.column(c)) for c in found]
    key = pc.binary_join_element_wise(*parts, "|")
    raw.table = raw.table.append_column(ORDER_KEY_COLUMN, key)
    raw.header = [*raw.header, ORDER_KEY_COLUMN]
    for c, f in list(mapping.items()):
        if f == "order_id":
            del mapping[c]
    mapping[ORDER_KEY_COLUMN] = "order_id"


def _read(
    p: Path,
    grid: Grid,
    chosen: Preset,
    header_idx: int | None,
    zone: str,
    mapping: dict[str, str] | None,
    sheet: str | int | None,
    order_key: list[str] | None,
    options: ReadOptions,
) -> ReadResult:
    raw: RawData = load_raw(p, grid, header_idx, sheet=sheet)
    if raw.num_rows == 0 and not raw.malformed and not raw.bad_lines:
        raise ImportFileError(
            f"{p.name}: the file has a header but no data rows",
            code="import.empty_file",
            message_zh=f"{p.name}:文件只有表头,没有数据行",
            details={"file": str(p)},
        )
    maps = dict(mapping or {})
    if order_key:
        _with_order_key(raw, order_key, maps)
    canon = chosen.make(raw, maps)
    built = build(raw, canon, zone, options)
    return ReadResult(
        built.orders,
        built.lines,
        built.customers,
        built.rejects,
        chosen.name,
        built.rows_read,
        raw.encoding,
        p,
        built.warnings,
        zone,
        built.consent,
    )
