"""Restarts of a real `python run.py`: SIGKILL mid-run, then graceful SIGTERM and Ctrl-C.

Each server runs in its own session on a free 127.0.0.1 port and is driven from outside:
tasks are started through stdin (tests/soak/remote.py, the public task API from a thread),
streams are read over the channel, and the SQLite file is read directly once it has stopped.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import IO, Any

import aiohttp
import pytest

from taskcast.web.channel import PATH as CHANNEL
from tests.support.eventually import eventually
from tests.support.remote_server import RemoteServer

T = "tests.support.sample_tasks."


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def rows(database: Path, sql: str, *params: Any) -> list[Any]:
    """Read the file as another program would (read-only; the server may be running)."""
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as db:
        return db.execute(sql, params).fetchall()


class Server(RemoteServer):
    """`python run.py` driven through tests.soak.remote; see the module docstring."""

    @classmethod
    async def start(cls, database: Path, log: IO[bytes], *flags: str) -> Server:
        port = free_port()
        flags_here = ["--db", str(database), "--workers", "2"]
        process = await cls.launch("the server", port, [*flags_here, *flags], log)
        return cls("the server", process, port)

    async def record(self, task_id: str) -> dict[str, Any] | None:
        answer = await self.call(fetch=task_id)
        assert "record" in answer, answer
        record: dict[str, Any] | None = answer["record"]
        return record

    async def wait_for(self, task_id: str, *statuses: str, timeout: float = 15) -> dict[str, Any]:
        for _ in range(int(timeout / 0.02)):
            record = await self.record(task_id)
            if record is not None and record["status"] in statuses:
                return record
            await asyncio.sleep(0.02)
        raise AssertionError(f"task {task_id} did not become {statuses}: {record}")

    def signal_group(self, signum: int) -> None:
        os.killpg(self.process.pid, signum)

    async def exit_code(self, timeout: float) -> int:
        code = await asyncio.wait_for(self.process.wait(), timeout)
        return code


async def frames_of(session: aiohttp.ClientSession, server: Server, stream_id: str) -> list[Any]:
    """A stream as a page sees it, to the stop (or the server's close)."""
    ws = await session.ws_connect(server.url + CHANNEL)
    await ws.send_json({"id": stream_id})
    frames: list[Any] = []
    async for message in ws:
        if message.type is aiohttp.WSMsgType.TEXT:
            frames.append(json.loads(message.data))
    return frames


def events(frames: list[Any]) -> list[Any]:
    return [frame["data"] for frame in frames if frame["status"] == "event"]


def items(count: int) -> list[str]:
    return [f"<li>{i}</li>===>>.data" for i in range(count)]


Launch = Callable[..., Awaitable[Server]]


@pytest.fixture
async def launch(tmp_path: Path) -> AsyncIterator[Launch]:
    """`await launch(name, *flags)`: a server on tmp_path/<name>.sqlite3 logging to <name>.log
    (read it when a test fails). Every server is killed at the end, whatever happened."""
    started: list[Server] = []
    logs: list[IO[bytes]] = []

    async def start(name: str, *flags: str) -> Server:
        logs.append((tmp_path / f"{name}.log").open("wb"))
        server = await Server.start(tmp_path / f"{name}.sqlite3", logs[-1], *flags)
        started.append(server)
        return server

    yield start
    for server in started:
        if server.process.returncode is None:
            server.signal_group(signal.SIGKILL)
            await server.process.wait()
    for file in logs:
        file.close()


async def test_sigkill_mid_run_keeps_finished_work_and_interrupts_the_rest(
    tmp_path: Path, launch: Launch
) -> None:
    database = tmp_path / "restart.sqlite3"
    first = await launch("restart")
    finished = {
        await first.start_task("process_events", task_publish_id=f"p{n}", count=5 + n): (
            f"proc__p{n}",
            5 + n,
        )
        for n in range(3)
    }
    for n in range(2):
        task_id = await first.start_task("async_events", task_publish_id=f"a{n}", count=8 + n)
        finished[task_id] = (f"aio__a{n}", 8 + n)
    plain = await first.start_task("add", 20, 22)
    for task_id in [*finished, plain]:
        assert (await first.wait_for(task_id, "success"))["status"] == "success"

    running_process = await first.start_task(
        "process_events", task_publish_id="rp", count=1000, pause=0.02
    )
    running_async = await first.start_task(
        "async_events", task_publish_id="ra", count=1000, pause=0.02
    )
    blocker = await first.start_task("die", task_publish_id="blocker", how="wait", seconds=60)
    queued = await first.start_task("add", 1, 1)  # both workers are busy: it waits
    assert (await first.record(queued))["status"] == "queued"  # type: ignore[index]
    # Finished tasks are on disk, and the running ones have written some events there too.
    for _ in range(500):
        done = rows(database, "SELECT COUNT(*) FROM tasks WHERE status = 'success'")[0][0]
        partial = [
            rows(
                database,
                "SELECT TOTAL(last_seq - first_seq + 1) FROM event_chunks WHERE run_id = ?",
                run,
            )[0][0]
            for run in (running_process, running_async)
        ]
        if done == 6 and min(partial) >= 3:
            break
        await asyncio.sleep(0.02)
    else:
        raise AssertionError("the first server did not write its work in time")

    first.signal_group(signal.SIGKILL)  # the server and its workers, mid-run, no warning
    assert await first.exit_code(timeout=10) == -signal.SIGKILL
    assert rows(database, "PRAGMA integrity_check") == [("ok",)]

    second = await launch("restart")  # python run.py again, on the same file
    async with aiohttp.ClientSession() as session:
        for task_id, (stream_id, count) in finished.items():
            record = await second.record(task_id)
            assert record is not None and record["status"] == "success"
            assert record["result"] == str(count)
            frames = await frames_of(session, second, stream_id)
            assert events(frames) == items(count)
            assert frames[-1] == {"status": "stop", "state": "success"}
        assert (await second.record(plain)) == {"status": "success", "result": "42", "error": None}
        for task_id, stream_id in ((running_process, "proc__rp"), (running_async, "aio__ra")):
            record = await second.record(task_id)
            assert record is not None and record["status"] == "interrupted"
            assert record["error"] == "interrupted: the server stopped before the task finished"
            frames = await frames_of(session, second, stream_id)
            seen = events(frames)
            assert len(seen) >= 3 and seen == items(len(seen))  # what was saved, in order
            assert frames[-1]["status"] == "stop" and frames[-1]["state"] == "interrupted"
        for task_id in (blocker, queued):
            assert (await second.record(task_id))["status"] == "interrupted"  # type: ignore[index]
        # The restarted server works as before.
        again = await second.start_task("process_events", task_publish_id="p0", count=2)
        assert (await second.wait_for(again, "success"))["result"] == "2"
    second.signal_group(signal.SIGTERM)
    assert await second.exit_code(timeout=15) == 0
    assert rows(database, "PRAGMA integrity_check") == [("ok",)]


async def follow_until_closed(
    session: aiohttp.ClientSession, server: Server, first: dict[str, Any]
) -> tuple[asyncio.Task[int | None], list[Any]]:
    """A socket that sends `first`, then reads without pause, as a browser does, until the
    server closes it; the task gives its close code."""
    ws = await session.ws_connect(server.url + CHANNEL)
    await ws.send_json(first)
    frames: list[Any] = []

    async def read() -> int | None:
        async for message in ws:
            if message.type is aiohttp.WSMsgType.TEXT:
                frames.append(json.loads(message.data))
        return ws.close_code

    return asyncio.ensure_future(read()), frames


SIGNALS = [
    pytest.param("SIGTERM to the server", signal.SIGTERM, id="sigterm"),
    pytest.param("Ctrl-C in its terminal", signal.SIGINT, id="ctrl-c"),
]


def send(server: Server, signum: int) -> None:
    if signum == signal.SIGINT:
        server.signal_group(signum)  # a terminal's Ctrl-C reaches the whole process group
    else:
        server.process.send_signal(signum)  # a service manager's stop, to the main process


@pytest.mark.parametrize(("how", "signum"), SIGNALS)
async def test_graceful_shutdown_within_the_grace_period(
    tmp_path: Path, launch: Launch, how: str, signum: int
) -> None:
    database = tmp_path / "graceful.sqlite3"
    grace = 1.0
    server = await launch("graceful", "--shutdown-grace", str(grace))
    long_process = await server.start_task("die", task_publish_id="long", how="wait", seconds=60)
    second_process = await server.start_task("die", how="wait", seconds=60)
    queued = await server.start_task("add", 1, 2)  # both workers are busy: it waits
    long_async = await server.start_task("async_sleep_for", 60)
    long_thread = await server.start_task(
        "thread_events", task_publish_id="t", count=600, pause=0.1
    )
    short = await server.start_task("async_sleep_for", grace / 3)  # ends within the grace
    for task_id in (long_process, second_process, long_async, long_thread, short):
        await server.wait_for(task_id, "running")
    assert (await server.record(queued))["status"] == "queued"  # type: ignore[index]

    async with aiohttp.ClientSession() as session:
        sockets = [
            await follow_until_closed(session, server, first)
            for first in ({"id": "fault__long"}, {"id": "aio__later"}, {"ping": 1})
        ]
        await eventually(
            lambda: len(sockets[0][1]) >= 2 and len(sockets[2][1]) == 1,
            10,
            "the follower got its stream's start and first event, the pinger its pong",
        )
        began = time.monotonic()
        send(server, signum)
        late = await server.call(start=T + "add", args=[2, 2])
        closes = [await reader for reader, _ in sockets]
        code = await server.exit_code(timeout=grace + 15)
        took = time.monotonic() - began
    print(f"\n{how}: the server exited with {code} after {took:.2f} s (grace {grace} s)")
    assert code == 0
    assert took < grace + 5, f"{how}: exiting took {took:.1f} s"
    assert closes == [1001, 1001, 1001]
    assert [frame["status"] for frame in sockets[0][1]][:2] == ["start", "event"]

    stored = dict(rows(database, "SELECT id, status FROM tasks"))
    errors = dict(rows(database, "SELECT id, error FROM tasks"))
    for task_id in (long_process, second_process, long_async, long_thread):
        assert stored[task_id] == "cancelled", (task_id, stored[task_id])
        assert errors[task_id] == "cancelled: the server shut down"
    assert stored[short] == "success"
    before_start = "cancelled: the server shut down before the task started"
    assert stored[queued] == "cancelled" and errors[queued] == before_start
    # A task submitted after the signal never runs: it is refused, or cancelled unstarted.
    if "id" in late:
        assert stored[late["id"]] == "cancelled" and errors[late["id"]] == before_start
    else:
        assert "RunnerClosedError" in late["error"]
    assert rows(database, "PRAGMA integrity_check") == [("ok",)]
    # After a restart, the streams replay with the state they ended in.
    again = await launch("graceful")
    async with aiohttp.ClientSession() as session:
        frames = await frames_of(session, again, "fault__long")
    assert frames[-1] == {
        "status": "stop",
        "state": "cancelled",
        "error": "cancelled: the server shut down",
    }
    assert len(events(frames)) == 1  # the worker's pid, sent before the shutdown


async def test_a_stalled_request_neither_keeps_the_door_open_nor_delays_the_exit(
    launch: Launch,
) -> None:
    grace = 1.0
    server = await launch("late", "--shutdown-grace", str(grace))
    # A client that sent a request's headers and not all of its body (a bad network, say).
    _, stalled = await asyncio.open_connection("127.0.0.1", server.port)
    stalled.write(
        b"POST /api/tasks HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: 100\r\n\r\n{"
    )
    await stalled.drain()
    await asyncio.sleep(0.2)
    try:
        began = time.monotonic()
        send(server, signal.SIGTERM)
        await asyncio.sleep(0.3)
        late = await server.call(start=T + "add", args=[2, 2])
        assert "RunnerClosedError" in late.get("error", ""), f"accepted after the signal: {late}"
        code = await server.exit_code(timeout=grace + 15)
        took = time.monotonic() - began
    finally:
        stalled.close()
    assert code == 0 and took < grace + 4, f"exiting took {took:.1f} s"


async def test_a_thread_task_that_ignores_cancel_does_not_hold_the_exit(launch: Launch) -> None:
    grace = 0.5
    server = await launch("thread", "--shutdown-grace", str(grace))
    stuck = await server.start_task("thread_sleep_for", 60)
    await server.wait_for(stuck, "running")
    send(server, signal.SIGTERM)
    # the grace, then the runner's cancel_grace (2 s) for the thread, then a margin
    assert await server.exit_code(timeout=grace + 2 + 1.5) == 0


# -- a server killed outright leaves nothing behind ----------------------------------------------


def process_table() -> dict[int, tuple[int, str, int]]:
    """pid -> (parent pid, state, start time) of every process now, read from /proc."""
    table: dict[int, tuple[int, str, int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            text = Path(f"/proc/{entry}/stat").read_text()
        except OSError:  # it ended meanwhile
            continue
        # The command name, in parentheses, may hold spaces: the fields start after the last ')'.
        fields = text[text.rindex(")") + 2 :].split()
        table[int(entry)] = (int(fields[1]), fields[0], int(fields[19]))
    return table


def descendants(table: dict[int, tuple[int, str, int]], root: int) -> dict[int, int]:
    """pid -> start time of every process under `root` (the start time tells a reused pid)."""
    found: dict[int, int] = {}
    parents = [root]
    while parents:
        parent = parents.pop()
        for pid, (ppid, _, started) in table.items():
            if ppid == parent and pid not in found:
                found[pid] = started
                parents.append(pid)
    return found


def still_running(processes: dict[int, int]) -> dict[int, str]:
    """Those of `processes` still running (a zombie has ended), with their command lines."""
    table = process_table()
    left: dict[int, str] = {}
    for pid, started in processes.items():
        if pid in table and table[pid][2] == started and table[pid][1] != "Z":
            try:
                left[pid] = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
    return left


@pytest.mark.parametrize("ignore_cancel", [False, True], ids=["task-stops", "task-ignores-cancel"])
async def test_sigkill_of_the_server_alone_leaves_none_of_its_processes_and_stops_its_task(
    tmp_path: Path, launch: Launch, ignore_cancel: bool
) -> None:
    """The server alone is killed (as the OOM killer does): its workers, the forkserver and the
    resource tracker must notice and end, and the task a worker ran must stop, not go on (one
    that ignores TaskCancelled is ended with its worker after the cancel grace)."""
    server = await launch("orphans")
    ticks = tmp_path / "ticks.txt"
    task_id = await server.start_task("tick_file", str(ticks), ignore_cancel=ignore_cancel)
    await eventually(
        lambda: ticks.exists() and ticks.read_text().count("tick") >= 3, 10, "the task ticking"
    )
    table = process_table()
    started = descendants(table, server.process.pid)
    commands = list(still_running(started).values())
    # the forkserver and the two workers it forked (they keep its command line), the tracker
    assert sum("multiprocessing.forkserver" in c for c in commands) == 3, commands
    assert sum("multiprocessing.resource_tracker" in c for c in commands) == 1, commands
    started[server.process.pid] = table[server.process.pid][2]
    server.process.kill()
    try:
        await eventually(
            lambda: not still_running(started),
            10,
            "every process the server started has ended",
        )
    finally:
        for pid in still_running(started):
            os.kill(pid, signal.SIGKILL)
    # The task was stopped (as a cancel stops it, unless it ignores that), and nothing writes
    # to its file any more.
    lines = ticks.read_text().splitlines()
    assert lines[-1] == ("tick" if ignore_cancel else "stopped: TaskCancelled"), (task_id, lines)
    size = ticks.stat().st_size
    await asyncio.sleep(0.5)  # a window to observe that nothing happens; nothing to wait for
    assert ticks.stat().st_size == size
