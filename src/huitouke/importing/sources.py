"""Reading order files into a table of strings, keeping each row's physical line.

Every source format (CSV, TSV, whitespace separated text, Excel, Parquet) becomes a
:class:`RawData`: all cells as strings (Arrow ``string``), the header as found, and a way to
tell the 1-based physical line of any row (header = its own line, usually 1) so that every
rejected row can be reported where the merchant will find it.

Encodings: see :mod:`huitouke.importing.encoding` (lines it cannot decode travel with the
grid and the raw data as :class:`~huitouke.importing.encoding.BadLine`).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from huitouke.errors import ImportFileError
from huitouke.importing.encoding import BadLine, decode_bytes, encoding_error

__all__ = ["Grid", "RawData", "load_raw", "norm_header", "preview"]

EXCEL_SUFFIXES = {".xlsx", ".xlsm"}
PARQUET_SUFFIXES = {".parquet", ".pq"}
PREVIEW_ROWS = 30

_NORM_RE = re.compile(r"[\s_\-./()（）:：#]+")


def norm_header(name: str) -> str:
    """A header cell reduced for matching: lower case, no spaces/underscores/punctuation."""
    return _NORM_RE.sub("", str(name).replace("\ufeff", "")).lower()


# -- previews ------------------------------------------------------------------------------
@dataclass
class Grid:
    """The first rows of a source, as cells, for header and preset detection."""

    kind: str  # "csv" | "whitespace" | "excel" | "parquet"
    rows: list[list[str]]  # first PREVIEW_ROWS non-empty rows
    row_lines: list[int]  # their physical line numbers (1-based)
    delimiter: str | None = None
    text: bytes | None = None  # UTF-8 body of text files
    encoding: str | None = None
    sheet: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    bad_lines: tuple[BadLine, ...] = ()  # text lines that could not be decoded


def _sniff_delimiter(lines: Sequence[str]) -> str | None:
    best, best_count = None, 0
    for d in (",", "\t", ";", "|"):
        counts = [line.count(d) for line in lines if line.strip()]
        # title rows above the header ("订单报表") have no delimiter: judge by the others
        while len(counts) > 1 and counts[0] == 0:
            counts = counts[1:]
        if not counts:
            continue
        c = min(counts[:5]) if len(counts) > 1 else counts[0]
        c = max(c, counts[0])
        if c > best_count:
            best, best_count = d, c
    return best


def preview(path: Path, *, sheet: str | int | None = None, encoding: str | None = None) -> Grid:
    """Read the first rows of ``path`` (any supported format)."""
    if not path.exists():
        raise ImportFileError(
            f"file not found: {path}",
            code="import.file_not_found",
            message_zh=f"找不到文件:{path}",
            details={"file": str(path)},
        )
    suffix = path.suffix.lower()
    if suffix in EXCEL_SUFFIXES:
        return _preview_excel(path, sheet)
    if suffix == ".xls":
        raise ImportFileError(
            f"{path.name}: the old binary .xls format is not supported; save it as .xlsx or CSV",
            code="import.unsupported_format",
            message_zh=f"{path.name}:不支持旧版 .xls 格式,请另存为 .xlsx 或 CSV",
            details={"file": str(path)},
        )
    if suffix in PARQUET_SUFFIXES:
        return _preview_parquet(path)
    data = path.read_bytes()
    if _blank(data):
        raise _empty(path)
    decoded = decode_bytes(data, path, encoding)
    body, enc = decoded.body, decoded.encoding
    head = body[: 1 << 16].decode("utf-8", errors="ignore")
    raw_lines = head.splitlines()
    lines: list[str] = []
    line_nos: list[int] = []
    for i, line in enumerate(raw_lines[: PREVIEW_ROWS * 3]):
        if line.strip():
            lines.append(line)
            line_nos.append(i + 1)
        if len(lines) >= PREVIEW_ROWS:
            break
    if not lines:
        raise _empty(path)
    if decoded.bad_lines and decoded.bad_lines[0].line < line_nos[0]:
        # nothing readable above it: the header itself cannot be decoded
        raise encoding_error(
            path, data, decoded.bad_lines[0].offset, tried=enc, encoding=decoded.encoding
        )
    delim = _sniff_delimiter(lines[:10])
    if delim is None or (suffix == ".txt" and delim == "," and "," not in lines[0]):
        rows = [line.split() for line in lines]
        return Grid("whitespace", rows, line_nos, None, body, enc, bad_lines=decoded.bad_lines)
    rows = [next(csv.reader([line], delimiter=delim), []) for line in lines]
    rows = [[c.strip() for c in r] for r in rows]
    return Grid("csv", rows, line_nos, delim, body, enc, bad_lines=decoded.bad_lines)


def _blank(data: bytes) -> bool:
    """Only whitespace (without copying the file as ``data.strip()`` would)."""
    return not data or data.isspace()


def _empty(path: Path) -> ImportFileError:
    return ImportFileError(
        f"{path.name}: the file is empty",
        code="import.empty_file",
        message_zh=f"{path.name}:文件是空的",
        details={"file": str(path)},
    )


def _cell_str(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        if v.is_integer() and abs(v) < 1e15:
            return str(int(v))
        return repr(v)
    if isinstance(v, datetime):
        return v.isoformat(sep=" ")
    if isinstance(v, date):
        return v.isoformat()
    if isinstance(v, time):
        return v.isoformat()
    if isinstance(v, Decimal):
        return format(v, "f")
    return str(v).strip()


def _open_sheet(path: Path, sheet: str | int | None) -> Any:
    import openpyxl

    try:
        wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:
        raise ImportFileError(
            f"{path.name}: not a readable Excel workbook ({exc})",
            code="import.bad_excel",
            message_zh=f"{path.name}:无法读取的 Excel 工作簿({exc})",
            details={"file": str(path)},
        ) from exc
    if sheet is None:
        return wb, wb.worksheets[0]
    try:
        ws = wb.worksheets[sheet] if isinstance(sheet, int) else wb[sheet]
    except (KeyError, IndexError) as exc:
        raise ImportFileError(
            f"{path.name}: no sheet {sheet!r}; sheets are {wb.sheetnames}",
            code="import.no_such_sheet",
            message_zh=f"{path.name}:没有工作表 {sheet!r};现有 {wb.sheetnames}",
            details={"file": str(path), "sheets": wb.sheetnames},
        ) from exc
    return wb, ws


def _preview_excel(path: Path, sheet: str | int | None) -> Grid:
    wb, ws = _open_sheet(path, sheet)
    rows: list[list[str]] = []
    line_nos: list[int] = []
    try:
        for i, values in enumerate(ws.iter_rows(values_only=True)):
            cells = [_cell_str(v) for v in values]
            if any(cells):
                rows.append(cells)
                line_nos.append(i + 1)
            if len(rows) >= PREVIEW_ROWS:
                break
    finally:
        wb.close()
    if not rows:
        raise _empty(path)
    return Grid("excel", rows, line_nos, sheet=ws.title)


def _preview_parquet(path: Path) -> Grid:
    import pyarrow.parquet as pq

    try:
        schema = pq.read_schema(path)
    except Exception as exc:
        raise ImportFileError(
            f"{path.name}: not a readable Parquet file ({exc})",
            code="import.bad_parquet",
            message_zh=f"{path.name}:无法读取的 Parquet 文件({exc})",
            details={"file": str(path)},
        ) from exc
    return Grid("parquet", [list(schema.names)], [1])


# -- full loads ----------------------------------------------------------------------------
@dataclass
class RawData:
    """A whole source as string columns plus the physical line of every row."""

    path: Path
    table: pa.Table
    header: list[str]
    kind: str
    encoding: str | None
    _lines: Callable[[], np.ndarray]
    malformed: list[tuple[int, int, int]] = field(default_factory=list)  # (line, got, expected)
    _cache: np.ndarray | None = None
    bad_lines: tuple[BadLine, ...] = ()  # lines that could not be decoded (left out)

    @property
    def num_rows(self) -> int:
        return int(self.table.num_rows)

    def lines(self) -> np.ndarray:
        """Physical line (1-based) of each row, computed on first use."""
        if self._cache is None:
            self._cache = self._lines()
        return self._cache


def _dedupe_names(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for i, n in enumerate(names):
        n = n.strip().replace("\ufeff", "") or f"column_{i + 1}"
        if n in seen:
            seen[n] += 1
            n = f"{n}.{seen[n]}"
        else:
            seen[n] = 0
        out.append(n)
    return out


def load_raw(
    path: Path, grid: Grid, header_index: int | None, *, sheet: str | int | None = None
) -> RawData:
    """Load the whole source; ``header_index`` is the index in ``grid.rows`` of the header
    row (``None`` for a file without a header)."""
    if grid.kind == "parquet":
        return _load_parquet(path)
    if grid.kind == "excel":
        return _load_excel(path, grid, header_index, sheet)
    assert grid.text is not None
    body = grid.text
    if header_index is None:
        header_line = 0
        start = 0
        ncols = max(len(r) for r in grid.rows)
        header = [f"column_{i + 1}" for i in range(ncols)]
    else:
        header_line = grid.row_lines[header_index]
        start = _offset_after_line(body, header_line)
        header = _dedupe_names(grid.rows[header_index])
    data = body[start:]
    above = [b for b in grid.bad_lines if b.line <= header_line]
    if above:
        # the header itself (or a title above it) is unreadable: the encoding is wrong
        raise encoding_error(
            path, path.read_bytes(), above[0].offset, tried=grid.encoding or "?",
            encoding=grid.encoding,
        )  # fmt: skip
    if grid.kind == "whitespace":
        raw = _load_whitespace(path, data, header, header_line, grid.encoding)
    else:
        raw = _load_csv(path, data, header, header_line, grid.delimiter or ",", grid.encoding)
    raw.bad_lines = grid.bad_lines
    return raw


def _offset_after_line(body: bytes, line: int) -> int:
    pos = 0
    for _ in range(line):
        nxt = body.find(b"\n", pos)
        if nxt < 0:
            return len(body)
        pos = nxt + 1
    return pos


def _nonempty_line_numbers(data: bytes, first_line: int) -> np.ndarray:
    arr = np.frombuffer(data, dtype=np.uint8)
    nl = np.flatnonzero(arr == 10)
    starts = np.concatenate([[0], nl + 1])
    ends = np.concatenate([nl, [len(arr)]])
    lengths = ends - starts
    only_cr = np.zeros(len(starts), dtype=bool)
    one = lengths == 1
    only_cr[one] = arr[starts[one]] == 13
    nonempty = (lengths > 0) & ~only_cr
    return (np.flatnonzero(nonempty) + first_line).astype(np.int64)


def _csv_record_lines(data: bytes, first_line: int, delimiter: str) -> np.ndarray:
    """Start line of every record when quoted values may span lines (slow path)."""
    reader = csv.reader(io.StringIO(data.decode("utf-8"), newline=""), delimiter=delimiter)
    out: list[int] = []
    prev_end = 0
    for row in reader:
        start = prev_end + 1
        prev_end = reader.line_num
        if row:
            out.append(start + first_line - 1)
    return np.asarray(out, dtype=np.int64)


def _load_csv(
    path: Path, data: bytes, header: list[str], header_line: int, delimiter: str, enc: str | None
) -> RawData:
    quoted = b'"' in data
    malformed_raw: list[tuple[int | None, int, int, str]] = []

    def on_invalid(row: Any) -> str:
        malformed_raw.append((row.number, row.actual_columns, row.expected_columns, row.text))
        return "skip"

    first_line = header_line + 1
    if _blank(data):
        empty = pa.table({h: pa.array([], pa.string()) for h in header})
        return RawData(path, empty, header, "csv", enc, lambda: np.zeros(0, dtype=np.int64))
    try:
        table = pacsv.read_csv(
            io.BytesIO(data),
            read_options=pacsv.ReadOptions(
                column_names=header, use_threads=True, block_size=1 << 24
            ),
            parse_options=pacsv.ParseOptions(
                delimiter=delimiter,
                newlines_in_values=quoted,
                invalid_row_handler=on_invalid,
            ),
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(header, pa.string()),
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except pa.ArrowInvalid as exc:
        raise ImportFileError(
            f"{path.name}: cannot parse as delimited text: {exc}",
            code="import.bad_csv",
            message_zh=f"{path.name}:无法按分隔文本解析:{exc}",
            details={"file": str(path)},
        ) from exc
    table = table.combine_chunks() if table.num_columns else table

    def lines() -> np.ndarray:
        if quoted:
            all_lines = _csv_record_lines(data, first_line, delimiter)
        else:
            all_lines = _nonempty_line_numbers(data, first_line)
        if bad_lines:
            all_lines = all_lines[~np.isin(all_lines, np.asarray(bad_lines, dtype=np.int64))]
        return all_lines

    malformed: list[tuple[int, int, int]] = []
    bad_lines: list[int] = []
    for number, got, expected, text in malformed_raw:
        if number is not None and number > 0:
            line = number + header_line
        else:
            off = data.find(text.encode("utf-8"))
            line = (data.count(b"\n", 0, off) + first_line) if off >= 0 else 0
        malformed.append((line, got, expected))
        bad_lines.append(line)
    return RawData(path, table, header, "csv", enc, lines, malformed)


def _load_whitespace(
    path: Path, data: bytes, header: list[str], header_line: int, enc: str | None
) -> RawData:
    text = data.decode("utf-8")
    rows: list[list[str]] = []
    line_nos: list[int] = []
    malformed: list[tuple[int, int, int]] = []
    n = len(header)
    for i, line in enumerate(text.splitlines()):
        cells = line.split()
        if not cells:
            continue
        ln = header_line + 1 + i
        if len(cells) != n:
            malformed.append((ln, len(cells), n))
            continue
        rows.append(cells)
        line_nos.append(ln)
    cols = list(zip(*rows, strict=True)) if rows else [() for _ in header]
    table = pa.table({h: pa.array(list(c), pa.string()) for h, c in zip(header, cols, strict=True)})
    arr = np.asarray(line_nos, dtype=np.int64)
    return RawData(path, table, header, "whitespace", enc, lambda: arr, malformed)


def _load_excel(
    path: Path, grid: Grid, header_index: int | None, sheet: str | int | None
) -> RawData:
    wb, ws = _open_sheet(path, sheet)
    header_line = grid.row_lines[header_index] if header_index is not None else 0
    if header_index is None:
        header = [f"column_{i + 1}" for i in range(max(len(r) for r in grid.rows))]
    else:
        header = _dedupe_names(grid.rows[header_index])
    n = len(header)
    cols: list[list[str]] = [[] for _ in range(n)]
    line_nos: list[int] = []
    try:
        for i, values in enumerate(ws.iter_rows(min_row=header_line + 1, values_only=True)):
            cells = [_cell_str(v) for v in values]
            if not any(cells):
                continue
            cells = (cells + [""] * n)[:n]
            for j in range(n):
                cols[j].append(cells[j])
            line_nos.append(header_line + 1 + i)
    finally:
        wb.close()
    table = pa.table({h: pa.array(c, pa.string()) for h, c in zip(header, cols, strict=True)})
    arr = np.asarray(line_nos, dtype=np.int64)
    return RawData(path, table, header, "excel", None, lambda: arr)


def _load_parquet(path: Path) -> RawData:
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    cols = {}
    for name in table.column_names:
        col = table.column(name)
        if pa.types.is_timestamp(col.type) and col.type.tz is not None:
            col = pc.strftime(col.cast(pa.timestamp("us", tz="UTC")), format="%Y-%m-%d %H:%M:%SZ")
        elif not pa.types.is_string(col.type):
            col = col.cast(pa.string())
        cols[name] = col
    out = pa.table(cols).combine_chunks()
    n = out.num_rows
    return RawData(
        path,
        out,
        list(out.column_names),
        "parquet",
        None,
        lambda: np.arange(2, n + 2, dtype=np.int64),
    )
