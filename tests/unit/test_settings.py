"""Snapshot settings: schema, safe redirect targets, compiled form."""

from __future__ import annotations

import pytest

from edge.errors import BadRequest
from edge.snapshots.settings import compile_settings, is_safe_target, validate_settings


@pytest.mark.parametrize(
    ("target", "safe"),
    [
        ("/new", True),
        ("/new?x=1#y", True),
        ("https://other.example/page", True),
        ("//evil.example", False),
        ("/\\evil.example", False),
        ("/\t/evil.example", False),
        ("/\n/evil.example", False),
        ("http://\t/evil.example", False),
        ("https:/evil.example", False),
        ("javascript:alert(1)", False),
        ("new", False),
        ("", False),
    ],
)
def test_redirect_targets(target: str, safe: bool) -> None:
    assert is_safe_target(target) is safe


@pytest.mark.parametrize(
    ("doc", "key"),
    [
        ({"redirects": [{"from": "/a", "to": "/\t/evil"}]}, "settings.redirects[0].to"),
        ({"redirects": [{"from": "a", "to": "/b"}]}, "settings.redirects[0].from"),
        ({"headers": {"/": {"content-type": "text/plain"}}}, "content-type"),
        ({"headers": {"/": {"X-Edge-Env": "production"}}}, "X-Edge-Env"),
        ({"headers": {"/": {"x-edge-anything": "a"}}}, "x-edge-anything"),
        ({"headers": {"/": {"Content-Length": "1"}}}, "Content-Length"),
        ({"headers": {"/": {"X-A": "a", "x-a": "b"}}}, "x-a"),
        ({"headers": {"/": {"X-A": "a\r\nSet-Cookie: x"}}}, "X-A"),
        ({"forms": {"bad name": {}}}, "settings.forms"),
        ({"forms": {"f": {"max_bytes": 10**9}}}, "max_bytes"),
    ],
)
def test_bad_settings_name_the_key(doc: dict[str, object], key: str) -> None:
    with pytest.raises(BadRequest) as err:
        validate_settings(doc)
    assert key in err.value.message


def test_compiled_headers_longer_prefix_wins() -> None:
    compiled = compile_settings(
        {"headers": {"/": {"X-A": "root", "X-B": "b"}, "/docs/": {"X-A": "docs"}}}
    )
    assert compiled.headers_for("/docs/x.html") == {"X-A": "docs", "X-B": "b"}
    assert compiled.headers_for("/other") == {"X-A": "root", "X-B": "b"}
