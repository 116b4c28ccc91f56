"""What the hub's kept history costs the garbage collector, and what the store's writer thread
costs per event: `python -m bench.history_gc [--server-root CHECKOUT] [--events N]`.

- **history**: finished streams of 1,000 events each, `--events` in all (100,000 by default),
  kept by one hub; the objects the collector tracks per kept event (`gc.get_objects()` before
  and after), and the CPU time of a full `gc.collect()` with and without them (median of 5).
- **writer**: events appended one by one to a fresh store from this thread, paced at 1,000 a
  second to one run, 10,000 to one run, and 10,000 spread over 10,000 runs (one event a second
  each, as 10,000 live streams send them), for a few seconds; the CPU time of every other thread
  of the process (the writer's) per event, and the share of the wall time it was busy.

With `--server-root` the figures are those of another checkout's `app/` (imported as
`taskcast` through a link, as `bench.run` does for its servers), for a before and after.
Nothing here is a test: it prints figures, it checks none.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

EVENTS_PER_STREAM = 1000


def history(total: int) -> dict[str, float]:
    from taskcast.hub.hub import Hub

    streams = max(1, total // EVENTS_PER_STREAM)
    gc.collect()
    empty = statistics.median(timed_collect() for _ in range(5))
    before = len(gc.get_objects())
    hub = Hub(kept_streams=streams)
    for number in range(streams):
        stream_id = f"stream-{number}"
        hub.open(stream_id, f"run-{number}")
        for index in range(EVENTS_PER_STREAM):
            hub.publish(stream_id, f'"<li>item {number}.{index}</li>"')
        hub.close(stream_id, "success")
    gc.collect()
    kept = sum(len(stream) for stream in hub)
    tracked = len(gc.get_objects()) - before
    full = statistics.median(timed_collect() for _ in range(5))
    return {
        "kept": kept,
        "tracked_per_event": tracked / kept,
        "collect_ms": full * 1e3,
        "collect_empty_ms": empty * 1e3,
    }


def timed_collect() -> float:
    """CPU seconds of one full collection (this thread's: other load on the machine aside)."""
    began = time.thread_time()
    gc.collect()
    return time.thread_time() - began


def other_threads_cpu() -> float:
    """CPU seconds of this process's threads other than the main one (from schedstat, in ns)."""
    total = 0
    for tid in os.listdir("/proc/self/task"):
        if int(tid) == os.getpid():
            continue
        try:
            total += int(Path(f"/proc/self/task/{tid}/schedstat").read_text().split()[0])
        except OSError:  # the thread ended meanwhile
            continue
    return total / 1e9


def writer(rate: int, runs: int, seconds: float) -> dict[str, float]:
    """Append `rate` events a second, spread over `runs` runs in turn, for `seconds`."""
    from taskcast.store.store import Store

    with tempfile.TemporaryDirectory() as folder:
        store = Store(os.path.join(folder, "bench.sqlite3"))
        store.open()
        try:
            text = '{"t":12345.678901,"html":"<li>item 12</li>"}'
            run_ids = [f"run-{number}" for number in range(runs)]
            count = int(rate * seconds)
            cpu_before = other_threads_cpu()
            began = time.monotonic()
            for index in range(count):
                store.append_events(run_ids[index % runs], index // runs + 1, [text])
                delay = began + (index + 1) / rate - time.monotonic()
                if delay > 0.001:  # sleep in whole milliseconds: the events of one go together
                    time.sleep(delay)
            store.flush(60.0)
            wall = time.monotonic() - began
            cpu = other_threads_cpu() - cpu_before
        finally:
            store.close()
    return {"us_per_event": cpu * 1e6 / count, "busy": cpu / wall}


def measure(total: int, seconds: float) -> None:
    import taskcast

    print(f"taskcast from {Path(taskcast.__file__).parent}", flush=True)
    print("## history", flush=True)
    figures = history(total)
    print(
        f"{figures['kept']:,} kept events: {figures['tracked_per_event']:.2f} tracked objects per "
        f"event; full gc.collect() {figures['collect_ms']:.1f} ms "
        f"(without them {figures['collect_empty_ms']:.1f} ms)",
        flush=True,
    )
    print("## writer", flush=True)
    for rate, streams in ((1000, 1), (10_000, 1), (10_000, 10_000)):
        runs = [writer(rate, streams, seconds) for _ in range(3)]
        per_event = statistics.median(run["us_per_event"] for run in runs)
        busy = statistics.median(run["busy"] for run in runs)
        print(
            f"{rate:,} events/s over {streams:,} runs: writer thread {per_event:.2f} µs CPU per "
            f"event, busy {busy:.1%} (median of 3 runs of {seconds:g} s)",
            flush=True,
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server-root", type=Path, help="measure this checkout's app/")
    parser.add_argument("--events", type=int, default=100_000, help="kept events in all")
    parser.add_argument("--seconds", type=float, default=3.0, help="length of a writer run")
    args = parser.parse_args()
    if args.server_root is None:
        measure(args.events, args.seconds)
        return 0
    with tempfile.TemporaryDirectory() as folder:
        # The same link as bench.run's servers: that checkout's app/ is the package taskcast.
        (Path(folder) / "taskcast").symlink_to(args.server_root.resolve() / "app")
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([folder, os.getcwd()]))
        argv = [sys.executable, "-m", "bench.history_gc", "--events", str(args.events)]
        argv += ["--seconds", str(args.seconds)]
        return subprocess.run(argv, env=env, check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
