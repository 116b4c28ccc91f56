"""Tests of the chunked layout of stored events (taskcast.store.chunks) through the store."""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from taskcast.store.chunks import CHUNK_BYTES, CHUNK_EVENTS, EventChunk
from taskcast.store.rows import SCHEMA
from taskcast.store.store import Store


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "events.db"


@pytest.fixture(autouse=True)
def writer_waits_for_a_flush(monkeypatch: pytest.MonkeyPatch) -> None:
    """The writer takes nothing before a flush: the rows these tests expect do not depend on
    when its thread happens to run."""
    monkeypatch.setattr("taskcast.store.writer.LINGER_SECONDS", 60.0)
    monkeypatch.setattr("taskcast.store.writer.STEADY_LINGER_SECONDS", 60.0)


@pytest.fixture
def store(path: Path) -> Iterator[Store]:
    opened = Store(path)
    opened.open()
    yield opened
    opened.close()


def sql(path: Path, statement: str, *params: Any) -> list[Any]:
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as conn:
        return conn.execute(statement, params).fetchall()


def chunks(path: Path, run_id: str) -> list[tuple[int, int]]:
    return sql(
        path,
        "SELECT first_seq, last_seq FROM event_chunks WHERE run_id = ? ORDER BY last_seq",
        run_id,
    )


def reopened(path: Path) -> Store:
    again = Store(path)
    again.open()
    return again


def test_a_burst_of_events_takes_a_few_rows_and_reads_back_whole(store: Store, path: Path) -> None:
    for seq in range(1, 5001):
        store.append_event("run", seq, f'"<li>{seq}</li>"')
    store.flush()
    rows = chunks(path, "run")
    assert len(rows) == 5  # one row per event would be 5,000
    assert all(last - first < CHUNK_EVENTS for first, last in rows)
    store.close()
    again = reopened(path)
    try:
        assert again.events("run") == [(seq, f'"<li>{seq}</li>"') for seq in range(1, 5001)]
        assert again.events("run", after=4998) == [
            (4999, '"<li>4999</li>"'),
            (5000, '"<li>5000</li>"'),
        ]
        assert again.events("run", after=10, limit=3) == [
            (n, f'"<li>{n}</li>"') for n in (11, 12, 13)
        ]
    finally:
        again.close()


def test_runs_that_interleave_each_get_their_own_chunks(store: Store, path: Path) -> None:
    for seq in range(1, 201):
        store.append_event("a", seq, f'"a{seq}"')
        store.append_event("b", seq, f'"b{seq}"')
    store.flush()
    assert len(chunks(path, "a")) < 100 and len(chunks(path, "b")) < 100
    assert store.events("a") == [(seq, f'"a{seq}"') for seq in range(1, 201)]
    assert store.events("b") == [(seq, f'"b{seq}"') for seq in range(1, 201)]


def test_an_event_whose_text_holds_a_newline_comes_back_exact(store: Store, path: Path) -> None:
    texts = ['"one"', '{"a": 1,\n "b": 2}', '"three"']
    for seq, text in enumerate(texts, 1):
        store.append_event("run", seq, text)
    store.close()
    again = reopened(path)
    try:
        assert again.events("run") == list(enumerate(texts, 1))
    finally:
        again.close()


def test_a_trim_deletes_whole_chunks_and_splits_the_ones_on_its_bounds(
    store: Store, path: Path
) -> None:
    for first in (1, 5, 9):  # rows 1..4, 5..8, 9..12
        for seq in range(first, first + 4):
            store.append_event("run", seq, f'"{seq}"')
        store.flush()
    assert chunks(path, "run") == [(1, 4), (5, 8), (9, 12)]
    store.trim_events("run", keep_head=2, keep_tail=3)
    store.flush()
    assert chunks(path, "run") == [(1, 2), (10, 12)]
    assert [seq for seq, _ in store.events("run")] == [1, 2, 10, 11, 12]
    assert store.events("run", after=2) == [(10, '"10"'), (11, '"11"'), (12, '"12"')]


def test_a_trim_inside_one_chunk_keeps_both_ends(store: Store, path: Path) -> None:
    for seq in range(1, 11):
        store.append_event("run", seq, f'"{seq}"')
    store.flush()
    assert chunks(path, "run") == [(1, 10)]
    store.trim_events("run", keep_head=3, keep_tail=2)
    store.trim_events("run", keep_head=3, keep_tail=2)  # the same trim again changes nothing
    store.flush()
    assert chunks(path, "run") == [(1, 3), (9, 10)]
    assert store.events("run") == [(1, '"1"'), (2, '"2"'), (3, '"3"'), (9, '"9"'), (10, '"10"')]


