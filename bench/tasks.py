"""The tasks the benchmark starts, loaded by the Taskcast server with `run.py --tasks bench.tasks`.

The ceiling server runs the very same functions (their undecorated bodies, through `__wrapped__`)
with a publisher of its own, so both servers are measured on identical task code.

Every event of a fan-out run is a small HTML fragment like the ones Pytigon tasks send; the events
of a latency run carry the CLOCK_MONOTONIC time of their `send_event` ("t<microseconds>"), which
the load client compares with its own clock on receipt.
"""

from __future__ import annotations

import asyncio
import collections
import os
import time
from typing import Any

from taskcast import defaults
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
    """Send `rate` stamped events a second for `seconds`, on an absolute schedule; the process
    that ran it (on the Redis engine: which node)."""
    total = int(rate * seconds)
    begin = time.monotonic()
    for index in range(total):
        delay = begin + index / rate - time.monotonic()
        await asyncio.sleep(delay if delay > 0 else 0)
        cproxy.send_event(stamp())
    return os.getpid()


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
    """The process that ran it (on the Redis engine: which node)."""
    return os.getpid()


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
    """Await every task of `ids`; how many there were, how many did not succeed, the time, and
    how many each process ran (by the pid a trivial async task returns)."""
    failed = 0
    ran_in: collections.Counter[str] = collections.Counter()
    first_failure: str | None = None
    for task_id in ids:
        record = await wait_task(task_id, timeout=120)
        if record.status is not TaskStatus.SUCCESS:
            failed += 1
            first_failure = first_failure or f"{record.status.value}: {record.error}"
        if isinstance(record.result, int):
            ran_in[str(record.result)] += 1
    seconds = time.perf_counter() - began
    return {
        "count": len(ids),
        "failed": failed,
        "firstFailure": first_failure,
        "seconds": seconds,
        "ranIn": dict(ran_in),
    }


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


# -- many live streams ------------------------------------------------------------------------------

#: tickers of each `drive_streams` run (by its prefix) that have sent their last event
_ticked_out: dict[str, int] = {}


@publish(GROUP)
async def stream_ticker(
    cproxy: Any = None, begin_us: int = 0, seconds: int = 30, prefix: str = ""
) -> int:
    """One event a second for `seconds`, the first due at `begin_us` (CLOCK_MONOTONIC, µs);
    each event is "d<the µs it was due>", so the client counts lateness from when it was due,
    whatever held the task up (its timer, the loop, the server, the client)."""
    for index in range(seconds):
        due_us = begin_us + index * 1_000_000
        delay = due_us / 1e6 - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        cproxy.send_event(f"d{due_us}")
    _ticked_out[prefix] = _ticked_out.get(prefix, 0) + 1
    return seconds


class _Probe:
    """The longest time the loop took to come back to a task that sleeps 1 ms, over a span."""

    def __init__(self) -> None:
        self.longest = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _watch(self) -> None:
        while True:
            began = time.perf_counter()
            await asyncio.sleep(0.001)
            self.longest = max(self.longest, time.perf_counter() - began - 0.001)

    def __enter__(self) -> _Probe:
        self._task = asyncio.get_running_loop().create_task(self._watch())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()


@register
async def drive_streams(
    count: int = 1000, seconds: int = 30, lead: float = 2.0, prefix: str = "streams"
) -> dict[str, Any]:
    """Start `count` `stream_ticker`s with `async_task` in one turn of the loop (streams
    `<prefix>-<n>`), all ticking from `lead` seconds later and all ending together; time the
    calls, and the longest block of the loop while they start and while they end.

    Each stream ticks at its own phase of the second (stream n at n/count s), as streams
    started by people do, so the events are due evenly; they all end in the same second."""
    _ticked_out[prefix] = 0
    began = time.perf_counter()
    begin_us = int((time.monotonic() + lead) * 1e6)
    ids = [
        async_task(
            "bench.tasks.stream_ticker",
            task_publish_id=f"{prefix}-{n}",
            begin_us=begin_us + n * 1_000_000 // count,
            seconds=seconds,
            prefix=prefix,
        )
        for n in range(count)
    ]
    calls = time.perf_counter() - began  # the loop was held by these calls: the caller's turn
    # Awaited while they run, so no finished record has to be read back from the store.
    waiters = [
        asyncio.ensure_future(wait_task(task_id, timeout=seconds + lead + 120))
        for task_id in ids[:: count // 20 or 1]
    ]
    with _Probe() as starting:  # from the next turn: what the runner does with them
        await asyncio.sleep(max(0.0, begin_us / 1e6 - time.monotonic() - 0.1))
    # The last events are due from begin + seconds - 1 to begin + seconds: every ticker ends
    # in that second.
    await asyncio.sleep(max(0.0, begin_us / 1e6 + seconds - 1.5 - time.monotonic()))
    runner = defaults.RUNNER.get()
    with _Probe() as ending:
        until = time.monotonic() + 120
        # Every ticker has sent its last event, and the runner has recorded every end (this
        # driver is the one task still running).
        while time.monotonic() < until:  # polled: nothing announces "every end recorded"
            if _ticked_out[prefix] == count and runner.running_count == 1:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)
    records = await asyncio.gather(*waiters)
    failed = sum(1 for record in records if record.status is not TaskStatus.SUCCESS)
    return {
        "count": count,
        "callsSeconds": calls,
        "callUs": calls * 1e6 / max(count, 1),
        "startBlockMs": starting.longest * 1000,
        "finishBlockMs": ending.longest * 1000,
        "tickedOut": _ticked_out.pop(prefix),
        "sampleFailed": failed,
        "sample": len(waiters),
    }
