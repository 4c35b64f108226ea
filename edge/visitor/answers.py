"""Answers the visitor side decides, as plain data: status, headers, body. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

TEXT = "text/plain; charset=utf-8"


@dataclass(frozen=True, slots=True)
class Answer:
    """A whole answer; the visitor wire adds Content-Length, Date and Connection."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


def plain(status: int, text: str, headers: Mapping[str, str] | None = None) -> Answer:
    """A short plain-text answer (``headers`` first, then its Content-Type)."""
    out = dict(headers or {})
    out["Content-Type"] = TEXT
    return Answer(status, out, (text + "\n").encode())


def empty(status: int, headers: Mapping[str, str] | None = None) -> Answer:
    """An answer without a body (a redirect, 204)."""
    return Answer(status, dict(headers or {}))
