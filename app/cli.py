"""The `taskcast` command (also `python -m taskcast` and `python run.py` in a checkout).

Task modules named with `--tasks` are imported from the current directory, as uvicorn and
celery find an application: the folder the server is started in is put first on `sys.path`.
Every default comes from `Settings`, so the flags and `create_app()` never disagree.
"""

from __future__ import annotations

import argparse
import importlib
import ipaddress
import logging
import os
import sys

from taskcast.settings import Settings

#: connections the kernel queues before the server accepts them (capped by net.core.somaxconn)
#: seconds above which aiohttp may round a connection's timers to whole seconds
TIMER_ROUNDING_ABOVE = 3600.0
LISTEN_BACKLOG = 4096

logger = logging.getLogger("taskcast")

DEFAULTS = Settings()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="taskcast",
        description="Run the Taskcast server: the task console, its API and the Pytigon channel.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    parser.add_argument(
        "--db",
        default=DEFAULTS.database,
        help=f"SQLite file, or :memory: (default {DEFAULTS.database})",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=DEFAULTS.process_workers,
        help="process-pool workers (default: the CPU count)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=DEFAULTS.thread_workers,
        help=f"threads for thread tasks: at most this many run at once "
        f"(default {DEFAULTS.thread_workers})",
    )
    parser.add_argument(
        "--max-async",
        type=int,
        default=DEFAULTS.max_async_tasks,
        metavar="N",
        help=f"async tasks that may run at once; the rest wait as queued "
        f"(default {DEFAULTS.max_async_tasks:,})",
    )
    parser.add_argument(
        "--max-concurrency",
        type=int,
        default=DEFAULTS.max_concurrency,
        metavar="N",
        help="tasks of all kinds that may run at once, on top of each kind's own limit "
        "(default: no such limit)",
    )
    parser.add_argument(
        "--tasks",
        action="append",
        default=None,
        metavar="MODULE",
        help="task module to load from the current directory (repeatable; default: tasks)",
    )
    parser.add_argument(
        "--token",
        default=os.environ.get("TASKCAST_TOKEN"),
        help="shared access token (default: $TASKCAST_TOKEN); without one the server is open",
    )
    parser.add_argument(
        "--allowed-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="another origin whose pages may use the server (repeatable)",
    )
    parser.add_argument(
        "--allowed-host",
        action="append",
        default=[],
        metavar="NAME",
        help="a host name the server answers to besides localhost and IP addresses, e.g. "
        "tasks.example.org (repeatable; * answers to any name)",
    )
    parser.add_argument(
        "--shutdown-grace",
        type=float,
        default=DEFAULTS.shutdown_grace,
        help="seconds running tasks get to finish on SIGTERM/Ctrl-C before they are cancelled",
    )
    parser.add_argument(
        "--timezone",
        default=DEFAULTS.timezone,
        metavar="ZONE",
        help="IANA time zone for schedules, e.g. Europe/Warsaw (default: the server's own)",
    )
    parser.add_argument(
        "--engine",
        default=DEFAULTS.engine,
        metavar="URL",
        help="where the nodes of a cluster meet: a Redis URL (redis://host:6379/0, rediss://..., "
        "unix:///run/redis.sock) given to every node; default: memory (this process alone)",
    )
    parser.add_argument("--log-level", default="INFO")
    return parser.parse_args(argv)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def warn_if_exposed(host: str, token: str | None) -> bool:
    """Log a clear warning when the server is reachable from elsewhere without a token."""
    if is_loopback(host) or token:
        return False
    logger.warning(
        "binding to %s without a token: anyone who can reach this address may start and "
        "cancel tasks. Set --token or TASKCAST_TOKEN.",
        host,
    )
    return True


def allowed_hosts(bind: str, names: list[str]) -> tuple[str, ...]:
    """The names from --allowed-host, plus the bound name when it is one (not an address):
    the server answers to the name it was started on."""
    try:
        ipaddress.ip_address(bind)
    except ValueError:
        if bind and not is_loopback(bind) and bind not in names:
            return (*names, bind)
    return tuple(names)


