"""Where each change of a run's record goes: to the store, then to the listeners; and, once the
run has ended, to its hook.

The store comes first so that a listener that reads the store (a page's list) finds the change.
Hooks run in the background, so a slow hook never holds up the runner; the runner waits for
them when it closes. A failing listener or hook is logged, never raised into the runner.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable
from typing import Any

from taskcast.records import FAILURE_STATUSES, TaskRecord
from taskcast.runtime.execution import Run
from taskcast.store.store import Store

__all__ = ["Notifier"]

logger = logging.getLogger(__name__)

Listener = Callable[[TaskRecord], None]


class Notifier:
    """Saves and announces each change of a run's record, and calls the hooks of ended runs."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._listeners: list[Listener] = []
        self._hooks: set[asyncio.Task[None]] = set()

    def changed(self, run: Run) -> None:
        """`run.record` has changed: save it (if the run saves), then tell the listeners.

        Raises StoreError, telling no one, if the store refuses the record (its result).
        """
        if run.spec.save or run.record.status in FAILURE_STATUSES:
            # save=False still keeps failures, as in Django Q. The pickles of the arguments
            # made for the first save serve every later one.
            run.pickled = self._store.save_task(run.record, run.pickled)
        self.announce(run.record)

    def announce(self, record: TaskRecord) -> None:
        """Tell the listeners of a change saved already (on the Redis engine: another node's)."""
        for listener in self._listeners:
            try:
                listener(record)
            except Exception:
                logger.exception("a task listener failed on %r", record)

    def add_listener(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        self._listeners.remove(listener)

    def call_hook(self, hook: Any, record: TaskRecord) -> None:
        """Call `hook(record)` in the background: awaited if it is a coroutine function, else
        in the loop's default executor."""
        loop = asyncio.get_running_loop()

        async def call() -> None:
            try:
                if inspect.iscoroutinefunction(hook):
                    await hook(record)
                else:
                    await loop.run_in_executor(None, hook, record)
            except Exception:
                logger.exception("hook %r of task %s failed", hook, record.id)

        task = loop.create_task(call())
        self._hooks.add(task)
        task.add_done_callback(self._hooks.discard)

    async def wait_hooks(self, timeout: float) -> None:
        """Wait up to `timeout` seconds for the hooks still running."""
        if self._hooks:
            await asyncio.wait(list(self._hooks), timeout=timeout)
