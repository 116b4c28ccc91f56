"""The inside of a process-pool worker: runs one task at a time and streams its events home.

Plain, picklable, module-level functions that import nothing from aiohttp. Each worker process
owns the write end of its slot's event pipe. Messages are length-prefixed and written whole
(under a lock) so the server can read them without blocking: each event of a task as its JSON
text (see `event_frame`), then pickles of ("output", task_id, text) for print() output and
("done", task_id) after the task's last event. The server hands consecutive events on as one
("events", task_id, [...]).
"""

from __future__ import annotations

import importlib
import io
import os
import pickle
import signal
import struct
import sys
import threading
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.sharedctypes import SynchronizedString
from types import FrameType
from typing import Any

from taskcast.errors import TaskCancelled
from taskcast.publish import TaskContext, running_in

HEADER = struct.Struct("!I")
#: the first byte of an event's body; a pickle (protocol 2 and up) starts with 0x80
EVENT_MARK = b"\x00"

_event_fd = -1
_event_pipe: Connection | None = None
_cancel_target: SynchronizedString | None = None
_send_lock = threading.Lock()
_current_task: str | None = None
_cancelled = False
_sending = False


def resolve(ref: str | Callable[..., Any]) -> Callable[..., Any]:
    """Import `package.module.function` (or return the callable itself)."""
    if callable(ref):
        return ref
    module_name, _, attribute = ref.rpartition(".")
    if not module_name:
        raise ImportError(f"{ref!r} is not a dotted path like 'tasks.long_running_process'")
    module = importlib.import_module(module_name)
    target: Callable[..., Any] = getattr(module, attribute)
    return target


def initialize(
    event_pipe: Connection, cancel_target: SynchronizedString, user_initializer: str | None = None
) -> None:
    """Pool initializer: remember the pipe, listen for cancellation, run the user's set-up."""
    global _event_fd, _event_pipe, _cancel_target
    _event_pipe = event_pipe  # kept referenced: the Connection closes its fd when collected
    _event_fd = event_pipe.fileno()
    _cancel_target = cancel_target
    # Ctrl-C in a terminal and a service manager's SIGTERM reach the whole process group; the
    # server decides when its tasks stop, and a worker whose server died exits on its own.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGUSR1, _on_cancel_signal)
    if user_initializer:
        resolve(user_initializer)()


def ready() -> int:
    """Warm-up call: the worker is started and importable; returns its pid."""
    return os.getpid()


def _on_cancel_signal(signum: int, frame: FrameType | None) -> None:
    global _cancelled
    if _current_task is None or _cancel_target is None:
        return
    if _cancel_target.value.decode() != _current_task:
        return  # a late signal meant for the previous task of this worker
    _cancelled = True
    if not _sending:
        # Interrupts blocking calls such as time.sleep(); a write in progress finishes first.
        raise TaskCancelled(f"task {_current_task} was cancelled")


def pipe_frame(message: tuple[Any, ...]) -> bytes:
    """One message as it travels on the event pipe: its length, then its pickle."""
    body = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return HEADER.pack(len(body)) + body


def event_prefix(task_id: str) -> bytes:
    """What starts the body of each event of `task_id` on the pipe (see `event_frame`)."""
    tag = task_id.encode()
    if len(tag) > 255:
        raise ValueError(f"task id {task_id!r} is longer than 255 bytes")
    return EVENT_MARK + bytes((len(tag),)) + tag


def event_frame(prefix: bytes, data_json: str) -> bytes:
    """An event as it travels on the pipe: a pickle costs more than the event's own text, so
    its body is EVENT_MARK (never the first byte of a pickle), the task id's length and the id,
    then the JSON text in UTF-8."""
    body = prefix + data_json.encode()
    return HEADER.pack(len(body)) + body


def _send(message: tuple[Any, ...]) -> None:
    _write(pipe_frame(message))


def _send_event(prefix: bytes, data_json: str) -> None:
    _write(event_frame(prefix, data_json))
    if _cancelled and _current_task is not None:
        raise TaskCancelled(f"task {_current_task} was cancelled")


def _write(frame_bytes: bytes) -> None:
    global _sending
    with _send_lock:
        _sending = True
        try:
            written = os.write(_event_fd, frame_bytes)
            if written < len(frame_bytes):  # only a message larger than the pipe's room
                view = memoryview(frame_bytes)[written:]
                while view:
                    view = view[os.write(_event_fd, view) :]
        finally:
            _sending = False


class _TaskOutput(io.TextIOBase):
    """sys.stdout/sys.stderr of a running task: complete lines go home as ("output", ...)."""

    def __init__(self, task_id: str) -> None:
        self._task_id = task_id
        self._buffer = ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self._buffer += text
        if "\n" in self._buffer:
            complete, _, self._buffer = self._buffer.rpartition("\n")
            _send(("output", self._task_id, complete + "\n"))
        return len(text)

    def flush(self) -> None:
        if self._buffer:
            text, self._buffer = self._buffer, ""
            _send(("output", self._task_id, text))


def run(task_id: str, stream_id: str | None, payload: bytes) -> Any:
    """Run one task: unpickle its call, execute it in a TaskContext, report `done` at the end."""
    global _current_task, _cancelled
    ref, args, kwargs = pickle.loads(payload)
    func = resolve(ref)
    prefix = event_prefix(task_id)
    context = TaskContext(
        task_id, stream_id, lambda data_json: _send_event(prefix, data_json), lambda: _cancelled
    )
    output = _TaskOutput(task_id)
    saved = sys.stdout, sys.stderr
    sys.stdout = sys.stderr = output
    _cancelled = False
    _current_task = task_id
    try:
        with running_in(context):
            return func(*args, **kwargs)
    finally:
        _current_task = None
        sys.stdout, sys.stderr = saved
        output.flush()
        _send(("done", task_id))
