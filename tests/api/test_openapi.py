"""The OpenAPI document: served without a key, valid, and describing exactly the
native routes that exist (a new handler without its description fails here)."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiohttp import web

from gsmgw.api import app as api
from gsmgw.api.openapi import OPENAPI_PATH, document
from gsmgw.config import Config
from tests.helpers import make_config, running_gateway

# Other products' APIs, documented in docs/api-compat.md rather than here.
COMPAT_PREFIXES = ("/message", "/messages", "/webhooks", "/health", "/cgi-bin/")


def _native_routes(app: web.Application) -> set[tuple[str, str]]:
    out = set()
    for route in app.router.routes():
        path = route.resource.canonical if route.resource is not None else ""
        if route.method == "HEAD" or (path.startswith(COMPAT_PREFIXES) and path != "/healthz"):
            continue
        out.add((route.method.lower(), path))
    return out


def _app() -> web.Application:
    svc = api.Services(cfg=Config(), store=None, notify_work=lambda: None,  # type: ignore[arg-type]
                       modems=lambda: [], set_modem_enabled=lambda _i, _e: False)
    return api.create_app(svc)


def test_every_native_route_is_described_and_nothing_else() -> None:
    described = {(m, p) for p, ops in document()["paths"].items() for m in ops}
    assert _native_routes(_app()) == described


def test_the_document_is_valid_openapi() -> None:
    schemathesis = pytest.importorskip("schemathesis")
    schema = schemathesis.openapi.from_dict(document())
    ops = [r.ok() for r in schema.get_all_operations()]  # raises on an invalid document or a bad $ref
    assert len(ops) == sum(len(v) for v in document()["paths"].values())
    doc = document()
    assert doc["openapi"].startswith("3.0")
    schemes = doc["components"]["securitySchemes"]
    assert schemes["bearer"]["scheme"] == "bearer"
    assert schemes["apiKeyHeader"] == {"type": "apiKey", "in": "header", "name": "X-API-Key"}
    error = doc["components"]["schemas"]["Error"]
    assert error["required"] == ["error"]
    assert error["properties"]["error"]["required"] == ["code", "message"]
    assert "field" in error["properties"]["error"]["properties"]
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            public = op.get("security") == []
            assert public or "401" in op["responses"], f"{method} {path} does not document 401"
            for status, resp in op["responses"].items():
                if status.startswith(("4", "5")):
                    assert resp["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}


async def test_served_without_a_key_and_errors_match_the_error_schema(tmp_path: Path) -> None:
    jsonschema_rs = pytest.importorskip("jsonschema_rs")
    async with running_gateway(make_config(tmp_path)) as (_gw, c):
        status, served = await c.request("GET", OPENAPI_PATH, key=None)
        assert status == 200 and served == document()
        error_schema = {**document()["components"]["schemas"]["Error"]}
        validator = jsonschema_rs.validator_for(error_schema)
        for method, path, body, expected in [
            ("GET", "/api/v1/messages", None, 401),
            ("POST", "/api/v1/messages", {"to": "x", "text": "y"}, 422),
            ("GET", "/api/v1/messages/nope", None, 404),
            ("PUT", "/api/v1/messages", None, 405),
        ]:
            key = None if expected == 401 else "default"
            status, got = await c.request(method, path, json=body, key=key)
            assert status == expected and validator.is_valid(got), (method, path, got)
        status, got = await c.request("POST", "/api/v1/messages", json={"to": "x", "text": "y"})
        assert got["error"]["field"] == "to"
