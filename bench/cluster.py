"""The Redis engine's part: two Taskcast nodes on one redis-server, measured with the same client
and in the same part as one memory-engine server and the ceiling.

Across nodes: a paced async task is started on node A (1,000 events a second) and watched by 50
subscribers on node B, so every event goes A -> Redis -> B -> sockets. The CPU per delivered
event counts both nodes and redis-server; the memory engine's and the ceiling's count their one
server.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.load import watch_run
from bench.servers import BenchError, Server, Servers, free_port, tree_cpu_seconds
from bench.sizes import Sizes

#: subscribers on the watching node
CROSS_SUBS = 50


class RedisProcess:
    """A redis-server of the bench's own: loopback, a free port, no persistence."""

    label = "redis-server"

    def __init__(self, workdir: Path) -> None:
        program = shutil.which("redis-server")
        if program is None:
            raise BenchError("redis-server is not installed (apt-get install redis-server)")
        self.port = free_port()
        folder = workdir / "redis"
        folder.mkdir(exist_ok=True)
        self.argv = [
            program, "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
            "--appendonly", "no", "--dir", str(folder), "--logfile", str(folder / "redis.log"),
        ]  # fmt: skip
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> None:
        self.process = subprocess.Popen(
            self.argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        until = time.monotonic() + timeout
        while time.monotonic() < until:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as conn:
                    conn.sendall(b"PING\r\n")
                    if conn.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.05)
        raise BenchError(f"redis-server did not answer within {timeout} s")

    def cpu(self) -> float:
        assert self.process is not None
        return tree_cpu_seconds(self.process.pid)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


def cross_node(servers: Servers, sizes: Sizes) -> dict[str, dict[str, Any]]:
    """The paced run on the memory engine, on the ceiling, and from node A to node B."""
    redis = RedisProcess(servers.workdir)
    node_a = servers.taskcast("--engine", redis.url)
    node_b = servers.taskcast("--engine", redis.url)
    memory, ceiling = servers.taskcast(), servers.ceiling()
    running: list[Server | RedisProcess] = []
    try:
        for process in (redis, node_a, node_b, memory, ceiling):
            process.start()
            running.append(process)
        arguments = {"rate": sizes.latency_rate, "seconds": sizes.latency_seconds}
        expect = int(sizes.latency_rate * sizes.latency_seconds)
        results = {}
        runs: Sequence[tuple[str, Server, Server, Sequence[Server | RedisProcess]]] = (
            ("memory", memory, memory, (memory,)),
            ("ceiling", ceiling, ceiling, (ceiling,)),
            ("redis", node_b, node_a, (node_a, node_b, redis)),
        )
        for label, watched, started, counted in runs:
            report, cpu = watch_run(
                watched,
                "latency",
                "bench.tasks.paced_async",
                arguments,
                CROSS_SUBS,
                expect,
                sizes.timeout,
                start_on=started,
                counted=counted,
            )
            report["serverCpuUs"] = cpu * 1e6 / max(report["received"], 1)
            results[label] = report
        return results
    finally:
        for process in reversed(running):
            process.stop()
