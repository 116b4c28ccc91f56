"""Faults the server survives: dying workers, a blocked loop, floods, bad readers, a failing disk.

Each test runs the real app (`create_app` on the aiohttp test server) and checks three things:
what happened to the task at fault, that everything else went on as if nothing had happened,
and that the server's memory stayed within its limits.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import logging
import os
import signal
import socket
import sqlite3
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from taskcast import tasks
from taskcast.hub.hub import Hub
from taskcast.records import TaskRecord, TaskStatus
from taskcast.runtime import pool as pool_module
from taskcast.store.store import Store
from taskcast.web.keys import CORE, HUB, SOCKETS, STORE
from tests.conftest import ClientFactory
from tests.support.eventually import eventually
from tests.support.wsclient import (
    CHANNEL,
    event_data,
    next_frame,
    read_until_closed,
    stalled_reader,
)

T = "tests.support.sample_tasks."
Client = TestClient[Any, Any]


def items(count: int) -> list[str]:
    return [f"<li>{i}</li>===>>.data" for i in range(count)]


async def follow(client: Client, stream_id: str, after: int = 0) -> aiohttp.ClientWebSocketResponse:
    ws = await client.ws_connect(CHANNEL)
    await ws.send_json({"id": stream_id, "after": after})
    return ws


async def wait_status(task_id: str, status: TaskStatus, timeout: float = 10) -> TaskRecord:
    """Poll until the task has `status` (for tasks that are still queued or running)."""
    await eventually(lambda: getattr(tasks.get_task(task_id), "status", None) is status, timeout)
    record = tasks.get_task(task_id)
    assert record is not None
    return record


def seconds_between(earlier: Any, later: Any) -> float:
    assert earlier is not None and later is not None
    return float((later - earlier).total_seconds())


# -- a process task that dies hard -----------------------------------------------------------

DEATHS = {
    "exit": "worker process died: exit code 1",
    "sigkill": "worker process died: signal 9 (SIGKILL)",
    "segfault": "worker process died: signal 11 (SIGSEGV)",
}


@pytest.mark.parametrize("how", sorted(DEATHS))
async def test_a_dying_worker_fails_only_its_task_and_is_replaced_at_once(
    make_client: ClientFactory, how: str
) -> None:
    client = await make_client(process_workers=2)
    neighbour = tasks.async_task(T + "process_events", task_publish_id="n", count=40, pause=0.05)
    await wait_status(neighbour, TaskStatus.RUNNING)  # it holds one worker throughout
    watchers = [await follow(client, stream) for stream in ("proc__n", "aio__a", "fault__v")]
    beside = tasks.async_task(T + "async_events", task_publish_id="a", count=40, pause=0.025)
    victim = tasks.async_task(
        T + "die", task_publish_id="v", how="wait" if how == "sigkill" else how
    )
    queued = [tasks.async_task(T + "add", n, n) for n in range(3)]  # wait for a worker
    assert tasks.get_task(queued[0]).status is TaskStatus.QUEUED  # type: ignore[union-attr]
    assert (await next_frame(watchers[2]))["status"] == "start"
    pid = int((await next_frame(watchers[2]))["data"])
    if how == "sigkill":
        os.kill(pid, signal.SIGKILL)  # from outside, as an operator or the OOM killer would

    dead = await tasks.wait_task(victim, timeout=10)
    assert dead.status is TaskStatus.FAILED and dead.error == DEATHS[how]
    victim_frames = await read_until_closed(watchers[2])
    assert victim_frames[-1] == {"status": "stop", "state": "failed", "error": dead.error}
    assert watchers[2].close_code == 1000
    records = [await tasks.wait_task(task_id, timeout=10) for task_id in queued]
    assert [r.result for r in records] == [0, 2, 4]
    restart = seconds_between(dead.stopped, records[0].started)
    print(f"\n{how}: the next process task started {restart:.3f} s after the death")
    assert restart < 2, f"the next process task waited {restart:.2f} s for a worker"
    for ws, count in zip(watchers[:2], (40, 40), strict=True):
        frames = await read_until_closed(ws)
        assert event_data(frames) == items(count) and frames[-1]["state"] == "success"
    assert (await tasks.wait_task(neighbour, timeout=10)).result == 40
    assert (await tasks.wait_task(beside, timeout=10)).result == 40
    # the pool is whole again: two tasks run side by side on two live workers
    pair = [tasks.async_task(T + "sleep_for", 0.3) for _ in range(2)]
    both = [await tasks.wait_task(task_id, timeout=10) for task_id in pair]
    assert all(r.result == "slept" for r in both)
    assert abs(seconds_between(both[0].started, both[1].started)) < 0.25


async def test_a_memory_error_fails_the_task_and_the_worker_goes_on(
    make_client: ClientFactory,
) -> None:
    client = await make_client(process_workers=1)
    ws = await follow(client, "fault__m")
    victim = tasks.async_task(T + "die", task_publish_id="m", how="memory")
    record = await tasks.wait_task(victim, timeout=10)
    assert record.status is TaskStatus.FAILED
    assert record.error is not None and record.error.rstrip().endswith("MemoryError")
    frames = await read_until_closed(ws)
    pid = int(event_data(frames)[0])
    assert frames[-1] == {"status": "stop", "state": "failed", "error": "MemoryError"}
    after = await tasks.wait_task(tasks.async_task(T + "die", how="exit"), timeout=10)
    assert after.error == "worker process died: exit code 1"  # same worker: it was not broken
    assert pid > 0


async def health_of(client: Client) -> tuple[int, dict[str, Any]]:
    response = await client.get("/api/health")
    body: dict[str, Any] = await response.json()
    return response.status, body


async def test_health_reports_the_workers_and_fails_while_none_can_start(
    make_client: ClientFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pool_module, "RESTART_DELAY_FIRST", 0.05)
    monkeypatch.setattr(pool_module, "RESTART_DELAY_MAX", 0.2)
    client = await make_client(process_workers=1)
    code, body = await health_of(client)
    assert (code, body["status"]) == (200, "ok")
    healthy = {"status": "ok", "size": 1, "alive": 1, "busy": 0, "replacing": 0}
    healthy |= {"failed_starts": 0, "last_error": None}
    assert body["workers"] == healthy
    # The worker dies and no new one can start (its set-up fails, as when a database is down).
    pool = client.app[CORE].runner._pool
    good = pool._setup
    pool._setup = dataclasses.replace(good, initializer=T + "broken_initializer")
    pid = pool._slots[0].pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    seen: list[tuple[int, dict[str, Any]]] = []

    async def failing() -> bool:
        seen.append(await health_of(client))
        return bool(seen[-1][1]["status"] == "failing")

    deadline = time.monotonic() + 15
    while not await failing():
        assert time.monotonic() < deadline, f"health never said failing: {seen[-1]}"
        await asyncio.sleep(0.02)
    code, body = seen[-1]
    assert code == 503
    assert body["workers"]["alive"] == 0 and body["workers"]["replacing"] == 1
    assert "broken_initializer failed" in body["workers"]["last_error"]
    pool._setup = good
    await eventually(lambda: pool.health().status == "ok", 15, "a worker started again")
    code, body = await health_of(client)
    assert (code, body["status"], body["workers"]) == (200, "ok", healthy)


# -- an async task that blocks the loop --------------------------------------------------------


async def test_a_task_blocking_the_loop_is_named_and_the_server_recovers(
    make_client: ClientFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="taskcast.watchdog")
    client = await make_client(loop_block_warning=0.2)
    ws = await client.ws_connect(CHANNEL)
    beside = tasks.async_task(T + "async_events", task_publish_id="b", count=20, pause=0.02)
    blocker = tasks.async_task(T + "block_loop", 0.8)
    await asyncio.sleep(0.05)  # the blocker has run by now; the loop is free again
    await ws.send_json({"ping": 1})
    assert await next_frame(ws, timeout=5) == {"status": "pong"}
    assert (await tasks.wait_task(blocker, timeout=5)).status is TaskStatus.SUCCESS
    assert (await tasks.wait_task(beside, timeout=5)).result == 20
    messages = [r.getMessage() for r in caplog.records if r.name == "taskcast.watchdog"]
    assert len(messages) == 2, messages
    assert messages[0].startswith("event loop blocked for ")
    assert "block_loop (tests/support/sample_tasks.py:" in messages[0]
    assert messages[1].startswith("event loop responsive again after being blocked for ")
    total = float(messages[1].split("blocked for ")[1].split(" s")[0])
    assert 0.7 <= total <= 2.0


# -- floods and huge events --------------------------------------------------------------------


async def read_resuming(client: Client, stream_id: str) -> tuple[list[int], int]:
    """Follow a stream to its end, resuming after a 1013 cut-off; (seqs seen, cut-offs)."""
    seqs: list[int] = []
    cut_offs = 0
    while True:
        ws = await follow(client, stream_id, after=seqs[-1] if seqs else 0)
        frames = await read_until_closed(ws, timeout=30)
        seqs += [f["seq"] for f in frames if f["status"] == "event"]
        if ws.close_code != 1013:
            assert frames[-1]["status"] == "stop", frames[-1:]
            return seqs, cut_offs
        cut_offs += 1
        assert cut_offs < 50


class Pace:
    """How a calm stream's 50 events (10 ms apart) arrived: over how long, and the longest gap."""

    def __init__(self, arrivals: list[float]) -> None:
        self.spread = arrivals[-1] - arrivals[0]
        self.gap = max(later - earlier for earlier, later in itertools.pairwise(arrivals))

    def __str__(self) -> str:
        return f"{self.spread:.2f} s (longest gap {self.gap * 1000:.0f} ms)"


