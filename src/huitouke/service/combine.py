"""Group commit: the items of concurrent requests applied together in one unit of work.

A unit of work costs a fixed part (a transaction, its commit — a disk flush on PostgreSQL —
the locks, a few set-based statements) and a small part per item. When requests arrive
faster than units complete, :class:`GroupCommit` lets them queue on the event loop and
runs everything queued as one unit (``run_many``) in a worker thread; meanwhile the next
requests queue for the following unit. Under light load a request runs alone, at once —
nothing waits for a timer — and under heavy load the units grow, so the fixed part is paid
once per unit instead of once per request.

Each request still gets its own outcome. If the combined unit fails (one bad item, a
conflict, a database error) it has stored nothing, and it is split: when the error names
the item at fault (``culprit``), the items before it run as one unit, the culprit alone
(``run_one``: it gets the error it would have got alone), then the items after it;
otherwise the two halves run separately, and so on. Arrival order is kept, only the item at
fault fails, and one bad item costs a few more units, not one unit per item.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from starlette.concurrency import run_in_threadpool

__all__ = ["GroupCommit"]

T = TypeVar("T")
R = TypeVar("R")


@dataclass
class _Queue(Generic[T, R]):
    items: list[tuple[T, asyncio.Future[R]]] = field(default_factory=list)
    draining: bool = False
    task: asyncio.Task[None] | None = None  # held: the loop keeps only a weak reference


class GroupCommit(Generic[T, R]):
    """Combine concurrent :meth:`submit` calls of one event loop into units of at most
    ``max_items`` items.

    ``run_many(items)`` returns one result per item, in order, or raises (then nothing may
    have been stored); ``run_one(item)`` returns the item's result or raises its error;
    ``culprit(error, n)`` may name the index of the item that made a unit of ``n`` items
    fail. ``run_many`` and ``run_one`` run in the server's worker threads, one unit at a
    time per event loop.
    """

    def __init__(
        self,
        run_many: Callable[[Sequence[T]], Sequence[R]],
        run_one: Callable[[T], R],
        max_items: int,
        culprit: Callable[[Exception, int], int | None] = lambda exc, n: None,
    ) -> None:
        self.run_many = run_many
        self.run_one = run_one
        self.culprit = culprit
        self.max_items = max(1, max_items)
        self._queues: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Queue[T, R]] = (
            weakref.WeakKeyDictionary()
        )
        #: Units run and items they carried (for tests and diagnostics).
        self.units = 0
        self.items = 0
        self.fallbacks = 0

    async def submit(self, item: T) -> R:
        loop = asyncio.get_running_loop()
        q = self._queues.get(loop)
        if q is None:
            q = self._queues[loop] = _Queue()
        fut: asyncio.Future[R] = loop.create_future()
        q.items.append((item, fut))
        if not q.draining:
            q.draining = True
            q.task = loop.create_task(self._drain(q))
        return await fut

    async def _drain(self, q: _Queue[T, R]) -> None:
        batch: list[tuple[T, asyncio.Future[R]]] = []
        try:
            while q.items:
                batch = q.items[: self.max_items]
                del q.items[: self.max_items]
                outcomes = await run_in_threadpool(self._run, [item for item, _ in batch])
                for (_, fut), out in zip(batch, outcomes, strict=True):
                    if fut.done():  # the request was cancelled (client gone)
                        continue
                    if isinstance(out, BaseException):
                        fut.set_exception(out)
                    else:
                        fut.set_result(out)
                batch = []
        except BaseException as exc:  # cancelled at shutdown, or a bug: no request hangs
            for _, fut in [*batch, *q.items]:
                if not fut.done():
                    fut.set_exception(exc)
            q.items.clear()
            raise
        finally:
            q.draining = False

    def _run(self, items: Sequence[T]) -> list[R | BaseException]:
        if not items:
            return []
        self.units += 1
        if len(items) == 1:
            self.items += 1
            try:
                return [self.run_one(items[0])]
            except Exception as exc:
                return [exc]
        try:
            out: list[R | BaseException] = list(self.run_many(items))
        except Exception as exc:  # nothing stored: split, so only the culprit fails
            self.fallbacks += 1
            i = self.culprit(exc, len(items))
            if i is None or not 0 <= i < len(items):
                mid = len(items) // 2
                return self._run(items[:mid]) + self._run(items[mid:])
            return self._run(items[:i]) + self._run(items[i : i + 1]) + self._run(items[i + 1 :])
        self.items += len(items)
        return out
