"""The one error tree of edge.

Every error a request can meet carries its HTTP status and a stable machine code;
the admin API's middleware turns any of them into the SPEC's JSON error body
``{"error": {"code": ..., "message": ...}}`` plus the error's ``extra`` fields.
"""

from __future__ import annotations

from typing import Any, ClassVar

import msgspec


class EdgeError(Exception):
    """Base of every error edge answers with a status of its own."""

    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal"

    def __init__(self, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        self.extra = extra

    def body(self) -> dict[str, Any]:
        """The JSON error document for this error."""
        doc: dict[str, Any] = {"error": {"code": self.code, "message": self.message}}
        doc.update(self.extra)
        return doc


class ConfigError(EdgeError):
    """The configuration file is unusable; start-up stops with this message."""

    code = "config"


class BadRequest(EdgeError):
    status = 400
    code = "bad_request"


class HashMismatch(BadRequest):
    """Uploaded bytes do not hash to the address they were sent to."""

    code = "hash_mismatch"


class TooManyPaths(BadRequest):
    """A snapshot would hold more paths than ``max_snapshot_paths``."""

    code = "too_many_paths"


class BadFraming(BadRequest):
    """A request whose length a proxy in front of edge could read differently."""

    code = "bad_framing"


class Unauthorized(EdgeError):
    status = 401
    code = "unauthorized"


class Forbidden(EdgeError):
    status = 403
    code = "forbidden"


class NotFound(EdgeError):
    status = 404
    code = "not_found"


class UnknownSite(NotFound):
    """No site has this id (told only to a token that may see every site)."""

    code = "unknown_site"


class Conflict(EdgeError):
    """The request is valid but the state it assumed no longer holds."""

    status = 409
    code = "conflict"


class PointerMoved(Conflict):
    """A compare-and-swap on an environment pointer lost: it moved meanwhile."""

    code = "pointer_moved"


class EmptyEnvironment(Conflict):
    """A move would leave an environment with no files (every path a 404) and was not
    explicitly allowed (``allow_empty``)."""

    code = "empty_environment"


class Drift(Conflict):
    """Production moved since staging's base and the same paths changed on both."""

    code = "drift"


class PreconditionFailed(EdgeError):
    status = 412
    code = "precondition_failed"


class PayloadTooLarge(EdgeError):
    status = 413
    code = "too_large"


class UriTooLong(EdgeError):
    """A request line over ``max_request_line``."""

    status = 414
    code = "uri_too_long"


class HeadersTooLarge(EdgeError):
    """A header over ``max_header_size``, or more than ``max_headers`` of them."""

    status = 431
    code = "headers_too_large"


class UnsupportedMediaType(EdgeError):
    status = 415
    code = "unsupported_media_type"


class NotPropagated(EdgeError):
    """A committed change did not reach every node in time; ``laggards`` names them."""

    status = 504
    code = "not_propagated"


class UnsupportedTransferCoding(EdgeError):
    """A transfer coding other than ``chunked`` (RFC 9112 §6.1: 501)."""

    status = 501
    code = "not_implemented"


class VersionNotSupported(EdgeError):
    status = 505
    code = "http_version_not_supported"


class MissingBlobs(EdgeError):
    """A snapshot names blobs the store does not hold; ``missing`` lists them."""

    status = 422
    code = "missing_blobs"


class StoreUnavailable(EdgeError):
    """The store cannot be reached or cannot take a write now; nothing was changed and
    serving goes on (a full disk, a read-only file, a database that went away)."""

    status = 503
    code = "store_unavailable"


class StoreFull(StoreUnavailable):
    """The store's disk (or its size limit) is full."""

    status = 507
    code = "store_full"


class InboxFull(EdgeError):
    """An environment's inbox holds ``inbox_max_submissions`` or ``inbox_max_bytes``."""

    status = 507
    code = "inbox_full"


class StoreReadOnly(StoreUnavailable):
    """The store is read-only (file permissions, a read-only mount)."""

    code = "store_read_only"


def validation_detail(exc: msgspec.ValidationError) -> tuple[str, str]:
    """msgspec's error as ``(where, what)``: ``("sites[0].id", "Expected `str`...")``.

    ``where`` is empty for the top level; a bad mapping key reads ``"forms (a key)"``.
    """
    text = str(exc)
    message, sep, where = text.partition(" - at `")
    if not sep:
        return "", text
    where = where.rstrip("`")
    suffix = ""
    if where.startswith("key` in `"):
        where, suffix = where.removeprefix("key` in `"), " (a key)"
    return where.removeprefix("$").removeprefix(".") + suffix, message
