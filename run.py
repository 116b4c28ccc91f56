"""Start a Taskcast server: `python run.py [--host H] [--port P] [--db PATH] ...`."""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os

from aiohttp import web

from app import create_app

logger = logging.getLogger("taskcast")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Run the Taskcast server.")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    parser.add_argument("--db", default="data/taskcast.sqlite3", help="SQLite file, or :memory:")
    parser.add_argument(
        "--workers", type=int, default=os.cpu_count() or 2, help="process-pool workers"
    )
    parser.add_argument(
        "--tasks",
        action="append",
        default=None,
        metavar="MODULE",
        help="task module to load (repeatable; default: tasks)",
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
        "--shutdown-grace",
        type=float,
        default=5.0,
        help="seconds running tasks get to finish on SIGTERM/Ctrl-C before they are cancelled",
    )
    parser.add_argument(
        "--timezone",
        default=None,
        metavar="ZONE",
        help="IANA time zone for schedules, e.g. Europe/Warsaw (default: the server's own)",
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


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(
        level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    warn_if_exposed(args.host, args.token)
    app = create_app(
        database=args.db,
        process_workers=args.workers,
        task_modules=tuple(args.tasks or ["tasks"]),
        auth_token=args.token or None,
        allowed_origins=tuple(args.allowed_origin),
        shutdown_grace=args.shutdown_grace,
        timezone=args.timezone,
    )
    web.run_app(
        app,
        host=args.host,
        port=args.port,
        # The tasks' grace starts with the shutdown, so connections get the same time to drain.
        shutdown_timeout=args.shutdown_grace,
        print=lambda _: logger.info("serving on http://%s:%d/", args.host, args.port),
    )


if __name__ == "__main__":
    main()
