"""Screenshots of the console for the README, made from the real app in Debian's chromium.

Starts `create_app` with the example tasks of `tasks.py` on a free 127.0.0.1 port and a
temporary database, runs a few of them (finished, failed, running), and saves the task list and
a task page, on a desktop in light mode and on a phone in dark mode, as PNGs:

    .venv/bin/python scripts/screenshots.py [FOLDER]    # default: docs/screenshots/
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the example tasks (tasks.py) and the test support live here

from aiohttp.test_utils import TestServer  # noqa: E402
from playwright.async_api import async_playwright  # noqa: E402

from taskcast.records import TaskStatus  # noqa: E402
from taskcast.runtime.runner import Runner  # noqa: E402
from taskcast.spec import build_spec  # noqa: E402
from taskcast.web.factory import create_app  # noqa: E402
from taskcast.web.keys import RUNNER  # noqa: E402
from tests.support.chromium import CHROMIUM, CHROMIUM_ARGS  # noqa: E402

#: (file name, viewport, colour scheme)
SHOTS = (
    ("desktop-light", {"width": 1280, "height": 800}, "light"),
    ("phone-dark", {"width": 390, "height": 844}, "dark"),
)
WAIT_S = 30.0


async def until(runner: Runner, task_id: str, *statuses: TaskStatus) -> None:
    deadline = time.monotonic() + WAIT_S
    while (record := runner.get(task_id)) is None or record.status not in statuses:
        if time.monotonic() > deadline:
            raise RuntimeError(f"task {task_id} did not reach {statuses} in {WAIT_S} s")
        await asyncio.sleep(0.05)


async def run_examples(runner: Runner) -> str:
    """A few example tasks in different states; the id of the finished one with output."""

    def start(func: str, **kwargs: Any) -> str:
        return runner.submit(build_spec(f"tasks.{func}", (), kwargs))

    tour = start("mini_language_tour", task_publish_id="welcome", pause=0.05)
    countdown = start("async_countdown", task_publish_id="launch", start=3, delay=0.05)
    rows = start("count_rows", task_publish_id="january", rows=12, delay=0.05)
    # fails: a count that is not a number
    broken = start("count_rows", task_publish_id="february", rows="twelve")
    for task_id in (tour, countdown, rows, broken):
        await until(runner, task_id, TaskStatus.SUCCESS, TaskStatus.FAILED)
    running = start("count_rows", task_publish_id="march", rows=600, delay=0.1)
    await until(runner, running, TaskStatus.RUNNING)
    return rows


async def take(folder: Path, database: Path) -> list[Path]:
    """Serve the app on `database`, run the examples, save the PNGs into `folder` (it exists)."""
    saved = []
    app = create_app(
        database=str(database),
        task_modules=("tasks",),
        process_workers=2,
        shutdown_grace=0.5,
        cancel_grace=0.5,
    )
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        task_id = await run_examples(app[RUNNER])
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(
                executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
            )
            for name, viewport, scheme in SHOTS:
                context = await browser.new_context(
                    base_url=str(server.make_url("/")),
                    viewport=viewport,  # type: ignore[arg-type]
                    color_scheme=scheme,  # type: ignore[arg-type]
                )
                page = await context.new_page()
                for what, path in (("tasks", "/"), ("task", f"/tasks/{task_id}")):
                    await page.goto(path)
                    await page.wait_for_load_state("load")
                    if what == "task":
                        await page.wait_for_selector("ptig-task[finished]", state="attached")
                    target = folder / f"{what}-{name}.png"
                    await page.screenshot(path=str(target))
                    saved.append(target)
                await context.close()
            await browser.close()
    finally:
        await server.close()
    return saved


def main() -> None:
    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as data:
        saved = asyncio.run(take(folder, Path(data) / "taskcast.sqlite3"))
    for path in saved:
        print(f"{path} ({path.stat().st_size // 1024} KiB)")


if __name__ == "__main__":
    main()
