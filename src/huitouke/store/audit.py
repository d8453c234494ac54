"""The audit log: who did what, when, from where — one append-only table for the console's
sign-ins and for every change of settings, API keys, users, tags and profile attributes.

The table is the console's sign-in audit (``console_login_events``, Alembic branch
``service``) extended by migration ``settings_0001`` with what a change needs: ``action``
(``settings.set``, ``apikey.create``…; NULL for sign-in rows, whose ``outcome`` says what
happened), ``target`` (the setting, key, user or tag) and ``detail`` (a short JSON object
— never a secret's value: a secret setting is recorded as ``{"secret": "set"}``).
It lives in the store so every layer can write it: :func:`audit` is the one helper, called
inside the unit of work of the change it records, so a change and its audit row commit or
roll back together.

``user_name`` is the actor: a console user's name, ``apikey:<key_id>`` for the REST API,
``cli:<login>`` for the command line.
"""

from __future__ import annotations

import getpass
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Connection, Index, Integer, String, Table, select

from huitouke.store.tables import metadata
from huitouke.store.types import UTCDateTime

__all__ = [
    "AuditEntry",
    "audit",
    "audit_events",
    "cli_actor",
    "list_audit",
]

audit_events = Table(
    "console_login_events",
    metadata,
    Column("event_id", Integer, primary_key=True, autoincrement=True),
    Column("at", UTCDateTime, nullable=False),
    # the name as typed (no foreign key: unknown names are audited too); for changes the actor
    Column("user_name", String(64), nullable=False),
    # sign-ins: ok, bad_password, unknown_user, disabled, locked_out, rate_limited, logout;
    # changes: change
    Column("outcome", String(16), nullable=False),
    Column("client", String(64), nullable=False),
    Column("action", String(48)),
    Column("target", String(200)),
    Column("detail", JSON),
    Index("ix_console_login_events_client_at", "client", "at"),
    Index("ix_console_login_events_at", "at"),
)


def cli_actor() -> str:
    """The actor of a command-line change: ``cli:`` and the operating system login."""
    try:
        who = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (some containers)
        who = "?"
    return f"cli:{who}"[:64]


def audit(
    conn: Connection,
    *,
    actor: str,
    action: str,
    target: str = "",
    detail: dict[str, Any] | None = None,
    now: datetime,
    client: str = "-",
) -> None:
    """Record one change in the unit of work ``conn`` that makes it."""
    conn.execute(
        audit_events.insert().values(
            at=now,
            user_name=actor[:64],
            outcome="change",
            client=client[:64],
            action=action[:48],
            target=target[:200],
            detail=detail or {},
        )
    )


@dataclass(frozen=True)
class AuditEntry:
    event_id: int
    at: datetime
    actor: str
    action: str
    target: str
    outcome: str
    client: str
    detail: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "at": self.at.isoformat(),
            "actor": self.actor,
            "action": self.action,
            "target": self.target,
            "outcome": self.outcome,
            "client": self.client,
            "detail": self.detail,
        }


def list_audit(
    conn: Connection, *, limit: int = 200, before: int | None = None, changes_only: bool = False
) -> list[AuditEntry]:
    """The newest entries first (``before``: entries older than that event id)."""
    a = audit_events.c
    q = select(audit_events).order_by(a.event_id.desc()).limit(limit)
    if before is not None:
        q = q.where(a.event_id < before)
    if changes_only:
        q = q.where(a.action.is_not(None))
    out = []
    for r in conn.execute(q):
        m = r._mapping
        out.append(
            AuditEntry(
                event_id=m["event_id"],
                at=m["at"],
                actor=m["user_name"],
                action=m["action"] or "sign_in",
                target=m["target"] or "",
                outcome=m["outcome"],
                client=m["client"],
                detail=dict(m["detail"] or {}),
            )
        )
    return out
