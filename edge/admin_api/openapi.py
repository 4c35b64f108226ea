"""The admin API's OpenAPI 3.1 document, built from a declarative table of operations.

How this works
--------------
:data:`OPERATIONS` lists every call of the API once: method, path, the role it
needs, its request Struct, its response Struct per status, its query parameters.
:func:`openapi_document` turns the table into the document with no IO: schemas
come from the very msgspec Structs that decode the requests and encode the
answers (:mod:`edge.admin_api.schemas`), through
``msgspec.json.schema_components``, so the document cannot describe a shape the
code does not produce. A unit test keeps this table and the application's router
in step (every route has its operation and the other way round); the live
schemathesis run checks that answers keep to the document.

The document is served at ``GET /v1/openapi.json`` and, like every admin call,
needs a valid token (any role): the API has no anonymous surface at all.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec

import edge
from edge.admin_api import schemas as s
from edge.config import Role

OPENAPI_PATH = "/v1/openapi.json"
_REF = "#/components/schemas/{name}"
_SITE = "/v1/sites/{site}"

# Error statuses every operation of a site may answer, and why.
_AUTH_ERRORS = {
    401: "no token, or a token edge does not know",
    403: "the token lacks the role, or the site",
}
_SITE_ERRORS = {
    **_AUTH_ERRORS,
    404: "no such site (unknown_site, to a token that may see every site) or resource",
}
_BODY_ERRORS = {
    400: "the body is not valid JSON of the documented shape",
    413: "the body is larger than max_request_bytes",
    415: "the body is not application/json",
}
_ERROR_TEXT = {
    400: "bad request",
    401: "unauthorized",
    403: "forbidden",
    404: "not found",
    409: "conflict",
    412: "If-Match does not match the environments' current ETag",
    413: "request body too large",
    415: "unsupported media type",
    422: "blobs named by the snapshot are not uploaded",
    503: "busy: large admin work waited 60 s for a slot (edge.admin_api.budget); nothing"
    " was done, try again after Retry-After seconds",
}
# Answers that carry a Retry-After header besides their JSON body.
_RETRY_AFTER = frozenset({503})


Answer = type[Any] | tuple[type[Any], ...] | None


@dataclass(frozen=True, slots=True)
class Param:
    """One query parameter."""

    name: str
    schema: Mapping[str, Any]
    description: str = ""


@dataclass(frozen=True, slots=True)
class Operation:
    """One admin API call, as the document describes it.

    ``role`` is the least role the call needs (``None``: any valid token). Calls
    with an ``{env}`` path parameter need ``staging_role`` for staging and
    ``role`` for production.
    """

    method: str
    path: str
    operation_id: str
    summary: str
    role: Role | None
    # Per status: a Struct, a tuple of Structs (one of them: oneOf), or None.
    responses: Mapping[int, Answer]
    errors: Mapping[int, str] = field(default_factory=dict)
    body: type[Any] | None = None
    raw_body: bool = False
    query: Sequence[Param] = ()
    staging_role: Role | None = None
    # The success answer's media type when it is not JSON (e.g. Prometheus text).
    text_answer: str | None = None

    def role_for(self, env: str | None) -> Role | None:
        """The least role this call needs (for ``env`` when the path has one)."""
        if env == "staging" and self.staging_role is not None:
            return self.staging_role
        return self.role


_LIMIT = {"type": "integer", "minimum": 1, "maximum": 500}
_ID_CURSOR = {"type": "integer", "minimum": 1, "maximum": 2**62}
_DAY = {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"}


def _body_op(
    method: str,
    path: str,
    operation_id: str,
    summary: str,
    role: Role,
    body: type[Any],
    responses: Mapping[int, Answer],
    errors: Mapping[int, str] | None = None,
    staging_role: Role | None = None,
) -> Operation:
    return Operation(
        method,
        path,
        operation_id,
        summary,
        role,
        responses,
        errors={**_SITE_ERRORS, **_BODY_ERRORS, **(errors or {})},
        body=body,
        staging_role=staging_role,
    )


def _get_op(
    path: str,
    operation_id: str,
    summary: str,
    role: Role,
    answer: type[Any],
    query: Sequence[Param] = (),
    errors: Mapping[int, str] | None = None,
    staging_role: Role | None = None,
) -> Operation:
    return Operation(
        "GET",
        path,
        operation_id,
        summary,
        role,
        {200: answer},
        errors={**_SITE_ERRORS, **(errors or {})},
        query=query,
        staging_role=staging_role,
    )


_MOVE_ERRORS = {
    409: "the move conflicts with the current state (see the error code)",
    412: _ERROR_TEXT[412],
}

OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "GET",
        OPENAPI_PATH,
        "openapi",
        "This document",
        None,
        {200: None},
        errors=_AUTH_ERRORS,
    ),
    Operation(
        "GET",
        "/v1/sites",
        "listSites",
        "The sites this token may see, their hosts, and who the token is",
        None,
        {200: s.SitesResponse},
        errors=_AUTH_ERRORS,
    ),
    Operation(
        "GET",
        "/v1/nodes",
        "listNodes",
        "The nodes sharing the PostgreSQL store and the generation each serves (none on SQLite)",
        None,
        {200: s.NodesResponse},
        errors=_AUTH_ERRORS,
    ),
    Operation(
        "GET",
        "/metrics",
        "metrics",
        "Prometheus metrics of every worker and site (a token of any role that sees every"
        " site; none with [server] metrics_public)",
        None,
        {200: None},
        errors={**_AUTH_ERRORS, 403: "the token is scoped to some sites, not all"},
        text_answer="text/plain",
    ),
    _body_op(
        "POST",
        f"{_SITE}/blobs/missing",
        "missingBlobs",
        "Which of these blobs the site lacks",
        "editor",
        s.MissingBlobsRequest,
        {200: s.MissingBlobsResponse},
    ),
    Operation(
        "PUT",
        f"{_SITE}/blobs/{{sha256}}",
        "putBlob",
        "Upload one blob (raw bytes at their sha256)",
        "editor",
        {200: s.BlobStored, 201: s.BlobStored},
        errors={
            **_SITE_ERRORS,
            400: "the bytes do not hash to the address, or the address is not a sha256",
            413: "the blob is larger than max_blob_bytes (streamed: nothing is stored)",
        },
        raw_body=True,
    ),
    _body_op(
        "POST",
        f"{_SITE}/snapshots",
        "createSnapshot",
        "Create a snapshot (on top of a parent when given)",
        "editor",
        s.CreateSnapshotRequest,
        {201: s.SnapshotSummary},
        errors={422: _ERROR_TEXT[422], 503: _ERROR_TEXT[503]},
    ),
    _get_op(
        f"{_SITE}/snapshots",
        "listSnapshots",
        "Snapshots, newest first",
        "editor",
        s.SnapshotList,
        query=(
            Param("limit", _LIMIT),
            Param("before", {"type": "string"}, "continue after this snapshot id"),
        ),
        errors={400: "a query parameter is out of range"},
    ),
    _get_op(
        f"{_SITE}/snapshots/{{id}}",
        "getSnapshot",
        "One snapshot with its manifest and settings",
        "editor",
        s.SnapshotDetail,
        errors={503: _ERROR_TEXT[503]},
    ),
    _get_op(
        f"{_SITE}/environments",
        "getEnvironments",
        "Where staging and production point",
        "editor",
        s.Environments,
    ),
    _body_op(
        "PUT",
        f"{_SITE}/environments/{{env}}",
        "setEnvironment",
        "Point an environment at a snapshot (compare-and-swap with expect)",
        "publisher",
        s.SetEnvironmentRequest,
        {200: s.EnvironmentSet},
        errors={
            409: (
                "expect does not match the pointer, or the snapshot has no"
                " files and allow_empty is not set (empty_environment)"
            )
        },
        staging_role="editor",
    ),
    _body_op(
        "POST",
        f"{_SITE}/publish",
        "publish",
        "Publish staging (or some paths of it) to production, or preview it (dry_run)",
        "publisher",
        s.PublishRequest,
        {200: (s.Published, s.PublishPreview)},
        errors={
            **_MOVE_ERRORS,
            409: (
                "the move conflicts with the current state (see the error code); drift"
                " lists the paths changed on both sides under conflicts, and with dry_run"
                " carries if_forced, the preview of the same publish with force"
            ),
            504: 'with "wait": "all": committed, but not every node serves it yet (laggards)',
        },
    ),
    _body_op(
        "POST",
        f"{_SITE}/refresh",
        "refresh",
        "Staging := production",
        "publisher",
        s.RefreshRequest,
        {200: s.Refreshed},
        errors=_MOVE_ERRORS,
    ),
    _body_op(
        "POST",
        f"{_SITE}/rollback",
        "rollback",
        "Production := its previous (or the given) snapshot",
        "publisher",
        s.RollbackRequest,
        {200: s.Published},
        errors=_MOVE_ERRORS,
    ),
    _body_op(
        "POST",
        f"{_SITE}/schedules",
        "addSchedule",
        "Schedule staging's current snapshot to go live at a moment",
        "publisher",
        s.ScheduleRequest,
        {201: s.ScheduleDoc},
        errors={409: "staging has no snapshot to schedule"},
    ),
    _get_op(
        f"{_SITE}/schedules",
        "listSchedules",
        "Schedules of the site",
        "editor",
        s.ScheduleList,
        query=(
            Param("status", {"enum": ["pending", "done", "failed", "cancelled"]}),
            Param("limit", _LIMIT),
        ),
        errors={400: "a query parameter is out of range"},
    ),
    _get_op(
        f"{_SITE}/schedules/{{id}}",
        "getSchedule",
        "One schedule",
        "editor",
        s.ScheduleDoc,
    ),
    Operation(
        "DELETE",
        f"{_SITE}/schedules/{{id}}",
        "cancelSchedule",
        "Cancel a pending schedule",
        "publisher",
        {204: None},
        errors={**_SITE_ERRORS, 409: "the schedule is no longer pending"},
    ),
    _get_op(
        f"{_SITE}/history",
        "history",
        "Every pointer move, newest first",
        "editor",
        s.HistoryList,
        query=(
            Param("env", {"enum": ["staging", "production"]}),
            Param("before", _ID_CURSOR, "continue after this entry id"),
            Param("limit", _LIMIT),
        ),
        errors={400: "a query parameter is out of range"},
    ),
    _get_op(
        f"{_SITE}/diff",
        "diff",
        "Paths added, removed and changed between two environments or snapshots",
        "editor",
        s.DiffResponse,
        query=(
            Param("from", {"type": "string"}, "an environment or a snapshot id"),
            Param("to", {"type": "string"}, "an environment or a snapshot id"),
        ),
        errors={503: _ERROR_TEXT[503]},
    ),
    _get_op(
        f"{_SITE}/forms/{{env}}",
        "listForms",
        "Form submissions of one environment, newest first (a page stops at 500 or 4 MiB)",
        "publisher",
        s.FormSubmissionList,
        query=(
            Param("form", {"type": "string"}),
            Param("before", _ID_CURSOR, "continue after this submission id"),
            Param("limit", _LIMIT),
        ),
        errors={400: "a query parameter is out of range"},
        staging_role="editor",
    ),
    Operation(
        "DELETE",
        f"{_SITE}/forms/{{env}}",
        "deleteForms",
        "Delete an environment's submissions: all, those of one form, or those before a time",
        "publisher",
        {200: s.FormsDeleted},
        query=(
            Param("before", {"type": "string"}, "RFC 3339 time: only submissions before it"),
            Param("form", {"type": "string"}, "only this form's submissions"),
        ),
        errors={**_SITE_ERRORS, 400: "before is not an RFC 3339 time with an offset"},
    ),
    Operation(
        "DELETE",
        f"{_SITE}/forms/{{env}}/{{id}}",
        "deleteFormSubmission",
        "Delete one submission",
        "publisher",
        {204: None},
        errors={**_SITE_ERRORS, 400: "the id is not a submission id"},
    ),
    _get_op(
        f"{_SITE}/analytics/{{env}}",
        "analytics",
        "Page views of one environment per path and day",
        "editor",
        s.Analytics,
        query=(
            Param("from", _DAY, "first day (default: 30 days ago)"),
            Param("to", _DAY, "last day (default: today)"),
            Param("limit", {"type": "integer", "minimum": 1, "maximum": 100_000}),
        ),
        errors={400: "a query parameter is out of range"},
    ),
    _get_op(
        f"{_SITE}/webhooks/{{env}}",
        "webhookDeliveries",
        "Webhook deliveries of one environment, newest first",
        "publisher",
        s.DeliveryList,
        query=(Param("before", _ID_CURSOR), Param("limit", _LIMIT)),
        errors={400: "a query parameter is out of range"},
    ),
    _body_op(
        "POST",
        f"{_SITE}/preview-links",
        "createPreviewLink",
        "A signed link that shows one snapshot on the staging host",
        "editor",
        s.PreviewLinkRequest,
        {201: s.PreviewLink},
        errors={409: "staging has no snapshot to preview"},
    ),
    _body_op(
        "POST",
        f"{_SITE}/gc",
        "collectGarbage",
        "Remove the snapshots and blobs the retention policy no longer keeps"
        " (dry_run: only count them); history rows stay",
        "admin",
        s.GcRequest,
        {200: s.GcResult},
    ),
)

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
    for status, why in sorted(op.errors.items()):
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


def operation_keys(operations: Sequence[Operation] = OPERATIONS) -> set[tuple[str, str]]:
    """``(METHOD, path)`` of every operation, as aiohttp's router spells them."""
    return {(op.method, op.path) for op in operations}


@functools.cache
def openapi_json() -> bytes:
    """:func:`openapi_document` of :data:`OPERATIONS` as JSON, encoded once."""
    return msgspec.json.encode(openapi_document())
