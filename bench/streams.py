"""The streams part: thousands of live streams in one server, one event a second each, with
lateness counted from when each event was due and the health check timed beside them."""

from __future__ import annotations

import collections
import contextlib
import threading
import time
from typing import Any

from bench.load import GROUP, client, publish_id
from bench.servers import BenchError, Server, Servers
from bench.sizes import STREAMS_PER_CLIENT, Sizes


class HealthPoller:
    """Times `GET /api/health` every 100 ms from a thread while a run goes on."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.times: list[float] = []
        #: when each timed request was sent (CLOCK_MONOTONIC, µs, the clock of the due times)
        self.sent_us: list[int] = []
        self.failures = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        while not self._stop.wait(0.1):
            sent, began = time.monotonic(), time.perf_counter()
            try:
                self.server.get("/api/health", timeout=30)
            except (OSError, BenchError):
                self.failures += 1
                continue
            self.times.append(time.perf_counter() - began)
            self.sent_us.append(int(sent * 1e6))

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


def health_by_phase(
    poller: HealthPoller, by_due: dict[int, list[int]], width: int = 5
) -> dict[str, Any]:
    """The health check's times while every stream is live (from the first event due to the
    last), before (the tasks starting) and after (the streams ending and their sockets
    closing), and by the same windows of due time as the lateness."""
    first, last = min(by_due), max(by_due)
    phases: dict[str, list[float]] = {"before": [], "live": [], "after": []}
    windows: dict[int, list[float]] = collections.defaultdict(list)
    for sent, took in zip(poller.sent_us, poller.times, strict=True):
        phase = "before" if sent < first else "after" if sent > last else "live"
        phases[phase].append(took)
        if phase == "live":
            windows[(sent - first) // (width * 1_000_000)].append(took)
    return {
        **{phase: summary_ms(times, 1e3) for phase, times in phases.items()},
        "windows": {index: summary_ms(times, 1e3) for index, times in sorted(windows.items())},
    }


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
        # sockets the server had not closed 30 s after their `stop`; how long a client waited
        # from its last `stop` until the server had closed all its sockets
        "unclosed": sum(r["unclosed"] for r in reports),
        # how long after its last event was due each stream's `stop` arrived
        "stopMs": summary_ms([v for r in reports for v in r.pop("stopLatesUs")], 1e-3),
        "closingMs": max(r["closingMs"] for r in reports),
        "clients": len(reports),
        "latenessMs": summary_ms([v for lates in by_due.values() for v in lates], 1e-3),
        "windows": lateness_windows(by_due),
        "healthMs": summary_ms(health.times, 1e3),
        "healthPhases": health_by_phase(health, by_due),
        "healthFailures": health.failures,
        "rssBeforeKiB": rss_before,
        "rssPeakKiB": peak,
        "serverCpu": cpu,
        "loop": loop,
        "driver": driver,
    }
