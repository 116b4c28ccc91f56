"""The stored events of a run are bounded like its history: while it runs, when a restart finds
it interrupted, and the file gives the space of deleted events back."""

from __future__ import annotations

import os
from pathlib import Path

from taskcast.hub.hub import Hub
from taskcast.records import TaskStatus
from taskcast.runtime.events import RunEvents
from taskcast.store.store import Store
from tests.store.conftest import MakeStore, sql, task

BOUND = (20, 100, 200_000)  # keep_head, max_events, max_bytes
EVENT = '"' + "x" * 10_000 + '"'


def stored_bytes(store: Store, run_id: str) -> int:
    return sum(len(data) for _, data in store.events(run_id))


def file_bytes(path: Path) -> int:
    wal = Path(f"{path}-wal")
    return path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)


async def test_a_running_flood_is_bounded_in_the_store_while_it_runs(store: Store) -> None:
    keep_head, max_events, max_bytes = BOUND
    hub = Hub(keep_head=keep_head, max_events=max_events, max_bytes=max_bytes)
    run = RunEvents(hub, store, "id1", "s", True, "tasks.flood")
    run.open()
    most = 0
    for _ in range(20):
        for _ in range(50):
            run.emit(EVENT)
        store.flush()
        most = max(most, stored_bytes(store, "id1"))
    assert not run.ended
    # At most one and a half times the history bound, and one burst, while it runs.
    assert most <= max_bytes * 3 // 2 + 50 * len(EVENT), f"the running run stored {most} bytes"
    run.end("success", None)
    store.flush()
    stream = hub.get("s")
    assert stream is not None
    assert store.events("id1") == [(e.seq, e.data_json) for e in stream.history()]


def test_an_interrupted_run_is_trimmed_when_the_store_opens(make_store: MakeStore) -> None:
    path = Path(make_store().__dict__["_path"])
    first = Store(path)
    first.open()
    first.save_task(task(1, status=TaskStatus.RUNNING, stream_id="s"))
    first.append_events("id1", 1, [EVENT] * 3000)  # 30 MB, never trimmed: the server dies
    first.close()
    before = file_bytes(path)
    again = Store(path, run_bound=BOUND)
    interrupted = again.open()
    try:
        assert [record.id for record in interrupted] == ["id1"]
        kept = again.events("id1")
        hub = Hub(keep_head=BOUND[0], max_events=BOUND[1], max_bytes=BOUND[2])
        restored = hub.restore("s", "id1", kept, "interrupted")
        # What the store keeps is what a replay keeps: the API and the channel agree.
        assert [(e.seq, e.data_json) for e in restored.history()] == kept
        assert sum(len(data) for _, data in kept) <= BOUND[2]
        assert kept[0][0] == 1 and kept[-1][0] == 3000
        assert file_bytes(path) < before // 10, "the file kept the space of the trimmed events"
    finally:
        again.close()


def test_a_big_delete_gives_the_space_back(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "data" / "tasks.db"
    store.save_task(task(1, status=TaskStatus.SUCCESS))
    store.append_events("id1", 1, [EVENT] * 2000)  # 20 MB
    store.flush()
    assert file_bytes(path) > 20_000_000
    assert store.delete_task("id1")
    assert file_bytes(path) < 2_000_000, f"{file_bytes(path)} bytes left after the delete"
    assert sql(path, "PRAGMA auto_vacuum") == [(2,)]


def test_an_older_file_is_converted_to_incremental_vacuum_once(
    make_store: MakeStore, tmp_path: Path
) -> None:
    path = tmp_path / "old.db"
    sql(path, "CREATE TABLE unrelated (x)")
    assert sql(path, "PRAGMA auto_vacuum") == [(0,)]
    make_store(path)
    assert sql(path, "PRAGMA auto_vacuum") == [(2,)]
    assert os.path.exists(path)
