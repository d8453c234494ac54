"""Vectorised cleaning and parsing of string columns (pyarrow.compute).

Each parser returns the parsed Arrow array (null where the input is missing or bad) and a
numpy boolean mask of the rows whose non-empty input could not be parsed, so that callers
reject exactly those rows with the field and reason.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from huitouke.core.orders import MONEY
from huitouke.store.orders_repo import on_dictionary

__all__ = [
    "clean",
    "mask",
    "on_dictionary",
    "parse_instant",
    "parse_int",
    "parse_money",
]

WIDE = pa.decimal128(38, 18)


def mask(arr: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A boolean Arrow array as numpy, nulls as False."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    return np.asarray(arr.fill_null(False).to_numpy(zero_copy_only=False), dtype=bool)


def clean(arr: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Trim, unwrap spreadsheet guards (``="123"``, ``'123``, leading tabs), empty → null."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if not pa.types.is_string(arr.type):
        arr = arr.cast(pa.string())
    s = pc.utf8_trim_whitespace(arr)
    guarded = False
    if pc.any(pc.starts_with(s, "=")).as_py():
        s = pc.replace_substring_regex(s, r'^="(.*)"$', r"\1")
        guarded = True
    if pc.any(pc.starts_with(s, "'")).as_py():
        s = pc.replace_substring_regex(s, r"^'", "")
        guarded = True
    if guarded:
        s = pc.utf8_trim_whitespace(s)
    empty = pc.equal(s, "")
    if not pc.any(empty).as_py():
        return s
    return pc.if_else(empty, pa.scalar(None, pa.string()), s)


def parse_money(arr: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """Decimal amounts (18, 4), rounded half away from zero; accepts thousands separators and
    currency signs. Scientific notation and text are bad."""
    try:  # fastest path: plain numbers with at most 4 decimals (exact, nothing to round)
        return arr.cast(MONEY), np.zeros(len(arr), dtype=bool)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    try:  # fast path: plain decimal numbers throughout
        wide = arr.cast(WIDE)
        money = pc.round(wide, 4, round_mode="half_towards_infinity").cast(MONEY)
        return money, np.zeros(len(arr), dtype=bool)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    s = pc.replace_substring_regex(arr, r"[,\s¥￥$£€元]|RMB|CNY|USD|GBP", "")
    s = pc.if_else(pc.equal(s, ""), pa.scalar(None, pa.string()), s)
    ok = pc.match_substring_regex(s, r"^[+-]?(\d{1,14}(\.\d{0,18})?|\.\d{1,18})$")
    bad = mask(pc.and_(pc.is_valid(s), pc.invert(ok)))
    good = pc.if_else(ok, s, pa.scalar(None, pa.string()))
    good = pc.replace_substring_regex(good, r"\.$", "")
    good = pc.replace_substring_regex(good, r"^\+", "")
    wide = good.cast(WIDE)
    money = pc.round(wide, 4, round_mode="half_towards_infinity").cast(MONEY)
    return money, bad


def parse_int(arr: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """Whole numbers (``2`` or ``2.0``); anything else is bad."""
    s = pc.replace_substring_regex(arr, r"[,\s]", "")
    ok = pc.match_substring_regex(s, r"^[+-]?\d{1,15}(\.0*)?$")
    bad = mask(pc.and_(pc.is_valid(s), pc.invert(ok)))
    good = pc.if_else(ok, pc.replace_substring_regex(s, r"\.0*$", ""), pa.scalar(None, pa.string()))
    return good.cast(pa.int64()), bad


_ISO_STRICT = r"^\d{4}-\d{2}-\d{2}( \d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?)?$"
_OFFSET_TAIL = r"\d:\d{2}(:\d{2})?(\.\d+)?\s*(Z|[+-]\d{2}:?\d{2})$"


def parse_instant(
    arr: pa.Array, zone: str, *, day_first: bool = False
) -> tuple[pa.Array, np.ndarray]:
    """Instants as ``timestamp[us, UTC]``.

    Strings with an offset (``+08:00``, ``-0400``, ``Z``) are instants as written; the others
    are wall-clock times in ``zone`` (the merchant's zone by default). A date alone is
    00:00 in the zone. Accepted shapes: ``YYYY-MM-DD[ HH:MM[:SS[.ffffff]]]`` with ``-`` or
    ``/`` or 年月日, single-digit parts, ``T`` separator, ``YYYYMMDD``, and ``M/D/YYYY``
    (US order, as in the UCI Online Retail data) or ``D/M/YYYY`` when ``day_first``.
    DST gaps and overlaps resolve to the earliest valid instant.
    """
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
    strict = pc.match_substring_regex(s, _ISO_STRICT)
    if not pc.all(pc.or_(strict, pc.is_null(s))).as_py():
        s = _normalise_dates(s, day_first=day_first)
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
    zoned = pc.assume_timezone(naive, zone, ambiguous="earliest", nonexistent="earliest")
    utc = zoned.cast(pa.timestamp("us", tz="UTC"))
    if any_off:
        secs = _offset_seconds(off)
        shifted = pc.subtract(
            naive.cast(pa.int64()), pc.multiply(secs, pa.scalar(1_000_000, pa.int64()))
        ).cast(pa.timestamp("us", tz="UTC"))
        utc = pc.if_else(has_off, shifted, utc)
    return utc, bad


def _normalise_dates(s: pa.Array, *, day_first: bool) -> pa.Array:
    s = pc.replace_substring_regex(s, r"/(\d)", r"-\1")
    s = pc.replace_substring_regex(s, r"^(\d{4})\.(\d{1,2})\.(\d{1,2})", r"\1-\2-\3")
    s = pc.replace_substring_regex(s, r"[年月]", "-")
    s = pc.replace_substring_regex(s, r"日\s*", " ")
    s = pc.replace_substring_regex(s, r"(\d)T(\d)", r"\1 \2")
    s = pc.utf8_trim_whitespace(pc.replace_substring_regex(s, r"\s+", " "))
    # split off fractional seconds and offsets before padding single digits
    parts = pc.extract_regex(
        s, r"^(?P<main>[^.]*?)(?P<frac>\.\d+)?(?P<tail>\s*(?:Z|[+-]\d{2}:?\d{2})?)$"
    )
    main = parts.field("main")
    main = pc.replace_substring_regex(main, r"\b(\d)\b", r"0\1")
    main = pc.replace_substring_regex(main, r"^(\d{4})(\d{2})(\d{2})$", r"\1-\2-\3")
    if day_first:
        main = pc.replace_substring_regex(main, r"^(\d{2})-(\d{2})-(\d{4})", r"\3-\2-\1")
    else:
        main = pc.replace_substring_regex(main, r"^(\d{2})-(\d{2})-(\d{4})", r"\3-\1-\2")
    frac = pc.fill_null(parts.field("frac"), "")
    frac = pc.utf8_slice_codeunits(frac, 0, 7)
    joined = pc.binary_join_element_wise(main, frac, pc.fill_null(parts.field("tail"), ""), "")
    # rows the pattern did not match keep their text (and fail the strict check later)
    return pc.if_else(pc.is_valid(main), joined, s)


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
