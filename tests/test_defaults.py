"""Tests of the process-wide defaults and of calling onto their loop from another thread."""

from __future__ import annotations

import asyncio
import threading

import pytest

from taskcast.defaults import Default, call_on_loop, run_on_loop_thread
from taskcast.errors import NoRunnerError


def test_nothing_installed_is_an_error_that_says_what_to_do() -> None:
    default: Default[object] = Default("start a server first")
    with pytest.raises(NoRunnerError, match="start a server first"):
        default.get()


def test_remove_leaves_another_apps_default_in_place() -> None:
    default: Default[object] = Default("none")
    first, second = object(), object()
    default.install(first)
    default.install(second)
    default.remove(first)
    assert default.get() is second
    default.remove(second)
    with pytest.raises(NoRunnerError):
        default.get()


async def test_call_on_loop_returns_the_result_and_cancels_what_times_out() -> None:
    loop = asyncio.get_running_loop()
    cancelled = asyncio.Event()

    async def answer() -> int:
        return 42

    async def forever() -> None:
        try:
            await asyncio.sleep(60)
        finally:
            cancelled.set()

    results: list[object] = []

    def from_a_thread() -> None:
        results.append(call_on_loop(loop, answer))
        try:
            call_on_loop(loop, forever, timeout=0.05)
        except TimeoutError as exc:
            results.append(type(exc))

    thread = threading.Thread(target=from_a_thread)
    thread.start()
    await asyncio.wait_for(cancelled.wait(), 5)
    await asyncio.to_thread(thread.join, 5)
    assert results == [42, TimeoutError]


class LoopHere:
    """A loop owner for the test: the running loop, and the thread that runs it."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self._thread = threading.get_ident()

    def on_loop_thread(self) -> bool:
        return threading.get_ident() == self._thread


async def test_run_on_loop_thread_calls_at_once_there_and_from_elsewhere_on_the_loop() -> None:
    owner = LoopHere()
    loop_thread = threading.get_ident()
    # On the loop's thread: called right now, in this step, not scheduled.
    assert run_on_loop_thread(owner, threading.get_ident) == loop_thread
    # From another thread: run on the loop's thread, and its result handed back.
    elsewhere = await asyncio.to_thread(run_on_loop_thread, owner, threading.get_ident, 5)
    assert elsewhere == loop_thread

    def fail() -> None:
        raise ValueError("from the loop")

    with pytest.raises(ValueError, match="from the loop"):
        await asyncio.to_thread(run_on_loop_thread, owner, fail, 5)
