"""The process-wide defaults: the runner and the scheduler that Django Q's calls use, since
`async_task("tasks.fn")` and `schedule(...)` take no app; and calling onto their loop from other
threads.

The app installs each at startup and removes it at cleanup; asking for one when none is installed
is a clear error that says how to start a server. Nothing else in Taskcast is process-wide.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from taskcast.errors import NoRunnerError

if TYPE_CHECKING:
    from taskcast.runtime.runner import Runner
    from taskcast.schedules.scheduler import Scheduler

T = TypeVar("T")


class Default(Generic[T]):
    """One process-wide object of a kind, installed by the running app."""

    def __init__(self, missing: str) -> None:
        self._missing = missing  # the error's text when nothing is installed
        self._value: T | None = None

    def get(self) -> T:
        """The installed object; NoRunnerError when no server runs in this process."""
        if self._value is None:
            raise NoRunnerError(self._missing)
        return self._value

    def install(self, value: T | None) -> None:
        """Make `value` the default (None: remove whichever is installed)."""
        self._value = value

    def remove(self, value: T) -> None:
        """Remove `value` if it is still the default; another app's installed since stays."""
        if self._value is value:
            self._value = None


RUNNER: Default[Runner] = Default(
    "no Taskcast server is running in this process: start one with `python run.py` or "
    "`web.run_app(app.create_app())`, or pass sync=True to run the task here and now"
)
SCHEDULER: Default[Scheduler] = Default(
    "no Taskcast server is running in this process: schedules are added while one runs "
    "(in an init_schedule(scheduler) function of a task module, or in a view or a task)"
)


def call_on_loop(
    loop: asyncio.AbstractEventLoop,
    make: Callable[[], Coroutine[Any, Any, T]],
    timeout: float | None = None,
) -> T:
    """Run the coroutine `make()` on `loop` from another thread and wait for its result; after
    `timeout` seconds it is cancelled and TimeoutError raised."""
    future = asyncio.run_coroutine_threadsafe(make(), loop)
    try:
        return future.result(timeout)
    except concurrent.futures.TimeoutError:
        future.cancel()
        raise


class LoopOwner(Protocol):
    """A runner or a scheduler: it lives on one event loop and knows its thread."""

    @property
    def loop(self) -> asyncio.AbstractEventLoop: ...

    def on_loop_thread(self) -> bool: ...


def run_on_loop_thread(owner: LoopOwner, call: Callable[[], T], timeout: float | None = None) -> T:
    """`call()` on the owner's loop thread: at once when already there, else from this thread
    (a thread task, a view of another thread) on the loop, waiting for its result."""
    if owner.on_loop_thread():
        return call()

    async def run() -> T:
        return call()

    return call_on_loop(owner.loop, run, timeout)
