"""The loyalty program the service runs: the stored ``default`` program (``PUT
/v1/program``), else a plain default in the merchant's currency and zone.

A worker reuses its :class:`~huitouke.loyalty.service.LoyaltyService` while the stored
program's version is unchanged. It checks the version (one primary-key lookup) at most every
``program_cache_seconds`` (``HUITOUKE_PROGRAM_CACHE_SECONDS``, default 1 s; 0 checks in
every unit of work): a program saved through this worker's API takes effect at its next
request, one saved by another worker process or by the CLI within that many seconds.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, select

from huitouke.errors import ConflictError
from huitouke.loyalty import tables as lt
from huitouke.loyalty.program import Program, load_program
from huitouke.loyalty.programs_repo import get_program, save_program
from huitouke.loyalty.service import LoyaltyService
from huitouke.service.context import ServiceContext
from huitouke.store.audit import audit
from huitouke.store.uow import run_write

__all__ = [
    "PROGRAM_ID",
    "default_program",
    "forget_program",
    "loyalty_service",
    "program_version",
    "save_program_document",
    "validate_program_document",
]

PROGRAM_ID = "default"


def default_program(ctx: ServiceContext) -> Program:
    return load_program({"id": PROGRAM_ID, "currency": ctx.settings.currency}).in_store_zone(
        ctx.settings.timezone
    )


_VERSION = select(lt.programs.c.version).where(lt.programs.c.program_id == PROGRAM_ID)


def loyalty_service(conn: Connection, ctx: ServiceContext) -> LoyaltyService:
    cached = ctx.cache.get("loyalty")
    now = time.monotonic()
    if cached is not None and now < cached[2]:
        svc: LoyaltyService = cached[1]
        return svc
    generation = ctx.cache.get("loyalty_generation", 0)
    version = conn.execute(_VERSION).scalar_one_or_none()
    fresh_until = now + ctx.settings.program_cache_seconds
    if cached is not None and cached[0] == version:
        svc = cached[1]
    else:
        program = get_program(conn, PROGRAM_ID) if version is not None else None
        if program is not None:
            program = program.in_store_zone(ctx.settings.timezone)
        svc = LoyaltyService(program or default_program(ctx), clock=ctx.clock)
    if ctx.cache.get("loyalty_generation", 0) == generation:
        # not if this worker saved a program meanwhile: what was read here may predate it
        ctx.cache["loyalty"] = (version, svc, fresh_until)
    return svc


def forget_program(ctx: ServiceContext) -> None:
    """Drop this worker's cached program (after it saved a new one)."""
    ctx.cache["loyalty_generation"] = ctx.cache.get("loyalty_generation", 0) + 1
    ctx.cache.pop("loyalty", None)


def program_version(conn: Connection) -> int | None:
    """The stored program's version (``None``: none stored, the defaults run)."""
    version = conn.execute(_VERSION).scalar_one_or_none()
    return int(version) if version is not None else None


def validate_program_document(ctx: ServiceContext, document: Mapping[str, Any]) -> Program:
    """The program a document describes, as ``PUT /v1/program`` and the console's program
    editor would save it (id ``default``, the store's zone): ``loyalty.program_invalid``
    naming every bad field, or ``loyalty.timezone_mismatch``. The one validation of both."""
    return load_program({**document, "id": PROGRAM_ID}).in_store_zone(ctx.settings.timezone)


def save_program_document(
    ctx: ServiceContext,
    document: Mapping[str, Any],
    *,
    if_version: int | None = None,
    actor: str | None = None,
    client: str = "-",
) -> dict[str, Any]:
    """Validate and store a new version of the program; this worker uses it at once.
    The use case of ``PUT /v1/program`` and of the console's program editor.

    With ``actor`` (a console user's name, ``apikey:<key_id>``) the save is recorded in the
    audit log in the same unit of work (action ``loyalty.program.save``, the new version
    and the top-level parts that changed).

    ``if_version`` (the version the editor started from; 0: none was stored) makes the save
    conditional, in the same unit of work: when another version was saved meanwhile nothing
    is saved (``loyalty.program_version_conflict``), so no one's changes are lost unseen."""
    program = validate_program_document(ctx, document)
    now = ctx.clock()

    def save(conn: Connection) -> int:
        if if_version is not None:
            current = program_version(conn) or 0
            if current != if_version:
                raise ConflictError(
                    f"the program is at version {current}, not {if_version}: it was saved "
                    "meanwhile; nothing was saved",
                    code="loyalty.program_version_conflict",
                    message_zh=f"会员方案已是第 {current} 版而不是第 {if_version} 版:期间有人保存过;"
                    "本次未保存",
                    details={"version": current, "expected": if_version},
                )
        before = get_program(conn, PROGRAM_ID) if actor is not None else None
        version = save_program(conn, program, now=now)
        if actor is not None:
            old = before.to_document() if before is not None else {}
            new = program.to_document()
            if old and old.get("timezone") is None:  # a program without one runs in the store's
                old["timezone"] = new["timezone"]
            parts = sorted(k for k in new.keys() | old.keys() if old.get(k) != new.get(k))
            audit(
                conn, actor=actor, action="loyalty.program.save", target=PROGRAM_ID,
                detail={"version": version, "parts": parts}, now=now, client=client,
            )  # fmt: skip
        return version

    version = run_write(ctx.store, save)
    forget_program(ctx)
    return {"program_id": PROGRAM_ID, "version": version, "program": program.to_document()}
