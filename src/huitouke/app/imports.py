"""``import_file``: the import use case — read a file with :mod:`huitouke.importing`, then
record its orders in one unit of work through :func:`huitouke.app.orders.record_order_events`,
as every other door records order events (the orders, and their loyalty effects when a
program is saved), and the marketing consent its consent columns carry (``consent_sms``,
``email_opt_in``…) through :func:`huitouke.app.consent.set_consents`, as an automated source
that never overrides a customer's own recorded choice."""

from __future__ import annotations

import ctypes
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Connection, insert, update

from huitouke.app.consent import set_consents
from huitouke.app.orders import (
    OrderTable,
    check_source,
    key_writer,
    record_order_events,
    stored_loyalty,
)
from huitouke.core.orders import with_source
from huitouke.errors import ImportFileError
from huitouke.importing.convert import Decimal
from huitouke.importing.dates import DateOrder
from huitouke.importing.reader import ReadResult, read_orders
from huitouke.importing.rejects import write_rejects
from huitouke.messaging.rules import CHANNELS
from huitouke.store import tables as t
from huitouke.store.db import Store

__all__ = ["ImportSummary", "import_file"]


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
    rejects_by_reason: dict[str, int] = field(default_factory=dict)
    warnings: list[tuple[str, str]] = field(default_factory=list)  # (en, zh)
    zone: str = ""  # the zone the file's wall-clock times were read in
    shop_zone: str = ""  # the shop's zone, recorded with its first import
    source: str = ""  # the namespace of the file's order ids
    #: consent changes the file's consent columns recorded (consent events), and those left
    #: alone because the customer's own choice (an unsubscribe, an explicit opt-in or -out)
    #: decides the channel
    consent_recorded: int = 0
    consent_kept: int = 0
    #: the snapshot kinds recomputed after the import (those the store already had)
    snapshots_refreshed: tuple[str, ...] = ()


def default_rejects_path(store: Store, source: Path, batch_id: int) -> Path:
    """Next to the SQLite file, or in the working directory for a server database."""
    base = Path.cwd()
    if store.dialect == "sqlite":
        db = store.engine.url.database
        if db and db != ":memory:":
            base = Path(db).expanduser().resolve().parent
    return base / f"{source.stem}.rejects.batch{batch_id}.csv"


#: told (rows written, rows to write) as an import writes its orders, chunk by chunk
ProgressReport = Callable[[int, int], None]


@contextmanager
def _bar(
    enabled: bool, total: int, label: str, report: ProgressReport | None = None
) -> Iterator[object]:
    def told(done: int) -> None:
        if report is not None:
            report(done, total)

    if not enabled or total < 50_000:
        yield told
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
            told(done)

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
    order_key: list[str] | None = None,
    decimal: Decimal = "auto",
    date_order: DateOrder | None = None,
    strict: bool = False,
    source: str | None = None,
    report: ProgressReport | None = None,
) -> ImportSummary:
    """Import one file as one batch: all of its good rows or nothing.

    ``source`` is the namespace of the file's order ids — the shop, platform or channel it
    was exported from (default :data:`~huitouke.core.orders.DEFAULT_SOURCE`): its orders are
    keyed ``(source, order_id)``, so a file of another source with the same ids keeps its
    own orders, and importing it never changes another source's.

    The batch is one transaction: the ``import_batches`` row, the order upserts, customers,
    lines and products commit together, so an interrupted import (even ``kill -9``) leaves
    the store as it was before the batch. Rejected rows are written to ``rejects_path``
    (default: next to the SQLite store) when there are any, or always when it is given.
    With ``strict``, a file with any rejected row stores nothing: the rejects are written
    and ``import.rows_rejected`` is raised. ``order_key``, ``decimal`` and ``date_order``
    are :func:`~huitouke.importing.reader.read_orders`'s. ``report`` is told (rows written,
    rows to write) as the orders are written, chunk by chunk (the console's progress).
    """
    src = Path(path)
    source = check_source(source, field="source")
    with no_transparent_huge_pages():
        res = read_orders(
            src, preset, timezone=timezone, mapping=mapping, sheet=sheet, progress=progress,
            encoding=encoding, order_key=order_key, decimal=decimal, date_order=date_order,
            consent_channels=CHANNELS,
        )  # fmt: skip
        if strict and res.rejects:
            out = (
                Path(rejects_path) if rejects_path is not None else strict_rejects_path(store, src)
            )
            write_rejects(out, res.rejects)
            raise rows_rejected_error(res, out)
        res = replace(
            res,
            orders=with_source(res.orders, source),
            lines=None if res.lines is None else with_source(res.lines, source),
        )
        if report is not None:
            report(0, res.orders.num_rows)
        summary = _import_file(
            store, src, res, rejects_path=rejects_path, progress=progress, report=report
        )
    shop_zone, zone_warnings = _record_shop_zone(store, summary.batch_id)
    refreshed, snapshot_warnings = _refresh_snapshots(store)
    return replace(
        summary,
        rejects_by_reason=res.rejects_by_reason(),
        warnings=[*res.warnings, *zone_warnings, *snapshot_warnings],
        snapshots_refreshed=refreshed,
        zone=res.zone,
        shop_zone=shop_zone,
        source=source,
    )


