"""`@publish`, the publisher a task receives as `cproxy`, and the context of the running task.

Mirrors `pytigon_lib.schtasks.publish`: the decorator consumes `task_publish_id`, names the stream
`group__id` and passes a publisher as the keyword `cproxy`. Where the events go is decided by the
runner, which runs the task inside a `TaskContext`; called outside any runner (a plain call in a
script) the publisher writes the events to the log instead.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import json
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import Any, TypeVar

from taskcast.errors import TaskCancelled, TaskcastError
from taskcast.jsonable import as_json
from taskcast.screen import ProgressReport, RemoteScreen

# What task code imports, as from pytigon_lib.schtasks.publish (its every public name).
__all__ = [
    "DEFAULT_TIMEOUT",
    "CommunicationBasePublisher",
    "CommunicationBaseReceiver",
    "CommunicationByCachePublisher",
    "CommunicationByCacheReceiver",
    "NotSupportedError",
    "RemoteScreen",
    "StreamPublisher",
    "current_task_id",
    "publish",
]

#: Pytigon's lifetime of an event in its cache (seconds). Taskcast keeps a stream's events with
#: the task's record and sets no time limit; the name is here for code that reads it.
DEFAULT_TIMEOUT = 60 * 60


class NotSupportedError(TaskcastError, NotImplementedError):
    """A Pytigon feature that Taskcast does not offer; the message says what to use instead."""


logger = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])

#: attribute the decorator sets on the wrapper: the group, so the runner knows the stream id early
GROUP_ATTRIBUTE = "__taskcast_group__"


def stream_id_for(group: str, task_publish_id: object) -> str:
    """The stream id rule of the contract: `group__id` when the id is truthy, else the bare group."""
    return f"{group}__{task_publish_id}" if task_publish_id else group


# One encoder for every event: json.dumps with a keyword builds a new encoder on each call.
# NaN and Infinity are not JSON: a browser's JSON.parse would reject the whole frame.
_EVENT_ENCODER = json.JSONEncoder(allow_nan=False)


def encode_event(value: object) -> str:
    """JSON-encode an event's value once; the channel and the store reuse the text.

    A value that is not JSON (a date, bytes, NaN...) never fails the task: Pytigon's publisher
    accepts any value, so it is sent as text (`as_json`) and the page receives a string.
    """
    try:
        return _EVENT_ENCODER.encode(value)
    except (TypeError, ValueError):
        return _EVENT_ENCODER.encode(as_json(value))


class TaskContext:
    """What the running task can reach: its id, its stream, and the way its events leave."""

    __slots__ = ("emit", "is_cancelled", "stream_id", "task_id")

    def __init__(
        self,
        task_id: str,
        stream_id: str | None,
        emit: Callable[[str], None],
        is_cancelled: Callable[[], bool] = lambda: False,
    ) -> None:
        self.task_id = task_id
        self.stream_id = stream_id
        self.emit = emit
        self.is_cancelled = is_cancelled


_current: contextvars.ContextVar[TaskContext | None] = contextvars.ContextVar(
    "taskcast_task", default=None
)


def current_task_id() -> str | None:
    """The id of the task whose code is running now, None outside a task."""
    context = _current.get()
    return context.task_id if context is not None else None


def context_for(task: TaskContext) -> contextvars.Context:
    """A copy of the caller's context in which `task` is the running task's: the context that
    an asyncio task running the task's code is created with."""
    context = contextvars.copy_context()
    context.run(_current.set, task)
    return context


@contextmanager
def running_in(context: TaskContext) -> Iterator[None]:
    """Make `context` the current task's context for the code inside the block."""
    token = _current.set(context)
    try:
        yield
    finally:
        _current.reset(token)


class CommunicationBasePublisher:
    """The publisher interface task code sees as `cproxy` (Pytigon's base class)."""

    def send_event(self, value: Any) -> None:
        pass

    def close(self) -> None:
        pass

    def progress(self, done: float, total: float | None = None, text: str = "") -> None:
        """Report progress (a Taskcast addition; a publisher that cannot show it ignores it)."""

    def __enter__(self) -> CommunicationBasePublisher:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class StreamPublisher(CommunicationBasePublisher):
    """Sends a running task's events to its stream, in call order, value unchanged."""

    def __init__(self, context: TaskContext, stream_id: str) -> None:
        self._context = context
        self.stream_id = stream_id
        self._closed = False
        self._progress = ProgressReport()

    @property
    def id(self) -> str:
        """The stream id, under Pytigon's name for it."""
        return self.stream_id

    @property
    def task_id(self) -> str:
        return self._context.task_id

    @property
    def closed(self) -> bool:
        return self._closed

    def send_event(self, value: Any) -> None:
        if self._context.is_cancelled():
            raise TaskCancelled(f"task {self._context.task_id} was cancelled")
        if self._closed:
            # Pytigon's publisher accepts events after close() and its pages never see them
            # (they come after the end mark): the task goes on, and the event is dropped.
            logger.warning(
                "task %s: event on %s after cproxy.close() is dropped, as in Pytigon: %.200r",
                self._context.task_id,
                self.stream_id,
                value,
            )
            return
        self._context.emit(encode_event(value))

    def close(self) -> None:
        # The runner ends the stream (with the task's final state) once the task has finished.
        self._closed = True

    def progress(self, done: float, total: float | None = None, text: str = "") -> None:
        """Show a progress bar with percentage and time left, as ordinary mini-language events."""
        event = self._progress.event(done, total, text, time.monotonic())
        if event is not None:
            self.send_event(event)

    def __repr__(self) -> str:
        return f"<StreamPublisher {self.stream_id!r} task={self._context.task_id[:8]}>"


