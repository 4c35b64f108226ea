"""Three-way merge of snapshots (edge/snapshots/merge.py): tables and properties."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.snapshots.merge import (
    changed_paths,
    fixes_kept,
    three_way_merge,
    unpublished_changes,
)
from edge.snapshots.model import ManifestEntry


def e(tag: str) -> ManifestEntry:
    return ManifestEntry(sha256=tag * 64, content_type="text/html", size=1)


A, B, C, D = e("a"), e("b"), e("c"), e("d")


@pytest.mark.parametrize(
    ("base", "prod", "staging", "files", "conflicts"),
    [
        ({"/x": A}, {"/x": A}, {"/x": B}, {"/x": B}, []),  # staging only
        ({"/x": A}, {"/x": B}, {"/x": A}, {"/x": B}, []),  # production only (the fix)
        ({"/x": A}, {"/x": B}, {"/x": B}, {"/x": B}, []),  # same change both sides
        ({"/x": A}, {"/x": B}, {"/x": C}, {"/x": C}, ["/x"]),  # conflict, staging wins
        ({"/x": A}, {}, {"/x": A}, {}, []),  # removed on production only
        ({"/x": A}, {"/x": A}, {}, {}, []),  # removed on staging only
        ({"/x": A}, {}, {"/x": B}, {"/x": B}, ["/x"]),  # removed vs changed
        ({}, {"/n": A}, {"/m": B}, {"/n": A, "/m": B}, []),  # added on each side
        ({}, {"/n": A}, {"/n": B}, {"/n": B}, ["/n"]),  # added differently
        ({}, {"/n": A}, {"/n": A}, {"/n": A}, []),  # added identically
    ],
)
def test_merge_table(
    base: dict[str, ManifestEntry],
    prod: dict[str, ManifestEntry],
    staging: dict[str, ManifestEntry],
    files: dict[str, ManifestEntry],
    conflicts: list[str],
) -> None:
    result = three_way_merge((base, {}), (prod, {}), (staging, {}))
    assert result.files == files
    assert result.conflicts == conflicts


def test_settings_merge_per_key() -> None:
    result = three_way_merge(
        ({}, {"a": 1, "b": 1, "c": 1}),
        ({}, {"a": 2, "b": 1, "c": 5}),
        ({}, {"a": 1, "b": 3, "c": 6}),
    )
    assert result.settings == {"a": 2, "b": 3, "c": 6}
    assert result.conflicts == ["settings.c"]


def test_noindex_or_type_change_is_a_change() -> None:
    flagged = ManifestEntry(sha256=A.sha256, content_type=A.content_type, size=1, noindex=True)
    result = three_way_merge(({"/x": A}, {}), ({"/x": A}, {}), ({"/x": flagged}, {}))
    assert result.files == {"/x": flagged}


paths = st.sampled_from([f"/p{i}.html" for i in range(8)])
entries = st.sampled_from([A, B, C, D])
manifests = st.dictionaries(paths, entries, max_size=8)
settings = st.dictionaries(st.sampled_from(["k1", "k2", "k3"]), st.integers(0, 3), max_size=3)


@st.composite
def one_sided_edits(draw: st.DrawFn) -> tuple[Any, Any, Any, set[str], set[str]]:
    """A base, plus production and staging each editing a disjoint set of paths."""
    base = draw(manifests)
    all_paths = sorted({f"/p{i}.html" for i in range(8)})
    sides = draw(st.lists(st.sampled_from(["prod", "staging", "none"]), min_size=8, max_size=8))
    prod_paths = {p for p, side in zip(all_paths, sides, strict=True) if side == "prod"}
    staging_paths = {p for p, side in zip(all_paths, sides, strict=True) if side == "staging"}

    def edit(keys: set[str]) -> dict[str, ManifestEntry]:
        out = dict(base)
        for p in keys:
            old = base.get(p)
            choice = draw(st.one_of(st.none(), entries.filter(lambda x, old=old: x != old)))
            if choice is None and old is not None:
                out.pop(p)
            elif choice is None:
                out[p] = draw(entries)  # absent in base: an edit here is an addition
            else:
                out[p] = choice
        return out

    return base, edit(prod_paths), edit(staging_paths), prod_paths, staging_paths


@given(one_sided_edits(), settings)
def test_a_change_made_on_one_side_only_is_never_lost(
    case: tuple[Any, Any, Any, set[str], set[str]], s: dict[str, int]
) -> None:
    base, prod, staging, prod_paths, staging_paths = case
    result = three_way_merge((base, s), (prod, s), (staging, s))
    assert result.conflicts == []
    for p in prod_paths:
        assert result.files.get(p) == prod.get(p)
    for p in staging_paths:
        assert result.files.get(p) == staging.get(p)
    for p in set(base) - prod_paths - staging_paths:
        assert result.files[p] == base[p]


@given(manifests, manifests, settings, settings)
def test_merging_with_an_unchanged_side_gives_the_other_side(
    base: dict[str, ManifestEntry],
    other: dict[str, ManifestEntry],
    sb: dict[str, int],
    so: dict[str, int],
) -> None:
    for result in (
        three_way_merge((base, sb), (base, sb), (other, so)),
        three_way_merge((base, sb), (other, so), (base, sb)),
    ):
        assert result.files == other
        assert result.settings == so
        assert result.conflicts == []


@given(manifests, manifests, manifests)
def test_result_does_not_depend_on_order_without_conflicts(
    base: dict[str, ManifestEntry], one: dict[str, ManifestEntry], two: dict[str, ManifestEntry]
) -> None:
    ab = three_way_merge((base, {}), (one, {}), (two, {}))
    ba = three_way_merge((base, {}), (two, {}), (one, {}))
    assert ab.conflicts == ba.conflicts
    if not ab.conflicts:
        assert ab.files == ba.files


def test_changed_paths() -> None:
    assert changed_paths({"/a": A, "/b": B}, {"/b": C, "/c": A}) == (["/c"], ["/a"], ["/b"])


def test_unpublished_changes_lists_staging_work_production_lacks() -> None:
    base = ({"/a": A, "/b": A}, {"k": 1})
    production = ({"/a": B, "/b": A}, {"k": 1})  # a fix on /a
    staging = ({"/a": B, "/b": C, "/new": D}, {"k": 2})  # same fix, plus own work
    assert unpublished_changes(base, production, staging) == ["/b", "/new", "settings.k"]
    assert unpublished_changes(base, production, production) == []


@pytest.mark.parametrize(
    ("base", "prod", "staging", "kept"),
    [
        ({"/x": A}, {"/x": A, "/promo": B}, {"/x": C}, ["/promo"]),  # a fix added on production
        ({"/x": A}, {"/x": B}, {"/x": A}, ["/x"]),  # a fix changed on production
        ({"/x": A, "/y": A}, {"/x": A}, {"/x": A, "/y": A}, ["/y"]),  # a fix removing a page
        ({"/x": A}, {"/x": B}, {"/x": B}, []),  # staging has it too: nothing kept
        ({"/x": A}, {"/x": B}, {"/x": C}, []),  # a conflict: staging wins, not kept
        ({"/x": A}, {"/x": A}, {"/x": B}, []),  # no production change at all
    ],
)
def test_fixes_kept_table(
    base: dict[str, ManifestEntry],
    prod: dict[str, ManifestEntry],
    staging: dict[str, ManifestEntry],
    kept: list[str],
) -> None:
    merged = three_way_merge((base, {}), (prod, {}), (staging, {}))
    assert fixes_kept((base, {}), (prod, {}), (staging, {}), (merged.files, {})) == kept


def test_a_kept_settings_fix_is_named_by_its_key() -> None:
    base, prod, staging = {"a": 1}, {"a": 2}, {"a": 1, "b": 3}
    merged = three_way_merge(({}, base), ({}, prod), ({}, staging))
    assert fixes_kept(({}, base), ({}, prod), ({}, staging), ({}, merged.settings)) == [
        "settings.a"
    ]


_MANIFEST = st.dictionaries(
    st.sampled_from(["/a", "/b", "/c", "/d"]), st.sampled_from([A, B, C, D])
)


@given(_MANIFEST, _MANIFEST, _MANIFEST)
def test_every_kept_fix_is_production_s_version_that_staging_lacks(
    base: dict[str, ManifestEntry],
    prod: dict[str, ManifestEntry],
    staging: dict[str, ManifestEntry],
) -> None:
    merged = three_way_merge((base, {}), (prod, {}), (staging, {}))
    for path in fixes_kept((base, {}), (prod, {}), (staging, {}), (merged.files, {})):
        assert merged.files.get(path) == prod.get(path) != staging.get(path)
        assert prod.get(path) != base.get(path)
