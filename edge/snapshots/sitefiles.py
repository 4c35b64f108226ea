"""``_redirects`` and ``_headers``: Netlify's (and Cloudflare Pages') files, parsed. Pure.

A pushed directory may carry these two files at its root. When a snapshot is
created they are parsed here, line by line; any bad line refuses the snapshot
with ``_redirects:LINE: what is wrong`` (a 400), so nothing is found wrong at
serve time. The parsed rules are stored in the snapshot's settings under
``from_files`` (:func:`site_files_doc`), and compiled for serving by
:mod:`edge.snapshots.rules`.

``_redirects``: ``from to [status][!]`` per line; ``#`` comments and blank
lines. ``from`` is a path, with ``:name`` placeholders (whole segments) and a
final ``*`` (the splat); ``to`` is a path or an ``http(s)://`` URL that may use
``:name`` and ``:splat``. Status 301 (the default), 302, 303, 307, 308 redirect;
200 rewrites (the visitor's URL stays), 404 and 410 answer the target's content
with that status. ``!`` forces the rule over an existing file.

``_headers``: a path pattern line (``*`` and ``:name`` as above) followed by
indented ``Name: value`` lines. Header names edge decides itself are refused,
exactly as in ``settings.headers``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from edge.errors import BadRequest
from edge.paths import normalize_path
from edge.snapshots.headers import is_safe_target, settable_problem

REDIRECTS_FILE = "/_redirects"
HEADERS_FILE = "/_headers"
SITE_FILES = frozenset({REDIRECTS_FILE, HEADERS_FILE})
MAX_FILE_BYTES = 2 * 1024 * 1024
MAX_FILE_RULES = 10_000  # redirect rules, or header blocks
MAX_HEADERS_PER_BLOCK = 50
MAX_LINE = 4096
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
REWRITE_STATUSES = frozenset({200, 404, 410})
_PLACEHOLDER = re.compile(r":([A-Za-z_][A-Za-z0-9_]*)")
_SEGMENT_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_STATUS = re.compile(r"([0-9]{3})(!?)|(!)")


@dataclass(frozen=True, slots=True)
class RedirectRule:
    line: int
    from_: str
    to: str
    status: int
    force: bool

    @property
    def rewrite(self) -> bool:
        return self.status in REWRITE_STATUSES


@dataclass(frozen=True, slots=True)
class HeaderBlock:
    line: int
    path: str
    headers: tuple[tuple[str, str], ...]


def _rule_lines(text: str, file: str) -> Iterator[tuple[int, str, str, str]]:
    """``(number, raw line, stripped line, "file:number")`` of each line that is
    neither blank nor a comment; 400 on a line longer than :data:`MAX_LINE`."""
    for n, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        where = f"{file}:{n}"
        if len(line) > MAX_LINE:
            raise BadRequest(f"{where}: line longer than {MAX_LINE} characters")
        yield n, raw, line, where


def decode(name: str, data: bytes) -> str:
    """The file's text (UTF-8, a BOM allowed); 400 naming the file otherwise."""
    if len(data) > MAX_FILE_BYTES:
        raise BadRequest(f"{name}: {len(data)} bytes; at most {MAX_FILE_BYTES}")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BadRequest(f"{name}: not UTF-8 text (byte {exc.start})") from None


def pattern_problem(pattern: str) -> str | None:
    """Why ``pattern`` cannot be a ``from`` / ``_headers`` path (``None``: it can)."""
    if pattern.startswith(("http://", "https://")):
        return (
            f"{pattern!r}: rules for a whole host (a full URL) are not supported;"
            " edge routes hosts in its configuration, so write the path"
        )
    if not pattern.startswith("/"):
        return f"{pattern!r}: a path starts with '/'"
    if len(pattern) > MAX_LINE:
        return "path too long"
    if "?" in pattern or "#" in pattern:
        return f"{pattern!r}: a path without query or fragment"
    star = pattern.find("*")
    if star != -1 and star != len(pattern) - 1:
        return f"{pattern!r}: '*' (the splat) may only end the path"
    plain = pattern[:-1] if star != -1 else pattern
    if normalize_path(plain) != plain:
        return f"{pattern!r}: not a clean path (no '..', '//', control characters)"
    for segment in plain.split("/"):
        if segment.startswith(":") and not _SEGMENT_NAME.fullmatch(segment[1:]):
            return f"{pattern!r}: a placeholder is ':' and a name (letters, digits, '_')"
    return None


def names_in(pattern: str) -> set[str]:
    """The placeholder names a pattern binds (``splat`` for a final ``*``)."""
    names = {seg[1:] for seg in pattern.split("/") if seg.startswith(":")}
    if pattern.endswith("*"):
        names.add("splat")
    return names


