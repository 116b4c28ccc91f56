"""Run the whole benchmark: `python -m bench` (a few minutes) or `python -m bench --quick`.

Two servers run as separate processes on loopback, each on a free port: Taskcast (`run.py --tasks
bench.tasks`) and the ceiling (`bench/ceiling.py`). One Node.js client (`bench/client.js`) drives
them alternately with the same runs. The primary figure is the server's CPU time per delivered
event: user + system time of the server process and every process under it (the pool workers),
read from /proc before and after each run. The client reports its own CPU time beside it.

The table is printed, and written into docs/benchmarks.md (between its `bench:begin` and
`bench:end` markers) by a full run, or wherever `--output` says.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import dataclasses
import datetime
import functools
import itertools
import json
import os
import platform
import queue
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CLIENT = ROOT / "bench" / "client.js"
DOC = ROOT / "docs" / "benchmarks.md"
BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
GROUP = "bench"


@dataclasses.dataclass(frozen=True)
class Sizes:
    """How much each part of the benchmark does."""

    rounds: int  # fan-out runs per server, alternating, summed
    fanout: tuple[tuple[int, int], ...]  # (subscribers, events)
    latency_subs: tuple[int, ...]
    latency_seconds: float
    start_runs: int
    async_tasks: int
    process_tasks: int
    idle_subs: int
    history_tasks: int
    history_batch: int
    history_events: int
    latency_rate: int = 1000
    timeout: float = 120.0
    streams: tuple[int, ...] = (1_000, 3_000, 10_000)  # live streams at once, one run each
    stream_seconds: int = 30


FULL = Sizes(
    rounds=10,
    fanout=((1, 10_000), (50, 2_000), (500, 2_000)),
    latency_subs=(1, 50),
    latency_seconds=2.0,
    start_runs=50,
    async_tasks=10_000,
    process_tasks=2_000,
    idle_subs=1_000,
    history_tasks=10_000,
    history_batch=1_000,
    history_events=100,
)
QUICK = dataclasses.replace(
    FULL,
    rounds=1,
    fanout=((1, 2_000), (50, 400), (500, 100)),
    latency_seconds=0.5,
    start_runs=10,
    async_tasks=1_000,
    process_tasks=200,
    idle_subs=200,
    history_tasks=1_200,
    history_batch=400,
    history_events=20,
    timeout=30.0,
    streams=(300,),
    stream_seconds=5,
)

#: streams one client process subscribes to (each client is one Node process on one core)
STREAMS_PER_CLIENT = 2_500


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


def watch_run(
    server: Server,
    mode: str,
    task: str,
    arguments: dict[str, Any],
    subs: int,
    expect: int,
    timeout: float,
) -> tuple[dict[str, Any], float]:
    """Subscribe `subs` sockets, start `task` once, wait for every stop; the client's report and
    the server's CPU seconds over the run."""
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
    with client(options) as running:
        running.read(timeout)  # ready: every socket subscribed
        before = server.cpu()
        running.send("go")
        report = running.read(timeout + 10)
        cpu = server.cpu() - before
    if report["timedOut"] or report["unstopped"]:
        raise BenchError(
            f"{server.label}: {report['unstopped']} subscriber(s) saw no stop: {report}"
        )
    return report, cpu


def fanout(pair: Pair, kind: str, subs: int, events: int, sizes: Sizes) -> dict[str, Tally]:
    tallies = {"taskcast": Tally(), "ceiling": Tally()}
    for round_index in range(sizes.rounds):
        for server in pair.both(round_index):
            report, cpu = watch_run(
                server,
                "fanout",
                f"bench.tasks.fanout_{kind}",
                {"count": events},
                subs,
                events,
                sizes.timeout,
            )
            tally = tallies["taskcast" if server is pair.taskcast else "ceiling"]
            tally.server_cpu += cpu
            tally.client_cpu += report["clientCpuUs"] / 1e6
            tally.delivered += report["received"]
            tally.expected += report["expected"]
            tally.elapsed += report["elapsedUs"] / 1e6
            tally.gaps += report["gaps"]
            tally.runs += 1
    return tallies