def test_a_file_of_schema_one_is_moved_to_chunks_and_keeps_every_event(path: Path) -> None:
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as conn:
        conn.executescript(SCHEMA)
        conn.execute(
            "CREATE TABLE events (run_id TEXT NOT NULL, seq INTEGER NOT NULL, "
            "data TEXT NOT NULL, PRIMARY KEY (run_id, seq)) WITHOUT ROWID"
        )
        conn.executemany(
            "INSERT INTO events VALUES (?, ?, ?)",
            [("old", seq, f'"old {seq}"') for seq in range(1, 4)] + [("x", 1, '"x"')],
        )
        conn.execute("PRAGMA user_version = 1")
    store = reopened(path)
    try:
        assert store.events("old") == [(seq, f'"old {seq}"') for seq in range(1, 4)]
        assert store.events("x") == [(1, '"x"')]
        store.append_event("old", 4, '"new 4"')
        assert store.events("old", after=2) == [(3, '"old 3"'), (4, '"new 4"')]
    finally:
        store.close()
    assert sql(path, "SELECT name FROM sqlite_master WHERE name = 'events'") == []
    assert sql(path, "PRAGMA user_version") == [(2,)]
    assert sql(path, "PRAGMA integrity_check") == [("ok",)]


def test_a_burst_appended_at_once_joins_the_chunk_of_its_run(store: Store, path: Path) -> None:
    store.append_event("run", 1, '"1"')
    store.append_events("run", 2, ['"2"', '"3"', '"4"'])
    store.append_events("run", 5, ['"5"'])
    store.flush()
    assert chunks(path, "run") == [(1, 5)]
    assert store.events("run", after=3) == [(4, '"4"'), (5, '"5"')]


def test_a_burst_longer_than_a_chunk_fills_chunks_in_order(store: Store, path: Path) -> None:
    store.append_event("run", 1, '"1"')
    store.append_events("run", 2, [f'"{seq}"' for seq in range(2, 2 * CHUNK_EVENTS + 11)])
    store.flush()
    assert chunks(path, "run") == [
        (1, CHUNK_EVENTS),
        (CHUNK_EVENTS + 1, 2 * CHUNK_EVENTS),
        (2 * CHUNK_EVENTS + 1, 2 * CHUNK_EVENTS + 10),
    ]
    assert store.events("run") == [(seq, f'"{seq}"') for seq in range(1, 2 * CHUNK_EVENTS + 11)]


@pytest.mark.parametrize(
    ("held", "held_size", "burst", "size"),
    [
        (1, 10, 5, 10),  # all fit
        (CHUNK_EVENTS - 3, 10, 5, 10),  # the count bound cuts the burst
        (1, CHUNK_BYTES - 25, 5, 10),  # the byte bound: the event crossing it still goes in
        (1, CHUNK_BYTES, 5, 10),  # full already
        (1, 10, 1, 10),  # a lone event
    ],
)
def test_a_burst_joins_a_chunk_as_its_events_would_one_by_one(
    held: int, held_size: int, burst: int, size: int
) -> None:
    def held_chunk() -> EventChunk:
        chunk = EventChunk(1, "h" * held_size)
        for seq in range(2, held + 1):
            chunk.takes(seq, "")
        return chunk

    texts = [str(n) * size for n in range(burst)]
    bulk, single = held_chunk(), held_chunk()
    taken = bulk.extend(held + 1, texts)
    one_by_one = 0
    while one_by_one < burst and single.takes(held + 1 + one_by_one, texts[one_by_one]):
        one_by_one += 1
    assert taken == one_by_one
    assert (bulk.data, bulk.next_seq, bulk.size) == (single.data, single.next_seq, single.size)
    assert bulk.extend(held + 2 + taken, texts) == 0  # not the next seq


async def test_a_flush_an_aflush_and_a_delete_each_end_the_writers_wait(store: Store) -> None:
    """The writer waits for more writes to batch (here up to 60 s); whoever waits for the disk
    does not wait for that."""
    began = time.monotonic()
    store.append_event("run", 1, '"1"')
    store.flush()
    store.append_event("run", 2, '"2"')
    await store.aflush()
    store.append_event("run", 3, '"3"')
    assert store.delete_task("no such task") is False
    assert time.monotonic() - began < 5
    assert store.events("run") == [(1, '"1"'), (2, '"2"'), (3, '"3"')]