def _probe_target(to: str, bound: set[str]) -> str:
    """``to`` with its bound placeholders filled in, to check it as a target."""
    return _PLACEHOLDER.sub(lambda m: "x" if m.group(1) in bound else m.group(0), to)


def parse_redirects(text: str) -> list[RedirectRule]:
    """The rules of a ``_redirects`` file, in file order; 400 on the first bad line."""
    rules: list[RedirectRule] = []
    for n, _, line, where in _rule_lines(text, "_redirects"):
        parts = line.split()
        if len(parts) < 2:
            raise BadRequest(f"{where}: expected 'from to [status][!]', got {line!r}")
        from_, to, rest = parts[0], parts[1], parts[2:]
        if "=" in to and not to.startswith(("/", "http://", "https://")):
            raise BadRequest(
                f"{where}: query-parameter conditions ({to}) are not supported by edge"
            )
        problem = pattern_problem(from_)
        if problem is not None:
            raise BadRequest(f"{where}: {problem}")
        status, force = 301, False
        if rest:
            conditions = [p for p in rest if "=" in p]
            if conditions:
                raise BadRequest(
                    f"{where}: conditions ({conditions[0]}) are not supported by edge"
                    " (no query, country, language, role or cookie matching)"
                )
            if len(rest) > 1:
                raise BadRequest(f"{where}: expected 'from to [status][!]', got {line!r}")
            match = _STATUS.fullmatch(rest[0])
            if match is None:
                raise BadRequest(f"{where}: {rest[0]!r} is not a status like 301 or 200!")
            if match.group(3):
                force = True
            else:
                status, force = int(match.group(1)), bool(match.group(2))
        if status not in REDIRECT_STATUSES and status not in REWRITE_STATUSES:
            raise BadRequest(
                f"{where}: status {status}: edge supports 301, 302, 303, 307, 308"
                " (redirects), 200 (rewrite), 404 and 410"
            )
        bound = names_in(from_)
        if ":splat" in to and "splat" not in bound:
            raise BadRequest(f"{where}: {to!r} uses :splat but {from_!r} has no '*'")
        probe = _probe_target(to, bound)
        if not is_safe_target(probe):
            raise BadRequest(f"{where}: {to!r}: the target is a path like '/new' or an http(s) URL")
        absolute = not to.startswith("/")
        if absolute and status in (404, 410):
            raise BadRequest(f"{where}: a {status} rule serves a path of this site, not a URL")
        rules.append(RedirectRule(n, from_, to, status, force))
        if len(rules) > MAX_FILE_RULES:
            raise BadRequest(f"{where}: more than {MAX_FILE_RULES} rules")
    return rules


def parse_headers(text: str, refused: frozenset[str]) -> list[HeaderBlock]:
    """The blocks of a ``_headers`` file, in file order; 400 on the first bad line.

    ``refused``: lower-case names edge decides itself (as for ``settings.headers``).
    """
    blocks: list[HeaderBlock] = []
    path: str | None = None
    start = 0
    headers: list[tuple[str, str]] = []

    def close() -> None:
        if path is not None:
            blocks.append(HeaderBlock(start, path, tuple(headers)))

    for n, raw, line, where in _rule_lines(text, "_headers"):
        if not raw[0].isspace():
            close()
            problem = pattern_problem(line)
            if problem is not None:
                raise BadRequest(f"{where}: {problem}")
            path, start, headers = line, n, []
            if len(blocks) >= MAX_FILE_RULES:
                raise BadRequest(f"{where}: more than {MAX_FILE_RULES} path blocks")
            continue
        if path is None:
            raise BadRequest(f"{where}: a header line before any path line")
        if line.startswith("!"):
            raise BadRequest(f"{where}: detaching a header ('! Name') is not supported")
        name, colon, value = line.partition(":")
        name, value = name.strip(), value.strip()
        if not colon or not name:
            raise BadRequest(f"{where}: expected an indented 'Name: value', got {line!r}")
        problem = settable_problem(name, value, refused)
        if problem is not None:
            raise BadRequest(f"{where}: {name}: {problem}")
        if len(headers) >= MAX_HEADERS_PER_BLOCK:
            raise BadRequest(f"{where}: more than {MAX_HEADERS_PER_BLOCK} headers for one path")
        headers.append((name, value))
    close()
    return blocks


def site_files_doc(redirects: list[RedirectRule], headers: list[HeaderBlock]) -> dict[str, Any]:
    """The ``settings.from_files`` document of parsed rules (what the snapshot stores)."""
    doc: dict[str, Any] = {}
    if redirects:
        doc["redirects"] = [
            {"line": r.line, "from": r.from_, "to": r.to, "status": r.status, "force": r.force}
            for r in redirects
        ]
    if headers:
        doc["headers"] = [
            {"line": b.line, "path": b.path, "headers": [list(h) for h in b.headers]}
            for b in headers
        ]
    return doc
