"""Pytigon's `init_schedule(scheduler, cmd, http)` and its scheduler's methods, on a real runner.

The module under test is `tests.support.pytigon_like.schtasksdemo`, written as Pytigon's demo
module is: nested async functions, the scheduler passed to them, range() in schedule strings.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime
from typing import Any

import pytest

from taskcast.publish import NotSupportedError
from taskcast.records import TaskStatus
from taskcast.runtime.runner import Runner
from taskcast.schedules.pytigon import CMD, HTTP, TaskRow
from taskcast.schedules.scheduler import Scheduler
from taskcast.settings import Settings
from tests.schedules.test_scheduler import START, FakeClock, running, tasks_of
from tests.support.pytigon_like import schtasksdemo

DEMO = "tests.support.pytigon_like.schtasksdemo"
NESTED = DEMO + ".init_schedule."


async def run_once(runner: Runner, scheduler: Scheduler, name: str) -> TaskStatus:
    task_id = scheduler.run_now(name)
    await scheduler.idle()
    record = await runner.wait(task_id)
    return record.status


async def test_init_schedule_is_called_with_scheduler_cmd_and_http(
    runner: Runner, settings: Settings
) -> None:
    schtasksdemo.SEEN.clear()
    async with running(
        runner, settings, FakeClock(START), task_modules=(DEMO,), scheduler=False
    ) as scheduler:
        assert schtasksdemo.SEEN == [("init", CMD, HTTP)]
        assert len(scheduler.entries) == 14  # every add_task of the module
        assert sorted(row.name for row in scheduler.get_tasks("hello")) == ["hello"] * 5
        assert scheduler.get(NESTED + "hello").origin == f"init_schedule:{DEMO}"


def test_cmd_and_http_say_what_is_not_supported_when_used() -> None:
    with pytest.raises(NotSupportedError, match=r"cmd .*management commands"):
        CMD(["migrate"])
    with pytest.raises(NotSupportedError, match=r"http\.get"):
        HTTP.get(None, "/schsys/ok/")
    assert repr(HTTP) == "<http: not available in Taskcast>"


async def test_nested_async_functions_run_with_the_scheduler_as_argument(
    runner: Runner, settings: Settings
) -> None:
    schtasksdemo.SEEN.clear()
    async with running(
        runner, settings, FakeClock(START), task_modules=(DEMO,), scheduler=False
    ) as scheduler:
        assert await run_once(runner, scheduler, NESTED + "hello") == TaskStatus.SUCCESS
        assert await run_once(runner, scheduler, NESTED + "hello1") == TaskStatus.SUCCESS
        # hello2 divides an undefined name: its run fails, the scheduler goes on.
        assert await run_once(runner, scheduler, NESTED + "hello2") == TaskStatus.FAILED
        [failed] = tasks_of(runner, NESTED + "hello2")
        assert "NameError" in (failed.error or "")
        assert await run_once(runner, scheduler, NESTED + "hello-2") == TaskStatus.SUCCESS
    seen = schtasksdemo.SEEN[1:]
    assert seen[0] == "hello" and seen[1][:2] == ("hello1", "monthly")
    assert isinstance(seen[1][2], datetime)  # Pytigon's row[4]: the next run, naive local time
    assert seen[2:] == ["hello2", "hello"]


async def test_a_task_that_clears_the_scheduler_removes_every_pytigon_schedule(
    runner: Runner, settings: Settings
) -> None:
    async with running(
        runner, settings, FakeClock(START), task_modules=(DEMO,), scheduler=False
    ) as scheduler:
        scheduler.schedule("tests.support.sample_tasks.note_run", "k", name="django-q")
        await scheduler.idle()
        assert await run_once(runner, scheduler, NESTED + "exit") == TaskStatus.SUCCESS
        assert list(scheduler.entries) == ["django-q"]  # schedule() is not Pytigon's


async def test_schedules_of_live_objects_are_not_stored_and_come_back_at_each_start(
    runner: Runner, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR)
    async with running(
        runner, settings, FakeClock(START), task_modules=(DEMO,), scheduler=False
    ) as scheduler:
        names = sorted(scheduler.entries)
        await scheduler.flush()
        assert await scheduler.store.run(scheduler.store.load) == []
    async with running(
        runner, settings, FakeClock(START), task_modules=(DEMO,), scheduler=False
    ) as again:
        assert sorted(again.entries) == names
    assert [r.getMessage() for r in caplog.records] == []


async def test_the_scheduler_offers_pytigons_methods(runner: Runner, settings: Settings) -> None:
    async with running(
        runner, settings, FakeClock(START), task_modules=(DEMO,), scheduler=False
    ) as scheduler:
        rows = scheduler.tasks
        assert len(rows) == 14 and all(isinstance(row, TaskRow) for row in rows)
        assert [row[4] for row in rows] == sorted(row[4] for row in rows if row[4] is not None)
        [row] = scheduler.get_tasks("hello2")
        assert (row[1], row[5]) == ((scheduler,), "hello2")
        assert row[3].next_after(START, scheduler.tz) is not None
        assert scheduler.show_tasks()[0][0] == rows[0].name
        assert scheduler.show_current_tasks() == []
        assert scheduler.fmap["d"] is scheduler.d and scheduler.s() is not None
        scheduler.add_rpc_fun("echo", lambda self, x: x)  # no RPC server here: ignored
        scheduler.remove_tasks("hello1")
        assert scheduler.get_tasks("hello1") == [] and len(scheduler.entries) == 8
        with pytest.raises(NotSupportedError, match="run"):
            scheduler.run()


def plain_init_schedule(scheduler: Any) -> None:
    def tidy(days: int, scheduler: Any = None, timeout: int = 0) -> None:
        # A plain function runs in a thread; it may change the schedules from there.
        assert threading.current_thread() is not threading.main_thread()
        TIDIED.append((days, timeout))
        scheduler.remove_tasks("tidy")

    scheduler.add_task("d(at=3)", tidy, 7, scheduler=scheduler, timeout=5)


TIDIED: list[tuple[int, int]] = []


async def test_a_one_argument_init_schedule_and_a_nested_plain_function(
    runner: Runner, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tests.schedules.test_pytigon_scheduler as this

    monkeypatch.setattr(this, "init_schedule", plain_init_schedule, raising=False)
    async with running(
        runner, settings, FakeClock(START), task_modules=(__name__,), scheduler=False
    ) as scheduler:
        [name] = scheduler.entries
        # `timeout` is the task's own keyword here, as in Pytigon, not a Django Q option.
        assert await run_once(runner, scheduler, name) == TaskStatus.SUCCESS
        assert TIDIED == [(7, 5)] and scheduler.entries == {}
