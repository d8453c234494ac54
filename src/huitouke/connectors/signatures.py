"""Webhook signatures, over the raw body exactly as it arrived (pure).

- Shopify: ``X-Shopify-Hmac-Sha256`` = base64(HMAC-SHA256(app secret, raw body)).
- WooCommerce: ``X-WC-Webhook-Signature`` = base64(HMAC-SHA256(webhook secret, raw body)).
- Youzan: ``Event-Sign`` = hex MD5(client_id + raw body + client_secret)
  (:func:`huitouke.connectors.youzan.verify_push`; the secret is ``youzan.push_secret``).
- Douyin: ``event-sign`` = hex MD5 (or HMAC-SHA256, by ``sign-method``) of app_key + raw
  body + app_secret (:func:`huitouke.connectors.douyin.verify_push`).
- Pinduoduo publishes no signed HTTP push: no delivery verifies.

Both are the same construction; the header differs. A signature is compared in constant
time; surrounding white space in the header is ignored (Ruby's ``Base64.encode64``, used in
Shopify's own library tests, ends its output with a newline).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping

__all__ = ["SIGNATURE_HEADERS", "hmac_sha256_b64", "verify"]

#: the header that carries the signature, per kind (lower case, as ASGI hands them over)
SIGNATURE_HEADERS = {
    "shopify": "x-shopify-hmac-sha256",
    "woocommerce": "x-wc-webhook-signature",
    "youzan": "event-sign",
}


def hmac_sha256_b64(secret: str, body: bytes) -> str:
    """base64(HMAC-SHA256(secret, body))."""
    digest = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def verify(kind: str, secret: str, body: bytes, headers: Mapping[str, str]) -> bool:
    """The delivery's signature header (``headers`` with lower-case names) is right for
    ``body`` under ``secret``. A missing header, an empty secret or an unknown kind: False."""
    if kind == "youzan":
        from huitouke.connectors.youzan import verify_push

        return verify_push(secret, body, headers)
    if kind == "douyin":  # event-sign over app_key + body + app_secret, by its sign-method
        from huitouke.connectors.douyin import verify_push as douyin_verify

        return douyin_verify(secret, body, headers)
    name = SIGNATURE_HEADERS.get(kind)
    given = headers.get(name, "").strip() if name else ""
    if not given or not secret:
        return False
    expected = hmac_sha256_b64(secret, body)
    return hmac.compare_digest(given.encode("ascii", "replace"), expected.encode("ascii"))
