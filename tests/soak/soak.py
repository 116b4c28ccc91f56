"""Soak test: a mix of tasks and readers for a while, then check that nothing was lost or kept.

    python -m tests.soak.soak            # 2 minutes
    python -m tests.soak.soak --quick    # 10 seconds (tests/soak/test_soak_quick.py runs this)
    python tests/soak/soak.py --seconds 600 --seed 7

For the given time it keeps starting async and process tasks that send numbered events (some
fail, some are cancelled), and for each of their streams up to three readers over the real
channel: one that subscribes before the run starts, one that joins late (the stream may have
finished and even left the hub's memory by then, so it comes from the store), one that drops
its connection now and then and resumes with `after`, and one that reads slowly and gets cut off
by the subscriber limit, then resumes. At the end it checks:

- every reader got every event of its stream exactly once, in order, and the stop frame with
  the task's final state;
- every task has a final status, and nothing is left running, queued or subscribed;
- the hub holds no more finished streams than `kept_streams`, the store kept no write back;
- the process's memory (RSS) after the warm-up third did not grow past a bound.

The server is `create_app()` on aiohttp's TestServer at 127.0.0.1, in this process. Every loop
is bounded in count and time. Exit status 0 and a last line starting "soak: OK" when all holds.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import aiohttp
from aiohttp.test_utils import TestServer

from taskcast import tasks
from taskcast.records import TaskRecord, TaskStatus
from taskcast.web.channel import PATH as CHANNEL
from taskcast.web.factory import create_app
from taskcast.web.keys import HUB, RUNNER, SOCKETS, STORE

KEPT_STREAMS = 20
MAX_PENDING = 40
#: RSS may grow by this much between the end of the warm-up and the end, in MiB
RSS_SLACK_MB = 64
KINDS = {
    "async": ("tests.support.sample_tasks.async_events", "aio"),
    "process": ("tests.support.sample_tasks.process_events", "proc"),
    "failing": ("tests.support.sample_tasks.events_then_fail", "proc"),
}


def expected_data(kind: str, seq: int) -> str:
    if kind == "failing":
        return ["one", "two"][seq - 1]
    return f"<li>{seq - 1}</li>===>>.data"


@dataclasses.dataclass
class Run:
    """One task started by the soak, and what its stream must look like."""

    kind: str
    publish_id: str
    count: int
    task_id: str = ""
    cancel_after: float | None = None

    @property
    def stream_id(self) -> str:
        return f"{KINDS[self.kind][1]}__{self.publish_id}"


@dataclasses.dataclass
class Reading:
    """What one reader saw of one stream across its connections."""

    run: Run
    style: str
    last: int = 0  # the seq of the last event it got; events are checked as they come
    stop: dict[str, Any] | None = None
    connections: int = 0
    cut_offs: int = 0
    problem: str | None = None

    def got(self, seq: int, data: str) -> None:
        if self.problem is None and seq != self.last + 1:
            self.problem = f"seq {seq} after {self.last}"
        elif self.problem is None and data != expected_data(self.run.kind, seq):
            self.problem = f"seq {seq} is {data!r}"
        self.last = seq


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Soak:
    def __init__(self, seconds: float, seed: int, workers: int) -> None:
        self.seconds = seconds
        self.random = random.Random(seed)
        self.workers = workers
        self.runs: list[Run] = []
        self.readings: list[Reading] = []
        self.problems: list[str] = []
        self.rss: list[float] = []
        self.records: dict[str, TaskRecord | None] = {}  # read before the server stops
        self.sent: dict[str, int] = {}  # task id -> events its stream has, from the store

    # -- readers ---------------------------------------------------------------------------------

    async def read(
        self, session: aiohttp.ClientSession, url: str, reading: Reading, delay: float
    ) -> None:
        """Follow the run's stream to its stop, as `reading.style` says; bounded in time."""
        try:
            async with asyncio.timeout(60):
                await asyncio.sleep(delay)
                await self._follow(session, url, reading)
        except TimeoutError:
            reading.problem = reading.problem or f"no stop within 60 s after seq {reading.last}"

    async def _follow(self, session: aiohttp.ClientSession, url: str, reading: Reading) -> None:
        for _ in range(200):  # connections, at most
            after = reading.last
            reading.connections += 1
            async with session.ws_connect(url, max_msg_size=0) as ws:
                await ws.send_json({"id": reading.run.stream_id, "after": after})
                drop_after = self.random.randint(1, 8) if reading.style == "flaky" else None
                async for message in ws:
                    if message.type is not aiohttp.WSMsgType.TEXT:
                        break
                    frame = json.loads(message.data)
                    if frame["status"] == "event":
                        reading.got(frame["seq"], frame["data"])
                        if reading.style == "slow":
                            await asyncio.sleep(0.003)
                        if drop_after is not None and reading.last % drop_after == 0:
                            break  # a page that loses its connection
                    elif frame["status"] == "stop":
                        reading.stop = frame
                        return
                if ws.close_code == 1013:
                    reading.cut_offs += 1
            await asyncio.sleep(self.random.uniform(0, 0.05))
        reading.problem = "gave up after 200 connections"

    # -- tasks -----------------------------------------------------------------------------------

    def new_run(self, number: int) -> Run:
        kind = self.random.choices(["async", "process", "failing"], [5, 4, 1])[0]
        count = self.random.randint(1, 120) if kind != "failing" else 2
        run = Run(kind, f"s{number}", count)
        if kind != "failing" and self.random.random() < 0.1:
            run.cancel_after = self.random.uniform(0, 0.2)
        return run

    def start(self, run: Run) -> None:
        func, _ = KINDS[run.kind]
        kwargs: dict[str, Any] = {"task_publish_id": run.publish_id}
        if run.kind != "failing":
            kwargs.update(count=run.count, pause=self.random.choice([0, 0, 0.001, 0.005]))
        run.task_id = tasks.async_task(func, **kwargs)

    async def cancel_later(self, run: Run) -> None:
        """Cancel the run a moment after it started. Only once started: a run cancelled while
        queued leaves its waiting readers without a stop (the strict xfail
        test_a_task_cancelled_while_queued_ends_its_stream in tests/test_faults.py)."""
        assert run.cancel_after is not None
        for _ in range(3000):
            record = tasks.get_task(run.task_id)
            if record is None or record.status is not TaskStatus.QUEUED:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(run.cancel_after)
        tasks.cancel(run.task_id)

    # -- the whole soak ------------------------------------------------------------------------

    async def run(self) -> int:
        with tempfile.TemporaryDirectory(prefix="taskcast-soak-") as folder:
            app = create_app(
                database=str(Path(folder) / "soak.sqlite3"),
                process_workers=self.workers,
                kept_streams=KEPT_STREAMS,
                subscriber_max_pending=MAX_PENDING,
                save_limit=0,  # keep every record: late readers may come after the hub let go
                cancel_grace=0.5,
                shutdown_grace=0.5,
            )
            server = TestServer(app, host="127.0.0.1")
            await server.start_server()
            try:
                connector = aiohttp.TCPConnector(limit=0)
                async with aiohttp.ClientSession(connector=connector) as session:
                    await self.drive(session, str(server.make_url(CHANNEL)))
                await self.check_server(app)
            finally:
                await server.close()
        return self.report()

    async def drive(self, session: aiohttp.ClientSession, url: str) -> None:
        began = time.monotonic()
        readers: list[asyncio.Task[None]] = []
        helpers: list[asyncio.Task[None]] = []
        number = 0
        while time.monotonic() - began < self.seconds and number < 100_000:
            if not self.rss and time.monotonic() - began > self.seconds / 3:
                self.rss.append(rss_mb())  # after the warm-up
            number += 1
            run = self.new_run(number)
            styles = self.random.sample(
                ["early", "late", "flaky", "slow"], k=self.random.randint(0, 3)
            )
            for style in [s for s in styles if s == "early"]:
                readers.append(self.reader(session, url, run, style, 0))
            await asyncio.sleep(0.01)  # the early reader is subscribed before the run starts
            self.start(run)
            self.runs.append(run)
            if run.cancel_after is not None:
                helpers.append(asyncio.ensure_future(self.cancel_later(run)))
            for style in [s for s in styles if s != "early"]:
                delay = (
                    self.random.uniform(0, 3) if style == "late" else self.random.uniform(0, 0.1)
                )
                readers.append(self.reader(session, url, run, style, delay))
            readers = [reader for reader in readers if not reader.done()]
            await asyncio.sleep(self.random.uniform(0, 0.03))
        await asyncio.gather(*helpers)
        for run in self.runs:
            try:
                await tasks.wait_task(run.task_id, timeout=30)
            except TimeoutError:
                self.problems.append(f"task {run.task_id} ({run.kind}) did not finish")
        await asyncio.gather(*readers)
        self.rss.append(rss_mb())

    def reader(
        self, session: aiohttp.ClientSession, url: str, run: Run, style: str, delay: float
    ) -> asyncio.Task[None]:
        reading = Reading(run, style)
        self.readings.append(reading)
        return asyncio.ensure_future(self.read(session, url, reading, delay))

    # -- the checks ------------------------------------------------------------------------------

    async def check_server(self, app: Any) -> None:
        runner, hub, store = app[RUNNER], app[HUB], app[STORE]
        for _ in range(250):  # sockets close a moment after their clients
            if len(app[SOCKETS]) == 0 and hub.subscriber_count == 0:
                break
            await asyncio.sleep(0.02)
        checks = {
            "sockets still open": len(app[SOCKETS]),
            "subscribers left in the hub": hub.subscriber_count,
            "tasks still queued": runner.queue_size,
            "tasks still running": runner.running_count,
            "records still active": len(runner.active_records()),
            "writes kept back by the store": store.kept_writes,
            "store write errors": store.write_errors,
        }
        self.problems += [f"{what}: {count}" for what, count in checks.items() if count]
        if len(hub) > KEPT_STREAMS:
            self.problems.append(f"the hub holds {len(hub)} streams, more than {KEPT_STREAMS}")

        def count_events() -> None:
            for run in self.runs:
                self.sent[run.task_id] = len(store.events(run.task_id))

        await asyncio.get_running_loop().run_in_executor(None, count_events)
        for run in self.runs:
            record = self.records[run.task_id] = runner.get(run.task_id)
            if record is None or not record.status.is_final:
                self.problems.append(f"task {run.task_id} has no final status: {record}")

    def check_readings(self) -> None:
        for reading in self.readings:
            run, where = reading.run, f"{reading.style} reader of {reading.run.stream_id}"
            record = self.records.get(run.task_id)
            if record is None:
                continue  # reported by check_server
            if reading.problem:
                started = "never started" if record.started is None else "started"
                self.problems.append(
                    f"{where}: {reading.problem}; the task {started}, {record.status.value}"
                )
                continue
            final = reading.stop or {}
            if final.get("state") != record.status.value:
                self.problems.append(f"{where}: stop {final}, but the task is {record.status}")
            if reading.last != self.sent[run.task_id]:
                self.problems.append(f"{where}: {reading.last} of {self.sent[run.task_id]} events")
            elif record.status is TaskStatus.SUCCESS and reading.last != record.result:
                self.problems.append(f"{where}: the task sent {record.result} events")

    def report(self) -> int:
        self.check_readings()
        if len(self.rss) == 2 and self.rss[1] - self.rss[0] > RSS_SLACK_MB:
            self.problems.append(f"RSS grew from {self.rss[0]:.0f} to {self.rss[1]:.0f} MiB")
        statuses: dict[str, int] = {}
        for run in self.runs:
            record = self.records.get(run.task_id)
            status = record.status.value if record is not None else "unknown"
            statuses[status] = statuses.get(status, 0) + 1
        events = sum(reading.last for reading in self.readings)
        summary = (
            f"{len(self.runs)} tasks {statuses}, {len(self.readings)} readers, "
            f"{sum(r.connections for r in self.readings)} connections, "
            f"{sum(r.cut_offs for r in self.readings)} cut-offs, {events} events checked, "
            f"RSS {' -> '.join(f'{mb:.0f}' for mb in self.rss)} MiB"
        )
        for problem in self.problems[:50]:
            print(f"problem: {problem}")
        if self.problems:
            print(f"soak: FAILED with {len(self.problems)} problems; {summary}")
            return 1
        print(f"soak: OK; {summary}")
        return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="10 seconds, for CI")
    parser.add_argument("--seconds", type=float, default=None, help="how long (default 120)")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: random)")
    parser.add_argument("--workers", type=int, default=2, help="process-pool workers")
    args = parser.parse_args(argv)
    seconds = args.seconds if args.seconds is not None else (10 if args.quick else 120)
    seed = args.seed if args.seed is not None else random.randrange(1_000_000)
    print(f"soak: {seconds:g} s, seed {seed}", flush=True)
    return asyncio.run(Soak(seconds, seed, args.workers).run())


if __name__ == "__main__":
    sys.exit(main())
