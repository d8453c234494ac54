"""The dispatcher: claims due outbox rows, re-checks the contact rules, sends, marks each sent.

One round (:meth:`Dispatcher.run_once`) is:

1. **Claim and decide** (one transaction). Due rows — ``queued``/``failed`` with
   ``not_before <= now``, or ``sending`` whose lease ran out because a worker died — are
   flipped to ``sending`` with a fresh lease (``UPDATE … WHERE message_id IN (SELECT … LIMIT
   n [FOR UPDATE SKIP LOCKED]) RETURNING``). Service notices come first. The contact rules
   run against the customers' consent and what was sent to them — per person: the
   accounts merged into one person (:mod:`huitouke.identity`) share caps, consent changes
   and last order; on PostgreSQL the persons of the batch are serialised with transaction advisory locks (in key order, so
   two workers cannot deadlock) so two workers never both spend the last unit of a cap, and on
   SQLite the claim's write lock does the same. Allowed rows reserve their contact in
   ``contact_log``; delayed rows go back to the queue with their new ``not_before``; refused
   rows become ``suppressed`` with the reason code.
2. **Send and record as acknowledged.** Sends run outside any transaction, concurrently
   (at most ``concurrency`` on the wire), each channel through its token bucket; every send
   carries the ``message_id`` as idempotency key. Each provider answer goes to a writer
   thread that commits ``sent`` (fenced by the lease, with the provider's id and an
   ``accepted`` receipt), ``failed`` with backoff, or ``dead`` — every ``mark_every``
   answers or ``mark_ms`` milliseconds after the oldest unrecorded one, whichever comes
   first. A send may only start while fewer than ``concurrency + mark_every`` messages are
   on the wire or answered-but-unrecorded, so a worker killed at any instant leaves at most
   that many messages that went out and are not marked sent.

A live worker renews the lease of its claim before a round sends and with every commit of
answers. A killed worker's rows stay ``sending`` under a lease that expires; the next worker
takes them over. Rows that never left are sent once; the at most ``concurrency + mark_every`` that
left but were not recorded go again with the same idempotency key (a sink that de-duplicates
by it sees each message exactly once). Channels delivered **at most once** (the channel says
so, or ``at_most_once`` names it) are instead marked ``send.started`` in a commit before each
group of at most ``concurrency`` sends; a started row taken over from a dead worker becomes
``dead`` (``crash.unknown``) and is never sent again. See
:mod:`huitouke.messaging.channels.base`.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import random
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, bindparam, case, delete, insert, select, text, update

from huitouke.identity.service import person_accounts
from huitouke.messaging.channels.base import (
    Channel,
    ChannelError,
    OutgoingMessage,
    PermanentSendError,
    SendResult,
)
from huitouke.messaging.consent import load_customer_contexts
from huitouke.messaging.rules import (
    Contact,
    ContactPolicy,
    CustomerContext,
    Decision,
    PlannedMessage,
    evaluate,
)
from huitouke.messaging.tables import contact_log, delivery_receipts, outbox
from huitouke.store.db import Store

__all__ = ["DispatchStats", "Dispatcher", "TokenBucket", "utcnow"]

log = logging.getLogger("huitouke.messaging.dispatcher")

RECLAIMED = "crash.reclaimed"
#: committed on an at-most-once row just before its send; a dead worker's started row is
#: taken over as STARTED_RECLAIMED and dead-lettered instead of sent again
STARTED = "send.started"
STARTED_RECLAIMED = "crash.started"


def utcnow() -> datetime:
    return datetime.now(UTC)


class TokenBucket:
    """``rate`` tokens a second, at most ``burst`` saved up; ``acquire`` waits for one."""

    def __init__(self, rate: float, burst: float | None = None) -> None:
        if rate <= 0:
            raise ValueError("rate must be > 0")
        self.rate = float(rate)
        self.capacity = float(burst if burst is not None else max(1.0, rate))
        self.tokens = self.capacity
        self.stamp = time.monotonic()
        self.lock = threading.Lock()

    def acquire(self) -> None:
        while True:
            with self.lock:
                now = time.monotonic()
                self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
                self.stamp = now
                if self.tokens >= 1:
                    self.tokens -= 1
                    return
                wait = (1 - self.tokens) / self.rate
            time.sleep(wait)


@dataclass
class DispatchStats:
    claimed: int = 0
    sent: int = 0
    delayed: int = 0
    suppressed: int = 0
    failed: int = 0
    dead: int = 0
    lost_lease: int = 0
    reasons: dict[str, int] = field(default_factory=dict)

    def add(self, other: DispatchStats) -> None:
        for k in ("claimed", "sent", "delayed", "suppressed", "failed", "dead", "lost_lease"):
            setattr(self, k, getattr(self, k) + getattr(other, k))
        for k, v in other.reasons.items():
            self.reasons[k] = self.reasons.get(k, 0) + v

    def count(self, reason: str) -> None:
        self.reasons[reason] = self.reasons.get(reason, 0) + 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "claimed": self.claimed,
            "sent": self.sent,
            "delayed": self.delayed,
            "suppressed": self.suppressed,
            "failed": self.failed,
            "dead": self.dead,
            "lost_lease": self.lost_lease,
            "reasons": dict(sorted(self.reasons.items())),
        }


@dataclass
class _Claimed:
    row: Any
    decision: Decision | None = None
    result: SendResult | None = None
    error: ChannelError | None = None


def _lock_key(customer_id: str) -> int:
    return int.from_bytes(
        hashlib.sha256(customer_id.encode("utf-8")).digest()[:8], "big", signed=True
    )


class Dispatcher:
    """Sends due outbox rows through ``channels`` (logical channel name → :class:`Channel`).

    ``clock`` gives "now" (aware UTC) for claims, rules and records — tests drive it;
    rate limits (messages per second per channel) run on the real monotonic clock.
    """

    def __init__(
        self,
        store: Store,
        channels: Mapping[str, Channel],
        clock: Callable[[], datetime] = utcnow,
        rate_limits: Mapping[str, float] | None = None,
        *,
        policy: ContactPolicy,
        worker_id: str | None = None,
        lease_seconds: float = 120.0,
        max_attempts: int = 8,
        batch_size: int = 500,
        concurrency: int = 16,
        backoff_base: float = 30.0,
        backoff_cap: float = 6 * 3600.0,
        rng: random.Random | None = None,
        mark_every: int = 32,
        mark_ms: float = 20.0,
        at_most_once: Iterable[str] = (),
    ) -> None:
        self.store = store
        self.channels = dict(channels)
        self.clock = clock
        self.rate_limits = dict(rate_limits or {})
        self.buckets = {ch: TokenBucket(r) for ch, r in self.rate_limits.items() if r and r > 0}
        self.policy = policy
        self.worker_id = worker_id or f"w-{uuid.uuid4().hex[:12]}"
        self.lease = timedelta(seconds=lease_seconds)
        self.max_attempts = max_attempts
        self.batch_size = batch_size
        self.concurrency = max(1, concurrency)
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.rng = rng or random.Random()
        self.mark_every = max(1, mark_every)
        self.mark_seconds = max(0.0, mark_ms) / 1000.0
        self.at_most_once = frozenset(
            {ch for ch, c in self.channels.items() if c.delivery == "at_most_once"}
            | {ch for ch in at_most_once if ch in self.channels}
        )
        self._pool: ThreadPoolExecutor | None = None
        self._pg = store.dialect == "postgresql"
        #: when each live round's lease was last renewed (dispatcher clock)
        self._renewed: dict[str, datetime] = {}

    # -- public ------------------------------------------------------------------------------
    def run_once(self, limit: int | None = None) -> DispatchStats:
        """One claim → send → record round of at most ``limit`` (default batch size) rows."""
        stats = DispatchStats()
        batch = self._claim_and_decide(limit, stats)
        if batch is not None:
            owner, to_send = batch
            self._renew_lease(owner)
            self._send_all(to_send, owner, stats)
        return stats

    def _renew_lease(self, owner: str, conn: Connection | None = None) -> None:
        """A live worker keeps its claim: the lease runs from now again. Called before a
        round starts sending (it may have waited behind the round before it) and with the
        commits of answers, so only a dead or stuck worker's rows are ever taken over.

        With a commit of answers (``conn`` given) the lease is renewed only once a quarter of
        it has run since the last renewal: renewing rewrites every row of the round still
        sending, and doing that with each commit of ``mark_every`` answers made recording a
        round cost O(round² / mark_every) row writes."""
        now = self.clock()
        if conn is not None:
            last = self._renewed.get(owner)
            if last is not None and now - last < self.lease / 4:
                return
        self._renewed[owner] = now
        stmt = (
            update(outbox)
            .where((outbox.c.lease_owner == owner) & (outbox.c.status == "sending"))
            .values(lease_until=now + self.lease)
        )
        if conn is not None:
            conn.execute(stmt)
            return
        with self.store.begin() as c:
            c.execute(stmt)

    @property
    def unrecorded_bound(self) -> int:
        """Most messages that can have left without being marked sent at any instant: what a
        SIGKILL may repeat on at-least-once channels (and lose on at-most-once ones)."""
        return self.concurrency + self.mark_every

    def _claim_and_decide(
        self, limit: int | None, stats: DispatchStats
    ) -> tuple[str, list[_Claimed]] | None:
        n = min(limit or self.batch_size, self.batch_size)
        if n <= 0 or not self.channels:
            return None
        owner = f"{self.worker_id}:{uuid.uuid4().hex[:8]}"
        with self.store.begin() as conn:
            claimed = self._claim(conn, n, owner)
            stats.claimed = len(claimed)
            if not claimed:
                return None
            to_send = self._decide(conn, claimed, stats)
        return (owner, to_send) if to_send else None

    def _pipeline(self, stop: threading.Event | None, idle_sleep: float) -> DispatchStats:
        """Rounds with the next claim overlapping the current sends.

        While batch *k* is on the wire, batch *k+1* is claimed and decided (its rules see
        batch *k*'s contacts, reserved when *k* was decided); batch *k* is recorded once its
        sends return. ``stop=None`` (drain) ends when nothing is due and nothing in flight.
        """
        total = DispatchStats()
        sender = ThreadPoolExecutor(1, thread_name_prefix="huitouke-round")
        inflight: tuple[Future[None], DispatchStats] | None = None
        failures = 0
        try:
            while True:
                stats = DispatchStats()
                batch = None
                if stop is None or not stop.is_set():
                    try:
                        batch = self._claim_and_decide(None, stats)
                        failures = 0
                    except Exception:  # a database hiccup must not kill the worker
                        if stop is None:
                            raise
                        failures += 1
                        log.exception("claim failed (%d in a row)", failures)
                        stop.wait(min(30.0, 0.5 * 2**failures))
                if inflight is not None:
                    fut, st = inflight
                    fut.result()
                    total.add(st)
                    inflight = None
                if batch is not None:
                    owner, to_send = batch
                    # before the next claim can look at these rows again
                    self._renew_lease(owner)
                    inflight = (sender.submit(self._send_all, to_send, owner, stats), stats)
                    continue
                total.add(stats)
                if stats.claimed:
                    continue  # everything claimed was delayed or suppressed: look again
                if stop is None or stop.is_set():
                    return total
                stop.wait(idle_sleep)
        finally:
            sender.shutdown(wait=True)

    def _record_with_retry(self, sent: list[_Claimed], owner: str, stats: DispatchStats) -> None:
        # The sends happened: try hard to record them, or the lease expires and they go again.
        if not sent:
            return
        for attempt in range(5):
            try:
                with self.store.begin() as conn:
                    self._record(conn, sent, owner, stats)
                    self._renew_lease(owner, conn)
                return
            except Exception:
                if attempt == 4:
                    raise
                log.exception("recording a round failed; retrying")
                time.sleep(0.2 * 2**attempt)

    def drain(self) -> DispatchStats:
        """Dispatch until nothing is due (tests and ``worker --once``)."""
        return self._pipeline(None, 0.0)

    def run_forever(self, stop_event: threading.Event, idle_sleep: float = 1.0) -> DispatchStats:
        """Dispatch until ``stop_event`` is set; sends in flight are always recorded first."""
        return self._pipeline(stop_event, idle_sleep)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        for ch in self.channels.values():
            ch.close()

    # -- 1. claim and decide ------------------------------------------------------------------
    def _claim(self, conn: Connection, n: int, owner: str) -> list[_Claimed]:
        now = self.clock()
        c = outbox.c
        due = (
            (c.status.in_(("queued", "failed")) & (c.not_before <= now))
            | ((c.status == "sending") & (c.lease_until < now))
        ) & c.channel.in_(sorted(self.channels))
        sub = (
            select(c.message_id)
            .where(due)
            .order_by(c.priority, c.not_before, c.message_id)
            .limit(n)
        )
        if self._pg:
            sub = sub.with_for_update(skip_locked=True)
        est = 0.0
        rates = [self.rate_limits[ch] for ch in self.channels if self.rate_limits.get(ch)]
        if rates:
            est = n / min(rates)
        stmt = (
            update(outbox)
            .where(c.message_id.in_(sub.scalar_subquery()))
            .values(
                # SET expressions see the old row: remember that a dead worker held it, and
                # whether it had started an at-most-once send.
                reason_code=case(
                    ((c.status == "sending") & (c.reason_code == STARTED), STARTED_RECLAIMED),
                    (c.status == "sending", RECLAIMED),
                    else_=c.reason_code,
                ),
                status="sending",
                lease_owner=owner,
                lease_until=now + self.lease + timedelta(seconds=est),
                attempts=c.attempts + 1,
                updated_at=now,
            )
            .returning(*c)
        )
        rows = list(conn.execute(stmt).all())
        rows.sort(key=lambda r: (r.priority, r.not_before, r.message_id))
        return [_Claimed(r) for r in rows]

    def _decide(
        self, conn: Connection, claimed: list[_Claimed], stats: DispatchStats
    ) -> list[_Claimed]:
        now = self.clock()
        customer_ids = sorted({cl.row.customer_id for cl in claimed})
        # The rules count per person (huitouke.identity): the accounts merged into one
        # person share their caps, consent changes and last order, and one lock.
        accounts = person_accounts(conn, customer_ids)
        person_of = {cid: accts[0] for cid, accts in accounts.items()}
        if self._pg:
            keys = sorted({_lock_key(person_of[cid]) for cid in customer_ids})
            conn.execute(
                text(
                    "SELECT count(pg_advisory_xact_lock(k)) FROM "
                    "(SELECT unnest(CAST(:keys AS bigint[])) AS k ORDER BY 1) AS s"
                ),
                {"keys": keys},
            )
        contexts = load_customer_contexts(conn, customer_ids, accounts=accounts)
        every = sorted({a for accts in accounts.values() for a in accts})
        by_account = self._history(conn, every, {cl.row.message_id for cl in claimed}, now)
        history: dict[str, list[Contact]] = defaultdict(list)
        for cid, person in sorted(person_of.items()):
            if person not in history:
                for a in accounts[cid]:
                    history[person].extend(by_account.get(a, ()))
        ids = [cl.row.message_id for cl in claimed]
        # A reclaimed row may hold the dead worker's reservation: it is decided afresh.
        conn.execute(delete(contact_log).where(contact_log.c.message_id.in_(ids)))

        to_send: list[_Claimed] = []
        reserve: list[dict[str, Any]] = []
        delayed: list[dict[str, Any]] = []
        finished: list[dict[str, Any]] = []
        for cl in claimed:
            r = cl.row
            if r.reason_code == STARTED_RECLAIMED and r.channel in self.at_most_once:
                finished.append(
                    self._final(r, "dead", "crash.unknown", now, "worker stopped mid-send")
                )
                stats.dead += 1
                stats.count("crash.unknown")
                continue
            if r.attempts > self.max_attempts:
                finished.append(self._final(r, "dead", "attempts.exhausted", now, r.last_error))
                stats.dead += 1
                stats.count("attempts.exhausted")
                continue
            ctx = contexts.get(r.customer_id) or CustomerContext(r.customer_id)
            planned = PlannedMessage(
                channel=r.channel,
                kind=r.kind,
                planned_at=r.planned_at,
                expires_at=r.expires_at,
                suppress_if_ordered=r.suppress_if_ordered,
                audience=r.audience,
            )
            person = person_of[r.customer_id]
            decision = evaluate(ctx, planned, history[person], now, self.policy)
            cl.decision = decision
            if decision.allowed:
                to_send.append(cl)
                if r.audience != "customer":
                    continue  # staff notices do not contact the customer: no cap is spent
                history[person].append(Contact(r.channel, r.kind, now))
                reserve.append(
                    {
                        "message_id": r.message_id,
                        "customer_id": r.customer_id,
                        "channel": r.channel,
                        "kind": r.kind,
                        "contacted_at": now,
                    }
                )
            elif decision.deliver_after is not None:
                delayed.append(
                    {
                        "b_id": r.message_id,
                        "b_not_before": decision.deliver_after,
                        "b_reason": decision.reason_code,
                        "b_attempts": max(0, r.attempts - 1),
                        "b_now": now,
                    }
                )
                stats.delayed += 1
                stats.count(decision.reason_code)
            else:
                finished.append(self._final(r, "suppressed", decision.reason_code, now, None))
                stats.suppressed += 1
                stats.count(decision.reason_code)
        if reserve:
            conn.execute(insert(contact_log), reserve)
        if delayed:
            conn.execute(
                update(outbox)
                .where(outbox.c.message_id == bindparam("b_id"))
                .values(
                    status="queued",
                    not_before=bindparam("b_not_before"),
                    reason_code=bindparam("b_reason"),
                    attempts=bindparam("b_attempts"),
                    lease_owner=None,
                    lease_until=None,
                    updated_at=bindparam("b_now"),
                ),
                delayed,
            )
        if finished:
            self._write_final(conn, finished)
        return to_send

    def _history(
        self, conn: Connection, customer_ids: list[str], exclude: set[str], now: datetime
    ) -> dict[str, list[Contact]]:
        hist: dict[str, list[Contact]] = defaultdict(list)
        window = self.policy.longest_window
        for i in range(0, len(customer_ids), 500):
            chunk = customer_ids[i : i + 500]
            if window > timedelta(0):
                for cid, ch, kind, at, mid in conn.execute(
                    select(
                        contact_log.c.customer_id,
                        contact_log.c.channel,
                        contact_log.c.kind,
                        contact_log.c.contacted_at,
                        contact_log.c.message_id,
                    ).where(
                        contact_log.c.customer_id.in_(chunk),
                        contact_log.c.contacted_at > now - window,
                    )
                ):
                    if mid not in exclude:
                        hist[cid].append(Contact(ch, kind, at))
            for cid, ch, at, mid in conn.execute(
                select(
                    outbox.c.customer_id, outbox.c.channel, outbox.c.not_before, outbox.c.message_id
                ).where(
                    outbox.c.customer_id.in_(chunk),
                    outbox.c.kind == "transactional",
                    outbox.c.status.in_(("queued", "failed")),
                    outbox.c.not_before <= now,
                )
            ):
                if mid not in exclude:
                    hist[cid].append(Contact(ch, "transactional", at, pending=True))
        return hist

    @staticmethod
    def _final(
        r: Any, status: str, reason: str, now: datetime, error: str | None
    ) -> dict[str, Any]:
        return {
            "b_id": r.message_id,
            "b_status": status,
            "b_reason": reason,
            "b_error": error,
            "b_now": now,
        }

    @staticmethod
    def _write_final(conn: Connection, rows: list[dict[str, Any]]) -> None:
        conn.execute(
            update(outbox)
            .where(outbox.c.message_id == bindparam("b_id"))
            .values(
                status=bindparam("b_status"),
                reason_code=bindparam("b_reason"),
                last_error=bindparam("b_error"),
                lease_owner=None,
                lease_until=None,
                updated_at=bindparam("b_now"),
            ),
            rows,
        )

    # -- 2. send ------------------------------------------------------------------------------
    def _send_one(self, cl: _Claimed) -> None:
        r = cl.row
        bucket = self.buckets.get(r.channel)
        if bucket is not None:
            bucket.acquire()
        msg = OutgoingMessage(
            message_id=r.message_id,
            customer_id=r.customer_id,
            channel=r.channel,
            kind=r.kind,
            recipient=r.recipient,
            rendered=dict(r.rendered or {}),
            payload=dict(r.payload or {}),
            journey_id=r.journey_id,
            step_id=r.step_id,
            campaign_id=r.campaign_id,
            attempt=r.attempts,
        )
        try:
            cl.result = self.channels[r.channel].send(msg)
        except ChannelError as exc:
            cl.error = exc
        except Exception as exc:  # a channel bug is a failed send, not a dead worker
            log.exception("channel %s raised on %s", r.channel, r.message_id)
            cl.error = ChannelError(f"{type(exc).__name__}: {exc}", code="channel.crash")

    def _send_all(self, to_send: list[_Claimed], owner: str, stats: DispatchStats) -> None:
        """Send ``to_send`` and record each answer as it arrives (see the module docstring)."""
        writer = _AckWriter(self, owner, stats)
        try:
            later = [cl for cl in to_send if cl.row.channel not in self.at_most_once]
            first = [cl for cl in to_send if cl.row.channel in self.at_most_once]
            if self.concurrency == 1:
                for cl in later:
                    self._send_and_ack(cl, writer)
                for cl in first:
                    self._mark_started([cl], owner)
                    self._send_and_ack(cl, writer)
                return
            if self._pool is None:
                self._pool = ThreadPoolExecutor(
                    self.concurrency, thread_name_prefix="huitouke-send"
                )
            pool = self._pool
            futures = [pool.submit(self._send_and_ack, cl, writer) for cl in later]
            # At most once: commit "started" for a group no larger than what can be on the
            # wire, send it, and only then start the next group — a crash loses at most that.
            for i in range(0, len(first), self.concurrency):
                group = first[i : i + self.concurrency]
                self._mark_started(group, owner)
                done = [pool.submit(self._send_and_ack, cl, writer) for cl in group]
                wait(done)
                futures.extend(done)
                for f in done:
                    f.result()
            wait(futures)
            for f in futures:
                f.result()  # a BaseException in a send (a simulated crash) stops the round
        finally:
            try:
                writer.close()
            finally:
                self._renewed.pop(owner, None)

    def _send_and_ack(self, cl: _Claimed, writer: _AckWriter) -> None:
        writer.window.acquire()
        try:
            self._send_one(cl)
        except BaseException:
            writer.window.release()
            raise
        writer.put(cl)

    def _mark_started(self, group: list[_Claimed], owner: str) -> None:
        now = self.clock()
        with self.store.begin() as conn:
            conn.execute(
                update(outbox)
                .where(
                    (outbox.c.message_id == bindparam("b_id"))
                    & (outbox.c.lease_owner == bindparam("b_owner"))
                )
                .values(reason_code=STARTED, updated_at=bindparam("b_now")),
                [{"b_id": cl.row.message_id, "b_owner": owner, "b_now": now} for cl in group],
            )

    # -- 3. record ----------------------------------------------------------------------------
    def _backoff(self, attempts: int) -> timedelta:
        raw = min(self.backoff_cap, self.backoff_base * 2 ** max(0, attempts - 1))
        return timedelta(seconds=raw * self.rng.uniform(0.5, 1.0))

    def _record(
        self, conn: Connection, done: list[_Claimed], owner: str, stats: DispatchStats
    ) -> None:
        now = self.clock()
        sent: list[dict[str, Any]] = []
        receipts: list[dict[str, Any]] = []
        retry: list[dict[str, Any]] = []
        dead: list[dict[str, Any]] = []
        unreserve: list[str] = []
        for cl in done:
            r = cl.row
            if cl.result is not None:
                sent.append(
                    {
                        "b_id": r.message_id,
                        "b_owner": owner,
                        "b_pid": cl.result.provider_message_id,
                        "b_now": now,
                    }
                )
                receipts.append(
                    {
                        "message_id": r.message_id,
                        "channel": r.channel,
                        "provider": cl.result.provider,
                        "provider_message_id": cl.result.provider_message_id,
                        "status": "accepted"
                        if cl.result.status not in ("delivered", "failed")
                        else cl.result.status,
                        "detail": cl.result.detail,
                        "received_at": now,
                    }
                )
                continue
            err = cl.error or ChannelError("no result", code="channel.crash")
            unreserve.append(r.message_id)
            if isinstance(err, PermanentSendError) or r.attempts >= self.max_attempts:
                reason = err.code if isinstance(err, PermanentSendError) else "attempts.exhausted"
                dead.append(
                    {
                        "b_id": r.message_id,
                        "b_owner": owner,
                        "b_reason": reason,
                        "b_error": str(err)[:2000],
                        "b_now": now,
                    }
                )
                stats.dead += 1
                stats.count(reason)
            else:
                wait = self._backoff(r.attempts)
                if err.retry_after is not None:
                    wait = max(wait, timedelta(seconds=err.retry_after))
                retry.append(
                    {
                        "b_id": r.message_id,
                        "b_owner": owner,
                        "b_error": f"[{err.code}] {err}"[:2000],
                        "b_not_before": now + wait,
                        "b_now": now,
                    }
                )
                stats.failed += 1
                stats.count(err.code)
        fenced = (outbox.c.message_id == bindparam("b_id")) & (
            outbox.c.lease_owner == bindparam("b_owner")
        )
        if sent:
            res = conn.execute(
                update(outbox)
                .where(fenced & (outbox.c.status == "sending"))
                .values(
                    status="sent",
                    sent_at=bindparam("b_now"),
                    provider_message_id=bindparam("b_pid"),
                    reason_code=None,
                    last_error=None,
                    lease_owner=None,
                    lease_until=None,
                    updated_at=bindparam("b_now"),
                ),
                sent,
            )
            marked = res.rowcount if res.rowcount is not None and res.rowcount >= 0 else len(sent)
            stats.sent += marked
            stats.lost_lease += len(sent) - marked
            if len(sent) != marked:
                log.warning("%d sends lost their lease to another worker", len(sent) - marked)
            conn.execute(insert(delivery_receipts), receipts)
        if retry:
            conn.execute(
                update(outbox)
                .where(fenced)
                .values(
                    status="failed",
                    not_before=bindparam("b_not_before"),
                    last_error=bindparam("b_error"),
                    reason_code=None,
                    lease_owner=None,
                    lease_until=None,
                    updated_at=bindparam("b_now"),
                ),
                retry,
            )
        if dead:
            conn.execute(
                update(outbox)
                .where(fenced)
                .values(
                    status="dead",
                    reason_code=bindparam("b_reason"),
                    last_error=bindparam("b_error"),
                    lease_owner=None,
                    lease_until=None,
                    updated_at=bindparam("b_now"),
                ),
                dead,
            )
        if unreserve:
            conn.execute(delete(contact_log).where(contact_log.c.message_id.in_(unreserve)))


class _AckWriter:
    """Records provider answers as they arrive: a commit every ``mark_every`` answers or
    ``mark_seconds`` after the oldest unrecorded one. ``window`` admits a send only while
    fewer than ``concurrency + mark_every`` messages are on the wire or unrecorded."""

    def __init__(self, dispatcher: Dispatcher, owner: str, stats: DispatchStats) -> None:
        self.d = dispatcher
        self.owner = owner
        self.stats = stats
        self.window = threading.Semaphore(dispatcher.unrecorded_bound)
        self.queue: queue.SimpleQueue[_Claimed | None] = queue.SimpleQueue()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="huitouke-marks", daemon=True)
        self.thread.start()

    def put(self, cl: _Claimed) -> None:
        self.queue.put(cl)

    def close(self) -> None:
        self.queue.put(None)
        self.thread.join()
        if self.error is not None:
            raise self.error

    def _run(self) -> None:
        closing = False
        while not closing:
            first = self.queue.get()
            if first is None:
                return
            batch = [first]
            deadline = time.monotonic() + self.d.mark_seconds
            while len(batch) < self.d.mark_every:
                left = deadline - time.monotonic()
                try:
                    item = self.queue.get(timeout=left) if left > 0 else self.queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    closing = True
                    break
                batch.append(item)
            try:
                if self.error is None:
                    self.d._record_with_retry(batch, self.owner, self.stats)
            except BaseException as exc:  # keep admitting sends so the round can end
                self.error = exc
            finally:
                for _ in batch:
                    self.window.release()
