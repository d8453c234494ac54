"""Tables of the scheduler.

- ``scheduler_runs``: every run of a job — the slot it was scheduled for (none for a run
  asked for by hand), how it was started (``schedule``, ``catch_up``, ``manual``), when it
  started and finished, its duration, status (``running``, ``succeeded``, ``skipped``,
  ``failed``), the error, a small JSON summary of what it did, and the host and process
  that ran it. ``(job, slot)`` is unique: a slot is run once, whichever process gets it.
- ``scheduler_leases``: leases with an expiry, renewed while held — the one scheduler
  process of a SQLite store and the lock of each job there (PostgreSQL uses advisory
  locks instead).
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    CheckConstraint,
    Column,
    Float,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from huitouke.store.tables import metadata
from huitouke.store.types import UTCDateTime

__all__ = ["scheduler_leases", "scheduler_runs"]

scheduler_runs = Table(
    "scheduler_runs",
    metadata,
    Column("run_id", Integer, primary_key=True, autoincrement=True),
    Column("job", String(64), nullable=False),
    Column("slot", UTCDateTime, nullable=True),
    Column("trigger", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime, nullable=True),
    Column("duration_ms", Float, nullable=True),
    Column("error_code", String(64), nullable=True),
    Column("error", Text, nullable=True),
    Column("error_zh", Text, nullable=True),
    Column("result", JSON, nullable=True),
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    UniqueConstraint("job", "slot", name="uq_scheduler_runs_job_slot"),
    CheckConstraint("trigger IN ('schedule', 'catch_up', 'manual')", name="trigger_known"),
    CheckConstraint("status IN ('running', 'succeeded', 'skipped', 'failed')", name="status_known"),
    Index("ix_scheduler_runs_started", "started_at"),
)

scheduler_leases = Table(
    "scheduler_leases",
    metadata,
    Column("name", String(80), primary_key=True),
    Column("holder", String(255), nullable=False),
    Column("acquired_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
)