async def calm_pace(client: Client, publish_id: str) -> Pace:
    """Run `async_events` (50 events, 10 ms apart) on a fresh stream and time their arrival."""
    ws = await follow(client, f"aio__{publish_id}")
    await asyncio.sleep(0.05)  # subscribed before the run starts: every event arrives live
    task_id = tasks.async_task(T + "async_events", task_publish_id=publish_id, count=50, pause=0.01)
    arrivals: list[float] = []
    while (frame := await next_frame(ws, timeout=30))["status"] != "stop":
        if frame["status"] == "event":
            arrivals.append(time.monotonic())
    assert len(arrivals) == 50 and (await tasks.wait_task(task_id, timeout=5)).result == 50
    return Pace(arrivals)


async def sample_memory(hub: Hub, stop: asyncio.Event, limits: dict[str, int]) -> int:
    """Check the hub against its limits every 10 ms until `stop`; the most events it held."""
    most = 0
    while not stop.is_set():
        for stream in hub:
            assert len(stream) <= limits["history_max_events"], stream
            assert len(stream.head) <= limits["history_keep_head"]
            tail_bytes = sum(len(event.data_json) for event in stream.tail)
            assert tail_bytes <= limits["history_max_bytes"], stream
        most = max(most, sum(len(stream) for stream in hub))
        await asyncio.sleep(0.01)
    return most


