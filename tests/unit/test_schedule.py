"""Trigger slots: which missed trigger time runs on start, and that misses coalesce."""

from datetime import UTC, datetime, timedelta

import pytest

from autoimprove.policy import ScheduleSection
from autoimprove.schedule import catch_up_slot, latest_slot, make_trigger, slot_key

NOW = datetime(2026, 11, 26, 7, 30, 5, tzinfo=UTC)


def test_interval_is_anchored_at_the_epoch():
    trigger = make_trigger(ScheduleSection(every="6h"))
    assert latest_slot(trigger, NOW, grace=6 * 3600) == datetime(2026, 11, 26, 6, tzinfo=UTC)
    assert trigger.get_next_fire_time(None, NOW) == datetime(2026, 11, 26, 12, tzinfo=UTC)


def test_default_schedule_is_every_six_hours():
    trigger = make_trigger(ScheduleSection())
    assert latest_slot(trigger, NOW, grace=10 * 3600) == datetime(2026, 11, 26, 6, tzinfo=UTC)


def test_cron_slots():
    trigger = make_trigger(ScheduleSection(cron="*/15 * * * *"))
    assert latest_slot(trigger, NOW, grace=3600) == datetime(2026, 11, 26, 7, 30, tzinfo=UTC)
    assert latest_slot(trigger, NOW, grace=3) is None  # 7:30:00 is 5 s ago, outside the grace


def test_several_missed_triggers_coalesce_into_the_latest():
    trigger = make_trigger(ScheduleSection(every="1h"))
    last_round = slot_key(NOW - timedelta(hours=5))  # down for five trigger times
    slot = catch_up_slot(trigger, NOW, 24 * 3600, last_round, any_rounds=True)
    assert slot == slot_key(datetime(2026, 11, 26, 7, tzinfo=UTC))


def test_no_catch_up_when_the_latest_slot_already_ran_or_is_past_grace():
    trigger = make_trigger(ScheduleSection(every="1h"))
    ran = slot_key(datetime(2026, 11, 26, 7, tzinfo=UTC))
    assert catch_up_slot(trigger, NOW, 3600, ran, any_rounds=True) is None
    assert catch_up_slot(trigger, NOW, 60, None, any_rounds=True) is None  # 7:00 is 30 min ago


def test_a_fresh_workspace_starts_at_once():
    trigger = make_trigger(ScheduleSection(every="1d"))
    assert catch_up_slot(trigger, NOW, 60, None, any_rounds=False) == slot_key(NOW)


@pytest.mark.parametrize(
    ("raw", "seconds"),
    [(90, 90.0), ("90s", 90.0), ("15m", 900.0), ("6h", 21600.0), ("1d", 86400.0)],
)
def test_durations(raw, seconds):
    assert ScheduleSection(every=raw).every == seconds
