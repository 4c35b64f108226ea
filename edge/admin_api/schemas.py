"""Admin API payloads: frozen msgspec Structs with one decoder each, built once.

Requests are decoded into the ``*Request`` Structs; every answer is encoded from
one of the response Structs below, so that the OpenAPI document
(:mod:`edge.admin_api.openapi`), built from these same types, is the contract
the API keeps.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypeVar

import msgspec

from edge.errors import BadRequest
from edge.router import Env
from edge.snapshots.model import (
    FormSubmission,
    HistoryEntry,
    ManifestEntry,
    NodeState,
    PageViews,
    SnapshotInfo,
)

Sha256 = Annotated[str, msgspec.Meta(pattern="^[0-9a-f]{64}$")]
SnapshotId = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern="^[0-9a-z]+$")]
ContentType = Annotated[
    str, msgspec.Meta(min_length=1, max_length=255, pattern=r"^[\x21-\x7e][\x20-\x7e]*$")
]
MAX_FILES = 200_000


class _Payload(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    pass


class MissingBlobsRequest(_Payload, frozen=True):
    sha256: Annotated[list[Sha256], msgspec.Meta(max_length=MAX_FILES)]


class FileSpec(_Payload, frozen=True):
    sha256: Sha256
    content_type: ContentType | None = None
    noindex: bool = False


class CreateSnapshotRequest(_Payload, frozen=True):
    files: Annotated[dict[str, FileSpec], msgspec.Meta(max_length=MAX_FILES)] = {}
    parent: SnapshotId | None = None
    delete: Annotated[list[str], msgspec.Meta(max_length=MAX_FILES)] = []
    settings: dict[str, Any] | None = None
    message: Annotated[str, msgspec.Meta(max_length=10_000)] = ""


class SetEnvironmentRequest(_Payload, frozen=True):
    snapshot: SnapshotId
    expect: SnapshotId | msgspec.UnsetType | None = msgspec.UNSET
    # Extension: how the history names this move ("push" from `edge push`).
    action: Literal["set", "push"] = "set"
    # A snapshot without files is refused (409 empty_environment) unless this is set.
    allow_empty: bool = False


Paths = Annotated[list[str], msgspec.Meta(max_length=MAX_FILES)]


class PublishRequest(_Payload, frozen=True):
    paths: Paths | None = None
    force: bool = False
    # Extension: with ``paths``, also publish staging's settings as a piece.
    settings: bool = False
    # Extension: "all" answers only once every live node serves the publish
    # (several machines on PostgreSQL), or 504 after ``wait_timeout`` seconds.
    wait: Literal["commit", "all"] = "commit"
    wait_timeout: Annotated[float, msgspec.Meta(gt=0, le=300)] = 10.0
    # What the publish would do, and nothing moves (PublishPreview); a publish that
    # would be refused answers the same refusal (drift: 409, with ``if_forced``).
    dry_run: bool = False


class ScheduleRequest(_Payload, frozen=True):
    at: Annotated[str, msgspec.Meta(max_length=64)]
    paths: Paths | None = None
    settings: bool = False


class RefreshRequest(_Payload, frozen=True):
    force: bool = False


class RollbackRequest(_Payload, frozen=True):
    to: SnapshotId | None = None


class GcRequest(_Payload, frozen=True):
    dry_run: bool = False  # true: only say what would be removed


class PreviewLinkRequest(_Payload, frozen=True):
    ttl: Annotated[int, msgspec.Meta(ge=60, le=30 * 86_400)]
    snapshot: SnapshotId | None = None  # default: staging's current snapshot


# -- answers ----------------------------------------------------------------------------


class _Answer(msgspec.Struct, frozen=True, kw_only=True):
    pass


class ErrorDetail(_Answer, frozen=True):
    code: str
    message: str


class ErrorResponse(_Answer, frozen=True):
    """Every error: ``{"error": {"code", "message"}}``, plus what some errors add."""

    error: ErrorDetail
    missing: list[str] | msgspec.UnsetType = msgspec.UNSET  # 422: blobs not uploaded
    conflicts: list[str] | msgspec.UnsetType = msgspec.UNSET  # 409 drift: paths both changed
    paths: list[str] | msgspec.UnsetType = msgspec.UNSET  # 400 bad paths, 409 refresh
    parent: str | msgspec.UnsetType = msgspec.UNSET  # 400: the parent that does not exist
    current: str | msgspec.UnsetType | None = msgspec.UNSET  # 409: where the pointer is
    etag: str | msgspec.UnsetType = msgspec.UNSET  # 412: the environments' current ETag
    retry_after: int | msgspec.UnsetType = msgspec.UNSET  # 503 busy: seconds (Retry-After too)


class MissingBlobsResponse(_Answer, frozen=True):
    missing: list[str]


class BlobStored(_Answer, frozen=True):
    sha256: str
    size: int


class SnapshotHead(_Answer, frozen=True):
    """What every answer about one snapshot starts with (fields of ``Snapshot``)."""

    id: str
    site: str
    parent: str | None
    message: str
    created_at: str
    actor: str


class SnapshotSummary(SnapshotHead, frozen=True):
    files: int


class SnapshotDetail(SnapshotHead, frozen=True):
    files: dict[str, ManifestEntry]
    file_count: int
    settings: dict[str, Any]


class SnapshotList(_Answer, frozen=True):
    snapshots: list[SnapshotInfo]
    next: str | None


class PointerDoc(_Answer, frozen=True):
    snapshot: str | None
    base: str | None
    updated_at: str | None
    actor: str | None
    message: str | None = None  # the snapshot's message (``edge push -m``)


class Environments(_Answer, frozen=True):
    staging: PointerDoc
    production: PointerDoc


class EnvironmentSet(_Answer, frozen=True):
    """The environment that was set (one key: ``staging`` or ``production``)."""

    staging: PointerDoc | msgspec.UnsetType = msgspec.UNSET
    production: PointerDoc | msgspec.UnsetType = msgspec.UNSET


class Published(_Answer, frozen=True):
    """A publish or rollback: production's new and previous snapshot, what was done."""

    production: str | None
    previous: str | None
    action: str | None


