"""Order times: the shapes exports write them in → instants (``timestamp[us, UTC]``).

Vectorised (pyarrow.compute) with a fast path for ISO-like text. The day/month order of
``D/M/YYYY``-like values is a property of the file: declared, or inferred from values whose
first or second part is over 12, and a file that does not settle it is refused
(:class:`DateOrderUnclear`) rather than read one way by chance.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from huitouke.importing.convert import mask

__all__ = ["DateOrder", "DateOrderUnclear", "parse_instant"]

DateOrder = Literal["dmy", "mdy", "ymd"]

_ISO_STRICT = r"^\d{4}-\d{2}-\d{2}( \d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?)?$"
_OFFSET_TAIL = r"\d:\d{2}(:\d{2})?(\.\d+)?\s*(Z|[+-]\d{2}:?\d{2})$"
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_MONTH_RE = [
    rf"(?i)\b{m}[a-z]*\.?" if m != "may" else r"(?i)\bmay\b" for m in _MONTHS
]  # May has no abbreviation; "sept", "june" … match the prefix
_WEEKDAY_RE = (
    r"(?i)\b(mon|tue|wed|thu|fri|sat|sun)[a-z]*\.?,?\s*|(星期|周|礼拜)[一二三四五六日天]\s*"
)
_AMPM_RE = r"(?:上午|凌晨|早上|下午|晚上|中午|[aApP]\.?[mM]\.?)"
_NAMES_HINT = r"[A-SU-Ya-su-y]|星期|礼拜|周[一二三四五六日天]"
_EXCEL_SERIAL = r"^\d{5}(\.\d+)?$"
_EXCEL_EPOCH = datetime(1899, 12, 30)  # serial 1 = 1900-01-01 (Excel's 1900 leap-day bug)


class DateOrderUnclear(Exception):
    """The day/month order of ``NN/NN/YYYY`` values is not settled by the file.

    ``kind`` is ``"ambiguous"`` (no value has a part over 12; ``rows`` holds one row that
    reads two ways) or ``"mixed"`` (some values are day-first, others month-first; ``rows``
    holds one of each)."""

    def __init__(self, kind: str, rows: list[int]) -> None:
        super().__init__(kind)
        self.kind = kind
        self.rows = rows


def parse_instant(
    arr: pa.Array,
    zone: str,
    *,
    day_first: bool = False,
    date_order: DateOrder | None = None,
    excel_serial: bool = False,
    offsets_seen: list[int] | None = None,
) -> tuple[pa.Array, np.ndarray]:
    """Instants as ``timestamp[us, UTC]`` and the mask of values that cannot be read.

    Strings with an offset (``+08:00``, ``-0400``, ``Z``) are instants as written (their
    distinct offsets in seconds are appended to ``offsets_seen``); the others are wall-clock
    times in ``zone``. A date alone is 00:00 in the zone. Accepted shapes:
    ``YYYY-MM-DD[ HH:MM[:SS[.ffffff]]]`` with ``-``, ``/``, ``.`` or 年月日, single-digit
    parts, ``T`` separator, ``YYYYMMDD``; ``D/M/YYYY`` or ``M/D/YYYY`` (also with ``-`` or
    ``.``) in the order ``date_order`` declares (``day_first`` is ``"dmy"``) or the values
    settle (else :class:`DateOrderUnclear`); month names (``5 Mar 2024``, ``March 5, 2024``,
    ``05-Mar-2024``) with or without a weekday; 12-hour times (``8:26 PM``, ``下午8:26``);
    Excel serial day numbers (``45356.5``) when ``excel_serial`` (cells of a workbook).
    DST gaps and overlaps resolve to the earliest valid instant.
    """
    if day_first and date_order is None:
        date_order = "dmy"
    n = len(arr)
    if n == 0:
        return pa.array([], pa.timestamp("us", tz="UTC")), np.zeros(0, dtype=bool)
    try:  # fast path: ISO-like wall-clock times throughout
        naive = arr.cast(pa.timestamp("us"))
        zoned = pc.assume_timezone(naive, zone, ambiguous="earliest", nonexistent="earliest")
        return zoned.cast(pa.timestamp("us", tz="UTC")), np.zeros(n, dtype=bool)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    s = arr
    if excel_serial:
        s = _excel_serials(s)
    # Unix seconds (order APIs dumped to a file, e.g. WeChat's create_time): instants
    epoch = pc.fill_null(pc.match_substring_regex(s, r"^1\d{9}$"), False)
    any_epoch = bool(pc.any(epoch).as_py())
    if any_epoch:
        epoch_utc = pc.multiply(
            pc.if_else(epoch, s, pa.scalar("0")).cast(pa.int64()), pa.scalar(1_000_000, pa.int64())
        ).cast(pa.timestamp("us", tz="UTC"))
        s = pc.if_else(epoch, pa.scalar("1970-01-01"), s)
    strict = pc.match_substring_regex(s, _ISO_STRICT)
    marker = None
    if not pc.all(pc.or_(strict, pc.is_null(s))).as_py():
        # names need letters other than ISO's T and Z (or a Chinese weekday)
        if pc.any(pc.match_substring_regex(s, _NAMES_HINT)).as_py():
            s = _month_names(s)
        has_marker = pc.match_substring_regex(s, _AMPM_RE)
        if pc.any(has_marker).as_py():
            found = pc.extract_regex(s, rf"(?P<m>{_AMPM_RE})").field("m")
            # (a row without a match extracts "", not null)
            marker = pc.if_else(has_marker, pc.utf8_lower(found), pa.scalar(None, pa.string()))
            s = pc.utf8_trim_whitespace(pc.replace_substring_regex(s, _AMPM_RE, " "))
        s = _normalise_dates(s, date_order)
    has_off = pc.match_substring_regex(s, _OFFSET_TAIL)
    any_off = bool(pc.any(has_off).as_py())
    if any_off:
        off = pc.extract_regex(s, r"(?P<off>Z|[+-]\d{2}:?\d{2})$").field("off")
        local = pc.utf8_trim_whitespace(pc.replace_substring_regex(s, r"(Z|[+-]\d{2}:?\d{2})$", ""))
        s = pc.if_else(has_off, local, s)
    ok = pc.match_substring_regex(s, _ISO_STRICT)
    bad_shape = mask(pc.and_(pc.is_valid(arr), pc.invert(ok)))
    good = pc.if_else(ok, s, pa.scalar(None, pa.string()))
    naive, bad_value = _cast_naive(good)
    bad = bad_shape | bad_value
    if marker is not None:
        naive, bad_hour = _twelve_hour(naive, marker)
        bad |= bad_hour
    zoned = pc.assume_timezone(naive, zone, ambiguous="earliest", nonexistent="earliest")
    utc = zoned.cast(pa.timestamp("us", tz="UTC"))
    if any_off:
        secs = _offset_seconds(off)
        if offsets_seen is not None:
            offsets_seen.extend(int(x) for x in pc.unique(secs.filter(has_off)).to_pylist())
        shifted = pc.subtract(
            naive.cast(pa.int64()), pc.multiply(secs, pa.scalar(1_000_000, pa.int64()))
        ).cast(pa.timestamp("us", tz="UTC"))
        utc = pc.if_else(has_off, shifted, utc)
    if any_epoch:
        utc = pc.if_else(epoch, epoch_utc, utc)
    return utc, bad


def _excel_serials(s: pa.Array) -> pa.Array:
    """Excel day numbers (a date cell the workbook stores as a plain number) → ISO text."""
    serial = pc.match_substring_regex(s, _EXCEL_SERIAL)
    if not pc.any(serial).as_py():
        return s
    idx = np.flatnonzero(mask(serial))
    out: list[str | None] = []
    for v in s.take(pa.array(idx)).to_pylist():
        days = float(v)
        when = _EXCEL_EPOCH + timedelta(microseconds=round(days * 86_400_000_000))
        out.append(when.isoformat(sep=" "))
    values = s.to_pylist()
    for i, v in zip(idx.tolist(), out, strict=True):
        values[i] = v
    return pa.array(values, pa.string())


def _month_names(s: pa.Array) -> pa.Array:
    """Weekday names dropped; month names → ``YYYY-MM-DD`` in whatever order they came."""
    s = pc.replace_substring_regex(s, _WEEKDAY_RE, "")
    for i, rx in enumerate(_MONTH_RE):
        s = pc.replace_substring_regex(s, rx, f"@{i + 1:02d}@")
    sep = r"[\s\-/.,]*"
    s = pc.replace_substring_regex(
        s, rf"^(\d{{1,2}})(?:st|nd|rd|th)?{sep}@(\d\d)@{sep}(\d{{4}})", r"\3-\2-\1"
    )
    s = pc.replace_substring_regex(
        s, rf"^@(\d\d)@{sep}(\d{{1,2}})(?:st|nd|rd|th)?{sep}(\d{{4}})", r"\3-\1-\2"
    )
    s = pc.replace_substring_regex(s, rf"^(\d{{4}}){sep}@(\d\d)@{sep}(\d{{1,2}})", r"\1-\2-\3")
    # "March 5, 2024 at 10:31" → "2024-03-05 10:31"
    return pc.replace_substring_regex(s, r"^(\d{4}-\d\d-\d{1,2})(?:\s*,\s*|\s+at\s+|\s+)", r"\1 ")


def _twelve_hour(naive: pa.Array, marker: pa.Array) -> tuple[pa.Array, np.ndarray]:
    pm = pc.fill_null(pc.match_substring_regex(marker, r"^(p|下午|晚上|中午)"), False)
    am = pc.fill_null(pc.is_valid(marker), False)
    am = pc.and_(am, pc.invert(pm))
    hour = pc.hour(naive)
    half = pa.scalar(12 * 3600 * 1_000_000, pa.int64())
    micros = naive.cast(pa.int64())
    plus = pc.and_(pm, pc.less(hour, 12))
    minus = pc.and_(am, pc.equal(hour, 12))
    micros = pc.if_else(plus, pc.add(micros, half), micros)
    micros = pc.if_else(minus, pc.subtract(micros, half), micros)
    # "上午 14:00" is no time; "下午 14:00" says the same thing twice and is accepted
    bad = mask(pc.and_(am, pc.greater(hour, 12)))
    return micros.cast(pa.timestamp("us")), bad


def _normalise_dates(s: pa.Array, date_order: DateOrder | None) -> pa.Array:
    s = pc.replace_substring_regex(s, r"/(\d)", r"-\1")
    s = pc.replace_substring_regex(s, r"^(\d{4})\.(\d{1,2})\.(\d{1,2})", r"\1-\2-\3")
    s = pc.replace_substring_regex(s, r"^(\d{1,2})\.(\d{1,2})\.(\d{4})", r"\1-\2-\3")
    s = pc.replace_substring_regex(s, r"[年月]", "-")
    s = pc.replace_substring_regex(s, r"日\s*", " ")
    s = pc.replace_substring_regex(s, r"(\d)T(\d)", r"\1 \2")
    s = pc.utf8_trim_whitespace(pc.replace_substring_regex(s, r"\s+", " "))
    # split off fractional seconds and offsets before padding single digits
    parts = pc.extract_regex(
        s, r"^(?P<main>[^.]*?)(?P<frac>\.\d+)?(?P<tail>\s*(?:Z|[+-]\d{2}:?\d{2})?)$"
    )
    # an offset follows a time: without one, "04-03-2024" keeps its "-2024"
    timed = pc.fill_null(pc.match_substring_regex(s, r"\d:\d{2}"), False)
    main = pc.if_else(timed, parts.field("main"), s)
    main = pc.replace_substring_regex(main, r"\b(\d)\b", r"0\1")
    main = pc.replace_substring_regex(main, r"^(\d{4})(\d{2})(\d{2})$", r"\1-\2-\3")
    order = date_order or _infer_order(main)
    if order == "dmy":
        main = pc.replace_substring_regex(main, r"^(\d{2})-(\d{2})-(\d{4})", r"\3-\2-\1")
    elif order == "mdy":
        main = pc.replace_substring_regex(main, r"^(\d{2})-(\d{2})-(\d{4})", r"\3-\1-\2")
    frac = pc.if_else(timed, pc.fill_null(parts.field("frac"), ""), pa.scalar(""))
    frac = pc.utf8_slice_codeunits(frac, 0, 7)
    tail = pc.if_else(timed, pc.fill_null(parts.field("tail"), ""), pa.scalar(""))
    joined = pc.binary_join_element_wise(main, frac, tail, "")
    # rows the pattern did not match keep their text (and fail the strict check later)
    return pc.if_else(pc.is_valid(main), joined, s)


def _infer_order(main: pa.Array) -> DateOrder | None:
    """Day-first or month-first, from values whose first or second part is over 12."""
    shape = r"^(?P<a>\d{2})-(?P<b>\d{2})-\d{4}"
    hit = pc.fill_null(pc.match_substring_regex(main, shape), False)
    if not pc.any(hit).as_py():
        return None
    parts = pc.extract_regex(pc.if_else(hit, main, pa.scalar("00-00-0000")), shape)
    a = parts.field("a").cast(pa.int32())
    b = parts.field("b").cast(pa.int32())
    a_txt = pc.if_else(hit, parts.field("a"), pa.scalar(None, pa.string()))
    day_first = mask(pc.and_(pc.greater(a, 12), pc.less_equal(b, 12)))
    month_first = mask(pc.and_(pc.greater(b, 12), pc.less_equal(a, 12)))
    if day_first.any() and month_first.any():
        rows = [int(np.flatnonzero(day_first)[0]), int(np.flatnonzero(month_first)[0])]
        raise DateOrderUnclear("mixed", sorted(rows))
    if day_first.any():
        return "dmy"
    if month_first.any():
        return "mdy"
    two_ways = mask(pc.and_(pc.is_valid(a_txt), pc.not_equal(a, b)))
    if two_ways.any():
        raise DateOrderUnclear("ambiguous", [int(np.flatnonzero(two_ways)[0])])
    return "mdy"  # every such value has day = month: either order reads the same


def _cast_naive(good: pa.Array) -> tuple[pa.Array, np.ndarray]:
    try:
        return good.cast(pa.timestamp("us")), np.zeros(len(good), dtype=bool)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    # Some value has the right shape but is no real date (month 13, Feb 30): find them.
    values = good.to_pylist()
    out: list[datetime | None] = []
    bad = np.zeros(len(values), dtype=bool)
    for i, v in enumerate(values):
        if v is None:
            out.append(None)
            continue
        try:
            out.append(datetime.fromisoformat(v).replace(tzinfo=None))
        except ValueError:
            out.append(None)
            bad[i] = True
    return pa.array(out, pa.timestamp("us")), bad


def _offset_seconds(off: pa.Array) -> pa.Array:
    z = pc.equal(off, "Z")
    parts = pc.extract_regex(
        pc.if_else(z, pa.scalar("+0000"), off), r"^(?P<sign>[+-])(?P<h>\d{2}):?(?P<m>\d{2})$"
    )
    h = _digits(parts.field("h"))
    m = _digits(parts.field("m"))
    secs = pc.add(pc.multiply(h, 3600), pc.multiply(m, 60))
    neg = pc.equal(parts.field("sign"), "-")
    return pc.fill_null(pc.if_else(neg, pc.negate(secs), secs), 0)


def _digits(a: pa.Array) -> pa.Array:
    a = pc.fill_null(a, "0")
    return pc.if_else(pc.equal(a, ""), pa.scalar("0"), a).cast(pa.int64())
