"""Webhook deliveries applied by the scheduler's process as they arrive
(``HUITOUKE_WEBHOOK_APPLY=scheduler``).

By default the ``huitouke serve`` worker that stored and acknowledged a delivery applies it
right after the answer (:class:`huitouke.service.webhook_door.InboxApplier`): one process
does both, and a batch being applied (Python code, under the interpreter's lock) delays the
answers the worker owes meanwhile. With ``scheduler`` the workers only store and answer,
and this follower — a thread of the scheduler's process (the parent of ``huitouke serve
--workers N``, or ``huitouke scheduler``) — applies what arrived: it asks the inbox for
pending deliveries (:func:`huitouke.app.connectors.apply_arrivals`: an index range, only
the pending entries) every ``HUITOUKE_WEBHOOK_APPLY_POLL_SECONDS`` when the last look found
none, at once when it found some, and runs at a lowered CPU priority so that the answers
come first when the cores are short.

Nothing is applied twice: every apply locks its rows and applies only those still pending
(another follower, a service's applier, the ``connectors.inbox`` job or a retry may meet
the same rows). Deliveries older than a minute at the follower's start, refunds (whose
order is fetched from the platform) and a paused connector's are the ``connectors.inbox``
job's, as before. A failing store makes it wait longer between looks (up to 30 s), never
stop.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Callable
from datetime import datetime, timedelta

from huitouke.settings import Settings
from huitouke.store.db import Store

__all__ = ["InboxFollower"]

log = logging.getLogger("huitouke.scheduler.inbox")

#: the nice value the follower's thread takes (Linux: the priority is per thread)
NICE = 10
#: the longest wait after failures
MAX_BACKOFF = 30.0
#: inbox ids left pending by an apply that are not looked at again (the job's), at most
SKIP_KEPT = 10_000


class InboxFollower:
    """A thread applying the webhook deliveries as they arrive, from :meth:`start` until
    :meth:`stop`."""

    def __init__(
        self, store: Store, settings: Settings, clock: Callable[[], datetime], *, batch: int = 500
    ) -> None:
        self.store = store
        self.settings = settings
        self.clock = clock
        self.batch = batch
        self.thread: threading.Thread | None = None
        self._halt = threading.Event()
        #: deliveries handled and applies run (diagnostics, tests)
        self.handled = 0
        self.rounds = 0
        self.errors = 0

    def start(self) -> None:
        self._halt.clear()
        self.thread = threading.Thread(
            target=self.run, args=(self._halt,), name="huitouke-inbox-follower", daemon=True
        )
        self.thread.start()

    def stop(self, timeout: float | None = None) -> None:
        """Stop looking; wait for the batch in hand to be applied."""
        self._halt.set()
        if self.thread is not None:
            self.thread.join(timeout)

    def run(self, stop: threading.Event) -> None:
        from huitouke.app.connectors import apply_arrivals

        _lower_priority()
        since = self.clock() - timedelta(minutes=1)
        skip: dict[int, None] = {}  # insertion-ordered: the oldest forgotten first
        poll = self.settings.webhook_apply_poll_seconds
        wait = poll
        log.info("applying webhook deliveries as they arrive (every %.2f s when idle)", poll)
        while not stop.is_set():
            try:
                handled, left = apply_arrivals(
                    self.store, self.settings, since=since, skip=skip.keys(), now=self.clock(),
                    batch=self.batch,
                )  # fmt: skip
            except Exception:  # the store is away or failing: look again later
                self.errors += 1
                log.exception("webhook deliveries not applied; trying again in %.1f s", wait)
                stop.wait(wait)
                wait = min(MAX_BACKOFF, max(wait * 2, 1.0))
                continue
            wait = poll
            self.rounds += 1
            self.handled += handled
            for inbox_id in left:
                skip[inbox_id] = None
            while len(skip) > SKIP_KEPT:
                del skip[next(iter(skip))]
            if handled - len(left) <= 0:  # nothing new applied: wait for more to arrive
                stop.wait(poll)


def _lower_priority() -> None:
    """This thread's CPU priority lowered (Linux: per thread; elsewhere the process's is
    left alone)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), NICE)
    except OSError:  # not allowed here: the same priority as the rest
        log.debug("could not lower the inbox follower's priority", exc_info=True)
