"""The publisher's side of the event plane: the streams this node runs, copied to Redis.

`publish` never awaits, so the hub hands each change to an outbox, and one writer task per node
sends what piled up in one pipeline per turn of the loop: per stream one script call to open a
run, one to append its new events (however many), one to end it (`stream_ops`). The outbox is
bounded: a stream holds at most `max_events` unsent events; past that, or when a flush fails
(Redis unreachable, paused, restarted), the stream is marked for a re-seed instead. A re-seed
writes the stream again from this node's own history under a NEW epoch, so a reader can tell
that the copy in Redis was replaced: nothing is sent twice under one epoch and nothing is
silently skipped. Redis restarted while a stream was quiet is noticed by its run id changing.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from taskcast.cluster import keys
from taskcast.cluster.connection import BACKOFF_CAP, BACKOFF_FIRST
from taskcast.cluster.stream_ops import APPEND_SCRIPT, END_SCRIPT, OPEN_SCRIPT, new_epoch
from taskcast.hub.stream import Stream

if TYPE_CHECKING:
    from redis.asyncio import Redis

logger = logging.getLogger(__name__)

#: seconds between checks, while nothing is sent, that Redis is still the same server
CHECK_EVERY = 1.0
#: seconds `close` waits for the last changes to reach Redis
CLOSE_TIMEOUT = 5.0


class Outgoing:
    """One run's changes not yet in Redis (or, with no stream, an end asked for a stream that
    another node runs)."""

    __slots__ = ("end", "first_seq", "gone", "opening", "reseed", "stream", "stream_id", "texts")

    def __init__(self, stream_id: str, stream: Stream | None) -> None:
        self.stream_id = stream_id
        self.stream = stream
        self.opening = stream is not None
        self.reseed = False
        self.gone = False  # another run owns the stream in Redis: nothing more is sent
        self.first_seq = 0
        self.texts: list[str] = []
        self.end: tuple[str, str | None] | None = None


def consecutive_runs(events: list[tuple[int, str]]) -> list[tuple[int, list[str]]]:
    """(first seq, texts) for each run of consecutive seqs (a bounded history has a jump)."""
    runs: list[tuple[int, list[str]]] = []
    for seq, text in events:
        if runs and runs[-1][0] + len(runs[-1][1]) == seq:
            runs[-1][1].append(text)
        else:
            runs.append((seq, [text]))
    return runs


class Relay:
    """The outbox of the streams run on this node and the task that writes it to Redis."""

    def __init__(self, redis: Redis, node_id: str, max_events: int, expiry: float) -> None:
        self._redis = redis
        self._node_id = node_id
        self._max_events = max_events
        self._expiry = max(1, round(expiry))
        self._open = redis.register_script(OPEN_SCRIPT)
        self._append = redis.register_script(APPEND_SCRIPT)
        self._end = redis.register_script(END_SCRIPT)
        self._current: dict[str, Outgoing] = {}  # stream id -> its run's, while it runs
        self._dirty: dict[Outgoing, None] = {}  # with something to send, in order
        self._wake = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._server_id: str | None = None
        #: the streams run here whose end is not in Redis yet, and what their waiters wait on
        self._ends_unsent: dict[str, asyncio.Future[None]] = {}
        #: False from a failed flush until one succeeds
        self.reachable = True

    # -- the hub's side: never awaits ----------------------------------------------------------

    def opened(self, stream: Stream) -> None:
        out = self._current[stream.id] = Outgoing(stream.id, stream)
        self._mark(out)

    def added(self, stream_id: str, first_seq: int, texts: list[str]) -> None:
        out = self._current.get(stream_id)
        if out is None or out.reseed or out.gone:
            return  # a re-seed sends the whole history, these included
        if not out.texts:
            out.first_seq = first_seq
        out.texts += texts
        if len(out.texts) > self._max_events:
            out.texts = []
            out.reseed = True
        if out not in self._dirty:
            self._mark(out)

    def ended(self, stream_id: str, state: str, error: str | None) -> None:
        out = self._current.pop(stream_id, None)
        if out is not None and not out.gone:
            out.end = (state, error)
            self._mark(out)
            if stream_id not in self._ends_unsent:
                self._ends_unsent[stream_id] = asyncio.get_running_loop().create_future()

    async def end_written(self, stream_id: str) -> None:
        """Return once the end of this node's run of `stream_id` is in Redis (at once when no
        end of it waits to be sent). The task plane writes a final record only after this, so
        a node that sees the record finds the stream's end in Redis too."""
        future = self._ends_unsent.get(stream_id)
        if future is not None:
            await asyncio.shield(future)

    def _end_sent(self, stream_id: str) -> None:
        future = self._ends_unsent.pop(stream_id, None)
        if future is not None and not future.done():
            future.set_result(None)

    def end_elsewhere(self, stream_id: str, state: str, error: str | None) -> None:
        """Record the end of a stream another node runs (or ran, before it died)."""
        out = Outgoing(stream_id, None)
        out.end = (state, error)
        self._mark(out)

    def _mark(self, out: Outgoing) -> None:
        self._dirty[out] = None
        self._wake.set()

    # -- the writer ----------------------------------------------------------------------------

    def start(self) -> None:
        self._writer = asyncio.get_running_loop().create_task(
            self._write_forever(), name=f"taskcast relay {self._node_id}"
        )

    async def close(self) -> None:
        """Send what is left (within CLOSE_TIMEOUT), then stop the writer."""
        if self._writer is None:
            return
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT):
                while self._dirty and self.reachable:
                    await self._flush(self._take())
        except Exception as exc:
            logger.warning("relay: %d stream(s) not sent at shutdown: %s", len(self._dirty), exc)
        self._writer.cancel()
        await asyncio.gather(self._writer, return_exceptions=True)
        self._writer = None
        for stream_id in list(self._ends_unsent):  # nobody waits for what is never sent
            self._end_sent(stream_id)

    def _take(self) -> list[Outgoing]:
        batch = list(self._dirty)
        self._dirty.clear()
        self._wake.clear()
        return batch

    async def _write_forever(self) -> None:
        pause = BACKOFF_FIRST
        while True:
            try:
                async with asyncio.timeout(CHECK_EVERY):
                    await self._wake.wait()
            except TimeoutError:
                pass
            batch = self._take()
            try:
                if batch:
                    await self._flush(batch)
                else:
                    await self._check_server()
            except Exception as exc:
                self._failed(batch, exc)
                await asyncio.sleep(pause)
                pause = min(pause * 2, BACKOFF_CAP)
                continue
            if not self.reachable:
                logger.warning("relay: Redis can be reached again; streams re-seeded")
            self.reachable = True
            pause = BACKOFF_FIRST

    def _failed(self, batch: list[Outgoing], exc: Exception) -> None:
        """What a failed flush sent is unknown: every stream in it is written again whole."""
        if self.reachable:
            logger.error("relay: cannot write %d stream(s) to Redis: %s", len(batch), exc)
        self.reachable = False
        for out in batch:
            if out.stream is not None:
                out.reseed, out.texts = True, []
            self._dirty[out] = None
        self._wake.set()

    async def _check_server(self) -> None:
        """A restarted Redis has a new run id: the streams running here are re-seeded."""
        info = await self._redis.info("server")
        server_id = str(info.get("run_id"))
        if self._server_id is not None and server_id != self._server_id:
            logger.warning("relay: Redis restarted; re-seeding %d stream(s)", len(self._current))
            for out in self._current.values():
                out.reseed, out.texts = True, []
                self._dirty[out] = None
            self._wake.set()
        self._server_id = server_id

    async def _flush(self, batch: list[Outgoing]) -> None:
        pipe = self._redis.pipeline(transaction=False)
        calls: list[tuple[Outgoing, str]] = []
        for out in batch:
            stream_keys = [
                keys.stream_meta(out.stream_id),
                keys.stream_events(out.stream_id),
                keys.stream_live(out.stream_id),
            ]
            stream = out.stream
            if stream is not None and (out.opening or out.reseed):
                if out.reseed:
                    stream.epoch = new_epoch()
                    logger.warning(
                        "relay: stream %r (run %s) re-seeded in Redis with epoch %s",
                        out.stream_id,
                        stream.run_id,
                        stream.epoch,
                    )
                args = [stream.run_id, stream.epoch or "", self._node_id]
                await self._open(stream_keys, args, client=pipe)
                calls.append((out, "open"))
                if out.reseed:
                    history = [(event.seq, event.data_json) for event in stream.history()]
                    runs = consecutive_runs(history)
                else:  # what was published since it opened
                    runs = [(out.first_seq, out.texts)] if out.texts else []
                out.opening = out.reseed = False
                out.texts = []
                if stream.end is not None and out.end is None:
                    out.end = (stream.end.state, stream.end.error)
            else:
                runs = [(out.first_seq, out.texts)] if out.texts else []
                out.texts = []
            epoch = stream.epoch or "" if stream is not None else ""
            for first_seq, texts in runs:
                args = [epoch, str(self._max_events), str(first_seq), *texts]
                await self._append(stream_keys, args, client=pipe)
                calls.append((out, "append"))
            if out.end is not None:
                state, error = out.end
                last = "" if stream is None else str(stream.last_seq)
                args = [epoch, state, error or "", last, str(self._expiry)]
                await self._end(stream_keys, args, client=pipe)
                calls.append((out, "end"))
                out.end = None
        results = await pipe.execute(raise_on_error=False)
        for (out, what), result in zip(calls, results, strict=True):
            self._outcome(out, what, result)

    def _outcome(self, out: Outgoing, what: str, result: object) -> None:
        if isinstance(result, Exception):
            raise result
        if what == "end" and out.stream is not None and result != 0:
            self._end_sent(
                out.stream_id
            )  # written, or another run's stream now: no end to wait for
        if result == 0 and out.stream is not None:
            # Redis lost the stream (restarted without persistence, or evicted it).
            out.reseed = True
            self._mark(out)
        elif result == -1 and not out.gone:
            out.gone = True
            logger.warning(
                "relay: stream %r is another run's in Redis now; %s not sent", out.stream_id, what
            )
        elif result == 0:
            logger.info("relay: no stream %r in Redis to end", out.stream_id)
