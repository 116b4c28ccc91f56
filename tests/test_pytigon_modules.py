"""Task modules written as Pytigon's apps write theirs run on Taskcast, each started the way its
view starts it (`tests/support/pytigon_like`)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import cast

import pytest

from taskcast.records import TaskStatus
from taskcast.runtime.runner import Runner
from taskcast.tasks import async_task
from tests.conftest import ClientFactory
from tests.support.pytigon_like import schcommander, tasks_demo

MODULES = "tests.support.pytigon_like."

# What the modules' views call; they are written untyped, as Pytigon's are.
View = Callable[..., dict[str, str]]
start_test_task = cast(View, tasks_demo.start_test_task)
start_test_task2 = cast(View, tasks_demo.start_test_task2)
exec_command = cast(View, schcommander.exec_command)


def events(runner: Runner, task_id: str) -> list[object]:
    return [json.loads(text) for _, text in runner.store.events(task_id)]


async def test_tasks_demo_streams_to_the_id_its_view_gives_the_page(runner: Runner) -> None:
    started = start_test_task()
    assert started["id"] == "demo__test1"
    record = await runner.wait(started["task_id"])
    assert (record.status, record.result, record.stream_id) == (
        TaskStatus.SUCCESS,
        True,
        "demo__test1",
    )
    assert events(runner, started["task_id"]) == [
        "<ul class='data'></ul><div name='task_end_info' style='display: none;'>Finish</div>",
        "<li>item 0</li>===>>.data",
        "<li>item 1</li>===>>.data",
        "<li>item 2</li>===>>.data",
    ]
    plain = start_test_task2()
    record = await runner.wait(plain["ret"])
    assert (record.status, record.result) == (TaskStatus.SUCCESS, "tast task2 result")


async def test_schbuilder_task_streams_to_its_bare_group(runner: Runner) -> None:
    task_id = async_task(MODULES + "schbuilder.test")
    record = await runner.wait(task_id)
    assert (record.status, record.result, record.stream_id) == (
        TaskStatus.SUCCESS,
        "Hello world",
        "test",
    )
    assert events(runner, task_id)[1:] == [f"<li>item {i}</li> ===>> .data" for i in range(3)]


async def test_schcommander_hands_its_cproxy_to_a_library_function(
    runner: Runner, tmp_path: Path
) -> None:
    source, target = tmp_path / "a.txt", tmp_path / "dest"
    source.write_text("a")
    target.mkdir()
    copied = exec_command("COPY", [str(source)], str(target))
    assert copied["process_id"].startswith("vfs_action__")
    record = await runner.wait(copied["task_id"])
    assert (record.status, record.stream_id) == (TaskStatus.SUCCESS, copied["process_id"])
    assert events(runner, copied["task_id"]) == ["start", "stop"]
    assert (target / "a.txt").read_text() == "a"
    (tmp_path / "moved").mkdir()
    moved = exec_command("MOVE", [str(source)], str(tmp_path / "moved"))
    assert (await runner.wait(moved["task_id"])).status == TaskStatus.SUCCESS
    assert not source.exists() and (tmp_path / "moved" / "a.txt").read_text() == "a"
    refused = exec_command("RENAME", [str(target)])
    record = await runner.wait(refused["task_id"])
    assert record.status == TaskStatus.FAILED and "Unsupported command" in (record.error or "")
    assert events(runner, refused["task_id"]) == ["start", "stop"]


async def test_schtasksdemo_fun2_logs_newest_first_through_remote_screen(runner: Runner) -> None:
    task_id = async_task(MODULES + "schtasksdemo.fun2", task_publish_id="spec")
    record = await runner.wait(task_id)
    assert (record.status, record.result, record.stream_id) == (
        TaskStatus.SUCCESS,
        "Hello world",
        "demo__spec",
    )
    assert events(runner, task_id) == [
        "<div class='log'></div>===>>",
        "<p class='log-line'>AAAA1</p>===<<.log",
        "<p class='log-line'>item 0</p>===<<.log",
        "<p class='log-line'>item 1</p>===<<.log",
        "<p class='log-line'>item 2</p>===<<.log",
        "<p class='text-info'>Info info info</p>===<<.log",
        "<p class='text-warning'>Warning warning warning</p>===<<.log",
        "<p class='text-white bg-danger'>Error error error</p>===<<.log",
    ]


async def test_the_server_starts_with_schtasksdemo_and_lists_its_schedules(
    make_client: ClientFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR)
    client = await make_client(task_modules=[MODULES + "schtasksdemo"], scheduler=False)
    response = await client.get("/api/schedules")
    assert response.status == 200
    names = [item["name"] for item in (await response.json())["schedules"]]
    assert len(names) == 14 and MODULES + "schtasksdemo.init_schedule.hello1" in names
    assert [r.getMessage() for r in caplog.records] == []
