"""The run queue: FIFO across kinds under the limits, retries put back later, removal."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from taskcast.records import TaskStatus
from taskcast.runtime.execution import Run
from taskcast.runtime.queue import KindLoad, RunQueue
from taskcast.runtime.runner import Runner
from taskcast.spec import build_spec
from tests.support import sample_tasks
from tests.support.eventually import eventually

T = "tests.support.sample_tasks."


#: what the stand-in pool hands out as a slot
SLOT: Any = object()


class NoWorkers:
    """A pool with `free` slots and no workers behind them."""

    def __init__(self, free: int) -> None:
        self.free = free
        self.size = free

    def acquire(self) -> Any:
        self.free -= 1
        return SLOT


def waiting(func: str, order: int, **options: Any) -> Run:
    spec = build_spec(T + func, (1,), {}, options or None)
    record = spec.new_record(f"{order:032x}", status=TaskStatus.QUEUED)
    return Run(spec, record, order, asyncio.get_running_loop().create_future(), None)  # type: ignore[arg-type]


def queue(
    free_slots: int,
    busy_threads: int,
    ready: list[int] | None = None,
    *,
    max_async: int = 5,
    max_concurrency: int | None = 3,
) -> RunQueue:
    return RunQueue(
        max_async=max_async,
        thread_workers=1,
        pool=NoWorkers(free_slots),  # type: ignore[arg-type]
        threads_busy=lambda: busy_threads,
        on_ready=lambda: (ready if ready is not None else []).append(1),
        max_concurrency=max_concurrency,
    )


async def test_oldest_first_across_kinds_skipping_a_kind_with_no_room() -> None:
    runs = queue(free_slots=0, busy_threads=0)
    process, thread, later = (
        waiting("identity", 1),
        waiting("identity", 2, executor="thread"),
        waiting("async_identity", 3),
    )
    for run in (later, thread, process):
        runs.put(run)
    assert len(runs) == 3
    # No free worker: the process run waits, the others go in order, up to the limit.
    assert runs.next_ready() is thread
    assert runs.next_ready() is later
    assert runs.next_ready() is None
    assert (len(runs), runs.running) == (1, 2)
    runs.ended(thread)
    assert runs.running == 1
    assert runs.drain() == [process] and len(runs) == 0


async def test_a_process_run_takes_its_slot_when_picked() -> None:
    runs = queue(free_slots=1, busy_threads=1)
    process, thread = waiting("identity", 1), waiting("identity", 2, executor="thread")
    runs.put(thread)
    runs.put(process)
    assert runs.next_ready() is process and process.slot is SLOT
    assert runs.next_ready() is None  # every thread is busy


async def test_a_run_put_later_waits_its_delay_and_can_be_removed() -> None:
    ready: list[int] = []
    runs = queue(free_slots=1, busy_threads=0, ready=ready)
    kept, removed = waiting("async_identity", 1), waiting("async_identity", 2)
    runs.put_later(kept, 0.01)
    runs.put_later(removed, 0.01)
    runs.remove(removed)
    assert len(runs) == 0
    await eventually(lambda: len(runs) == 1, 5, "the delayed run is put back")
    assert ready == [1]
    assert runs.next_ready() is kept and runs.next_ready() is None


async def test_a_task_cancelled_while_it_waits_for_a_retry_never_runs_again(
    runner: Runner,
) -> None:
    spec = build_spec(
        T + "flaky", ("cancelled", 5), {}, q_options={"max_attempts": 3, "retry_delay": 0.5}
    )
    task_id = runner.submit(spec)
    await eventually(
        lambda: (
            getattr(runner.get(task_id), "attempt_count", 0) == 1
            and getattr(runner.get(task_id), "status", None) is TaskStatus.QUEUED
        ),
        5,
        "the first attempt failed and waits for its retry",
    )
    assert runner.cancel(task_id) is True
    record = await runner.wait(task_id, 5)
    assert (record.status, record.attempt_count) == (TaskStatus.CANCELLED, 1)
    await asyncio.sleep(0.7)  # past the retry's delay: nothing may start it again
    stored = runner.get(task_id)
    assert stored is not None and stored.status is TaskStatus.CANCELLED
    assert sample_tasks._attempts["cancelled"] == 1
    assert runner.queue_size == 0 and runner.running_count == 0


async def test_a_kind_at_its_limit_waits_while_the_others_start(
    caplog: pytest.LogCaptureFixture,
) -> None:
    runs = queue(free_slots=1, busy_threads=0, max_async=2, max_concurrency=None)
    first, second, third = (waiting("async_identity", n) for n in (1, 2, 3))
    process = waiting("identity", 4)
    for run in (first, second, third, process):
        runs.put(run)
    caplog.set_level(logging.INFO, logger="taskcast.runtime.queue")
    assert runs.next_ready() is first and runs.next_ready() is second
    # The async limit is reached: the third async run waits, the younger process run starts.
    assert runs.next_ready() is process
    assert runs.next_ready() is None
    load = runs.load()
    assert load["async"] == KindLoad(limit=2, running=2, waiting=1, held=True)
    assert load["process"] == KindLoad(limit=1, running=1, waiting=0, held=False)
    assert load["thread"] == KindLoad(limit=1, running=0, waiting=0, held=False)
    assert load["async"].as_json() == {"limit": 2, "running": 2, "waiting": 1, "held": True}
    # Asked again while still held: no second line.
    assert runs.next_ready() is None
    held = [r.getMessage() for r in caplog.records if "waiting for a free place" in r.message]
    assert held == [
        "async tasks are waiting for a free place: 2 running, 1 waiting; the limit is "
        "max_async_tasks (--max-async)"
    ]
    runs.ended(first)
    assert runs.next_ready() is third
    assert runs.next_ready() is None
    assert runs.load()["async"] == KindLoad(limit=2, running=2, waiting=0, held=False)
    over = [r.getMessage() for r in caplog.records if "no longer wait" in r.message]
    assert over == ["async tasks no longer wait for a limit"]


async def test_the_overall_limit_names_max_concurrency(caplog: pytest.LogCaptureFixture) -> None:
    runs = queue(free_slots=0, busy_threads=0, max_async=10, max_concurrency=1)
    first, second = waiting("async_identity", 1), waiting("async_identity", 2)
    runs.put(first)
    runs.put(second)
    caplog.set_level(logging.WARNING, logger="taskcast.runtime.queue")
    assert runs.next_ready() is first and runs.next_ready() is None
    assert runs.load()["async"].held is True
    assert "the limit is max_concurrency (--max-concurrency)" in caplog.text