def _refresh_snapshots(store: Store) -> tuple[tuple[str, ...], list[tuple[str, str]]]:
    """The snapshots the store has, recomputed from the orders as they are now (after the
    batch committed: a failure here leaves the import done and the snapshots marked stale,
    which the console shows, and says so as a warning)."""
    from huitouke.app.snapshots import refresh_after_import
    from huitouke.i18n import t as text
    from huitouke.settings import get_settings

    reports = refresh_after_import(store, get_settings())
    warnings = [
        (
            text("app.snapshots.refresh_failed", "en", kind=r.kind, code=r.error),
            text("app.snapshots.refresh_failed", "zh", kind=r.kind, code=r.error),
        )
        for r in reports
        if r.error
    ]
    return tuple(r.kind for r in reports if not r.error), warnings


def _record_shop_zone(store: Store, batch_id: int) -> tuple[str, list[tuple[str, str]]]:
    """The shop's zone: recorded with its first import (the merchant zone then in force);
    a later import under another merchant zone is told, since days and months would be
    counted differently. (Its own small transaction after the batch: a crash in between
    leaves the zone to the next import to record.)"""
    from huitouke.settings import get_settings
    from huitouke.store.shop_profile import TIMEZONE, record_first

    current = get_settings().timezone
    with store.begin() as conn:
        recorded = record_first(conn, TIMEZONE, current, batch_id)
    if recorded == current:
        return recorded, []
    return recorded, [
        (
            f"this store's orders were first imported with the merchant zone {recorded}, "
            f"but HUITOUKE_TIMEZONE is now {current}: days, weeks and months in reports follow "
            f"the setting in force. Set HUITOUKE_TIMEZONE={recorded} to count as before.",
            f"本店首次导入订单时的商家时区为 {recorded},而当前 HUITOUKE_TIMEZONE 为 {current}:"
            f"报表中的日、周、月按当前设置计算。如需与之前一致,请设置 HUITOUKE_TIMEZONE={recorded}。",
        )
    ]


def strict_rejects_path(store: Store, source: Path) -> Path:
    """Where a refused strict import reports its rejects (no batch number: none was made)."""
    return default_rejects_path(store, source, 0).with_name(f"{source.stem}.rejects.csv")


def rows_rejected_error(res: ReadResult, rejects: Path | None) -> ImportFileError:
    by_reason = res.rejects_by_reason()
    listed = ", ".join(f"{code} ×{n}" for code, n in by_reason.items())
    where_en = f"; they are listed in {rejects}" if rejects is not None else ""
    where_zh = f";明细见 {rejects}" if rejects is not None else ""
    return ImportFileError(
        f"{res.path.name}: {len(res.rejects)} rows rejected ({listed}) and --strict was "
        f"given, so nothing was imported{where_en}.",
        code="import.rows_rejected",
        message_zh=f"{res.path.name}:拒收 {len(res.rejects)} 行({listed}),因指定了 --strict,"
        f"未导入任何数据{where_zh}。",
        details={
            "file": str(res.path),
            "rows_rejected": len(res.rejects),
            "by_reason": by_reason,
            "rejects_path": str(rejects) if rejects is not None else None,
        },
    )


def _record_consent(
    conn: Connection, res: ReadResult, batch_id: int, at: datetime
) -> tuple[int, int]:
    """The file's consent per customer and channel, through :func:`set_consents`
    (``explicit=False``); returns (changes recorded, changes kept out)."""
    if res.consent is None or res.consent.num_rows == 0:
        return 0, 0
    changes: dict[str, dict[str, bool]] = {}
    for cid, channel, granted in zip(
        *(res.consent.column(c).to_pylist() for c in ("customer_id", "channel", "granted")),
        strict=True,
    ):
        changes.setdefault(cid, {})[channel] = bool(granted)
    done = set_consents(
        conn, changes, source="import", at=at, explicit=False, detail={"batch_id": batch_id}
    )
    recorded = sum(len(c.recorded) for c in done)
    kept = sum(len(c.kept_unsubscribed) + len(c.kept_by_choice) for c in done)
    return recorded, kept


def _import_file(
    store: Store,
    src: Path,
    res: ReadResult,
    *,
    rejects_path: str | os.PathLike[str] | None,
    progress: bool,
    report: ProgressReport | None = None,
) -> ImportSummary:
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
        from huitouke.i18n import t as text
        from huitouke.settings import get_settings

        label = f"{text('import.progress_write', get_settings().lang)} {src.name}"
        with _bar(progress, res.orders.num_rows, label, report) as cb:
            # recorded as every door records order events: the orders, and their loyalty
            # effects when a loyalty program is saved; an order id never changes hands
            counts = record_order_events(
                conn,
                OrderTable(res.orders, res.lines, res.customers, batch_id, one_row_per_order=True),
                loyalty=stored_loyalty(conn, get_settings().timezone),
                progress=cb,  # type: ignore[arg-type]
                keys=key_writer(get_settings()),
            ).counts
        # consent columns of the file: recorded through the one consent use case, as an
        # automated source (they never override the customer's own recorded choice)
        consent = _record_consent(conn, res, batch_id, started)
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
        consent_recorded=consent[0],
        consent_kept=consent[1],
    )
