"""Text encodings of order files: which one a file is in, and which lines it cannot decode.

Order of trial: a BOM (UTF-8, UTF-16) decides; UTF-16 without a BOM is recognised by its
NUL bytes; then UTF-8 strictly, then GB18030 (a superset of GBK/GB2312, what Chinese
seller back-offices export) — unless the bytes look like Big5 (traditional Chinese, whose
byte pairs GB18030 also accepts but reads as the wrong characters), then charset-normalizer's
guess when it decodes the whole file cleanly.

A file that UTF-8 or GB18030 decodes except for a few lines (a cut or hand-edited export)
is read in that encoding — the one that decodes more of it — and each undecodable line is
reported by its physical line number and byte offset, so the rest can be imported. More
than :data:`MAX_BAD_SHARE` of the lines (at least :data:`MIN_BAD_LINES`) undecodable means
the encoding is wrong, and the file is refused with the first bad byte and a hint to
``--encoding``.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass
from pathlib import Path

from huitouke.errors import ImportFileError

__all__ = ["BadLine", "Decoded", "decode_bytes", "encoding_error"]

MAX_BAD_SHARE = 0.01
MIN_BAD_LINES = 10
_BLOCK = 1 << 20


@dataclass(frozen=True)
class BadLine:
    """A physical line that cannot be decoded: its 1-based number, the byte offset (in the
    file) and value of the first bad byte."""

    line: int
    offset: int
    byte: int


@dataclass(frozen=True)
class Decoded:
    body: bytes  # UTF-8, no BOM; an undecodable line is left empty (line numbers hold)
    encoding: str
    bad_lines: tuple[BadLine, ...] = ()


def _canonical(name: str) -> str:
    try:
        return codecs.lookup(name).name
    except LookupError:
        return name


def encoding_error(
    path: Path, data: bytes, offset: int, *, tried: str, encoding: str | None = None
) -> ImportFileError:
    """The file cannot be read as text: name the first bad byte, its line and a way out."""
    line = _line_of_offset(data, offset, encoding)
    byte = data[offset] if offset < len(data) else None
    shown = f"0x{byte:02X}" if byte is not None else "end of file"
    hint = _hint(data)
    return ImportFileError(
        f"{path.name}: cannot decode the file as text (tried {tried}); first bad byte "
        f"{shown} at line {line:,} (byte offset {offset:,}). Save it as UTF-8 or GBK CSV, "
        f"or pass --encoding{hint[0]}.",
        code="import.bad_encoding",
        message_zh=f"{path.name}:无法按文本解码(已尝试 {tried});第一个无效字节 {shown} 在第 "
        f"{line:,} 行(字节偏移 {offset:,})。请另存为 UTF-8 或 GBK 编码的 CSV,或用 "
        f"--encoding 指定编码{hint[1]}。",
        details={
            "file": str(path),
            "byte_offset": offset,
            "line": line,
            "byte": byte,
            "tried": tried,
        },
    )


def _hint(data: bytes) -> tuple[str, str]:
    if _utf16_order(data) is not None:
        return " utf-16-le (or utf-16-be)", "(如 utf-16-le)"
    if _looks_big5(data):
        return " big5", "(如 big5)"
    return " (e.g. gbk, big5, utf-16)", "(如 gbk、big5、utf-16)"


def _line_of_offset(data: bytes, offset: int, encoding: str | None) -> int:
    if encoding is not None and _canonical(encoding).startswith("utf-16"):
        # two bytes per code unit: count the newlines of the decoded prefix
        prefix = data[: offset - (offset % 2)].decode(encoding, errors="replace")
        return prefix.count("\n") + 1
    return data.count(b"\n", 0, offset) + 1


def _utf16_order(data: bytes) -> str | None:
    """``utf-16-le``/``utf-16-be`` when the NUL bytes say so (text without a BOM)."""
    sample = data[:4096]
    if len(sample) < 4:
        return None
    even = sample[0::2].count(0)
    odd = sample[1::2].count(0)
    half = len(sample) // 2
    if odd > 0.3 * half and even < 0.05 * half:
        return "utf-16-le"
    if even > 0.3 * half and odd < 0.05 * half:
        return "utf-16-be"
    return None


def _looks_big5(data: bytes) -> bool:
    """Big5 bytes that GB18030 also accepts: Big5's common characters have a second byte in
    0x40–0x7E half of the time, GBK's (GB2312's 6,763 characters) never do."""
    sample = data[: 1 << 16]
    pairs = low = 0
    i, n = 0, len(sample) - 1
    while i < n:
        b = sample[i]
        if b >= 0x81:
            t = sample[i + 1]
            pairs += 1
            low += 0x40 <= t <= 0x7E
            i += 2
        else:
            i += 1
    return pairs >= 20 and low > 0.2 * pairs


def _strict(data: bytes, encoding: str) -> str | None:
    try:
        return data.decode(encoding)
    except UnicodeDecodeError:
        return None


def decode_bytes(data: bytes, path: Path, encoding: str | None = None) -> Decoded:
    """The file's bytes as UTF-8 (without BOM), the encoding they were read in, and the
    lines that could not be decoded (see the module doc)."""
    if encoding:
        try:
            codecs.lookup(encoding)
        except LookupError as exc:
            raise ImportFileError(
                f"unknown encoding {encoding!r} (e.g. utf-8, gbk, gb18030, big5, utf-16)",
                code="import.bad_encoding",
                message_zh=f"未知编码 {encoding!r}(如 utf-8、gbk、gb18030、big5、utf-16)",
                details={"file": str(path), "encoding": encoding},
            ) from exc
        return _decode_declared(data, path, encoding)
    if data.startswith(b"\xef\xbb\xbf"):
        return _by_lines_or_refuse(data, path, "utf-8", start=3, name="utf-8-sig")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return _decode_declared(data, path, "utf-16")
    order = _utf16_order(data)
    if order is not None:
        text = _strict(data, order)
        if text is not None:
            return Decoded(text.encode("utf-8"), order)
        raise _first_error(path, data, order, tried=order)
    utf8_ok = data.isascii() or _strict(data, "utf-8") is not None
    if utf8_ok:
        if b"\x00" in data:
            raise encoding_error(path, data, data.index(b"\x00"), tried="utf-8")
        return Decoded(data, "utf-8")
    # mostly UTF-8 with a few bad lines: GB18030 would accept the whole file but read its
    # Chinese as the wrong characters, so a file whose other lines hold UTF-8 multi-byte
    # text is UTF-8 (a GBK file's Chinese lines are almost never valid UTF-8)
    mostly_utf8 = _decode_lines(data, "utf-8", 0)
    if mostly_utf8 is not None and not mostly_utf8.body.isascii():
        return mostly_utf8
    big5 = _looks_big5(data)
    if not big5:
        text = _strict(data, "gb18030")
        if text is not None and "\x00" not in text:
            return Decoded(text.encode("utf-8"), "gb18030")
    else:
        text = _strict(data, "big5")
        if text is not None and "\x00" not in text:
            return Decoded(text.encode("utf-8"), "big5")
    # a few undecodable lines in an otherwise readable file: read it in the encoding that
    # decodes more of it, and report those lines
    candidates = ["big5"] if big5 else ["utf-8", "gb18030"]
    best: Decoded | None = None
    for enc in candidates:
        got = _decode_lines(data, enc, 0)
        if got is not None and (best is None or len(got.bad_lines) < len(best.bad_lines)):
            best = got
    if best is not None:
        return best
    guessed = _guess_encoding(data)
    if guessed is not None:
        return Decoded(guessed[0].encode("utf-8"), guessed[1])
    # refuse, naming the first bad byte of the encoding that reads furthest into the file
    errors = [_first_error(path, data, enc, tried=", ".join(candidates)) for enc in candidates]
    raise max(errors, key=lambda e: int(e.details["byte_offset"]))


def _decode_declared(data: bytes, path: Path, encoding: str) -> Decoded:
    canon = _canonical(encoding)
    if canon.startswith("utf-16") or canon.startswith("utf-32"):
        text = _strict(data, encoding)
        if text is None:  # no line-by-line reading of two-byte text: refuse
            raise _first_error(path, data, encoding, tried=encoding)
        return Decoded(text.lstrip("\ufeff").encode("utf-8"), encoding)
    start = 3 if canon == "utf-8" and data.startswith(b"\xef\xbb\xbf") else 0
    return _by_lines_or_refuse(data, path, encoding, start=start, name=encoding)


def _by_lines_or_refuse(
    data: bytes, path: Path, encoding: str, *, start: int, name: str
) -> Decoded:
    text = _strict(data[start:], encoding)
    if text is not None:
        return Decoded(text.encode("utf-8"), name)
    got = _decode_lines(data, encoding, start)
    if got is None:
        raise _first_error(path, data, encoding, tried=name, start=start)
    return Decoded(got.body, name, got.bad_lines)


def _first_error(
    path: Path, data: bytes, encoding: str, *, tried: str, start: int = 0
) -> ImportFileError:
    try:
        data[start:].decode(encoding)
        offset = len(data)
    except UnicodeDecodeError as exc:
        offset = exc.start + start
    return encoding_error(path, data, offset, tried=tried, encoding=encoding)


def _decode_lines(data: bytes, encoding: str, start: int) -> Decoded | None:
    """Decode block by block; a block that fails is decoded line by line, and a line that
    fails is left empty and reported. ``None`` when too many lines fail."""
    total_lines = data.count(b"\n") + 1
    cap = max(MIN_BAD_LINES, int(total_lines * MAX_BAD_SHARE))
    out: list[str] = []
    bad: list[BadLine] = []
    pos = start
    line_no = 1
    n = len(data)
    while pos < n:
        end = data.find(b"\n", min(pos + _BLOCK, n))
        end = n if end < 0 else end + 1
        block = data[pos:end]
        text = _strict(block, encoding)
        if text is not None:
            out.append(text)
            line_no += block.count(b"\n")
            pos = end
            continue
        for raw in block.splitlines(keepends=True):
            piece = _strict(raw, encoding)
            if piece is None:
                try:
                    raw.decode(encoding)
                    at = 0
                except UnicodeDecodeError as exc:
                    at = exc.start
                bad.append(BadLine(line_no, pos + at, raw[at]))
                if len(bad) > cap:
                    return None
                piece = "\n" if raw.endswith(b"\n") else ""
            out.append(piece)
            line_no += raw.count(b"\n")
            pos += len(raw)
    body = "".join(out)
    if "\x00" in body:
        return None
    return Decoded(body.encode("utf-8"), encoding, tuple(bad))


def _guess_encoding(data: bytes) -> tuple[str, str] | None:
    from charset_normalizer import from_bytes

    best = from_bytes(data[: 1 << 20]).best()
    if best is None or best.encoding in (None, "ascii", "utf_8") or best.chaos > 0.05:
        return None
    try:
        text = data.decode(best.encoding)
    except (UnicodeDecodeError, LookupError):
        return None
    if "\x00" in text:
        return None
    return text, best.encoding
