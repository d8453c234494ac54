"""Opaque tokens for unsubscribe links (and the inbound callback token).

A token seals (:mod:`huitouke.core.sealed`: encrypted and authenticated under the service's
secret, purpose ``unsubscribe``) the compact JSON ``{"c": customer_id, "ch": channel or "*",
"m": message_id, "iat": issued unix seconds}``: the link says nothing about who it belongs
to. It does not expire — an unsubscribe link must keep working for as long as the email sits
in an inbox — and it is compared in constant time.

Links of the first format (``base64url(payload) "." base64url(HMAC-SHA256)``, readable) are
still honoured when their signature is genuine: they are in inboxes already, and leaving a
list must always work. New links are never made in that format.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from dataclasses import dataclass

from huitouke.core.sealed import open_sealed, seal
from huitouke.errors import AuthError

__all__ = [
    "UnsubscribeClaim",
    "derive_inbound_token",
    "make_unsubscribe_token",
    "unsubscribe_url",
    "verify_unsubscribe_token",
]

_PURPOSE = "unsubscribe"


@dataclass(frozen=True)
class UnsubscribeClaim:
    customer_id: str
    channel: str
    message_id: str | None
    issued_at: int


def make_unsubscribe_token(
    customer_id: str,
    channel: str,
    secret: str,
    *,
    message_id: str | None = None,
    issued_at: int = 0,
) -> str:
    payload = json.dumps(
        {"c": customer_id, "ch": channel, "m": message_id, "iat": issued_at},
        separators=(",", ":"),
        ensure_ascii=False,
        sort_keys=True,
    ).encode("utf-8")
    return seal(secret, _PURPOSE, payload)


def _old_format_payload(token: str, secret: str) -> bytes | None:
    """The payload of a genuine token of the first (readable, signed) format."""
    try:
        p64, s64 = token.split(".", 1)
        payload = base64.urlsafe_b64decode(p64 + "=" * (-len(p64) % 4))
        sig = base64.urlsafe_b64decode(s64 + "=" * (-len(s64) % 4))
    except (ValueError, binascii.Error):
        return None
    mac = hmac.new(b"unsubscribe:" + secret.encode("utf-8"), payload, hashlib.sha256).digest()
    return payload if hmac.compare_digest(sig, mac) else None


def verify_unsubscribe_token(token: str, secret: str) -> UnsubscribeClaim:
    """The claim in ``token``; :class:`AuthError` ``unsubscribe.bad_token`` if it was altered."""
    bad = AuthError(
        "invalid or altered unsubscribe link",
        code="unsubscribe.bad_token",
        message_zh="退订链接无效或已被篡改",
    )
    if "." in token:
        payload = _old_format_payload(token, secret)
    else:
        payload = open_sealed(secret, _PURPOSE, token)
    if payload is None:
        raise bad
    try:
        data = json.loads(payload)
        return UnsubscribeClaim(
            customer_id=str(data["c"]),
            channel=str(data["ch"]),
            message_id=data.get("m"),
            issued_at=int(data.get("iat", 0)),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise bad from exc


def unsubscribe_url(base_url: str, token: str) -> str:
    return f"{base_url.rstrip('/')}/u/{token}"


def derive_inbound_token(secret: str) -> str:
    """The default token provider callbacks must carry (when none is configured)."""
    return hmac.new(b"inbound:" + secret.encode("utf-8"), b"huitouke", hashlib.sha256).hexdigest()[
        :32
    ]