async def test_a_flood_stays_within_the_limits_and_other_streams_do_not_notice(
    make_client: ClientFactory,
) -> None:
    limits = {"history_max_events": 2000, "history_max_bytes": 256 * 1024, "history_keep_head": 20}
    client = await make_client(subscriber_max_pending=500, **limits)
    hub = client.app[HUB]
    alone = await calm_pace(client, "calm0")
    stalled = stalled_reader(client.host, client.port, "flood__f")
    stop = asyncio.Event()
    try:
        sampler = asyncio.ensure_future(sample_memory(hub, stop, limits))
        reader = asyncio.ensure_future(read_resuming(client, "flood__f"))
        await asyncio.sleep(0.1)
        flood = tasks.async_task(T + "flood", task_publish_id="f", count=50_000, size=200)
        beside = await calm_pace(client, "calm1")
        record = await tasks.wait_task(flood, timeout=30)
        seqs, cut_offs = await reader
        stop.set()
        most = await sampler
    finally:
        stalled.close()
    assert record.result == 50_000
    # The reader saw an increasing, duplicate-free run of seqs ending at the last one.
    assert seqs == sorted(set(seqs)) and seqs[-1] == 50_000
    print(
        f"\nflood: 50 calm events took {beside} beside the flood, {alone} alone; "
        f"the flood's reader was cut off {cut_offs} times and saw {len(seqs)} of 50000 events; "
        f"the hub held at most {most} events"
    )
    # The loop is shared, so the calm stream slows down, but it keeps flowing.
    assert beside.gap < 1.0 and beside.spread < alone.spread + 3
    assert len(client.app[STORE].events(record.id)) <= limits["history_max_events"]
    await eventually(lambda: len(client.app[SOCKETS]) == 0)  # the stalled peer was cut off
    assert hub.subscriber_count == 0


