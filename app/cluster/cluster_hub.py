"""The hub of a node on the Redis engine: the local hub, plus the streams of the whole cluster.

Same surface and guarantees as `taskcast.hub.hub.Hub`, which it extends. A stream run on this
node is published locally exactly as on the memory engine (its local subscribers keep that path
and its speed) and each change is also handed to the relay, which copies it to Redis. A
subscriber of any other stream (run on another node, finished, or not started yet) is attached
once the mirror has read that stream from Redis: from then on the mirror applies the stream's
events to this hub, and the local fan-out does the rest. `close` works for any stream: for one
run elsewhere it records the end in Redis, and every node's subscribers get `stop`.
"""

from __future__ import annotations

import logging

from taskcast.cluster.mirror import Mirror
from taskcast.cluster.node import Node
from taskcast.cluster.relay import Relay
from taskcast.cluster.stream_ops import new_epoch
from taskcast.hub.hub import Hub, Sink, Stream, StreamEnd, StreamEvent, Subscription, hub_options
from taskcast.settings import Settings

logger = logging.getLogger(__name__)


class ClusterHub(Hub):
    """This node's hub on the Redis engine (see the module)."""

    def __init__(self, settings: Settings, node: Node) -> None:
        super().__init__(**hub_options(settings))
        self.node = node
        self.relay = Relay(node.redis, node.id, settings.history_max_events, settings.stream_expiry)
        self.mirror = Mirror(self, node.redis, node.id)
        self.mirror.on_synced = self._synced
        self._runs_here: dict[str, Stream] = {}  # open streams run on this node
        #: subscribers waiting for the mirror's first read of their stream, with their epoch
        self._syncing: dict[str, dict[Subscription, str | None]] = {}

    async def start(self) -> None:
        self.relay.start()
        self.mirror.start()

    async def stop(self) -> None:
        """Send the last changes to Redis and stop following other nodes' streams."""
        await self.relay.close()
        await self.mirror.close()

    # -- the publisher's side ------------------------------------------------------------------

    def open(self, stream_id: str, run_id: str, epoch: str | None = None) -> Stream:
        previous = self.get(stream_id)
        if previous is not None and previous.is_open and stream_id not in self._runs_here:
            # A mirrored run whose end has not come yet: this node's run replaces it.
            logger.warning(
                "stream %r: run %s starts here before the end of run %s was seen",
                stream_id,
                run_id,
                previous.run_id,
            )
            Hub.close(self, stream_id, "interrupted")
        self.mirror.stop(stream_id)
        stream = super().open(stream_id, run_id, epoch or new_epoch())
        self._runs_here[stream_id] = stream
        self.relay.opened(stream)
        return stream

    def publish(self, stream_id: str, data_json: str) -> StreamEvent:
        event = super().publish(stream_id, data_json)
        self.relay.added(stream_id, event.seq, [data_json])
        return event

    def publish_many(self, stream_id: str, data: list[str]) -> int:
        first_seq = super().publish_many(stream_id, data)
        if data:
            self.relay.added(stream_id, first_seq, data)
        return first_seq

    def close(self, stream_id: str, state: str, error: str | None = None) -> StreamEnd | None:
        """End a stream run here, or record the end of one run on another node (a node that
        died, say): every node's subscribers get `stop` once Redis has it."""
        if self._runs_here.pop(stream_id, None) is None:
            self.relay.end_elsewhere(stream_id, state, error)
            return None
        end = super().close(stream_id, state, error)
        self.relay.ended(stream_id, state, error)
        return end

    # -- the subscriber's side -----------------------------------------------------------------

    def subscribe(
        self,
        stream_id: str,
        after: int = 0,
        sink: Sink | None = None,
        epoch: str | None = None,
    ) -> Subscription:
        """As the local hub's; `epoch` is the one a resuming client saw: when the stream's
        is another, it gets the whole history from the start again."""
        subscription = self.new_subscription(stream_id, after, sink)
        if stream_id in self._runs_here:
            self._attach_at(subscription, epoch)
            return subscription
        follow = self.mirror.following(stream_id)
        if follow is not None and not follow.syncing:
            self._attach_at(subscription, epoch)
        else:
            self._syncing.setdefault(stream_id, {})[subscription] = epoch
            self.mirror.follow(stream_id)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        waiting = self._syncing.get(subscription.stream_id)
        if waiting is not None:
            waiting.pop(subscription, None)
        super().unsubscribe(subscription)

    def shutdown(self) -> None:
        for waiting in self._syncing.values():
            for subscription in waiting:
                subscription.finish()
        self._syncing.clear()
        super().shutdown()

    def _synced(self, stream_id: str) -> None:
        for subscription, epoch in self._syncing.pop(stream_id, {}).items():
            self._attach_at(subscription, epoch)

    def _attach_at(self, subscription: Subscription, epoch: str | None) -> None:
        if epoch is not None:
            stream = self.get(subscription.stream_id)
            if stream is None or stream.epoch != epoch:
                # The history it saw is gone: it gets this one from the start.
                subscription.after = subscription.delivered_seq = 0
        self.attach(subscription)

    # -- the mirror's side: another node's stream applied here ---------------------------------

    def mirror_open(self, stream_id: str, run_id: str, epoch: str) -> None:
        self._runs_here.pop(stream_id, None)
        super().open(stream_id, run_id, epoch)

    def mirror_events(self, stream_id: str, first_seq: int, texts: list[str]) -> None:
        """Consecutive events from `first_seq` (a jump from the last one: dropped by the bound)."""
        stream = self.get(stream_id)
        if stream is None or stream.end is not None:
            return
        stream.last_seq = first_seq - 1
        super().publish_many(stream_id, texts)

    def mirror_close(self, stream_id: str, state: str, error: str | None) -> None:
        super().close(stream_id, state, error)
