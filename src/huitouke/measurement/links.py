"""Tracked links: signed tokens that say which message a click came from.

A token is ``base64url(JSON [journey, customer, step, occurrence, url]) . base64url(HMAC)``
with HMAC-SHA256 over the payload under the service's secret, truncated to 16 bytes. Nothing
is stored when the link is made; the redirect endpoint verifies the signature, records the
click and sends the browser on. Because the target URL is inside the signed payload, the
endpoint cannot be abused as an open redirect.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection

from huitouke.errors import InputError
from huitouke.measurement.tables import link_clicks

__all__ = ["LinkClaim", "make_link_token", "record_click", "tracked_url", "verify_link_token"]

_MAC_BYTES = 16


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: str, payload: bytes) -> bytes:
    return hmac.new(("link:" + secret).encode(), payload, hashlib.sha256).digest()[:_MAC_BYTES]


@dataclass(frozen=True)
class LinkClaim:
    journey_id: str
    customer_id: str
    step_id: str
    occurrence: str
    url: str
    token_id: str


def make_link_token(
    secret: str, *, journey_id: str, customer_id: str, step_id: str, occurrence: str, url: str
) -> str:
    payload = json.dumps(
        [journey_id, customer_id, step_id, occurrence, url],
        ensure_ascii=False,
        separators=(",", ":"),
    ).encode()
    return f"{_b64(payload)}.{_b64(_mac(secret, payload))}"


def tracked_url(base_url: str, secret: str, **claim: str) -> str:
    """The public address of a tracked link (``{base}/r/{token}``)."""
    return f"{base_url.rstrip('/')}/r/{make_link_token(secret, **claim)}"


def _bad(reason: str) -> InputError:
    return InputError(
        f"invalid link token ({reason})",
        code="link.invalid",
        message_zh=f"链接无效({reason})",
        details={"reason": reason},
    )


def verify_link_token(token: str, secret: str) -> LinkClaim:
    """The claim of a genuine token; :class:`InputError` ``link.invalid`` otherwise."""
    try:
        p64, m64 = token.split(".", 1)
        payload, mac = _unb64(p64), _unb64(m64)
    except (ValueError, TypeError) as exc:
        raise _bad("malformed") from exc
    if not hmac.compare_digest(mac, _mac(secret, payload)):
        raise _bad("bad signature")
    try:
        j, c, s, o, url = json.loads(payload)
    except (ValueError, TypeError) as exc:
        raise _bad("malformed payload") from exc
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise _bad("bad target")
    return LinkClaim(str(j), str(c), str(s), str(o), url, hashlib.sha256(payload).hexdigest()[:32])


def record_click(
    conn: Connection, claim: LinkClaim, at: datetime, user_agent: str | None = None
) -> None:
    conn.execute(
        link_clicks.insert().values(
            token_id=claim.token_id,
            journey_id=claim.journey_id,
            customer_id=claim.customer_id,
            step_id=claim.step_id,
            occurrence=claim.occurrence,
            url=claim.url,
            clicked_at=at,
            user_agent=(user_agent or "")[:300] or None,
        )
    )
