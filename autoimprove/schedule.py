"""When rounds start: the policy's `schedule:` as an APScheduler trigger, and trigger slots.

A *slot* is a trigger time (UTC, ISO 8601). A scheduled round is created for its slot with a
unique key, so firing the same slot twice (a restart, a retry) finds the round instead of
making a second one. Interval schedules are anchored at the Unix epoch (`every: 6h` fires at
00:00, 06:00, ... UTC), so slots are the same across restarts.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from autoimprove.policy import ScheduleSection

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
DEFAULT_EVERY = 6 * 3600.0


def make_trigger(schedule: ScheduleSection) -> BaseTrigger:
    if schedule.cron is not None:
        return CronTrigger.from_crontab(schedule.cron, timezone=UTC)
    every = schedule.every if schedule.every is not None else DEFAULT_EVERY
    return IntervalTrigger(seconds=every, start_date=EPOCH, timezone=UTC)


def slot_key(when: datetime) -> str:
    return when.astimezone(UTC).isoformat(timespec="seconds")


def latest_slot(trigger: BaseTrigger, now: datetime, grace: float) -> datetime | None:
    """The last trigger time in (now - grace, now], or None when none falls in that window."""
    start = now - timedelta(seconds=grace)
    fire = trigger.get_next_fire_time(None, start)
    last = None
    while fire is not None and fire <= now:
        last = fire
        fire = trigger.get_next_fire_time(fire, fire + timedelta(microseconds=1))
    return last


def catch_up_slot(
    trigger: BaseTrigger, now: datetime, grace: float, last_slot: str | None, any_rounds: bool
) -> str | None:
    """The slot to run at once on start, if any.

    A trigger time missed while the daemon was down (within the grace window) runs one round
    now; several missed times coalesce into that one. A workspace with no rounds at all starts
    its first round at once instead of waiting for the first trigger.
    """
    missed = latest_slot(trigger, now, grace)
    if missed is not None and (last_slot is None or slot_key(missed) > last_slot):
        return slot_key(missed)
    if not any_rounds:
        return slot_key(now)
    return None