class PublishPreview(_Answer, frozen=True):
    """A publish's dry run (``dry_run: true``): production as the publish would leave it."""

    # added/removed/changed: against production now. kept: production's own changes
    # since staging's base (emergency fixes) that the merge keeps. conflicts: paths
    # changed on both sides, here only with force (staging's version wins); without
    # force the dry run answers the real publish's 409 drift.

    dry_run: bool
    production: str | None
    staging: str
    action: str | None
    added: list[str]
    removed: list[str]
    changed: list[str]
    settings_changed: bool
    kept: list[str]
    conflicts: list[str]


class Refreshed(_Answer, frozen=True):
    staging: str | None
    previous: str | None
    action: str | None


ScheduleStatus = Literal["pending", "done", "failed", "cancelled"]
DeliveryStatus = Literal["pending", "delivered", "failed"]


class ScheduleDoc(_Answer, frozen=True):
    id: str
    at: str
    snapshot: str
    paths: list[str] | None
    settings: bool
    status: ScheduleStatus
    error: str | None
    created_at: str
    actor: str
    fired_at: str | None


class ScheduleList(_Answer, frozen=True):
    schedules: list[ScheduleDoc]


class HistoryDoc(HistoryEntry, frozen=True, kw_only=True):
    """One pointer move, with the message of the snapshot it moved to (``edge push -m``)."""

    message: str


class HistoryList(_Answer, frozen=True):
    history: list[HistoryDoc]
    next: int | None


class DiffResponse(_Answer, frozen=True):
    from_: str | None = msgspec.field(name="from")
    to: str | None
    added: list[str]
    removed: list[str]
    changed: list[str]
    settings_changed: bool


class FormSubmissionList(_Answer, frozen=True):
    submissions: list[FormSubmission]
    next: int | None


class FormsDeleted(_Answer, frozen=True):
    deleted: int


class DayViews(_Answer, frozen=True):
    day: str
    views: int


class Analytics(_Answer, frozen=True):
    env: Env
    from_: str = msgspec.field(name="from")
    to: str
    total: int
    days: list[DayViews]
    paths: list[PageViews]


class Delivery(_Answer, frozen=True):
    id: int
    event: str
    url: str
    status: DeliveryStatus
    attempts: int
    created_at: str
    delivered_at: str | None
    last_error: str | None


class DeliveryList(_Answer, frozen=True):
    deliveries: list[Delivery]
    next: int | None


class PreviewLink(_Answer, frozen=True):
    url: str
    snapshot: str
    expires_at: str


class GcResult(_Answer, frozen=True):
    """What a collection removed (or, with ``dry_run``, would remove)."""

    dry_run: bool
    snapshots: list[str]
    blobs: int
    bytes: int


T = TypeVar("T")
_decoders: dict[type[Any], msgspec.json.Decoder[Any]] = {
    t: msgspec.json.Decoder(t)
    for t in (
        MissingBlobsRequest,
        CreateSnapshotRequest,
        SetEnvironmentRequest,
        PublishRequest,
        ScheduleRequest,
        RefreshRequest,
        RollbackRequest,
        PreviewLinkRequest,
        GcRequest,
    )
}


def decode(payload_type: type[T], body: bytes) -> T:
    """Decode a JSON request body; 400 naming the field on any problem."""
    if not body.strip():
        body = b"{}"
    try:
        value: T = _decoders[payload_type].decode(body)
    except msgspec.ValidationError as exc:
        raise BadRequest(f"invalid request body: {exc}") from None
    except msgspec.DecodeError as exc:
        raise BadRequest(f"request body is not valid JSON: {exc}") from None
    except RecursionError:  # settings are free-form JSON: arrays in arrays in arrays...
        raise BadRequest("request body is nested too deeply") from None
    return value


# -- answers of the site directory and the cluster ---------------------------------------


class EnvironmentSummary(_Answer, frozen=True):
    """Where visitors reach one environment: its hosts and the URL of the first one."""

    hosts: list[str]
    url: str | None  # e.g. "http://acme.example:8080"; None when it has no host


class SiteSummary(_Answer, frozen=True):
    id: str
    staging: EnvironmentSummary
    production: EnvironmentSummary


class VisitorListeners(_Answer, frozen=True):
    """The visitor listeners' addresses (``host:port``), as configured."""

    http: str
    https: str | None = None


class Caller(_Answer, frozen=True):
    """The token a request was made with (never the token itself)."""

    name: str
    role: str
    sites: list[str]


class SiteDirectory(_Answer, frozen=True):
    """Every configured site and the visitor listeners, before filtering by token."""

    visitor: VisitorListeners
    sites: list[SiteSummary]


class NodeDoc(NodeState, frozen=True, kw_only=True):
    """One edge node sharing the PostgreSQL store, as its last heartbeat left it."""

    current: bool  # live and serving the cluster's generation (every committed move)


class NodesResponse(_Answer, frozen=True):
    """``GET /v1/nodes``: the nodes of a cluster (none on the single-machine SQLite store)."""

    backend: Literal["sqlite", "postgres"]
    generation: int | None  # the cluster's pointer generation (PostgreSQL only)
    nodes: list[NodeDoc]


class SitesResponse(_Answer, frozen=True):
    """``GET /v1/sites``: the sites the calling token may see."""

    caller: Caller
    visitor: VisitorListeners
    sites: list[SiteSummary]
