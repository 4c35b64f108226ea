"""edge.errors: one tree, each error with its status and code (issue 17)."""

from __future__ import annotations

import pytest

from edge import errors
from edge.errors import (
    Conflict,
    ContentUnavailable,
    Drift,
    EdgeError,
    FormError,
    FormMediaType,
    FormTooLarge,
    StoreFull,
    StoreReadOnly,
    StoreUnavailable,
)


@pytest.mark.parametrize(
    ("error", "base", "status", "code"),
    [
        (FormError, EdgeError, 400, "bad_form"),
        (FormTooLarge, FormError, 413, "form_too_large"),
        (FormMediaType, FormError, 415, "form_media_type"),
        (ContentUnavailable, EdgeError, 500, "content_unavailable"),
        (Drift, Conflict, 409, "drift"),  # a code of its own, the parent's status
        (StoreReadOnly, StoreUnavailable, 503, "store_read_only"),
        (StoreFull, StoreUnavailable, 507, "store_full"),
    ],
)
def test_every_error_is_in_the_tree_with_its_status(
    error: type[EdgeError], base: type[EdgeError], status: int, code: str
) -> None:
    assert issubclass(error, base)
    assert (error.status, error.code) == (status, code)
    exc = error("why", paths=["/a"])
    assert exc.body() == {"error": {"code": code, "message": "why"}, "paths": ["/a"]}


def test_a_subclass_that_assigns_in_its_body_still_works() -> None:
    class Busy(EdgeError):
        status = 503
        code = "busy"

    assert (Busy.status, Busy.code, EdgeError.status, EdgeError.code) == (
        503,
        "busy",
        500,
        "internal",
    )


def test_codes_are_unique() -> None:
    tree = [v for v in vars(errors).values() if isinstance(v, type) and issubclass(v, EdgeError)]
    codes = [e.code for e in tree]
    assert len(codes) == len(set(codes))