def serving_lines(host: str, port: int) -> list[str]:
    """What the command prints once it serves: where to open the console and the demo page.

    A server bound to every address is opened on the loopback one; an IPv6 address is
    bracketed, as URLs write it."""
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    shown = f"[{host}]" if ":" in host else host
    root = f"http://{shown}:{port}/"
    return [f"Taskcast console: {root}", f"Demo page:         {root}demo"]


def find_modules_here() -> None:
    """Put the current directory first on `sys.path`, so `--tasks tasks` finds ./tasks.py.

    Process workers inherit `sys.path`, so they find the same modules.
    """
    here = os.getcwd()
    if here not in sys.path:
        sys.path.insert(0, here)


def import_task_modules(names: list[str]) -> None:
    """Import the task modules now, so one that is not there ends the command with one clear
    line (where it was looked for, what to do) rather than a traceback from deep in the app.

    An import that fails inside a task module keeps its traceback: it shows the line to mend.
    """
    for name in names:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name is None or not (name == exc.name or name.startswith(f"{exc.name}.")):
                raise
            raise SystemExit(
                f"taskcast: no task module {name!r} in {os.getcwd()}. Start taskcast in the "
                "folder that holds your task modules, or name them with --tasks MODULE."
            ) from None


#: the flags whose values the settings check, by the setting they set
CHECKED_FLAGS = {
    "process_workers": ("--workers", "workers"),
    "thread_workers": ("--threads", "threads"),
    "max_async_tasks": ("--max-async", "max_async"),
    "max_concurrency": ("--max-concurrency", "max_concurrency"),
    "shutdown_grace": ("--shutdown-grace", "shutdown_grace"),
    "engine": ("--engine", "engine"),
}


def checked_settings(args: argparse.Namespace) -> Settings:
    """The settings the numeric flags give, or one line that names the flag that is wrong."""
    values = {name: getattr(args, attribute) for name, (_, attribute) in CHECKED_FLAGS.items()}
    try:
        return Settings(**values)
    except ValueError as exc:
        text = str(exc)
        for name, (flag, _) in CHECKED_FLAGS.items():
            if text.startswith(name):
                text = f"{flag}: {text}"
                break
        raise SystemExit(f"taskcast: {text}") from None


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    settings = checked_settings(args)
    logging.basicConfig(
        level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    find_modules_here()
    task_modules = args.tasks or ["tasks"]
    import_task_modules(task_modules)
    warn_if_exposed(args.host, args.token)
    # aiohttp.web is imported here, not at the top: workers that import this module need none of it.
    from aiohttp import web

    from taskcast.web.factory import create_app

    app = create_app(
        settings,
        database=args.db,
        task_modules=tuple(task_modules),
        auth_token=args.token or None,
        allowed_origins=tuple(args.allowed_origin),
        allowed_hosts=allowed_hosts(args.host, args.allowed_host),
        timezone=args.timezone,
    )
    web.run_app(
        app,
        host=args.host,
        port=args.port,
        # The tasks' grace starts with the shutdown, so connections get the same time to drain.
        shutdown_timeout=args.shutdown_grace,
        # aiohttp's default backlog of 128 drops the SYNs of a crowd of browsers connecting at
        # once (after a restart, say), and each dropped one retries only 1, 3, 7, 15, 31 s later.
        backlog=LISTEN_BACKLOG,
        # aiohttp rounds a timer longer than this up to a whole second, so that the timers of
        # connections opened in the same second (thousands, after a restart: keep-alive, the
        # console's heartbeats) would all fire in one turn of the loop and stall it; below an
        # hour, each fires when it is due. The channel's heartbeat is Taskcast's own.
        timeout_ceil_threshold=TIMER_ROUNDING_ABOVE,
        # Printed, not logged, so they show whatever the log level; on stderr with the log,
        # as stdout may be a program's channel (tests.soak.remote speaks JSON on it).
        print=lambda _: print(
            "\n".join(serving_lines(args.host, args.port)), file=sys.stderr, flush=True
        ),
    )
