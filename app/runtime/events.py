"""A run's events on their way out: to its stream on the hub and, when the run is saved, to the
store in the same step; and the text its worker printed.

Each event or burst is handed to the store as it is published. The store's writer thread is the
one stage that batches them into transactions, so an event waits for the disk once, not twice.

The stored run is bounded like the stream's history, while it runs: once the hub has dropped
half as many events, or half as many bytes, as its history holds since the last trim, the store
is told to keep what the history keeps. So a run holds at most one and a half times the history
bound in the store (and exactly the history at its end), however long it runs.
"""

from __future__ import annotations

import logging

from taskcast.errors import StoreError
from taskcast.hub.hub import Hub, Stream
from taskcast.runtime.pipe import Events, Output
from taskcast.store.store import Store

logger = logging.getLogger(__name__)

#: characters of a process task's printed output kept in its record (the last ones)
OUTPUT_LIMIT = 64 * 1024


class RunEvents:
    """The way out of one run's events, from its first attempt to its end (see the module)."""

    __slots__ = (
        "_hub",
        "_refusal",
        "_refused",
        "_save",
        "_store",
        "_stream",
        "_trimmed",
        "ended",
        "func_path",
        "output",
        "run_id",
        "stream_id",
    )

    def __init__(
        self, hub: Hub, store: Store, run_id: str, stream_id: str | None, save: bool, func_path: str
    ) -> None:
        self._hub = hub
        self._store = store
        self._save = save
        self.run_id = run_id
        self.stream_id = stream_id
        self.func_path = func_path
        #: set once the run has ended: a thread's or worker's late events are dropped
        self.ended = False
        self.output = ""
        self._refused = 0  # events the store refused, reported once at the end
        self._refusal = ""
        self._trimmed = (0, 0)  # the stream's dropped events and bytes at the last trim
        self._stream: Stream | None = None  # this run's stream, once opened

    def open(self) -> None:
        """Open the run's stream, at the start of its first attempt."""
        if self.stream_id is not None:
            self._stream = self._hub.open(self.stream_id, self.run_id)

    def emit(self, data_json: str) -> None:
        """One event of an async task, or of a thread task by way of the loop."""
        stream_id = self.stream_id
        if stream_id is None or self.ended:  # every event passes here: checks kept few
            return
        event = self._hub.publish(stream_id, data_json)
        if self._save:
            self._to_store(event.seq, [data_json])

    def emit_many(self, events: list[str]) -> None:
        """Consecutive events, in order: a worker's burst."""
        stream_id = self.stream_id
        if stream_id is None or self.ended:
            return
        first_seq = self._hub.publish_many(stream_id, events)
        if self._save:
            self._to_store(first_seq, events)

    def receive(self, message: Events | Output) -> None:
        """A message from the run's worker process."""
        if isinstance(message, Events):
            self.emit_many(message.events)
        else:
            logger.info(
                "task %s (%s) printed: %s",
                self.run_id[:8],
                self.func_path,
                message.text.rstrip(),
            )
            self.output = (self.output + message.text)[-OUTPUT_LIMIT:]

    def _to_store(self, first_seq: int, events: list[str]) -> None:
        try:
            self._store.append_events(self.run_id, first_seq, events)
            stream = self._stream
            # Every event passes here: nothing more to do until the history drops events.
            if stream is not None and stream.dropped > self._trimmed[0]:
                events_dropped, bytes_dropped = self._trimmed
                if (
                    stream.dropped - events_dropped > len(stream) // 2
                    or stream.dropped_bytes - bytes_dropped > stream.bytes // 2
                ):
                    self._keep_history(stream)
        except StoreError as exc:
            # Readers still get every event live; the task goes on.
            if not self._refused:
                logger.error("task %s: the store refuses its events: %s", self.run_id, exc)
            self._refused += len(events)
            self._refusal = str(exc)

    def end(self, state: str, error: str | None) -> None:
        """Close the stream with the run's final state; no event is taken after this."""
        self.ended = True
        if self._refused:
            logger.error(
                "task %s: %d events were not stored: %s", self.run_id, self._refused, self._refusal
            )
        stream_id = self.stream_id
        if stream_id is None:
            return
        opened = self._hub.get(stream_id)
        if opened is None or opened.run_id != self.run_id:
            # Ended before it started (cancelled while queued): readers waiting for this run
            # still get start and stop.
            self._hub.open(stream_id, self.run_id)
        if self._hub.close(stream_id, state, error) and self._save:
            stream = self._hub.get(stream_id)
            if stream is not None and stream.dropped > self._trimmed[0]:
                # The hub kept only the head and tail of a long stream: so does the store.
                try:
                    self._keep_history(stream)
                except StoreError as exc:
                    logger.error(
                        "task %s: its stored events were not trimmed: %s", self.run_id, exc
                    )

    def _keep_history(self, stream: Stream) -> None:
        """Have the store keep what the stream's history keeps, and no more."""
        head, tail_from = stream.kept()
        self._store.keep_events(self.run_id, head, tail_from)
        self._trimmed = (stream.dropped, stream.dropped_bytes)
