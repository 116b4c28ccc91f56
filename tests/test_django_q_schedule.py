"""`taskcast.tasks.schedule` behaves as `django_q.tasks.schedule`: django-q2's `tasks.py`,
`models.py` (`Schedule`) and `scheduler.py` are the spec."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from taskcast import defaults, tasks
from taskcast.runtime.runner import Runner
from taskcast.schedules import ScheduleError
from taskcast.schedules.scheduler import Scheduler
from taskcast.settings import Settings
from taskcast.tasks import Schedule, schedule
from tests.schedules.test_scheduler import START, FakeClock, running, tasks_of

T = "tests.support.sample_tasks."


@contextlib.asynccontextmanager
async def installed(scheduler: Scheduler) -> AsyncIterator[None]:
    defaults.SCHEDULER.install(scheduler)
    try:
        yield
    finally:
        defaults.SCHEDULER.install(None)


async def run_once_due(runner: Runner, scheduler: Scheduler, clock: FakeClock, name: str) -> None:
    """Move the clock to the schedule's next run, run what is due, wait for that run's end."""
    next_run = scheduler.get(name).next_run
    assert next_run is not None
    clock.now = next_run
    scheduler.run_due()
    task_id = scheduler.running_task(name)
    assert task_id is not None, "the due run did not start"
    await tasks.wait_task(task_id, timeout=10)
    assert [run.id for run in tasks_of(runner, name)] == [task_id]


async def test_schedule_returns_the_fields_of_django_q_schedule_model(
    runner: Runner, settings: Settings
) -> None:
    async with running(runner, settings, FakeClock(START)) as scheduler, installed(scheduler):
        made = schedule(
            T + "add",
            1,
            b=2,
            name="sum",
            hook=T + "identity",
            schedule_type=Schedule.HOURLY,
            repeats=4,
            next_run=START,
            intended_date_kwarg=None,
        )
    assert (made.id, made.name, made.func, made.hook) == ("sum", "sum", T + "add", T + "identity")
    assert (made.args, made.kwargs) == ((1,), {"b": 2})
    assert (made.schedule_type, made.minutes, made.repeats, made.cron) == ("H", None, 4, None)
    assert made.next_run == START and made.task is None and made.cluster is None
    assert made.intended_date_kwarg is None


async def test_a_name_already_taken_is_an_error(runner: Runner, settings: Settings) -> None:
    async with running(runner, settings, FakeClock(START)) as scheduler, installed(scheduler):
        schedule(T + "add", 1, 2, name="taken", schedule_type=Schedule.DAILY)
        with pytest.raises(ScheduleError, match="already exists"):
            schedule(T + "add", 3, 4, name="taken", schedule_type=Schedule.HOURLY)
        assert scheduler.get("taken").args == (1, 2)
        first = schedule(T + "add", 1, 2, schedule_type=Schedule.DAILY)
        second = schedule(T + "add", 1, 2, schedule_type=Schedule.DAILY)
        assert first.name != second.name  # unnamed schedules never clash, as in Django Q


async def test_minutes_without_minutes_runs_every_minute(
    runner: Runner, settings: Settings
) -> None:
    clock = FakeClock(START)
    async with running(runner, settings, clock) as scheduler, installed(scheduler):
        schedule(T + "add", 1, 2, name="each-minute", schedule_type=Schedule.MINUTES)
        await run_once_due(runner, scheduler, clock, "each-minute")
        assert scheduler.get("each-minute").next_run == START + timedelta(minutes=1)


async def test_a_scheduled_run_is_in_the_group_named_after_its_schedule(
    runner: Runner, settings: Settings
) -> None:
    clock = FakeClock(START)
    async with running(runner, settings, clock) as scheduler, installed(scheduler):
        schedule(T + "add", 1, 2, name="grouped", schedule_type=Schedule.DAILY, next_run=START)
        await run_once_due(runner, scheduler, clock, "grouped")
        assert tasks.result_group("grouped") == [3]


async def test_a_once_schedule_ends_as_django_q_ends_it(runner: Runner, settings: Settings) -> None:
    clock = FakeClock(START)
    async with running(runner, settings, clock) as scheduler, installed(scheduler):
        schedule(T + "add", 1, 2, name="once", next_run=START)
        schedule(T + "add", 1, 2, name="once-counted", next_run=START, repeats=3)
        await run_once_due(runner, scheduler, clock, "once")
        (counted,) = tasks_of(runner, "once-counted")
        await tasks.wait_task(counted.id, timeout=10)
        assert "once" not in scheduler.entries  # repeats -1: deleted after its run
        kept = scheduler.get("once-counted")  # a positive repeats: kept, with none left
        assert kept.repeats == 0 and kept.next_run is None
