"""The loop watchdog: logs which asyncio task blocked the event loop, and for how long.

An `async def` task that computes instead of awaiting freezes the whole server: no page, no
websocket, no other task moves until it yields. The watchdog makes that visible in the log.

How it works. The loop refreshes a timestamp with a periodic callback (every `interval`). A
daemon thread checks the timestamp when it could first be `threshold` old (so, while the loop
runs, about once a threshold); when it is older than `threshold`, the loop is blocked, and
the thread logs one WARNING for that blocking episode: how long so far, the asyncio task that is
running (`asyncio.current_task(loop)`), and where the loop thread's code is (its innermost
frames, from `sys._current_frames()`). When the loop runs again, its next refresh sees the
episode and logs a second WARNING with the total.

Why a thread reads the loop's own bookkeeping: while the loop is blocked, nothing on the loop can
run, so only another thread can say so while it lasts (an endless loop would otherwise never be
reported at all). `asyncio.current_task(loop)` is the loop's record of the task it is stepping,
set and cleared by the task itself around each step; reading it from the thread is one lookup
under the GIL, and it names the task that holds the loop now. The frames show the line, which
matters most when the task has no telling name.

What it cannot do: code that holds the GIL for the whole block (one long C call, such as a huge
`sorted()`) also stops the watchdog thread. Such an episode is then reported once, by the loop's
own refresh when the block ends ("noticed after it ended"), without the task's frames.

Garbage collections are such blocks: a full collection of a process that holds millions of
objects stops every thread for a good part of a second. While it runs, the watchdog times every
collection (`gc.callbacks`: its generation, how long it took, how many objects it freed), and a
block's warning says how much of it was the collector's. `stats()` sums both up (blocks, the
longest, collections per generation, the longest pause) for the health check.

Plain asyncio and threading; the web layer's cleanup context starts and stops it.
"""

from __future__ import annotations

import asyncio
import collections
import gc
import logging
import os
import sys
import threading
import time
from types import FrameType

logger = logging.getLogger(__name__)

#: innermost frames of the loop thread named in a warning
FRAMES_SHOWN = 3


def describe_frames(frame: FrameType | None, depth: int = FRAMES_SHOWN) -> str:
    """'func (file:line) < caller (file:line)', innermost first, paths relative to the cwd."""
    parts: list[str] = []
    cwd = os.getcwd() + os.sep
    while frame is not None and len(parts) < depth:
        code = frame.f_code
        path = code.co_filename
        path = path[len(cwd) :] if path.startswith(cwd) else path
        parts.append(f"{code.co_name} ({path}:{frame.f_lineno})")
        frame = frame.f_back
    return " < ".join(parts) if parts else "unknown code"


def describe_task(task: asyncio.Task[object] | None) -> str:
    if task is None:
        return "a callback outside any task"
    coro = task.get_coro()
    name = getattr(coro, "__qualname__", type(coro).__name__)
    return f"task {task.get_name()!r} (coroutine {name})"


class _Pause:
    """One garbage collection: when it ended (monotonic), how long it took, what it did."""

    __slots__ = ("collected", "ended", "generation", "seconds")

    def __init__(self, ended: float, seconds: float, generation: int, collected: int) -> None:
        self.ended = ended
        self.seconds = seconds
        self.generation = generation
        self.collected = collected


class CollectorWatch:
    """Times every garbage collection while installed (`gc.callbacks`).

    The callback runs in whichever thread triggered the collection, with the GIL held, so it
    only notes the time and keeps a few figures: no logging, no lock."""

    #: pauses kept to explain the loop's blocks (the watchdog looks back a few seconds at most)
    KEPT = 256

    def __init__(self) -> None:
        self.counts = [0, 0, 0]  # collections per generation
        self.seconds = 0.0  # all pauses together
        self.longest: _Pause | None = None
        self.longest_full: _Pause | None = None
        self.recent: collections.deque[_Pause] = collections.deque(maxlen=self.KEPT)
        #: objects Taskcast's tuning froze at start-up (`gc.get_freeze_count()` walks all of
        #: them, tens of thousands, so the health check does not ask it each time)
        self.frozen = 0
        self._began = 0.0

    def install(self) -> None:
        if self._callback not in gc.callbacks:
            gc.callbacks.append(self._callback)

    def remove(self) -> None:
        if self._callback in gc.callbacks:
            gc.callbacks.remove(self._callback)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        now = time.perf_counter()
        if phase == "start":
            self._began = now
            return
        seconds = now - self._began
        pause = _Pause(time.monotonic(), seconds, info["generation"], info["collected"])
        self.counts[pause.generation] += 1
        self.seconds += seconds
        self.recent.append(pause)
        if self.longest is None or seconds > self.longest.seconds:
            self.longest = pause
        if pause.generation == 2 and (
            self.longest_full is None or seconds > self.longest_full.seconds
        ):
            self.longest_full = pause

    def within(self, since: float, until: float) -> list[_Pause]:
        """The collections that ended between two `time.monotonic()` readings."""
        return [pause for pause in list(self.recent) if since <= pause.ended <= until]

    #: collections shorter than this are left out of a block's warning (young ones are many)
    NOTABLE = 0.005

    def describe(self, since: float, until: float) -> str:
        """'; 0.41 s of it in 1 garbage collection(s) (the longest: generation 2, ...)', or ''
        when no notable collection ended between two `time.monotonic()` readings."""
        pauses = [p for p in self.within(since, until) if p.seconds >= self.NOTABLE]
        if not pauses:
            return ""
        total = sum(pause.seconds for pause in pauses)
        worst = max(pauses, key=lambda pause: pause.seconds)
        return (
            f"; {total:.2f} s of it in {len(pauses)} garbage collection(s) (the longest: "
            f"generation {worst.generation}, {worst.seconds:.2f} s, {worst.collected} objects "
            "freed)"
        )

    def as_json(self) -> dict[str, object]:
        def ms(pause: _Pause | None) -> float:
            return round(pause.seconds * 1000, 3) if pause is not None else 0.0

        return {
            "collections": list(self.counts),
            "pause_ms": round(self.seconds * 1000, 3),
            "longest_ms": ms(self.longest),
            "longest_generation": self.longest.generation if self.longest else None,
            "longest_full_ms": ms(self.longest_full),
            "thresholds": list(gc.get_threshold()),
            "frozen": self.frozen,
        }


