"""The executor of thread tasks: one daemon thread per task.

A thread cannot be killed. A thread task that ignores its cancellation is abandoned by the
runner; on a daemon thread it cannot also keep the process from exiting, as the threads of a
ThreadPoolExecutor do (the interpreter joins those at exit). The runner bounds how many run at
once (`thread_workers`), so there is no pool to keep.
"""

from __future__ import annotations

import concurrent.futures
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


class DaemonThreads(concurrent.futures.Executor):
    """Runs each submitted call on a new daemon thread."""

    def __init__(self, name: str = "taskcast") -> None:
        self._name = name
        self._count = 0

    def submit(
        self, fn: Callable[..., T], /, *args: Any, **kwargs: Any
    ) -> concurrent.futures.Future[T]:
        future: concurrent.futures.Future[T] = concurrent.futures.Future()

        def run() -> None:
            if not future.set_running_or_notify_cancel():
                return
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:
                future.set_exception(exc)
            else:
                future.set_result(result)

        self._count += 1
        threading.Thread(target=run, name=f"{self._name}-{self._count}", daemon=True).start()
        return future
