"""What the runner stamps on its runs: a new task's id, and the time of each change of a record."""

from __future__ import annotations

import os
from datetime import UTC, datetime

__all__ = ["TaskIds", "utcnow"]


def utcnow() -> datetime:
    return datetime.now(UTC)


class TaskIds:
    """uuid4 ids (32 hex digits) from random bytes fetched 4 KiB at a time.

    `uuid.uuid4()` reads 16 bytes with `os.urandom` per id, and that call lets go of the GIL: with
    the store's writer thread busy (as when thousands of tasks start), taking it back can cost
    the loop far more than the read itself. One read serves 256 ids here; they are as random."""

    __slots__ = ("_at", "_pool")

    def __init__(self) -> None:
        self._pool = b""
        self._at = 0

    def next(self) -> str:
        at = self._at
        if at >= len(self._pool):
            self._pool, at = os.urandom(4096), 0
        self._at = at + 16
        value = int.from_bytes(self._pool[at : at + 16])
        # The version (4) and variant bits of RFC 4122, as uuid.uuid4() sets them.
        value = (value & ~(0xF000 << 64) | (0x4000 << 64)) & ~(0xC000 << 48) | (0x8000 << 48)
        return f"{value:032x}"