def latency(pair: Pair, kind: str, subs: int, sizes: Sizes) -> dict[str, dict[str, Any]]:
    arguments = {"rate": sizes.latency_rate, "seconds": sizes.latency_seconds}
    expect = int(sizes.latency_rate * sizes.latency_seconds)
    results = {}
    for server in pair.both():
        report, cpu = watch_run(
            server, "latency", f"bench.tasks.paced_{kind}", arguments, subs, expect, sizes.timeout
        )
        report["serverCpuUs"] = cpu * 1e6 / max(report["received"], 1)
        results["taskcast" if server is pair.taskcast else "ceiling"] = report
    return results


def start_to_first_event(pair: Pair, kind: str, sizes: Sizes) -> dict[str, dict[str, Any]]:
    results = {}
    for server in pair.both():
        for runs in (3, sizes.start_runs):  # the first three warm the path (and the pool) up
            options = {
                "mode": "start",
                "port": server.port,
                "group": GROUP,
                "publishId": publish_id("start"),
                "task": f"bench.tasks.one_event_{kind}",
                "runs": runs,
                "timeout": sizes.timeout,
            }
            with client(options) as running:
                running.read(sizes.timeout)
                running.send("go")
                report = running.read(sizes.timeout + 10)
        if report["runs"] != sizes.start_runs:
            raise BenchError(
                f"{server.label}: {report['runs']} of {sizes.start_runs} runs completed"
            )
        results["taskcast" if server is pair.taskcast else "ceiling"] = report
    return results


def throughput(pair: Pair, kind: str, count: int, sizes: Sizes) -> dict[str, dict[str, Any]]:
    results = {}
    for server in pair.both():
        server.run_task(
            "bench.tasks.drive_tasks", {"kind": kind, "count": min(count, 200)}, sizes.timeout
        )
        before = server.cpu()
        result = server.run_task(
            "bench.tasks.drive_tasks", {"kind": kind, "count": count}, sizes.timeout
        )
        cpu = server.cpu() - before
        if result["failed"]:
            raise BenchError(f"{server.label}: {result['failed']} of {count} {kind} tasks failed")
        result["perSecond"] = count / result["seconds"]
        result["cpuUsPerTask"] = cpu * 1e6 / count
        results["taskcast" if server is pair.taskcast else "ceiling"] = result
    return results


def idle_memory(servers: Servers, sizes: Sizes) -> dict[str, dict[str, Any]]:
    """Resident memory a fresh server gains with `idle_subs` subscribed, idle websockets."""
    results = {}
    for label, make in (("ceiling", servers.ceiling), ("taskcast", servers.taskcast)):
        server = make()
        try:
            server.start()
            time.sleep(0.5)
            before = server.rss()
            options = {
                "mode": "idle",
                "port": server.port,
                "group": GROUP,
                "publishId": publish_id("idle"),
                "subs": sizes.idle_subs,
                "timeout": sizes.timeout,
            }
            with client(options) as running:
                running.read(sizes.timeout)
                time.sleep(0.5)
                after = server.rss()
                running.send("close")
                running.read(sizes.timeout)
        finally:
            server.stop()
        results[label] = {
            "before": before,
            "after": after,
            "perSubKiB": (after - before) / sizes.idle_subs,
        }
    return results


