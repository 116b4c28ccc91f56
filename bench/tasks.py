"""The tasks the benchmark starts, loaded by the Taskcast server with `run.py --tasks bench.tasks`.

The ceiling server runs the very same functions (their undecorated bodies, through `__wrapped__`)
with a publisher of its own, so both servers are measured on identical task code.

Every event of a fan-out run is a small HTML fragment like the ones Pytigon tasks send; the events
of a latency run carry the CLOCK_MONOTONIC time of their `send_event` ("t<microseconds>"), which
the load client compares with its own clock on receipt.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from taskcast.publish import publish
from taskcast.records import TaskStatus
from taskcast.registry import register
from taskcast.tasks import async_task, wait_task

GROUP = "bench"


def item(index: int) -> str:
    return f"<li>item {index}</li>===>>.data"


def stamp() -> str:
    return f"t{time.monotonic_ns() // 1000}"


@publish(GROUP)
async def fanout_async(cproxy: Any = None, count: int = 1000) -> int:
    """Send `count` events as fast as a well-behaved async task can: one loop turn per event."""
    for index in range(count):
        cproxy.send_event(item(index))
        await asyncio.sleep(0)
    return count


@publish(GROUP)
def fanout_process(cproxy: Any = None, count: int = 1000) -> int:
    """Send `count` events as fast as a worker process can."""
    for index in range(count):
        cproxy.send_event(item(index))
    return count


@publish(GROUP)
async def paced_async(cproxy: Any = None, rate: int = 1000, seconds: float = 2.0) -> int:
    """Send `rate` stamped events a second for `seconds`, on an absolute schedule."""
    total = int(rate * seconds)
    begin = time.monotonic()
    for index in range(total):
        delay = begin + index / rate - time.monotonic()
        await asyncio.sleep(delay if delay > 0 else 0)
        cproxy.send_event(stamp())
    return total


@publish(GROUP)
def paced_process(cproxy: Any = None, rate: int = 1000, seconds: float = 2.0) -> int:
    """`paced_async` in a worker process."""
    total = int(rate * seconds)
    begin = time.monotonic()
    for index in range(total):
        delay = begin + index / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        cproxy.send_event(stamp())
    return total


@publish(GROUP)
async def one_event_async(cproxy: Any = None) -> int:
    cproxy.send_event("<p>started</p>")
    return 1


@publish(GROUP)
def one_event_process(cproxy: Any = None) -> int:
    cproxy.send_event("<p>started</p>")
    return 1


async def trivial_async() -> int:
    return 1


def trivial_process() -> int:
    return 1


@publish(GROUP)
async def history_task(cproxy: Any = None, events: int = 100) -> int:
    """A finished task with a history: `events` events kept in its stream and in the store."""
    for index in range(events):
        cproxy.send_event(item(index))
    await asyncio.sleep(0)
    return events


TRIVIAL = {"async": "bench.tasks.trivial_async", "process": "bench.tasks.trivial_process"}


async def _report(ids: list[str], began: float) -> dict[str, Any]:
    """Await every task of `ids`; how many there were, how many did not succeed, and the time."""
    failed = 0
    for task_id in ids:
        record = await wait_task(task_id, timeout=120)
        failed += record.status is not TaskStatus.SUCCESS
    return {"count": len(ids), "failed": failed, "seconds": time.perf_counter() - began}


@register
async def drive_tasks(kind: str = "async", count: int = 1000) -> dict[str, Any]:
    """Start `count` trivial tasks with `async_task`, await them all, and time that inside.

    Every one goes through the whole path a task of a view takes: checked, queued, recorded in
    the store (queued, running, success), run, and awaited with `wait_task`.
    """
    began = time.perf_counter()
    ids = [async_task(TRIVIAL[kind]) for _ in range(count)]
    return await _report(ids, began)


@register
async def drive_history(first: int = 0, count: int = 1000, events: int = 100) -> dict[str, Any]:
    """Run `count` `history_task`s, each with a stream of its own (`h<n>`), and await them."""
    began = time.perf_counter()
    ids = [
        async_task("bench.tasks.history_task", task_publish_id=f"h{n}", events=events)
        for n in range(first, first + count)
    ]
    return await _report(ids, began)
