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
import functools
import itertools
import json
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.cluster import cross_node, tasks_across
from bench.parts import (
    fanout,
    history_memory,
    idle_memory,
    latency,
    start_to_first_event,
    throughput,
)
from bench.report import DOC, Report, machine_description, write_doc
from bench.servers import ROOT, BenchError, Pair, Servers
from bench.sizes import FULL, QUICK, Sizes
from bench.streams import many_streams

# -- main ------------------------------------------------------------------------------------------

PARTS = ("fanout", "latency", "start", "tasks", "memory", "streams", "redis")


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
    if "redis" in parts:
        attempt(report, "Redis engine across two nodes",
                lambda: report.cross_node.update(cross_node(servers, sizes)))  # fmt: skip
        attempt(report, "trivial tasks across two nodes",
                lambda: report.across.update(tasks_across(servers, sizes)))  # fmt: skip
    report.lost = sum(t.lost + t.gaps for pair_ in report.fanout.values() for t in pair_.values())
    report.lost += sum(r["lost"] + r["gaps"] for r in report.streams.values())
    report.lost += sum(r[s]["lost"] + r[s]["gaps"] for r in report.latency.values() for s in r)
    report.lost += sum(r["lost"] + r["gaps"] for r in report.cross_node.values())


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
