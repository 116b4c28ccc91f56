"""Registered tasks for the task page's tests (loaded with task_modules)."""

from __future__ import annotations

import asyncio
from typing import Any

from taskcast.publish import CommunicationBasePublisher, publish
from taskcast.registry import register


@publish("steps")
async def steps(
    cproxy: CommunicationBasePublisher | None = None,
    count: int = 3,
    fail: bool = False,
    delay: float = 0.0,
    label: str = "",
    **kwargs: Any,
) -> int:
    """Log numbered steps with progress, then fail or succeed."""
    if cproxy:
        cproxy.send_event("<ol class='data'></ol>")
    for step in range(1, count + 1):
        if delay:
            await asyncio.sleep(delay)
        if cproxy:
            cproxy.send_event(f"<li>{label}step {step}</li>===>>.data")
            cproxy.progress(step, count, "steps")
    if fail:
        raise ValueError(f"step {count} went wrong")
    return count


@register
async def hold(seconds: float = 30.0) -> str:
    """Wait on the loop (for cancelling, and for keeping the only slot busy)."""
    await asyncio.sleep(seconds)
    return "done"


@register
def add(a: int, b: int = 2) -> dict[str, int]:
    """Add two numbers (a result that is a JSON object)."""
    return {"sum": a + b}
