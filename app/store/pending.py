"""What reads see before the database file does: the task records whose writes are queued or
kept in memory, the records given up on, and the runs with event writes still queued.

The writer keeps it up to date as operations join the queue, commit or are given up; the store's
reads look here first. Every method expects the caller to hold the writer's lock.
"""

from __future__ import annotations

import collections
import itertools

from taskcast.records import TaskRecord
from taskcast.store.ops import AppendEvents, KeepEvents, Op, SaveTask, TrimEvents

UNSAVED_PREFIX = "could not be saved: "
#: task records given up on that stay readable in memory, newest first
UNSAVED_KEPT = 1000


def unsaved(record: TaskRecord, reason: str) -> TaskRecord:
    """The record, its error saying why it will not be there after a restart."""
    text = UNSAVED_PREFIX + reason
    return record.replace(error=f"{text}\n\n{record.error}" if record.error else text)


class Pending:
    """The overlay of not yet committed writes that reads merge with the file."""

    __slots__ = ("_given_up", "_records", "_runs")

    def __init__(self) -> None:
        self._records: dict[str, SaveTask] = {}  # task id -> its newest queued or kept record
        # task id -> (op number, record marked "could not be saved"), oldest first
        self._given_up: collections.OrderedDict[str, tuple[int, TaskRecord]] = (
            collections.OrderedDict()
        )
        self._runs: dict[str, int] = {}  # run id -> number of its last queued event write

    # -- kept up to date by the writer ---------------------------------------------------------

    def queued(self, op: Op) -> None:
        if isinstance(op, SaveTask):
            self._records[op.task_id] = op
        elif isinstance(op, AppendEvents | TrimEvents | KeepEvents):
            self._runs[op.run_id] = op.number

    def committed(self, op: SaveTask) -> None:
        task_id = op.task_id
        newest = self._records.get(task_id)
        if newest is not None and newest.number <= op.number:
            del self._records[task_id]
        if self._given_up.get(task_id, (op.number,))[0] < op.number:
            del self._given_up[task_id]  # a newer record made it to the file

    def give_up(self, op: SaveTask, reason: str) -> None:
        """This record will not be saved: keep it readable, marked, unless a newer one is on its
        way and decides."""
        task_id = op.task_id
        if self._records.get(task_id) is not op:
            return
        del self._records[task_id]
        self._given_up[task_id] = (op.number, unsaved(op.record, reason))
        self._given_up.move_to_end(task_id)
        while len(self._given_up) > UNSAVED_KEPT:
            self._given_up.popitem(last=False)

    def superseded(self, op: SaveTask) -> bool:
        """Whether a newer record of the same task is queued or kept."""
        newest = self._records.get(op.task_id)
        return newest is not None and newest.number > op.number

    def done(self, number: int) -> None:
        """Operations numbered up to `number` have left the queue."""
        for run_id in [run for run, last in self._runs.items() if last <= number]:
            del self._runs[run_id]

    # -- read by the store ---------------------------------------------------------------------

    @property
    def has_records(self) -> bool:
        return bool(self._records)

    def has_events(self, run_id: str) -> bool:
        return run_id in self._runs

    def record(self, task_id: str) -> TaskRecord | None:
        newest = self._records.get(task_id)
        if newest is not None:
            return newest.record
        given_up = self._given_up.get(task_id)
        return None if given_up is None else given_up[1]

    def matching(self, field: str, value: str) -> dict[str, TaskRecord]:
        """The pending records whose `field` equals `value`, by task id."""
        given_up = (record for _, record in self._given_up.values())
        queued = (op.record for op in self._records.values())
        return {r.id: r for r in itertools.chain(given_up, queued) if getattr(r, field) == value}
