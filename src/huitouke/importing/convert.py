"""Vectorised cleaning and parsing of string columns (pyarrow.compute).

Each parser returns the parsed Arrow array (null where the input is missing or bad) and a
numpy boolean mask of the rows whose non-empty input could not be parsed, so that callers
reject exactly those rows with the field and reason.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from huitouke.core.orders import MONEY
from huitouke.store.orders_repo import on_dictionary

__all__ = [
    "clean",
    "mask",
    "on_dictionary",
    "parse_amount",
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


Decimal = Literal["auto", "comma", "point"]

_SIGNS = r"[\s¥￥$£€元]|RMB|CNY|USD|GBP|EUR"
# a value's own evidence of its decimal separator (the other one groups thousands)
_COMMA_STYLE = (
    r"^[+-]?\d{1,3}(\.\d{3})+,\d*$"  # 1.299,00
    r"|^[+-]?\d{1,3}(\.\d{3}){2,}$"  # 1.234.567
    r"|^[+-]?\d*,\d*$"  # 12,5 · 0,125 · 1234,567 (a single comma, not ambiguous)
)
_POINT_STYLE = (
    r"^[+-]?\d{1,3}(,\d{3})+\.\d*$"  # 1,299.00
    r"|^[+-]?\d{1,3}(,\d{3}){2,}$"  # 1,234,567
    r"|^[+-]?\d*\.\d*$"  # 12.5 · 0.125 (a single point, not ambiguous)
)
# one separator followed by exactly three digits after 1–3 leading digits: 1,299 or 1.299
# is a thousand-something with a grouping separator, or one-point-something
_AMBIGUOUS = r"^[+-]?[1-9]\d{0,2}[.,]\d{3}$"


def parse_money(arr: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """Decimal amounts (18, 4), rounded half away from zero; accepts thousands separators and
    currency signs. Scientific notation and text are bad (so are ambiguous values in a
    column that mixes decimal commas and points: see :func:`parse_amount`)."""
    money, bad, ambiguous = parse_amount(arr)
    return money, bad | ambiguous


def parse_amount(
    arr: pa.Array, decimal: Decimal = "auto"
) -> tuple[pa.Array, np.ndarray, np.ndarray]:
    """Amounts of one column: (money, bad, ambiguous) — see :func:`parse_money`.

    The decimal separator is decided per column: ``decimal="comma"``/``"point"`` declares it;
    ``"auto"`` reads the column's own evidence — values such as ``1.299,00``, ``12,5`` or
    ``1.234.567`` use a decimal comma, ``1,299.00``, ``12.5`` or ``1,234,567`` a decimal point.
    A column with evidence of only one convention is read in it throughout (``1.299`` is
    1299 in a decimal-comma column); without any evidence the decimal point holds (``1,299``
    is 1299, ``1.299`` is 1.299, as Chinese and English exports write them). Where the
    column mixes both, values that read either way (``1,299``, ``1.299``) are ambiguous;
    so are values that contradict a declared separator. Ambiguous values are never read.
    """
    n = len(arr)
    nothing = np.zeros(n, dtype=bool)
    if decimal != "comma":
        try:  # fastest path: plain numbers with at most 4 decimals (exact, nothing to round)
            return arr.cast(MONEY), nothing, nothing
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass
        try:  # fast path: plain decimal numbers throughout
            wide = arr.cast(WIDE)
            money = pc.round(wide, 4, round_mode="half_towards_infinity").cast(MONEY)
            return money, nothing, nothing
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass
    s = pc.replace_substring_regex(arr, _SIGNS, "")
    s = pc.if_else(pc.equal(s, ""), pa.scalar(None, pa.string()), s)
    ambiguous = nothing
    if decimal == "auto" and not pc.any(pc.match_substring(s, ",")).as_py():
        pass  # no comma anywhere: points are decimal points
    else:
        amb = pc.match_substring_regex(s, _AMBIGUOUS)
        not_amb = pc.invert(amb)
        comma = pc.and_(pc.match_substring_regex(s, _COMMA_STYLE), not_amb)
        point = pc.and_(pc.match_substring_regex(s, _POINT_STYLE), not_amb)
        col: str = decimal
        if decimal == "auto":
            c_ev, p_ev = pc.any(comma).as_py(), pc.any(point).as_py()
            col = "mixed" if (c_ev and p_ev) else "comma" if c_ev else "point"
        if col == "comma":
            as_comma = pc.or_(comma, amb)
            wrong = point
        elif col == "point":
            as_comma = pc.and_(comma, pa.scalar(False))
            wrong = comma if decimal == "point" else as_comma
        else:  # mixed: each unambiguous value by its own form
            as_comma = comma
            wrong = amb
        ambiguous = mask(wrong)
        to_point = pc.replace_substring(pc.replace_substring(s, ".", ""), ",", ".")
        s = pc.if_else(pc.fill_null(as_comma, False), to_point, s)
        s = pc.if_else(pa.array(ambiguous), pa.scalar(None, pa.string()), s)
    s = pc.replace_substring(s, ",", "")
    ok = pc.match_substring_regex(s, r"^[+-]?(\d{1,14}(\.\d{0,18})?|\.\d{1,18})$")
    bad = mask(pc.and_(pc.is_valid(s), pc.invert(ok)))
    good = pc.if_else(ok, s, pa.scalar(None, pa.string()))
    good = pc.replace_substring_regex(good, r"\.$", "")
    good = pc.replace_substring_regex(good, r"^\+", "")
    wide = good.cast(WIDE)
    money = pc.round(wide, 4, round_mode="half_towards_infinity").cast(MONEY)
    return money, bad, ambiguous


def parse_int(arr: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """Whole numbers (``2`` or ``2.0``); anything else is bad."""
    s = pc.replace_substring_regex(arr, r"[,\s]", "")
    ok = pc.match_substring_regex(s, r"^[+-]?\d{1,15}(\.0*)?$")
    bad = mask(pc.and_(pc.is_valid(s), pc.invert(ok)))
    good = pc.if_else(ok, pc.replace_substring_regex(s, r"\.0*$", ""), pa.scalar(None, pa.string()))
    return good.cast(pa.int64()), bad
