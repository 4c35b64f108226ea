"""The one error tree of edge.

Every error a request can meet carries its HTTP status and a stable machine code;
the admin API's middleware turns any of them into the SPEC's JSON error body
``{"error": {"code": ..., "message": ...}}`` plus the error's ``extra`` fields,
and the visitor side answers a refused form post with its status as plain text.

Each error states its status and code in its class line
(``class NotFound(EdgeError, status=404, code="not_found")``), so the tree reads
as the table it is; a subclass that states neither keeps its parent's.
"""

from __future__ import annotations

from typing import Any, ClassVar

import msgspec


class EdgeError(Exception):
    """Base of every error edge answers with a status of its own."""

    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal"

    def __init_subclass__(cls, *, status: int | None = None, code: str | None = None) -> None:
        super().__init_subclass__()
        if status is not None:
            cls.status = status
        if code is not None:
            cls.code = code

    def __init__(self, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        self.extra = extra

    def body(self) -> dict[str, Any]:
        """The JSON error document for this error."""
        doc: dict[str, Any] = {"error": {"code": self.code, "message": self.message}}
        doc.update(self.extra)
        return doc


class ConfigError(EdgeError, code="config"):
    """The configuration file is unusable; start-up stops with this message."""


class BadRequest(EdgeError, status=400, code="bad_request"):
    """The request itself is wrong; sending it again as it is will not help."""


class HashMismatch(BadRequest, code="hash_mismatch"):
    """Uploaded bytes do not hash to the address they were sent to."""


class TooManyPaths(BadRequest, code="too_many_paths"):
    """A snapshot would hold more paths than ``max_snapshot_paths``."""


class BadFraming(BadRequest, code="bad_framing"):
    """A request whose length a proxy in front of edge could read differently."""


class Unauthorized(EdgeError, status=401, code="unauthorized"):
    """No token, or one edge does not know."""


class Forbidden(EdgeError, status=403, code="forbidden"):
    """The token's role or sites do not cover this call."""


class NotFound(EdgeError, status=404, code="not_found"):
    """No such snapshot, schedule, path or environment."""


class UnknownSite(NotFound, code="unknown_site"):
    """No site has this id (told only to a token that may see every site)."""


class Conflict(EdgeError, status=409, code="conflict"):
    """The request is valid but the state it assumed no longer holds."""


class PointerMoved(Conflict, code="pointer_moved"):
    """A compare-and-swap on an environment pointer lost: it moved meanwhile."""


class EmptyEnvironment(Conflict, code="empty_environment"):
    """A move would leave an environment with no files (every path a 404) and was not
    explicitly allowed (``allow_empty``)."""


class Drift(Conflict, code="drift"):
    """Production moved since staging's base and the same paths changed on both."""


class PreconditionFailed(EdgeError, status=412, code="precondition_failed"):
    """``If-Match`` names a state of the environments that is no longer current."""


class PayloadTooLarge(EdgeError, status=413, code="too_large"):
    """A body over its limit (``max_request_bytes``, ``max_blob_bytes``)."""


class UriTooLong(EdgeError, status=414, code="uri_too_long"):
    """A request line over ``max_request_line``."""


class UnsupportedMediaType(EdgeError, status=415, code="unsupported_media_type"):
    """A body in a type the call does not take."""


class MissingBlobs(EdgeError, status=422, code="missing_blobs"):
    """A snapshot names blobs the store does not hold; ``missing`` lists them."""


class HeadersTooLarge(EdgeError, status=431, code="headers_too_large"):
    """A header over ``max_header_size``, or more than ``max_headers`` of them."""


class UnsupportedTransferCoding(EdgeError, status=501, code="not_implemented"):
    """A transfer coding other than ``chunked`` (RFC 9112 §6.1: 501)."""


class NotPropagated(EdgeError, status=504, code="not_propagated"):
    """A committed change did not reach every node in time; ``laggards`` names them."""


class VersionNotSupported(EdgeError, status=505, code="http_version_not_supported"):
    """An HTTP version other than 1.0 and 1.1."""


class StoreUnavailable(EdgeError, status=503, code="store_unavailable"):
    """The store cannot be reached or cannot take a write now; nothing was changed and
    serving goes on (a full disk, a read-only file, a database that went away)."""


class StoreFull(StoreUnavailable, status=507, code="store_full"):
    """The store's disk (or its size limit) is full."""


class StoreReadOnly(StoreUnavailable, code="store_read_only"):
    """The store is read-only (file permissions, a read-only mount)."""


class InboxFull(EdgeError, status=507, code="inbox_full"):
    """An environment's inbox holds ``inbox_max_submissions`` or ``inbox_max_bytes``."""


class ContentUnavailable(EdgeError, code="content_unavailable"):
    """A manifest names a blob the store does not have (a damaged store)."""


# -- a visitor's form post (edge.visitor.forms), refused whole: nothing is stored --


class FormError(EdgeError, status=400, code="bad_form"):
    """A form body that is malformed, or has unknown or too many fields."""


class FormTooLarge(FormError, status=413, code="form_too_large"):
    """A form body over the form's ``max_bytes``."""


class FormMediaType(FormError, status=415, code="form_media_type"):
    """A form body that is neither urlencoded, multipart nor JSON."""


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
