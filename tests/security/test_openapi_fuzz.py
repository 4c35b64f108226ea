"""schemathesis against a live ``edge serve``: no 5xx, no answer outside the document.

The schema is loaded from the running server's ``/v1/openapi.json`` (with the
admin token, as every call needs one), and every operation is called with
generated requests, a bounded number per operation. Each answer must not be a
server error, must have a status the document lists for that operation, and a
body that its schema accepts (content type included).
"""

from __future__ import annotations

import hashlib
import json
import os
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import schemathesis
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from edge.admin_api.auth import new_token
from edge.admin_api.operations import OPERATIONS, Operation
from tests.integration.conftest import ROLES, EdgeServer

# EDGE_FUZZ_EXAMPLES=500 for a deeper, randomised hunt; the default run is bounded
# and derandomised, so it finds the same things on every machine.
EXAMPLES_PER_OPERATION = int(os.environ.get("EDGE_FUZZ_EXAMPLES", "25"))
DERANDOMIZE = "EDGE_FUZZ_EXAMPLES" not in os.environ
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
PAGE = b"<html><head><title>t</title></head><body>fuzz</body></html>"


def _admin(server: EdgeServer, method: str, path: str, body: Any = None, raw: bytes = b"") -> Any:
    data = raw or (json.dumps(body).encode() if body is not None else None)
    request = urllib.request.Request(
        server.admin_url + path,
        data=data,
        method=method,
        headers={
            "Authorization": f"Bearer {server.tokens['admin']}",
            "Content-Type": "application/octet-stream" if raw else "application/json",
        },
    )
    with urllib.request.urlopen(request, timeout=30) as resp:
        answer = resp.read()
    return json.loads(answer) if answer else None


def _seed(server: EdgeServer) -> None:
    """Content in both environments, a schedule and history: something for calls to find."""
    digest = hashlib.sha256(PAGE).hexdigest()
    _admin(server, "PUT", f"/v1/sites/acme/blobs/{digest}", raw=PAGE)
    files = {"/index.html": {"sha256": digest}, "/about.html": {"sha256": digest}}
    snap = _admin(server, "POST", "/v1/sites/acme/snapshots", {"files": files})["id"]
    _admin(server, "PUT", "/v1/sites/acme/environments/staging", {"snapshot": snap})
    _admin(server, "POST", "/v1/sites/acme/publish", {})
    _admin(server, "POST", "/v1/sites/acme/schedules", {"at": "2099-01-01T00:00:00Z"})


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EdgeServer]:
    root: Path = tmp_path_factory.mktemp("fuzz")
    server = EdgeServer(root=root, tokens={name: new_token()[0] for name in ROLES}, workers=1)
    server.start()
    try:
        _seed(server)
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def admin_schema(live: EdgeServer) -> Any:
    """The document as the live server serves it (loading it needs a token, too)."""
    schema = schemathesis.openapi.from_url(
        live.admin_url + "/v1/openapi.json",
        headers={"Authorization": f"Bearer {live.tokens['admin']}"},
        timeout=30,
    )
    # Every case carries the admin token (a generated one would only ever meet the
    # 401 that test_admin_auth.py covers, and never reach a handler).
    schema.config.generation.update(with_security_parameters=False)
    return schema


# One test per operation of edge's own table; each finds its operation in the schema
# loaded from the live server (schemathesis.pytest.from_fixture needs pytest < 9.2:
# it sets a node attribute pytest 9.2 no longer has, so hypothesis drives it here).
@pytest.mark.timeout(600)
@pytest.mark.parametrize("op", OPERATIONS, ids=lambda op: f"{op.method} {op.path}")
def test_admin_api_keeps_to_its_openapi_document(
    op: Operation, live: EdgeServer, admin_schema: Any
) -> None:
    operation = admin_schema[op.path][op.method]
    fixed = {"site": "acme"} if "{site}" in op.path else None
    # Random site names only ever meet the unknown-site 404 (the auth tests cover
    # that); the site with content is where a handler has something to break.
    cases = st.one_of(
        operation.as_strategy(GenerationMode.POSITIVE, path_parameters=fixed),
        operation.as_strategy(GenerationMode.NEGATIVE, path_parameters=fixed),
    )
    auth = {"Authorization": f"Bearer {live.tokens['admin']}"}

    @hypothesis.settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        database=None,
        derandomize=DERANDOMIZE,
        suppress_health_check=list(hypothesis.HealthCheck),
    )
    @hypothesis.given(case=cases)
    def call(case: Any) -> None:
        case.call_and_validate(headers=auth, checks=CHECKS, timeout=30)

    call()
