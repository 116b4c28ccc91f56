"""The runner's deferred work, done a slice per turn of the loop: attempts that ended recorded,
new runs announced and queued, queued runs started.

`submit` does only what its caller must see at once; saving the queued record, telling the
listeners, putting the run in the queue and starting it happen in later turns of the loop, as
do the ends of runs (the final record saved and announced, the stream's stop, the hook). Each
turn of that work stops after `SLICE_SECONDS` and goes on in the next turn, so 10,000 tasks
started, or ending, in one turn of the loop never hold the loop for long: everything else on
the loop (pages, websockets, the health check) gets its turn in between. The order is kept:
each run's records are saved and announced in the order they change, runs are queued in the
order they were submitted, and a run's queued record is handed to the store before the run
starts.
"""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Callable
from typing import Any

from taskcast.errors import StoreError
from taskcast.hub.hub import Hub
from taskcast.records import TaskStatus
from taskcast.runtime.execution import Execution, OnEnd, Run
from taskcast.runtime.notify import Notifier
from taskcast.runtime.queue import RunQueue
from taskcast.runtime.stamps import utcnow

__all__ = [
    "BUSY_TURN_SECONDS",
    "CLUSTER_SLICE_SECONDS",
    "ENDS_WHEN_BUSY",
    "SLICE_SECONDS",
    "DeferredWork",
    "Ending",
]

logger = logging.getLogger(__name__)

#: seconds of deferred work (records, announcements, starts, ends) done in one turn of the loop;
#: small, because each start and end makes two to three times its own cost of work for the next
#: turns (the `start` or `stop` frame, the subscriber's wake-up), see docs/operations.md
SLICE_SECONDS = 0.00025
#: the same on the Redis engine, where each turn also carries the pipelines of the task plane
#: (claims, record changes, the changes of other nodes): their cost is per turn, and slices as
#: small as the memory engine's cut the tasks a cluster runs a second by half or more
CLUSTER_SLICE_SECONDS = 0.004
#: on the memory engine, a turn of the loop this long or longer, while ended attempts were left
#: waiting, makes the next slice finish at most `ENDS_WHEN_BUSY` of them: each end's follow-up
#: (its `stop` frame, its close handshake) costs several times the end itself in the turns
#: after, and when thousands end together those turns would otherwise keep the live streams'
#: events and the health check waiting (docs/operations.md)
BUSY_TURN_SECONDS = 0.0005
ENDS_WHEN_BUSY = 1

#: how an attempt ended, waiting for its turn to be recorded: (run, status, result, error)
Ending = tuple[Run, TaskStatus, Any, "str | None"]


class DeferredWork:
    """Does the runner's deferred work a slice at a time; see the module docstring."""

    __slots__ = (
        "_ends_left_at",
        "_execution",
        "_finish",
        "_hub",
        "_kick",
        "_notifier",
        "_queue",
        "ending",
        "intake",
    )

    def __init__(
        self,
        queue: RunQueue,
        execution: Execution,
        notifier: Notifier,
        hub: Hub,
        finish: OnEnd,
        kick: Callable[[], None],
    ) -> None:
        #: runs submitted and not yet announced and queued, and attempts ended and not yet
        #: recorded: the runner adds to them, each slice takes from them
        self.intake: collections.deque[Run] = collections.deque()
        self.ending: collections.deque[Ending] = collections.deque()
        self._queue = queue
        self._execution = execution
        self._notifier = notifier
        self._hub = hub  # the runner's: runs open their streams on it
        self._finish = finish
        #: asks the runner for another turn, for the work a slice leaves
        self._kick = kick
        #: when the last slice left ended attempts waiting (None: it finished them all)
        self._ends_left_at: float | None = None

    def run_slice(self, on_cluster: bool) -> None:
        """One slice: ended attempts first (they free places), then new runs into the queue,
        then starts; what the slice leaves goes on in the next turn."""
        slice_ = CLUSTER_SLICE_SECONDS if on_cluster else SLICE_SECONDS
        began = time.perf_counter()
        until = began + slice_
        ending, intake, clock = self.ending, self.intake, time.perf_counter
        left_at = self._ends_left_at
        # Ends were left over a turn ago: the time since is the length of the turn in between.
        # (On the Redis engine every busy turn is longer, carrying the task plane's pipelines.)
        busy = left_at is not None and began - left_at >= BUSY_TURN_SECONDS
        ends = ENDS_WHEN_BUSY if busy and not on_cluster else -1
        self._ends_left_at = None
        while ending:
            self._finish(*ending.popleft())
            ends -= 1
            if clock() > until or ends == 0:
                self._kick()
                if ending:
                    self._ends_left_at = clock()
                return
        while intake:
            new = intake.popleft()
            new.announced = True
            try:
                self._notifier.changed(new)
            except StoreError as exc:  # nothing in a queued record can be refused: logged only
                logger.error("task %s: its queued record was not saved: %s", new.id, exc)
            self._queue.put(new)
            if clock() > until:
                self._kick()
                return
        while (ready := self._queue.next_ready()) is not None:
            self._start(ready)
            if clock() > until:
                self._kick()
                return

    def _start(self, run: Run) -> None:
        first = run.record.attempt_count == 0
        run.record = run.record.replace(
            status=TaskStatus.RUNNING, started=utcnow(), attempt_count=run.record.attempt_count + 1
        )
        self._notifier.changed(run)
        stream_id = run.spec.stream_id
        if stream_id is not None:
            opened = self._hub.get(stream_id)
            # A later attempt finds its stream open here, unless the attempt before ran on a
            # node that died (the Redis engine): then its stream opens again on this node.
            if opened is None or opened.run_id != run.id or (not first and opened.end is not None):
                run.events.open()
        self._execution.start(run)
