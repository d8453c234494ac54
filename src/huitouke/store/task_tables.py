"""Background tasks (Alembic branch ``tasks``): work a person starts from the console that
lasts longer than a request should — recomputing the snapshots, issuing coupons to a
segment — recorded as one row that the page polls for progress
(:mod:`huitouke.app.tasks` submits, claims, runs and reports them).

``active_key`` names what may not run twice at once (``snapshots.refresh``,
``segment.coupons:rfm:champions``) while the task is queued or running, and is cleared when
it ends: the unique constraint refuses a second one in every process. ``heartbeat_at`` is
renewed while a task runs; a task whose heartbeat stopped (its process died) is taken over
by the scheduler's ``tasks`` job and run again — every kind is idempotent.
"""

from __future__ import annotations

from sqlalchemy import JSON, CheckConstraint, Column, Index, Integer, String, Table, Text

from huitouke.store.tables import metadata
from huitouke.store.types import UTCDateTime

__all__ = ["background_tasks"]

background_tasks = Table(
    "background_tasks",
    metadata,
    Column("task_id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(64), nullable=False),
    Column("active_key", String(255), nullable=True, unique=True),
    Column("params", JSON, nullable=False),
    Column("status", String(16), nullable=False),
    Column("done", Integer, nullable=False),
    Column("total", Integer, nullable=False),
    Column("stage", String(128), nullable=True),
    Column("result", JSON, nullable=True),
    Column("error_code", String(64), nullable=True),
    Column("error", Text, nullable=True),
    Column("error_zh", Text, nullable=True),
    Column("created_by", String(128), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("started_at", UTCDateTime, nullable=True),
    Column("finished_at", UTCDateTime, nullable=True),
    Column("heartbeat_at", UTCDateTime, nullable=True),
    Column("holder", String(255), nullable=True),
    Column("attempts", Integer, nullable=False),
    CheckConstraint("status IN ('queued', 'running', 'succeeded', 'failed')", name="status_known"),
    Index("ix_background_tasks_status", "status", "created_at"),
)
