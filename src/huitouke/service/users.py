"""Console users: create, list, disable, delete, change password.

A user has a ``role`` with the same rights as an API key scope (``read < operator <
admin``, :mod:`huitouke.service.apikeys`): *read* may look at every page, *operator* may also
run the shop's operations, *admin* may also change settings and users.

Passwords are hashed with Argon2id (argon2-cffi's ``PasswordHasher`` with its RFC 9106
low-memory parameters); only the hash is stored. A hash made with older parameters is
replaced by one with the current parameters at the next successful sign-in.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import Connection, delete, select, update

from huitouke.errors import ConflictError, InputError, NotFoundError
from huitouke.service.apikeys import SCOPES, Scope, scope_allows
from huitouke.service.tables import console_sessions, console_users
from huitouke.store.audit import audit

__all__ = [
    "MIN_PASSWORD_LENGTH",
    "User",
    "create_user",
    "delete_user",
    "disable_user",
    "enable_user",
    "get_user",
    "hash_password",
    "list_users",
    "set_lang",
    "set_password",
    "verify_password",
]

MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 1024
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
_hasher = PasswordHasher()


@dataclass(frozen=True)
class User:
    """What is known about a user (never the password or its hash)."""

    name: str
    role: Scope
    lang: str | None
    created_at: datetime
    disabled_at: datetime | None
    failed_logins: int
    locked_until: datetime | None
    last_login_at: datetime | None

    @property
    def active(self) -> bool:
        return self.disabled_at is None

    def allows(self, required: Scope) -> bool:
        return scope_allows(self.role, required)

    def to_dict(self) -> dict[str, object]:
        def iso(v: datetime | None) -> str | None:
            return None if v is None else v.isoformat()

        return {
            "name": self.name,
            "role": self.role,
            "lang": self.lang,
            "active": self.active,
            "created_at": self.created_at.isoformat(),
            "disabled_at": iso(self.disabled_at),
            "locked_until": iso(self.locked_until),
            "last_login_at": iso(self.last_login_at),
        }


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """Whether ``password`` matches (constant time inside argon2); never raises on a wrong
    password or a damaged hash."""
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    try:
        return _hasher.check_needs_rehash(password_hash)
    except InvalidHashError:
        return True


#: verified against when the user is unknown, so an unknown name costs as long as a wrong
#: password (the answer's timing does not tell which names exist)
DUMMY_HASH = hash_password("not a password of anyone")


def _row_to_user(row: object) -> User:
    m = row._mapping  # type: ignore[attr-defined]
    return User(
        name=m["name"],
        role=m["role"],
        lang=m["lang"],
        created_at=m["created_at"],
        disabled_at=m["disabled_at"],
        failed_logins=int(m["failed_logins"]),
        locked_until=m["locked_until"],
        last_login_at=m["last_login_at"],
    )


def _check_name(name: str) -> str:
    if not _NAME.match(name):
        raise InputError(
            f"user name {name!r}: 1-64 letters, digits or _ . @ -, starting with a letter or digit",
            code="user.invalid_name",
            message_zh=f"用户名 {name!r} 无效:1-64 个字母、数字或 _ . @ -,以字母或数字开头",
            details={"field": "name", "value": name},
        )
    return name


def _check_role(role: str) -> Scope:
    if role not in SCOPES:
        raise InputError(
            f"unknown role {role!r}: use one of {', '.join(SCOPES)}",
            code="user.unknown_role",
            message_zh=f"未知角色 {role!r}:可选 {', '.join(SCOPES)}",
            details={"field": "role", "allowed": list(SCOPES)},
        )
    return role


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH or len(password) > MAX_PASSWORD_LENGTH:
        raise InputError(
            f"the password must have {MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} characters",
            code="user.weak_password",
            message_zh=f"密码长度须为 {MIN_PASSWORD_LENGTH} 到 {MAX_PASSWORD_LENGTH} 个字符",
            details={"field": "password", "min_length": MIN_PASSWORD_LENGTH},
        )
    if password != password.strip() or not password.strip():
        raise InputError(
            "the password must not begin or end with spaces",
            code="user.weak_password",
            message_zh="密码首尾不能有空格",
            details={"field": "password"},
        )
    return password


def _not_found(name: str) -> NotFoundError:
    return NotFoundError(
        f"no console user named {name!r}",
        code="user.not_found",
        message_zh=f"没有名为 {name!r} 的控制台用户",
        details={"name": name},
    )


def get_user(conn: Connection, name: str) -> User | None:
    row = conn.execute(select(console_users).where(console_users.c.name == name)).first()
    return None if row is None else _row_to_user(row)


def password_hash_of(conn: Connection, name: str) -> str | None:
    return conn.execute(
        select(console_users.c.password_hash).where(console_users.c.name == name)
    ).scalar()


def _audit(
    conn: Connection, actor: str | None, action: str, name: str, now: datetime | None, **detail: str
) -> None:
    """An audit row when the caller names who acts (console, REST, CLI)."""
    if actor is not None:
        audit(conn, actor=actor, action=action, target=name, detail=detail or None,
              now=now or datetime.now(UTC))  # fmt: skip


def create_user(
    conn: Connection,
    *,
    name: str,
    role: str,
    password: str,
    now: datetime,
    actor: str | None = None,
) -> User:
    _check_name(name)
    checked = _check_role(role)
    check_password(password)
    if get_user(conn, name) is not None:
        raise ConflictError(
            f"a console user named {name!r} exists already",
            code="user.exists",
            message_zh=f"已有名为 {name!r} 的控制台用户",
            details={"name": name},
        )
    conn.execute(
        console_users.insert().values(
            name=name,
            role=checked,
            password_hash=hash_password(password),
            lang=None,
            created_at=now,
            password_changed_at=now,
            disabled_at=None,
            failed_logins=0,
            locked_until=None,
            last_login_at=None,
        )
    )
    user = get_user(conn, name)
    assert user is not None
    _audit(conn, actor, "user.create", name, now, role=checked)
    return user


def list_users(conn: Connection) -> list[User]:
    rows = conn.execute(select(console_users).order_by(console_users.c.name))
    return [_row_to_user(r) for r in rows]


def _existing(conn: Connection, name: str) -> User:
    user = get_user(conn, name)
    if user is None:
        raise _not_found(name)
    return user


def _end_sessions(conn: Connection, name: str) -> int:
    return conn.execute(
        delete(console_sessions).where(console_sessions.c.user_name == name)
    ).rowcount


def disable_user(conn: Connection, name: str, *, now: datetime, actor: str | None = None) -> User:
    """Disable a user and end every session of theirs at once (idempotent)."""
    user = _existing(conn, name)
    if user.disabled_at is None:
        conn.execute(
            update(console_users).where(console_users.c.name == name).values(disabled_at=now)
        )
    _end_sessions(conn, name)
    _audit(conn, actor, "user.disable", name, now)
    return _existing(conn, name)


def enable_user(
    conn: Connection, name: str, *, actor: str | None = None, now: datetime | None = None
) -> User:
    _existing(conn, name)
    _audit(conn, actor, "user.enable", name, now)
    conn.execute(
        update(console_users)
        .where(console_users.c.name == name)
        .values(disabled_at=None, failed_logins=0, locked_until=None)
    )
    return _existing(conn, name)


def delete_user(
    conn: Connection, name: str, *, actor: str | None = None, now: datetime | None = None
) -> None:
    """Delete a user and their sessions (the sign-in audit keeps their name)."""
    _existing(conn, name)
    _audit(conn, actor, "user.delete", name, now)
    _end_sessions(conn, name)
    conn.execute(delete(console_users).where(console_users.c.name == name))


def set_password(
    conn: Connection, name: str, password: str, *, now: datetime, actor: str | None = None
) -> User:
    """A new password; every session of the user ends and a lock-out is lifted."""
    _existing(conn, name)
    check_password(password)
    _audit(conn, actor, "user.passwd", name, now)
    conn.execute(
        update(console_users)
        .where(console_users.c.name == name)
        .values(
            password_hash=hash_password(password),
            password_changed_at=now,
            failed_logins=0,
            locked_until=None,
        )
    )
    _end_sessions(conn, name)
    return _existing(conn, name)


def set_lang(conn: Connection, name: str, lang: str | None) -> None:
    conn.execute(update(console_users).where(console_users.c.name == name).values(lang=lang))