async def test_huge_events_reach_every_reader_and_other_streams(make_client: ClientFactory) -> None:
    client = await make_client(history_max_bytes=4 * 1024 * 1024)
    live = await follow(client, "flood__huge")
    await asyncio.sleep(0.05)
    task_id = tasks.async_task(T + "flood", task_publish_id="huge", count=6, size=1024 * 1024)
    beside = await calm_pace(client, "calm2")
    frames = await read_until_closed(live, timeout=30)
    assert [len(data) for data in event_data(frames)] == [1024 * 1024 + 2] * 6
    assert (await tasks.wait_task(task_id, timeout=10)).result == 6
    # a late reader gets what the 4 MiB history bound kept: the first event, then the newest
    late = await read_until_closed(await follow(client, "flood__huge"), timeout=30)
    kept = [frame["seq"] for frame in late if frame["status"] == "event"]
    assert kept[0] == 1 and kept[-1] == 6 and len(kept) < 6
    assert sum(len(data) for data in event_data(late)) <= 4 * 1024 * 1024
    assert beside.gap < 1.0


async def test_huge_events_are_bounded_in_memory(make_client: ClientFactory) -> None:
    client = await make_client(history_max_bytes=4 * 1024 * 1024, history_keep_head=20)
    task_id = tasks.async_task(T + "flood", task_publish_id="heavy", count=30, size=1024 * 1024)
    assert (await tasks.wait_task(task_id, timeout=30)).result == 30
    stream = client.app[HUB].get("flood__heavy")
    assert stream is not None
    held = sum(len(event.data_json) for event in (*stream.head, *stream.tail))
    assert held <= 4 * 1024 * 1024, f"the stream holds {held} bytes"


async def test_a_burst_that_fills_a_queue_exactly_still_ends_the_stream(
    make_client: ClientFactory,
) -> None:
    client = await make_client(subscriber_max_pending=100)
    ws = await follow(client, "aio__burst")
    # waiting for the run: its queue holds start, then 100 events
    await eventually(lambda: client.app[HUB].subscriber_count == 1)
    task_id = tasks.async_task(T + "async_burst", task_publish_id="burst", count=100)
    assert (await tasks.wait_task(task_id, timeout=5)).result == 100
    frames = await read_until_closed(ws, timeout=3)
    assert ws.close_code == 1000, f"closed with {ws.close_code}, not after stop"
    assert event_data(frames) == list(range(100)) and frames[-1]["status"] == "stop"


async def test_a_task_cancelled_while_queued_ends_its_stream(make_client: ClientFactory) -> None:
    client = await make_client(process_workers=1)
    blocker = tasks.async_task(T + "sleep_for", 10)
    await wait_status(blocker, TaskStatus.RUNNING)
    ws = await follow(client, "proc__never")
    queued = tasks.async_task(T + "process_events", task_publish_id="never", count=3)
    try:
        await eventually(lambda: client.app[HUB].subscriber_count == 1)  # waiting for the run
        assert tasks.get_task(queued).status is TaskStatus.QUEUED  # type: ignore[union-attr]
        assert tasks.cancel(queued)
        frames = await read_until_closed(ws, timeout=2)
    finally:
        tasks.cancel(blocker)
    assert frames[0] == {"status": "start"}
    assert frames[-1] == {
        "status": "stop",
        "state": "cancelled",
        "error": "cancelled before it started",
    }


