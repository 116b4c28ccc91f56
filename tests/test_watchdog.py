"""The loop watchdog on a plain event loop: one warning per blocking episode, then the total."""

from __future__ import annotations

import asyncio
import collections
import gc
import itertools
import logging
import re
import time
from collections.abc import AsyncIterator

import pytest

from taskcast.watchdog import CollectorWatch, LoopWatchdog, describe_frames
from tests.support.sample_tasks import block_loop

THRESHOLD = 0.2
BLOCKED_SO_FAR = re.compile(r"event loop blocked for (\d+\.\d+) s so far by (.*)")
RECOVERED = re.compile(r"event loop responsive again after being blocked for (\d+\.\d+) s by (.*)")


@pytest.fixture
async def watchdog() -> AsyncIterator[LoopWatchdog]:
    dog = LoopWatchdog(THRESHOLD)
    dog.start()
    try:
        yield dog
    finally:
        await dog.stop()


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "taskcast.watchdog"]


async def settle() -> None:
    """A few of the watchdog's intervals: a recovery message has had time to be written."""
    await asyncio.sleep(0.15)


async def sleepy_hog(seconds: float) -> None:
    time.sleep(seconds)  # noqa: ASYNC251 - blocks the loop on purpose; other threads run


# block_loop computes in Python without awaiting: the loop is stuck, the GIL changes hands.
@pytest.mark.parametrize("hog", [sleepy_hog, block_loop])
async def test_a_blocking_task_is_named_once_then_the_total_is_logged(
    watchdog: LoopWatchdog, caplog: pytest.LogCaptureFixture, hog: object
) -> None:
    caplog.set_level(logging.WARNING, logger="taskcast.watchdog")
    assert callable(hog)
    await asyncio.create_task(hog(0.7), name="the-hog")
    await settle()
    blocked, recovered = warnings_of(caplog)
    during = BLOCKED_SO_FAR.fullmatch(blocked)
    after = RECOVERED.fullmatch(recovered)
    assert during is not None and after is not None, (blocked, recovered)
    assert THRESHOLD <= float(during[1]) <= 0.7
    assert 0.6 <= float(after[1]) <= 1.5  # the whole block, within the refresh interval
    assert "task 'the-hog'" in during[2] and hog.__name__ in during[2]  # type: ignore[attr-defined]
    assert f"{hog.__name__} (tests/" in during[2]  # type: ignore[attr-defined]
    assert after[2] == during[2]
    assert watchdog.episodes == 1
    assert all(
        r.levelno == logging.WARNING for r in caplog.records if r.name == "taskcast.watchdog"
    )


async def test_short_blocks_are_not_reported(caplog: pytest.LogCaptureFixture) -> None:
    """First a long block in the same setup IS reported, so the watchdog is live; then blocks
    a tenth of the threshold long, with the loop running in between, are not. The threshold
    is larger than the suite's, so a busy machine's own delays stay well under it."""
    caplog.set_level(logging.WARNING, logger="taskcast.watchdog")
    threshold = 0.5
    dog = LoopWatchdog(threshold)
    dog.start()
    try:
        await asyncio.create_task(sleepy_hog(threshold * 2), name="long")
        await settle()
        reported = warnings_of(caplog)
        assert len(reported) == 2 and BLOCKED_SO_FAR.match(reported[0]), reported
        assert dog.episodes == 1
        caplog.clear()
        for _ in range(10):
            time.sleep(threshold / 10)  # noqa: ASYNC251 - short blocks; the loop runs in between
            await asyncio.sleep(0.02)
        await settle()
        assert warnings_of(caplog) == []
        assert dog.episodes == 1
    finally:
        await dog.stop()


async def test_each_episode_is_reported_on_its_own(
    watchdog: LoopWatchdog, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="taskcast.watchdog")
    for name in ("first", "second"):
        await asyncio.create_task(sleepy_hog(0.5), name=name)
        await settle()
    messages = warnings_of(caplog)
    assert len(messages) == 4
    assert [bool(BLOCKED_SO_FAR.match(m)) for m in messages] == [True, False, True, False]
    assert "'first'" in messages[0] and "'second'" in messages[2]
    assert watchdog.episodes == 2


async def test_a_plain_callback_is_reported_as_such(
    watchdog: LoopWatchdog, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="taskcast.watchdog")
    asyncio.get_running_loop().call_soon(time.sleep, 0.5)
    await asyncio.sleep(0.6)
    await settle()
    blocked = warnings_of(caplog)[0]
    assert "a callback outside any task" in blocked


def hold_the_gil(seconds: float) -> None:
    """One C call that keeps the GIL throughout (consuming an iterator inside deque)."""
    count = 10**7
    began = time.perf_counter()
    collections.deque(itertools.repeat(None, count), maxlen=0)
    per_item = (time.perf_counter() - began) / count
    collections.deque(itertools.repeat(None, int(seconds / per_item)), maxlen=0)


