"""Tests of the pool's slots: a worker that dies while idle is noticed and replaced, and no task
that was not running in it fails."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import select
import signal
from multiprocessing import forkserver
from pathlib import Path

import pytest

from taskcast.records import TaskStatus
from taskcast.runtime import pool as pool_module
from taskcast.runtime.runner import Runner
from taskcast.runtime.slot import WorkerSetup, WorkerStartFailed
from taskcast.settings import Settings
from taskcast.spec import build_spec
from tests.conftest import RunnerFactory
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


# -- workers that cannot start -------------------------------------------------------------------


@pytest.fixture
def quick_restarts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Failed replacements are tried again after 50 ms, not after a second."""
    monkeypatch.setattr(pool_module, "RESTART_DELAY_FIRST", 0.05)
    monkeypatch.setattr(pool_module, "RESTART_DELAY_MAX", 0.2)


def forkserver_children() -> list[int]:
    """The live processes the forkserver has forked: the workers of every pool."""
    server = getattr(forkserver._forkserver, "_forkserver_pid", None)
    if server is None:
        return []
    children = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            text = (entry / "stat").read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2 :].split()
        if int(fields[1]) == server and fields[0] != "Z":
            children.append(int(entry.name))
    return children


def kill_worker_with(runner: Runner, initializer: str) -> WorkerSetup:
    """Kill the only worker, with replacements made to use `initializer`; the old setup back."""
    pool = runner._pool
    good = pool._setup
    pool._setup = dataclasses.replace(good, initializer=initializer)
    pid = pool._slots[0].pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    return good


async def test_a_replacement_that_cannot_start_is_retried_and_health_says_failing(
    make_runner: RunnerFactory, quick_restarts: None
) -> None:
    runner = await make_runner(process_workers=1)
    assert runner.pool_health().status == "ok" and runner.pool_health().alive == 1
    good = kill_worker_with(runner, T + "broken_initializer")
    await eventually(lambda: runner.pool_health().failed_starts >= 3, 15, "three failed starts")
    health = runner.pool_health()
    assert health.status == "failing" and health.alive == 0 and health.replacing == 1
    assert health.last_error == (
        "a new worker ended before it was ready: "
        f"worker_initializer {T}broken_initializer failed (see the log)"
    )
    task_id = runner.submit(build_spec(T + "add", (2, 3), {}))  # waits for a worker
    runner._pool._setup = good  # the set-up works again
    record = await runner.wait(task_id, 15)
    assert (record.status, record.result) == (TaskStatus.SUCCESS, 5)
    health = runner.pool_health()
    assert (health.status, health.alive, health.failed_starts, health.last_error) == (
        "ok", 1, 0, None
    )  # fmt: skip


async def test_a_worker_that_hangs_at_start_is_killed_and_its_start_counted_failed(
    make_runner: RunnerFactory, quick_restarts: None
) -> None:
    runner = await make_runner(process_workers=1, worker_start_timeout=0.3)
    kill_worker_with(runner, T + "hanging_initializer")
    await eventually(lambda: runner.pool_health().failed_starts >= 3, 15, "three failed starts")
    assert runner.pool_health().last_error == "a new worker was not ready within 0.3 s"
    # Each hung worker was killed: at most the one being started now is left.
    assert len(forkserver_children()) <= 1


async def test_a_pool_whose_workers_cannot_start_refuses_to_start_and_leaves_none(
    make_runner: RunnerFactory,
) -> None:
    with pytest.raises(WorkerStartFailed, match="broken_initializer failed"):
        await make_runner(process_workers=2, worker_initializer=T + "broken_initializer")
    await eventually(lambda: not forkserver_children(), 5, "no worker left")


def test_a_start_timeout_must_be_positive() -> None:
    with pytest.raises(ValueError, match="worker_start_timeout must be positive"):
        Settings(worker_start_timeout=0)
