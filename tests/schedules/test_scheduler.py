"""The scheduler on a real runner and a file database, with a clock the tests move by hand."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import threading
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

from taskcast import defaults
from taskcast.errors import NoRunnerError
from taskcast.records import TaskRecord, TaskStatus
from taskcast.runtime.runner import Runner
from taskcast.schedules.calendar import Schedule
from taskcast.schedules.entry import ScheduleBusyError, ScheduleEntry
from taskcast.schedules.helpers import daily, hourly, in_minute_intervals, in_second_intervals
from taskcast.schedules.scheduler import MAX_SLEEP, Scheduler, schedule
from taskcast.schedules.store import ScheduleStore
from taskcast.settings import Settings
from tests.support import sample_tasks
from tests.support.eventually import eventually

T = "tests.support.sample_tasks."
START = datetime(2024, 5, 6, 12, 0, tzinfo=UTC)  # a Monday, noon


class FakeClock:
    """The scheduler's clock: it shows `now` until a test changes it."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@contextlib.asynccontextmanager
async def running(
    runner: Runner, settings: Settings, clock: FakeClock, **overrides: Any
) -> AsyncIterator[Scheduler]:
    chosen = dataclasses.replace(settings, timezone="UTC", **overrides)
    scheduler = Scheduler(runner, ScheduleStore(chosen.database), chosen, clock)
    await scheduler.start()
    try:
        yield scheduler
    finally:
        await scheduler.stop()


def fresh_key() -> str:
    return uuid.uuid4().hex


def held() -> str:
    """A key for `hold`: its runs go on until `sample_tasks.HOLDS[key]` is set."""
    key = fresh_key()
    sample_tasks.HOLDS[key] = asyncio.Event()
    return key


def tasks_of(runner: Runner, name: str) -> list[TaskRecord]:
    """The schedule's runs, oldest first."""
    return list(reversed(runner.store.list_tasks(schedule=name)))


def due_twice(scheduler: Scheduler, clock: FakeClock, name: str) -> str | None:
    """Move the clock to the schedule's next run, then a minute on, running what is due each
    time; return the task the first run started."""
    next_run = scheduler.get(name).next_run
    assert next_run is not None
    clock.now = next_run
    scheduler.run_due()
    first = scheduler.running_task(name)
    clock.now += timedelta(minutes=1)
    scheduler.run_due()
    return first


@contextlib.asynccontextmanager
async def after_downtime(
    runner: Runner, settings: Settings, down: timedelta, **fields: Any
) -> AsyncIterator[tuple[Scheduler, str]]:
    """A scheduler started `down` after a stored schedule's next run, once its catch-up is done;
    with the key its runs are noted under."""
    key = fresh_key()
    store_in_the_past(settings, key, **fields)
    clock = FakeClock(START - timedelta(hours=5) + down)
    async with running(runner, settings, clock) as scheduler:
        await scheduler.idle()
        yield scheduler, key


def store_in_the_past(settings: Settings, key: str, **fields: Any) -> None:
    """A schedule whose next run was due at 07:00 (five hours before START), then the server
    stopped."""
    defaults: dict[str, Any] = {"rule": hourly(at=0), "intended_date_kwarg": "due"}
    entry = ScheduleEntry(
        name="hourly-job",
        func=T + "note_run",
        args=(key,),
        next_run=START - timedelta(hours=5),
        **{**defaults, **fields},
    )
    store = ScheduleStore(settings.database)
    store.open()
    store.save(entry)
    store.shutdown()


async def test_a_due_schedule_starts_exactly_one_task(runner: Runner, settings: Settings) -> None:
    clock, key = FakeClock(START), fresh_key()
    async with running(runner, settings, clock) as scheduler:
        entry = scheduler.add_task(daily(at="13:00"), sample_tasks.note_run, key)
        assert entry.name == T + "note_run" and entry.next_run == START.replace(hour=13)
        scheduler.run_due()
        assert tasks_of(runner, entry.name) == []
        clock.now = START.replace(hour=13, second=2)
        scheduler.run_due()
        scheduler.run_due()
        await scheduler.idle()
        [record] = tasks_of(runner, entry.name)
        assert record.status is TaskStatus.SUCCESS and record.schedule == entry.name
        assert record.args == (key,) and sample_tasks.NOTED[key] == [{}]
        after = scheduler.get(entry.name)
        assert after.last_task == record.id and after.last_skip is None
        assert after.next_run == START.replace(hour=13) + timedelta(days=1)


