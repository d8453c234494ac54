"""Rules of contact: "贴心而不打扰,及时而不频繁" — considerate, not disturbing; timely, not frequent.

A pure module (no database, no clock, no network): :func:`evaluate` decides for one message
and one customer, given what was already sent to them (``history``) and the instant ``now``,
whether the message may leave now, later, or not at all. The dispatcher calls it at send
time; the journeys dry run calls it to explain what would be sent and why not.

Rules, in the order they are checked (the first that refuses gives the reason code):

1. ``expired`` — the message's ``expires_at`` has passed (or a delay would pass it).
2. ``unsubscribed`` — the customer unsubscribed from this channel or from all channels.
   An unsubscribe wins over any consent flag.
3. ``consent.missing`` — no consent recorded for the channel.
4. ``suppressed.ordered`` — a marketing message whose step asks for it is dropped when the
   customer ordered after the message was planned.
5. ``transactional_first`` — a marketing message waits while a service notice to the same
   customer on the same channel is due ("care first, marketing second").
6. ``cap.channel`` / ``cap.global`` — sliding-window frequency caps per customer, on one
   channel or across all channels (e.g. at most 1 marketing SMS per 3 days and 4 per 30
   days). Caps name the kind they count, so service notices are not capped by marketing
   caps. A capped message is dropped, not delayed.
7. ``quiet_hours`` — local time in the customer's zone (the merchant's zone when unknown)
   is inside quiet hours (default 21:00–08:00): the message is *delayed* to the end of the
   quiet hours, not dropped — unless that is after it expires.

Messages to staff (``audience="staff"``, e.g. a call-back list posted to a WeCom group) do not
contact the customer and are only checked for expiry.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import TYPE_CHECKING, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from huitouke.errors import InputError
from huitouke.i18n import t
from huitouke.messaging import messages as _messages  # noqa: F401  (registers texts)

if TYPE_CHECKING:
    from huitouke.settings import Settings

__all__ = [
    "REASON_CODES",
    "Cap",
    "Contact",
    "ContactPolicy",
    "CustomerContext",
    "Decision",
    "PlannedMessage",
    "evaluate",
    "parse_caps",
    "quiet_hours_end",
]

Kind = Literal["transactional", "marketing"]
Audience = Literal["customer", "staff"]

#: Every reason code :func:`evaluate` can give, each with zh/en text under ``reason.<code>``.
REASON_CODES = (
    "ok",
    "expired",
    "unsubscribed",
    "consent.missing",
    "suppressed.ordered",
    "transactional_first",
    "cap.channel",
    "cap.global",
    "quiet_hours",
)

ALL_CHANNELS = "*"
#: The channels a message can be planned on (the logical names of the channel ports;
#: ``console`` is the dry-run channel that writes each message as a JSON line).
CHANNELS: tuple[str, ...] = (
    "sms", "email", "webhook", "wecom", "wecom_contact", "dingtalk", "console",
)  # fmt: skip
#: How long a marketing message waits behind a due service notice before it is re-checked.
TRANSACTIONAL_FIRST_DELAY = timedelta(minutes=1)


@dataclass(frozen=True)
class Cap:
    """At most ``count`` messages of ``kind`` on ``channel`` within any sliding ``window``.

    ``kind`` and ``channel`` may be ``"*"`` (every kind / every channel: a global cap).
    """

    kind: str
    channel: str
    count: int
    window: timedelta

    @property
    def reason_code(self) -> str:
        return "cap.global" if self.channel == ALL_CHANNELS else "cap.channel"

    def counts(self, contact: Contact) -> bool:
        return (self.kind in (ALL_CHANNELS, contact.kind)) and (
            self.channel in (ALL_CHANNELS, contact.channel)
        )

    def applies_to(self, message: PlannedMessage) -> bool:
        return (self.kind in (ALL_CHANNELS, message.kind)) and (
            self.channel in (ALL_CHANNELS, message.channel)
        )

    def __str__(self) -> str:
        hours = self.window.total_seconds() / 3600
        span = f"{int(hours // 24)}d" if hours % 24 == 0 else f"{int(hours)}h"
        return f"{self.kind}:{self.channel}:{self.count}/{span}"


_CAP_RE = re.compile(r"^\s*([\w*]+)\s*:\s*([\w*-]+)\s*:\s*(\d+)\s*/\s*(\d+)\s*([dh])\s*$")


def parse_caps(text: str) -> tuple[Cap, ...]:
    """Parse ``"marketing:sms:1/3d,marketing:*:3/7d"`` into caps (empty text: no caps)."""
    caps = []
    for i, part in enumerate(p for p in text.split(",") if p.strip()):
        m = _CAP_RE.match(part)
        if not m:
            raise InputError(
                f"frequency cap #{i + 1} {part.strip()!r} is not kind:channel:count/window "
                "(e.g. marketing:sms:1/3d)",
                code="input.bad_cap",
                message_zh=f"第 {i + 1} 条频次上限 {part.strip()!r} 格式应为 类型:渠道:次数/窗口(如 marketing:sms:1/3d)",
                details={"setting": "contact_caps", "cap": part.strip()},
            )
        kind, channel, count, n, unit = m.groups()
        if kind not in ("marketing", "transactional", ALL_CHANNELS):
            raise InputError(
                f"frequency cap {part.strip()!r}: kind must be marketing, transactional or *",
                code="input.bad_cap",
                message_zh=f"频次上限 {part.strip()!r}:类型应为 marketing、transactional 或 *",
                details={"setting": "contact_caps", "cap": part.strip()},
            )
        window = timedelta(days=int(n)) if unit == "d" else timedelta(hours=int(n))
        if window <= timedelta(0):
            raise InputError(
                f"frequency cap {part.strip()!r}: the window must be positive",
                code="input.bad_cap",
                message_zh=f"频次上限 {part.strip()!r}:时间窗口必须大于 0",
            )
        caps.append(Cap(kind=kind, channel=channel, count=int(count), window=window))
    return tuple(caps)


def _parse_hhmm(value: str, name: str) -> time:
    try:
        return time.fromisoformat(value.strip())
    except ValueError as exc:
        raise InputError(
            f"{name} {value!r} is not a time of day HH:MM",
            code="input.bad_time",
            message_zh=f"{name} {value!r} 不是 HH:MM 格式的时刻",
            details={"setting": name},
        ) from exc


@dataclass(frozen=True)
class ContactPolicy:
    """The merchant's contact rules. Equal quiet start and end mean no quiet hours."""

    caps: tuple[Cap, ...] = ()
    quiet_start: time = time(21, 0)
    quiet_end: time = time(8, 0)
    #: the merchant's zone (``HUITOUKE_TIMEZONE``), for customers without their own
    default_zone: str = field(kw_only=True)

    @classmethod
    def from_settings(cls, settings: Settings) -> ContactPolicy:
        return cls(
            caps=parse_caps(settings.contact_caps),
            quiet_start=_parse_hhmm(settings.quiet_hours_start, "quiet_hours_start"),
            quiet_end=_parse_hhmm(settings.quiet_hours_end, "quiet_hours_end"),
            default_zone=settings.timezone,
        )

    @property
    def longest_window(self) -> timedelta:
        return max((c.window for c in self.caps), default=timedelta(0))


