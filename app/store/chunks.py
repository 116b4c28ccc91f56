"""How a run's stream events are stored: consecutive events share one row, a chunk.

A task that sends events flat out would otherwise cost SQLite one row, with its B-tree insert, per
event: more than the rest of the event's way to the browser. While the writer thread is busy, the
store appends each new event of a run to that run's chunk still waiting in the queue, so a burst
becomes a few rows. A chunk row holds the events `first_seq..last_seq` of one run, their JSON texts
joined by newlines (compact JSON never contains a raw newline; an event whose text does gets a row
of its own). The key is (run_id, last_seq), so "events after seq N" is one index range; the rows
live in a rowid table, since rows of kilobytes would crowd a WITHOUT ROWID table's B-tree.
"""

from __future__ import annotations

import itertools
import logging
import sqlite3
from collections.abc import Iterable, Iterator

logger = logging.getLogger(__name__)

#: a chunk takes no more events, or no more bytes of event text, than this
CHUNK_EVENTS = 1000
CHUNK_BYTES = 256 * 1024

TABLE = """
CREATE TABLE IF NOT EXISTS event_chunks (
    run_id TEXT NOT NULL, first_seq INTEGER NOT NULL, last_seq INTEGER NOT NULL,
    data TEXT NOT NULL, PRIMARY KEY (run_id, last_seq)
);
"""
INSERT = "INSERT OR REPLACE INTO event_chunks VALUES (?, ?, ?, ?)"
SELECT_AFTER = (
    "SELECT first_seq, last_seq, data FROM event_chunks WHERE run_id = ? AND last_seq > ? "
    "ORDER BY last_seq LIMIT ?"
)
DELETE_RUN = "DELETE FROM event_chunks WHERE run_id = ?"


class EventChunk:
    """Consecutive events of one run, from `first_seq`, waiting to be written as one row."""

    __slots__ = ("data", "first_seq", "next_seq", "size")

    def __init__(self, seq: int, data_json: str) -> None:
        self.first_seq = seq
        self.next_seq = seq + 1
        self.data = [data_json]
        self.size = len(data_json)

    def takes(self, seq: int, data_json: str) -> bool:
        """Append the event if it is the next one and the chunk has room; else False."""
        if seq != self.next_seq or len(self.data) >= CHUNK_EVENTS or self.size >= CHUNK_BYTES:
            return False
        self.data.append(data_json)
        self.next_seq = seq + 1
        self.size += len(data_json)
        return True

    def extend(self, first_seq: int, texts: list[str]) -> int:
        """Append as many of these consecutive events from `first_seq` as the chunk takes, the
        same ones as `takes` would one by one; return how many."""
        if len(texts) == 1:  # a lone event: no bulk bookkeeping
            return 1 if self.takes(first_seq, texts[0]) else 0
        room = CHUNK_EVENTS - len(self.data)
        if first_seq != self.next_seq or room <= 0 or self.size >= CHUNK_BYTES or not texts:
            return 0
        taken = texts if len(texts) <= room else texts[:room]
        size = sum(map(len, taken))
        # Usually all fit: the bound is reached only by the event that crosses it.
        if self.size + size - len(taken[-1]) >= CHUNK_BYTES:
            size, count = 0, 0
            for text in taken:
                if self.size + size >= CHUNK_BYTES:
                    break
                size += len(text)
                count += 1
            taken = taken[:count]
        self.data += taken
        self.next_seq += len(taken)
        self.size += size
        return len(taken)

    def events(self, after: int = 0) -> Iterator[tuple[int, str]]:
        return ((seq, data) for seq, data in enumerate(self.data, self.first_seq) if seq > after)

    def __len__(self) -> int:
        return len(self.data)

    def __repr__(self) -> str:
        return f"<EventChunk {self.first_seq}..{self.next_seq - 1}>"


def rows(run_id: str, chunk: EventChunk) -> list[tuple[str, int, int, str]]:
    """The chunk as rows to insert: one, unless an event's text holds a newline."""
    joined = "\n".join(chunk.data)
    if joined.count("\n") == len(chunk.data) - 1:
        return [(run_id, chunk.first_seq, chunk.next_seq - 1, joined)]
    return [(run_id, seq, seq, data) for seq, data in chunk.events()]


