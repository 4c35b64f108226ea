"""The book of request heads answered before (edge.visitor.again) stays bounded."""

from __future__ import annotations

from typing import Any, cast

from edge.visitor.again import HEAD_MAX, KEEP, Again, AgainBook

ENTRY = cast(Again, object())  # the book never looks inside an entry


def test_a_head_longer_than_the_limit_is_not_remembered() -> None:
    book = AgainBook()
    book.remember(b"G" * (HEAD_MAX + 1), ENTRY)
    book.remember(b"G" * HEAD_MAX, ENTRY)
    assert list(book) == [b"G" * HEAD_MAX]


def test_a_flood_of_distinct_heads_starts_the_book_over() -> None:
    book = AgainBook()
    for n in range(KEEP):
        book.remember(b"GET /%d" % n, ENTRY)
    assert len(book) == KEEP
    book.remember(b"GET /one-more", ENTRY)
    assert list(book) == [b"GET /one-more"]


def test_remembering_a_head_again_replaces_its_answer() -> None:
    book = AgainBook()
    newer: Any = object()
    book.remember(b"GET /", ENTRY)
    book.remember(b"GET /", newer)
    assert book[b"GET /"] is newer and len(book) == 1


def test_a_full_book_keeps_its_heads_when_one_is_remembered_again() -> None:
    book = AgainBook()
    for n in range(KEEP):
        book.remember(b"GET /%d" % n, ENTRY)
    book.remember(b"GET /7", ENTRY)  # after a publish, say: the same head, a new answer
    assert len(book) == KEEP
