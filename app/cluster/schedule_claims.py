"""Due times of schedules taken in Redis, so that a schedule every node knows fires once per due
time across the cluster (docs/scale-out.md, "Schedules across nodes").

Every node runs its scheduler; before it starts a due run it takes that due time here. A
schedule (by name: its identity on every node) has one key holding the newest due time taken
and the node that took it. A claim succeeds only for a due time later than that one, in one
Lua step, so two nodes asking at once get one answer, and a node back from downtime with an
old next run cannot run again a due time the cluster has passed, however long ago it was.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING

from taskcast.cluster import keys
from taskcast.errors import EngineUnavailableError

if TYPE_CHECKING:
    from taskcast.cluster.node import Node

__all__ = ["CLAIM_TTL", "ScheduleClaims"]

logger = logging.getLogger(__name__)

#: seconds a schedule's key lives after its last claim: longer than a yearly schedule's period
#: and than any downtime worth catching up after
CLAIM_TTL = 400 * 24 * 3600

#: Take a due time. KEYS: the schedule's key. ARGV: due (ms since the epoch), node id, ttl ms.
#: Returns {1} when this node has it (also when it had taken it already), or {0, due, node}
#: of the due time taken at or after it.
CLAIM = """
local held = redis.call('GET', KEYS[1])
if held then
  local space = string.find(held, ' ', 1, true)
  local due = tonumber(string.sub(held, 1, space - 1))
  local node = string.sub(held, space + 1)
  local asked = tonumber(ARGV[1])
  if due > asked or (due == asked and node ~= ARGV[2]) then
    return {0, string.sub(held, 1, space - 1), node}
  end
end
redis.call('SET', KEYS[1], ARGV[1] .. ' ' .. ARGV[2], 'PX', ARGV[3])
return {1}
"""


def _millis(moment: datetime) -> int:
    return round(moment.timestamp() * 1000)


class ScheduleClaims:
    """This node's side of the claims; the scheduler's `claims` hook on the Redis engine."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self._claim = node.redis.register_script(CLAIM)

    async def claim(self, name: str, due: datetime) -> bool:
        """True if this node is to start the run of `name` due at `due`; False if another node
        took it, or a later due time. Raises EngineUnavailableError when Redis cannot be
        reached (at once when the node knows it cannot): then no node may be sure to be the
        only one, so the caller does not start the run."""
        if not self.node.reachable:
            raise EngineUnavailableError(
                f"Redis cannot be reached ({self.node.last_error}): the run of schedule "
                f"{name!r} due at {due.isoformat()} was not claimed"
            )
        try:
            reply = await self._claim(
                keys=[keys.schedule_claim(name)],
                args=[_millis(due), self.node.id, CLAIM_TTL * 1000],
            )
        except Exception as exc:
            raise EngineUnavailableError(
                f"the run of schedule {name!r} due at {due.isoformat()} was not claimed: "
                f"Redis cannot be reached ({type(exc).__name__}: {exc})"
            ) from exc
        if reply[0] == 1:
            return True
        logger.debug(
            "schedule %r: the run due at %s is node %s's (it took the due time %s ms)",
            name,
            due.isoformat(),
            reply[2].decode(),
            reply[1].decode(),
        )
        return False
