"""Export files uploaded in the console's Data page.

The import itself is :func:`huitouke.app.imports.import_file` — the use case ``huitouke
import`` runs — in a background thread of the server, so the page can show its progress
while it works. Each upload is one row of ``console_imports``: who uploaded which file
when, the preset the reader detected, the counts, the rejects by reason and the rejects
file (CSV), kept in the store so the history and the download outlive the process.

Progress while an import runs (the rows written of the rows to write) is kept in this
process: the import's one transaction holds SQLite's write lock, so it cannot be written to
the store as it goes. A page polled on another worker process shows "running" without the
count; the outcome, written when the import ends, is seen by every worker.
"""

from __future__ import annotations

import logging
import re
import secrets
import shutil
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy import Connection, select, update

from huitouke.errors import HuitoukeError, NotFoundError
from huitouke.service.tables import console_imports as ci
from huitouke.store import tables as st
from huitouke.store.db import Store

__all__ = [
    "ImportProgress",
    "get_import",
    "import_history",
    "progress_of",
    "rejects_of",
    "start_import",
    "wait_for",
]

log = logging.getLogger("huitouke.service.uploads")
_UNSAFE = re.compile(r"[^\w.\- ()\u3000-\u9fff]+")


@dataclass
class ImportProgress:
    #: reading (the file is read and checked), writing (orders are written), done, failed
    stage: str = "reading"
    done: int = 0
    total: int = 0


_LOCK = threading.Lock()
_PROGRESS: dict[str, ImportProgress] = {}
_THREADS: dict[str, threading.Thread] = {}


def safe_file_name(name: str | None) -> str:
    """The uploaded file's own name (no directories, no control characters), for the history
    and for the reader, which detects the format from the extension and the header."""
    base = Path((name or "").replace("\\", "/")).name
    base = _UNSAFE.sub("_", base).strip(" .")[:200]
    return base or "upload.csv"


def start_import(
    store: Store,
    upload: BinaryIO,
    *,
    file_name: str | None,
    user: str,
    now: datetime,
    source: str | None = None,
    preset: str | None = None,
    timezone: str | None = None,
    on_done: Callable[[], None] | None = None,
) -> str:
    """Copy the upload to a private temporary directory, record it and start importing it
    in a background thread; returns the import's id (for its page and progress)."""
    from huitouke.app.orders import check_source

    source = check_source(source, field="source")
    name = safe_file_name(file_name)
    work = Path(tempfile.mkdtemp(prefix="huitouke-upload-"))
    path = work / name
    with path.open("wb") as out:
        shutil.copyfileobj(upload, out, 1024 * 1024)
    import_id = secrets.token_hex(16)
    with store.begin() as conn:
        conn.execute(
            ci.insert().values(
                import_id=import_id,
                user_name=user,
                file_name=name,
                size_bytes=path.stat().st_size,
                source=source,
                status="running",
                started_at=now,
            )
        )
    with _LOCK:
        _PROGRESS[import_id] = ImportProgress()
    thread = threading.Thread(
        target=_run,
        args=(store, import_id, work, path, source, preset, timezone, on_done),
        name=f"huitouke-import-{import_id[:8]}",
        daemon=True,
    )
    with _LOCK:
        _THREADS[import_id] = thread
    thread.start()
    return import_id


def _run(
    store: Store,
    import_id: str,
    work: Path,
    path: Path,
    source: str,
    preset: str | None,
    timezone: str | None,
    on_done: Callable[[], None] | None,
) -> None:
    from huitouke.app.imports import import_file

    progress = _PROGRESS[import_id]

    def report(done: int, total: int) -> None:
        progress.stage, progress.done, progress.total = "writing", done, total

    values: dict[str, Any]
    try:
        rejects = work / f"{path.stem}.rejects.csv"
        summary = import_file(
            store, path, preset, timezone=timezone, rejects_path=rejects, progress=False,
            source=source, report=report,
        )  # fmt: skip
        values = {
            "status": "done",
            "preset": summary.preset,
            "batch_id": summary.batch_id,
            "rows_read": summary.rows_read,
            "orders_inserted": summary.orders_inserted,
            "orders_updated": summary.orders_updated,
            "orders_unchanged": summary.orders_unchanged,
            "rows_rejected": summary.rows_rejected,
            "rejects_by_reason": dict(summary.rejects_by_reason),
            "rejects_csv": rejects.read_bytes() if summary.rows_rejected else None,
            "warnings": [list(w) for w in summary.warnings],
        }
    except HuitoukeError as exc:
        values = {
            "status": "failed",
            "error_code": exc.code,
            "error": {"en": exc.message, "zh": exc.message_zh},
        }
    except Exception:  # recorded as failed; the details go to the server log only
        log.exception("import %s of %s stopped", import_id, path.name)
        values = {"status": "failed", "error_code": None, "error": None}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    try:
        with store.begin() as conn:
            conn.execute(
                update(ci)
                .where(ci.c.import_id == import_id)
                .values(finished_at=datetime.now(UTC), **values)
            )
    finally:
        progress.stage = values["status"]
        with _LOCK:
            _THREADS.pop(import_id, None)
        if on_done is not None:
            on_done()


