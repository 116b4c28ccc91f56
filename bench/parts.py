"""The parts of the benchmark on one Taskcast server and the ceiling: fan-out, latency, start to
first event, task throughput and memory."""

from __future__ import annotations

import statistics
import time
from typing import Any

from bench.load import GROUP, Tally, client, publish_id, watch_run
from bench.servers import BenchError, Pair, Servers
from bench.sizes import Sizes


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
    """Paced runs, `latency_rounds` per server in alternating order: the CPU per delivered
    event over all of them (one short run moves with whatever else the machine does), the
    median of the runs' p50s, and the largest of their p99s and maxima."""
    arguments = {"rate": sizes.latency_rate, "seconds": sizes.latency_seconds}
    expect = int(sizes.latency_rate * sizes.latency_seconds)
    runs: dict[str, list[tuple[dict[str, Any], float]]] = {"taskcast": [], "ceiling": []}
    for round_index in range(sizes.latency_rounds):
        for server in pair.both(round_index):
            report, cpu = watch_run(
                server,
                "latency",
                f"bench.tasks.paced_{kind}",
                arguments,
                subs,
                expect,
                sizes.timeout,
            )
            runs["taskcast" if server is pair.taskcast else "ceiling"].append((report, cpu))
    return {label: combined(reports) for label, reports in runs.items()}


def combined(runs: list[tuple[dict[str, Any], float]]) -> dict[str, Any]:
    """One paced row's figures from several runs of it on one server."""
    reports = [report for report, _ in runs]
    received = sum(report["received"] for report in reports)
    latencies = [report["latencyUs"] for report in reports]
    return {
        "runs": len(reports),
        "received": received,
        "lost": sum(report["lost"] for report in reports),
        "gaps": sum(report["gaps"] for report in reports),
        "serverCpuUs": sum(cpu for _, cpu in runs) * 1e6 / max(received, 1),
        # each run's own figure, in the order run: the report shows how far they spread
        "runsCpuUs": [cpu * 1e6 / max(report["received"], 1) for report, cpu in runs],
        "latencyUs": {
            "p50": statistics.median(latency["p50"] for latency in latencies),
            "p99": max(latency["p99"] for latency in latencies),
            "max": max(latency["max"] for latency in latencies),
        },
    }


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