def history_memory(servers: Servers, sizes: Sizes) -> dict[str, Any]:
    """Resident memory of a fresh Taskcast server as finished tasks with history accumulate."""
    server = servers.taskcast()
    samples: list[tuple[int, int, int]] = []  # tasks, RSS at the driver's end, after the store
    try:
        server.start()
        time.sleep(0.5)
        samples.append((0, server.rss(), server.rss()))
        for first in range(0, sizes.history_tasks, sizes.history_batch):
            arguments = {
                "first": first,
                "count": sizes.history_batch,
                "events": sizes.history_events,
            }
            result = server.run_task("bench.tasks.drive_history", arguments, sizes.timeout)
            if result["failed"]:
                raise BenchError(f"Taskcast: {result['failed']} history tasks failed")
            at_end = server.rss()
            # Listing tasks waits for the store's queued writes: the backlog is gone after it.
            server.get("/api/tasks?limit=1", timeout=sizes.timeout)
            samples.append((first + sizes.history_batch, at_end, server.rss()))
    finally:
        server.stop()
    return {"samples": samples, "events": sizes.history_events}


class HealthPoller:
    """Times `GET /api/health` every 100 ms from a thread while a run goes on."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.times: list[float] = []
        self.failures = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        while not self._stop.wait(0.1):
            began = time.perf_counter()
            try:
                self.server.get("/api/health", timeout=30)
            except (OSError, BenchError):
                self.failures += 1
                continue
            self.times.append(time.perf_counter() - began)

    def __enter__(self) -> HealthPoller:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(35)


def summary_ms(values: list[float], scale: float) -> dict[str, float | int | None]:
    """p50, p99 and max of `values` times `scale` (to milliseconds), and their count."""
    ordered = sorted(values)
    if not ordered:
        return {"count": 0, "p50": None, "p99": None, "max": None}

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * scale

    return {"count": len(ordered), "p50": at(0.5), "p99": at(0.99), "max": ordered[-1] * scale}


def lateness_windows(by_due: dict[int, list[int]], width: int = 5) -> list[dict[str, Any]]:
    """Lateness (µs) of the events grouped by when they were due, in windows of `width` s."""
    if not by_due:
        return []
    begin = min(by_due)
    windows: dict[int, list[int]] = collections.defaultdict(list)
    for due, lates in by_due.items():
        windows[(due - begin) // (width * 1_000_000)].extend(lates)
    return [
        {"from": index * width, "to": (index + 1) * width, **summary_ms(windows[index], 1e-3)}
        for index in sorted(windows)
    ]


def stream_options(
    server: Server, prefix: str, first: int, count: int, timeout: float, sizes: Sizes
) -> dict[str, Any]:
    """A streams client's options: its share of the streams, `<prefix>-<first>` onwards."""
    return {
        "mode": "streams",
        "port": server.port,
        "group": GROUP,
        "publishId": prefix,
        "first": first,
        "count": count,
        "expect": sizes.stream_seconds,
        "timeout": timeout,
    }


