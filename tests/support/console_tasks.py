"""Registered tasks for the console and API tests (loaded with task_modules)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from taskcast.publish import CommunicationBasePublisher, publish
from taskcast.registry import register

IMPORTED_BY_REQUEST: list[str] = []


@register
def multiply(a: int, b: int = 2) -> int:
    """Multiply two whole numbers.

    The second line of the docstring is not shown.
    """
    return a * b


@register(name="greet")
async def say_hello(name: str, shout: bool = False, times: float = 1.0) -> str:
    """Greet someone."""
    text = f"hello {name}"
    return text.upper() if shout else text


@publish("rows")
async def count_rows(
    cproxy: CommunicationBasePublisher | None = None,
    rows: int = 5,
    delay: float = 0.01,
    **kwargs: Any,
) -> int:
    """Work through rows, reporting progress."""
    if cproxy:
        cproxy.send_event("<ol class='data'></ol>")
    for row in range(1, rows + 1):
        await asyncio.sleep(delay)
        if cproxy:
            cproxy.send_event(f"<li>row {row}</li>===>>.data")
            cproxy.progress(row, rows, "rows")
    return rows


@register
def slow(seconds: float = 30.0) -> str:
    """Sleep in a worker process (for cancelling)."""
    time.sleep(seconds)
    return "done"


@register
async def slow_async(seconds: float = 30.0) -> str:
    """Sleep on the loop (for cancelling)."""
    await asyncio.sleep(seconds)
    return "done"


def not_registered() -> str:
    return "never started over HTTP"
