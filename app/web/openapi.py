"""The JSON API described as an OpenAPI 3.1 document, served at `/api/openapi.json`.

The document puts together the operations (`taskcast.web.apipaths`), the shapes of the bodies
(`taskcast.web.apischemas`) and the authentication in use. tests/web/test_openapi.py calls every
operation and checks each answer against this document, and fails for a route under /api/ that
is not in it.
"""

from __future__ import annotations

import functools
import importlib.metadata
import json
from typing import Any

from aiohttp import web

from taskcast.web import apischemas
from taskcast.web.apipaths import TAG_SCHEDULES, TAG_SERVER, TAG_TASKS, paths
from taskcast.web.keys import BASE, POLICY
from taskcast.web.security import COOKIE, TokenAccess

VERSION = importlib.metadata.version("taskcast")


def _security(base: str, token_auth: bool) -> tuple[dict[str, Any], list[dict[str, list[str]]]]:
    """The schemes, and the requirement every operation but the public ones has."""
    if not token_auth:
        return {}, []
    schemes = {
        "bearerToken": {
            "type": "http",
            "scheme": "bearer",
            "description": "the server's token (`--token`, `TASKCAST_TOKEN`, `auth_token`)",
        },
        "sessionCookie": {
            "type": "apiKey",
            "in": "cookie",
            "name": COOKIE,
            "description": f"the session `POST {base}/login` opens for a browser",
        },
    }
    return schemes, [{"bearerToken": []}, {"sessionCookie": []}]


def document(base: str, token_auth: bool) -> dict[str, Any]:
    """The OpenAPI document of an app mounted at `base` ("" at the root), with or without the
    shared token."""
    schemes, security = _security(base, token_auth)
    components: dict[str, Any] = {"schemas": apischemas.schemas()}
    if schemes:
        components["securitySchemes"] = schemes
    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "info": {
            "title": "Taskcast",
            "version": VERSION,
            "summary": "Start, list, follow and cancel background tasks; manage schedules.",
            "description": 'Every answer is JSON, errors included: `{"error": <short code>, '
            '"detail": <message>}`. Task streams are also on the Pytigon websocket channel '
            "(see the README). Without a token the server asks for no authentication; an "
            "embedding app's own access policy may ask for its own.",
        },
        "paths": paths(),
        "components": components,
        "tags": [{"name": TAG_TASKS}, {"name": TAG_SCHEDULES}, {"name": TAG_SERVER}],
    }
    if base:
        doc["servers"] = [{"url": base}]
    if security:
        doc["security"] = security
    return doc


@functools.lru_cache(maxsize=8)
def document_text(base: str, token_auth: bool) -> str:
    return json.dumps(document(base, token_auth), indent=1)


async def openapi_json(request: web.Request) -> web.Response:
    token_auth = isinstance(request.app[POLICY], TokenAccess)
    return web.Response(
        text=document_text(request.app[BASE], token_auth), content_type="application/json"
    )
