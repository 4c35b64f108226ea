"""Path resolution as properties over generated paths and manifests (pure, edge/paths.py).

tests/unit/test_paths.py already checks normalisation tables and that a request
path never leaves the root; these add the manifest: whatever the raw target,
resolution is a key of the snapshot's manifest or nothing, and it never raises.
"""

from __future__ import annotations

from urllib.parse import quote

from hypothesis import example, given
from hypothesis import strategies as st

from edge.paths import is_manifest_path, lookup_candidates, manifest_key, request_path

_TOKENS = ["/", ".", "..", "%", "%2e", "%2E", "%2f", "%2F", "%5c", "%00", "%25", "%c0%ae",
           "%c0%af", "%e0%80%ae", "\\", "//", "?", "#", ";", "a", "b", "secret"]  # fmt: skip
HOSTILE = st.lists(st.sampled_from(_TOKENS) | st.characters(), max_size=30).map("".join)
RAW = HOSTILE | HOSTILE.map(lambda s: "/" + s) | st.text(max_size=60)
SEGMENT = st.text(
    st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="/\\?#"),
    min_size=1,
    max_size=8,
).filter(lambda s: s not in (".", ".."))
KEY = st.lists(SEGMENT, min_size=1, max_size=4).map(lambda parts: "/" + "/".join(parts))
MANIFEST = st.sets(KEY, max_size=12).map(lambda keys: {k: k for k in keys if is_manifest_path(k)})


@given(RAW, MANIFEST)
@example("/%2e%2e/%2e%2e/secret", {"/secret": "/secret"})
@example("/a/..%2f..%2fsecret", {"/secret": "/secret"})
@example("/%252e%252e/secret", {"/secret": "/secret"})
@example("/%c0%ae%c0%ae/secret", {"/secret": "/secret"})
@example("/secret%00.html", {"/secret": "/secret"})
@example("/a\\..\\secret", {"/secret": "/secret"})
def test_resolution_is_a_manifest_key_or_nothing_and_never_raises(
    raw: str, files: dict[str, str]
) -> None:
    path = request_path(raw)
    if path is None:
        return
    key = manifest_key(path, files)
    assert key is None or (key in files and key in lookup_candidates(path))


@given(MANIFEST)
def test_every_manifest_key_is_reachable_by_its_encoded_path(files: dict[str, str]) -> None:
    for key in files:
        path = request_path(quote(key, safe="/"))
        assert path is not None
        assert manifest_key(path, files) == key


@given(MANIFEST, st.data())
def test_percent_decoding_happens_once(files: dict[str, str], data: st.DataObject) -> None:
    """A doubly-encoded path names the literal, singly-decoded key, never the decoded one."""
    if not files:
        return
    key = data.draw(st.sampled_from(sorted(files)))
    once = quote(key, safe="/")
    twice = quote(once, safe="/")
    path = request_path(twice)
    assert path == once
    found = manifest_key(path, files)
    assert found is None or found in (once, once + "/index.html", once + ".html")
    if once != key:
        assert found != key
