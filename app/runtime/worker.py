"""The inside of a process-pool worker: runs one task at a time and streams its events home.

Plain, picklable, module-level functions that import nothing from aiohttp. Each worker process
owns the write end of its slot's event pipe and writes on it, in the format of `pipe`, each event
of its task as it is sent, print() output line by line, and `done` after the task's last event.
Each frame is written whole under a lock, so frames from the task's threads never interleave.

A worker outlives nothing of its server: a daemon thread reads the server's lifeline, a pipe whose
other end only the server holds. When the server ends in any way (SIGKILL included), the pipe
ends; the thread then stops the running task as a cancel does (TaskCancelled inside it), gives it
the cancel grace, and ends the worker with `os._exit`.
"""

from __future__ import annotations

import io
import os
import pickle
import signal
import sys
import threading
import time
import traceback
from multiprocessing.connection import Connection
from multiprocessing.sharedctypes import SynchronizedString
from types import FrameType
from typing import Any

from taskcast.errors import TaskCancelled
from taskcast.functions import import_callable
from taskcast.publish import TaskContext, running_in
from taskcast.runtime import pipe
from taskcast.spec import ProcessCall

_event_fd = -1
_event_pipe: Connection | None = None
_cancel_target: SynchronizedString | None = None
_send_lock = threading.Lock()
_current_task: str | None = None
_cancelled = False
_sending = False

#: the exit status of a worker that ended because its server had gone
SERVER_GONE_EXIT = 3
#: the exit status of a worker whose worker_initializer raised
INITIALIZER_FAILED_EXIT = 4


def initialize(
    event_pipe: Connection,
    cancel_target: SynchronizedString,
    user_initializer: str | None = None,
    lifeline: Connection | None = None,
    cancel_grace: float = 2.0,
) -> None:
    """Pool initializer: watch the server's lifeline, remember the pipe, listen for
    cancellation, run the user's set-up (after the watch starts, so a set-up that hangs still
    ends with the server)."""
    global _event_fd, _event_pipe, _cancel_target
    if lifeline is not None:
        threading.Thread(
            target=_watch_lifeline,
            args=(lifeline, cancel_grace),
            name="taskcast-lifeline",
            daemon=True,
        ).start()
    _event_pipe = event_pipe  # kept referenced: the Connection closes its fd when collected
    _event_fd = event_pipe.fileno()
    _cancel_target = cancel_target
    # Ctrl-C in a terminal and a service manager's SIGTERM reach the whole process group; the
    # server decides when its tasks stop, and a worker whose server died exits on its own.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGUSR1, _on_cancel_signal)
    if user_initializer:
        try:
            import_callable(user_initializer)()
        except BaseException:
            # Said here, where the traceback is; the server sees the exit status.
            _say(f"worker_initializer {user_initializer} failed:\n{traceback.format_exc()}")
            os._exit(INITIALIZER_FAILED_EXIT)


def _watch_lifeline(lifeline: Connection, grace: float) -> None:
    """Wait for the end of the server's lifeline, then stop the task and end this process."""
    try:
        while os.read(lifeline.fileno(), 64):
            pass  # the server never writes; anything read is ignored
    except OSError:
        pass
    task = _current_task
    _say(
        f"the server is gone; stopping task {task} and exiting"
        if task
        else "the server is gone; exiting"
    )
    if task is not None and _cancel_target is not None:
        _cancel_target.value = task.encode()
        os.kill(os.getpid(), signal.SIGUSR1)  # TaskCancelled in the task, as a cancel does
        deadline = time.monotonic() + grace
        while _current_task is not None and time.monotonic() < deadline:
            time.sleep(0.01)
    os._exit(SERVER_GONE_EXIT)


def _say(text: str) -> None:
    """One line on the worker's stderr (the server's log, when there is still someone to read)."""
    stream = sys.__stderr__
    if stream is None:
        return
    try:
        stream.write(f"taskcast worker {os.getpid()}: {text}\n")
        stream.flush()
    except (OSError, ValueError):
        pass


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


def _send_event(prefix: bytes, data_json: str) -> None:
    _write(pipe.event_frame(prefix, data_json))
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
    """sys.stdout/sys.stderr of a running task: complete lines go home as `Output`."""

    def __init__(self, task_id: str) -> None:
        self._task_id = task_id
        self._buffer = ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self._buffer += text
        if "\n" in self._buffer:
            complete, _, self._buffer = self._buffer.rpartition("\n")
            _write(pipe.output_frame(self._task_id, complete + "\n"))
        return len(text)

    def flush(self) -> None:
        if self._buffer:
            text, self._buffer = self._buffer, ""
            _write(pipe.output_frame(self._task_id, text))


def run(task_id: str, stream_id: str | None, call: ProcessCall) -> Any:
    """Run one task: unpickle its call, execute it in a TaskContext, report `done` at the end."""
    global _current_task, _cancelled
    ref = pickle.loads(call.reference)
    args, kwargs = pickle.loads(call.args), pickle.loads(call.kwargs)
    func = ref if callable(ref) else import_callable(ref)
    prefix = pipe.event_prefix(task_id)
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
        _write(pipe.done_frame(task_id))
