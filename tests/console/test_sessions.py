"""Console security through the production app: no page or fragment without a session, role
checks, CSRF, session fixation, open redirects, lock-out and rate limit, expiry, audit, and
passwords never stored in clear — on SQLite and PostgreSQL."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

import pytest
from sqlalchemy import select

from huitouke.service.console.web import LOGIN_CSRF_COOKIE, SESSION_COOKIE, safe_next
from huitouke.service.sessions import session_hash
from huitouke.service.tables import console_login_events, console_sessions, console_users

from .conftest import PASSWORDS, Console, csrf_of, login_token, sign_in

# -- no page or fragment without a session ----------------------------------------------------------


@pytest.mark.parametrize("path", ["/", "/overview/fragment", "/users", "/?period=quarter"])
def test_pages_redirect_to_login_without_a_session(client, path: str) -> None:
    r = client.get(path, follow_redirects=False)
    assert r.status_code == 303
    location = r.headers["location"]
    assert location.startswith("/login?next=")
    assert unquote(location.split("next=", 1)[1]) == path


@pytest.mark.parametrize("path", ["/", "/overview/fragment", "/users"])
def test_htmx_requests_without_a_session_are_401(client, path: str) -> None:
    r = client.get(
        path,
        headers={"HX-Request": "true", "HX-Current-URL": "http://127.0.0.1/?period=week"},
        follow_redirects=False,
    )
    assert r.status_code == 401
    assert r.headers["HX-Redirect"] == "/login?next=/"
    assert "<html" not in r.text


@pytest.mark.parametrize(
    "path", ["/logout", "/lang", "/users", "/users/rita/disable", "/users/rita/enable"]
)
def test_changing_routes_without_a_session_change_nothing(client, console: Console, path) -> None:
    r = client.post(
        path, data={"lang": "zh", "name": "eve", "role": "admin"}, follow_redirects=False
    )
    assert r.status_code == 303 and r.headers["location"].startswith("/login")
    with console.store.connect() as conn:
        names = set(conn.execute(select(console_users.c.name)).scalars())
        disabled = conn.execute(
            select(console_users.c.disabled_at).where(console_users.c.name == "rita")
        ).scalar()
    assert names == {"ana", "otto", "rita"} and disabled is None


def test_a_forged_session_cookie_is_no_session(client) -> None:
    client.cookies.set(SESSION_COOKIE, "forged-session-id")
    assert client.get("/", follow_redirects=False).status_code == 303


# -- sign-in -----------------------------------------------------------------------------------------


def test_sign_in_sets_a_safe_cookie_and_opens_the_overview(client) -> None:
    r = sign_in(client, "rita")
    assert r.status_code == 303 and r.headers["location"] == "/"
    cookie = r.headers["set-cookie"]
    assert f"{SESSION_COOKIE}=" in cookie
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie  # plain http, console_cookie_secure=auto
    page = client.get("/")
    assert page.status_code == 200
    assert page.headers["Cache-Control"] == "no-store"
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    assert page.headers["X-Frame-Options"] == "DENY"


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    "setting,base_url,public_base_url,secure",
    [("always", "https://127.0.0.1", "http://127.0.0.1:8000", True),
     ("auto", "https://127.0.0.1", "http://127.0.0.1:8000", True),
     ("auto", "http://127.0.0.1", "https://shop.example", True),
     ("auto", "http://127.0.0.1", "http://127.0.0.1:8000", False),
     ("never", "https://127.0.0.1", "https://shop.example", False)],
)  # fmt: skip
def test_secure_cookie_setting(console: Console, setting, base_url, public_base_url, secure):
    with console.client(console_cookie_secure=setting, public_base_url=public_base_url) as c:
        c.base_url = base_url  # type: ignore[assignment]
        page = c.get("/login")
        assert ("Secure" in page.headers["set-cookie"]) is secure
        if secure and base_url.startswith("http:"):
            return  # behind a TLS proxy: the browser talks https, this client cannot
        token = login_token(c)
        r = c.post(
            "/login",
            data={"name": "rita", "password": PASSWORDS["rita"], "csrf_token": token},
            follow_redirects=False,
        )
        assert r.status_code == 303
        assert ("Secure" in r.headers["set-cookie"]) is secure


def test_wrong_password_and_unknown_user_get_the_same_answer(client) -> None:
    wrong = sign_in(client, "rita", password="not-the-password")
    unknown = client.post(
        "/login",
        data={"name": "nobody", "password": "whatever-it-is", "csrf_token": login_token(client)},
    )
    assert wrong.status_code == unknown.status_code == 401
    assert "wrong user name or password" in wrong.text
    assert "wrong user name or password" in unknown.text
    assert SESSION_COOKIE not in wrong.headers.get("set-cookie", "")


def test_the_session_id_changes_at_sign_in(client, console: Console) -> None:
    """Session fixation: an id planted in the browser before sign-in is worthless after."""
    with console.client() as attacker:
        assert sign_in(attacker, "otto").status_code == 303
        planted = attacker.cookies.get(SESSION_COOKIE)
    assert planted
    token = login_token(client)
    client.cookies.set(SESSION_COOKIE, planted)
    r = client.post(
        "/login",
        data={"name": "rita", "password": PASSWORDS["rita"], "csrf_token": token},
        follow_redirects=False,
    )
    assert r.status_code == 303
    after = r.cookies.get(SESSION_COOKIE)
    assert after and after != planted
    with console.store.connect() as conn:
        hashes = set(conn.execute(select(console_sessions.c.session_hash)).scalars())
    assert session_hash(planted) not in hashes and session_hash(after) in hashes
    # only the hash is stored, never the id the cookie carries
    assert after not in hashes
    client.cookies.clear()
    client.cookies.set(SESSION_COOKIE, after)
    assert "rita" in client.get("/").text
    client.cookies.clear()
    client.cookies.set(SESSION_COOKIE, planted)
    assert client.get("/", follow_redirects=False).status_code == 303


def test_login_needs_its_own_csrf_token(client) -> None:
    login_token(client)
    r = client.post(
        "/login", data={"name": "rita", "password": PASSWORDS["rita"], "csrf_token": "wrong"}
    )
    assert r.status_code == 403
    client.cookies.delete(LOGIN_CSRF_COOKIE, path="/login")
    r = client.post("/login", data={"name": "rita", "password": PASSWORDS["rita"]})
    assert r.status_code == 403
    assert client.get("/", follow_redirects=False).status_code == 303


# -- open redirects ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value,expected",
    [
        ("/?period=week", "/?period=week"),
        ("/users", "/users"),
        ("//evil.example/", "/"),
        ("https://evil.example/", "/"),
        ("/\\evil.example", "/"),
        ("\\\\evil.example", "/"),
        ("javascript:alert(1)", "/"),
        ("/\t/evil.example", "/"),
        ("", "/"),
        (None, "/"),
    ],
)
def test_safe_next(value: str | None, expected: str) -> None:
    assert safe_next(value) == expected


@pytest.mark.parametrize("target", ["//evil.example/x", "https://evil.example", "/\\evil.example"])
def test_sign_in_never_redirects_off_site(client, target: str) -> None:
    r = sign_in(client, "rita", next_path=target)
    assert r.status_code == 303 and r.headers["location"] == "/"
    page = client.get("/login", params={"next": target}, follow_redirects=False)
    assert page.headers["location"] == "/"  # signed in already: home, not there


def test_sign_in_returns_to_the_page_asked_for(client) -> None:
    r = sign_in(client, "rita", next_path="/?period=quarter")
    assert r.headers["location"] == "/?period=quarter"


# -- roles and CSRF --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["rita", "otto"])
def test_users_below_admin_cannot_see_or_change_users(client, console: Console, name: str) -> None:
    sign_in(client, name)
    token = csrf_of(client)
    assert client.get("/users").status_code == 403
    r = client.post(
        "/users",
        data={"name": "eve", "role": "admin", "password": "eve-password-123", "csrf_token": token},
    )
    assert r.status_code == 403
    assert client.post("/users/ana/disable", data={"csrf_token": token}).status_code == 403
    with console.store.connect() as conn:
        rows = {r.name: r.disabled_at for r in conn.execute(select(console_users))}
    assert set(rows) == {"ana", "otto", "rita"} and rows["ana"] is None


def test_admin_creates_and_disables_users(client, console: Console) -> None:
    sign_in(client, "ana")
    token = csrf_of(client)
    r = client.post(
        "/users",
        data={"name": "eve", "role": "read", "password": "eve-password-123", "csrf_token": token},
        follow_redirects=False,
    )
    assert r.status_code == 303
    assert 'data-user="eve"' in client.get("/users").text
    # eve signs in elsewhere; disabling her ends that session at once
    with console.client() as eve:
        assert sign_in(eve, "eve", password="eve-password-123").status_code == 303
        assert eve.get("/").status_code == 200
        r = client.post("/users/eve/disable", data={"csrf_token": token}, follow_redirects=False)
        assert r.status_code == 303
        assert eve.get("/", follow_redirects=False).status_code == 303
    # bad input is shown on the page, nothing stored
    r = client.post(
        "/users", data={"name": "bob", "role": "read", "password": "short", "csrf_token": token}
    )
    assert r.status_code == 422 and "10 to 1024 characters" in r.text
    r = client.post("/users/ana/disable", data={"csrf_token": token})
    assert r.status_code == 409


@pytest.mark.parametrize("token", [None, "", "wrong-token"])
def test_changing_requests_without_the_csrf_token_are_refused(client, console, token) -> None:
    sign_in(client, "ana")
    data = {"name": "eve", "role": "admin", "password": "eve-password-123"}
    if token is not None:
        data["csrf_token"] = token
    assert client.post("/users", data=data).status_code == 403
    assert client.post("/users/rita/disable", data=data).status_code == 403
    assert client.post("/lang", data={**data, "lang": "zh"}).status_code == 403
    assert client.post("/logout", data=data).status_code == 403
    with console.store.connect() as conn:
        rows = {r.name: r for r in conn.execute(select(console_users))}
    assert "eve" not in rows and rows["rita"].disabled_at is None and rows["ana"].lang is None
    assert client.get("/").status_code == 200  # still signed in


def test_the_htmx_header_carries_the_token(client, console: Console) -> None:
    sign_in(client, "ana")
    token = csrf_of(client)
    r = client.post(
        "/lang",
        data={"lang": "zh"},
        headers={"X-CSRF-Token": token, "HX-Request": "true"},
        follow_redirects=False,
    )
    assert r.status_code == 303
    assert client.get("/").text.count("总览") >= 1


def test_an_unknown_language_is_refused(client, console: Console) -> None:
    sign_in(client, "ana")
    r = client.post("/lang", data={"lang": "fr", "csrf_token": csrf_of(client)})
    assert r.status_code == 422 and "unknown language &#39;fr&#39;" in r.text
    with console.store.connect() as conn:
        lang = conn.execute(
            select(console_users.c.lang).where(console_users.c.name == "ana")
        ).scalar()
    assert lang is None


def test_the_token_is_per_session(console: Console) -> None:
    with console.client() as one, console.client() as two:
        sign_in(one, "ana")
        sign_in(two, "ana")
        other = csrf_of(two)
        assert csrf_of(one) != other
        r = one.post("/users/rita/disable", data={"csrf_token": other})
        assert r.status_code == 403


# -- sign out, expiry --------------------------------------------------------------------------------------


def test_sign_out_ends_the_session(client, console: Console) -> None:
    sign_in(client, "rita")
    sid = client.cookies.get(SESSION_COOKIE)
    r = client.post("/logout", data={"csrf_token": csrf_of(client)}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login"
    client.cookies.set(SESSION_COOKIE, sid)
    assert client.get("/", follow_redirects=False).status_code == 303


def test_idle_and_absolute_expiry(client, console: Console) -> None:
    sign_in(client, "rita")
    console.clock.advance(minutes=29)
    assert client.get("/").status_code == 200  # activity keeps it alive
    console.clock.advance(minutes=29)
    assert client.get("/").status_code == 200
    console.clock.advance(minutes=31)  # idle past 30 minutes
    assert client.get("/", follow_redirects=False).status_code == 303
    # however active, a session ends console_session_max_hours after sign-in
    sign_in(client, "rita")
    for _ in range(12 * 4):
        console.clock.advance(minutes=15)
        r = client.get("/overview/fragment", follow_redirects=False)
    assert r.status_code == 303


# -- lock-out, rate limit, audit --------------------------------------------------------------------------


def test_lock_out_after_n_failures(client, console: Console) -> None:
    for _ in range(2):
        assert sign_in(client, "rita", password="wrong-password-x").status_code == 401
    third = sign_in(client, "rita", password="wrong-password-x")
    assert third.status_code == 429 and "locked until" in third.text
    # the right password does not open a locked account
    locked = sign_in(client, "rita")
    assert locked.status_code == 429
    assert client.get("/", follow_redirects=False).status_code == 303
    console.clock.advance(minutes=16)
    assert sign_in(client, "rita").status_code == 303
    with console.store.connect() as conn:
        row = conn.execute(select(console_users).where(console_users.c.name == "rita")).one()
    assert row.failed_logins == 0 and row.locked_until is None


def test_a_success_resets_the_failure_count(client) -> None:
    for _ in range(2):
        sign_in(client, "rita", password="wrong-password-x")
    assert sign_in(client, "rita").status_code == 303
    client.cookies.clear()  # another browser: two more failures do not lock yet
    for _ in range(2):
        assert sign_in(client, "rita", password="wrong-password-x").status_code == 401


def test_rate_limit_per_client_address(client, console: Console) -> None:
    for i in range(6):  # unknown names: no user to lock, the address is limited
        r = client.post(
            "/login",
            data={
                "name": f"guess{i}",
                "password": "guess-guess",
                "csrf_token": login_token(client),
            },
        )
        assert r.status_code == 401
    r = sign_in(client, "ana")  # even the right password, from this address
    assert r.status_code == 429 and "too many failed sign-ins from this address" in r.text
    console.clock.advance(seconds=301)
    assert sign_in(client, "ana").status_code == 303


def test_every_sign_in_and_sign_out_is_audited(client, console: Console) -> None:
    sign_in(client, "rita", password="wrong-password-x")
    sign_in(client, "nobody", password="wrong-password-x")
    sign_in(client, "rita")
    client.post("/logout", data={"csrf_token": csrf_of(client)})
    with console.store.connect() as conn:
        rows = conn.execute(
            select(console_login_events).order_by(console_login_events.c.event_id)
        ).all()
    assert [(r.user_name, r.outcome) for r in rows] == [
        ("rita", "bad_password"),
        ("nobody", "unknown_user"),
        ("rita", "ok"),
        ("rita", "logout"),
    ]
    assert all(r.client == "testclient" for r in rows)


def test_passwords_are_never_stored_in_clear(client, console: Console) -> None:
    sign_in(client, "ana")
    client.post(
        "/users",
        data={
            "name": "eve",
            "role": "read",
            "password": "eve-secret-password",
            "csrf_token": csrf_of(client),
        },
    )
    sign_in(client, "rita", password="a-wrong-guess-typed")
    with console.store.connect() as conn:
        dump = []
        for table in (console_users, console_sessions, console_login_events):
            dump += [repr(tuple(r)) for r in conn.execute(select(table))]
        hashes = list(conn.execute(select(console_users.c.password_hash)).scalars())
    text = "\n".join(dump)
    for password in [*PASSWORDS.values(), "eve-secret-password", "a-wrong-guess-typed"]:
        assert password not in text
    assert len(hashes) == 4 and all(h.startswith("$argon2id$") for h in hashes)
    if console.store.dialect == "sqlite":
        db = console.store.engine.url.database
        assert db
        wal = Path(db + "-wal")
        raw = Path(db).read_bytes() + (wal.read_bytes() if wal.exists() else b"")
        assert not re.search(b"eve-secret-password|ana-admin-password", raw)
