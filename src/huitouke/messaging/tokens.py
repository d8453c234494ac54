"""Signed tokens for unsubscribe links (and the inbound callback token).

A token is ``base64url(payload) "." base64url(HMAC-SHA256(secret_key, payload))`` where the
payload is compact JSON ``{"c": customer_id, "ch": channel or "*", "m": message_id,
"iat": issued unix seconds}``. It does not expire — an unsubscribe link must keep working
for as long as the email sits in an inbox — and it is compared in constant time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass

from huitouke.errors import AuthError

__all__ = [
    "UnsubscribeClaim",
    "derive_inbound_token",
    "make_unsubscribe_token",
    "unsubscribe_url",
    "verify_unsubscribe_token",
]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class UnsubscribeClaim:
    customer_id: str
    channel: str
    message_id: str | None
    issued_at: int


def _mac(secret: str, payload: bytes) -> bytes:
    return hmac.new(b"unsubscribe:" + secret.encode("utf-8"), payload, hashlib.sha256).digest()


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
    return f"{_b64(payload)}.{_b64(_mac(secret, payload))}"


def verify_unsubscribe_token(token: str, secret: str) -> UnsubscribeClaim:
    """The claim in ``token``; :class:`AuthError` ``unsubscribe.bad_token`` if it was altered."""
    bad = AuthError(
        "invalid or altered unsubscribe link",
        code="unsubscribe.bad_token",
        message_zh="退订链接无效或已被篡改",
    )
    try:
        p64, s64 = token.split(".", 1)
        payload = _unb64(p64)
        sig = _unb64(s64)
    except (ValueError, TypeError) as exc:
        raise bad from exc
    if not hmac.compare_digest(sig, _mac(secret, payload)):
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
