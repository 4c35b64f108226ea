"""Admin API payloads: frozen msgspec Structs with one decoder each, built once."""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypeVar

import msgspec

from edge.errors import BadRequest

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


class ScheduleRequest(_Payload, frozen=True):
    at: Annotated[str, msgspec.Meta(max_length=64)]
    paths: Paths | None = None
    settings: bool = False


class RefreshRequest(_Payload, frozen=True):
    force: bool = False


class RollbackRequest(_Payload, frozen=True):
    to: SnapshotId | None = None


class PreviewLinkRequest(_Payload, frozen=True):
    ttl: Annotated[int, msgspec.Meta(ge=60, le=30 * 86_400)]
    snapshot: SnapshotId | None = None  # default: staging's current snapshot


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
    return value
