"""The store's writer thread: it takes queued operations in batches and commits each batch in one
transaction.

The queue is the one batching stage between a run's events and SQLite: while an event write waits
in it, the run's next events join its chunk, and when only a few writes are queued the writer
lingers `LINGER_SECONDS` for more (a flush, a delete or a full batch cuts that short). While
writes keep coming (the last batch had some), the writer does not wait to be woken by the next
one: it sleeps one `STEADY_LINGER_SECONDS` and takes what came meanwhile, so a steady stream of
events costs one wake-up of the thread per commit, and the caller never has to wake it. A batch is
committed by `commit.py`: a write that fails alone is given up, the rest committed. A failure of
the database as a whole is an outage (see `outage.py`): the writes are kept in memory and
retried, and new writes join them without waiting for the disk.

One lock guards the queue, the numbering, the overlay (`pending.py`) and the outage; it is held
only briefly, never during a commit.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import sqlite3
import threading
import time
from collections.abc import Callable

from taskcast.errors import StoreError
from taskcast.store.chunks import EventChunk
from taskcast.store.commit import Apply, Outcome, commit_batch
from taskcast.store.ops import AppendEvents, Delete, KeepEvents, Op, SaveTask, TrimEvents, describe
from taskcast.store.outage import Outage
from taskcast.store.pending import Pending
from taskcast.store.watch import CHECK_SECONDS, FileWatch

logger = logging.getLogger(__name__)

#: how long the writer waits for more writes to commit together, when only a few are queued
LINGER_SECONDS = 0.02
#: how long it waits while writes keep coming (the last batch had some): each wake-up of the
#: thread costs CPU of its own, a few hundred microseconds on a virtual machine, so a steady
#: stream is committed in longer windows; a write after a pause still waits only LINGER_SECONDS
STEADY_LINGER_SECONDS = 0.1


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():  # aflush() may have been cancelled meanwhile
        future.set_result(None)


class Writer:
    """The queue of write operations and the thread that commits it."""

    def __init__(
        self,
        path: str,
        apply: Apply,
        *,
        batch_size: int,
        outage: Outage,
        pending: Pending,
        watch: FileWatch | None = None,
    ) -> None:
        self._path = path
        self._watch = watch
        self._apply = apply
        self._batch_size = max(1, batch_size)
        self._outage = outage
        self._pending = pending
        self.lock = threading.Lock()
        self._has_work = threading.Condition(self.lock)
        self._flushed = threading.Condition(self.lock)
        self._queue: collections.deque[Op] = collections.deque()
        self._enqueued = 0  # operations ever enqueued; an operation's number is this after it
        # Operations leave the queue in order, so those numbered up to _done have left it:
        # committed, kept for a retry, or given up.
        self._done = 0
        self._queued_deletes = 0  # a delete in the queue is tried at once, even in an outage
        self._lingering = False
        self._steady = False  # the last batch had writes: more are likely, wait for them a window
        self._flushing = 0  # threads waiting in flush(): the writer does not linger for them
        self._waiters: list[tuple[int, Callable[[], None]]] = []  # aflush: (op number, wake)
        # The event write of each run that is still in the queue, and so can take more events.
        self._open_chunks: dict[str, AppendEvents] = {}
        self.state = "new"  # -> "open" -> "closed"
        self.write_errors = 0  # batches that failed in whole or in part, retries included
        self._conn: sqlite3.Connection | None = None
        self._conn_lock: threading.Lock | None = None
        self._thread: threading.Thread | None = None

    # -- life cycle ----------------------------------------------------------------------------

    def start(self, conn: sqlite3.Connection, conn_lock: threading.Lock) -> None:
        """Commit on `conn`, holding `conn_lock` during each batch, from a thread of its own."""
        self._conn, self._conn_lock = conn, conn_lock
        self.state = "open"
        self._thread = threading.Thread(target=self._run, name="taskcast-store", daemon=True)
        self._thread.start()

    def stop(self) -> bool:
        """Take no more writes, commit what is queued, end the thread; False if stopped before."""
        with self.lock:
            if self.state == "closed":
                return False
            self.state = "closed"
            self._has_work.notify()
        if self._thread is not None:
            self._thread.join()  # the thread drains the queue before it returns
        return True

    # -- the caller's side: enqueue and wait ---------------------------------------------------

    def submit(self, op: Op) -> None:
        """Queue an operation."""
        with self.lock:
            self._enqueue(op)

    def append(self, run_id: str, first_seq: int, texts: list[str]) -> None:
        """Queue consecutive events of a run: they join the run's chunk still in the queue,
        if they follow it and it has room, else they start a new one."""
        with self.lock:
            op = self._open_chunks.get(run_id) if self.state == "open" else None
            taken = 0 if op is None else op.chunk.extend(first_seq, texts)
            while taken < len(texts):
                op = AppendEvents(run_id, EventChunk(first_seq + taken, texts[taken]))
                self._enqueue(op)  # raises if the store is not open
                self._open_chunks[run_id] = op
                taken += 1
                if taken < len(texts):  # the rest joins the new chunk, as far as it has room
                    taken += op.chunk.extend(first_seq + taken, texts[taken:])

    def _enqueue(self, op: Op) -> None:
        """Number and queue one operation (the caller holds the lock)."""
        if self.state != "open":
            raise StoreError("store is closed" if self.state == "closed" else "store is not open")
        self._enqueued += 1
        op.number = self._enqueued
        self._queue.append(op)
        self._pending.queued(op)
        if isinstance(op, Delete):
            self._queued_deletes += 1
        if isinstance(op, TrimEvents | KeepEvents | Delete):
            self._open_chunks.clear()  # events sent after it must not be written before it
        if not self._lingering or isinstance(op, Delete):
            self._has_work.notify()

    def flush(self, timeout: float | None) -> None:
        """Block until every write enqueued before the call has been tried."""
        with self.lock:
            target = self._enqueued
            self._flushing += 1
            self._has_work.notify()  # no lingering while someone waits
            try:
                if not self._flushed.wait_for(lambda: self._done >= target, timeout):
                    raise StoreError(
                        f"store: {target - self._done} writes were not committed within {timeout} s"
                    )
            finally:
                self._flushing -= 1

    async def aflush(self) -> None:
        """Like `flush`, but awaits: the writer thread wakes this coroutine through the loop."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()

        def wake() -> None:
            try:
                loop.call_soon_threadsafe(_resolve, future)
            except RuntimeError:  # the loop was closed meanwhile: nobody waits any more
                pass

        with self.lock:
            if self._done >= self._enqueued:
                return
            self._waiters.append((self._enqueued, wake))
            self._has_work.notify()  # no lingering while someone waits
        await future

    # -- the thread ----------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self.lock:
                batch = self._next_batch()
                counted = self._done  # the batch's operations numbered above this are new
            if not batch:
                return  # closed and drained
            assert self._conn is not None and self._conn_lock is not None
            outcome = commit_batch(self._conn, self._conn_lock, self._apply, batch)
            if outcome.failed:
                self.write_errors += 1
            self._finish(batch, counted, outcome)
            if self._watch is not None:
                self._watch.check()

    def _next_batch(self) -> list[Op]:
        """Wait for work (the caller holds the lock); kept writes first, then the queue."""
        lingered = False  # the writes in the queue have had their window already
        while True:
            now = time.monotonic()
            is_open = self.state == "open"
            if self._outage and is_open and not self._queued_deletes:
                delay = self._outage.retry_in(now)
                if delay > 0:
                    if self._queue:  # new writes wait with the kept ones, not for the disk
                        self._keep(list(self._queue))
                        self._queue.clear()
                        self._open_chunks.clear()
                        self._mark_done(self._enqueued)
                    self._has_work.wait(delay)
                    continue
            if self._outage or self._queue:
                break
            if not is_open:
                return []
            if self._steady:
                # Writes came with the last batch, so more are likely: wait one steady window
                # for them without being woken by each, then take what came.
                lingered = True
                self._linger(STEADY_LINGER_SECONDS)
                continue
            lingered = False
            if self._watch is None:
                self._has_work.wait()
            elif not self._has_work.wait(CHECK_SECONDS):
                self._watch.check()  # idle: the file is still looked at now and then
        if is_open and not self._outage and not self._queued_deletes and not lingered:
            # A task sending events one by one would otherwise cost a commit each: let more
            # arrive for a moment (a flush, a delete or a full batch cuts this short).
            self._linger(LINGER_SECONDS)
        # Kept writes stay kept (readers see them) until _finish knows what became of them.
        batch = self._outage.first(self._batch_size)
        while self._queue and len(batch) < self._batch_size:
            op = self._queue.popleft()
            self._queued_deletes -= isinstance(op, Delete)
            batch.append(op)
        self._open_chunks.clear()  # chunks that left the queue take no more events
        self._steady = is_open and bool(batch)
        return batch

    def _linger(self, seconds: float) -> None:
        """Wait up to `seconds` for more writes; enqueueing does not wake the thread meanwhile
        (the caller holds the lock)."""
        self._lingering = True
        self._steady = False  # after _lingering is set: the writer never looks idle meanwhile
        self._has_work.wait_for(self._stop_lingering, seconds)
        self._lingering = False

    def _stop_lingering(self) -> bool:
        """A full batch, a flush or aflush waiting, a delete, or the store closing."""
        return bool(
            len(self._queue) >= self._batch_size
            or self.state != "open"
            or self._flushing
            or self._waiters
            or self._queued_deletes
        )

    # -- after a batch -------------------------------------------------------------------------

    def _finish(self, batch: list[Op], counted: int, outcome: Outcome) -> None:
        """Account for what became of a batch, keep or give up what failed, wake waiters."""
        with self.lock:
            # The batch began with kept writes; they leave the outage only now.
            self._outage.drop_first(sum(1 for op in batch if op.number <= counted))
            for op in outcome.committed:
                if isinstance(op, SaveTask):
                    self._pending.committed(op)
            given_up = list(outcome.given_up)
            if outcome.outage is not None:
                reason = outcome.outage
                if self.state != "open":
                    rest = [*outcome.kept, *self._outage.clear(), *self._queue]
                    self._queue.clear()
                    self._open_chunks.clear()
                    self._queued_deletes = 0
                    closing = f"{reason} (the server stopped before it could retry)"
                    given_up += [(op, closing) for op in rest]
                else:
                    # A delete waits for its answer: it is refused now, not retried later.
                    given_up += [(op, reason) for op in outcome.kept if isinstance(op, Delete)]
                    self._outage.put_back([op for op in outcome.kept if not isinstance(op, Delete)])
                    self._outage.failed(reason)
                    given_up += self._over_bound()
            elif outcome.committed:
                self._outage.succeeded()
            self._give_up(given_up)
            self._mark_done(self._queue[0].number - 1 if self._queue else self._enqueued)

    def _keep(self, ops: list[Op]) -> None:
        """New writes join the kept ones during an outage (the caller holds the lock)."""
        self._outage.join(ops)  # never a delete: one in the queue ends the wait for the retry
        self._give_up(self._over_bound())

    def _over_bound(self) -> list[tuple[Op, str]]:
        reason = f"more than {self._outage.max_bytes} bytes of writes waited for the disk"
        return [(op, reason) for op in self._outage.over_bound(self._pending.superseded)]

    def _give_up(self, given_up: list[tuple[Op, str]]) -> None:
        """Writes that will not be made: a task record says so, the rest is logged (a delete's
        count stays None; a lost event shows as a gap after a restart)."""
        if not given_up:
            return
        by_reason: dict[str, list[Op]] = collections.defaultdict(list)
        for op, reason in given_up:
            if isinstance(op, SaveTask):
                self._pending.give_up(op, reason)
            by_reason[reason].append(op)
        for reason, ops in by_reason.items():  # before anyone waiting in flush() is woken
            logger.error("store: gave up saving %s: %s", describe(ops), reason)

    def _mark_done(self, done: int) -> None:
        """Operations numbered up to `done` have left the queue: wake who waits for them."""
        self._done = done
        self._pending.done(done)
        ready = [wake for number, wake in self._waiters if number <= done]
        self._waiters = [(n, wake) for n, wake in self._waiters if n > done]
        self._flushed.notify_all()
        for wake in ready:
            wake()
