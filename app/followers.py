"""What to do once a task has ended: one runner listener per runner, for chains and iterables.

What comes after a task is set up on the loop's thread in the step that queues it, and runs from
a listener of the runner, so it cannot miss the task's end.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable

from taskcast.records import TaskRecord
from taskcast.runtime.runner import Runner

logger = logging.getLogger(__name__)

Then = Callable[[TaskRecord], None]


class _Followers:
    """What to do after given tasks of one runner have ended."""

    def __init__(self, runner: Runner) -> None:
        self._runner = runner
        self._after: dict[str, Then] = {}
        runner.add_listener(self._changed)

    def after(self, task_id: str, then: Then) -> None:
        self._after[task_id] = then

    def _changed(self, record: TaskRecord) -> None:
        if record.status.is_final and (then := self._after.pop(record.id, None)) is not None:
            # Later in this loop turn: the runner is still in the middle of ending the task.
            self._runner.loop.call_soon(self._run, then, record)

    @staticmethod
    def _run(then: Then, record: TaskRecord) -> None:
        try:
            then(record)
        except Exception:
            logger.exception("what follows task %s could not be started", record.id)


_followers: weakref.WeakKeyDictionary[Runner, _Followers] = weakref.WeakKeyDictionary()


def after(runner: Runner, task_id: str, then: Then) -> None:
    """Call `then(record)` once the task has ended (on the loop's thread only)."""
    followers = _followers.get(runner)
    if followers is None:
        followers = _followers[runner] = _Followers(runner)
    followers.after(task_id, then)
