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

from sqlalchemy import Connection, select

from huitouke.loyalty import tables as lt
from huitouke.loyalty.program import Program, load_program
from huitouke.loyalty.programs_repo import get_program
from huitouke.loyalty.service import LoyaltyService
from huitouke.service.context import ServiceContext

__all__ = ["PROGRAM_ID", "default_program", "forget_program", "loyalty_service"]

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
