"""API keys: create (shown once), authenticate, list, revoke.

A key reads ``htk_<key_id>_<secret>``: ``key_id`` (12 hex digits) is the public lookup
prefix, ``secret`` 43 random base62 characters (256 bits). Only the SHA-256 of the whole key is
stored — the secret has 256 bits of entropy, so a plain hash is as strong as a slow one and
keeps each request's check to one indexed lookup and one constant-time comparison.

Scopes are ordered ``read < operator < admin``: a key may call every endpoint whose
required scope is at or below its own.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import Connection, select

from huitouke.errors import AuthError, ForbiddenError, InputError, NotFoundError
from huitouke.service.tables import api_keys
from huitouke.store.audit import audit

__all__ = [
    "KEY_PREFIX",
    "SCOPES",
    "ApiKey",
    "Scope",
    "authenticate",
    "check_scope",
    "create_api_key",
    "hash_key",
    "list_api_keys",
    "revoke_api_key",
    "scope_allows",
]

Scope = Literal["read", "operator", "admin"]
SCOPES: tuple[Scope, ...] = ("read", "operator", "admin")
_RANK = {s: i for i, s in enumerate(SCOPES)}
_RANK_OF: dict[str, int] = {str(s): i for i, s in enumerate(SCOPES)}
KEY_PREFIX = "htk"
# base62: the key selects with one double-click and survives URLs and shells unquoted
_ALPHABET = string.ascii_letters + string.digits


def scope_allows(have: str, required: str) -> bool:
    """Whether the scope (or console role) ``have`` grants what ``required`` needs."""
    return _RANK_OF[have] >= _RANK_OF[required]


@dataclass(frozen=True)
class ApiKey:
    """What is known about a key (never its secret)."""

    key_id: str
    name: str
    scope: Scope
    created_at: datetime
    revoked_at: datetime | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def allows(self, required: Scope) -> bool:
        return scope_allows(self.scope, required)

    def to_dict(self) -> dict[str, object]:
        return {
            "key_id": self.key_id,
            "name": self.name,
            "scope": self.scope,
            "created_at": self.created_at.isoformat(),
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
            "active": self.active,
        }


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def _validate_scope(scope: str) -> Scope:
    if scope not in _RANK:
        raise InputError(
            f"unknown scope {scope!r}: use one of {', '.join(SCOPES)}",
            code="auth.unknown_scope",
            message_zh=f"未知权限范围 {scope!r}:可选 {', '.join(SCOPES)}",
            details={"field": "scope", "allowed": list(SCOPES)},
        )
    return scope


def _row_to_key(row: object) -> ApiKey:
    m = row._mapping  # type: ignore[attr-defined]
    return ApiKey(
        key_id=m["key_id"],
        name=m["name"],
        scope=m["scope"],
        created_at=m["created_at"],
        revoked_at=m["revoked_at"],
    )


def create_api_key(
    conn: Connection, *, scope: str, name: str | None, now: datetime, actor: str | None = None
) -> tuple[ApiKey, str]:
    """Create a key; returns its record and the full key text (the only time it exists).
    ``actor`` (who creates it) writes an audit row in the same unit of work."""
    checked = _validate_scope(scope)
    key_id = secrets.token_hex(6)
    secret = "".join(secrets.choice(_ALPHABET) for _ in range(43))
    full = f"{KEY_PREFIX}_{key_id}_{secret}"
    record = ApiKey(
        key_id=key_id, name=name or f"{checked}-{key_id}", scope=checked, created_at=now
    )
    conn.execute(
        api_keys.insert().values(
            key_id=record.key_id,
            name=record.name,
            scope=record.scope,
            key_hash=hash_key(full),
            created_at=now,
            revoked_at=None,
        )
    )
    if actor is not None:
        audit(conn, actor=actor, action="apikey.create", target=record.key_id,
              detail={"scope": record.scope, "name": record.name}, now=now)  # fmt: skip
    return record, full


def list_api_keys(conn: Connection, *, include_revoked: bool = True) -> list[ApiKey]:
    q = select(api_keys).order_by(api_keys.c.created_at, api_keys.c.key_id)
    if not include_revoked:
        q = q.where(api_keys.c.revoked_at.is_(None))
    return [_row_to_key(r) for r in conn.execute(q)]


def revoke_api_key(
    conn: Connection, key_id: str, *, now: datetime, actor: str | None = None
) -> ApiKey:
    """Revoke a key (idempotent: revoking a revoked key keeps its first revocation time)."""
    row = conn.execute(select(api_keys).where(api_keys.c.key_id == key_id)).first()
    if row is None:
        raise NotFoundError(
            f"no API key with id {key_id!r}",
            code="apikey.not_found",
            message_zh=f"没有编号为 {key_id!r} 的 API 密钥",
            details={"key_id": key_id},
        )
    key = _row_to_key(row)
    if key.revoked_at is None:
        conn.execute(api_keys.update().where(api_keys.c.key_id == key_id).values(revoked_at=now))
        key = ApiKey(key.key_id, key.name, key.scope, key.created_at, now)
        if actor is not None:
            audit(conn, actor=actor, action="apikey.revoke", target=key_id, now=now)
    return key


def _invalid() -> AuthError:
    return AuthError(
        "the API key is not valid (unknown, malformed or revoked)",
        code="auth.invalid_key",
        message_zh="API 密钥无效(不存在、格式错误或已吊销)",
    )


def authenticate(conn: Connection, presented: str) -> ApiKey:
    """The active key ``presented`` belongs to, or :class:`AuthError`."""
    parts = presented.split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_PREFIX or len(parts[1]) != 12:
        raise _invalid()
    row = conn.execute(select(api_keys).where(api_keys.c.key_id == parts[1])).first()
    if row is None:
        raise _invalid()
    if not hmac.compare_digest(row._mapping["key_hash"], hash_key(presented)):
        raise _invalid()
    key = _row_to_key(row)
    if not key.active:
        raise _invalid()
    return key


def check_scope(key: ApiKey, required: Scope) -> None:
    if not key.allows(required):
        raise ForbiddenError(
            f"this endpoint needs the {required!r} scope; the key has {key.scope!r}",
            code="auth.forbidden",
            message_zh=f"此接口需要 {required!r} 权限,当前密钥为 {key.scope!r}",
            details={"required_scope": required, "key_scope": key.scope},
        )