class LogPublisher(CommunicationBasePublisher):
    """The publisher of a @publish function called outside a runner: events go to the log."""

    def __init__(self, stream_id: str) -> None:
        self.stream_id = stream_id
        self.task_id: str | None = None

    @property
    def id(self) -> str:
        return self.stream_id

    def send_event(self, value: Any) -> None:
        encode_event(value)
        logger.info("event on %s (no runner): %r", self.stream_id, value)

    def progress(self, done: float, total: float | None = None, text: str = "") -> None:
        logger.info("progress of %s (no runner): %s of %s %s", self.stream_id, done, total, text)


def _publisher_for(stream_id: str) -> CommunicationBasePublisher:
    context = _current.get()
    if context is None:
        return LogPublisher(stream_id)
    return StreamPublisher(context, stream_id)


class CommunicationByCachePublisher(StreamPublisher):
    """Pytigon's publisher made by hand, `CommunicationByCachePublisher(id)`: inside a running task
    whose stream is `id` it is that stream's publisher. Anywhere else there is no stream to write
    to (Taskcast has no shared cache): it raises `NotSupportedError`."""

    def __init__(self, id: str) -> None:
        context = _current.get()
        if context is None or context.stream_id != id:
            raise NotSupportedError(
                f"CommunicationByCachePublisher({id!r}) works only inside the running @publish "
                "task whose stream is that id; use the cproxy that @publish passes"
            )
        super().__init__(context, id)


class CommunicationBaseReceiver:
    """Pytigon's receiver interface: `process()` hands new events to an observer's
    `handle_start`, `handle_event(value)` and `handle_end`."""

    def __init__(self, id: str, observer: Any | None = None) -> None:
        self.id = id
        self.observer = observer

    def process(self) -> bool:
        return False

    def handle_start(self) -> None:
        if self.observer:
            self.observer.handle_start()

    def handle_event(self, value: Any) -> None:
        if self.observer:
            self.observer.handle_event(value)

    def handle_end(self) -> None:
        if self.observer:
            self.observer.handle_end()


class CommunicationByCacheReceiver(CommunicationBaseReceiver):
    """Pytigon reads a stream from its cache; Taskcast's streams are read over the websocket."""

    def __init__(self, id: str, observer: Any | None = None) -> None:
        raise NotSupportedError(
            f"CommunicationByCacheReceiver({id!r}): Taskcast has no event cache; subscribe to "
            "the stream over /schtasks/show_task_events/channel/ (or the hub's subscribe)"
        )


def publish(task_publish_group: str = "default") -> Callable[[F], F]:
    """Decorate a task so it receives a publisher as `cproxy` and streams to `group__id`."""
    group = task_publish_group
    if not isinstance(group, str) or not group:
        raise TypeError(f"publish() takes a group name (a non-empty str), not {group!r}")

    def decorator(func: F) -> F:
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                cproxy = _publisher_for(stream_id_for(group, kwargs.pop("task_publish_id", None)))
                kwargs["cproxy"] = cproxy
                try:
                    return await func(*args, **kwargs)
                finally:
                    cproxy.close()

            wrapper: Callable[..., Any] = async_wrapper
        else:

            @functools.wraps(func)
            def sync_wrapper(*args: Any, **kwargs: Any) -> Any:
                cproxy = _publisher_for(stream_id_for(group, kwargs.pop("task_publish_id", None)))
                kwargs["cproxy"] = cproxy
                try:
                    return func(*args, **kwargs)
                finally:
                    cproxy.close()

            wrapper = sync_wrapper
        setattr(wrapper, GROUP_ATTRIBUTE, group)
        return wrapper  # type: ignore[return-value]

    return decorator


def publish_group(func: Callable[..., Any]) -> str | None:
    """The group of a @publish function, None for any other callable."""
    return getattr(func, GROUP_ATTRIBUTE, None)
