"""``import_file``: the import use case — read, then one unit of work per batch."""

from __future__ import annotations

import csv
import ctypes
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import insert, update

from huitouke.app.orders import OrderTable, record_order_events, stored_loyalty
from huitouke.importing.build import Reject
from huitouke.importing.reader import read_orders
from huitouke.store import tables as t
from huitouke.store.db import Store

__all__ = ["ImportSummary", "import_file", "write_rejects"]

REJECT_COLUMNS = ("file", "line", "field", "value", "reason_code", "reason_en", "reason_zh")


@dataclass(frozen=True)
class ImportSummary:
    batch_id: int
    rows_read: int
    orders_inserted: int
    orders_updated: int
    orders_unchanged: int
    rows_rejected: int
    rejects_path: Path | None
    preset: str = ""


def write_rejects(path: Path, rejects: list[Reject]) -> None:
    """The rejects as CSV (UTF-8 with BOM so that spreadsheet programs read the Chinese)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8-sig") as fh:
        w = csv.writer(fh)
        w.writerow(REJECT_COLUMNS)
        for r in rejects:
            w.writerow([r.file, r.line, r.field, r.value, r.reason_code, r.reason_en, r.reason_zh])


def default_rejects_path(store: Store, source: Path, batch_id: int) -> Path:
    """Next to the SQLite file, or in the working directory for a server database."""
    base = Path.cwd()
    if store.dialect == "sqlite":
        db = store.engine.url.database
        if db and db != ":memory:":
            base = Path(db).expanduser().resolve().parent
    return base / f"{source.stem}.rejects.batch{batch_id}.csv"


@contextmanager
def _bar(enabled: bool, total: int, label: str) -> Iterator[object]:
    if not enabled or total < 50_000:
        yield lambda done: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    # refreshed by hand on each chunk: no background refresh thread
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:,}/{task.total:,}"),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
        auto_refresh=False,
    ) as prog:
        task = prog.add_task(label, total=total)

        def update(done: int) -> None:
            prog.update(task, completed=done)
            prog.refresh()

        yield update


_PR_SET_THP_DISABLE, _PR_GET_THP_DISABLE = 41, 42


@contextmanager
def no_transparent_huge_pages() -> Iterator[None]:
    """Linux: no transparent huge pages for this process while the block runs.

    A bulk import allocates and frees hundreds of column-sized buffers; with transparent
    huge pages every fresh fault zeroes 2 MiB, which measured as 0.5–1 CPU-second of
    kernel time per million rows (``prctl(PR_SET_THP_DISABLE)``; the previous setting is
    restored afterwards). Elsewhere, or when the kernel refuses, nothing changes.
    """
    libc: ctypes.CDLL | None = None
    if sys.platform == "linux":
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.prctl(_PR_GET_THP_DISABLE, 0, 0, 0, 0) != 0:
                libc = None  # already disabled (or unsupported): leave it as it is
            elif libc.prctl(_PR_SET_THP_DISABLE, 1, 0, 0, 0) != 0:
                libc = None
        except (OSError, AttributeError):
            libc = None
    try:
        yield
    finally:
        if libc is not None:
            libc.prctl(_PR_SET_THP_DISABLE, 0, 0, 0, 0)


def import_file(
    store: Store,
    path: str | os.PathLike[str],
    preset: str | None = None,
    *,
    timezone: str | None = None,
    mapping: dict[str, str] | None = None,
    rejects_path: str | os.PathLike[str] | None = None,
    progress: bool = True,
    sheet: str | int | None = None,
    encoding: str | None = None,
) -> ImportSummary:
    """Import one file as one batch: all of its good rows or nothing.

    The batch is one transaction: the ``import_batches`` row, the order upserts, customers,
    lines and products commit together, so an interrupted import (even ``kill -9``) leaves
    the store as it was before the batch. Rejected rows are written to ``rejects_path``
    (default: next to the SQLite store) when there are any, or always when it is given.
    """
    with no_transparent_huge_pages():
        return _import_file(
            store,
            Path(path),
            preset,
            timezone=timezone,
            mapping=mapping,
            rejects_path=rejects_path,
            progress=progress,
            sheet=sheet,
            encoding=encoding,
        )


def _import_file(
    store: Store,
    src: Path,
    preset: str | None,
    *,
    timezone: str | None,
    mapping: dict[str, str] | None,
    rejects_path: str | os.PathLike[str] | None,
    progress: bool,
    sheet: str | int | None,
    encoding: str | None,
) -> ImportSummary:
    res = read_orders(
        src,
        preset,
        timezone=timezone,
        mapping=mapping,
        sheet=sheet,
        progress=progress,
        encoding=encoding,
    )
    started = datetime.now(UTC)
    with store.begin() as conn:
        pk = conn.execute(
            insert(t.import_batches).values(
                source=str(src.resolve()),
                preset=res.preset,
                started_at=started,
                rows_read=res.rows_read,
                orders_inserted=0,
                orders_updated=0,
                rows_rejected=len(res.rejects),
                status="running",
            )
        ).inserted_primary_key
        assert pk is not None
        batch_id = int(pk[0])
        with _bar(progress, res.orders.num_rows, f"{src.name} → store") as cb:
            # recorded as every door records order events: the orders, and their loyalty
            # effects when a loyalty program is saved; an order id never changes hands
            counts = record_order_events(
                conn,
                OrderTable(res.orders, res.lines, res.customers, batch_id, one_row_per_order=True),
                loyalty=stored_loyalty(conn),
                progress=cb,  # type: ignore[arg-type]
            ).counts
        conn.execute(
            update(t.import_batches)
            .where(t.import_batches.c.batch_id == batch_id)
            .values(
                finished_at=datetime.now(UTC),
                orders_inserted=counts.inserted,
                orders_updated=counts.updated,
                status="done",
            )
        )
        out: Path | None = None
        if res.rejects or rejects_path is not None:
            out = (
                Path(rejects_path)
                if rejects_path is not None
                else default_rejects_path(store, src, batch_id)
            )
            write_rejects(out, res.rejects)
    return ImportSummary(
        batch_id=batch_id,
        rows_read=res.rows_read,
        orders_inserted=counts.inserted,
        orders_updated=counts.updated,
        orders_unchanged=counts.unchanged,
        rows_rejected=len(res.rejects),
        rejects_path=out,
        preset=res.preset,
    )
