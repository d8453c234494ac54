"""Tracked-link and unsubscribe tokens are opaque and sealed: the customer id (with the
Youzan preset, the buyer's phone number) cannot be read from a link, no altered token is
accepted, a token of one purpose is not accepted as another; old-format links get a clear
page (tracked links) or keep working (unsubscribe) — through ``create_app()``."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import warnings
from collections.abc import Iterator

import pytest

from huitouke.core.sealed import open_sealed, seal
from huitouke.measurement.links import make_link_token, tracked_url, verify_link_token
from huitouke.messaging.consent import load_customer_contexts
from huitouke.messaging.tokens import make_unsubscribe_token, verify_unsubscribe_token
from huitouke.service import create_app
from huitouke.settings import Settings
from huitouke.store.db import Store
from huitouke.store.tables import customers

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

SECRET = "tokens-test-secret"
PHONE = "13812345678"
CLAIM = dict(
    journey_id="second_order",
    customer_id=PHONE,
    step_id="s0",
    occurrence="2026-05-06",
    url="https://shop.example.com/p/1",
)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _readable(token: str) -> str:
    """Everything a person (or a mail scanner) could decode from a token."""
    out = [token]
    for part in token.split("."):
        with contextlib.suppress(ValueError):
            out.append(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)).decode("latin-1"))
    return "\n".join(out)


def old_link_token(secret: str) -> str:
    """A tracked-link token of the first format (readable JSON + HMAC)."""
    payload = json.dumps(list(CLAIM.values()), separators=(",", ":")).encode()
    mac = hmac.new(("link:" + secret).encode(), payload, hashlib.sha256).digest()[:16]
    return f"{_b64(payload)}.{_b64(mac)}"


def old_unsubscribe_token(customer_id: str, secret: str) -> str:
    payload = json.dumps(
        {"c": customer_id, "ch": "email", "iat": 0, "m": "m-old"},
        separators=(",", ":"),
        sort_keys=True,
    ).encode()
    mac = hmac.new(b"unsubscribe:" + secret.encode(), payload, hashlib.sha256).digest()
    return f"{_b64(payload)}.{_b64(mac)}"


def test_tokens_reveal_no_customer_id() -> None:
    link = make_link_token(SECRET, **CLAIM)
    unsub = make_unsubscribe_token(PHONE, "sms", SECRET, message_id="m1")
    for token in (link, unsub):
        text = _readable(token)
        assert PHONE not in text and "5678" not in text and "second_order" not in text
    # what the old format showed to anyone
    assert PHONE in _readable(old_link_token(SECRET))
    assert verify_link_token(link, SECRET).customer_id == PHONE
    assert verify_unsubscribe_token(unsub, SECRET).customer_id == PHONE


def test_no_altered_token_is_accepted() -> None:
    token = seal(SECRET, "link", b'["a","b"]')
    for i in range(len(token)):
        for ch in "AQgw-_09":
            forged = token[:i] + ch + token[i + 1 :]
            if forged != token:
                assert open_sealed(SECRET, "link", forged) is None, (i, ch)
    assert open_sealed(SECRET, "link", token + "A") is None
    assert open_sealed(SECRET, "link", token[:-1]) is None
    assert open_sealed("another-secret", "link", token) is None


def test_a_token_is_good_for_its_own_purpose_only() -> None:
    unsub = make_unsubscribe_token("c1", "email", SECRET)
    with pytest.raises(Exception) as info:
        verify_link_token(unsub, SECRET)
    assert getattr(info.value, "code", "") == "link.invalid"
    link = make_link_token(SECRET, **CLAIM)
    with pytest.raises(Exception) as info2:
        verify_unsubscribe_token(link, SECRET)
    assert getattr(info2.value, "code", "") == "unsubscribe.bad_token"


@pytest.fixture
def client(store_url: str, store: Store) -> Iterator[TestClient]:
    settings = Settings(database_url=store_url, lang="en", secret_key=SECRET)
    with TestClient(create_app(settings, store), raise_server_exceptions=False) as c:
        yield c


def test_link_pages_for_bad_and_old_tokens(client: TestClient) -> None:
    good = tracked_url("http://x", SECRET, **CLAIM).rsplit("/", 1)[1]
    assert client.get(f"/r/{good}", follow_redirects=False).status_code == 307
    old = client.get(f"/r/{old_link_token(SECRET)}", follow_redirects=False)
    assert old.status_code == 410 and old.headers["content-type"].startswith("text/html")
    assert "此链接来自旧版本" in old.text and "earlier version" in old.text
    assert PHONE not in old.text
    bad = client.get(f"/r/{good[:-2]}xx", follow_redirects=False)
    assert bad.status_code == 400 and "not valid" in bad.text and "链接无效" in bad.text


def test_old_unsubscribe_links_keep_working(client: TestClient, store: Store) -> None:
    from datetime import UTC, datetime

    now = datetime(2026, 5, 6, tzinfo=UTC)
    with store.begin() as conn:
        conn.execute(
            customers.insert().values(
                customer_id=PHONE,
                consent={"email": True},
                tags=[],
                attributes={},
                created_at=now,
                updated_at=now,
            )
        )
    token = old_unsubscribe_token(PHONE, SECRET)
    assert client.get(f"/u/{token}").status_code == 200
    done = client.post(f"/u/{token}", content="List-Unsubscribe=One-Click")
    assert done.status_code == 200
    with store.connect() as conn:
        assert "email" in load_customer_contexts(conn, [PHONE])[PHONE].unsubscribed
    forged = old_unsubscribe_token(PHONE, "guess")
    assert client.get(f"/u/{forged}").status_code == 400
