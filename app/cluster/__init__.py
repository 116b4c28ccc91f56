"""The Redis engine: what the nodes of a cluster share through Redis (docs/scale-out.md).

Nothing here is imported by a server on the memory engine, and nothing here imports
aiohttp.web.
"""
