"""Task functions the tests start by dotted path (importable in worker processes too)."""

from __future__ import annotations

import asyncio
import os
import pathlib
import signal
import time
from typing import Any

from taskcast.publish import CommunicationBasePublisher, current_task_id, publish
from taskcast.spec import task_options


def fast_clock() -> None:
    """Worker initializer for tests: time.sleep runs a hundred times faster."""
    real_sleep = time.sleep

    def quick_sleep(seconds: float) -> None:
        real_sleep(seconds / 100)

    time.sleep = quick_sleep  # type: ignore[assignment]


def broken_initializer() -> None:
    """Worker initializer that fails, as a set-up whose database is down does."""
    raise RuntimeError("the set-up failed")


def hanging_initializer() -> None:
    """Worker initializer that never returns."""
    while True:
        time.sleep(1)


def add(a: int, b: int) -> int:
    return a + b


def identity(value: Any) -> Any:
    return value


def whoami() -> str | None:
    return current_task_id()


async def async_identity(value: Any) -> Any:
    return value


async def async_whoami() -> str | None:
    return current_task_id()


def fail(message: str = "boom") -> None:
    raise ValueError(message)


async def async_fail(message: str = "boom") -> None:
    raise ValueError(message)


def sleep_for(seconds: float) -> str:
    time.sleep(seconds)
    return "slept"


async def async_sleep_for(seconds: float) -> str:
    await asyncio.sleep(seconds)
    return "slept"