def progress_of(import_id: str) -> ImportProgress | None:
    """The running import's progress in this process (None: not started here)."""
    with _LOCK:
        return _PROGRESS.get(import_id)


def wait_for(import_id: str, timeout: float = 120.0) -> None:
    """Until the import started here has ended (tests; a shutdown that waits)."""
    with _LOCK:
        thread = _THREADS.get(import_id)
    if thread is not None:
        thread.join(timeout)


def get_import(conn: Connection, import_id: str) -> dict[str, Any]:
    row = conn.execute(select(ci).where(ci.c.import_id == import_id).limit(1)).mappings().first()
    if row is None:
        raise NotFoundError(
            f"no console import {import_id!r}",
            code="import.not_found",
            message_zh=f"没有导入记录 {import_id!r}",
            details={"import_id": import_id},
        )
    out = dict(row)
    out["has_rejects"] = out.pop("rejects_csv") is not None
    return out


def rejects_of(conn: Connection, import_id: str) -> tuple[str, bytes]:
    """(file name, CSV bytes) of an import's rejected rows."""
    row = conn.execute(
        select(ci.c.file_name, ci.c.rejects_csv).where(ci.c.import_id == import_id)
    ).first()
    if row is None or row.rejects_csv is None:
        raise NotFoundError(
            f"import {import_id!r} has no rejected rows",
            code="import.not_found",
            message_zh=f"导入 {import_id!r} 没有被拒收的行",
            details={"import_id": import_id},
        )
    return f"{Path(row.file_name).stem}.rejects.csv", bytes(row.rejects_csv)


def import_history(conn: Connection, limit: int = 50) -> list[dict[str, Any]]:
    """The latest imports, newest first: the console's uploads (who, file, preset, counts,
    status) and the batches other doors (``huitouke import``) made, with their file name."""
    rows: list[dict[str, Any]] = []
    seen_batches: set[int] = set()
    q = select(ci).order_by(ci.c.started_at.desc()).limit(limit)
    for r in conn.execute(q).mappings():
        d = dict(r)
        d["has_rejects"] = d.pop("rejects_csv") is not None
        d["door"] = "console"
        if d["batch_id"] is not None:
            seen_batches.add(int(d["batch_id"]))
        rows.append(d)
    b = st.import_batches.c
    for r in conn.execute(
        select(st.import_batches).order_by(b.started_at.desc()).limit(limit + len(seen_batches))
    ).mappings():
        if int(r["batch_id"]) in seen_batches:
            continue
        rows.append(
            {
                "import_id": None,
                "door": "cli",
                "user_name": None,
                "file_name": Path(str(r["source"])).name,
                "source": None,
                "status": "done" if r["status"] == "done" else str(r["status"]),
                "preset": r["preset"],
                "batch_id": r["batch_id"],
                "started_at": r["started_at"],
                "finished_at": r["finished_at"],
                "rows_read": r["rows_read"],
                "orders_inserted": r["orders_inserted"],
                "orders_updated": r["orders_updated"],
                "orders_unchanged": None,
                "rows_rejected": r["rows_rejected"],
                "rejects_by_reason": None,
                "has_rejects": False,
                "warnings": None,
                "error_code": None,
                "error": None,
            }
        )
    rows.sort(key=lambda d: d["started_at"], reverse=True)
    return rows[:limit]