async def test_the_timer_starts_a_due_run_by_itself(runner: Runner, settings: Settings) -> None:
    key = fresh_key()
    sample_tasks.NOTE_EVENTS[key] = event = asyncio.Event()
    async with running(runner, settings, FakeClock(START)) as scheduler:
        entry = scheduler.schedule(T + "note_run", key, name="right-away")  # Django Q: ONCE, now
        assert entry.next_run == START and scheduler.timer_delay == 0
        async with asyncio.timeout(10):
            await event.wait()
        await scheduler.idle()
        assert len(sample_tasks.NOTED[key]) == 1
        assert "right-away" not in scheduler.entries  # Django Q deletes a ONCE after its run
        assert scheduler.timer_delay is None


async def test_the_scheduler_never_polls(runner: Runner, settings: Settings) -> None:
    async with running(runner, settings, FakeClock(START)) as scheduler:
        assert scheduler.timer_delay is None  # nothing scheduled: no timer at all
        soon = scheduler.add_task(daily(at="12:20"), T + "note_run", "x")
        assert scheduler.timer_target == soon.next_run and scheduler.timer_delay == 20 * 60
        later = START + timedelta(days=30)
        scheduler.schedule(T + "note_run", "y", name="later", schedule_type="Y", next_run=later)
        assert scheduler.timer_target == soon.next_run  # still one timer, for the earliest
        scheduler.pause(soon.name)
        assert scheduler.timer_target == later and scheduler.timer_delay == MAX_SLEEP
        scheduler.pause("later")
        assert scheduler.timer_delay is None


async def test_a_run_due_while_the_previous_still_runs_is_skipped_and_recorded(
    runner: Runner, settings: Settings
) -> None:
    clock, key = FakeClock(START), held()
    async with running(runner, settings, clock) as scheduler:
        scheduler.schedule(T + "hold", key, name="slow", rule=in_minute_intervals(1))
        first = due_twice(scheduler, clock, "slow")
        assert first is not None
        skipped = scheduler.get("slow")
        assert skipped.last_task == first and skipped.last_skip is not None
        assert "still running" in skipped.last_skip
        [skip] = await scheduler.skips("slow")
        assert skip.due == clock.now
        sample_tasks.HOLDS[key].set()
        await scheduler.idle()
        assert [record.id for record in tasks_of(runner, "slow")] == [first]


async def test_overlap_queue_starts_the_next_run_when_the_previous_ends(
    runner: Runner, settings: Settings
) -> None:
    clock, key = FakeClock(START), held()
    async with running(runner, settings, clock) as scheduler:
        rule = in_minute_intervals(1)
        scheduler.schedule(T + "hold", key, name="queued", rule=rule, overlap="queue")
        due_twice(scheduler, clock, "queued")
        # The store has a run's record from the turn of the loop after it was submitted.
        await eventually(lambda: len(tasks_of(runner, "queued")) == 1, 5, "the first run stored")
        assert scheduler.get("queued").last_skip is None
        sample_tasks.HOLDS[key].set()
        await scheduler.idle()
        first, second = tasks_of(runner, "queued")
        assert first.status is second.status is TaskStatus.SUCCESS
        assert first.stopped is not None and second.started is not None
        assert first.stopped <= second.started


async def test_overlap_queue_keeps_at_most_backlog_runs_waiting(
    runner: Runner, settings: Settings
) -> None:
    """With backlog=2, a run still going and six more due: two wait, four are skipped, and
    exactly three runs ever start."""
    clock, key = FakeClock(START), held()
    async with running(runner, settings, clock) as scheduler:
        rule = in_minute_intervals(1)
        scheduler.schedule(T + "hold", key, name="q2", rule=rule, overlap="queue", backlog=2)
        next_run = scheduler.get("q2").next_run
        assert next_run is not None
        for minute in range(7):  # the first run, then six more due while it still goes
            clock.now = next_run + timedelta(minutes=minute)
            scheduler.run_due()
        await eventually(lambda: len(tasks_of(runner, "q2")) == 1, 5, "the first run stored")
        skips = await scheduler.skips("q2")
        assert len(skips) == 4
        assert all("2 runs were already waiting their turn" in s.reason for s in skips)
        sample_tasks.HOLDS[key].set()
        await scheduler.idle()
        runs = tasks_of(runner, "q2")
        assert len(runs) == 3 and all(r.status is TaskStatus.SUCCESS for r in runs)
        assert all(a.stopped and b.started and a.stopped <= b.started for a, b in pairwise(runs))


DOWN = timedelta(hours=5, minutes=10)  # the downtime: the server is back at 12:10


async def test_catch_up_once_runs_one_missed_run_after_a_downtime(
    runner: Runner, settings: Settings
) -> None:
    async with after_downtime(runner, settings, DOWN, catch_up="once") as (scheduler, key):
        assert len(sample_tasks.NOTED[key]) == 1
        assert scheduler.get("hourly-job").next_run == START + timedelta(hours=1)