def stubborn(seconds: float) -> str:
    """Ignores cancellation, so only killing its worker stops it."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            time.sleep(0.05)
        except BaseException:
            pass
    return "finished"


def exit_hard(code: int = 1) -> None:
    os._exit(code)


def kill_self() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def unpicklable_result() -> Any:
    return lambda: None


async def async_unpicklable_result() -> Any:
    return lambda: None


def print_lines(count: int) -> int:
    for index in range(count):
        print(f"line {index}")
    return count


@publish("proc")
def process_events(
    cproxy: CommunicationBasePublisher | None = None,
    count: int = 5,
    pause: float = 0.0,
    **kwargs: Any,
) -> int:
    for index in range(count):
        if cproxy:
            cproxy.send_event(f"<li>{index}</li>===>>.data")
        if pause:
            time.sleep(pause)
    return count


@publish("proc")
def event_then_wait(
    cproxy: CommunicationBasePublisher | None = None, flag: str = "", **kwargs: Any
) -> str:
    """Sends one event, then waits until `flag` (a file path) exists: proves live delivery."""
    if cproxy:
        cproxy.send_event("first")
    deadline = time.monotonic() + 20
    while not pathlib.Path(flag).exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    return "released"


@publish("proc")
def events_then_fail(cproxy: CommunicationBasePublisher | None = None, **kwargs: Any) -> None:
    if cproxy:
        cproxy.send_event("one")
        cproxy.send_event("two")
    raise RuntimeError("broken on purpose")


@publish("proc")
def events_then_die(cproxy: CommunicationBasePublisher | None = None, **kwargs: Any) -> None:
    if cproxy:
        cproxy.send_event("before death")
    os._exit(3)


@publish("aio")
async def async_events(
    cproxy: CommunicationBasePublisher | None = None,
    count: int = 5,
    pause: float = 0.0,
    **kwargs: Any,
) -> int:
    for index in range(count):
        if cproxy:
            cproxy.send_event(f"<li>{index}</li>===>>.data")
        await asyncio.sleep(pause)
    return count


@publish("thr")
@task_options(executor="thread")
def thread_events(
    cproxy: CommunicationBasePublisher | None = None,
    count: int = 5,
    pause: float = 0.0,
    **kwargs: Any,
) -> int:
    for index in range(count):
        if cproxy:
            cproxy.send_event(f"<li>{index}</li>===>>.data")
        time.sleep(pause)
    return count


@task_options(executor="thread")
def thread_sleep_for(seconds: float) -> str:
    time.sleep(seconds)
    return "slept"


_attempts: dict[str, int] = {}


async def flaky(key: str, failures: int) -> int:
    """Fails `failures` times for `key`, then succeeds with the attempt number."""
    _attempts[key] = _attempts.get(key, 0) + 1
    if _attempts[key] <= failures:
        raise RuntimeError(f"attempt {_attempts[key]} fails")
    return _attempts[key]


@publish("aio")
async def flaky_events(
    cproxy: CommunicationBasePublisher | None = None, key: str = "", failures: int = 1
) -> int:
    """`flaky` with a stream: each attempt sends one event before it fails or succeeds."""
    _attempts[key] = _attempts.get(key, 0) + 1
    if cproxy:
        cproxy.send_event(f"attempt {_attempts[key]}")
    if _attempts[key] <= failures:
        raise RuntimeError(f"attempt {_attempts[key]} fails")
    return _attempts[key]


@publish("aio")
async def identity_events(
    cproxy: CommunicationBasePublisher | None = None, count: int = 10, text: str = "", **kwargs: Any
) -> int:
    """Sends `count` events of `text` as fast as the loop lets it."""
    for _ in range(count):
        if cproxy:
            cproxy.send_event(text)
        await asyncio.sleep(0)
    return count


@publish("golden")
async def send_events(
    cproxy: CommunicationBasePublisher | None = None, events: tuple[str, ...] = (), **kwargs: Any
) -> int:
    """Sends the given event strings, in order."""
    for event in events:
        if cproxy:
            cproxy.send_event(event)
    return len(events)


#: the keywords of each `note_run` call, by key; a test may put an event to be set at each call
NOTED: dict[str, list[dict[str, Any]]] = {}
NOTE_EVENTS: dict[str, asyncio.Event] = {}
#: events that `hold` waits for, by key (a test makes them and sets them)
HOLDS: dict[str, asyncio.Event] = {}


async def note_run(key: str, **kwargs: Any) -> str:
    """Notes its call under `key` (schedule tests count the runs this way)."""
    NOTED.setdefault(key, []).append(kwargs)
    event = NOTE_EVENTS.get(key)
    if event is not None:
        event.set()
    return key


async def hold(key: str) -> str:
    """Runs until the test sets `HOLDS[key]`."""
    await HOLDS[key].wait()
    return key


@publish("aio")
async def held_stream(
    cproxy: CommunicationBasePublisher | None = None, key: str = "", **kwargs: Any
) -> str:
    """Sends one event, runs until the test sets `HOLDS[key]`, then sends one more."""
    assert cproxy is not None
    cproxy.send_event("<li>first</li>===>>.data")
    await HOLDS[key].wait()
    cproxy.send_event("<li>last</li>===>>.data")
    return key


# -- faults and load (tests/test_faults.py, tests/test_restarts.py, tests/soak/) -----------------


@publish("fault")
def die(
    cproxy: CommunicationBasePublisher | None = None,
    how: str = "wait",
    seconds: float = 20.0,
    **kwargs: Any,
) -> str:
    """Sends its worker's pid as the first event, then ends as `how` says: "exit" (os._exit(1)),
    "segfault" (reads address 0), "memory" (asks for more memory than exists) or "wait" (sleeps
    `seconds`, to be killed from outside)."""
    import ctypes

    if cproxy:
        cproxy.send_event(str(os.getpid()))
    if how == "exit":
        os._exit(1)
    if how == "segfault":
        ctypes.string_at(0)
    if how == "memory":
        bytearray(1 << 62)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.01)
    return "survived"


def tick_file(
    path: str, seconds: float = 60.0, pause: float = 0.02, ignore_cancel: bool = False
) -> str:
    """Appends a line to `path` every `pause` seconds; when stopped, a last line saying how.
    With `ignore_cancel`, it carries on through TaskCancelled: only killing its worker stops it."""
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            with open(path, "a") as file:
                file.write("tick\n")
            try:
                time.sleep(pause)
            except BaseException:
                if not ignore_cancel:
                    raise
    except BaseException as exc:
        with open(path, "a") as file:
            file.write(f"stopped: {type(exc).__name__}\n")
        raise
    return "done"


async def block_loop(seconds: float) -> int:
    """Computes for `seconds` without awaiting: the whole event loop waits meanwhile."""
    deadline = time.monotonic() + seconds
    spins = 0
    while time.monotonic() < deadline:
        spins += 1
    return spins


@publish("flood")
def flood(
    cproxy: CommunicationBasePublisher | None = None,
    count: int = 1000,
    size: int = 100,
    **kwargs: Any,
) -> int:
    """Sends `count` events of about `size` characters as fast as the pipe takes them."""
    filler = "x" * size
    for index in range(count):
        if cproxy:
            cproxy.send_event(f"{index}:{filler}")
    return count


@publish("aio")
async def async_burst(
    cproxy: CommunicationBasePublisher | None = None, count: int = 10, **kwargs: Any
) -> int:
    """Sends `count` events within one step of the loop (no await between them), then returns."""
    for index in range(count):
        if cproxy:
            cproxy.send_event(index)
    return count
