"""Real `redis-server` processes for the Redis engine's tests: Debian's package, started on a free
127.0.0.1 port and a unix socket in the test's folder, stopped after; no Docker.

Without redis-server a test skips, except under CI, where it fails: scripts/test.sh installs it.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

#: seconds a server gets to answer its first PING
START_TIMEOUT = 10.0


def require_redis_server() -> str:
    """The redis-server program; without it a test skips, except under CI where it fails."""
    found = shutil.which("redis-server")
    if found is None:
        reason = "redis-server is not installed (apt-get install redis-server)"
        if "CI" in os.environ:
            pytest.fail(reason)
        pytest.skip(reason)
    return found


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class RedisServer:
    """One redis-server: `url` (TCP) and `unix_url` reach it; it can be stopped, killed,
    restarted on the same port and socket, and paused (SIGSTOP) and resumed."""

    def __init__(self, folder: Path, *, persist: bool = False) -> None:
        self.program = require_redis_server()
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.socket_path = folder / "redis.sock"
        self.persist = persist
        self.log = folder / "redis.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def unix_url(self) -> str:
        return f"unix://{self.socket_path}?db=0"

    def start(self) -> None:
        args = [
            self.program,
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            "--unixsocket", str(self.socket_path),
            "--unixsocketperm", "700",
            "--dir", str(self.folder),
            "--logfile", str(self.log),
            "--daemonize", "no",
            "--save", "",
            # With persistence (a restart that keeps the data), every write reaches the file.
            "--appendonly", "yes" if self.persist else "no",
            "--appendfsync", "always",
        ]  # fmt: skip
        # What it says before its log file is open (a bad argument) goes to a file of its own.
        with open(self.folder / "stderr.log", "wb") as stderr:
            self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=stderr)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                said = (self.folder / "stderr.log").read_text(errors="replace")
                raise RuntimeError(f"redis-server exited at start: {said or self.log_tail()}")
            if self.answers():
                return
            time.sleep(0.02)
        raise RuntimeError(f"redis-server did not answer within {START_TIMEOUT} s")

    def answers(self) -> bool:
        """True once the server answers PING on its port."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as conn:
                conn.sendall(b"PING\r\n")
                return conn.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""

    def stop(self) -> None:
        """SIGTERM, and wait for it to exit."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        self.process = None

    def kill(self) -> None:
        """SIGKILL: gone at once, with whatever it had not written."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self.process = None

    def restart(self) -> None:
        """Killed and started again on the same port and socket (its data survives only with
        `persist=True`)."""
        self.kill()
        self.start()

    @contextmanager
    def paused(self) -> Iterator[None]:
        """SIGSTOP for the time of the block, then SIGCONT: a Redis that hangs, not one that is
        gone."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGSTOP)
        try:
            yield
        finally:
            os.kill(self.process.pid, signal.SIGCONT)


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A fresh redis-server for one test, without persistence."""
    server = RedisServer(tmp_path / "redis")
    server.start()
    try:
        yield server
    finally:
        server.kill()
