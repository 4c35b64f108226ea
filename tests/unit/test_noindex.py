"""Noindex injection into HTML and the synthesized staging robots.txt."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.noindex import ROBOTS_HEADER, ROBOTS_META, STAGING_ROBOTS_TXT, inject_robots_meta

# Any <meta> whose name attribute is "robots", however it is quoted or cased.
_ROBOTS_ANY = re.compile(
    rb"""<meta\s[^>]*\bname\s*=\s*["']?robots(?=["'\s/>])[^>]*>""", re.IGNORECASE
)


def robots_metas(html: bytes) -> list[bytes]:
    return _ROBOTS_ANY.findall(html)


def assert_single_noindex_meta(html: bytes) -> None:
    metas = robots_metas(html)
    assert metas == [ROBOTS_META], metas
    assert b"noindex, nofollow" in metas[0]


def test_constants() -> None:
    assert ROBOTS_HEADER == "noindex, nofollow"
    assert ROBOTS_META == b'<meta name="robots" content="noindex, nofollow">'


@pytest.mark.parametrize(
    ("html", "expected"),
    [
        (
            b"<!doctype html><html><head><title>t</title></head><body>x</body></html>",
            b"<!doctype html><html><head>"
            + ROBOTS_META
            + b"<title>t</title></head><body>x</body></html>",
        ),
        (
            b"<HTML><HEAD><TITLE>t</TITLE></HEAD><BODY>x</BODY></HTML>",
            b"<HTML><HEAD>" + ROBOTS_META + b"<TITLE>t</TITLE></HEAD><BODY>x</BODY></HTML>",
        ),
        (
            b'<html lang="en"><head lang="en" data-x="1"><title>t</title></head></html>',
            b'<html lang="en"><head lang="en" data-x="1">'
            + ROBOTS_META
            + b"<title>t</title></head></html>",
        ),
        (
            b"<html>\n<head>\n<title>t</title>\n</head>\n</html>",
            b"<html>\n<head>" + ROBOTS_META + b"\n<title>t</title>\n</head>\n</html>",
        ),
        # no <head>: right after <html>
        (
            b"<!DOCTYPE html><html lang=en><title>t</title><p>x",
            b"<!DOCTYPE html><html lang=en>" + ROBOTS_META + b"<title>t</title><p>x",
        ),
        # doctype only: right after the doctype
        (
            b"<!doctype html>\n<title>t</title><p>x",
            b"<!doctype html>" + ROBOTS_META + b"\n<title>t</title><p>x",
        ),
        # neither: at the very start
        (b"<p>fragment</p>", ROBOTS_META + b"<p>fragment</p>"),
        (b"", ROBOTS_META),
        # <header> is not <head>
        (
            b"<html><body><header>nav</header><p>x</p></body></html>",
            b"<html>" + ROBOTS_META + b"<body><header>nav</header><p>x</p></body></html>",
        ),
        (
            b"<!doctype html><header>nav</header>",
            b"<!doctype html>" + ROBOTS_META + b"<header>nav</header>",
        ),
        (
            b"<html><head></head><body><header class=top>nav</header></body></html>",
            b"<html><head>"
            + ROBOTS_META
            + b"</head><body><header class=top>nav</header></body></html>",
        ),
        # <html> inside a <htmlx> style lookalike is not <html>
        (
            b"<htmlfoo><p>x",
            ROBOTS_META + b"<htmlfoo><p>x",
        ),
    ],
)
def test_inject_places_the_meta_in_head(html: bytes, expected: bytes) -> None:
    out = inject_robots_meta(html)
    assert out == expected
    assert_single_noindex_meta(out)


