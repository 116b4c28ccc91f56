"""Start a Taskcast server: `python run.py [--host H] [--port P] [--db PATH] ...`."""

from __future__ import annotations

import argparse
import logging
import os

from aiohttp import web

from app import create_app


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Run the Taskcast server.")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    parser.add_argument("--db", default="data/taskcast.sqlite3", help="SQLite file, or :memory:")
    parser.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 2,
        help="process-pool workers for plain def tasks",
    )
    parser.add_argument(
        "--tasks",
        action="append",
        default=None,
        metavar="MODULE",
        help="task module to load (repeatable; default: tasks)",
    )
    parser.add_argument("--log-level", default="INFO")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(
        level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    app = create_app(
        database=args.db, process_workers=args.workers, task_modules=tuple(args.tasks or ["tasks"])
    )
    web.run_app(
        app,
        host=args.host,
        port=args.port,
        print=lambda _: logging.getLogger("taskcast").info(
            "serving on http://%s:%d/", args.host, args.port
        ),
    )


if __name__ == "__main__":
    main()
