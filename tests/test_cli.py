"""The command line (`taskcast`, `python -m taskcast`, `run.py`): flags, and the exposed-server warning."""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from taskcast import cli as run
from taskcast.settings import Settings


def test_defaults_bind_to_loopback() -> None:
    args = run.parse_args([])
    assert (args.host, args.port, args.db) == ("127.0.0.1", 8080, "data/taskcast.sqlite3")
    assert args.tasks is None and args.shutdown_grace == 5.0


def test_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKCAST_TOKEN", "from-the-env")
    args = run.parse_args(
        [
            "--host",
            "0.0.0.0",
            "--port",
            "9000",
            "--db",
            ":memory:",
            "--workers",
            "3",
            "--tasks",
            "a",
            "--tasks",
            "b",
            "--allowed-origin",
            "https://x.example",
            "--allowed-host",
            "tasks.example.org",
            "--shutdown-grace",
            "2",
            "--timezone",
            "Europe/Warsaw",
        ]
    )
    assert (args.host, args.port, args.db, args.workers) == ("0.0.0.0", 9000, ":memory:", 3)
    assert args.tasks == ["a", "b"] and args.allowed_origin == ["https://x.example"]
    assert args.token == "from-the-env" and args.shutdown_grace == 2.0
    assert args.timezone == "Europe/Warsaw"
    assert args.allowed_host == ["tasks.example.org"]


def test_the_server_answers_to_the_name_it_is_bound_to() -> None:
    assert run.allowed_hosts("0.0.0.0", ["a.example"]) == ("a.example",)
    assert run.allowed_hosts("127.0.0.1", []) == ()
    assert run.allowed_hosts("localhost", []) == ()
    assert run.allowed_hosts("box.lan", ["a.example"]) == ("a.example", "box.lan")


def test_exposed_without_a_token_warns(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="taskcast")
    assert run.warn_if_exposed("0.0.0.0", None) is True
    assert "without a token" in caplog.text
    assert run.warn_if_exposed("0.0.0.0", "a-token") is False
    assert run.warn_if_exposed("127.0.0.1", None) is False
    assert run.warn_if_exposed("::1", None) is False
    assert run.warn_if_exposed("localhost", None) is False


@pytest.fixture
def in_a_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The command started in an empty folder; sys.path restored, and the modules it imported
    from there forgotten, after."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    yield tmp_path
    for name, module in list(sys.modules.items()):
        if str(getattr(module, "__file__", None) or "").startswith(str(tmp_path)):
            del sys.modules[name]


def test_task_modules_are_found_in_the_current_folder(in_a_folder: Path) -> None:
    (in_a_folder / "my_tasks.py").write_text("def job() -> int:\n    return 1\n")
    run.find_modules_here()
    run.import_task_modules(["my_tasks"])
    assert sys.modules["my_tasks"].__file__ == str(in_a_folder / "my_tasks.py")


def test_a_missing_task_module_ends_the_command_with_one_clear_line(in_a_folder: Path) -> None:
    with pytest.raises(SystemExit) as missing:
        run.main(["--tasks", "no_such_tasks_here", "--db", ":memory:"])
    message = str(missing.value)
    assert message.startswith("taskcast: no task module 'no_such_tasks_here' in ")
    assert str(in_a_folder) in message and "--tasks MODULE" in message


def test_an_import_failing_inside_a_task_module_keeps_its_traceback(in_a_folder: Path) -> None:
    (in_a_folder / "broken_tasks.py").write_text("import no_such_dependency_anywhere\n")
    with pytest.raises(ModuleNotFoundError) as failed:
        run.main(["--tasks", "broken_tasks", "--db", ":memory:"])
    assert failed.value.name == "no_such_dependency_anywhere"


def test_the_server_fires_each_connection_timer_when_due(
    in_a_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """aiohttp rounds longer timers up to a whole second: the keep-alive timers of thousands
    of connections opened in one second would then all fire in one turn of the loop."""
    (in_a_folder / "tasks.py").write_text("")
    served: dict[str, object] = {}
    monkeypatch.setattr(aiohttp.web, "run_app", lambda app, **options: served.update(options))
    run.main(["--db", str(in_a_folder / "db.sqlite3")])
    threshold = served["timeout_ceil_threshold"]
    assert isinstance(threshold, float) and threshold > Settings().channel_heartbeat
    assert served["backlog"] == run.LISTEN_BACKLOG


def test_limit_flags_become_settings() -> None:
    args = run.parse_args(["--threads", "4", "--max-async", "20000", "--max-concurrency", "500"])
    settings = run.checked_settings(args)
    assert (settings.thread_workers, settings.max_async_tasks, settings.max_concurrency) == (
        4, 20_000, 500
    )  # fmt: skip
    defaults = run.checked_settings(run.parse_args([]))
    assert defaults.max_async_tasks == 10_000 and defaults.max_concurrency is None


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--max-async", "0"], "taskcast: --max-async: max_async_tasks must be at least 1, not 0"),
        (["--threads", "-1"], "taskcast: --threads: thread_workers must be at least 1, not -1"),
        (["--workers", "0"], "taskcast: --workers: process_workers must be at least 1, not 0"),
        (["--max-concurrency", "0"], "taskcast: --max-concurrency: max_concurrency must be"),
    ],
)
def test_a_bad_limit_ends_the_command_with_one_line_naming_the_flag(
    flags: list[str], message: str
) -> None:
    with pytest.raises(SystemExit) as refused:
        run.main(flags)
    assert str(refused.value).startswith(message)


def test_the_urls_printed_once_serving_open_the_console_and_the_demo() -> None:
    assert run.serving_lines("127.0.0.1", 8080) == [
        "Taskcast console: http://127.0.0.1:8080/",
        "Demo page:         http://127.0.0.1:8080/demo",
    ]
    assert run.serving_lines("0.0.0.0", 9000)[0] == "Taskcast console: http://127.0.0.1:9000/"
    assert run.serving_lines("::", 9000)[1] == "Demo page:         http://[::1]:9000/demo"
    assert run.serving_lines("box.lan", 80)[0] == "Taskcast console: http://box.lan:80/"


async def test_the_command_prints_both_urls_once_it_serves(tmp_path: Path) -> None:
    (tmp_path / "tasks.py").write_text("")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "taskcast", "--port", str(port), "--db", ":memory:"]
    server = await asyncio.create_subprocess_exec(
        *command,
        "--workers",
        "1",
        "--log-level",
        "WARNING",  # printed whatever the log level
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert server.stderr is not None and server.stdout is not None
        first = await asyncio.wait_for(server.stderr.readline(), 30)
        second = await asyncio.wait_for(server.stderr.readline(), 5)
        assert first.decode() == f"Taskcast console: http://127.0.0.1:{port}/\n"
        assert second.decode() == f"Demo page:         http://127.0.0.1:{port}/demo\n"
        # printed once serving: both answer now
        async with aiohttp.ClientSession() as session:
            for url in (first, second):
                address = url.decode().split(": ", 1)[1].strip()
                async with session.get(address) as response:
                    assert response.status == 200, address
    finally:
        server.send_signal(signal.SIGINT)
        await asyncio.wait_for(server.wait(), 30)
    assert await server.stdout.read() == b"", "stdout stays free for programs"
