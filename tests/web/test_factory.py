"""The whole server through HTTP and the channel: the seed's examples, replay, restarts."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from taskcast import tasks
from taskcast.errors import NoRunnerError
from taskcast.records import TaskStatus
from taskcast.store.store import Store
from tests.conftest import ClientFactory, app_runner
from tests.support.wsclient import CHANNEL, event_data, next_frame, read_until_closed

ROOT = Path(__file__).resolve().parents[2]
SEED_EVENTS = [
    "<ul class='data'></ul><div name='task_end_info' style='display: none;'>Finish</div>",
    *[f"<li>item {i}</li>===>>.data" for i in range(30)],
]


async def test_seed_example_2_streams_every_event_in_order(make_client: ClientFactory) -> None:
    client = await make_client(
        task_modules=["tasks"], worker_initializer="tests.support.sample_tasks.fast_clock"
    )
    ws = await client.ws_connect(CHANNEL)
    await ws.send_json({"id": "demo__test1"})
    # the view code of the seed, as written
    task_id = tasks.async_task("tasks.test_task", task_publish_id="test1", param=123)
    frames = await read_until_closed(ws)
    assert frames[0] == {"status": "start"}
    assert event_data(frames) == SEED_EVENTS
    assert [f["seq"] for f in frames if f["status"] == "event"] == list(range(1, 32))
    assert frames[-1] == {"status": "stop", "state": "success"}
    assert ws.close_code == 1000
    assert await tasks.wait_result(task_id, timeout=10) is True
    record = tasks.get_task(task_id)
    assert record is not None and record.output == "123\n"
    assert record.stream_id == "demo__test1" and record.group == "demo"


async def test_seed_example_1_runs_in_the_pool(make_client: ClientFactory) -> None:
    await make_client(
        task_modules=["tasks"], worker_initializer="tests.support.sample_tasks.fast_clock"
    )
    task_id = tasks.async_task("tasks.long_running_process")
    assert tasks.result(task_id) is None
    assert await tasks.wait_result(task_id, timeout=20) == 1
    record = tasks.get_task(task_id)
    assert record is not None
    assert record.output == "start\nend\n" and record.kind == "process"


async def test_late_subscriber_gets_history_then_live(make_client: ClientFactory) -> None:
    client = await make_client()
    task_id = tasks.async_task(
        "tests.support.sample_tasks.async_events", task_publish_id="late", count=40, pause=0.01
    )
    first = await client.ws_connect(CHANNEL)
    await first.send_json({"id": "aio__late"})
    assert (await next_frame(first))["status"] == "start"
    await next_frame(first)  # at least one event is out: the second socket joins mid-stream
    second = await client.ws_connect(CHANNEL)
    await second.send_json({"id": "aio__late"})
    expected = [f"<li>{i}</li>===>>.data" for i in range(40)]
    second_frames = await read_until_closed(second)
    assert event_data(second_frames) == expected
    assert event_data(await read_until_closed(first)) == expected[1:]
    await tasks.wait_result(task_id, timeout=5)
    third = await client.ws_connect(CHANNEL)
    await third.send_json({"id": "aio__late"})
    third_frames = await read_until_closed(third)
    assert third_frames[0]["status"] == "start" and third_frames[-1]["status"] == "stop"
    assert event_data(third_frames) == expected


async def test_results_and_history_survive_a_restart(
    make_client: ClientFactory, tmp_path: Path
) -> None:
    database = str(tmp_path / "restart.sqlite3")
    first = await make_client(database=database)
    task_id = tasks.async_task(
        "tests.support.sample_tasks.process_events", task_publish_id="r", count=12
    )
    assert await tasks.wait_result(task_id, timeout=10) == 12
    await first.close()

    second = await make_client(database=database)
    assert tasks.result(task_id) == 12
    ws = await second.ws_connect(CHANNEL)
    await ws.send_json({"id": "proc__r"})
    frames = await read_until_closed(ws)
    assert event_data(frames) == [f"<li>{i}</li>===>>.data" for i in range(12)]
    assert frames[-1] == {"status": "stop", "state": "success"}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def wait_for_http(url: str, deadline: float) -> None:
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            try:
                async with session.get(url) as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
    raise AssertionError(f"{url} did not answer in time")


def stored_event_count(database: Path, stream_prefix: str) -> int:
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as db:
        row = db.execute(
            "SELECT TOTAL(e.last_seq - e.first_seq + 1) FROM event_chunks e JOIN tasks t "
            "ON e.run_id = t.id "
            "WHERE t.stream_id LIKE ?",
            (stream_prefix + "%",),
        ).fetchone()
        return int(row[0])


async def test_sigkill_mid_run_then_restart(make_client: ClientFactory, tmp_path: Path) -> None:
    database = tmp_path / "crash.sqlite3"
    port = free_port()
    server = await asyncio.create_subprocess_exec(
        sys.executable,
        "run.py",
        "--port",
        str(port),
        "--db",
        str(database),
        "--workers",
        "1",
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        await wait_for_http(base + "/", time.monotonic() + 20)
        async with aiohttp.ClientSession() as session:
            async with session.post(
                base + "/demo/start",
                data={"task_publish_id": "crash"},
                headers={"Accept": "application/json"},
            ) as response:
                started: dict[str, Any] = await response.json()
        deadline = time.monotonic() + 20
        while stored_event_count(database, "demo__crash") < 2:
            assert time.monotonic() < deadline, "events were not stored"
            await asyncio.sleep(0.05)
    finally:
        os.killpg(server.pid, signal.SIGKILL)
        await asyncio.wait_for(server.wait(), 10)

    client = await make_client(database=str(database))
    record = tasks.get_task(started["id"])
    assert record is not None and record.status is TaskStatus.INTERRUPTED
    ws = await client.ws_connect(CHANNEL)
    await ws.send_json({"id": "demo__crash"})
    frames = await read_until_closed(ws)
    assert event_data(frames)[:2] == SEED_EVENTS[:2]
    assert frames[-1]["status"] == "stop" and frames[-1]["state"] == "interrupted"
    with sqlite3.connect(database) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert app_runner(client).get(started["id"]) == record


async def test_index_and_task_pages(make_client: ClientFactory) -> None:
    client = await make_client()
    task_id = tasks.async_task("tests.support.sample_tasks.async_identity", "<script>x</script>")
    await tasks.wait_result(task_id, timeout=5)
    index = await client.get("/")
    assert index.status == 200
    assert task_id[:8] in await index.text()
    page = await client.get(f"/tasks/{task_id}")
    body = await page.text()
    assert page.status == 200 and "&lt;script&gt;x&lt;/script&gt;" in body
    assert "<script>x</script>" not in body
    assert (await client.get("/tasks/nope")).status == 404
    assert (await client.get("/?status=bogus")).status == 400


async def test_shutdown_cancels_running_tasks(make_client: ClientFactory, tmp_path: Path) -> None:
    database = str(tmp_path / "shutdown.sqlite3")
    client = await make_client(database=database, shutdown_grace=0.2)
    running = tasks.async_task("tests.support.sample_tasks.sleep_for", 30)
    quick = tasks.async_task("tests.support.sample_tasks.async_identity", "done")
    runner = app_runner(client)
    assert await tasks.wait_result(quick, timeout=5) == "done"
    deadline = time.monotonic() + 10
    while runner.get(running).status is not TaskStatus.RUNNING:  # type: ignore[union-attr]
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)
    began = time.monotonic()
    await client.close()
    assert time.monotonic() - began < 5
    with pytest.raises(NoRunnerError):
        tasks.get_task(running)

    store = Store(database)
    store.open()
    try:
        record = store.get_task(running)
        assert record is not None and record.status is TaskStatus.CANCELLED
        assert record.error == "cancelled: the server shut down"
        assert store.get_task(quick).status is TaskStatus.SUCCESS  # type: ignore[union-attr]
    finally:
        store.close()


async def test_demo_pages_and_their_errors(make_client: ClientFactory) -> None:
    client = await make_client(task_modules=["tasks"])
    demo = await client.get("/demo")
    body = await demo.text()
    assert demo.status == 200 and '<form method="post" action="/demo/start">' in body
    assert '<input type="hidden" name="task" value="seed">' in body
    watch = await client.get("/demo/watch", params={"stream": "demo__abc"})
    assert watch.status == 200 and 'task_id="demo__abc"' in await watch.text()
    assert "task_href" not in await watch.text()
    frames = await client.get("/demo/frames", params={"stream": "demo__abc"})
    assert frames.status == 200 and 'data-stream="demo__abc"' in await frames.text()
    for bad in ("", "<script>", "x" * 101):
        assert (await client.get("/demo/watch", params={"stream": bad})).status == 400
    for publish_id in ("a b", "", "x" * 33, "\u0661\u0662", "\uff11"):
        refused = await client.post("/demo/start", data={"task_publish_id": publish_id})
        assert refused.status == 400, publish_id
        assert "task_publish_id must be 1 to 32 letters or digits" in await refused.text()
    unknown = await client.post("/demo/start", data={"task_publish_id": "ab", "task": "nope"})
    assert unknown.status == 400
    started = await client.post(
        "/demo/start", data={"task_publish_id": "busy1", "task": "tour"}, allow_redirects=False
    )
    assert started.status == 303
    assert started.headers["Location"] == "/demo/watch?stream=tour__busy1"
    json_answer = {"Accept": "application/json"}
    again = await client.post(
        "/demo/start", data={"task_publish_id": "busy1", "task": "tour"}, headers=json_answer
    )
    assert again.status == 409
    running = app_runner(client).latest_run("tour__busy1")
    assert running is not None and (await again.json())["id"] == running.id
    assert app_runner(client).cancel(running.id)
