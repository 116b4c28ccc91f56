"""Whether the store's database file is still the one it opened: a file deleted or replaced
under a running server would otherwise go unnoticed until everything is lost at shutdown.

SQLite keeps writing to the file it opened, so after a delete the server goes on working on a
file no one can reach, and its contents go when the server stops. The writer thread checks the
path's device and inode against the ones it opened after each batch and every
`CHECK_SECONDS`; the first mismatch is logged as an ERROR once and kept as `problem`, which the
health endpoint reports.
"""

from __future__ import annotations

import logging
import os
import time

logger = logging.getLogger(__name__)

#: seconds between checks of the database file while nothing is written
CHECK_SECONDS = 5.0


class FileWatch:
    """The (device, inode) the store opened, and what became of its path."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._opened: tuple[int, int] | None = None
        self._checked = 0.0
        #: why the file is not the one opened any more (None: it is)
        self.problem: str | None = None

    def opened(self) -> None:
        if self._path != ":memory:":
            info = os.stat(self._path)
            self._opened = (info.st_dev, info.st_ino)

    def check(self, force: bool = False) -> None:
        """Compare the path with the opened file (at most every CHECK_SECONDS unless forced)."""
        now = time.monotonic()
        if self._opened is None or self.problem is not None:
            return
        if not force and now - self._checked < CHECK_SECONDS:
            return
        self._checked = now
        try:
            info = os.stat(self._path)
        except FileNotFoundError:
            problem = f"the database file {self._path} was deleted"
        except OSError as exc:
            problem = f"the database file {self._path} cannot be checked: {exc}"
        else:
            if (info.st_dev, info.st_ino) == self._opened:
                return
            problem = f"the database file {self._path} was replaced by another file"
        self.problem = (
            f"{problem} while the server runs; what is written now goes to the old file and is "
            "lost when the server stops (copy it back from /proc/<pid>/fd before stopping)"
        )
        logger.error("store: %s", self.problem)
