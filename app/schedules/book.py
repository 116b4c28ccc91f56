"""The book of schedules: every schedule by name, in memory, with its copy in the store.

The scheduler reads the book in memory and never waits for the disk: each change is handed to the
store's thread at once, and the store writes them in the order they were made. `flush` waits for
what was handed over so far. Changes made before `load` are kept in memory only: the book is not
open yet, and `load` reads what the store holds.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from taskcast.schedules.entry import ScheduleEntry
from taskcast.schedules.store import ScheduleStore, Skip

logger = logging.getLogger(__name__)


class ScheduleBook:
    """The schedules by name, each change also written to the store; see the module docstring."""

    def __init__(self, store: ScheduleStore) -> None:
        self.store = store
        self.entries: dict[str, ScheduleEntry] = {}
        #: schedules kept in memory only (their function or arguments cannot be stored)
        self.memory_only: set[str] = set()
        self._open = False
        self._writes: set[asyncio.Future[None]] = set()

    async def load(self) -> None:
        """Open the store and read every stored schedule into the book."""
        # Open before the first await, so that a change made meanwhile is written, after the load.
        self._open = True
        await self.store.run(self.store.open)
        for entry in await self.store.run(self.store.load):
            self.entries[entry.name] = entry

    async def close(self) -> None:
        """Wait for the writes handed over, then close the store and stop its thread."""
        await self.flush()
        await asyncio.get_running_loop().run_in_executor(None, self.store.shutdown)

    async def flush(self) -> None:
        """Wait until every change made so far is in the database."""
        while self._writes:
            await asyncio.wait(set(self._writes))

    def put(self, entry: ScheduleEntry) -> None:
        """Keep a schedule, new or changed."""
        self.entries[entry.name] = entry
        if entry.name not in self.memory_only:
            self._write(self.store.save, entry)

    def remove(self, name: str) -> None:
        """Forget a schedule and its skipped runs."""
        self.entries.pop(name, None)
        self.memory_only.discard(name)
        self._write(self.store.delete, name)

    def add_skip(self, skip: Skip) -> None:
        """Record a run that did not start."""
        self._write(self.store.add_skip, skip)

    async def skips(self, name: str, limit: int) -> list[Skip]:
        """The newest skipped runs of a schedule, newest first."""
        return await self.store.run(self.store.skips, name, limit)

    def _write(self, method: Callable[..., None], *args: Any) -> None:
        if not self._open:
            return
        write = self.store.submit(method, *args)
        self._writes.add(write)
        write.add_done_callback(self._written)

    def _written(self, write: asyncio.Future[None]) -> None:
        self._writes.discard(write)
        if not write.cancelled() and write.exception() is not None:
            logger.error("schedules: a change could not be saved: %s", write.exception())