async def test_a_block_that_holds_the_gil_is_still_reported_once(
    watchdog: LoopWatchdog, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="taskcast.watchdog")
    began = time.monotonic()
    hold_the_gil(0.6)
    held = time.monotonic() - began
    await settle()
    messages = warnings_of(caplog)
    assert held > THRESHOLD * 2, "the machine was too fast for this test's calibration"
    # Either the thread got in first (a named episode and its end), or only the loop saw it.
    after_the_fact = [m for m in messages if "noticed after it ended" in m]
    if after_the_fact:
        assert len(messages) == 1
    else:
        assert len(messages) == 2 and RECOVERED.match(messages[1])
    assert watchdog.episodes == 1


async def test_stop_ends_the_thread_and_reporting(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="taskcast.watchdog")
    dog = LoopWatchdog(0.1)
    dog.start()
    with pytest.raises(RuntimeError, match="running already"):
        dog.start()
    assert dog.running
    await dog.stop()
    await dog.stop()  # idempotent
    assert not dog.running
    time.sleep(0.3)  # noqa: ASYNC251 - a block nobody watches any more
    await settle()
    assert warnings_of(caplog) == []


async def test_the_thread_wakes_once_a_threshold_while_the_loop_runs() -> None:
    """It looks when the loop's last refresh could first be a threshold old, not every
    interval: a thread's wake-up costs CPU even when it finds nothing."""
    dog = LoopWatchdog(0.5)  # refreshes every 0.1 s, the server's default
    dog.start()
    try:
        await asyncio.sleep(2.1)
        checks = dog.checks
    finally:
        await dog.stop()
    # Every 0.4 to 0.5 s: four or five looks in 2.1 s, where an interval's wake-ups made 21.
    assert 3 <= checks <= 7, checks


async def test_a_block_is_named_soon_after_it_reaches_the_threshold(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Sleeping a threshold at a time does not let a block grow far past it unnamed."""
    caplog.set_level(logging.WARNING, logger="taskcast.watchdog")
    dog = LoopWatchdog(0.5)
    dog.start()
    try:
        await asyncio.sleep(0.33)  # out of step with the thread's looks
        await asyncio.create_task(sleepy_hog(1.2), name="hog")
        await settle()
    finally:
        await dog.stop()
    blocked = BLOCKED_SO_FAR.fullmatch(warnings_of(caplog)[0])
    assert blocked is not None
    assert 0.5 <= float(blocked[1]) <= 0.75, blocked[1]


def test_bad_threshold_is_refused() -> None:
    with pytest.raises(ValueError, match="positive"):
        LoopWatchdog(0)


def test_describe_frames_names_the_innermost_code_first() -> None:
    def inner() -> str:
        import sys

        return describe_frames(sys._getframe(), depth=2)

    text = inner()
    assert text.startswith("inner (tests/test_watchdog.py:")
    assert " < test_describe_frames_names_the_innermost_code_first (" in text
    assert describe_frames(None) == "unknown code"


async def test_a_block_that_was_a_garbage_collection_says_so(
    watchdog: LoopWatchdog, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="taskcast.watchdog")
    # Enough tracked objects that a full collection takes well over CollectorWatch.NOTABLE.
    hoard = [[n] for n in range(400_000)]

    def collect_then_sleep() -> None:
        gc.collect()
        time.sleep(0.4)  # the rest of the block: the watchdog's thread sees this part

    asyncio.get_running_loop().call_soon(collect_then_sleep)
    await asyncio.sleep(0.5)
    await settle()
    del hoard
    messages = warnings_of(caplog)
    assert any(
        re.search(r"s of it in \d+ garbage collection\(s\) \(the longest: generation 2, ", m)
        for m in messages
    ), messages
    stats = watchdog.stats()
    collector = stats["collector"]
    assert isinstance(collector, dict)
    assert collector["collections"][2] >= 1 and collector["longest_full_ms"] > 0
    assert stats["blocks"] == 1 and isinstance(stats["longest_block_ms"], float)
    assert stats["longest_block_ms"] > 0


async def test_the_collector_watch_counts_each_generation_while_installed() -> None:
    watch = CollectorWatch()
    watch.install()
    try:
        gc.collect(0)
        gc.collect(1)
    finally:
        watch.remove()
    gc.collect(1)  # not counted: removed
    figures = watch.as_json()
    counts = figures["collections"]
    assert isinstance(counts, list) and counts[0] >= 1 and counts[1] >= 1
    assert figures["thresholds"] == list(gc.get_threshold())
    assert watch.within(0, time.monotonic()) and watch.describe(0, 0) == ""
