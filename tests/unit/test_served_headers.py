"""Headers a snapshot may put on its responses: whole-string rules (issue 19)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.errors import BadRequest
from edge.snapshots.headers import (
    UnwritableHeaders,
    check_writable,
    content_type_problem,
    header_problem,
)
from edge.snapshots.model import ManifestEntry
from edge.snapshots.servable import check_servable
from edge.snapshots.settings import (
    MAX_HEADER_RULES,
    MAX_SETTINGS_BYTES,
    HeaderRules,
    compile_settings,
    validate_settings,
)

ENDINGS = ["\n", "\r", "\r\n", "\x00", "\x0b"]


@pytest.mark.parametrize("ending", ENDINGS)
def test_a_name_ending_in_a_control_character_is_refused(ending: str) -> None:
    assert header_problem("X-Frame-Options" + ending, "DENY") is not None
    with pytest.raises(BadRequest, match=r"settings\.headers"):
        validate_settings({"headers": {"/": {"X-Frame-Options" + ending: "DENY"}}})


@pytest.mark.parametrize(
    "name",
    ["Set-Cookie\n", "set-cookie", "SET-COOKIE", "Content-Type", "x-edge-env", "Location\n"],
)
def test_refused_names_are_compared_after_normalisation(name: str) -> None:
    with pytest.raises(BadRequest, match=r"settings\.headers"):
        validate_settings({"headers": {"/": {name: "a=b"}}})


@pytest.mark.parametrize("ending", ENDINGS)
def test_a_content_type_ending_in_a_control_character_is_refused(ending: str) -> None:
    assert content_type_problem("text/html" + ending) is not None


@given(st.text(min_size=1, max_size=40))
def test_no_name_containing_a_newline_passes(text: str) -> None:
    for name in (text + "\n", "\n" + text, text[:1] + "\n" + text[1:]):
        assert header_problem(name, "v") is not None


@given(st.text(max_size=60), st.sampled_from(["\n", "\r", "\x00", "\x7f"]))
def test_no_value_or_type_with_a_control_character_passes(text: str, bad: str) -> None:
    assert header_problem("X-Ok", text + bad) is not None
    assert content_type_problem("text/plain" + bad + text) is not None
    with pytest.raises(UnwritableHeaders):
        check_writable([("X-Ok", text + bad)])


@pytest.mark.parametrize(
    ("name", "value", "ok"),
    [
        ("X-Frame-Options", "DENY", True),
        ("Cache-Control", "public, max-age=60", True),
        ("X-Tab", "a\tb", True),
        ("X-Unicode", "café", True),
        ("Bad Name", "v", False),
        ("X-Long", "a" * 2049, False),
        ("Refresh", "5", True),
        ("Refresh", "0; url=/next", True),
        ("Refresh", "0;URL='https://example.com/'", True),
        ("Refresh", "0; url=//evil.example/", False),
        ("Refresh", "0; url='//evil.example/'", False),
        ("Refresh", "0,url=/\\evil.example", False),
        ("refresh", "0; url=javascript:alert(1)", False),
        ("Refresh", "soon", False),
        ("Link", "</style.css>; rel=preload; as=style", True),
        ("Link", "</a.css>; rel=preload, <https://cdn.example/b.js>; rel=preload", True),
        ("Link", "</a.css>; rel=preload, <//evil.example/b.js>; rel=preload", False),
        ("Link", "no brackets", False),
        ("Content-Location", "/en/page", True),
        ("Content-Location", "//evil.example/page", False),
    ],
)
def test_header_rules(name: str, value: str, ok: bool) -> None:
    assert (header_problem(name, value) is None) is ok


def test_urls_in_headers_follow_redirect_rules_in_settings() -> None:
    with pytest.raises(BadRequest, match="Refresh"):
        validate_settings({"headers": {"/": {"Refresh": "0; url=//evil.example/"}}})
    validate_settings({"headers": {"/": {"Refresh": "0; url=/moved"}}})


def test_a_name_set_twice_in_one_rule_is_refused() -> None:
    with pytest.raises(BadRequest, match="twice"):
        validate_settings({"headers": {"/": {"X-A": "1", "x-a": "2"}}})


def test_form_names_are_matched_whole() -> None:
    with pytest.raises(BadRequest, match=r"settings\.forms"):
        validate_settings({"forms": {"contact\n": {}}})
    validate_settings({"forms": {"contact": {"rate_per_minute": 2, "burst": 1}}})
    with pytest.raises(BadRequest, match="burst"):
        validate_settings({"forms": {"contact": {"burst": 0}}})


def test_settings_have_a_size_limit() -> None:
    doc = {"headers": {"/": {"X-Big": "a" * 2000}}, "media_prefix": "/" + "m" * MAX_SETTINGS_BYTES}
    with pytest.raises(BadRequest, match="bytes"):
        validate_settings(doc)


def test_settings_have_a_rule_count_limit() -> None:
    rules = {f"/p{n}/": {"X-N": str(n)} for n in range(MAX_HEADER_RULES + 1)}
    with pytest.raises(BadRequest, match=r"settings\.headers"):
        validate_settings({"headers": rules})
    del rules["/p0/"]
    validate_settings({"headers": rules})


def naive(rules: dict[str, dict[str, str]], path: str) -> dict[str, str]:
    """The old matcher: every rule in turn, shorter prefixes first."""
    extra: dict[str, str] = {}
    for prefix, headers in sorted(rules.items(), key=lambda kv: len(kv[0])):
        if path.startswith(prefix):
            extra.update(headers)
    return extra


_segment = st.text(alphabet="ab/", max_size=8)


@given(
    rules=st.dictionaries(
        _segment.map(lambda s: "/" + s),
        st.dictionaries(st.sampled_from(["X-A", "X-B", "X-C"]), st.text(max_size=3), max_size=2),
        max_size=12,
    ),
    path=_segment.map(lambda s: "/" + s),
)
def test_the_compiled_matcher_answers_as_walking_every_rule(
    rules: dict[str, dict[str, str]], path: str
) -> None:
    assert HeaderRules.compile(rules).headers_for(path) == naive(rules, path)


def test_the_matcher_looks_up_by_prefix_length_not_by_rule() -> None:
    rules = {f"/section-{n:04d}/": {"X-N": str(n)} for n in range(999)}
    compiled = compile_settings({"headers": {**rules, "/": {"X-All": "1"}}}).header_rules
    # Every prefix ends in "/": a lookup per segment of the path, whatever the rules.
    assert compiled.lengths == () and len(compiled.by_dir) == 1000
    assert compiled.headers_for("/section-0042/a.html") == {"X-All": "1", "X-N": "42"}
    odd = compile_settings({"headers": {"/a": {"X-A": "1"}, "/ab": {"X-A": "2"}}}).header_rules
    assert odd.lengths == (2, 3)
    assert odd.headers_for("/abc") == {"X-A": "2"}


def entry(content_type: str) -> ManifestEntry:
    return ManifestEntry(sha256="a" * 64, content_type=content_type, size=1)


def test_servable_refuses_a_content_type_naming_the_path() -> None:
    files = {"/a.html": entry("text/html"), "/b.txt": entry("text/plain\n")}
    with pytest.raises(BadRequest, match=r"files\./b\.txt\.content_type"):
        check_servable(files, {})
    check_servable({"/a.html": entry("text/html; charset=utf-8")}, {})


def test_servable_builds_each_header_rule_once() -> None:
    # Past validation (a snapshot stored by an older edge): still refused here.
    bad: dict[str, Any] = {"headers": {"/x/": {"X-Bad": "a\nb"}}}
    with pytest.raises(BadRequest, match=r"settings\.headers\./x/"):
        check_servable({"/x/a.html": entry("text/html")}, bad)
    check_servable({"/x/a.html": entry("text/html")}, {"headers": {"/x/": {"X-Ok": "1"}}})
