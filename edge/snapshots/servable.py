"""Whether every response of a snapshot can be written, checked once at creation.

Validation of each field (``edge.snapshots.headers``) refuses what is wrong on
its own; this builds each distinct header set the snapshot can produce once,
through the same code that builds the responses visitors get, and refuses the
snapshot (400 naming the key) if any would fail to be written. Distinct sets:
one per content type (with no settings headers) and one per settings header
rule (with what a path equal to its prefix gets), in both environments, so the
cost grows with distinct types and rules, not with paths.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from edge.cache.keys import variant_for
from edge.errors import BadRequest
from edge.router import ENVS
from edge.snapshots.headers import UnwritableHeaders, content_type_problem
from edge.snapshots.model import ManifestEntry
from edge.snapshots.settings import compile_settings
from edge.visitor.representation import build

_PROBE_SHA = "0" * 64
_PROBE_TYPE = "text/html; charset=utf-8"


def _probe(content_type: str, extra: Mapping[str, str]) -> str | None:
    entry = ManifestEntry(sha256=_PROBE_SHA, content_type=content_type, size=0)
    for env in ENVS:
        try:
            build(
                b"",
                entry,
                snapshot_id="probe",
                variant=variant_for(env, False),
                extra_headers=extra,
            )
        except UnwritableHeaders as exc:
            return str(exc)
    return None


def check_servable(files: Mapping[str, ManifestEntry], settings: dict[str, Any]) -> None:
    """Raise :class:`BadRequest` naming the key when a response could not be written."""
    first_path: dict[str, str] = {}
    for path, entry in files.items():
        first_path.setdefault(entry.content_type, path)
    for content_type, path in first_path.items():
        problem = content_type_problem(content_type) or _probe(content_type, {})
        if problem is not None:
            raise BadRequest(f"files.{path}.content_type: {problem}", paths=[path])
    compiled = compile_settings(settings)
    for prefix in compiled.header_rules.prefixes:
        problem = _probe(_PROBE_TYPE, compiled.headers_for(prefix))
        if problem is not None:
            raise BadRequest(f"settings.headers.{prefix}: {problem}")
    if compiled.file_headers is not None:
        for path in compiled.file_headers.paths:
            problem = _probe(_PROBE_TYPE, compiled.file_headers.headers_for([path]))
            if problem is not None:
                raise BadRequest(f"_headers: {path}: {problem}")
