"""Tests of the pool's slots: a worker that dies while idle is noticed and replaced, and no task
that was not running in it fails."""

from __future__ import annotations

import asyncio
import os
import select
import signal

from taskcast.records import TaskStatus
from taskcast.runtime.runner import Runner
from taskcast.spec import build_spec

from tests.support.eventually import eventually

T = "tests.support.sample_tasks."


def worker_pids(runner: Runner) -> list[int | None]:
    return [slot.pid for slot in runner._pool._slots]


def all_ready(runner: Runner, before: list[int | None]) -> bool:
    """Every slot has a fresh, started worker in place of the killed one."""
    pids = worker_pids(runner)
    return (
        len(pids) == len(before)
        and None not in pids
        and pids != before
        and runner._pool.free == len(pids)
    )


async def run_adds(runner: Runner, count: int) -> list[tuple[TaskStatus, object, str | None]]:
    ids = [runner.submit(build_spec(T + "add", (n, 1), {})) for n in range(count)]
    records = await asyncio.gather(*(runner.wait(task_id, 15) for task_id in ids))
    return [(record.status, record.result, record.error) for record in records]


async def test_an_idle_worker_killed_is_replaced_and_later_tasks_succeed(runner: Runner) -> None:
    before = worker_pids(runner)
    victim = before[0]
    assert victim is not None
    os.kill(victim, signal.SIGKILL)
    await eventually(lambda: all_ready(runner, before), 15, "the killed worker replaced")
    assert victim not in worker_pids(runner)
    assert await run_adds(runner, 6) == [(TaskStatus.SUCCESS, n + 1, None) for n in range(6)]


async def test_tasks_given_a_dead_idle_worker_before_it_is_noticed_run_on_another(
    runner: Runner,
) -> None:
    """Killed and gone, but the loop has not read the end of its pipe yet: the tasks that pick
    the dead slot are put on a live one, and the dead one is replaced."""
    before = worker_pids(runner)
    slot = runner._pool._slots[0]
    assert slot.pid is not None
    os.kill(slot.pid, signal.SIGKILL)
    # Wait without running the loop, so the loop has not seen the end of the pipe.
    readable, _, _ = select.select([slot._read_fd], [], [], 10)
    assert readable, "the killed worker's pipe did not end"
    assert await run_adds(runner, 4) == [(TaskStatus.SUCCESS, n + 1, None) for n in range(4)]
    await eventually(lambda: all_ready(runner, before), 15, "the killed worker replaced")
