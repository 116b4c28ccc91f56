"""The exceptions Taskcast raises to task code, views and scripts."""

from __future__ import annotations


class TaskcastError(Exception):
    """Base class of every error Taskcast raises on purpose."""


class NoRunnerError(TaskcastError, RuntimeError):
    """A task API call needs a running server and there is none in this process."""


class TaskSpecError(TaskcastError, ValueError):
    """`async_task` was given something it cannot run (bad path, not callable, unpicklable)."""


class StreamBusyError(TaskcastError, RuntimeError):
    """A task with the same stream id is still queued or running."""

    def __init__(self, stream_id: str, task_id: str) -> None:
        super().__init__(
            f"stream {stream_id!r} is still in use by task {task_id}: wait for it to finish "
            f"or cancel it before starting another run with the same task_publish_id"
        )
        self.stream_id = stream_id
        self.task_id = task_id


class UnknownTaskError(TaskcastError, LookupError):
    """No task with that id or name exists."""


class StoreError(TaskcastError):
    """The store could not save or read something (a value that does not pickle, a disk error)."""


class EngineUnavailableError(TaskcastError, ConnectionError):
    """The Redis engine cannot reach Redis (or Redis answered with an error): what was asked did
    not happen, and nothing stored was changed; the node reconnects by itself."""


class RunnerClosedError(TaskcastError, RuntimeError):
    """The server is shutting down and accepts no new tasks."""


class TaskCancelled(BaseException):
    """Raised inside a task that was cancelled or timed out, to stop its work.

    A BaseException, like asyncio.CancelledError, so that `except Exception:` in task code does not
    swallow it.
    """
