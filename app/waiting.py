"""Waiting as Django Q's calls wait: `wait` milliseconds (-1: forever), polling what is stored.

Polling runs in the caller's thread, which must not be the server's event loop: there it would
freeze the very server that finishes the task, so it is refused with the awaitable to use.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from taskcast import defaults
from taskcast.errors import NoRunnerError, TaskcastError

T = TypeVar("T")

#: the first pause between two looks, and the longest (seconds)
FIRST_PAUSE = 0.005
LONGEST_PAUSE = 0.05


def _on_loop_thread() -> bool:
    try:
        return defaults.RUNNER.get().on_loop_thread()
    except NoRunnerError:
        return False


def poll(look: Callable[[], T | None], wait: int, call: str) -> T | None:
    """`look()` until it finds something, for up to `wait` ms (-1: no end); None if it never
    does. With `wait` 0 it looks once, wherever it is called from."""
    found = look()
    if found is not None or not wait:
        return found
    if _on_loop_thread():
        raise TaskcastError(
            f"{call}(..., wait=...) would block the event loop it is called on: in async code "
            "use `await wait_task(task_id, timeout=...)` or `await wait_result(...)`"
        )
    deadline = None if wait < 0 else time.monotonic() + wait / 1000
    pause = FIRST_PAUSE
    while True:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            pause = min(pause, left)
        time.sleep(pause)
        pause = min(pause * 2, LONGEST_PAUSE)
        found = look()
        if found is not None:
            return found


def left_of(wait: int, since: float) -> int:
    """What is left, in ms, of a wait of `wait` ms begun at `since` (monotonic): -1 stays -1,
    and a wait that has run out is 0 (one more look)."""
    if wait < 0:
        return wait
    return max(0, wait - int((time.monotonic() - since) * 1000))
