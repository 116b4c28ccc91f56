"""Fixtures of the Redis engine's tests: a real redis-server per test."""

from tests.support.nodes import cluster_nodes
from tests.support.redis_server import redis_server

__all__ = ["cluster_nodes", "redis_server"]
