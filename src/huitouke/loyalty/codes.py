"""Coupon and referral codes: short, unguessable, typo-resistant.

A code is ``length`` random symbols of Crockford's base32 alphabet (no I, L, O, U: nothing
to confuse with 1, 0 or V, no accidental words) drawn from :mod:`secrets`, followed by one
check symbol computed with the Luhn mod-32 algorithm, which catches every single-symbol
typo and every swap of two adjacent different symbols except ``0Z`` ↔ ``Z0`` (Luhn mod N's
one blind spot: the first and last symbols of the alphabet). The default 11 random symbols carry
55 bits: guessing one valid code among a million issued needs ~3.6e10 tries on average.

Codes are displayed in groups of four (``7KQ2-M9XD-4HTR``); :func:`normalize` accepts
lower case, spaces and dashes, and Crockford's aliases (O→0, I/L→1).
"""

from __future__ import annotations

import secrets

__all__ = ["ALPHABET", "check_symbol", "display", "generate", "is_valid", "normalize"]

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_INDEX = {c: i for i, c in enumerate(ALPHABET)}
_ALIASES = {"O": "0", "I": "1", "L": "1"}
_N = len(ALPHABET)


def check_symbol(body: str) -> str:
    """Luhn mod-N check symbol for ``body`` (already normalised)."""
    factor = 2
    total = 0
    for ch in reversed(body):
        addend = factor * _INDEX[ch]
        factor = 1 if factor == 2 else 2
        total += addend // _N + addend % _N
    return ALPHABET[(_N - total % _N) % _N]


def generate(length: int = 11, prefix: str = "") -> str:
    """A new random code (canonical form, without dashes), ``prefix`` included in the check."""
    if length < 6:
        raise ValueError("codes shorter than 6 random symbols are guessable")
    pre = normalize(prefix, check=False) if prefix else ""
    body = pre + "".join(secrets.choice(ALPHABET) for _ in range(length))
    return body + check_symbol(body)


def normalize(code: str, *, check: bool = False) -> str:
    """Canonical form: upper case, no separators, aliases resolved.

    Raises ``ValueError`` naming the bad symbol, or (with ``check``) a wrong check symbol.
    """
    out = []
    for ch in code.strip().upper():
        if ch in " -_":
            continue
        ch = _ALIASES.get(ch, ch)
        if ch not in _INDEX:
            raise ValueError(f"{ch!r} is not a code symbol")
        out.append(ch)
    canon = "".join(out)
    if check:
        if len(canon) < 2:
            raise ValueError("code too short")
        if check_symbol(canon[:-1]) != canon[-1]:
            raise ValueError("check symbol does not match: probably a typo")
    return canon


def is_valid(code: str) -> bool:
    try:
        normalize(code, check=True)
    except ValueError:
        return False
    return True


def display(code: str) -> str:
    """Groups of four separated by dashes, for printing."""
    c = normalize(code)
    return "-".join(c[i : i + 4] for i in range(0, len(c), 4))
