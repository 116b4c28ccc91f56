"""The Redis engine's part: two Taskcast nodes on one redis-server, measured with the same client
and in the same part as one memory-engine server and the ceiling.

Across nodes: a paced async task is started on node A (1,000 events a second) and watched by 50
subscribers on node B, so every event goes A -> Redis -> B -> sockets. Any node with room may
run a task, so the run is made again (a few times at most) until the task ran on A: the task
returns its process id. The CPU per delivered event counts both nodes and redis-server; the
memory engine's and the ceiling's count their one server.

Tasks across nodes: a driver task started through node A calls `async_task` for trivial tasks
and awaits them all; the cluster's queues hand them to both nodes, and each task says which
node ran it.
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
#: runs made at most until the paced task lands on the node it was started on
PLACEMENT_TRIES = 8


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
            for tries in range(1, PLACEMENT_TRIES + 1):  # noqa: B007 (reported below)
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
                if label != "redis" or ran_in(node_a, report["taskId"]) == node_a.pid:
                    break
            else:
                raise BenchError(f"the paced task never ran on node A in {PLACEMENT_TRIES} runs")
            report["serverCpuUs"] = cpu * 1e6 / max(report["received"], 1)
            report["tries"] = tries
            results[label] = report
        return results
    finally:
        for process in reversed(running):
            process.stop()


def ran_in(node: Server, task_id: str, timeout: float = 30.0) -> int | None:
    """The process id a finished task returned, read from `node` (any node has every record)."""
    until = time.monotonic() + timeout
    while time.monotonic() < until:
        try:
            record = node.get(f"/api/tasks/{task_id}")
        except BenchError:  # not known on this node yet
            record = {"status": "queued"}
        if record["status"] not in ("queued", "running"):
            result = record.get("result")
            return result if isinstance(result, int) else None
        time.sleep(0.05)
    raise BenchError(f"task {task_id} did not end within {timeout} s")


def tasks_across(servers: Servers, sizes: Sizes) -> dict[str, Any]:
    """Trivial async tasks started through node A and run by both nodes: tasks per second,
    CPU per task (both nodes and redis-server), and how many each node ran."""
    redis = RedisProcess(servers.workdir)
    node_a = servers.taskcast("--engine", redis.url)
    node_b = servers.taskcast("--engine", redis.url)
    running: list[Server | RedisProcess] = []
    try:
        for process in (redis, node_a, node_b):
            process.start()
            running.append(process)
        count = sizes.async_tasks
        node_a.run_task("bench.tasks.drive_tasks", {"count": min(count, 200)}, sizes.timeout)
        before = sum(process.cpu() for process in running)
        result = node_a.run_task("bench.tasks.drive_tasks", {"count": count}, sizes.timeout)
        cpu = sum(process.cpu() for process in running) - before
    finally:
        for process in reversed(running):
            process.stop()
    if result["failed"]:
        raise BenchError(
            f"{result['failed']} of {count} trivial tasks failed across two nodes, the first: "
            f"{result['firstFailure']}"
        )
    by_pid = {int(pid): ran for pid, ran in result["ranIn"].items()}
    return {
        "count": count,
        "perSecond": count / result["seconds"],
        "cpuUsPerTask": cpu * 1e6 / count,
        "onA": by_pid.get(node_a.pid, 0),
        "onB": by_pid.get(node_b.pid, 0),
    }
