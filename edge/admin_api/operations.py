"""The admin API's one table: every call, the role it needs, what it takes and answers.

How this works
--------------
:data:`OPERATIONS` lists every call of the admin listener once (starlette's
``routes`` list is the model). Three things read it and nothing else says the same:

- routing (:func:`edge.admin_api.application.admin_application`): each operation
  is a route to the :class:`~edge.admin_api.app.AdminApi` method named after its
  ``operation_id`` (``createSnapshot`` -> ``create_snapshot``; a missing method
  stops the app from being built);
- authorization (:mod:`edge.admin_api.gate`): one middleware reads the matched
  operation's ``role`` (``staging_role`` for a staging ``{env}``), its site
  scoping (a ``{site}`` path) and ``every_site`` before any handler runs;
- the OpenAPI document (:mod:`edge.admin_api.openapi`), and from it
  docs/admin-api.md: request and answer schemas come from the very msgspec
  Structs named here (:mod:`edge.admin_api.schemas`).

Pure data: no aiohttp, no IO.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from edge.admin_api import schemas as s
from edge.config import Role

OPENAPI_PATH = "/v1/openapi.json"
_SITE = "/v1/sites/{site}"

# Error statuses an operation may answer, and why: every call (a token), every call
# of a site, every call with a JSON body. An operation's own ``errors`` come on top.
AUTH_ERRORS = {
    401: "no token, or a token edge does not know",
    403: "the token lacks the role, or the site",
}
SITE_ERRORS = {
    404: "no such site (unknown_site, to a token that may see every site) or resource",
}
BODY_ERRORS = {
    400: "the body is not valid JSON of the documented shape",
    413: "the body is larger than max_request_bytes",
    415: "the body is not application/json",
}
_BUSY = (
    "busy: large admin work waited 60 s for a slot (edge.admin_api.budget); nothing"
    " was done, try again after Retry-After seconds"
)
_OUT_OF_RANGE = {400: "a query parameter is out of range"}
_MOVE_ERRORS = {
    409: "the move conflicts with the current state (see the error code)",
    412: "If-Match does not match the environments' current ETag",
}

# Per status: a Struct, a tuple of Structs (one of them: oneOf), or None.
Answer = type[Any] | tuple[type[Any], ...] | None


@dataclass(frozen=True, slots=True)
class Param:
    """One query parameter."""

    name: str
    schema: Mapping[str, Any]
    description: str = ""


@dataclass(frozen=True, slots=True)
class Operation:
    """One admin API call.

    ``role`` is the least role the call needs (``None``: any valid token). Calls
    with an ``{env}`` path parameter need ``staging_role`` (when set) for staging
    and ``role`` for production. A ``{site}`` path is scoped: the token must see
    the site. ``every_site`` (the 403 message) asks for a token that sees every
    site, whatever its role.
    """

    method: str
    path: str
    operation_id: str
    summary: str
    role: Role | None
    responses: Mapping[int, Answer]
    errors: Mapping[int, str] = field(default_factory=dict)
    body: type[Any] | None = None
    raw_body: bool = False
    query: Sequence[Param] = ()
    staging_role: Role | None = None
    every_site: str | None = None
    # The success answer's media type when it is not JSON (e.g. Prometheus text).
    text_answer: str | None = None

    def role_for(self, env: str | None) -> Role | None:
        """The least role this call needs (for ``env`` when the path has one)."""
        if env == "staging" and self.staging_role is not None:
            return self.staging_role
        return self.role

    @property
    def site_scoped(self) -> bool:
        return "{site}" in self.path

    @property
    def handler(self) -> str:
        """The name of the AdminApi method that answers it: ``listSites`` -> ``list_sites``."""
        return re.sub("([A-Z])", r"_\1", self.operation_id).lower()

    @property
    def error_answers(self) -> dict[int, str]:
        """Every error status the call may answer, and why."""
        return {
            **AUTH_ERRORS,
            **(SITE_ERRORS if self.site_scoped else {}),
            **(BODY_ERRORS if self.body is not None else {}),
            **self.errors,
        }


_LIMIT = {"type": "integer", "minimum": 1, "maximum": 500}
_ID_CURSOR = {"type": "integer", "minimum": 1, "maximum": 2**62}
_DAY = {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"}

OPERATIONS: tuple[Operation, ...] = (
    Operation("GET", OPENAPI_PATH, "openapi", "This document", None, {200: None}),
    Operation(
        "GET",
        "/v1/sites",
        "listSites",
        "The sites this token may see, their hosts, and who the token is",
        None,
        {200: s.SitesResponse},
    ),
    Operation(
        "GET",
        "/v1/nodes",
        "listNodes",
        "The nodes sharing the PostgreSQL store and the generation each serves (none on SQLite)",
        None,
        {200: s.NodesResponse},
    ),
    Operation(
        "GET",
        "/metrics",
        "metrics",
        "Prometheus metrics of every worker and site (a token of any role that sees every"
        " site; none with [server] metrics_public)",
        None,
        {200: None},
        errors={403: "the token is scoped to some sites, not all"},
        every_site=(
            "metrics show every site's figures: use a token for all sites"
            ' (sites = ["*"] or the admin role), or set metrics_public'
        ),
        text_answer="text/plain",
    ),
    Operation(
        "POST",
        f"{_SITE}/blobs/missing",
        "missingBlobs",
        "Which of these blobs the site lacks",
        "editor",
        {200: s.MissingBlobsResponse},
        body=s.MissingBlobsRequest,
    ),
    Operation(
        "PUT",
        f"{_SITE}/blobs/{{sha256}}",
        "putBlob",
        "Upload one blob (raw bytes at their sha256)",
        "editor",
        {200: s.BlobStored, 201: s.BlobStored},
        errors={
            400: "the bytes do not hash to the address, or the address is not a sha256",
            413: "the blob is larger than max_blob_bytes (streamed: nothing is stored)",
        },
        raw_body=True,
    ),
    Operation(
        "POST",
        f"{_SITE}/snapshots",
        "createSnapshot",
        "Create a snapshot (on top of a parent when given)",
        "editor",
        {201: s.SnapshotSummary},
        errors={422: "blobs named by the snapshot are not uploaded", 503: _BUSY},
        body=s.CreateSnapshotRequest,
    ),
    Operation(
        "GET",
        f"{_SITE}/snapshots",
        "listSnapshots",
        "Snapshots, newest first",
        "editor",
        {200: s.SnapshotList},
        errors=_OUT_OF_RANGE,
        query=(
            Param("limit", _LIMIT),
            Param("before", {"type": "string"}, "continue after this snapshot id"),
        ),
    ),
    Operation(
        "GET",
        f"{_SITE}/snapshots/{{id}}",
        "getSnapshot",
        "One snapshot with its manifest and settings",
        "editor",
        {200: s.SnapshotDetail},
        errors={503: _BUSY},
    ),
    Operation(
        "GET",
        f"{_SITE}/environments",
        "getEnvironments",
        "Where staging and production point",
        "editor",
        {200: s.Environments},
    ),
    Operation(
        "PUT",
        f"{_SITE}/environments/{{env}}",
        "setEnvironment",
        "Point an environment at a snapshot (compare-and-swap with expect)",
        "publisher",
        {200: s.EnvironmentSet},
        errors={
            409: (
                "expect does not match the pointer, or the snapshot has no"
                " files and allow_empty is not set (empty_environment)"
            )
        },
        body=s.SetEnvironmentRequest,
        staging_role="editor",
    ),
    Operation(
        "POST",
        f"{_SITE}/publish",
        "publish",
        "Publish staging (or some paths of it) to production, or preview it (dry_run)",
        "publisher",
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
        body=s.PublishRequest,
    ),
    Operation(
        "POST",
        f"{_SITE}/refresh",
        "refresh",
        "Staging := production",
        "publisher",
        {200: s.Refreshed},
        errors=_MOVE_ERRORS,
        body=s.RefreshRequest,
    ),
    Operation(
        "POST",
        f"{_SITE}/rollback",
        "rollback",
        "Production := its previous (or the given) snapshot",
        "publisher",
        {200: s.Published},
        errors=_MOVE_ERRORS,
        body=s.RollbackRequest,
    ),
    Operation(
        "POST",
        f"{_SITE}/schedules",
        "addSchedule",
        "Schedule staging's current snapshot to go live at a moment",
        "publisher",
        {201: s.ScheduleDoc},
        errors={409: "staging has no snapshot to schedule"},
        body=s.ScheduleRequest,
    ),
    Operation(
        "GET",
        f"{_SITE}/schedules",
        "listSchedules",
        "Schedules of the site",
        "editor",
        {200: s.ScheduleList},
        errors=_OUT_OF_RANGE,
        query=(
            Param("status", {"enum": ["pending", "done", "failed", "cancelled"]}),
            Param("limit", _LIMIT),
        ),
    ),
    Operation(
        "GET",
        f"{_SITE}/schedules/{{id}}",
        "getSchedule",
        "One schedule",
        "editor",
        {200: s.ScheduleDoc},
    ),
    Operation(
        "DELETE",
        f"{_SITE}/schedules/{{id}}",
        "cancelSchedule",
        "Cancel a pending schedule",
        "publisher",
        {204: None},
        errors={409: "the schedule is no longer pending"},
    ),
    Operation(
        "GET",
        f"{_SITE}/history",
        "history",
        "Every pointer move, newest first",
        "editor",
        {200: s.HistoryList},
        errors=_OUT_OF_RANGE,
        query=(
            Param("env", {"enum": ["staging", "production"]}),
            Param("before", _ID_CURSOR, "continue after this entry id"),
            Param("limit", _LIMIT),
        ),
    ),
    Operation(
        "GET",
        f"{_SITE}/diff",
        "diff",
        "Paths added, removed and changed between two environments or snapshots",
        "editor",
        {200: s.DiffResponse},
        errors={503: _BUSY},
        query=(
            Param("from", {"type": "string"}, "an environment or a snapshot id"),
            Param("to", {"type": "string"}, "an environment or a snapshot id"),
        ),
    ),
    Operation(
        "GET",
        f"{_SITE}/forms/{{env}}",
        "listForms",
        "Form submissions of one environment, newest first (a page stops at 500 or 4 MiB)",
        "publisher",
        {200: s.FormSubmissionList},
        errors=_OUT_OF_RANGE,
        query=(
            Param("form", {"type": "string"}),
            Param("before", _ID_CURSOR, "continue after this submission id"),
            Param("limit", _LIMIT),
        ),
        staging_role="editor",
    ),
    Operation(
        "DELETE",
        f"{_SITE}/forms/{{env}}",
        "deleteForms",
        "Delete an environment's submissions: all, those of one form, or those before a time",
        "publisher",
        {200: s.FormsDeleted},
        errors={400: "before is not an RFC 3339 time with an offset"},
        query=(
            Param("before", {"type": "string"}, "RFC 3339 time: only submissions before it"),
            Param("form", {"type": "string"}, "only this form's submissions"),
        ),
    ),
    Operation(
        "DELETE",
        f"{_SITE}/forms/{{env}}/{{id}}",
        "deleteFormSubmission",
        "Delete one submission",
        "publisher",
        {204: None},
        errors={400: "the id is not a submission id"},
    ),
    Operation(
        "GET",
        f"{_SITE}/analytics/{{env}}",
        "analytics",
        "Page views of one environment per path and day",
        "editor",
        {200: s.Analytics},
        errors=_OUT_OF_RANGE,
        query=(
            Param("from", _DAY, "first day (default: 30 days ago)"),
            Param("to", _DAY, "last day (default: today)"),
            Param("limit", {"type": "integer", "minimum": 1, "maximum": 100_000}),
        ),
    ),
    Operation(
        "GET",
        f"{_SITE}/webhooks/{{env}}",
        "webhookDeliveries",
        "Webhook deliveries of one environment, newest first",
        "publisher",
        {200: s.DeliveryList},
        errors=_OUT_OF_RANGE,
        query=(Param("before", _ID_CURSOR), Param("limit", _LIMIT)),
    ),
    Operation(
        "POST",
        f"{_SITE}/preview-links",
        "createPreviewLink",
        "A signed link that shows one snapshot on the staging host",
        "editor",
        {201: s.PreviewLink},
        errors={409: "staging has no snapshot to preview"},
        body=s.PreviewLinkRequest,
    ),
    Operation(
        "POST",
        f"{_SITE}/gc",
        "collectGarbage",
        "Remove the snapshots and blobs the retention policy no longer keeps"
        " (dry_run: only count them); history rows stay",
        "admin",
        {200: s.GcResult},
        body=s.GcRequest,
    ),
)


def operation_keys(operations: Sequence[Operation] = OPERATIONS) -> set[tuple[str, str]]:
    """``(METHOD, path)`` of every operation, as aiohttp's router spells them."""
    return {(op.method, op.path) for op in operations}