def many_streams(servers: Servers, count: int, sizes: Sizes) -> dict[str, Any]:
    """`count` async tasks, each one event a second to its own subscriber, in a fresh server;
    started in one turn of the loop by a task inside the server, all ending together.

    The driver is an async task too: with `count` at the default limit of async tasks, one
    ticker would wait queued until the first ones ended, so the limit leaves room for it."""
    server = servers.taskcast("--max-async", str(count + 1))
    prefix = publish_id("streams")
    seconds = sizes.stream_seconds
    lead = 2.0 + count / 5_000  # time for every task to start before the first event is due
    timeout = sizes.timeout + seconds + lead
    try:
        server.start()
        per_client = -(-count // -(-count // STREAMS_PER_CLIENT))  # even shares
        with contextlib.ExitStack() as stack:
            clients = [
                stack.enter_context(
                    client(
                        stream_options(
                            server, prefix, first, min(per_client, count - first), timeout, sizes
                        )
                    )
                )
                for first in range(0, count, per_client)
            ]
            for running in clients:
                running.read(timeout)  # every socket subscribed
            for running in clients:
                running.send("go")
            rss_before = server.rss()
            cpu_before, began = server.cpu(), time.monotonic()
            arguments = {"count": count, "seconds": seconds, "lead": lead, "prefix": prefix}
            with HealthPoller(server) as health:
                driver = server.run_task("bench.tasks.drive_streams", arguments, timeout)
            cpu = (server.cpu() - cpu_before) / (time.monotonic() - began)
            reports = [running.read(timeout) for running in clients]
        loop = server.get("/api/health")["loop"] or {}
        peak = server.rss_peak()
    finally:
        server.stop()
    by_due: dict[int, list[int]] = collections.defaultdict(list)
    for report in reports:
        for due, lates in report.pop("byDue").items():
            by_due[int(due)].extend(lates)
    unstopped = sum(r["unstopped"] for r in reports)
    if unstopped or driver["tickedOut"] != count:
        raise BenchError(
            f"{unstopped} of {count} streams saw no stop, {driver['tickedOut']} tasks ended"
        )
    return {
        "count": count,
        "seconds": seconds,
        "expected": sum(r["expected"] for r in reports),
        "received": sum(r["received"] for r in reports),
        "lost": sum(r["lost"] for r in reports),
        "gaps": sum(r["gaps"] for r in reports),
        "clients": len(reports),
        "latenessMs": summary_ms([v for lates in by_due.values() for v in lates], 1e-3),
        "windows": lateness_windows(by_due),
        "healthMs": summary_ms(health.times, 1e3),
        "healthFailures": health.failures,
        "rssBeforeKiB": rss_before,
        "rssPeakKiB": peak,
        "serverCpu": cpu,
        "loop": loop,
        "driver": driver,
    }


# -- the report ------------------------------------------------------------------------------------

TARGETS = {
    "fanout_async": 1.25,  # server CPU per delivered event, at most this times the ceiling's
    "fanout_process": 2.0,
    "latency_p50_ratio": 2.0,
    "latency_p99_ms": 5.0,
    "start_async_ms": 5.0,
    "start_process_ms": 20.0,
    "tasks_async": 5000.0,
    "tasks_process": 500.0,
    "idle_kib": 50.0,
    "history_growth": 0.05,  # RSS growth over the second half of the history run, at most 5 %
    "streams_p99_ms": 10.0,  # lateness p99, and the health check's p99, with many streams
    "streams_rss_mib": 1024.0,
    "block_ms": 50.0,  # the longest block of the loop while many tasks start or end
}


def verdict(ok: bool) -> str:
    return "met" if ok else "**missed**"


def ms(value_us: float | None) -> str:
    return "—" if value_us is None else f"{value_us / 1000:.2f}"


def table(head: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


class Report:
    """The results of every part, and the tables and verdicts made of them."""

    def __init__(self) -> None:
        self.fanout: dict[tuple[str, int, int], dict[str, Tally]] = {}
        self.latency: dict[tuple[str, int], dict[str, dict[str, Any]]] = {}
        self.start: dict[str, dict[str, dict[str, Any]]] = {}
        self.tasks: dict[str, dict[str, dict[str, Any]]] = {}
        self.idle: dict[str, dict[str, Any]] = {}
        self.history: dict[str, Any] = {}
        self.streams: dict[int, dict[str, Any]] = {}
        self.errors: list[str] = []
        self.lost = 0

    def as_json(self) -> dict[str, Any]:
        return {
            "fanout": [
                {
                    "kind": k,
                    "subs": s,
                    "events": e,
                    **{n: dataclasses.asdict(t) for n, t in v.items()},
                }
                for (k, s, e), v in self.fanout.items()
            ],
            "latency": [{"kind": k, "subs": s, **v} for (k, s), v in self.latency.items()],
            "start": self.start,
            "tasks": self.tasks,
            "idle": self.idle,
            "history": self.history,
            "streams": list(self.streams.values()),
            "errors": self.errors,
            "lost": self.lost,
        }

    def fanout_table(self) -> str:
        rows = []
        for (kind, subs, events), t in self.fanout.items():
            tc, ce = t["taskcast"], t["ceiling"]
            ratio = tc.server_us / ce.server_us if ce.server_us else float("inf")
            limit = TARGETS[f"fanout_{kind}"]
            rows.append([
                kind, str(subs), f"{events:,}",
                f"{tc.server_us:.2f}", f"{ce.server_us:.2f}", f"{ratio:.2f}",
                f"{tc.rate:,.0f}", f"{ce.rate:,.0f}",
                f"{tc.lost} / {ce.lost}",
                f"{tc.client_us:.2f} / {ce.client_us:.2f}",
                f"≤ {limit:g}x, 0 lost", verdict(ratio <= limit and tc.lost == 0 and tc.gaps == 0),
            ])  # fmt: skip
        head = [
            "task", "subscribers", "events", "server µs/event Taskcast", "ceiling", "ratio",
            "delivered/s Taskcast", "ceiling", "lost T / C", "client µs/event T / C", "target", "",
        ]  # fmt: skip
        return table(head, rows)

    def latency_table(self) -> str:
        rows = []
        for (kind, subs), r in self.latency.items():
            tc, ce = r["taskcast"]["latencyUs"], r["ceiling"]["latencyUs"]
            ok = (
                tc["p50"] <= TARGETS["latency_p50_ratio"] * ce["p50"]
                and tc["p99"] < TARGETS["latency_p99_ms"] * 1000
                and r["taskcast"]["lost"] == 0
            )
            rows.append([
                kind, str(subs),
                ms(tc["p50"]), ms(ce["p50"]), ms(tc["p99"]), ms(ce["p99"]), ms(tc["max"]), ms(ce["max"]),
                f"{r['taskcast']['lost']} / {r['ceiling']['lost']}",
                f"{r['taskcast']['serverCpuUs']:.1f} / {r['ceiling']['serverCpuUs']:.1f}",
                "p50 ≤ 2x ceiling, p99 < 5 ms" if kind == "async" else "(no target)",
                verdict(ok) if kind == "async" else "",
            ])  # fmt: skip
        head = [
            "task", "subscribers", "p50 ms Taskcast", "ceiling", "p99 ms Taskcast", "ceiling",
            "max ms Taskcast", "ceiling", "lost T / C", "server µs/event T / C", "target", "",
        ]  # fmt: skip
        return table(head, rows)

    def start_table(self) -> str:
        rows = []
        for kind, r in self.start.items():
            tc, ce = r["taskcast"]["startUs"], r["ceiling"]["startUs"]
            limit = TARGETS[f"start_{kind}_ms"]
            rows.append([
                kind, str(tc["count"]), ms(tc["p50"]), ms(ce["p50"]), ms(tc["p99"]), ms(ce["p99"]),
                f"p50 < {limit:g} ms", verdict(tc["p50"] < limit * 1000),
            ])  # fmt: skip
        head = [
            "task",
            "runs",
            "p50 ms Taskcast",
            "ceiling",
            "p99 ms Taskcast",
            "ceiling",
            "target",
            "",
        ]
        return table(head, rows)

    def tasks_table(self) -> str:
        rows = []
        for kind, r in self.tasks.items():
            tc, ce = r["taskcast"], r["ceiling"]
            limit = TARGETS[f"tasks_{kind}"]
            rows.append([
                kind, f"{tc['count']:,}", f"{tc['perSecond']:,.0f}", f"{ce['perSecond']:,.0f}",
                f"{tc['cpuUsPerTask']:.0f}", f"{ce['cpuUsPerTask']:.0f}",
                f"> {limit:,.0f}/s", verdict(tc["perSecond"] > limit),
            ])  # fmt: skip
        head = [
            "trivial tasks", "count", "tasks/s Taskcast", "ceiling",
            "server CPU µs/task Taskcast", "ceiling", "target", "",
        ]  # fmt: skip
        return table(head, rows)

    def memory_tables(self) -> str:
        parts = []
        if self.idle:
            rows = []
            for label in ("taskcast", "ceiling"):
                r = self.idle[label]
                ok = r["perSubKiB"] < TARGETS["idle_kib"]
                rows.append([
                    "Taskcast" if label == "taskcast" else "ceiling",
                    f"{r['before'] / 1024:.1f}", f"{r['after'] / 1024:.1f}", f"{r['perSubKiB']:.1f}",
                    "< 50 KiB" if label == "taskcast" else "",
                    verdict(ok) if label == "taskcast" else "",
                ])  # fmt: skip
            head = ["server", "RSS before MiB", "with idle subscribers MiB", "KiB per subscriber"]
            head += ["target", ""]
            parts.append(table(head, rows))
        if self.history:
            samples = self.history["samples"]
            half = samples[len(samples) // 2]
            last = samples[-1]
            growth = (last[2] - half[2]) / half[2]
            rows = [
                [f"{n:,}", f"{end / 1024:.1f}", f"{drained / 1024:.1f}"]
                for n, end, drained in samples
            ]
            parts.append(
                table(["finished tasks", "RSS MiB at the end of the batch", "once stored"], rows)
            )
            parts.append(
                f"History: each task sent {self.history['events']} events. From {half[0]:,} to "
                f"{last[0]:,} finished tasks the server grew by {(last[2] - half[2]) / 1024:.1f} MiB "
                f"({growth * 100:.1f} %; target: flat, at most "
                f"{TARGETS['history_growth'] * 100:.0f} %): {verdict(growth <= TARGETS['history_growth'])}."
            )
        return "\n\n".join(parts)

    def streams_tables(self) -> str:
        def f(value: float | None) -> str:
            return "—" if value is None else f"{value:,.1f}"

        rows, windows, mass = [], [], []
        for n, r in self.streams.items():
            late, health, loop = r["latenessMs"], r["healthMs"], r["loop"]
            gc_ = loop.get("collector") or {}
            counts = gc_.get("collections") or [0, 0, 0]
            ok = (
                (late["p99"] or 0) < TARGETS["streams_p99_ms"]
                and (health["p99"] or 0) < TARGETS["streams_p99_ms"]
                and r["rssPeakKiB"] / 1024 < TARGETS["streams_rss_mib"]
                and r["lost"] == r["gaps"] == 0
            )
            rows.append([
                f"{n:,}", f"{r['received']:,}", f"{r['lost']}",
                f"{f(late['p50'])} / {f(late['p99'])} / {f(late['max'])}",
                f"{f(health['p50'])} / {f(health['p99'])} / {f(health['max'])}",
                f"{r['rssPeakKiB'] / 1024:.0f}", f"{r['serverCpu'] * 100:.0f} %",
                f"{counts[2]} ({f(gc_.get('longest_full_ms'))})",
                f"{sum(counts):,} ({f(gc_.get('longest_ms'))})",
                "p99 < 10 ms, health p99 < 10 ms, < 1 GiB, 0 lost", verdict(ok),
            ])  # fmt: skip
            for w in r["windows"]:
                windows.append([
                    f"{n:,}", f"{w['from']} to {w['to']} s", f"{w['count']:,}",
                    f(w["p50"]), f(w["p99"]), f(w["max"]),
                ])  # fmt: skip
            d = r["driver"]
            limit = TARGETS["block_ms"]
            mass.append([
                f"{n:,}", f"{d['callUs']:.1f}", f"{d['callsSeconds'] * 1000:,.0f}",
                f(d["startBlockMs"]), f(d["finishBlockMs"]), f"≤ {limit:g} ms",
                verdict(max(d["startBlockMs"], d["finishBlockMs"]) <= limit),
            ])  # fmt: skip
        head = [
            "streams", "events", "lost", "lateness ms p50 / p99 / max",
            "`/api/health` ms p50 / p99 / max", "RSS peak MiB", "server CPU",
            "full collections (longest ms)", "all collections (longest ms)", "target", "",
        ]  # fmt: skip
        parts = [table(head, rows)]
        head = ["streams", "events due", "events", "lateness ms p50", "p99", "max"]
        parts.append(
            "Lateness by when the events were due, in windows of 5 s:\n\n" + table(head, windows)
        )
        head = [
            "tasks started in one turn", "`async_task` µs per call", "that turn ms",
            "longest block while they start ms", "longest block while they end ms", "target", "",
        ]  # fmt: skip
        parts.append(table(head, mass))
        return "\n\n".join(parts)

    def render(self, machine: str) -> str:
        sections = [machine]
        for title, present, make in (
            ("Fan-out: one task, events as fast as it sends them", self.fanout, self.fanout_table),
            ("Latency: 1,000 events/s, `send_event` to the client's receipt",
             self.latency, self.latency_table),
            ("Start to first event", self.start, self.start_table),
            ("Task throughput, store on (started with `async_task` inside the server)",
             self.tasks, self.tasks_table),
            ("Memory", self.idle or self.history, self.memory_tables),
            ("Many live streams: one event a second each, one subscriber each",
             self.streams, self.streams_tables),
        ):  # fmt: skip
            if present:
                sections.append(f"### {title}\n\n{make()}")
        if self.errors:
            sections.append(
                "### Runs that did not complete\n\n" + "\n".join(f"- {e}" for e in self.errors)
            )
        return "\n\n".join(sections) + "\n"


# -- the machine -----------------------------------------------------------------------------------


def machine_description(sizes: Sizes, quick: bool) -> str:
    cpu = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem = Path("/proc/meminfo").read_text().splitlines()[0].split()[1]
    node = subprocess.run(
        ["node", "--version"], capture_output=True, text=True, check=False
    ).stdout.strip()
    import aiohttp  # the version the servers run with

    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    mode = "quick" if quick else f"full, {sizes.rounds} rounds per fan-out figure"
    return (
        f"Measured {now} ({mode}) on {cpu}, {os.cpu_count()} cores, {int(mem) / 1024**2:.1f} GiB, "
        f"Linux {platform.release()}; Python {platform.python_version()}, aiohttp "
        f"{aiohttp.__version__}, Node.js {node}, asyncio's default event loop in both servers."
    )


def write_doc(path: Path, body: str) -> None:
    text = path.read_text() if path.exists() else f"# Benchmarks\n\n{BEGIN}\n{END}\n"
    if BEGIN not in text or END not in text:
        text = text.rstrip("\n") + f"\n\n{BEGIN}\n{END}\n"
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    path.write_text(f"{head}{BEGIN}\n{body}{END}{tail}")


# -- main ------------------------------------------------------------------------------------------

PARTS = ("fanout", "latency", "start", "tasks", "memory", "streams")


def progress(text: str) -> None:
    print(f"bench: {text}", file=sys.stderr, flush=True)


def attempt(report: Report, what: str, run: Callable[[], None]) -> None:
    progress(what)
    try:
        run()
    except BenchError as exc:
        report.errors.append(f"{what}: {exc}")
        progress(f"FAILED {what}: {exc}")


def keep(
    report: Report, what: str, table: dict[Any, Any], key: Any, make: Callable[[], Any]
) -> None:
    """Run one part; its result goes into `table` under `key`, its failure into the errors."""
    attempt(report, what, lambda: table.__setitem__(key, make()))


def run_parts(report: Report, servers: Servers, sizes: Sizes, parts: set[str]) -> None:
    pair = Pair(servers.taskcast(), servers.ceiling())
    try:
        if parts - {"memory", "streams"}:
            pair.taskcast.start()
            pair.ceiling.start()
        kinds = ("async", "process")
        for kind, (subs, events) in itertools.product(kinds, sizes.fanout):
            if "fanout" in parts:
                make = functools.partial(fanout, pair, kind, subs, events, sizes)
                keep(
                    report,
                    f"fan-out {kind} {subs} x {events}",
                    report.fanout,
                    (kind, subs, events),
                    make,
                )
        for kind, subs in itertools.product(kinds, sizes.latency_subs):
            if "latency" in parts:
                make = functools.partial(latency, pair, kind, subs, sizes)
                keep(report, f"latency {kind} {subs}", report.latency, (kind, subs), make)
        for kind in kinds if "start" in parts else ():
            make = functools.partial(start_to_first_event, pair, kind, sizes)
            keep(report, f"start-to-first-event {kind}", report.start, kind, make)
        counts = {"async": sizes.async_tasks, "process": sizes.process_tasks}
        for kind in kinds if "tasks" in parts else ():
            make = functools.partial(throughput, pair, kind, counts[kind], sizes)
            keep(report, f"task throughput {kind}", report.tasks, kind, make)
    finally:
        pair.taskcast.stop()
        pair.ceiling.stop()
    if "memory" in parts:
        attempt(report, "memory with idle subscribers",
                lambda: report.idle.update(idle_memory(servers, sizes)))  # fmt: skip
        attempt(report, "memory after finished tasks",
                lambda: report.history.update(history_memory(servers, sizes)))  # fmt: skip
    for count in sizes.streams if "streams" in parts else ():
        keep(report, f"{count:,} live streams", report.streams, count,
             functools.partial(many_streams, servers, count, sizes))  # fmt: skip
    report.lost = sum(t.lost + t.gaps for pair_ in report.fanout.values() for t in pair_.values())
    report.lost += sum(r["lost"] + r["gaps"] for r in report.streams.values())
    report.lost += sum(r[s]["lost"] + r[s]["gaps"] for r in report.latency.values() for s in r)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="small runs, under a minute (CI's smoke test)"
    )
    parser.add_argument(
        "--output", type=Path, help=f"write the tables here (default: {DOC} unless --quick)"
    )
    parser.add_argument("--json", type=Path, help="also write the raw results as JSON here")
    parser.add_argument(
        "--parts", default=",".join(PARTS), help=f"comma-separated subset of {','.join(PARTS)}"
    )
    parser.add_argument(
        "--server-root", type=Path, default=ROOT, help="the Taskcast checkout to measure"
    )
    args = parser.parse_args(argv)
    parts = set(args.parts.split(","))
    if not parts <= set(PARTS):
        parser.error(f"--parts takes names from {', '.join(PARTS)}")
    if shutil.which("node") is None:
        print(
            "bench: Node.js (`node`) is needed for the load client and was not found on PATH",
            file=sys.stderr,
        )
        return 2
    # The servers inherit the limit: 1,000 sockets need more descriptors than a default 1,024.
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    sizes = QUICK if args.quick else FULL
    report = Report()
    with tempfile.TemporaryDirectory(prefix="taskcast-bench-") as workdir:
        servers = Servers(args.server_root.resolve(), Path(workdir))
        began = time.monotonic()
        try:
            run_parts(report, servers, sizes, parts)
        except BenchError as exc:
            report.errors.append(str(exc))
        if report.errors:
            for log in sorted(Path(workdir).glob("*.log")):
                tail = log.read_text(errors="replace")[-2000:]
                if tail.strip():
                    progress(f"{log.name}:\n{tail}")
    rendered = report.render(machine_description(sizes, args.quick))
    print(rendered)
    progress(f"done in {time.monotonic() - began:.0f} s")
    output = args.output or (None if args.quick else DOC)
    if output is not None:
        write_doc(output, rendered)
        progress(f"wrote {output}")
    if args.json is not None:
        args.json.write_text(json.dumps(report.as_json(), indent=1))
    return 1 if report.errors or report.lost else 0


if __name__ == "__main__":
    sys.exit(main())