async def test_catch_up_all_runs_the_missed_runs_one_by_one_up_to_the_backlog(
    runner: Runner, settings: Settings
) -> None:
    async with after_downtime(runner, settings, DOWN, catch_up="all", backlog=3) as (
        scheduler,
        key,
    ):
        dues = [call["due"] for call in sample_tasks.NOTED[key]]
        assert dues == [(START - timedelta(hours=h)).isoformat() for h in (5, 4, 3)]
        runs = tasks_of(runner, "hourly-job")
        assert all(a.stopped and b.started and a.stopped <= b.started for a, b in pairwise(runs))
        [skip] = await scheduler.skips("hourly-job")
        assert skip.due == START - timedelta(hours=2) and "more than 3 runs" in skip.reason
        assert scheduler.get("hourly-job").next_run == START + timedelta(hours=1)


async def test_catch_up_all_stays_bounded_after_a_long_downtime(
    runner: Runner, settings: Settings
) -> None:
    week = timedelta(days=7)
    every_second = in_second_intervals(1)
    async with after_downtime(
        runner, settings, week, catch_up="all", backlog=2, rule=every_second
    ) as (scheduler, _):
        assert len(tasks_of(runner, "hourly-job")) == 2
        expected = START - timedelta(hours=5) + week + timedelta(seconds=1)
        assert scheduler.get("hourly-job").next_run == expected


async def test_catch_up_skip_records_the_missed_runs_and_waits_for_the_next(
    runner: Runner, settings: Settings
) -> None:
    async with after_downtime(runner, settings, DOWN, catch_up="skip") as (scheduler, key):
        assert key not in sample_tasks.NOTED
        [skip] = await scheduler.skips("hourly-job")
        assert skip.due == START - timedelta(hours=5) and "catch_up='skip'" in skip.reason
        assert scheduler.get("hourly-job").next_run == START + timedelta(hours=1)


async def test_schedules_survive_a_restart(runner: Runner, settings: Settings) -> None:
    clock = FakeClock(START)
    async with running(runner, settings, clock) as first:
        first.schedule(
            T + "note_run",
            "a",
            name="nightly",
            rule=daily(at="2:30"),
            catch_up="skip",
            overlap="queue",
            backlog=3,
            extra={"nested": [1, 2]},
        )
        first.schedule(T + "add", 1, 2, name="sum", schedule_type=Schedule.MINUTES, minutes=5)
        first.pause("sum")
        before = dict(first.entries)
    async with running(runner, settings, clock) as second:
        assert second.entries == before
        assert second.get("nightly").kwargs == {"extra": {"nested": [1, 2]}}
        assert second.get("sum").paused and second.get("sum").args == (1, 2)


async def test_publish_tasks_get_a_stream_per_run(runner: Runner, settings: Settings) -> None:
    clock = FakeClock(START)
    async with running(runner, settings, clock) as scheduler:
        rule = in_minute_intervals(1)
        entry = scheduler.schedule(T + "send_events", name="ticker", rule=rule, events=("tick",))
        for _ in range(2):
            assert entry.next_run is not None
            clock.now = entry.next_run
            scheduler.run_due()
            await scheduler.idle()
            entry = scheduler.get("ticker")
        scheduler.schedule(
            T + "send_events", name="board", rule="d(at=23)", events=("x",), task_publish_id="board"
        )
        scheduler.run_now("board")
        await scheduler.idle()
        streams = [record.stream_id for record in tasks_of(runner, "ticker")]
        assert streams == ["golden__ticker-20240506T120000Z", "golden__ticker-20240506T120100Z"]
        [ticker_run, _] = tasks_of(runner, "ticker")
        assert runner.store.events(ticker_run.id) == [(1, '"tick"')]
        assert [record.stream_id for record in tasks_of(runner, "board")] == ["golden__board"]


