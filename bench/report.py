"""The report: targets, the tables made of the results, the machine they were measured on, and
where they are written (docs/benchmarks.md, between its markers)."""

from __future__ import annotations

import dataclasses
import datetime
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

from bench.load import Tally
from bench.servers import ROOT
from bench.sizes import Sizes

DOC = ROOT / "docs" / "benchmarks.md"
BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"


# -- the report ------------------------------------------------------------------------------------

#: the paced rows the CPU target applies to: 1,000 events a second to this many subscribers
PACED_SUBS = 50

TARGETS = {
    "fanout_async": 1.25,  # server CPU per delivered event, at most this times the ceiling's
    "fanout_process": 2.0,
    "latency_p50_ratio": 2.0,
    "latency_p99_ms": 5.0,
    "paced_cpu_ratio": 1.25,  # paced rows with 50 subscribers: server CPU per event vs ceiling's
    "start_async_ms": 5.0,
    "start_process_ms": 20.0,
    "tasks_async": 5000.0,
    "tasks_process": 500.0,
    "idle_kib": 50.0,
    "history_growth": 0.05,  # RSS growth over the second half of the history run, at most 5 %
    "streams_p99_ms": 10.0,  # lateness p99, and the health check's p99, with many streams
    "streams_rss_mib": 1024.0,
    "block_ms": 50.0,  # the longest block of the loop while many tasks start or end
    "cross_node_p99_ms": 5.0,  # Redis engine: a task on one node to subscribers on another
    "cross_node_cpu_ratio": 3.0,  # its CPU per delivered event, at most this times memory's
    "tasks_across_nodes": 3000.0,  # trivial tasks a second through Redis across two nodes
}


def verdict(ok: bool) -> str:
    return "met" if ok else "**missed**"


