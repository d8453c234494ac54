"""Tracked links: opaque tokens that say which message a click came from.

A token seals (:mod:`huitouke.core.sealed`: encrypted and authenticated under the service's
secret, purpose ``link``) the JSON ``[journey, customer, step, occurrence, url]``. Nothing
is stored when the link is made, and nothing of it can be read from the link: a customer id
that is a phone number does not travel in clear through SMS gateways, mail scanners and
browser histories. The redirect endpoint opens the token, records the click and sends the
browser on; because the target URL is inside the sealed payload, the endpoint cannot be
abused as an open redirect.

Links of the first format (readable ``base64(JSON).base64(HMAC)``, with a ``.``) are refused
with ``link.old_format``: they exposed the customer id, and the page says so plainly.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection

from huitouke.core.sealed import open_sealed, seal
from huitouke.errors import InputError
from huitouke.measurement.tables import link_clicks

__all__ = ["LinkClaim", "make_link_token", "record_click", "tracked_url", "verify_link_token"]

_PURPOSE = "link"


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
    return seal(secret, _PURPOSE, payload)


def tracked_url(base_url: str, secret: str, **claim: str) -> str:
    """The public address of a tracked link (``{base}/r/{token}``)."""
    return f"{base_url.rstrip('/')}/r/{make_link_token(secret, **claim)}"


def _bad(reason: str, *, code: str) -> InputError:
    return InputError(
        f"invalid link token ({reason})",
        code=code,
        message_zh=f"链接无效({reason})",
        details={"reason": reason},
    )


def verify_link_token(token: str, secret: str) -> LinkClaim:
    """The claim of a genuine token; :class:`InputError` ``link.invalid`` otherwise
    (``link.old_format`` for a link of the first, readable format)."""
    if "." in token:
        raise _bad("old format", code="link.old_format")
    payload = open_sealed(secret, _PURPOSE, token)
    if payload is None:
        raise _bad("bad signature", code="link.invalid")
    try:
        j, c, s, o, url = json.loads(payload)
    except (ValueError, TypeError) as exc:
        raise _bad("malformed payload", code="link.invalid") from exc
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise _bad("bad target", code="link.invalid")
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
