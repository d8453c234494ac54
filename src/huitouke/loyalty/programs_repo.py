"""Programs stored in the database (table ``loyalty_programs``), versioned."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select, update

from huitouke.loyalty import tables as lt
from huitouke.loyalty.ledger import insert_ignore
from huitouke.loyalty.program import Program, load_program

__all__ = ["get_program", "list_programs", "save_program"]


def save_program(conn: Connection, program: Program, *, now: datetime) -> int:
    """Store (or replace) a program; returns its new version number (1, 2, …)."""
    doc = program.to_document()
    p = lt.programs.c
    if insert_ignore(
        conn,
        lt.programs,
        {"program_id": program.id, "version": 1, "document": doc, "updated_at": now},
        "program_id",
    ):
        return 1
    stmt = select(p.version).where(p.program_id == program.id)
    if conn.dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    version = int(conn.execute(stmt).scalar_one()) + 1
    conn.execute(
        update(lt.programs)
        .where(p.program_id == program.id)
        .values(version=version, document=doc, updated_at=now)
    )
    return version


def get_program(conn: Connection, program_id: str = "default") -> Program | None:
    """The stored program, validated again (a stored document is input like any other)."""
    doc = conn.execute(
        select(lt.programs.c.document).where(lt.programs.c.program_id == program_id)
    ).scalar_one_or_none()
    return load_program(doc) if doc is not None else None


def list_programs(conn: Connection) -> list[dict[str, Any]]:
    p = lt.programs.c
    return [
        {"program_id": r.program_id, "version": r.version, "updated_at": r.updated_at.isoformat()}
        for r in conn.execute(
            select(p.program_id, p.version, p.updated_at).order_by(p.program_id)
        ).all()
    ]