class _Episode:
    """One blocking of the loop, as the watchdog thread saw it."""

    __slots__ = ("culprit", "since")

    def __init__(self, since: float, culprit: str) -> None:
        self.since = since
        self.culprit = culprit


class LoopWatchdog:
    """Watches one event loop from a daemon thread; see the module docstring.

    `start()` and `stop()` are called on the loop's thread (from a coroutine running on it).
    """

    def __init__(
        self,
        threshold: float,
        *,
        interval: float | None = None,
        log: logging.Logger = logger,
    ) -> None:
        if threshold <= 0:
            raise ValueError(f"threshold must be positive, not {threshold}")
        self.threshold = threshold
        #: how often the loop refreshes its timestamp (the thread looks once a threshold)
        self.interval = interval if interval is not None else min(threshold / 5, 0.1)
        self.episodes = 0  # blocking episodes seen since start()
        self.checks = 0  # times the thread woke to look at the loop
        self.longest_block = 0.0  # seconds, as the loop's refresh saw it late
        self.collector = CollectorWatch()
        self._log = log
        self._lock = threading.Lock()
        self._beat = 0.0
        self._episode: _Episode | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self._handle: asyncio.TimerHandle | None = None
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("the watchdog is running already")
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._beat = time.monotonic()
        self._episode = None
        self._stopping.clear()
        self.collector.install()
        self._handle = self._loop.call_later(self.interval, self._refresh)
        self._thread = threading.Thread(target=self._watch, name="taskcast-watchdog", daemon=True)
        self._thread.start()

    async def stop(self) -> None:
        """Stop the thread (awaited in the loop's default executor, so the loop never waits)."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self.collector.remove()
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._stopping.set()
        await asyncio.get_running_loop().run_in_executor(None, thread.join)

    # -- on the loop ---------------------------------------------------------------------------

    def _refresh(self) -> None:
        now = time.monotonic()
        with self._lock:
            previous, self._beat = self._beat, now
            episode, self._episode = self._episode, None
        late = now - previous - self.interval
        self.longest_block = max(self.longest_block, late)
        if episode is not None:
            self._log.warning(
                "event loop responsive again after being blocked for %.2f s by %s%s",
                now - episode.since,
                episode.culprit,
                self.collector.describe(episode.since, now),
            )
        elif late > self.threshold:
            with self._lock:
                self.episodes += 1
            collections = self.collector.describe(previous, now)
            if collections:
                self._log.warning("event loop was blocked for %.2f s%s", late, collections)
            else:
                # The thread could not run meanwhile: the block held the GIL.
                self._log.warning(
                    "event loop was blocked for %.2f s (noticed after it ended: the blocking "
                    "code held the GIL, so the watchdog could not see which task it was)",
                    late,
                )
        if self._thread is not None and self._loop is not None:
            self._handle = self._loop.call_later(self.interval, self._refresh)

    def stats(self) -> dict[str, object]:
        """Blocks seen and the collector's pauses since `start()`, for the health check."""
        return {
            "blocks": self.episodes,
            "longest_block_ms": round(self.longest_block * 1000, 3),
            "collector": self.collector.as_json(),
        }

    # -- on the watchdog thread ----------------------------------------------------------------

    def _watch(self) -> None:
        # The thread sleeps until the loop's last refresh is `threshold` old, the first moment
        # a block could be one, rather than every `interval`: each wake-up of a thread costs
        # CPU even when it finds nothing (a few hundred microseconds on a virtual machine).
        delay = self.threshold
        while not self._stopping.wait(delay):
            self.checks += 1
            now = time.monotonic()
            with self._lock:
                since = self._beat
                ongoing = self._episode is not None
            delay = max(since + self.threshold - now, self.interval)
            if ongoing or now - since <= self.threshold:
                continue  # reported already, or the loop is running
            culprit = self._culprit()
            with self._lock:
                if self._beat != since:
                    continue  # the loop ran meanwhile: no episode after all
                self._episode = _Episode(since, culprit)
                self.episodes += 1
            self._log.warning(
                "event loop blocked for %.2f s so far by %s", time.monotonic() - since, culprit
            )

    def _culprit(self) -> str:
        assert self._loop is not None
        try:
            task = asyncio.current_task(self._loop)
        except RuntimeError:  # the loop has been closed
            task = None
        frame = sys._current_frames().get(self._loop_thread)
        return f"{describe_task(task)} at {describe_frames(frame)}"
