"""Taskcast as a user gets it: built, installed into a fresh virtualenv, run and embedded.

A wheel is built from a clean copy of the checkout (and again from its sdist) and installed with
pip into a virtualenv outside the checkout; its dependencies come from the package index pip is
configured with. The servers then run in a host folder that has a package of its own called
`app`, as many projects do: the installed name `taskcast` must never collide with it, in the
server or in its process workers. The builds and the virtualenv are made once for the module.

Every server runs on 127.0.0.1 in its own process group, and the group is killed whatever
happens, so no worker outlives a failed test. Every wait has a deadline.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import zipfile
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.support.eventually import eventually_sync

# Building, installing and starting three servers take longer than one ordinary test.
pytestmark = pytest.mark.timeout(180)

ROOT = Path(__file__).resolve().parents[2]
CHANNEL = "/schtasks/show_task_events/channel/"
EVENTS = 20  # events the host's task sends after its first one, which says what it imported
GREETING = "hello from the host's own app package"

#: what a fresh clone would not have: caches, local data, build leftovers
NOT_IN_A_CLONE = shutil.ignore_patterns(
    ".git",
    ".venv",
    "build",
    "dist",
    "data",
    "*.egg-info",
    "__pycache__",
    ".pytest_cache",
    ".mypy_cache",
    ".ruff_cache",
    ".hypothesis",
    "node_modules",
)

# The host folder: a project with its own `app` package, a task module and an aiohttp app.
HOST_FILES = {
    "app/__init__.py": '"""The host project\'s own package, which happens to be called app."""\n',
    "app/web.py": f"GREETING = {GREETING!r}\n",
    "tasks.py": '''\
"""The host's tasks: a Pytigon @publish task, run in Taskcast's process pool."""

import json
import sys
import time

from app.web import GREETING
from taskcast.publish import publish


@publish("packaging")
def count(cproxy=None, n=5):
    loaded = dict(sys.modules)
    cproxy.send_event(json.dumps({
        "greeting": GREETING,
        "app": loaded["app"].__file__,
        "aiohttp_web": "aiohttp.web" in loaded,
        "taskcast": sorted(
            module.__file__
            for name, module in loaded.items()
            if (name == "taskcast" or name.startswith("taskcast."))
            and getattr(module, "__file__", None)
        ),
    }))
    for i in range(n):
        cproxy.send_event("<li>item %d</li>===>>.data" % i)
        time.sleep(0.01)
    return n
''',
    "host.py": '''\
"""A host aiohttp app with routes of its own and Taskcast added by setup()."""

import sys

from aiohttp import web
from app.web import GREETING
from taskcast import TASKCAST, setup
from taskcast.tasks import get_task


async def hello(request):
    return web.Response(text=GREETING)


async def start_job(request):
    job = request.app[TASKCAST].start(
        "tasks.count", n=int(request.query["n"]), task_publish_id=request.query["id"]
    )
    return web.json_response({"id": job.id, "stream_id": job.stream_id, "kind": job.kind})


async def show_job(request):
    record = request.app[TASKCAST].runner.get(request.match_info["id"])
    if record is None:
        raise web.HTTPNotFound()
    return web.json_response(
        {"status": record.status.value, "fetched": get_task(record.id).status.value}
    )


def make_app(database):
    app = web.Application()
    app.router.add_get("/hello", hello)
    app.router.add_post("/jobs", start_job)
    app.router.add_get("/jobs/{id}", show_job)
    setup(app, database=database, task_modules=["tasks"], process_workers=1)
    return app


# Process workers import this module again: the server starts only when it is run as a script.
if __name__ == "__main__":
    web.run_app(make_app(sys.argv[2]), host="127.0.0.1", port=int(sys.argv[1]))
''',
}


@dataclass(frozen=True)
class Installed:
    """What the module's fixture made: the wheels, the virtualenv and the host folder."""

    wheel: Path
    wheel_from_sdist: Path
    venv: Path
    site_packages: Path
    host: Path

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"


