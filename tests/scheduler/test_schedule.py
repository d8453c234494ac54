"""Slots: fixed intervals from the epoch, cron wall-clock times in the merchant's zone,
the latest slot for the catch-up, daylight saving, and schedules that do not parse."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from huitouke.app.scheduler.registry import Registry
from huitouke.app.scheduler.schedule import parse_schedule
from huitouke.errors import HuitoukeError
from huitouke.settings import Settings

NY = "America/New_York"


def utc(*a: int) -> datetime:
    return datetime(*a, tzinfo=UTC)


def slots(spec: str, zone: str, start: datetime, end: datetime) -> list[datetime]:
    s = parse_schedule(spec, zone)
    out, t = [], start
    while True:
        n = s.next_after(t)
        if n is None or n > end:
            return out
        out.append(n)
        t = n


def test_intervals_count_from_the_epoch_so_every_process_agrees() -> None:
    s = parse_schedule("every 15s", "Asia/Shanghai")
    assert s.latest(utc(2027, 1, 1, 0, 0, 14)) == utc(2027, 1, 1)
    assert s.latest(utc(2027, 1, 1, 0, 0, 15)) == utc(2027, 1, 1, 0, 0, 15)
    assert s.next_after(utc(2027, 1, 1, 0, 0, 15)) == utc(2027, 1, 1, 0, 0, 30)
    assert parse_schedule("every 2m", "UTC").latest(utc(2027, 1, 1, 0, 3)) == utc(2027, 1, 1, 0, 2)


def test_cron_times_are_wall_clock_times_of_the_merchants_zone() -> None:
    s = parse_schedule("cron 5 0 * * *", "Asia/Shanghai")  # 00:05 in Shanghai = 16:05 UTC
    assert s.next_after(utc(2026, 12, 6, 15)) == utc(2026, 12, 6, 16, 5)
    assert s.latest(utc(2026, 12, 6, 15)) == utc(2026, 12, 5, 16, 5)
    weekly = parse_schedule("cron 0 3 * * mon", "Asia/Shanghai")
    assert weekly.latest(utc(2026, 12, 6, 15)) == utc(2026, 11, 29, 19)  # Mon 30 Nov 03:00 +08


def test_a_0230_job_runs_once_on_the_spring_forward_day() -> None:
    # 14 March 2027 in New York: 02:00 EST jumps to 03:00 EDT, so 02:30 does not exist
    got = slots("cron 30 2 * * *", NY, utc(2027, 3, 12, 12), utc(2027, 3, 16, 12))
    local = [g.astimezone(ZoneInfo(NY)) for g in got]
    assert [loc.date().isoformat() for loc in local] == [
        "2027-03-13",
        "2027-03-14",
        "2027-03-15",
        "2027-03-16",
    ]
    assert got[1] == utc(2027, 3, 14, 7, 30)  # once, at 03:30 EDT, the first instant after
    assert local[1].strftime("%H:%M") == "03:30"
    assert [loc.strftime("%H:%M") for loc in (local[0], local[2], local[3])] == ["02:30"] * 3


def test_a_0130_job_runs_once_on_the_fall_back_day() -> None:
    # 7 November 2027: 01:00–02:00 happens twice (EDT, then EST); APScheduler alone fires both
    got = slots("cron 30 1 * * *", NY, utc(2027, 11, 6, 12), utc(2027, 11, 8, 12))
    assert got == [utc(2027, 11, 7, 5, 30), utc(2027, 11, 8, 6, 30)]
    s = parse_schedule("cron 30 1 * * *", NY)
    # between the two passes, and after the second, the latest slot is the first pass
    assert s.latest(utc(2027, 11, 7, 6, 0)) == utc(2027, 11, 7, 5, 30)
    assert s.latest(utc(2027, 11, 7, 6, 45)) == utc(2027, 11, 7, 5, 30)


def test_the_latest_slot_after_downtime_is_one_slot() -> None:
    s = parse_schedule("cron 0 * * * *", "Asia/Shanghai")
    now = utc(2027, 1, 1, 5, 42)
    assert s.latest(now) == utc(2027, 1, 1, 5)
    assert s.latest(now - timedelta(hours=3)) == utc(2027, 1, 1, 2)
    yearly = parse_schedule("cron 0 0 1 1 *", "Asia/Shanghai")
    assert yearly.latest(utc(2027, 6, 1)) == utc(2026, 12, 31, 16)


@pytest.mark.parametrize(
    "spec", ["every", "every 0s", "every 5 weeks", "cron 1 2 3", "cron 99 * * * *", "daily"]
)
def test_a_bad_schedule_is_refused_naming_it(spec: str) -> None:
    with pytest.raises(HuitoukeError) as e:
        parse_schedule(spec, "UTC", where="outbox")
    assert e.value.code == "scheduler.bad_schedule"
    assert "outbox" in e.value.message and repr(spec) in e.value.message
    assert "计划" in e.value.message_zh


def test_settings_override_schedules_and_refuse_unknown_jobs() -> None:
    reg = Registry.load(Settings(scheduler_schedules="outbox=every 5s; journeys=off"))
    assert reg.schedules["outbox"].spec == "every 5s"
    assert "journeys" not in [j.name for j, _ in reg.active()]
    assert reg.schedules["loyalty.expiry"].spec == "cron 5 0 * * *"
    for bad in ("nope=every 1s", "outbox", "outbox=every 1 fortnight"):
        with pytest.raises(HuitoukeError) as e:
            Registry.load(Settings(scheduler_schedules=bad))
        assert e.value.code == "scheduler.bad_schedule"
        assert "HUITOUKE_SCHEDULER_SCHEDULES" in e.value.message


def test_apscheduler_alone_would_fire_both_passes_of_a_fall_back_hour() -> None:
    # why schedule.py filters the second pass: APScheduler's CronTrigger returns it
    from apscheduler.triggers.cron import CronTrigger

    ny = ZoneInfo(NY)
    trigger = CronTrigger.from_crontab("30 1 * * *", timezone=ny)
    after_first = utc(2027, 11, 7, 5, 30, 0, 1).astimezone(ny)
    assert trigger.get_next_fire_time(None, after_first).astimezone(UTC) == utc(2027, 11, 7, 6, 30)
    ours = parse_schedule("cron 30 1 * * *", NY)
    assert ours.next_after(utc(2027, 11, 7, 5, 30)) == utc(2027, 11, 8, 6, 30)
