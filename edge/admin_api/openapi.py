"""The admin API's OpenAPI 3.1 document, generated from the table of operations.

:func:`openapi_document` turns :data:`edge.admin_api.operations.OPERATIONS` into
the document with no IO: schemas come from the very msgspec Structs that decode
the requests and encode the answers (:mod:`edge.admin_api.schemas`), through
``msgspec.json.schema_components``, so the document cannot describe a shape the
code does not produce. The same table registers the routes and drives
authorization, so the document cannot list a call the router lacks; the live
schemathesis run checks that answers keep to the document.

The document is served at ``GET /v1/openapi.json`` and, like every admin call,
needs a valid token (any role): the API has no anonymous surface at all.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

import edge
from edge.admin_api import schemas as s
from edge.admin_api.operations import OPERATIONS, Operation

_REF = "#/components/schemas/{name}"
# Answers that carry a Retry-After header besides their JSON body.
_RETRY_AFTER = frozenset({503})

_PATH_PARAMS: dict[str, Mapping[str, Any]] = {
    "site": {"type": "string", "minLength": 1},
    "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
    "id": {"type": "string", "minLength": 1},
    "env": {"enum": ["staging", "production"]},
}


def _path_params(path: str) -> list[str]:
    return [part[1:-1] for part in path.split("/") if part.startswith("{")]


def _required(body: type[Any]) -> bool:
    return any(f.required for f in msgspec.structs.fields(body))


def _json(schema: Mapping[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": dict(schema)}}


def _operation_doc(op: Operation, refs: Mapping[type[Any], Mapping[str, Any]]) -> dict[str, Any]:
    parameters: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": dict(_PATH_PARAMS[name])}
        for name in _path_params(op.path)
    ]
    parameters += [
        {"name": p.name, "in": "query", "required": False, "schema": dict(p.schema)}
        | ({"description": p.description} if p.description else {})
        for p in op.query
    ]
    responses: dict[str, Any] = {}
    for status, answer in op.responses.items():
        doc: dict[str, Any] = {"description": "success"}
        if isinstance(answer, tuple):
            doc["content"] = _json({"oneOf": [dict(refs[a]) for a in answer]})
        elif answer is not None:
            doc["content"] = _json(refs[answer])
        elif op.text_answer is not None:
            doc["content"] = {op.text_answer: {"schema": {"type": "string"}}}
        elif op.operation_id == "openapi":
            doc["content"] = _json({"type": "object"})
        responses[str(status)] = doc
    for status, why in sorted(op.error_answers.items()):
        responses[str(status)] = {
            "description": why,
            "content": _json(refs[s.ErrorResponse]),
        }
        if status in _RETRY_AFTER:
            responses[str(status)]["headers"] = {
                "Retry-After": {
                    "description": "seconds to wait before trying again",
                    "schema": {"type": "integer", "minimum": 0},
                }
            }
    role: Any = op.role
    if op.staging_role is not None:
        role = {"staging": op.staging_role, "production": op.role}
    doc = {
        "operationId": op.operation_id,
        "summary": op.summary,
        "x-edge-role": role if role is not None else "any",
        "parameters": parameters,
        "responses": responses,
    }
    if op.raw_body:
        doc["requestBody"] = {
            "required": True,
            "content": {"application/octet-stream": {"schema": {}}},
        }
    elif op.body is not None:
        doc["requestBody"] = {"required": _required(op.body), "content": _json(refs[op.body])}
    return doc


def openapi_document(operations: Sequence[Operation] = OPERATIONS) -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``operations`` (pure: no IO, same input same output)."""
    types: list[type[Any]] = [s.ErrorResponse]
    for op in operations:
        for answers in [op.body, *op.responses.values()]:
            for answer in answers if isinstance(answers, tuple) else (answers,):
                if answer is not None and answer not in types:
                    types.append(answer)
    schemas, components = msgspec.json.schema_components(types, ref_template=_REF)
    refs = dict(zip(types, schemas, strict=True))
    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        paths.setdefault(op.path, {})[op.method.lower()] = _operation_doc(op, refs)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "edge admin API",
            "version": edge.__version__,
            "description": (
                "Every call needs 'Authorization: Bearer <token>': 401 without a valid"
                " token, 403 for a role or site it lacks. x-edge-role is the least role"
                ' of each call. Errors are {"error": {"code", "message"}}.'
            ),
        },
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
    }


@functools.cache
def openapi_json() -> bytes:
    """:func:`openapi_document` of :data:`OPERATIONS` as JSON, encoded once."""
    return msgspec.json.encode(openapi_document())
