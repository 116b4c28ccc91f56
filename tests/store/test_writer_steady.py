"""Tests of the store writer's steady mode (taskcast.store.writer): while writes keep coming, the
writer takes them every window without being woken by each, and commits each within a window;
once they stop it waits to be woken again."""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest

from taskcast.store.store import Store
from taskcast.store.writer import Writer
from tests.support.eventually import eventually_sync

WINDOW = 0.2  # long enough for the test to act inside one window on a busy machine


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Store]:
    monkeypatch.setattr("taskcast.store.writer.LINGER_SECONDS", WINDOW)
    monkeypatch.setattr("taskcast.store.writer.STEADY_LINGER_SECONDS", WINDOW)
    opened = Store(tmp_path / "steady.db")
    opened.open()
    yield opened
    opened.close()


def committed(path: Path, run_id: str) -> int:
    """The last seq of the run on disk (0: none), read from outside the store."""
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as conn:
        (last,) = conn.execute(
            "SELECT COALESCE(MAX(last_seq), 0) FROM event_chunks WHERE run_id = ?", (run_id,)
        ).fetchone()
    return int(last)


def reached(path: Path, seq: int) -> bool:
    return committed(path, "run") == seq


def count_wakes(writer: Writer, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    wakes = [0]
    notify = writer._has_work.notify

    def counted(n: int = 1) -> None:
        wakes[0] += 1
        notify(n)

    monkeypatch.setattr(writer._has_work, "notify", counted)
    return wakes


def test_events_that_keep_coming_are_committed_each_window_without_waking_the_writer(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "steady.db"
    writer = store._writer
    wakes = count_wakes(writer, monkeypatch)
    store.append_events("run", 1, ['"1"'])
    assert wakes[0] == 1  # an idle writer is woken by the first write
    eventually_sync(lambda: committed(path, "run") == 1, what="the first event committed")
    for seq in (2, 3, 4):
        # The writer had writes in its last batch: it waits a window for more by itself.
        eventually_sync(lambda: writer._lingering, what="the writer waiting for more")
        store.append_events("run", seq, [f'"{seq}"'])
        eventually_sync(partial(reached, path, seq), what=f"event {seq} committed")
    assert wakes[0] == 1, "a write in a steady stream woke the writer"
    assert store.events("run") == [(1, '"1"'), (2, '"2"'), (3, '"3"'), (4, '"4"')]


def test_once_writes_stop_the_writer_waits_to_be_woken_again(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "steady.db"
    writer = store._writer
    wakes = count_wakes(writer, monkeypatch)
    store.append_events("run", 1, ['"1"'])
    eventually_sync(lambda: committed(path, "run") == 1, what="the first event committed")
    # A window with nothing in it: the writer goes idle, and a new write wakes it.
    eventually_sync(
        lambda: not writer._lingering and not writer._steady, what="the writer going idle"
    )
    store.append_events("run", 2, ['"2"'])
    assert wakes[0] == 2
    eventually_sync(lambda: committed(path, "run") == 2, what="the second event committed")


def test_a_steady_stream_waits_a_longer_window_than_a_write_after_a_pause(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each wake-up of the writer costs CPU, so writes that keep coming are taken once a steady
    window; a write after a pause is still committed after the short one."""
    monkeypatch.setattr("taskcast.store.writer.LINGER_SECONDS", 0.05)
    monkeypatch.setattr("taskcast.store.writer.STEADY_LINGER_SECONDS", 2.0)
    path = tmp_path / "windows.db"
    store = Store(path)
    store.open()
    try:
        writer = store._writer
        store.append_events("run", 1, ['"1"'])
        eventually_sync(partial(reached, path, 1), what="the first event committed")
        eventually_sync(lambda: writer._lingering, what="the writer waiting a steady window")
        store.append_events("run", 2, ['"2"'])
        time.sleep(0.3)  # six short windows, well inside the steady one
        assert committed(path, "run") == 1, "a steady stream was committed after a short window"
        eventually_sync(partial(reached, path, 2), what="the second event committed")
        eventually_sync(
            lambda: not writer._lingering and not writer._steady, what="the writer going idle"
        )
        began = time.monotonic()
        store.append_events("run", 3, ['"3"'])
        eventually_sync(partial(reached, path, 3), what="the third event committed")
        assert time.monotonic() - began < 1.0, "a write after a pause waited a steady window"
    finally:
        store.close()
