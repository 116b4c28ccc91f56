"""Fixtures of the Redis engine's tests: a real redis-server per test."""

from tests.support.redis_server import redis_server

__all__ = ["redis_server"]

from tests.cluster.nodes_for_tasks import make_node

__all__ += ["make_node"]