def user_env() -> dict[str, str]:
    """The environment without anything that would point Python at the checkout or its venv."""
    env = dict(os.environ)
    for name in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV", "TASKCAST_TOKEN"):
        env.pop(name, None)
    return env


def run(command: list[str | Path], cwd: Path, timeout: float = 120) -> str:
    """Run a command to its end; fail with its output if it fails or overruns."""
    try:
        done = subprocess.run(
            [str(part) for part in command],
            cwd=cwd,
            env=user_env(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as late:
        raise AssertionError(f"{command} took more than {timeout} s:\n{late.output}") from None
    assert done.returncode == 0, f"{command} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def build(source: Path, kind: str, outdir: Path) -> Path:
    """`python -m build --<kind>` into `outdir`; the one file it made."""
    run([sys.executable, "-m", "build", f"--{kind}", "--outdir", outdir, source], cwd=outdir.parent)
    (made,) = outdir.iterdir()
    return made


def wheel_names(wheel: Path) -> set[str]:
    with zipfile.ZipFile(wheel) as archive:
        return set(archive.namelist())


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    base = tmp_path_factory.mktemp("packaging")
    # A clean copy stands in for a fresh clone: a stale build/ in the checkout would otherwise
    # slip files into the wheel that the source no longer has.
    source = base / "source"
    shutil.copytree(ROOT, source, ignore=NOT_IN_A_CLONE)
    venv = base / "venv"
    python = venv / "bin" / "python"
    # Each step waits mostly on pip; running the independent ones side by side halves the time.
    with ThreadPoolExecutor() as steps:
        wheel_built = steps.submit(build, source, "wheel", base / "wheel")
        sdist_built = steps.submit(build, source, "sdist", base / "sdist")
        steps.submit(run, [sys.executable, "-m", "venv", venv], base).result()
        wheel = wheel_built.result()
        installing = steps.submit(
            run, [python, "-m", "pip", "install", "--quiet", wheel], base, 300
        )
        wheel_from_sdist = build(sdist_built.result(), "wheel", base / "wheel-from-sdist")
        installing.result()
    purelib = "import sysconfig; print(sysconfig.get_path('purelib'))"
    site_packages = Path(run([python, "-c", purelib], cwd=base).strip())

    host = base / "host"
    for name, text in HOST_FILES.items():
        (host / name).parent.mkdir(parents=True, exist_ok=True)
        (host / name).write_text(text)
    return Installed(wheel, wheel_from_sdist, venv, site_packages.resolve(), host.resolve())


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class Server:
    """A server started as a user would, in its own process group, its output in a log file."""

    def __init__(self, command: list[str | Path], cwd: Path, log: Path) -> None:
        self.log = log
        with log.open("wb") as output:
            self.process = subprocess.Popen(
                [str(part) for part in command],
                cwd=cwd,
                env=user_env(),
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def exited(self) -> bool:
        return self.process.poll() is not None

    def terminate(self) -> None:
        """SIGTERM, as a service manager stops it: the server must end by itself, cleanly, and
        its fork server and workers with it."""
        self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(20)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"still running 20 s after SIGTERM:\n{self.output()}") from None
        assert code == 0, self.output()
        group = self.process.pid
        eventually_sync(lambda: not live_members(group), 15, "the workers ending with the server")

    def kill(self) -> None:
        """Kill the whole group (server, fork server, workers), whatever state it is in."""
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(10)


def live_members(group: int) -> list[str]:
    """The processes of a process group that are still running, from /proc. Those that have
    exited may linger as zombies until someone reaps them: they are not counted."""
    running = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # it ended while we looked
            continue
        fields = text[text.rindex(")") + 2 :].split()
        if int(fields[2]) == group and fields[0] not in "ZX":
            running.append(text[: text.rindex(")") + 1])
    return running


@asynccontextmanager
async def serving(
    command: list[str | Path], cwd: Path, port: int, ready_path: str, log: Path
) -> AsyncIterator[Server]:
    """Start a server, wait until `ready_path` answers 200, and kill its group on the way out."""
    server = Server(command, cwd, log)
    try:
        await wait_until_answering(server, f"http://127.0.0.1:{port}{ready_path}")
        yield server
    finally:
        await asyncio.to_thread(server.kill)


async def wait_until_answering(server: Server, url: str, timeout: float = 45) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while True:
            if server.exited():
                raise AssertionError(f"the server exited:\n{server.output()}")
            try:
                async with session.get(url, timeout=aiohttp.ClientTimeout(total=2)) as response:
                    if response.status == 200:
                        return
            except (aiohttp.ClientError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"{url} did not answer within {timeout} s:\n{server.output()}")
            await asyncio.sleep(0.1)


async def watch(
    session: aiohttp.ClientSession, url: str, stream_id: str, start: Callable[[], Awaitable[None]]
) -> list[dict[str, Any]]:
    """Subscribe to `stream_id`, then `start()` the task, then read every frame up to `stop`."""
    frames: list[dict[str, Any]] = []
    async with asyncio.timeout(45), session.ws_connect(url) as ws:
        await ws.send_json({"id": stream_id})
        await start()
        while not frames or frames[-1].get("status") != "stop":
            message = await ws.receive()
            assert message.type is aiohttp.WSMsgType.TEXT, (message, frames)
            frames.append(json.loads(message.data))
    return frames


def check_stream(
    frames: list[dict[str, Any]], installed: Installed, worker_has_aiohttp_web: bool
) -> None:
    """Every event in order, then a successful stop; the worker ran Taskcast from site-packages
    and the host's own `app`, and loaded aiohttp.web only where the host's main module does."""
    assert frames[0] == {"status": "start"}, frames
    events = frames[1:-1]
    assert all(frame["status"] == "event" for frame in events), frames
    assert [frame["seq"] for frame in events] == list(range(1, EVENTS + 2))
    assert [frame["data"] for frame in events[1:]] == [
        f"<li>item {i}</li>===>>.data" for i in range(EVENTS)
    ]
    assert frames[-1] == {"status": "stop", "state": "success"}

    loaded = json.loads(events[0]["data"])
    assert loaded["greeting"] == GREETING
    assert Path(loaded["app"]).resolve() == installed.host / "app" / "__init__.py"
    package = installed.site_packages / "taskcast"
    assert loaded["taskcast"], "the worker loaded no module of taskcast"
    assert all(Path(file).resolve().is_relative_to(package) for file in loaded["taskcast"]), loaded
    assert loaded["aiohttp_web"] is worker_has_aiohttp_web, loaded


def test_the_wheel_installs_the_package_taskcast_and_nothing_else(installed: Installed) -> None:
    site = installed.site_packages
    package = site / "taskcast"
    for stray in ("app", "templates", "static", "tests", "examples", "tasks.py", "run.py"):
        assert not (site / stray).exists(), f"{stray} landed in site-packages"
    assert (package / "templates").is_dir() and (package / "static" / "ptig-task.js").is_file()
    assert (package / "py.typed").is_file()
    # Every module, template and static file of the source is installed, under its new name.
    for folder, target in (("app", package), ("templates", package / "templates")):
        for file in (ROOT / folder).rglob("*"):
            if file.suffix in (".py", ".html", ".typed"):
                assert (target / file.relative_to(ROOT / folder)).is_file(), f"{file} is missing"
    for file in (ROOT / "static").iterdir():
        assert (package / "static" / file.name).read_bytes() == file.read_bytes(), file
    assert (installed.venv / "bin" / "taskcast").is_file()

    names = wheel_names(installed.wheel)
    assert {name.split("/")[0] for name in names} == {"taskcast", "taskcast-0.1.0.dist-info"}
    assert wheel_names(installed.wheel_from_sdist) == names


async def test_the_taskcast_command_serves_pages_and_streams_a_process_task(
    installed: Installed, tmp_path: Path
) -> None:
    port = free_port()
    log = tmp_path / "taskcast.log"
    command: list[str | Path] = [
        installed.venv / "bin" / "taskcast",
        *("--host", "127.0.0.1", "--port", str(port), "--workers", "1"),
        *("--db", tmp_path / "taskcast.sqlite3"),
    ]
    url = f"http://127.0.0.1:{port}"
    async with (
        serving(command, installed.host, port, "/", log) as server,
        aiohttp.ClientSession(url) as session,
    ):
        async with session.get("/") as page:
            assert page.status == 200 and page.content_type == "text/html"
            assert "<html" in (await page.text()).lower()
        async with session.get("/static/ptig-task.js") as script:
            assert script.status == 200
            assert await script.read() == (ROOT / "static" / "ptig-task.js").read_bytes()

        started: list[dict[str, Any]] = []

        async def start() -> None:
            body = {"name": "tasks.count", "arguments": {"n": EVENTS}, "task_publish_id": "cli"}
            async with session.post("/api/tasks", json=body) as response:
                assert response.status == 201, await response.text()
                started.append(await response.json())

        frames = await watch(session, CHANNEL, "packaging__cli", start)
        assert started[0]["kind"] == "process" and started[0]["stream_id"] == "packaging__cli"
        check_stream(frames, installed, worker_has_aiohttp_web=False)
        await asyncio.to_thread(server.terminate)


async def test_python_dash_m_taskcast_serves_the_console(
    installed: Installed, tmp_path: Path
) -> None:
    port = free_port()
    log = tmp_path / "taskcast.log"
    command: list[str | Path] = [
        *(installed.python, "-m", "taskcast"),
        *("--port", str(port), "--workers", "1", "--db", tmp_path / "taskcast.sqlite3"),
    ]
    async with (
        serving(command, installed.host, port, "/", log) as server,
        aiohttp.ClientSession(f"http://127.0.0.1:{port}") as session,
    ):
        async with session.get("/") as page:
            assert page.status == 200 and page.content_type == "text/html"
        await asyncio.to_thread(server.terminate)


async def test_a_host_app_embeds_taskcast_and_keeps_its_own_routes(
    installed: Installed, tmp_path: Path
) -> None:
    port = free_port()
    log = tmp_path / "host.log"
    command: list[str | Path] = [installed.python, "host.py", str(port), tmp_path / "host.sqlite3"]
    async with (
        serving(command, installed.host, port, "/hello", log) as server,
        aiohttp.ClientSession(f"http://127.0.0.1:{port}") as session,
    ):
        async with session.get("/hello") as hello:
            assert hello.status == 200 and await hello.text() == GREETING
        async with session.get("/taskcast/static/ptig-task.js") as script:
            assert script.status == 200

        started: list[dict[str, Any]] = []

        async def start() -> None:
            async with session.post("/jobs", params={"n": str(EVENTS), "id": "host"}) as response:
                assert response.status == 200, await response.text()
                started.append(await response.json())

        frames = await watch(session, CHANNEL, "packaging__host", start)
        job = started[0]
        assert job["kind"] == "process" and job["stream_id"] == "packaging__host"
        # Workers import the main module, and host.py is an aiohttp app.
        check_stream(frames, installed, worker_has_aiohttp_web=True)
        async with session.get(f"/jobs/{job['id']}") as shown:
            assert await shown.json() == {"status": "success", "fetched": "success"}
        await asyncio.to_thread(server.terminate)


def test_the_command_says_where_it_looked_for_the_task_modules(
    installed: Installed, tmp_path: Path
) -> None:
    command = [installed.venv / "bin" / "taskcast", "--port", str(free_port())]
    done = subprocess.run(
        [str(part) for part in [*command, "--db", tmp_path / "db.sqlite3"]],
        cwd=tmp_path,
        env=user_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"taskcast: no task module 'tasks' in {tmp_path}. Start taskcast in the folder that "
        "holds your task modules, or name them with --tasks MODULE."
    ]
