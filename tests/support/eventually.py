"""Waiting in tests: until a condition holds or time runs out, never a bare sleep."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


async def eventually(
    condition: Callable[[], object], timeout: float = 5, what: str = "", every: float = 0.01
) -> None:
    """Poll `condition` until it is true; fail with `what` after `timeout` seconds.

    The deadline is measured on the clock, not counted in polls, so a busy machine that wakes
    the test late does not shorten the wait.
    """
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            raise AssertionError(f"not within {timeout} s: {what or condition}")
        await asyncio.sleep(every)


def eventually_sync(
    condition: Callable[[], object], timeout: float = 5, what: str = "", every: float = 0.01
) -> None:
    """`eventually` for code outside an event loop (threads, subprocess checks)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            raise AssertionError(f"not within {timeout} s: {what or condition}")
        time.sleep(every)


async def eventually_awaited(
    condition: Callable[[], Awaitable[object]],
    timeout: float = 5,
    what: str = "",
    every: float = 0.05,
) -> None:
    """`eventually` for a condition that must be awaited (an HTTP call, a Redis read)."""
    deadline = time.monotonic() + timeout
    while not await condition():
        if time.monotonic() >= deadline:
            raise AssertionError(f"not within {timeout} s: {what or condition}")
        await asyncio.sleep(every)
