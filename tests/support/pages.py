"""Reading the console's pages in server tests: the client type and a page's text."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

Client = TestClient[Any, Any]


async def text_of(client: Client, path: str, status: int = 200) -> str:
    """The body of GET `path`, after checking its status (the body is in the failure)."""
    response = await client.get(path)
    body = await response.text()
    assert response.status == status, body
    return body
