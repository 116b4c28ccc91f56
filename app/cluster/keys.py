"""Every key and channel Taskcast writes in Redis, named in one place (docs/scale-out.md lists
each one with its lifetime).

All of them start with `PREFIX`, so one Redis (or one database of it) can hold other data too.
Keys of one stream or task share a hash tag (`{...}`), so a Redis Cluster keeps them on one
shard and a script may touch them together.
"""

from __future__ import annotations

from typing import Final

PREFIX: Final = "taskcast:"


def node(node_id: str) -> bytes:
    """A live node's key: its description, expiring unless the node renews it (`NODE_TTL`)."""
    return f"{PREFIX}node:{node_id}".encode()


#: the pattern of every node key, for listing the live nodes
NODES_PATTERN: Final = f"{PREFIX}node:*".encode()


def session(digest: str) -> bytes:
    """A browser session of the token login, by the SHA-256 of its cookie's id: the user; it
    expires with the session (`Settings.session_seconds`) or is deleted on sign-out."""
    return f"{PREFIX}session:{digest}".encode()


def _stream_tag(stream_id: str) -> str:
    # The hash tag keeps a stream's keys on one shard of a Redis Cluster, so one script may
    # touch all of them.
    return f"{PREFIX}{{stream:{stream_id}}}"


def stream_events(stream_id: str) -> bytes:
    """A stream's events (a Redis Stream, entry id `<seq>-0`), trimmed to about the history
    bound; reset by each new run; expires `stream_expiry` seconds after the run ended."""
    return f"{_stream_tag(stream_id)}:events".encode()


def stream_meta(stream_id: str) -> bytes:
    """A stream's run (a hash: run, epoch, node, state, error, last): written when the run opens,
    updated at each flush and at its end; expires with the events."""
    return f"{_stream_tag(stream_id)}:meta".encode()


def stream_live(stream_id: str) -> bytes:
    """A stream's pub/sub channel: its start, events and end for the nodes that mirror it
    (nothing is kept: a message reaches whoever is subscribed at that moment)."""
    return f"{_stream_tag(stream_id)}:live".encode()


# -- the task plane (taskcast.cluster.tasks) ------------------------------------------------------

#: the consumer group every node reads the task queues in
TASK_GROUP: Final = b"nodes"


def task_queue(kind: str) -> bytes:
    """The queue of one kind of task (async, thread, process): a stream of task ids read by the
    consumer group `TASK_GROUP`. An entry is acknowledged and deleted once its run has ended (or
    it was skipped); the stream lives as long as the cluster."""
    return f"{PREFIX}queue:{kind}".encode()


#: the pattern of every task's hash, for a node that copies the cluster's tasks at start
TASKS_PATTERN: Final = f"{PREFIX}task:*".encode()


def task(task_id: str) -> bytes:
    """A task's hash: its record (pickled), status, owner node, spec and queue entry. Written at
    submit, at each change of the record, and expiring `RECORD_TTL` seconds after the last."""
    return f"{PREFIX}task:{{{task_id}}}".encode()


def stream_owner(stream_id: str) -> bytes:
    """The task that holds a stream id: set (NX) when a run of that stream is submitted, deleted
    by that task alone when its run ends; it expires `RECORD_TTL` seconds after it was set, so
    a lost release cannot hold the stream id forever."""
    return f"{PREFIX}streamrun:{{{stream_id}}}".encode()


#: every change of every task's record, in order: a stream each node reads from its own
#: position to keep its store; trimmed to about `CHANGES_KEPT` entries
CHANGES: Final = f"{PREFIX}changes".encode()


def cancel_channel(node_id: str) -> bytes:
    """The pub/sub channel on which a node hears which of its tasks to stop (no storage)."""
    return f"{PREFIX}cancel:{node_id}".encode()


def node_tasks(node_id: str) -> bytes:
    """The set of the task ids a node has claimed and not yet ended (each leaves when its end is
    written): what another node is to recover when this one dies."""
    return f"{PREFIX}nodetasks:{node_id}".encode()


#: the pattern of every node's task set, for finding the nodes that hold tasks
NODE_TASKS_PATTERN: Final = f"{PREFIX}nodetasks:*".encode()

# -- recovery of dead nodes (taskcast.cluster.recovery) -------------------------------------------

#: the node that recovers dead nodes' tasks now: its id, expiring `recovery.LOCK_TTL` seconds
#: after the holder last renewed it (each pass renews it; a node that stops frees it)
RECOVERY_LOCK: Final = f"{PREFIX}recovery".encode()


# -- schedules (taskcast.cluster.schedule_claims) -------------------------------------------------


def schedule_claim(name: str) -> bytes:
    """The newest due time of a schedule that a node has taken, and which node took it
    (`<due ms> <node id>`): rewritten at each due time, expiring `CLAIM_TTL` (400 days) after
    the last, so it outlives any downtime a node's catch-up looks back over."""
    return f"{PREFIX}schedule:{{{name}}}".encode()
