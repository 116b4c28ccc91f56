"""The servers a run measures: each a process of its own on a free loopback port, its CPU time
and memory read from /proc (the process and every process under it, so the pool's workers
count)."""

from __future__ import annotations

import collections
import dataclasses
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class BenchError(Exception):
    """A run that did not complete: the server or the client failed or timed out."""


# -- /proc -----------------------------------------------------------------------------------------


def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()  # after "pid (comm) ": state, ppid, ...


def process_tree(root: int) -> list[int]:
    """`root` and every process under it."""
    children: dict[int, list[int]] = collections.defaultdict(list)
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat(int(entry))
            if fields is not None:
                children[int(fields[1])].append(int(entry))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, ()))
    return tree


def tree_cpu_seconds(root: int) -> float:
    """User + system time of the tree; reaped children count in their parent's cutime/cstime."""
    ticks = 0
    for pid in process_tree(root):
        fields = _stat(pid)
        if fields is not None:
            ticks += sum(int(value) for value in fields[11:15])  # utime stime cutime cstime
    return ticks / CLOCK_TICKS


def rss_kib(pid: int, field: str = "VmRSS") -> int:
    """`VmRSS` (resident now) or `VmHWM` (the peak so far) of a process, in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise BenchError(f"no {field} for process {pid}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# -- servers -----------------------------------------------------------------------------------------


class Server:
    """A server process of ours, in its own process group, stopped by its own pid at the end."""

    def __init__(
        self, label: str, argv: list[str], cwd: Path, env: dict[str, str], log: Path
    ) -> None:
        self.label = label
        self.port = free_port()
        self.argv = [*argv, "--port", str(self.port)]
        self.cwd = cwd
        self.env = env
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self, timeout: float = 30.0) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                self.argv,
                cwd=self.cwd,
                env=self.env,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        until = time.monotonic() + timeout
        while time.monotonic() < until:
            if self.process.poll() is not None:
                raise BenchError(
                    f"{self.label} exited with {self.process.returncode}; see {self.log}"
                )
            try:
                self.get("/api/health", timeout=1)
                return
            except (OSError, BenchError):
                time.sleep(0.1)
        raise BenchError(f"{self.label} did not answer within {timeout} s; see {self.log}")

    def request(self, method: str, path: str, body: Any = None, timeout: float = 10) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            raise BenchError(
                f"{self.label}: {method} {path}: {exc.code} {exc.read()[:300]!r}"
            ) from exc

    def get(self, path: str, timeout: float = 10) -> Any:
        return self.request("GET", path, timeout=timeout)

    def cpu(self) -> float:
        return tree_cpu_seconds(self.pid)

    def rss(self) -> int:
        return rss_kib(self.pid)

    def rss_peak(self) -> int:
        return rss_kib(self.pid, "VmHWM")

    def run_task(self, name: str, arguments: dict[str, Any], timeout: float) -> Any:
        """Start a registered task over HTTP and poll until it ends; its result."""
        started = self.request("POST", "/api/tasks", {"name": name, "arguments": arguments})
        until = time.monotonic() + timeout
        while time.monotonic() < until:
            record = self.get(f"/api/tasks/{started['id']}")
            if record["status"] not in ("queued", "running"):
                if record["status"] != "success":
                    raise BenchError(f"{self.label}: {name} ended {record['status']}: {record}")
                return record["result"]
            time.sleep(0.05)
        raise BenchError(f"{self.label}: {name} did not finish within {timeout} s")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)  # our own session: the server's workers
            self.process.wait(5)


class Servers:
    """How to start each server on this checkout (or on `server_root`, another copy of it)."""

    def __init__(self, server_root: Path, workdir: Path) -> None:
        self.root = server_root
        self.workdir = workdir
        self.env = dict(os.environ)
        # The checkout's folder app/ is the package taskcast: a link of that name lets the
        # servers import the checkout being measured, whatever is installed in this Python.
        shim = workdir / "import-path"
        shim.mkdir()
        (shim / "taskcast").symlink_to(server_root / "app", target_is_directory=True)
        paths = [str(shim), str(server_root), str(ROOT), self.env.get("PYTHONPATH", "")]
        self.env["PYTHONPATH"] = os.pathsep.join(p for p in dict.fromkeys(paths) if p)
        self.env["PYTHONDONTWRITEBYTECODE"] = "1"
        self._count = itertools.count(1)

    def taskcast(self, *flags: str) -> Server:
        n = next(self._count)
        argv = [
            sys.executable, "run.py", "--host", "127.0.0.1",
            "--db", str(self.workdir / f"taskcast-{n}.sqlite3"),
            "--tasks", "bench.tasks", "--log-level", "WARNING", *flags,
        ]  # fmt: skip
        return Server("Taskcast", argv, self.root, self.env, self.workdir / f"taskcast-{n}.log")

    def ceiling(self) -> Server:
        n = next(self._count)
        argv = [sys.executable, "-m", "bench.ceiling", "--host", "127.0.0.1"]
        return Server("ceiling", argv, ROOT, self.env, self.workdir / f"ceiling-{n}.log")


@dataclasses.dataclass
class Pair:
    taskcast: Server
    ceiling: Server

    def both(self, round_index: int = 0) -> list[Server]:
        """Both servers, the order alternating with the round."""
        servers = [self.ceiling, self.taskcast]
        return servers if round_index % 2 == 0 else servers[::-1]