@pytest.mark.parametrize(
    "existing",
    [
        b'<meta name="robots" content="index, follow">',
        b"<meta name='robots' content='index, follow'>",
        b"<meta name=robots content=all>",
        b'<meta content="index, follow" name="robots">',
        b'<META NAME="ROBOTS" CONTENT="INDEX, FOLLOW">',
        b'<meta name="Robots" content="index">',
        b'<meta name = "robots" content = "index" />',
        b'<meta name="robots" content="index"/>',
        b"<meta name=robots>",
        b'<meta\n  name="robots"\n  content="index">',
        b'<meta name="robots" content="noindex, nofollow">',
    ],
)
def test_existing_robots_meta_is_replaced(existing: bytes) -> None:
    html = b"<html><head><title>t</title>" + existing + b"</head><body>x</body></html>"
    out = inject_robots_meta(html)
    assert_single_noindex_meta(out)
    assert existing not in out or existing == ROBOTS_META
    assert b"index, follow" not in out.lower()
    head = out[out.index(b"<head>") : out.index(b"</head>")]
    assert ROBOTS_META in head
    assert b"<title>t</title>" in out and b"<body>x</body>" in out


def test_several_robots_metas_leave_exactly_one() -> None:
    html = (
        b'<html><head><meta name="robots" content="index"><title>t</title>'
        b"<meta name='ROBOTS' content='follow'></head>"
        b"<body><meta name=robots content=all>x</body></html>"
    )
    out = inject_robots_meta(html)
    assert_single_noindex_meta(out)


@pytest.mark.parametrize(
    "other",
    [
        b'<meta name="description" content="robots and more">',
        b'<meta content="robots" name="description">',
        b'<meta name="viewport" content="width=device-width">',
        b'<meta charset="utf-8">',
        b'<meta name="robots-note" content="x">',
    ],
)
def test_other_metas_are_kept(other: bytes) -> None:
    html = b"<html><head>" + other + b"<title>t</title></head></html>"
    out = inject_robots_meta(html)
    assert other in out
    assert_single_noindex_meta(out)


def test_body_bytes_outside_the_tag_are_untouched() -> None:
    body = "<p>Grüße ☃ — &amp; <b>bold</b></p>".encode()
    html = b"<html><head><title>t</title></head><body>" + body + b"</body></html>"
    out = inject_robots_meta(html)
    assert out.replace(ROBOTS_META, b"", 1) == html


_HTMLISH = st.lists(
    st.sampled_from(
        [
            b"<html>",
            b"<HTML lang=en>",
            b"<head>",
            b"<HEAD>",
            b"</head>",
            b"<header>",
            b"<!doctype html>",
            b"<title>t</title>",
            b"<body>",
            b"<p>x</p>",
            b'<meta name="robots" content="index">',
            b"<meta name=robots>",
            b"<meta charset=utf-8>",
            b" ",
            b"\n",
            b"text",
        ]
    ),
    max_size=15,
).map(b"".join)


@given(_HTMLISH)
def test_injection_always_leaves_exactly_one_noindex_meta(html: bytes) -> None:
    out = inject_robots_meta(html)
    assert_single_noindex_meta(out)
    # injecting again (a cached staging page re-processed) still leaves exactly one
    assert_single_noindex_meta(inject_robots_meta(out))


@given(st.lists(st.sampled_from([b"<title>t</title>", b"<p>x</p>", b"<header>h</header>"])))
def test_injection_into_a_document_with_head_is_inside_head(parts: list[bytes]) -> None:
    html = b"<html><head>" + b"".join(parts) + b"</head><body></body></html>"
    out = inject_robots_meta(html)
    assert_single_noindex_meta(out)
    assert out.index(ROBOTS_META) == len(b"<html><head>")


def test_staging_robots_txt_allows_crawling_and_has_no_sitemap() -> None:
    text = STAGING_ROBOTS_TXT.decode("utf-8")
    lines = [line.strip().lower() for line in text.splitlines()]
    directives = [line for line in lines if line and not line.startswith("#")]
    assert "user-agent: *" in directives
    assert not any(line.startswith("sitemap:") for line in directives)
    assert not any(line.startswith("disallow") for line in directives)
    assert "allow: /" in directives


def test_a_data_name_attribute_is_not_a_robots_meta() -> None:
    html = b'<head><meta data-name="robots" content="x"></head>'
    out = inject_robots_meta(html)
    assert b'<meta data-name="robots" content="x">' in out
    assert out.count(ROBOTS_META) == 1
