"""Settings: every knob of a Taskcast server in one frozen dataclass."""

from __future__ import annotations

import dataclasses
import os
import urllib.parse
from typing import Any


def _cpu_count() -> int:
    return os.cpu_count() or 2


#: the URL schemes of the Redis engine
REDIS_SCHEMES = ("redis", "rediss", "unix")


def check_engine(engine: str) -> None:
    """`engine` is "memory" or a Redis URL with a host or a socket path, else ValueError."""
    if engine == "memory":
        return
    parsed = urllib.parse.urlsplit(engine) if isinstance(engine, str) else None
    if parsed is None or parsed.scheme not in REDIS_SCHEMES:
        raise ValueError(
            f"engine must be 'memory' or a Redis URL (redis://host:port/db, rediss://..., "
            f"unix:///path/to/redis.sock), not {engine!r}"
        )
    if parsed.scheme == "unix" and not parsed.path:
        raise ValueError(f"engine {engine!r} names no socket path (unix:///path/to/redis.sock)")
    if parsed.scheme != "unix" and not parsed.hostname:
        raise ValueError(f"engine {engine!r} names no host (redis://host:port/db)")


@dataclasses.dataclass(frozen=True, slots=True)
class Settings:
    """What `create_app(**settings)` accepts. Every field has a default that suits `python run.py`."""

    #: SQLite file (created with its folder if missing); ":memory:" keeps nothing across restarts
    database: str = "data/taskcast.sqlite3"
    #: dotted module names imported at startup (their @publish/@register functions become known)
    task_modules: tuple[str, ...] = ()
    #: process-pool workers for plain `def` tasks, each a single-worker executor of its own
    process_workers: int = dataclasses.field(default_factory=_cpu_count)
    #: threads for tasks marked `executor="thread"`: at most this many thread tasks run at once
    thread_workers: int = 8
    #: async tasks that may run at once; the rest wait as `queued`, first in first out. An async
    #: task costs a few KiB while it awaits, so thousands are fine (process tasks are bounded by
    #: process_workers, thread tasks by thread_workers)
    max_async_tasks: int = 10_000
    #: how many tasks may run at once, all kinds together, on top of each kind's own limit;
    #: None: only the kinds' limits
    max_concurrency: int | None = None
    #: seconds a task may run before it is stopped as `timed_out`; None: no limit (per task: `timeout=`)
    default_timeout: float | None = None
    #: seconds a cancelled process or thread task gets to stop on its own before its worker is killed
    cancel_grace: float = 2.0
    #: multiprocessing start method of the workers: "forkserver" or "spawn" ("fork" is unsafe beside threads)
    start_method: str = "forkserver"
    #: dotted path of a function each worker process calls once at start (e.g. to set up Django)
    worker_initializer: str | None = None
    #: seconds a new worker process, worker_initializer included, may take to be ready; one that
    #: takes longer is killed and its start counts as failed (the pool tries again later)
    worker_start_timeout: float = 60.0
    #: history kept per stream in memory and in the store: at most this many events ...
    history_max_events: int = 10_000
    #: ... and at most this many bytes of event data
    history_max_bytes: int = 8 * 1024 * 1024
    #: the first events of a stream are kept (they usually build the page's containers), within
    #: half of history_max_bytes
    history_keep_head: int = 20
    #: finished streams kept in memory for late subscribers (older ones are replayed from the store)
    kept_streams: int = 500
    #: events waiting for one subscriber before it counts as too slow and is disconnected to resume
    subscriber_max_pending: int = 10_000
    #: ... or bytes of event data waiting for it (one event larger than this still reaches a
    #: reader with nothing waiting)
    subscriber_max_bytes: int = 16 * 1024 * 1024
    #: seconds an event that closely follows another to the same page may wait, so that a burst
    #: leaves in one write instead of one per event; an event that comes alone leaves at once; 0:
    #: every event at once
    write_window: float = 0.0005
    #: Django Q's save_limit: successful tasks kept in the store (0: all, -1: none); failures are kept
    save_limit: int = 250
    #: largest result (pickled) the store accepts, in bytes
    max_result_bytes: int = 16 * 1024 * 1024
    #: seconds between the channel's websocket pings; a peer that misses a pong is dropped
    channel_heartbeat: float = 30.0
    #: origins besides the server's own that may open the websocket channel
    allowed_origins: tuple[str, ...] = ()
    #: host names the server answers to besides loopback names and address literals (against
    #: DNS rebinding; a port is ignored); "*" answers to any name. Other names get 421
    allowed_hosts: tuple[str, ...] = ()
    #: shared secret that turns authentication on (API: `Authorization: Bearer`, pages: login
    #: form and signed cookie, channel: either); None leaves the server open, as for 127.0.0.1
    auth_token: str | None = None
    #: seconds a browser session of the token login lasts; it also ends on sign-out and restart
    session_seconds: float = 7 * 24 * 3600
    #: browser sessions kept at once; opening one more ends the oldest (and logs it)
    max_sessions: int = 10_000
    #: largest request body the HTTP API accepts, in bytes
    max_body_bytes: int = 256 * 1024
    #: IANA time zone in which schedules compute their next run; None: the server's local zone
    timezone: str | None = None
    #: run the scheduler (schedules are stored either way)
    scheduler: bool = True
    #: seconds the event loop may be blocked before the watchdog logs which task blocked it
    loop_block_warning: float = 0.5
    #: tune the garbage collector once the server has started: set `gc_thresholds` and freeze
    #: what was built at start-up (`gc.freeze()`), so full collections skip it; undone at
    #: cleanup. None: yes for a server of its own (`create_app`, the `taskcast` command), no
    #: when embedded with `setup()`, where the host application's own choice stands
    gc_tuning: bool | None = None
    #: the collector's thresholds (generation 0, 1, 2) while `gc_tuning` is on; see
    #: docs/operations.md for why these figures
    gc_thresholds: tuple[int, int, int] = (10_000, 5, 100)
    #: seconds running tasks get to finish at shutdown before they are cancelled
    shutdown_grace: float = 5.0
    #: where nodes meet: "memory" (one process, nothing beside it), or a Redis URL
    #: (redis://host:port/db, rediss:// with TLS, unix:///path/redis.sock?db=N) that every node
    #: of a cluster is given; see docs/scale-out.md
    engine: str = "memory"
    #: on the Redis engine, seconds a finished stream's history stays in Redis for late
    #: subscribers on any node (a stream still running never expires)
    stream_expiry: float = 3600.0

    def __post_init__(self) -> None:
        if self.process_workers < 1:
            raise ValueError(f"process_workers must be at least 1, not {self.process_workers}")
        if self.thread_workers < 1:
            raise ValueError(f"thread_workers must be at least 1, not {self.thread_workers}")
        if self.max_async_tasks < 1:
            raise ValueError(f"max_async_tasks must be at least 1, not {self.max_async_tasks}")
        if self.max_concurrency is not None and self.max_concurrency < 1:
            raise ValueError(
                f"max_concurrency must be at least 1 (or None: no overall limit), "
                f"not {self.max_concurrency}"
            )
        if (
            not isinstance(self.gc_thresholds, tuple)
            or len(self.gc_thresholds) != 3
            or not all(isinstance(n, int) and n >= 1 for n in self.gc_thresholds)
        ):
            raise ValueError(
                "gc_thresholds must be three whole numbers of at least 1 (generations 0, 1, 2), "
                f"not {self.gc_thresholds!r}"
            )
        if self.start_method not in ("forkserver", "spawn"):
            raise ValueError(
                f"start_method must be 'forkserver' or 'spawn', not {self.start_method!r}"
            )
        if self.history_max_events < self.history_keep_head + 1:
            raise ValueError("history_max_events must exceed history_keep_head")
        if isinstance(self.task_modules, str):
            raise TypeError("task_modules is a sequence of names, not one string")
        if not 0 < self.channel_heartbeat < float("inf"):
            # The heartbeat's sweeps come every ten-thousandth of it: zero would never stop.
            raise ValueError(
                f"channel_heartbeat must be a positive number of seconds, "
                f"not {self.channel_heartbeat}"
            )
        if not 0 <= self.write_window <= 1:
            raise ValueError(
                f"write_window must be between 0 and 1 second, not {self.write_window}"
            )
        if isinstance(self.allowed_hosts, str):
            raise TypeError("allowed_hosts is a sequence of names, not one string")
        if self.session_seconds <= 0 or self.max_sessions < 1:
            raise ValueError("session_seconds must be positive and max_sessions at least 1")
        if self.worker_start_timeout <= 0:
            raise ValueError(
                f"worker_start_timeout must be positive, not {self.worker_start_timeout}"
            )
        if self.default_timeout is not None and self.default_timeout <= 0:
            raise ValueError(f"default_timeout must be positive, not {self.default_timeout}")
        check_engine(self.engine)
        if self.stream_expiry < 1:
            raise ValueError(f"stream_expiry must be at least 1 second, not {self.stream_expiry}")

    @classmethod
    def build(cls, settings: Settings | None = None, **overrides: Any) -> Settings:
        """Merge keyword overrides into `settings` (or the defaults), naming any unknown keyword."""
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise TypeError(
                f"unknown setting(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        if isinstance(overrides.get("gc_thresholds"), list):
            overrides["gc_thresholds"] = tuple(overrides["gc_thresholds"])
        for name in ("task_modules", "allowed_origins", "allowed_hosts"):
            if name in overrides:
                if isinstance(overrides[name], str):
                    raise TypeError(f"{name} is a sequence of names, not one string")
                overrides[name] = tuple(overrides[name])
        base = settings if settings is not None else cls()
        return dataclasses.replace(base, **overrides)
