"""The OpenAPI document: generated from the schemas, in step with the router and the roles."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec
import pytest

from edge.admin_api import schemas
from edge.admin_api.openapi import openapi_document, openapi_json
from edge.admin_api.operations import OPERATIONS, operation_keys
from edge.config import ROLE_RANK
from tests.security.admin_routes import SPEC_ROLES, registered_routes


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


async def test_every_route_has_an_operation_and_every_operation_a_route(tmp_path: Path) -> None:
    routes = await registered_routes(tmp_path)
    # aiohttp adds HEAD beside every GET; it is the GET operation.
    routes = {(m, p) for m, p in routes if m != "HEAD"}
    documented = operation_keys()
    assert routes - documented == set(), "routes without an operation in the OpenAPI document"
    assert documented - routes == set(), "operations in the OpenAPI document without a route"
    doc_keys = {
        (method.upper(), path) for path, item in openapi_document()["paths"].items()
        for method in item
    }  # fmt: skip
    assert doc_keys == routes


def test_the_document_states_the_spec_roles() -> None:
    assert operation_keys() == set(SPEC_ROLES)
    for op in OPERATIONS:
        expected = SPEC_ROLES[(op.method, op.path)]
        if isinstance(expected, tuple):
            assert (op.role_for("staging"), op.role_for("production")) == expected, op.path
            assert "{env}" in op.path
        else:
            assert op.role_for(None) == expected, op.path
        item = openapi_document()["paths"][op.path][op.method.lower()]
        stated = item["x-edge-role"]
        if isinstance(expected, tuple):
            assert stated == {"staging": expected[0], "production": expected[1]}
        else:
            assert stated == (expected or "any")


def test_document_shape() -> None:
    doc = openapi_document()
    assert doc["openapi"] == "3.1.0"
    assert doc["security"] == [{"bearer": []}]
    assert doc["components"]["securitySchemes"]["bearer"] == {"type": "http", "scheme": "bearer"}
    components = doc["components"]["schemas"]
    for ref in _refs(doc):
        assert ref.startswith("#/components/schemas/")
        assert ref.removeprefix("#/components/schemas/") in components, ref
    assert json.loads(openapi_json()) == doc
    ids = [op.operation_id for op in OPERATIONS]
    assert len(ids) == len(set(ids))


def test_every_operation_documents_auth_failures_with_the_error_body() -> None:
    doc = openapi_document()
    error = {"$ref": "#/components/schemas/ErrorResponse"}
    for path, item in doc["paths"].items():
        for method, op in item.items():
            for status in ("401", "403"):
                content = op["responses"][status]["content"]["application/json"]
                assert content["schema"] == error, (method, path, status)
            for status, response in op["responses"].items():
                if int(status) >= 400:
                    assert response["content"]["application/json"]["schema"] == error
            if "{site}" in path:
                assert "404" in op["responses"], (method, path)


def test_error_schema_is_the_spec_error_body() -> None:
    components = openapi_document()["components"]["schemas"]
    assert components["ErrorResponse"]["required"] == ["error"]
    assert components["ErrorDetail"]["required"] == ["code", "message"]
    assert components["ErrorDetail"]["properties"] == {
        "code": {"type": "string"},
        "message": {"type": "string"},
    }


@pytest.mark.parametrize("op", OPERATIONS, ids=lambda op: f"{op.method} {op.path}")
def test_request_schemas_are_the_decoders_types(op: Any) -> None:
    """The request schema is the Struct the handler decodes with, not a copy of it."""
    if op.body is None:
        return
    (expected,), components = msgspec.json.schema_components(
        [op.body], ref_template="#/components/schemas/{name}"
    )
    doc = openapi_document()
    item = doc["paths"][op.path][op.method.lower()]
    assert item["requestBody"]["content"]["application/json"]["schema"] == expected
    for name, schema in components.items():
        assert doc["components"]["schemas"][name] == schema
    assert op.body in schemas._decoders


def test_roles_are_ordered_as_the_config_ranks_them() -> None:
    for op in OPERATIONS:
        if op.staging_role is not None and op.role is not None:
            assert ROLE_RANK[op.staging_role] <= ROLE_RANK[op.role]