@dataclass(frozen=True)
class CustomerContext:
    """What the rules need to know about one customer.

    ``consent`` is the effective consent per channel; ``unsubscribed`` the channels the
    customer left (``"*"``: all). ``timezone`` is an IANA name or None (merchant's zone).
    """

    customer_id: str
    consent: Mapping[str, bool] = field(default_factory=dict)
    unsubscribed: frozenset[str] = frozenset()
    timezone: str | None = None
    last_order_at: datetime | None = None

    def is_unsubscribed(self, channel: str) -> bool:
        return ALL_CHANNELS in self.unsubscribed or channel in self.unsubscribed

    def allows(self, channel: str) -> bool:
        """May a message reach the customer on ``channel`` (unsubscribe, then consent)?"""
        return not self.is_unsubscribed(channel) and bool(self.consent.get(channel, False))


@dataclass(frozen=True)
class PlannedMessage:
    """A message as the rules see it (the outbox row carries more)."""

    channel: str
    kind: Kind = "marketing"
    planned_at: datetime | None = None
    expires_at: datetime | None = None
    suppress_if_ordered: bool = False
    audience: Audience = "customer"


@dataclass(frozen=True)
class Contact:
    """A message sent to the customer at ``at`` (``pending``: due but not sent yet)."""

    channel: str
    kind: str
    at: datetime
    pending: bool = False