async def test_init_schedule_registers_code_schedules_once_across_restarts(
    runner: Runner, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = f"jobs_{fresh_key()}"
    key = fresh_key()
    (tmp_path / f"{module}.py").write_text(
        "from taskcast.schedules import Schedule\n"
        "from tests.support.sample_tasks import note_run\n\n"
        "def init_schedule(scheduler):\n"
        f"    scheduler.add_task(scheduler.daily(at='22:30'), note_run, {key!r}, part='a')\n"
        f"    scheduler.add_task('h(at=15); d(at=6)', note_run, {key!r}, part='b')\n"
        f"    scheduler.schedule(note_run, {key!r}, name='weekly', schedule_type=Schedule.WEEKLY)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    clock = FakeClock(START)
    names = [T + "note_run", T + "note_run-2", "weekly"]
    async with running(runner, settings, clock, task_modules=(module,)) as first:
        assert sorted(first.entries) == names
        assert first.get(T + "note_run").next_run == START.replace(hour=22, minute=30)
        assert first.get("weekly").origin == f"init_schedule:{module}"
        await first.idle()  # the weekly schedule's first run is due at once, as in Django Q
        first.pause(T + "note_run")
    clock.now = START + timedelta(minutes=5)
    async with running(runner, settings, clock, task_modules=(module,)) as second:
        assert sorted(second.entries) == names
        assert second.get(T + "note_run").paused  # state kept
        assert second.get("weekly").next_run == START + timedelta(days=7)  # not reset to now
        await second.idle()
    assert len(sample_tasks.NOTED[key]) == 1
    async with running(runner, settings, clock, task_modules=()) as third:
        assert third.entries == {}  # no init_schedule registers them any more


async def test_schedule_mirrors_django_q_from_the_loop_and_from_threads(
    runner: Runner, settings: Settings
) -> None:
    async with running(runner, settings, FakeClock(START)) as scheduler:
        defaults.SCHEDULER.install(scheduler)
        try:
            daily_entry = schedule(
                T + "note_run",
                "k",
                name="daily",
                schedule_type=Schedule.DAILY,
                next_run=datetime(2024, 5, 7, 6, 30),
                hook=T + "identity",
            )
            threaded = await asyncio.to_thread(
                schedule, T + "note_run", "k", name="threaded", schedule_type="I", minutes=5
            )
            with pytest.raises(ValueError):
                schedule(T + "no_such_function", name="broken")
            with pytest.raises(ValueError):
                schedule(lambda: None, name="lambda")
            with pytest.raises(ValueError):
                schedule(T + "note_run", threading.Lock(), name="unstorable")
            with pytest.raises(ValueError):
                schedule(T + "note_run", "k", name="elsewhere", cluster="other")
        finally:
            defaults.SCHEDULER.install(None)
        assert daily_entry.next_run == datetime(2024, 5, 7, 6, 30, tzinfo=UTC)
        assert daily_entry.kwargs == {"hook": T + "identity"}
        assert threaded.next_run == START and sorted(scheduler.entries) == ["daily", "threaded"]
    with pytest.raises(NoRunnerError):
        schedule(T + "note_run", "k")


async def test_repeats_count_down_to_a_finished_schedule(
    runner: Runner, settings: Settings
) -> None:
    clock, key = FakeClock(START), fresh_key()
    async with running(runner, settings, clock) as scheduler:
        scheduler.schedule(
            T + "note_run", key, name="twice", schedule_type="I", minutes=1, repeats=2
        )
        await scheduler.idle()
        for minutes in (1, 2, 3):
            clock.now = START + timedelta(minutes=minutes)
            scheduler.run_due()
            await scheduler.idle()
        assert len(sample_tasks.NOTED[key]) == 2
        entry = scheduler.get("twice")
        assert entry.repeats == 0 and entry.next_run is None


async def test_pause_resume_run_now_and_delete(runner: Runner, settings: Settings) -> None:
    clock, key = FakeClock(START), held()
    async with running(runner, settings, clock) as scheduler:
        scheduler.schedule(T + "hold", key, name="job", rule=in_second_intervals(30))
        scheduler.pause("job")
        clock.now = START + timedelta(minutes=10)
        scheduler.run_due()
        assert tasks_of(runner, "job") == []
        resumed = scheduler.resume("job")
        assert resumed.next_run == START + timedelta(minutes=10, seconds=30)  # no catch-up
        task_id = scheduler.run_now("job")
        with pytest.raises(ScheduleBusyError):
            scheduler.run_now("job")
        assert scheduler.get("job").next_run == resumed.next_run
        scheduler.delete("job")
        assert "job" not in scheduler.entries and scheduler.timer_delay is None
        sample_tasks.HOLDS[key].set()
        record = await runner.wait(task_id, timeout=10)
        assert record.status is TaskStatus.SUCCESS and record.schedule == "job"


async def test_with_the_scheduler_off_schedules_are_kept_but_only_run_by_hand(
    runner: Runner, settings: Settings
) -> None:
    key = fresh_key()
    async with running(runner, settings, FakeClock(START), scheduler=False) as scheduler:
        scheduler.schedule(T + "note_run", key, name="manual")
        scheduler.run_due()
        assert scheduler.timer_delay is None and key not in sample_tasks.NOTED
        await runner.wait(scheduler.run_now("manual"), timeout=10)
        assert len(sample_tasks.NOTED[key]) == 1


async def test_an_unknown_time_zone_is_refused_at_startup(
    runner: Runner, settings: Settings
) -> None:
    wrong = dataclasses.replace(settings, timezone="Mars/Olympus_Mons")
    with pytest.raises(ValueError, match=r"Settings\.timezone"):
        Scheduler(runner, ScheduleStore(wrong.database), wrong)
