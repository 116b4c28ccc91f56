"""Where a paced event's server CPU goes, with the network and the client left out:
`python -m bench.paced_share [--server-root CHECKOUT] [--rounds N] [--seconds S]`.

One process publishes 1,000 events a second to 50 subscribers whose sockets are socket pairs
drained by a child process, in four ways, one after the other in each round:

- **ceiling**: the ceiling server's way, each event framed once and written to every transport;
- **hub**: Taskcast's hub, the subscribers idle in their stream's direct table behind the
  channel's `SocketSink`;
- **events**: the same through a run's `RunEvents.emit`, the store told not to save the run;
- **stored**: the same with the run saved, as every task's events are by default.

Each way runs in a fresh interpreter. It prints the CPU time (from `/proc/<pid>/task/*/schedstat`,
in nanoseconds) of the publishing thread and of every other thread (the store's writer) per
event, and how often those other threads woke (each wake-up of a thread costs CPU of its own),
the median over the rounds. The events are paced, as in the bench's paced rows: between
two events the thread sleeps, and the work of each runs from cold caches, which is why these
figures are several times those of the same work in a tight loop.

With `--server-root` the figures are those of another checkout's `app/`, for a before and after.
Nothing here is a test: it prints figures, it checks none.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import select
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

WAYS = ("ceiling", "hub", "events", "stored")
SUBSCRIBERS = 50
RATE = 1000
PAYLOAD = '"<p>d1796610000000000 12345678901234567890</p>"'


class _Quiet(asyncio.Protocol):
    def data_received(self, data: bytes) -> None:
        pass  # the subscribers' sockets send nothing


def _drain(sockets: list[socket.socket]) -> None:
    """Read the subscribers' ends until killed (in a child process: no GIL shared)."""
    while True:
        readable, _, _ = select.select(sockets, [], [], 1.0)
        for sock in readable:
            try:
                sock.recv(1 << 20)
            except BlockingIOError:
                pass


def _schedstat(tid: int) -> tuple[float, int]:
    """Seconds a thread of this process has run, and the times it was given a CPU (each
    wake-up of a thread that sleeps is one)."""
    with open(f"/proc/self/task/{tid}/schedstat") as stat:
        ran_ns, _, slices = stat.read().split()
    return int(ran_ns) / 1e9, int(slices)


def _sum(stats: list[tuple[float, int]]) -> tuple[float, int]:
    return sum(ran for ran, _ in stats), sum(slices for _, slices in stats)


def _text_frame(text: str) -> bytes:
    payload = text.encode()
    size = len(payload)
    if size < 126:
        return bytes((0x81, size)) + payload
    return struct.pack("!BBH", 0x81, 126, size) + payload


async def _publisher(
    way: str,
    transports: list[asyncio.Transport],
    keep: set[asyncio.Task[None]],
    cleanup: contextlib.ExitStack,
) -> Callable[[], None]:
    """How one event is published in `way`, its subscribers idle and waiting (their consumers'
    tasks kept in `keep`)."""
    if way == "ceiling":
        seq = 0

        def ceiling() -> None:
            nonlocal seq
            seq += 1
            frame = _text_frame(f'{{"status":"event","data":{PAYLOAD},"seq":{seq}}}')
            for transport in transports:
                transport.write(frame)

        return ceiling
    from taskcast.hub.hub import Hub, Subscription
    from taskcast.runtime.events import RunEvents
    from taskcast.store.store import Store
    from taskcast.web.socket_sink import ChannelSocket, SocketSink

    hub = Hub()
    events: RunEvents | None = None
    if way == "hub":
        hub.open("bench__paced", "run1")
    else:
        workdir = cleanup.enter_context(tempfile.TemporaryDirectory())
        store = Store(os.path.join(workdir, "paced.sqlite3"))
        store.open()
        cleanup.callback(store.close)
        events = RunEvents(hub, store, "run1", "bench__paced", way == "stored", "bench.paced")
        events.open()

    async def consume(subscription: Subscription) -> None:
        while await subscription.next_batch():
            pass

    for transport in transports:
        # The sink only needs a socket to note itself on: no websocket is opened here.
        sink = SocketSink(ChannelSocket(), transport)
        subscription = hub.subscribe("bench__paced", sink=sink)
        keep.add(asyncio.get_running_loop().create_task(consume(subscription)))
    await asyncio.sleep(0.05)  # every consumer waits: the subscribers are in the direct table

    def publish() -> None:
        if events is not None:
            events.emit(PAYLOAD)
        else:
            hub.publish("bench__paced", PAYLOAD)

    return publish


