"""Browsing the stored task records for the console: free-text search and sorting, per-function
statistics over a time window, and which old finished records a purge takes.

Everything here is a read of one connection, or (for a purge) the SQL its write runs on the
writer thread. Searching argument values unpickles each candidate row's arguments in a SQL
function: it costs a little per row scanned, and only when a search is asked for.
"""

from __future__ import annotations

import dataclasses
import math
import pickle
import sqlite3
from datetime import datetime, timedelta
from typing import Any, Final

from taskcast.records import FINAL_STATUSES, TaskRecord, TaskStatus
from taskcast.store.rows import COLUMNS, record_from_row, to_us

#: the columns a listing may be sorted by, by the name the console uses in its URLs
SORTS: Final = {
    "queued": "enqueued",
    "started": "started",
    "finished": "stopped",
    "took": "(stopped - started)",
    "name": "name COLLATE NOCASE",
    "status": "status",
    "function": "func",
}
#: the final statuses a statistic counts as failures (cancelled runs are counted apart)
FAILURES: Final = frozenset({TaskStatus.FAILED, TaskStatus.TIMED_OUT, TaskStatus.INTERRUPTED})
FINAL_VALUES: Final = tuple(sorted(status.value for status in FINAL_STATUSES))
ARGUMENTS_FUNCTION = "taskcast_arguments"


@dataclasses.dataclass(frozen=True, slots=True)
class Search:
    """What a listing asks for besides the equality filters: a free text and an order."""

    text: str | None = None
    sort: str = "queued"
    descending: bool = True

    def __post_init__(self) -> None:
        if self.sort not in SORTS:
            raise ValueError(f"sort must be one of {', '.join(SORTS)}, not {self.sort!r}")


def arguments_text(args: bytes | None, kwargs: bytes | None) -> str:
    """The argument values of a stored row as one case-folded text to search in."""
    parts: list[str] = []
    for blob in (args, kwargs):
        if blob is None:
            continue
        try:
            value = pickle.loads(blob)
        except Exception:
            continue  # a value whose class has gone away matches nothing
        values = value.values() if isinstance(value, dict) else value
        try:
            parts.extend(v if isinstance(v, str) else repr(v) for v in values)
        except Exception:
            continue
    return "\n".join(parts).casefold()


def _like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def text_clause(text: str) -> tuple[str, list[str]]:
    """SQL matching `text` as an id prefix, or in the name, function or argument values."""
    pattern = _like(text)
    clause = (
        "(id LIKE ? ESCAPE '\\' OR name LIKE ? ESCAPE '\\' OR func LIKE ? ESCAPE '\\' "
        f"OR instr({ARGUMENTS_FUNCTION}(args, kwargs), ?) > 0)"
    )
    return clause, [f"{pattern}%", f"%{pattern}%", f"%{pattern}%", text.casefold()]


def search(
    conn: sqlite3.Connection,
    where: str,
    params: list[Any],
    query: Search,
    limit: int,
    offset: int,
) -> tuple[list[TaskRecord], int]:
    """A page of the tasks matching `where` (a WHERE clause or "") and `query`, and how many
    match in all."""
    conn.create_function(ARGUMENTS_FUNCTION, 2, arguments_text, deterministic=True)
    params = list(params)
    if query.text:
        clause, more = text_clause(query.text)
        where = f"{where} AND {clause}" if where else f" WHERE {clause}"
        params += more
    direction = "DESC" if query.descending else "ASC"
    column = SORTS[query.sort]
    # A task not started or not finished has no time: last, whichever the direction.
    order = f"ORDER BY ({column}) IS NULL, {column} {direction}, enqueued DESC, rowid DESC"
    rows = conn.execute(
        f"SELECT {COLUMNS} FROM tasks{where} {order} LIMIT ? OFFSET ?", [*params, limit, offset]
    ).fetchall()
    total: int = conn.execute(f"SELECT COUNT(*) FROM tasks{where}", params).fetchone()[0]
    return [record_from_row(row) for row in rows], total


@dataclasses.dataclass(frozen=True, slots=True)
class FunctionStats:
    """How one function's runs that finished within a window went."""

    func: str
    runs: int
    succeeded: int
    failed: int
    cancelled: int
    #: seconds from start to end of the runs that started, p50 and p95 (None: none started)
    p50: float | None
    p95: float | None

    @property
    def failure_rate(self) -> float:
        return self.failed / self.runs if self.runs else 0.0


def percentile(sorted_values: list[float], percent: float) -> float | None:
    """The nearest-rank percentile: the smallest value with `percent` % of the values at or
    below it."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(percent / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def function_stats(
    conn: sqlite3.Connection, since: datetime, started_by: str | None = None
) -> list[FunctionStats]:
    """Per function, the runs that finished at or after `since`, most runs first."""
    sql = (
        "SELECT func, status, started, stopped FROM tasks WHERE stopped >= ? "
        f"AND status IN ({', '.join('?' * len(FINAL_VALUES))})"
    )
    params: list[Any] = [to_us(since), *FINAL_VALUES]
    if started_by is not None:
        sql += " AND started_by = ?"
        params.append(started_by)
    by_func: dict[str, list[tuple[str, int | None, int]]] = {}
    for func, status, started, stopped in conn.execute(sql, params):
        by_func.setdefault(func, []).append((status, started, stopped))
    stats = []
    for func, runs in by_func.items():
        statuses = [TaskStatus(status) for status, _, _ in runs]
        durations = sorted(
            (stopped - started) / 1e6 for _, started, stopped in runs if started is not None
        )
        stats.append(
            FunctionStats(
                func=func,
                runs=len(runs),
                succeeded=statuses.count(TaskStatus.SUCCESS),
                failed=sum(status in FAILURES for status in statuses),
                cancelled=statuses.count(TaskStatus.CANCELLED),
                p50=percentile(durations, 50),
                p95=percentile(durations, 95),
            )
        )
    return sorted(stats, key=lambda s: (-s.runs, s.func))


def purge_clause(before: datetime, started_by: str | None) -> tuple[str, list[Any]]:
    """The WHERE clause of the records a purge takes: finished before `before` (never a queued
    or running task), and only `started_by`'s when given."""
    clause = f"status IN ({', '.join('?' * len(FINAL_VALUES))}) AND stopped < ?"
    params: list[Any] = [*FINAL_VALUES, to_us(before)]
    if started_by is not None:
        clause += " AND started_by = ?"
        params.append(started_by)
    return clause, params


def count_purgeable(conn: sqlite3.Connection, before: datetime, started_by: str | None) -> int:
    clause, params = purge_clause(before, started_by)
    count: int = conn.execute(f"SELECT COUNT(*) FROM tasks WHERE {clause}", params).fetchone()[0]
    return count


def window(text: str) -> timedelta:
    """A window like "90m", "1h", "24h" or "7d" as a timedelta; ValueError if it is not one."""
    units = {"m": 60, "h": 3600, "d": 86400}
    number, unit = text[:-1], text[-1:]
    if unit not in units or not number.isascii() or not number.isdigit() or len(number) > 4:
        raise ValueError(f"a window is a whole number and m, h or d (like 24h), not {text!r}")
    seconds = int(number) * units[unit]
    if not 0 < seconds <= 366 * 86400:
        raise ValueError(f"a window is from 1m to 366d, not {text!r}")
    return timedelta(seconds=seconds)