def run_spread(row: dict[str, Any]) -> str:
    """The lowest and highest ratio of a Taskcast run to the ceiling's run of the same round,
    when there were several: one paced run alone moves with whatever else the machine does."""
    taskcast = row["taskcast"].get("runsCpuUs") or []
    ceiling = row["ceiling"].get("runsCpuUs") or []
    ratios = [t / c for t, c in zip(taskcast, ceiling, strict=False) if c]
    if len(ratios) < 2:
        return ""
    return f" ({min(ratios):.2f} to {max(ratios):.2f})"


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
        self.cross_node: dict[str, dict[str, Any]] = {}
        self.across: dict[str, Any] = {}
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
            "crossNode": self.cross_node,
            "tasksAcrossNodes": self.across,
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
            ratio = r["taskcast"]["serverCpuUs"] / r["ceiling"]["serverCpuUs"]
            targets, met = [], True
            if kind == "async":
                targets.append(
                    f"p50 ≤ {TARGETS['latency_p50_ratio']:g}x ceiling, "
                    f"p99 < {TARGETS['latency_p99_ms']:g} ms"
                )
                met = (
                    tc["p50"] <= TARGETS["latency_p50_ratio"] * ce["p50"]
                    and tc["p99"] < TARGETS["latency_p99_ms"] * 1000
                    and r["taskcast"]["lost"] == 0
                )
            if subs == PACED_SUBS:
                targets.append(f"CPU ≤ {TARGETS['paced_cpu_ratio']:g}x")
                met = met and ratio <= TARGETS["paced_cpu_ratio"]
            rows.append([
                kind, str(subs),
                ms(tc["p50"]), ms(ce["p50"]), ms(tc["p99"]), ms(ce["p99"]), ms(tc["max"]), ms(ce["max"]),
                f"{r['taskcast']['lost']} / {r['ceiling']['lost']}",
                f"{r['taskcast']['serverCpuUs']:.2f} / {r['ceiling']['serverCpuUs']:.2f}",
                f"{ratio:.2f}{run_spread(r)}",
                ", ".join(targets) or "(no target)",
                verdict(met) if targets else "",
            ])  # fmt: skip
        head = [
            "task", "subscribers", "p50 ms Taskcast", "ceiling", "p99 ms Taskcast", "ceiling",
            "max ms Taskcast", "ceiling", "lost T / C", "server µs/event T / C", "CPU ratio (runs)",
            "target", "",
        ]  # fmt: skip
        return table(head, rows)

    def cross_node_table(self) -> str:
        memory = self.cross_node["memory"]
        rows = []
        for label, name in (
            ("memory", "memory engine, one server"),
            ("ceiling", "ceiling, one server"),
            ("redis", "Redis engine, task on node A, subscribers on node B"),
        ):
            r = self.cross_node[label]
            lat, ratio = r["latencyUs"], r["serverCpuUs"] / memory["serverCpuUs"]
            ok = (
                lat["p99"] < TARGETS["cross_node_p99_ms"] * 1000
                and ratio <= TARGETS["cross_node_cpu_ratio"]
                and r["lost"] == 0
                and r["gaps"] == 0
            )
            target = (
                f"p99 < {TARGETS['cross_node_p99_ms']:g} ms, "
                f"≤ {TARGETS['cross_node_cpu_ratio']:g}x memory, 0 lost"
            )
            rows.append([
                name, ms(lat["p50"]), ms(lat["p99"]), ms(lat["max"]), str(r["lost"] + r["gaps"]),
                f"{r['serverCpuUs']:.1f}", f"{ratio:.2f}",
                target if label == "redis" else "", verdict(ok) if label == "redis" else "",
            ])  # fmt: skip
        head = [
            "run", "p50 ms", "p99 ms", "max ms", "lost", "server µs/delivered event",
            "ratio to memory", "target", "",
        ]  # fmt: skip
        parts = [table(head, rows)]
        if self.across:
            r = self.across
            limit = TARGETS["tasks_across_nodes"]
            parts.append(table(
                ["trivial async tasks, started through node A", "tasks/s",
                 "CPU µs/task (both nodes and Redis)", "ran on A / B", "target", ""],
                [[f"{r['count']:,}", f"{r['perSecond']:,.0f}", f"{r['cpuUsPerTask']:.0f}",
                  f"{r['onA']:,} / {r['onB']:,}", f"> {limit:,.0f}/s", verdict(r["perSecond"] > limit)]],
            ))  # fmt: skip
        return "\n\n".join(parts)

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
            late, phases, loop = r["latenessMs"], r["healthPhases"], r["loop"]
            health, whole = phases["live"], r["healthMs"]
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
                f"{f(phases['before']['p99'])} / {f(phases['after']['p99'])}"
                f" / {f(whole['p99'])}",
                f"{r['rssPeakKiB'] / 1024:.0f}", f"{r['serverCpu'] * 100:.0f} %",
                f"{counts[2]} ({f(gc_.get('longest_full_ms'))})",
                f"{sum(counts):,} ({f(gc_.get('longest_ms'))})",
                "p99 < 10 ms, health p99 < 10 ms, < 1 GiB, 0 lost", verdict(ok),
            ])  # fmt: skip
            by_window = phases["windows"]
            for index, w in enumerate(r["windows"]):
                checks = by_window.get(index) or by_window.get(str(index)) or {}
                windows.append([
                    f"{n:,}", f"{w['from']} to {w['to']} s", f"{w['count']:,}",
                    f(w["p50"]), f(w["p99"]), f(w["max"]),
                    f"{checks.get('count', 0)}", f(checks.get("p99")), f(checks.get("max")),
                ])  # fmt: skip
            d = r["driver"]
            limit = TARGETS["block_ms"]
            mass.append([
                f"{n:,}", f"{d['callUs']:.1f}", f"{d['callsSeconds'] * 1000:,.0f}",
                f(d["startBlockMs"]), f(d["finishBlockMs"]),
                f"{f(r['stopMs']['p50'])} / {f(r['stopMs']['p99'])}",
                f"{r['closingMs'] / 1000:.1f} ({r['unclosed']} left open)", f"≤ {limit:g} ms",
                verdict(max(d["startBlockMs"], d["finishBlockMs"]) <= limit and not r["unclosed"]),
            ])  # fmt: skip
        head = [
            "streams", "events", "lost", "lateness ms p50 / p99 / max",
            "`/api/health` ms p50 / p99 / max while live",
            "health p99 ms while starting / ending / whole run", "RSS peak MiB", "server CPU",
            "full collections (longest ms)", "all collections (longest ms)", "target", "",
        ]  # fmt: skip
        parts = [table(head, rows)]
        head = [
            "streams", "events due", "events", "lateness ms p50", "p99", "max",
            "health checks", "health p99 ms", "max",
        ]  # fmt: skip
        parts.append(
            "Lateness by when the events were due, in windows of 5 s, and the health checks sent"
            " in each window:\n\n" + table(head, windows)
        )
        head = [
            "tasks started in one turn", "`async_task` µs per call", "that turn ms",
            "longest block while they start ms", "longest block while they end ms",
            "`stop` ms after the last event was due, p50 / p99",
            "every socket closed, s after the last `stop`", "target", "",
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
            ("The Redis engine: 1,000 events/s to 50 subscribers on another node, and tasks "
             "across two nodes", self.cross_node, self.cross_node_table),
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
