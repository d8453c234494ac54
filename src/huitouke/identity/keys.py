"""Matching keys: normalised phone numbers and e-mail addresses, platform union ids, hashed.

Pure functions, no I/O. A key is stored only as ``HMAC-SHA256(k, "<kind>:<value>")`` with a
key derived from the service secret, so a copy of the table reveals no phone number or
address (a plain hash of an 11-digit phone number is reversed by trying them all).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from functools import lru_cache
from typing import Any, Literal

import phonenumbers

__all__ = [
    "KINDS",
    "KeyKind",
    "account_keys",
    "hash_key",
    "identity_secret",
    "normalise_email",
    "normalise_phone",
]

KeyKind = Literal["phone", "email", "union_id"]
KINDS: tuple[KeyKind, ...] = ("phone", "email", "union_id")

#: profile attributes that carry a platform union id (WeChat UnionID, Alipay user id …)
UNION_ID_ATTRIBUTES = ("union_id", "unionid", "wechat_unionid")

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


#: a Chinese mobile number as exports write it: 11 digits from 1, spaces or dashes between
#: the groups, an optional +86 / 0086 / 86 in front
_CN_MOBILE = re.compile(r"^(?:(?:\+|00)?86[\s-]*)?(1\d\d)[\s-]?(\d{4})[\s-]?(\d{4})$")


@lru_cache(maxsize=1)
def _cn_descs() -> tuple[Any, list[Any]]:
    """libphonenumber's metadata for China: the general description and the number types'
    (what ``is_valid_number`` matches a national number against), patterns compiled once."""
    md: Any = phonenumbers.PhoneMetadata.metadata_for_region("CN")
    # any order decides validity alike: mobile first, the common case
    kinds = (md.mobile, md.fixed_line, md.premium_rate, md.toll_free, md.shared_cost, md.voip,
             md.personal_number, md.pager, md.uan, md.voicemail)  # fmt: skip

    def desc(d: Any) -> tuple[re.Pattern[str], frozenset[int]]:
        return re.compile(d.national_number_pattern), frozenset(d.possible_length or ())

    return desc(md.general_desc), [
        desc(d) for d in kinds if d is not None and d.national_number_pattern is not None
    ]


def _matches(desc: tuple[re.Pattern[str], frozenset[int]], digits: str) -> bool:
    pattern, lengths = desc
    if lengths and -1 in lengths:
        return False
    if lengths and len(digits) not in lengths:
        return False
    return pattern.fullmatch(digits) is not None


def _cn_valid(digits: str) -> bool:
    """``is_valid_number`` of the Chinese national number ``digits`` without parsing it
    again: the general description and then any number type matches (a test compares both
    ways on random numbers)."""
    general, kinds = _cn_descs()
    return _matches(general, digits) and any(_matches(d, digits) for d in kinds)


def normalise_phone(raw: str | None, region: str) -> str | None:
    """``raw`` as E.164 (``+8613800138000``), read in ``region`` (ISO 3166 alpha-2) when it
    has no country code; ``None`` when it is not a valid number (masked, too short, …).
    Chinese mobile numbers read in ``CN`` take a fast path (the keys are written with every
    order and import) with libphonenumber's answer."""
    if not raw or not str(raw).strip():
        return None
    text = str(raw).strip()
    if region.upper() == "CN" and (m := _CN_MOBILE.match(text)) is not None:
        digits = "".join(m.groups())
        return "+86" + digits if _cn_valid(digits) else None
    if text.startswith("00"):
        text = "+" + text[2:]
    try:
        number = phonenumbers.parse(text, region.upper())
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalise_email(raw: str | None) -> str | None:
    """``raw`` trimmed and lower-cased when it looks like an address; else ``None``."""
    if not raw:
        return None
    text = str(raw).strip().lower()
    return text if _EMAIL.match(text) else None


def identity_secret(service_secret: str) -> bytes:
    """The hashing key, derived from the service secret for this one purpose."""
    return hmac.new(service_secret.encode("utf-8"), b"huitouke/identity/keys", "sha256").digest()


def hash_key(secret: bytes, kind: KeyKind, value: str) -> str:
    """The stored form of a key: hex HMAC-SHA256 of ``kind:value``."""
    return hmac.digest(secret, f"{kind}:{value}".encode(), hashlib.sha256).hex()


def account_keys(
    phone: str | None, email: str | None, attributes: dict[str, Any] | None, *, region: str
) -> list[tuple[KeyKind, str]]:
    """The normalised keys one account carries (before hashing)."""
    out: list[tuple[KeyKind, str]] = []
    if (p := normalise_phone(phone, region)) is not None:
        out.append(("phone", p))
    if (e := normalise_email(email)) is not None:
        out.append(("email", e))
    for name in UNION_ID_ATTRIBUTES:
        value = (attributes or {}).get(name)
        if isinstance(value, str) and value.strip():
            out.append(("union_id", value.strip()))
            break
    return out
