"""How much each part of the benchmark does: the full run and the quick one (CI's smoke test)."""

from __future__ import annotations

import dataclasses


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
    latency_rounds: int = 5  # paced runs per server, alternating; CPU summed over them
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
    latency_rounds=1,
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
