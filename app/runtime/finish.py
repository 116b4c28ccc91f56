"""The end of a run's attempt, recorded: its outcome in the run's final record, or the run queued
again while it has attempts left; then the end of its events and its stream, its waiters, and
its hook.

A final record the store refuses (its result) is replaced by a failed one that says why.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from taskcast.errors import StoreError
from taskcast.records import TaskStatus
from taskcast.runtime.execution import Run, short_error
from taskcast.runtime.notify import Notifier
from taskcast.runtime.queue import RunQueue
from taskcast.runtime.stamps import utcnow

__all__ = ["Finisher"]

logger = logging.getLogger(__name__)


class Finisher:
    """Records how each attempt of a run ended, and lets the run go or queues it again."""

    __slots__ = ("_active", "_closing", "_kick", "_notifier", "_queue", "_streams")

    def __init__(
        self,
        active: dict[str, Run],
        streams: dict[str, str],
        queue: RunQueue,
        notifier: Notifier,
        kick: Callable[[], None],
        closing: Callable[[], bool],
    ) -> None:
        #: the runner's runs by task id and by stream id: a run leaves both at its end
        self._active = active
        self._streams = streams
        self._queue = queue
        self._notifier = notifier
        #: asks the runner for a turn: an end frees a place, a retry waits again
        self._kick = kick
        #: a closing runner retries nothing
        self._closing = closing

    def finish(
        self, run: Run, status: TaskStatus, result: Any = None, error: str | None = None
    ) -> None:
        """Record that `run`'s attempt ended as `status` (loop thread only)."""
        if run.record.status is TaskStatus.RUNNING:
            self._queue.ended(run)
        if (
            status is TaskStatus.FAILED
            and run.record.attempt_count < run.spec.max_attempts
            and not self._closing()
        ):
            self._retry_later(run, error)
            return
        record = run.record.replace(
            status=status,
            stopped=utcnow(),
            error=error,
            result=result if status is TaskStatus.SUCCESS else None,
            output=run.events.output,
        )
        run.record = record
        try:
            self._notifier.changed(run)
        except StoreError as exc:
            logger.error("task %s: %s", run.id, exc)
            run.record = record = record.replace(
                status=TaskStatus.FAILED,
                result=None,
                error=f"the result could not be stored: {exc}",
            )
            self._notifier.changed(run)
        run.events.end(record.status.value, short_error(record.error))
        stream_id = run.spec.stream_id
        if stream_id is not None and self._streams.get(stream_id) == run.id:
            del self._streams[stream_id]
        self._active.pop(run.id, None)
        if not run.done.done():
            run.done.set_result(record)
        if run.spec.hook is not None and (run.spec.save or not record.success):
            # Django Q calls the hook when it saves the task, so not after an unsaved success.
            self._notifier.call_hook(run.spec.hook, record)
        self._kick()

    def _retry_later(self, run: Run, error: str | None) -> None:
        run.record = run.record.replace(status=TaskStatus.QUEUED, error=error)
        self._notifier.changed(run)
        logger.info(
            "task %s failed attempt %d of %d; retrying in %g s",
            run.id,
            run.record.attempt_count,
            run.spec.max_attempts,
            run.spec.retry_delay,
        )
        self._queue.put_later(run, run.spec.retry_delay)
        self._kick()
