"""A real HTTP server on 127.0.0.1 serving OpenAPI 3.0 and 3.1 documents and recording calls."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

SECRET_TOKEN = "sk-test-SECRET-123"
SECRET_KEY = "apikey-secret-456"
SECRET_TENANT = "tenant-secret-xyz"
SECRETS = (SECRET_TOKEN, SECRET_KEY, SECRET_TENANT)

DOC_30: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {"title": "orders", "version": "1"},
    "paths": {
        "/orders": {
            "post": {
                "operationId": "createOrder",
                "summary": "Create an order.",
                "parameters": [
                    {
                        "name": "X-Api-Key",
                        "in": "header",
                        "required": True,
                        "schema": {"type": "string"},
                    }
                ],
                "requestBody": {"$ref": "#/components/requestBodies/OrderBody"},
            },
        },
        "/orders/{order_id}": {
            "parameters": [{"$ref": "#/components/parameters/OrderId"}],
            "get": {
                "operationId": "getOrder",
                "description": "Read one order.",
                "parameters": [
                    {"name": "verbose", "in": "query", "schema": {"type": "boolean"}},
                ],
            },
        },
        "/search": {
            "get": {
                "operationId": "search",
                "parameters": [
                    {"name": "q", "in": "query", "required": True, "schema": {"type": "string"}},
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 0, "exclusiveMinimum": True},
                    },
                ],
            }
        },
        "/untitled": {"get": {"summary": "no operationId: not a tool"}},
        "/upload": {
            "post": {
                "operationId": "upload",
                "requestBody": {"content": {"multipart/form-data": {"schema": {"type": "object"}}}},
            }
        },
        "/fail404": {"get": {"operationId": "missing"}},
        "/fail500": {"get": {"operationId": "broken"}},
        "/text": {"get": {"operationId": "plainText"}},
        "/slow": {"get": {"operationId": "slow"}},
        "/leaky": {"get": {"operationId": "leaky"}},
    },
    "components": {
        "parameters": {
            "OrderId": {
                "name": "order_id",
                "in": "path",
                "required": True,
                "schema": {"type": "integer"},
            }
        },
        "requestBodies": {
            "OrderBody": {
                "required": True,
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Order"}}},
            }
        },
        "schemas": {
            "Order": {
                "type": "object",
                "required": ["item", "quantity", "tenant_id"],
                "properties": {
                    "item": {"type": "string", "example": "book"},
                    "quantity": {"type": "integer", "minimum": 1},
                    "note": {"type": "string", "nullable": True},
                    "tenant_id": {"type": "string"},
                    "id": {"type": "integer", "readOnly": True},
                },
            }
        },
    },
}

DOC_31: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "items", "version": "1"},
    "paths": {
        "/items/{item_id}": {
            "put": {
                "operationId": "updateItem",
                "summary": "Replace an item.",
                "parameters": [
                    {
                        "name": "item_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string"},
                    }
                ],
                "requestBody": {
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Item"}}
                    }
                },
            }
        },
        "/ping": {"get": {"operationId": "ping"}},
        "/tags": {
            "post": {
                "operationId": "setTags",
                "requestBody": {
                    "content": {
                        "application/json": {
                            "schema": {"type": "array", "items": {"type": "string"}}
                        }
                    }
                },
            }
        },
    },
    "components": {
        "schemas": {
            "Item": {
                "type": "object",
                "required": ["name"],
                "properties": {
                    "name": {"type": "string", "examples": ["lamp"]},
                    "colour": {"type": ["string", "null"]},
                    "parts": {"type": "array", "items": {"$ref": "#/components/schemas/Part"}},
                },
            },
            "Part": {"type": "object", "properties": {"sku": {"type": "string"}}},
        }
    },
}


@dataclass
class Call:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


@dataclass
class FakeApi:
    """The test server; `calls` holds every non-document request, `doc_fetches` counts documents."""

    calls: list[Call] = field(default_factory=list)
    doc_fetches: dict[str, int] = field(default_factory=dict)
    doc_headers: list[dict[str, str]] = field(default_factory=list)
    doc_status: int = 200
    release: asyncio.Event = field(default_factory=asyncio.Event)
    runner: web.AppRunner | None = None
    port: int = 0

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/{prefix}/openapi.json", self._doc)
        app.router.add_route("*", "/{prefix}/{tail:.*}", self._handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        self.release.set()
        if self.runner is not None:
            await self.runner.cleanup()

    async def _doc(self, request: web.Request) -> web.Response:
        prefix = request.match_info["prefix"]
        self.doc_fetches[prefix] = self.doc_fetches.get(prefix, 0) + 1
        self.doc_headers.append(dict(request.headers))
        if self.doc_status != 200:
            return web.Response(status=self.doc_status, text="document unavailable")
        doc = {"v30": DOC_30, "v31": DOC_31}.get(prefix)
        if doc is None:
            return web.Response(status=404, text="no such api")
        return web.json_response(doc)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        body = json.loads(raw) if raw else None
        tail = "/" + request.match_info["tail"]
        self.calls.append(
            Call(request.method, tail, dict(request.query), dict(request.headers), body)
        )
        if tail == "/fail404":
            return web.Response(
                status=404, text=f"not here; you sent {request.headers.get('Authorization')}"
            )
        if tail == "/fail500":
            return web.json_response({"error": "kaboom"}, status=500)
        if tail == "/text":
            return web.Response(text="<html>hello</html>", content_type="text/html")
        if tail == "/slow":
            await asyncio.wait_for(self.release.wait(), 10)
            return web.json_response({"late": True})
        if tail == "/leaky":
            return web.json_response({"auth": request.headers.get("Authorization"), "ok": True})
        if tail == "/redirect-away":
            raise web.HTTPFound(f"http://localhost:{self.port}/v30/ping")
        if tail == "/redirect-home":
            raise web.HTTPFound(f"http://127.0.0.1:{self.port}/plain/hello")
        if tail == "/hello":
            return web.Response(text="hello there")
        return web.json_response(
            {
                "method": request.method,
                "path": tail,
                "raw": request.raw_path,
                "query": dict(request.query),
                "body": body,
            }
        )