async def _measure(
    way: str, seconds: float, sockets: list[socket.socket]
) -> tuple[float, float, float]:
    loop = asyncio.get_running_loop()
    transports: list[asyncio.Transport] = []
    for sock in sockets:
        transport, _ = await loop.connect_accepted_socket(_Quiet, sock)
        transports.append(transport)  # type: ignore[arg-type]
    consumers: set[asyncio.Task[None]] = set()
    with contextlib.ExitStack() as cleanup:  # the store and its folder, once measured
        publish = await _publisher(way, transports, consumers, cleanup)
        me = threading.get_native_id()
        others = [int(tid) for tid in os.listdir("/proc/self/task") if int(tid) != me]
        total = int(RATE * seconds)
        mine, theirs = _schedstat(me)[0], _sum([_schedstat(tid) for tid in others])
        began = time.monotonic()
        for index in range(total):
            delay = began + index / RATE - time.monotonic()
            await asyncio.sleep(delay if delay > 0 else 0)
            publish()
        others = [int(tid) for tid in os.listdir("/proc/self/task") if int(tid) != me]
        now = _sum([_schedstat(tid) for tid in others])
        return (
            (_schedstat(me)[0] - mine) / total * 1e6,
            (now[0] - theirs[0]) / total * 1e6,
            (now[1] - theirs[1]) / seconds,
        )


def _one(way: str, seconds: float) -> None:
    """Run in a child interpreter: print the two figures."""
    pairs = [socket.socketpair() for _ in range(SUBSCRIBERS)]
    child = os.fork()  # before any thread starts
    if child == 0:
        try:
            _drain([far for _, far in pairs])
        finally:
            os._exit(0)
    try:
        for _, far in pairs:
            far.close()
        loop_us, other_us, wakes = asyncio.run(_measure(way, seconds, [near for near, _ in pairs]))
    finally:
        os.kill(child, 9)
        os.waitpid(child, 0)
    print(f"{loop_us:.2f} {other_us:.2f} {wakes:.1f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.paced_share", description=__doc__)
    parser.add_argument("--server-root", type=Path, default=None, help="another checkout")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--way", choices=WAYS, help=argparse.SUPPRESS)  # one child's run
    args = parser.parse_args(argv)
    if args.rounds < 1 or not 0 < args.seconds < 3600:
        parser.error("--rounds must be at least 1 and --seconds between 0 and 3600")
    if args.way:
        _one(args.way, args.seconds)
        return 0
    env = dict(os.environ)
    figures: dict[str, list[tuple[float, float, float]]] = {way: [] for way in WAYS}
    with tempfile.TemporaryDirectory() as shim:
        if args.server_root is not None:
            (Path(shim) / "taskcast").symlink_to(args.server_root.resolve() / "app")
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [shim, env.get("PYTHONPATH")]))
        for _ in range(args.rounds):
            for way in WAYS:
                command = [sys.executable, "-m", "bench.paced_share", "--way", way]
                command += ["--seconds", str(args.seconds)]
                out = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
                loop_us, other_us, wakes = map(float, out.stdout.split())
                figures[way].append((loop_us, other_us, wakes))
    print(
        f"{RATE} events/s to {SUBSCRIBERS} subscribers, {args.seconds:g} s, median of "
        f"{args.rounds} rounds: CPU µs per event, and the other threads' wake-ups a second"
    )
    print("| way | publishing thread | other threads | sum | / ceiling | their wake-ups/s |")
    print("|---|---|---|---|---|---|")
    ceiling = statistics.median(loop + other for loop, other, _ in figures["ceiling"])
    for way in WAYS:
        runs = figures[way]
        loop_us = statistics.median(loop for loop, _, _ in runs)
        other_us = statistics.median(other for _, other, _ in runs)
        both = statistics.median(loop + other for loop, other, _ in runs)
        wakes = statistics.median(wakes for _, _, wakes in runs)
        print(
            f"| {way} | {loop_us:.1f} | {other_us:.1f} | {both:.1f} | {both / ceiling:.2f}x "
            f"| {wakes:.0f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
