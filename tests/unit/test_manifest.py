"""Building manifests: parent + upserts - deletes, and path validation."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.snapshots.manifest import apply_changes, bad_paths
from edge.snapshots.model import ManifestEntry


def _entry(sha: str) -> ManifestEntry:
    return ManifestEntry(sha256=sha * 64, content_type="text/html; charset=utf-8", size=1)


BASE = {"/index.html": _entry("a"), "/about.html": _entry("b"), "/old.html": _entry("c")}


def test_apply_changes_upserts_and_deletes() -> None:
    files = apply_changes(
        BASE,
        {"/about.html": _entry("d"), "/new.html": _entry("e")},
        ["/old.html", "/never-existed.html"],
    )
    assert files == {
        "/index.html": _entry("a"),
        "/about.html": _entry("d"),
        "/new.html": _entry("e"),
    }


def test_apply_changes_does_not_mutate_the_parent() -> None:
    before = dict(BASE)
    apply_changes(BASE, {"/x.html": _entry("f")}, ["/index.html"])
    assert before == BASE


def test_a_path_both_deleted_and_upserted_is_kept_with_the_new_entry() -> None:
    files = apply_changes(BASE, {"/old.html": _entry("9")}, ["/old.html"])
    assert files["/old.html"] == _entry("9")


def test_no_changes_is_the_parent() -> None:
    assert apply_changes(BASE, {}, []) == BASE


@given(
    st.dictionaries(st.sampled_from("abcdef"), st.sampled_from("0123")),
    st.dictionaries(st.sampled_from("abcdefgh"), st.sampled_from("4567")),
    st.lists(st.sampled_from("abcdefghij")),
)
def test_apply_changes_property(
    base_raw: dict[str, str], ups_raw: dict[str, str], deletes_raw: list[str]
) -> None:
    base = {f"/{k}.html": _entry(v) for k, v in base_raw.items()}
    ups = {f"/{k}.html": _entry(v) for k, v in ups_raw.items()}
    deletes = [f"/{k}.html" for k in deletes_raw]
    files = apply_changes(base, ups, deletes)
    for path, item in ups.items():
        assert files[path] == item
    for path in deletes:
        assert path not in files or path in ups
    for path, item in base.items():
        if path not in ups and path not in deletes:
            assert files[path] == item
    assert set(files) <= set(base) | set(ups)


def test_bad_paths_lists_every_unclean_path_sorted() -> None:
    paths = [
        "/index.html",
        "/z/../etc/passwd",
        "relative.html",
        "/a\\b.html",
        "/docs/",
        "/",
        "//double.html",
        "/a?q=1",
        "/ok/page.css",
        "/nul\x00.html",
        "/./dot.html",
    ]
    assert bad_paths(paths) == sorted(
        [
            "/z/../etc/passwd",
            "relative.html",
            "/a\\b.html",
            "/docs/",
            "/",
            "//double.html",
            "/a?q=1",
            "/nul\x00.html",
            "/./dot.html",
        ]
    )


@pytest.mark.parametrize("path", ["/index.html", "/a/b/c.js", "/media/x y.png", "/ü.html"])
def test_clean_paths_are_not_bad(path: str) -> None:
    assert bad_paths([path]) == []