@dataclass(frozen=True)
class Decision:
    """``allowed``; else ``deliver_after`` set means *delay until then*, None means *drop*."""

    allowed: bool
    reason_code: str
    deliver_after: datetime | None = None

    @property
    def delayed(self) -> bool:
        return not self.allowed and self.deliver_after is not None

    def reason(self, lang: str = "zh") -> str:
        return t(f"reason.{self.reason_code}", lang)


OK = Decision(True, "ok")


def _zone(name: str | None, default: str) -> ZoneInfo:
    if name:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    return ZoneInfo(default)


def _in_quiet(local: time, start: time, end: time) -> bool:
    if start == end:
        return False
    if start < end:
        return start <= local < end
    return local >= start or local < end


def quiet_hours_end(now: datetime, zone: ZoneInfo, start: time, end: time) -> datetime | None:
    """The first instant at or after ``now`` outside quiet hours, or None if ``now`` is outside.

    Computed on the wall clock of ``zone``; around daylight-saving changes the candidate is
    re-checked on the wall clock, so the answer is never itself inside quiet hours.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    candidate = now.astimezone(UTC)
    for _ in range(4):
        local = candidate.astimezone(zone)
        if not _in_quiet(local.timetz().replace(tzinfo=None), start, end):
            return None if candidate == now.astimezone(UTC) else candidate
        end_date = local.date()
        if start > end and local.time() >= start:
            end_date += timedelta(days=1)
        nxt = datetime.combine(end_date, end, tzinfo=zone).astimezone(UTC)
        # A wall time that does not exist (DST gap) maps to an instant just after the gap.
        candidate = max(nxt, candidate + timedelta(seconds=1))
    return candidate


def evaluate(
    customer: CustomerContext,
    message: PlannedMessage,
    history: Iterable[Contact],
    now: datetime,
    policy: ContactPolicy,
) -> Decision:
    """Decide whether ``message`` may be sent to ``customer`` at ``now`` (see module doc)."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if message.expires_at is not None and now >= message.expires_at:
        return Decision(False, "expired")
    if message.audience == "staff":
        return OK
    channel = message.channel
    if customer.is_unsubscribed(channel):
        return Decision(False, "unsubscribed")
    if not customer.consent.get(channel, False):
        return Decision(False, "consent.missing")
    is_marketing = message.kind == "marketing"
    if (
        is_marketing
        and message.suppress_if_ordered
        and message.planned_at is not None
        and customer.last_order_at is not None
        and customer.last_order_at > message.planned_at
    ):
        return Decision(False, "suppressed.ordered")
    contacts: Sequence[Contact] = list(history)
    if is_marketing and any(
        c.pending and c.kind == "transactional" and c.channel == channel and c.at <= now
        for c in contacts
    ):
        return _delay(now + TRANSACTIONAL_FIRST_DELAY, "transactional_first", message)
    sent = [c for c in contacts if not c.pending]
    for cap in policy.caps:
        if not cap.applies_to(message):
            continue
        since = now - cap.window
        used = sum(1 for c in sent if c.at > since and cap.counts(c))
        if used >= cap.count:
            return Decision(False, cap.reason_code)
    zone = _zone(customer.timezone, policy.default_zone)
    until = quiet_hours_end(now, zone, policy.quiet_start, policy.quiet_end)
    if until is not None:
        return _delay(until, "quiet_hours", message)
    return OK


def _delay(until: datetime, reason: str, message: PlannedMessage) -> Decision:
    if message.expires_at is not None and until >= message.expires_at:
        return Decision(False, "expired")
    return Decision(False, reason, until)
