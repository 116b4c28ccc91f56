"""Due runs taken in the cluster before they start: the scheduler's hook on the Redis engine.

On the memory engine the scheduler has no hook and nothing here runs. On the Redis engine every
node's scheduler finds the same due runs; before it starts one it asks `DueClaims` (the cluster's
`ScheduleClaims`) whether the due time is its own, so each due time runs on one node only.
A run skipped by the catch-up policy is claimed too, so that one node records the skip.
"""

from __future__ import annotations

import dataclasses
import logging
from datetime import datetime, tzinfo
from typing import Protocol

from taskcast.errors import TaskcastError
from taskcast.schedules.entry import DueRuns, ScheduleEntry, due_runs

logger = logging.getLogger(__name__)


class DueClaims(Protocol):
    async def claim(self, name: str, due: datetime) -> bool:
        """True if this node is to act on the schedule's due time; raises a TaskcastError
        when no answer can be had (Redis cannot be reached)."""


@dataclasses.dataclass(frozen=True)
class ClaimedRuns:
    """A schedule's due runs (its catch-up plan) and which of them are not this node's."""

    plan: DueRuns
    #: due times another node took: this node neither starts nor records them
    lost: frozenset[datetime]
    #: due times that could not be claimed, and why: no node may start them from here
    unclaimed: frozenset[datetime]
    error: str | None


async def claim_due(
    claims: DueClaims, entry: ScheduleEntry, now: datetime, tz: tzinfo
) -> ClaimedRuns:
    """Apply the catch-up policy to `entry`, then claim its due times oldest first. Once a
    claim fails (Redis cannot be reached), the rest are not asked: better a missed run,
    logged with its schedule and due time, than one run per node."""
    plan = due_runs(entry, now, tz)
    moments = [moment for moment, _queue in plan.runs]
    if plan.skip is not None:
        moments.append(plan.skip[0])
    lost: set[datetime] = set()
    for index, moment in enumerate(moments):
        try:
            if not await claims.claim(entry.name, moment):
                lost.add(moment)
        except TaskcastError as exc:
            unclaimed = frozenset(moments[index:])
            for missed in moments[index:]:
                logger.error(
                    "schedule %r: the run due at %s is not started on this node: %s",
                    entry.name,
                    missed.isoformat(),
                    exc,
                )
            return ClaimedRuns(plan, frozenset(lost), unclaimed, str(exc))
    return ClaimedRuns(plan, frozenset(lost), frozenset(), None)
