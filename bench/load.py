"""The load client (`bench/client.js`, one Node.js process per client) and the run that watches
one task: sockets subscribed, the task started, every `stop` awaited, the server's CPU counted."""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import json
import os
import queue
import subprocess
import threading
from collections.abc import Iterator, Sequence
from typing import Any, Protocol

from bench.servers import ROOT, BenchError, Server

CLIENT = ROOT / "bench" / "client.js"
GROUP = "bench"


# -- the load client -------------------------------------------------------------------------------


class Client:
    """One run of bench/client.js: JSON lines out, "go" in; every read bounded in time."""

    def __init__(self, options: dict[str, Any]) -> None:
        self.process = subprocess.Popen(
            ["node", str(CLIENT), json.dumps(options)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def read(self, timeout: float) -> dict[str, Any]:
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise BenchError(f"the client said nothing for {timeout} s") from None
        if line is None:
            raise BenchError(f"the client exited ({self.process.wait(5)}) before it answered")
        message: dict[str, Any] = json.loads(line)
        if "error" in message:
            raise BenchError(f"client: {message['error']}")
        return message

    def send(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(5)


@contextlib.contextmanager
def client(options: dict[str, Any]) -> Iterator[Client]:
    running = Client(options)
    try:
        yield running
    finally:
        running.close()


_ids = itertools.count(1)


def publish_id(prefix: str) -> str:
    return f"{prefix}-{os.getpid()}-{next(_ids)}"


# -- the runs --------------------------------------------------------------------------------------


@dataclasses.dataclass
class Tally:
    """Sums over the rounds of one kind of run on one server."""

    server_cpu: float = 0.0
    client_cpu: float = 0.0
    delivered: int = 0
    expected: int = 0
    elapsed: float = 0.0
    gaps: int = 0
    runs: int = 0

    @property
    def lost(self) -> int:
        return self.expected - self.delivered

    @property
    def server_us(self) -> float:
        return self.server_cpu * 1e6 / max(self.delivered, 1)

    @property
    def client_us(self) -> float:
        return self.client_cpu * 1e6 / max(self.delivered, 1)

    @property
    def rate(self) -> float:
        return self.delivered / self.elapsed if self.elapsed else 0.0


class Measured(Protocol):
    label: str

    def cpu(self) -> float: ...


def watch_run(
    server: Server,
    mode: str,
    task: str,
    arguments: dict[str, Any],
    subs: int,
    expect: int,
    timeout: float,
    *,
    start_on: Server | None = None,
    counted: Sequence[Measured] = (),
) -> tuple[dict[str, Any], float]:
    """Subscribe `subs` sockets to `server`, start `task` once (on `start_on`, by default the
    same server), wait for every stop; the client's report and the CPU seconds over the run of
    `counted` (by default the one server)."""
    counted = counted or (server,)
    options = {
        "mode": mode,
        "port": server.port,
        "group": GROUP,
        "publishId": publish_id(mode),
        "subs": subs,
        "expect": expect,
        "task": task,
        "arguments": arguments,
        "timeout": timeout,
    }
    if start_on is not None:
        options["startPort"] = start_on.port
    with client(options) as running:
        running.read(timeout)  # ready: every socket subscribed
        before = sum(process.cpu() for process in counted)
        running.send("go")
        report = running.read(timeout + 10)
        cpu = sum(process.cpu() for process in counted) - before
    if report["timedOut"] or report["unstopped"]:
        raise BenchError(
            f"{server.label}: {report['unstopped']} subscriber(s) saw no stop: {report}"
        )
    return report, cpu
