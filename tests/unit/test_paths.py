"""URL path decoding, normalisation and manifest lookup candidates."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from edge.paths import (
    MAX_PATH,
    decode_path,
    directory_redirect,
    is_manifest_path,
    lookup_candidates,
    manifest_key,
    normalize_path,
    request_path,
    split_target,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("/", "/"),
        ("/about.html", "/about.html"),
        ("/a%20b", "/a b"),
        ("/caf%C3%A9", "/café"),
        ("/café", "/café"),
        ("/a%2fb", "/a/b"),
        ("/%2e%2e/", "/../"),
        # decoded once only: %25 -> '%', and the result is not decoded again
        ("/%252e", "/%2e"),
        ("/%2541", "/%41"),
        # malformed escapes stay literal
        ("/%zz", "/%zz"),
        ("/%", "/%"),
        # query and fragment are not part of the path
        ("/a?x=1", "/a"),
        ("/a?x=%c0", "/a"),
        ("/a#frag", "/a"),
        ("/a%3Fb", "/a?b"),
        # overlong / invalid UTF-8 is refused
        ("/%c0%ae", None),
        ("/%c0%ae%c0%ae/etc", None),
        ("/%ff", None),
        ("/%e9", None),
    ],
)
def test_decode_path(raw: str, expected: str | None) -> None:
    assert decode_path(raw) == expected


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/", "/"),
        ("/a", "/a"),
        ("/a/", "/a/"),
        ("/a/../b", "/b"),
        ("/a/./b", "/a/b"),
        ("/a/b/..", "/a/"),
        ("/a/b/.", "/a/b/"),
        ("/../", "/"),
        ("/..", "/"),
        ("/../../etc/passwd", "/etc/passwd"),
        ("/a/../../../b", "/b"),
        ("//", "/"),
        ("//a//b", "/a/b"),
        ("/a//b/", "/a/b/"),
        ("/.../x", "/.../x"),  # three dots are an ordinary name
        ("/..a/b..", "/..a/b.."),
        ("/%2e", "/%2e"),  # already decoded: literal
        # refused outright
        ("", None),
        ("a/b", None),
        ("../a", None),
        ("/a\\b", None),
        ("/a\\..\\..\\b", None),
        ("/a\x00b", None),
        ("/a\x1fb", None),
        ("/a\x7fb", None),
        ("/a\nb", None),
        ("/" + "a" * MAX_PATH, None),
    ],
)
def test_normalize_path(path: str, expected: str | None) -> None:
    assert normalize_path(path) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("/", "/"),
        ("/index.html", "/index.html"),
        ("/a/../b", "/b"),
        ("/%2e%2e/", "/"),
        ("/%2e%2e/%2e%2e/etc/passwd", "/etc/passwd"),
        ("/..%2f", "/"),
        ("/..%2fetc", "/etc"),
        ("/.%2e/x", "/x"),
        ("/a/%2e", "/a/"),
        ("/%252e", "/%2e"),
        ("/%252e%252e/x", "/%2e%2e/x"),
        ("/%c0%ae", None),
        ("/%c0%ae%c0%ae/", None),
        ("/a\\b", None),
        ("/a%5cb", None),
        ("/..%5c..%5cwin.ini", None),
        ("//a//b", "/a/b"),
        ("/a%00b", None),
        ("/a\x00b", None),
        ("/a?x=1", "/a"),
        ("/a?x=/../..", "/a"),
        ("/a/?", "/a/"),
        ("/a%20b", "/a b"),
        ("/caf%C3%A9", "/café"),
        ("", None),
        ("*", None),
        ("a", None),
        ("http://evil.example/", None),
    ],
)
def test_request_path(raw: str, expected: str | None) -> None:
    assert request_path(raw) == expected


def test_request_path_treats_a_fragment_the_same_on_fast_and_slow_paths() -> None:
    """A raw target with ``#`` must resolve the same whether or not it needs decoding.

    The slow path (``decode_path``) drops the fragment; the fast path for clean
    paths must not keep it, or ``/a#x`` and ``//a#x`` lead to different pages.
    """
    assert request_path("//page.html#x") == "/page.html"
    assert request_path("/page.html#x") == request_path("//page.html#x")


def test_request_path_does_not_raise_on_a_surrogate_escaped_target() -> None:
    """aiohttp's pure-Python parser decodes request lines with surrogateescape.

    ``GET /a\\xff%41`` therefore reaches the handler as ``'/a\\udcff%41'``; the
    result must be ``None`` (bad request) or a path, not an exception.
    """
    # The raw byte 0xff is not UTF-8, exactly like ``/%ff``: a bad request.
    assert request_path("/a\udcff%41") is None


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/", ("/index.html",)),
        ("/about", ("/about", "/about.html")),
        ("/about.html", ("/about.html", "/about.html.html")),
        ("/docs/", ("/docs/index.html", "/docs.html")),
        ("/a/b/", ("/a/b/index.html", "/a/b.html")),
    ],
)
def test_lookup_candidates(path: str, expected: tuple[str, ...]) -> None:
    assert lookup_candidates(path) == expected


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/index.html", True),
        ("/a/b/c.css", True),
        ("/media/photo one.png", True),
        ("/café.html", True),
        ("/.well-known/security.txt", True),
        ("/", False),
        ("", False),
        ("index.html", False),
        ("/docs/", False),
        ("//a", False),
        ("/a//b", False),
        ("/a/../b", False),
        ("/./a", False),
        ("/a/.", False),
        ("/..", False),
        ("/a\\b", False),
        ("/a\x00b", False),
        ("/a?x=1", False),
        ("/a#b", False),
        ("/" + "a" * MAX_PATH, False),
    ],
)
def test_is_manifest_path(path: str, expected: bool) -> None:
    assert is_manifest_path(path) is expected


# ---- properties -----------------------------------------------------------------------

# Paths built from the characters that matter, so the interesting cases come up often.
_PATHY = st.lists(
    st.sampled_from(["/", ".", "..", "%", "2e", "2E", "2f", "5c", "00", "a", "b", "\\", "?", "#"])
    | st.characters(),
    max_size=40,
).map("".join)
_ANY_PATH = _PATHY | _PATHY.map(lambda s: "/" + s) | st.text()


def _segments(path: str) -> list[str]:
    return path.split("/")[1:]


@given(_ANY_PATH)
@example("/a/..")
@example("/./")
@example("/" + "/.." * 3)
def test_normalize_path_is_idempotent_and_stays_in_the_root(path: str) -> None:
    out = normalize_path(path)
    if out is None:
        return
    assert normalize_path(out) == out
    assert out.startswith("/")
    assert "//" not in out
    assert "\\" not in out and "\x00" not in out
    for seg in _segments(out):
        assert seg not in (".", "..")


@given(_ANY_PATH)
@example("/%2e%2e/%2e%2e/x")
@example("/..%2f..%2f")
@example("/%c0%ae")
@example("/a?b#c")
def test_request_path_never_raises_and_never_leaves_the_root(raw: str) -> None:
    out = request_path(raw)
    if out is None:
        return
    assert isinstance(out, str)
    assert out.startswith("/")
    assert len(out) <= MAX_PATH
    for seg in _segments(out):
        assert seg not in (".", "..")
    assert "\\" not in out and "\x00" not in out


@given(st.lists(st.from_regex(r"[a-z0-9_.-]{1,8}", fullmatch=True), max_size=6))
def test_clean_paths_pass_through_unchanged(segments: list[str]) -> None:
    if any(s in (".", "..") for s in segments):
        return
    path = "/" + "/".join(segments)
    assert normalize_path(path) == path
    assert request_path(path) == path


@given(_ANY_PATH)
def test_every_lookup_candidate_of_a_request_path_is_a_manifest_path(raw: str) -> None:
    path = request_path(raw)
    if path is None or "?" in path or "#" in path:
        return
    for candidate in lookup_candidates(path):
        if len(candidate) <= MAX_PATH:
            assert is_manifest_path(candidate), candidate


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("/a?b", (None, "/a?b")),
        ("http://acme.example/a?b", ("acme.example", "/a?b")),
        ("https://acme.example:8443", ("acme.example:8443", "/")),
        ("http://acme.example?x=1", ("acme.example", "/")),
        ("http://user@acme.example/", None),
        ("ftp://acme.example/", None),
        ("*", None),
        ("acme.example/a", None),
    ],
)
def test_split_target(raw: str, expected: tuple[str | None, str] | None) -> None:
    assert split_target(raw) == expected


_BLOG = {"/blog/index.html": 1, "/docs.html": 1, "/docs/index.html": 1, "/a b/index.html": 1}


@pytest.mark.parametrize(
    ("path", "raw", "expected"),
    [
        ("/blog", "/blog", "/blog/"),  # held only as blog/index.html: add the slash
        ("/blog", "/blog?page=2&x=%20", "/blog/?page=2&x=%20"),  # the query is kept as sent
        ("/blog", "/blog?page=2#top", "/blog/?page=2"),
        ("/blog", "/a/../blog", "/blog/"),  # from the normalised path, not the raw one
        ("/blog", "//blog", "/blog/"),  # never a scheme-relative //host location
        ("/a b", "/a%20b", "/a%20b/"),
        ("/blog/", "/blog/", None),  # already a directory: served
        ("/docs", "/docs", None),  # docs.html serves /docs: it resolves without the slash
        ("/nowhere", "/nowhere", None),
        ("/", "/", None),
    ],
)
def test_directory_redirect(path: str, raw: str, expected: str | None) -> None:
    assert directory_redirect(path, raw, _BLOG) == expected


def test_a_directory_index_is_reached_only_with_its_slash() -> None:
    assert manifest_key("/blog", _BLOG) is None
    assert manifest_key("/blog/", _BLOG) == "/blog/index.html"
    assert manifest_key("/docs", _BLOG) == "/docs.html"


@given(_ANY_PATH)
def test_a_directory_redirect_leads_to_the_index_on_this_host(raw: str) -> None:
    path = request_path(raw)
    if path is None or path.endswith("/") or "?" in path or "#" in path:
        return
    location = directory_redirect(path, raw, {path + "/index.html": 1})
    assert location is not None
    assert location.startswith("/") and not location.startswith("//")
    followed = request_path(location)
    assert followed == path + "/"
    assert manifest_key(followed, {path + "/index.html": 1}) == path + "/index.html"
