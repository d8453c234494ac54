"""Console sessions: sign-in with rate limit and lock-out, server-side sessions, sign-out.

A session is a row of ``console_sessions`` known by the SHA-256 of a random 256-bit id;
the browser holds the id in an ``HttpOnly``, ``SameSite=Lax`` cookie (``Secure`` over
https). Each session carries its own CSRF token, which every form and htmx request of the
console must send back. A session ends after ``console_session_idle_minutes`` without a
request, ``console_session_max_hours`` after sign-in, at sign-out, and when its user is
disabled, deleted or given a new password. Signing in always makes a new session id and
ends the one the browser came with, so an id planted before sign-in (session fixation)
is worth nothing after it.

Failed sign-ins are counted twice: per user — after ``console_lockout_failures`` in a row
the user is locked out for ``console_lockout_minutes`` (``auth.locked_out``) — and per
client address, from the audit table: past ``console_login_rate_max`` failures within
``console_login_rate_window_seconds`` the address is answered ``auth.rate_limited``
whatever the name. Every attempt and every sign-out is one audit row.

The password check (Argon2, tens of milliseconds by design) runs between two short units of
work, never while a write lock is held.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, delete, func, select, update

from huitouke.errors import AuthError, HuitoukeError, TooManyAttemptsError
from huitouke.i18n import t
from huitouke.service import messages as _messages  # noqa: F401  (registers the texts)
from huitouke.service.tables import console_login_events, console_sessions, console_users
from huitouke.service.users import (
    DUMMY_HASH,
    User,
    _row_to_user,
    hash_password,
    needs_rehash,
    verify_password,
)
from huitouke.settings import Settings
from huitouke.store.db import Store
from huitouke.store.uow import run_read, run_write

__all__ = [
    "FAILED_OUTCOMES",
    "Session",
    "SessionPolicy",
    "SignIn",
    "load_session",
    "session_hash",
    "sign_in",
    "sign_out",
]

#: audit outcomes that count against a client's rate limit
FAILED_OUTCOMES = ("bad_password", "unknown_user", "disabled", "locked_out", "rate_limited")
#: last_seen_at is written at most this often (a page view is not a write each time)
_TOUCH_EVERY = timedelta(seconds=30)


@dataclass(frozen=True)
class SessionPolicy:
    idle: timedelta
    absolute: timedelta
    lockout_failures: int
    lockout: timedelta
    rate_max: int
    rate_window: timedelta

    @classmethod
    def from_settings(cls, s: Settings) -> SessionPolicy:
        return cls(
            idle=timedelta(minutes=s.console_session_idle_minutes),
            absolute=timedelta(hours=s.console_session_max_hours),
            lockout_failures=s.console_lockout_failures,
            lockout=timedelta(minutes=s.console_lockout_minutes),
            rate_max=s.console_login_rate_max,
            rate_window=timedelta(seconds=s.console_login_rate_window_seconds),
        )


@dataclass(frozen=True)
class Session:
    session_hash: str
    user: User
    csrf_token: str
    created_at: datetime
    expires_at: datetime


@dataclass(frozen=True)
class SignIn:
    """The outcome of one attempt: a new session and its id, or the error to show."""

    session_id: str | None
    session: Session | None
    error: HuitoukeError | None


def session_hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode("utf-8", "surrogatepass")).hexdigest()


def _audit(conn: Connection, *, name: str, outcome: str, client: str, now: datetime) -> None:
    conn.execute(
        console_login_events.insert().values(
            at=now, user_name=name[:64], outcome=outcome, client=client[:64]
        )
    )


def _bad_credentials() -> AuthError:
    return AuthError(
        t("console.err.bad_credentials", "en"),
        code="auth.bad_credentials",
        message_zh=t("console.err.bad_credentials", "zh"),
    )


def _locked_out(until: datetime) -> TooManyAttemptsError:
    return TooManyAttemptsError(
        t("console.err.locked_out", "en", until=f"{until:%Y-%m-%d %H:%M} UTC"),
        code="auth.locked_out",
        message_zh=t("console.err.locked_out", "zh", until=f"{until:%Y-%m-%d %H:%M} UTC"),
        details={"locked_until": until.isoformat()},
    )


def _rate_limited(window: timedelta) -> TooManyAttemptsError:
    minutes = max(1, int(window.total_seconds() // 60))
    return TooManyAttemptsError(
        t("console.err.rate_limited", "en", minutes=minutes),
        code="auth.rate_limited",
        message_zh=t("console.err.rate_limited", "zh", minutes=minutes),
        details={"window_seconds": int(window.total_seconds())},
    )


def _disabled() -> AuthError:
    return AuthError(
        t("console.err.disabled", "en"),
        code="auth.user_disabled",
        message_zh=t("console.err.disabled", "zh"),
    )


def sign_in(
    store: Store,
    *,
    name: str,
    password: str,
    client: str,
    now: datetime,
    policy: SessionPolicy,
    previous_session_id: str | None = None,
) -> SignIn:
    """One sign-in attempt, audited. On success the session the browser came with (if any)
    is ended and a new one made; the failure counters are written whatever the outcome."""

    def read(conn: Connection) -> tuple[int, str | None, User | None]:
        since = now - policy.rate_window
        failures = conn.execute(
            select(func.count())
            .select_from(console_login_events)
            .where(
                console_login_events.c.client == client[:64],
                console_login_events.c.at >= since,
                console_login_events.c.outcome.in_(FAILED_OUTCOMES),
            )
        ).scalar_one()
        row = conn.execute(select(console_users).where(console_users.c.name == name)).first()
        if row is None:
            return int(failures), None, None
        return int(failures), row._mapping["password_hash"], _row_to_user(row)

    failures, stored_hash, user = run_read(store, read)

    def fail(outcome: str, error: HuitoukeError) -> SignIn:
        run_write(
            store,
            lambda conn: _audit(conn, name=name, outcome=outcome, client=client, now=now),
        )
        return SignIn(None, None, error)

    if failures >= policy.rate_max:
        return fail("rate_limited", _rate_limited(policy.rate_window))
    if user is None or stored_hash is None:
        verify_password(DUMMY_HASH, password)  # the same cost as a known name
        return fail("unknown_user", _bad_credentials())
    if user.locked_until is not None and user.locked_until > now:
        return fail("locked_out", _locked_out(user.locked_until))
    if not verify_password(stored_hash, password):

        def count_failure(conn: Connection) -> SignIn:
            conn.execute(
                update(console_users)
                .where(console_users.c.name == name)
                .values(failed_logins=console_users.c.failed_logins + 1)
            )
            n = conn.execute(
                select(console_users.c.failed_logins).where(console_users.c.name == name)
            ).scalar_one()
            error: HuitoukeError = _bad_credentials()
            outcome = "bad_password"
            if n >= policy.lockout_failures:
                until = now + policy.lockout
                conn.execute(
                    update(console_users)
                    .where(console_users.c.name == name)
                    .values(failed_logins=0, locked_until=until)
                )
                error = _locked_out(until)
                outcome = "locked_out"
            _audit(conn, name=name, outcome=outcome, client=client, now=now)
            return SignIn(None, None, error)

        return run_write(store, count_failure)
    if not user.active:
        return fail("disabled", _disabled())

    new_hash = hash_password(password) if needs_rehash(stored_hash) else None

    def open_session(conn: Connection) -> SignIn:
        if previous_session_id:
            conn.execute(
                delete(console_sessions).where(
                    console_sessions.c.session_hash == session_hash(previous_session_id)
                )
            )
        sid = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(32)
        expires = now + policy.absolute
        conn.execute(
            console_sessions.insert().values(
                session_hash=session_hash(sid),
                user_name=user.name,
                csrf_token=csrf,
                created_at=now,
                last_seen_at=now,
                expires_at=expires,
            )
        )
        values: dict[str, object] = {
            "failed_logins": 0,
            "locked_until": None,
            "last_login_at": now,
        }
        if new_hash is not None:
            values["password_hash"] = new_hash
        conn.execute(update(console_users).where(console_users.c.name == user.name).values(values))
        _audit(conn, name=user.name, outcome="ok", client=client, now=now)
        return SignIn(sid, Session(session_hash(sid), user, csrf, now, expires), None)

    return run_write(store, open_session)


def load_session(
    store: Store, session_id: str, *, now: datetime, policy: SessionPolicy
) -> Session | None:
    """The live session ``session_id`` names, or None (unknown, idle too long, past its
    absolute end, or its user disabled — such a row is deleted)."""
    if not session_id or len(session_id) > 128:
        return None
    key = session_hash(session_id)

    def read(conn: Connection) -> tuple[object, object] | None:
        s = console_sessions.c
        row = conn.execute(
            select(
                console_users,
                s.csrf_token.label("s_csrf_token"),
                s.created_at.label("s_created_at"),
                s.last_seen_at.label("s_last_seen_at"),
                s.expires_at.label("s_expires_at"),
            )
            .join(console_users, console_users.c.name == s.user_name)
            .where(s.session_hash == key)
        ).first()
        return None if row is None else (row, row._mapping["s_last_seen_at"])

    found = run_read(store, read)
    if found is None:
        return None
    row, last_seen = found
    m = row._mapping  # type: ignore[attr-defined]
    user = _row_to_user(row)
    expired = now >= m["s_expires_at"] or now - m["s_last_seen_at"] >= policy.idle
    if expired or not user.active:
        run_write(
            store,
            lambda conn: conn.execute(
                delete(console_sessions).where(console_sessions.c.session_hash == key)
            ),
        )
        return None
    if isinstance(last_seen, datetime) and now - last_seen >= _TOUCH_EVERY:
        run_write(
            store,
            lambda conn: conn.execute(
                update(console_sessions)
                .where(console_sessions.c.session_hash == key)
                .values(last_seen_at=now)
            ),
        )
    return Session(key, user, m["s_csrf_token"], m["s_created_at"], m["s_expires_at"])


def sign_out(store: Store, session: Session, *, client: str, now: datetime) -> None:
    def unit(conn: Connection) -> None:
        conn.execute(
            delete(console_sessions).where(console_sessions.c.session_hash == session.session_hash)
        )
        _audit(conn, name=session.user.name, outcome="logout", client=client, now=now)

    run_write(store, unit)
