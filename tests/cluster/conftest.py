"""Fixtures of the Redis engine's tests: a real redis-server per test."""

from tests.cluster.nodes_for_tasks import make_node
from tests.support.nodes import cluster_nodes, session
from tests.support.redis_server import redis_server

__all__ = ["cluster_nodes", "make_node", "redis_server", "session"]
