"""The loyalty program the service runs: the stored ``default`` program (``PUT
/v1/program``), else a plain default in the merchant's currency and zone.

Each unit of work reads the stored program's version (one primary-key lookup) and reuses
the cached :class:`~huitouke.loyalty.service.LoyaltyService` while it is current, so a
program saved by any worker process takes effect in every worker at its next request.
"""

from __future__ import annotations

from sqlalchemy import Connection, select

from huitouke.loyalty import tables as lt
from huitouke.loyalty.program import Program, load_program
from huitouke.loyalty.programs_repo import get_program
from huitouke.loyalty.service import LoyaltyService
from huitouke.service.context import ServiceContext

__all__ = ["PROGRAM_ID", "default_program", "loyalty_service"]

PROGRAM_ID = "default"


def default_program(ctx: ServiceContext) -> Program:
    return load_program(
        {"id": PROGRAM_ID, "currency": ctx.settings.currency, "timezone": ctx.settings.timezone}
    )


def loyalty_service(conn: Connection, ctx: ServiceContext) -> LoyaltyService:
    version = conn.execute(
        select(lt.programs.c.version).where(lt.programs.c.program_id == PROGRAM_ID)
    ).scalar_one_or_none()
    cached = ctx.cache.get("loyalty")
    if cached is not None and cached[0] == version:
        svc: LoyaltyService = cached[1]
        return svc
    program = get_program(conn, PROGRAM_ID) if version is not None else None
    svc = LoyaltyService(program or default_program(ctx), clock=ctx.clock)
    ctx.cache["loyalty"] = (version, svc)
    return svc
