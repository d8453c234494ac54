"""When a job is due: ``every 15s`` (a fixed interval) or ``cron M H DOM MON DOW`` (wall-clock
times in the merchant's zone), and the *slot* a run belongs to.

A slot is the instant a run was scheduled for. Every scheduler process computes the same
slots from the same schedule — intervals are counted from the Unix epoch, cron times are
wall-clock times of the merchant's zone — so ``(job, slot)`` names one run whichever
process makes it, and the run history can refuse a second one.

The cron arithmetic is APScheduler's (``CronTrigger``, which walks the fields in the zone
and knows its daylight-saving gaps); what APScheduler does not decide is kept here, on
purpose and tested:

- **Catch-up**: :meth:`Schedule.latest` is the last slot at or before an instant. A
  scheduler that was down for several slots runs the latest one only, once.
- **Daylight saving** (the merchant's zone may have it): a wall-clock time that does not
  exist on the spring-forward day (02:30 in New York on 14 March 2027) is run once, at the
  first instant after the gap (03:30 local — what the zone's rules give ``fold=0``); a
  wall-clock time that happens twice on the fall-back day (01:30 on 7 November 2027) is run
  once, at its first occurrence: the second one, with the same wall-clock time as the slot
  before it, is not a slot.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from huitouke.errors import InputError

__all__ = ["Schedule", "parse_schedule"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_EVERY = re.compile(r"^every\s+(\d+(?:\.\d+)?)\s*([smhd])$")


def _bad(spec: str, where: str, why: str, why_zh: str) -> InputError:
    return InputError(
        f"{where}: schedule {spec!r} {why} (use e.g. 'every 15s', 'cron 30 2 * * *' or 'off')",
        code="scheduler.bad_schedule",
        message_zh=f"{where}:计划 {spec!r} {why_zh}(例如 'every 15s'、'cron 30 2 * * *' 或 'off')",
        details={"field": where, "schedule": spec},
    )


@dataclass(frozen=True)
class Schedule:
    """A parsed schedule. ``kind`` is ``every``, ``cron`` or ``off``."""

    spec: str
    kind: str
    #: the merchant's zone: cron times are its wall-clock times
    zone: str
    seconds: float = 0.0
    cron: str = ""
    _trigger: Any = field(default=None, compare=False, repr=False)

    # -- slots -------------------------------------------------------------------------------
    def next_after(self, t: datetime) -> datetime | None:
        """The first slot strictly after ``t`` (UTC), or None when off."""
        if self.kind == "off":
            return None
        if self.kind == "every":
            k = math.floor((t - _EPOCH).total_seconds() / self.seconds) + 1
            return _EPOCH + timedelta(seconds=k * self.seconds)
        return self._cron_after(t)

    def latest(self, now: datetime) -> datetime | None:
        """The last slot at or before ``now`` (UTC), or None when off (or never)."""
        if self.kind == "off":
            return None
        if self.kind == "every":
            k = math.floor((now - _EPOCH).total_seconds() / self.seconds)
            return _EPOCH + timedelta(seconds=k * self.seconds)
        # Widen a window back from now until it holds a slot, then walk forward to the last.
        span = timedelta(minutes=2)
        while span < timedelta(days=3 * 366):
            s = self._cron_after(now - span)
            if s is not None and s <= now:
                while True:
                    n = self._cron_after(s)
                    if n is None or n > now:
                        return s
                    s = n
            span *= 2
        return None

    def _cron_after(self, t: datetime) -> datetime | None:
        """APScheduler's first fire time after ``t``, never the second pass of a wall-clock
        time that a fall-back hour repeats."""
        zone = ZoneInfo(self.zone)
        # compared in UTC: aware datetimes of one zone compare by wall clock, fold ignored
        cur = t.astimezone(UTC)
        for _ in range(10_000):
            start = (cur + timedelta(microseconds=1)).astimezone(zone)
            nxt = self._trigger.get_next_fire_time(None, start)
            if nxt is None:
                return None
            nxt_utc = nxt.astimezone(UTC)
            if nxt_utc > t and not _repeated(nxt_utc, zone):
                return nxt_utc
            cur = max(nxt_utc, cur + timedelta(microseconds=1))
        return None  # pragma: no cover - a cron expression that walks in place

    def describe(self) -> str:
        return self.spec


def _repeated(instant: datetime, zone: ZoneInfo) -> bool:
    """Is ``instant`` the second pass of a wall-clock time (the hour a fall-back repeats)?"""
    local = instant.astimezone(zone)
    return local.fold == 1 and local.replace(fold=0).utcoffset() != local.utcoffset()


def parse_schedule(spec: str, zone: str, *, where: str = "schedule") -> Schedule:
    """``every N{s,m,h,d}``, ``cron M H DOM MON DOW`` (in ``zone``) or ``off``."""
    text = " ".join(spec.strip().split())
    if text == "off":
        return Schedule(spec=text, kind="off", zone=zone)
    m = _EVERY.match(text)
    if m:
        seconds = float(m.group(1)) * _UNITS[m.group(2)]
        if seconds < 0.05:
            raise _bad(spec, where, "is too short (at least 0.05s)", "间隔太短(至少 0.05 秒)")
        return Schedule(spec=text, kind="every", seconds=seconds, zone=zone)
    if text.startswith("cron "):
        expr = text[5:]
        if len(expr.split()) != 5:
            raise _bad(spec, where, "needs 5 cron fields", "需要 5 个 cron 字段")
        from apscheduler.triggers.cron import CronTrigger

        try:
            trigger = CronTrigger.from_crontab(expr, timezone=ZoneInfo(zone))
        except ValueError as exc:
            raise _bad(
                spec, where, f"is not a cron expression ({exc})", "不是有效的 cron 表达式"
            ) from exc
        return Schedule(spec=text, kind="cron", cron=expr, zone=zone, _trigger=trigger)
    raise _bad(spec, where, "is not understood", "无法识别")