# -- slow, dead and many subscribers -----------------------------------------------------------


async def test_a_subscriber_that_vanishes_is_dropped_and_the_task_goes_on(
    make_client: ClientFactory,
) -> None:
    client = await make_client()
    hub = client.app[HUB]
    probe = await follow(client, "proc__gone")
    peers = [stalled_reader(client.host, client.port, "proc__gone") for _ in range(2)]
    await asyncio.sleep(0.1)
    task_id = tasks.async_task(T + "process_events", task_publish_id="gone", count=40, pause=0.02)
    assert (await next_frame(probe))["status"] == "start"
    peers[0].close()  # gone with a FIN, no close frame
    peers[1].setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    peers[1].close()  # gone with a reset
    await eventually(lambda: len(client.app[SOCKETS]) == 1 and hub.subscriber_count == 1)
    frames = await read_until_closed(probe)
    assert event_data(frames) == items(40)
    record = await tasks.wait_task(task_id, timeout=10)
    assert record.result == 40 and (record.time_taken() or 0) < 40 * 0.02 + 1.5


async def crowd(
    session: aiohttp.ClientSession, client: Client, stream_id: str, size: int
) -> list[aiohttp.ClientWebSocketResponse]:
    """`size` sockets subscribed to one stream, opened a hundred at a time."""
    url = client.make_url(CHANNEL)

    async def one() -> aiohttp.ClientWebSocketResponse:
        ws = await session.ws_connect(url)
        await ws.send_json({"id": stream_id})
        return ws

    sockets: list[aiohttp.ClientWebSocketResponse] = []
    for start in range(0, size, 100):
        sockets += await asyncio.gather(*(one() for _ in range(start, min(size, start + 100))))
    return sockets


async def test_a_thousand_subscribers_on_one_stream(make_client: ClientFactory) -> None:
    client = await make_client()
    hub = client.app[HUB]
    baseline_task = tasks.async_task(
        T + "process_events", task_publish_id="few", count=50, pause=0.01
    )
    baseline = await tasks.wait_task(baseline_task, timeout=10)
    alone = await calm_pace(client, "probe0")
    # The test client's own pool stops at 100 connections; each socket here holds one.
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        began = time.monotonic()
        sockets = await crowd(session, client, "proc__many", 1000)
        joined = time.monotonic() - began
        await eventually(lambda: hub.subscriber_count == 1000, 10)
        readers = [asyncio.ensure_future(read_until_closed(ws, timeout=30)) for ws in sockets]
        task_id = tasks.async_task(
            T + "process_events", task_publish_id="many", count=50, pause=0.01
        )
        beside = await calm_pace(client, "probe1")
        record = await tasks.wait_task(task_id, timeout=30)
        results = await asyncio.gather(*readers)
        assert all(event_data(frames) == items(50) for frames in results)
        assert all(ws.close_code == 1000 for ws in sockets)
        print(
            f"\n1000 subscribers joined in {joined:.2f} s; the task took {record.time_taken():.2f} s "
            f"(alone {baseline.time_taken():.2f} s); a probe's 50 events took {beside} "
            f"(alone {alone})"
        )
        assert (record.time_taken() or 0) < (baseline.time_taken() or 0) * 3 + 1
        assert beside.gap < 1.0 and beside.spread < alone.spread * 3 + 1
    await eventually(lambda: len(client.app[SOCKETS]) == 0, 10)


# -- a failing disk ----------------------------------------------------------------------------


