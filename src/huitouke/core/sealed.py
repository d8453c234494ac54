"""Sealed tokens: short opaque strings that carry a payload only the service can read.

Links in messages carry who they were sent to (a tracked link, an unsubscribe link), and a
customer id can be a phone number. A sealed token is authenticated encryption built from
HMAC-SHA256 alone (the standard library), in the synthetic-IV (SIV) pattern of RFC 5297:

- from the secret two keys are derived per purpose (``link``, ``unsubscribe``…), so a token
  of one purpose is never accepted as another: ``K_mac = HMAC(secret, "huitouke/<purpose>/mac")``
  and ``K_enc = HMAC(secret, "huitouke/<purpose>/enc")``;
- the tag is ``HMAC(K_mac, payload)`` truncated to 16 bytes (128 bits); it is both the
  signature and the IV;
- the payload is XORed with the key stream ``HMAC(K_enc, tag ‖ counter)`` (HMAC as a PRF in
  counter mode);
- the token is ``base64url(tag ‖ ciphertext)`` without padding.

Opening recomputes the key stream from the tag, decrypts, and accepts only when the tag of
the plaintext matches (constant-time). Without the secret the token reveals nothing but the
payload's length; altering any bit is detected. Sealing is deterministic: the same payload
gives the same token, which is what a link printed twice should do.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

__all__ = ["TAG_BYTES", "open_sealed", "seal"]

TAG_BYTES = 16


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)


def _keys(secret: str, purpose: str) -> tuple[bytes, bytes]:
    s = secret.encode("utf-8")
    mac = hmac.new(s, f"huitouke/{purpose}/mac".encode(), hashlib.sha256).digest()
    enc = hmac.new(s, f"huitouke/{purpose}/enc".encode(), hashlib.sha256).digest()
    return mac, enc


def _stream(key: bytes, tag: bytes, n: int) -> bytes:
    out = bytearray()
    counter = 0
    while len(out) < n:
        out += hmac.new(key, tag + counter.to_bytes(4, "big"), hashlib.sha256).digest()
        counter += 1
    return bytes(out[:n])


def _xor(a: bytes, b: bytes) -> bytes:
    return (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).to_bytes(len(a), "big")


def seal(secret: str, purpose: str, payload: bytes) -> str:
    """The opaque token of ``payload`` for ``purpose`` under ``secret``."""
    mac_key, enc_key = _keys(secret, purpose)
    tag = hmac.new(mac_key, payload, hashlib.sha256).digest()[:TAG_BYTES]
    return _b64(tag + _xor(payload, _stream(enc_key, tag, len(payload))))


def open_sealed(secret: str, purpose: str, token: str) -> bytes | None:
    """The payload of a genuine token of ``purpose``; ``None`` for anything else."""
    try:
        raw = _unb64(token)
    except (ValueError, binascii.Error):  # UnicodeEncodeError is a ValueError
        return None
    if len(raw) <= TAG_BYTES or _b64(raw) != token:  # one spelling per token
        return None
    mac_key, enc_key = _keys(secret, purpose)
    tag, body = raw[:TAG_BYTES], raw[TAG_BYTES:]
    payload = _xor(body, _stream(enc_key, tag, len(body)))
    expected = hmac.new(mac_key, payload, hashlib.sha256).digest()[:TAG_BYTES]
    return payload if hmac.compare_digest(tag, expected) else None