def split(first_seq: int, last_seq: int, data: str) -> list[tuple[int, str]]:
    """A stored row back into (seq, data_json) pairs."""
    if first_seq == last_seq:
        return [(first_seq, data)]
    texts = data.split("\n")
    if len(texts) != last_seq - first_seq + 1:
        raise sqlite3.DataError(
            f"event chunk {first_seq}..{last_seq} holds {len(texts)} events, not "
            f"{last_seq - first_seq + 1}"
        )
    return list(enumerate(texts, first_seq))


def read(stored: Iterable[tuple[int, int, str]], after: int) -> list[tuple[int, str]]:
    """The events with seq > after of a run's rows (ordered by last_seq), ascending by seq."""
    events = [pair for row in stored for pair in split(*row) if pair[0] > after]
    if any(a[0] >= b[0] for a, b in itertools.pairwise(events)):
        events = sorted(dict(events).items())  # only if a seq was appended out of order or twice
    return events


def trim(conn: sqlite3.Connection, run_id: str, keep_head: int, keep_tail: int) -> None:
    """Delete the run's events with keep_head < seq <= last seq - keep_tail, splitting the rows
    that hold events on both sides of a bound."""
    (last,) = conn.execute(
        "SELECT MAX(last_seq) FROM event_chunks WHERE run_id = ?", (run_id,)
    ).fetchone()
    if last is None or last - keep_tail <= keep_head:
        return
    trim_range(conn, run_id, keep_head, last - keep_tail)


def trim_range(conn: sqlite3.Connection, run_id: str, low: int, high: int) -> None:
    """Delete the run's events with low < seq <= high, splitting the rows that straddle."""
    conn.execute(
        "DELETE FROM event_chunks WHERE run_id = ? AND first_seq > ? AND last_seq <= ?",
        (run_id, low, high),
    )
    straddling = conn.execute(
        "SELECT first_seq, last_seq, data FROM event_chunks "
        "WHERE run_id = ? AND last_seq > ? AND first_seq <= ?",
        (run_id, low, high),
    ).fetchall()
    for first_seq, last_seq, data in straddling:
        conn.execute(
            "DELETE FROM event_chunks WHERE run_id = ? AND last_seq = ?", (run_id, last_seq)
        )
        events = split(first_seq, last_seq, data)
        for part in ([e for e in events if e[0] <= low], [e for e in events if e[0] > high]):
            if part:
                conn.execute(
                    INSERT, (run_id, part[0][0], part[-1][0], "\n".join(d for _, d in part))
                )


def keep(
    conn: sqlite3.Connection, run_id: str, head: list[tuple[int, str]], tail_from: int
) -> None:
    """Keep only the run's `head` events and those with seq >= tail_from. The head events are
    given, not read: those the deleted range covers are written back as rows of their own."""
    low = 0
    for seq, _ in head:  # the head is usually the run's first events: a range before the cut
        if seq != low + 1:
            break
        low = seq
    if tail_from - 1 <= low:
        return
    trim_range(conn, run_id, low, tail_from - 1)
    for seq, data in head:
        if low < seq < tail_from:
            conn.execute(INSERT, (run_id, seq, seq, data))


def bound_run(
    conn: sqlite3.Connection, run_id: str, keep_head: int, max_events: int, max_bytes: int
) -> int:
    """Apply the history bound to a run stored whole (one interrupted before its end): one
    pass over its rows, holding no more than the bound. How many events it dropped."""
    from taskcast.hub.stream import Stream  # the one definition of the policy

    stream = Stream(run_id, run_id, keep_head=keep_head, max_events=max_events, max_bytes=max_bytes)
    cursor = conn.execute(SELECT_AFTER, (run_id, 0, -1))
    while rows := cursor.fetchmany(16):
        for seq, data in read(rows, 0):
            stream.last_seq = seq
            stream.record(seq, data)
    if stream.dropped:
        head, tail_from = stream.kept()
        keep(conn, run_id, head, tail_from)
    return stream.dropped


def migrate_from_rows(conn: sqlite3.Connection) -> None:
    """Schema 1 kept one row per event in `events`: each becomes a chunk of one."""
    exists = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'events'"
    ).fetchone()
    if exists:
        conn.execute(
            "INSERT OR REPLACE INTO event_chunks SELECT run_id, seq, seq, data FROM events"
        )
        conn.execute("DROP TABLE events")
        logger.info("store: moved the stored events to the chunked layout of schema 2")