class TroubledStore(Store):
    """The app's store on a disk that can fill up (SQLite's max_page_count, set by the writer
    thread before each batch) or be locked by another program; retries come quickly."""

    def __init__(self, path: str, **options: Any) -> None:
        options.update(busy_timeout=0.2, retry_delay=0.05, max_retry_delay=0.2)
        super().__init__(path, **options)
        self.pages = 10**9
        self.locker: sqlite3.Connection | None = None

    def _apply(self, conn: sqlite3.Connection, batch: list[Any]) -> None:
        conn.execute(f"PRAGMA max_page_count = {self.pages}")  # never below the file's size
        super()._apply(conn, batch)

    def break_disk(self, how: str, path: str) -> None:
        if how == "full":
            self.pages = 1
        else:
            self.locker = sqlite3.connect(path, isolation_level=None)
            self.locker.execute("BEGIN EXCLUSIVE")

    def mend_disk(self) -> None:
        self.pages = 10**9
        if self.locker is not None:
            self.locker.execute("COMMIT")
            self.locker.close()
            self.locker = None


@pytest.fixture
def troubled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("taskcast.runtime.runner.Store", TroubledStore)


def stored_rows(path: str, sql: str) -> list[Any]:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        return db.execute(sql).fetchall()


@pytest.mark.usefixtures("troubled")
@pytest.mark.parametrize("how", ["full", "locked"])
async def test_a_failing_disk_loses_nothing_already_stored_and_the_server_goes_on(
    make_client: ClientFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture, how: str
) -> None:
    path = str(tmp_path / "disk.sqlite3")
    client = await make_client(database=path)
    store = client.app[STORE]
    assert isinstance(store, TroubledStore)
    before = tasks.async_task(T + "process_events", task_publish_id="before", count=5)
    assert await tasks.wait_result(before, timeout=10) == 5
    await store.aflush()

    caplog.set_level(logging.WARNING, logger="taskcast.store")
    store.break_disk(how, path)
    # events of 5 kB: each needs a page of its own, which a full disk does not have
    during = tasks.async_task(T + "flood", task_publish_id="during", count=30, size=5000)
    beside = tasks.async_task(T + "async_identity", "beside")
    assert await tasks.wait_result(during, timeout=10) == 30
    assert await tasks.wait_result(beside, timeout=10) == "beside"
    await eventually(lambda: store.kept_writes > 0)
    # The server goes on: records and streams answer from memory, the socket is answered.
    ws = await follow(client, "flood__during")
    assert [e.split(":")[0] for e in event_data(await read_until_closed(ws))] == [
        str(n) for n in range(30)
    ]
    assert tasks.get_task(during).status is TaskStatus.SUCCESS  # type: ignore[union-attr]
    expected = "database or disk is full" if how == "full" else "database is locked"
    assert f"{expected}; " in caplog.text and store.write_errors >= 1

    store.mend_disk()
    await eventually(lambda: store.kept_writes == 0)
    await store.aflush()
    assert "works again" in caplog.text
    statuses = dict(stored_rows(path, "SELECT id, status FROM tasks"))
    assert statuses == {before: "success", during: "success", beside: "success"}

    store.break_disk(how, path)
    lost = tasks.async_task(T + "flood", task_publish_id="lost", count=3, size=5000)
    assert await tasks.wait_result(lost, timeout=10) == 3
    await client.close()  # the store's last try fails: given up, logged, nothing corrupted
    store.mend_disk()
    assert "the server stopped before it could retry" in caplog.text
    assert lost in caplog.text

    await make_client(database=path)
    # Its end was never saved: it is unknown, or what the file had of it, now interrupted.
    unsaved = tasks.get_task(lost)
    assert unsaved is None or unsaved.status is TaskStatus.INTERRUPTED
    assert [tasks.get_task(t).status for t in (before, during, beside)] == [TaskStatus.SUCCESS] * 3  # type: ignore[union-attr]
    assert stored_rows(path, "PRAGMA integrity_check") == [("ok",)]
    events = stored_rows(
        path, f"SELECT SUM(last_seq - first_seq + 1) FROM event_chunks WHERE run_id = '{during}'"
    )
    assert events == [(30,)]
