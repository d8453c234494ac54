"""SMS length, segments and cost (pure).

An SMS is billed per segment. A text that fits the GSM 03.38 7-bit alphabet takes 160
characters in one segment and 153 per segment when concatenated (the user-data header eats
7); the extension characters ``^ { } [ ] ~ | € \\`` and form feed are sent as an escape plus a
character and count 2. Any other character — any Chinese character — switches the whole
text to UCS-2: 70 UTF-16 code units in one segment, 67 per segment when concatenated
(characters outside the Basic Multilingual Plane, such as most emoji, take 2 units). A
character (or an escape pair) is never split across two segments.

In China the signature 【店名】 and the unsubscribe footer "回T退订" are part of what the
carrier delivers and bills, so :func:`compose_sms` adds both before counting. The seed's price
is 4.5–5 fen a segment (``HUITOUKE_SMS_PRICE_PER_SEGMENT``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

__all__ = [
    "GSM7_BASIC",
    "GSM7_EXTENSION",
    "SmsCount",
    "compose_sms",
    "count_sms",
    "estimate_cost",
    "split_segments",
]

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("^{}\\[~]|€\f")

Encoding = Literal["GSM-7", "UCS-2"]
_LIMITS: dict[str, tuple[int, int]] = {"GSM-7": (160, 153), "UCS-2": (70, 67)}


@dataclass(frozen=True)
class SmsCount:
    """How a text travels: its encoding, length in that encoding's units, and segments."""

    text: str
    encoding: Encoding
    characters: int
    units: int
    segments: int
    per_segment: int

    @property
    def remaining(self) -> int:
        """Units left in the last segment before another segment is needed."""
        if self.segments <= 1:
            return _LIMITS[self.encoding][0] - self.units
        used_last = self.units - sum(
            len_units(s, self.encoding) for s in split_segments(self.text)[:-1]
        )
        return self.per_segment - used_last

    def to_dict(self) -> dict[str, object]:
        return {
            "encoding": self.encoding,
            "characters": self.characters,
            "units": self.units,
            "segments": self.segments,
            "per_segment": self.per_segment,
            "remaining": self.remaining,
        }


def encoding_of(text: str) -> Encoding:
    return "GSM-7" if all(ch in GSM7_BASIC or ch in GSM7_EXTENSION for ch in text) else "UCS-2"


def _unit_cost(ch: str, encoding: Encoding) -> int:
    if encoding == "GSM-7":
        return 2 if ch in GSM7_EXTENSION else 1
    return 2 if ord(ch) > 0xFFFF else 1


def len_units(text: str, encoding: Encoding) -> int:
    return sum(_unit_cost(ch, encoding) for ch in text)


def split_segments(text: str) -> list[str]:
    """The text cut as a phone receives it: one part, or 153/67-unit parts."""
    encoding = encoding_of(text)
    single, multi = _LIMITS[encoding]
    if len_units(text, encoding) <= single:
        return [text] if text else [""]
    parts: list[str] = []
    current: list[str] = []
    used = 0
    for ch in text:
        cost = _unit_cost(ch, encoding)
        if used + cost > multi:
            parts.append("".join(current))
            current, used = [], 0
        current.append(ch)
        used += cost
    if current:
        parts.append("".join(current))
    return parts


def count_sms(text: str) -> SmsCount:
    """Encoding, units and segments of ``text`` exactly as it is sent."""
    encoding = encoding_of(text)
    units = len_units(text, encoding)
    single, multi = _LIMITS[encoding]
    segments = 1 if units <= single else len(split_segments(text))
    return SmsCount(
        text=text,
        encoding=encoding,
        characters=len(text),
        units=units,
        segments=segments,
        per_segment=single if segments == 1 else multi,
    )


def compose_sms(
    body: str, *, sign_name: str = "", footer: str = "回T退订", marketing: bool = True
) -> str:
    """The full text a customer receives: 【signature】 + body (+ footer for marketing).

    Marketing SMS carry the unsubscribe footer (unless the body already ends with it);
    service notices do not need it.
    """
    text = body.strip()
    if sign_name and not text.startswith(f"【{sign_name}】"):
        text = f"【{sign_name}】{text}"
    if marketing and footer and not text.endswith(footer):
        text = f"{text} {footer}"
    return text


def estimate_cost(segments: int | Iterable[int], price_per_segment: Decimal) -> Decimal:
    """Cost of sending ``segments`` (a total, or one count per message) at the given price."""
    total = segments if isinstance(segments, int) else sum(segments)
    if total < 0:
        raise ValueError("segments must be >= 0")
    return (Decimal(total) * Decimal(price_per_segment)).quantize(Decimal("0.0001"))
