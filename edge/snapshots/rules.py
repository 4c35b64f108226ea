"""``_redirects`` / ``_headers`` rules compiled for serving. Pure.

How this works: a rule's path pattern is either exact (no ``:name``, no ``*``)
or a pattern. Exact paths go into a dictionary (path -> first rule index; a
trailing slash is optional, as on Netlify); patterns are compiled into ONE
regular expression, an alternation in file order where each rule is a group
(``m.lastindex`` names the rule, its placeholders are the groups inside). The
first rule that matches a path is the smaller of the dictionary's and the
alternation's index: one lookup and one C-level match, however many rules.

Redirects are looked up when a request is first decided (not on the hit path:
what a target led to is remembered per snapshot); headers are resolved when a
representation is built, so neither is walked per cached hit.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import quote

from edge.snapshots.sitefiles import HeaderBlock, RedirectRule

Params = dict[str, str]
_PLACEHOLDER = re.compile(r":([A-Za-z_][A-Za-z0-9_]*)")
# What stays literal when a placeholder's value goes into a Location.
_LOCATION_SAFE = "/!$&'()*+,;=:@-._~"


def is_exact(pattern: str) -> bool:
    return not pattern.endswith("*") and not any(seg.startswith(":") for seg in pattern.split("/"))


def _regex(pattern: str) -> tuple[str, list[str]]:
    """A pattern's regular expression (no groups but its placeholders') and their names."""
    names: list[str] = []
    splat = pattern.endswith("*")
    body = pattern[:-1] if splat else pattern
    slash_splat = splat and body.endswith("/")
    if slash_splat:
        body = body[:-1]
    elif not splat and body.endswith("/") and body != "/":
        body = body[:-1]
    parts: list[str] = []
    for i, seg in enumerate(body.split("/")):
        if i:
            parts.append("/")
        if seg.startswith(":"):
            names.append(seg[1:])
            parts.append("([^/]+)")
        else:
            parts.append(re.escape(seg))
    text = "".join(parts)
    if slash_splat:
        text += "(?:/(.*))?" if body else "/(.*)"
        names.append("splat")
    elif splat:
        text += "(.*)"
        names.append("splat")
    elif body != "/":
        text += "/?"
    return text, names


class PathPatterns:
    """First-match lookup of paths among patterns (see the module's docstring)."""

    __slots__ = ("_exact", "_groups", "_regex", "size")

    def __init__(self, patterns: Sequence[str]) -> None:
        self.size = len(patterns)
        self._exact: dict[str, int] = {}
        self._groups: dict[int, tuple[int, tuple[str, ...]]] = {}
        alternatives: list[str] = []
        group = 1
        for index, pattern in enumerate(patterns):
            if is_exact(pattern):
                self._exact.setdefault(pattern, index)
                if pattern != "/":
                    other = pattern[:-1] if pattern.endswith("/") else pattern + "/"
                    self._exact.setdefault(other, index)
                continue
            text, names = _regex(pattern)
            alternatives.append(f"({text})")
            self._groups[group] = (index, tuple(names))
            group += 1 + len(names)
        self._regex = re.compile("|".join(alternatives)) if alternatives else None

    def first(self, path: str) -> tuple[int, Params] | None:
        """The first pattern (index) ``path`` matches, with its placeholders' values."""
        exact = self._exact.get(path)
        regex = self._regex
        match = None if regex is None else regex.fullmatch(path)
        if match is None:
            return None if exact is None else (exact, {})
        group = match.lastindex
        assert group is not None
        index, names = self._groups[group]
        if exact is not None and exact < index:
            return exact, {}
        return index, {name: match.group(group + 1 + i) or "" for i, name in enumerate(names)}


def substitute(template: str, params: Params, *, quoted: bool) -> str:
    """``template`` with ``:name`` replaced by the values ``params`` binds (others kept)."""
    if not params or ":" not in template:
        return template

    def value(m: re.Match[str]) -> str:
        found = params.get(m.group(1))
        if found is None:
            return m.group(0)
        return quote(found, safe=_LOCATION_SAFE) if quoted else found

    return _PLACEHOLDER.sub(value, template)


@dataclass(frozen=True, slots=True)
class Redirected:
    """What a ``_redirects`` rule makes of a request."""

    rule: RedirectRule
    target: str  # the substituted ``to`` (for a redirect: quoted for a Location)

    @property
    def rewrite(self) -> bool:
        return self.rule.rewrite


class RedirectTable:
    """``_redirects`` compiled: the first matching rule, with Netlify's shadowing."""

    __slots__ = ("_all", "_forced", "_forced_index", "rules")

    def __init__(self, rules: Sequence[RedirectRule]) -> None:
        self.rules = tuple(rules)
        self._all = PathPatterns([r.from_ for r in rules])
        forced = [i for i, r in enumerate(rules) if r.force]
        self._forced_index = forced
        self._forced = PathPatterns([rules[i].from_ for i in forced])

    def __len__(self) -> int:
        return len(self.rules)

    def match(self, path: str, exists: bool) -> Redirected | None:
        """The first rule for ``path``; over an existing file only a forced (``!``) one."""
        if exists:
            found = self._forced.first(path)
            if found is None:
                return None
            index, params = self._forced_index[found[0]], found[1]
        else:
            hit = self._all.first(path)
            if hit is None:
                return None
            index, params = hit
        rule = self.rules[index]
        if rule.rewrite:
            return Redirected(rule, substitute(rule.to, params, quoted=False))
        return Redirected(rule, ascii_location(substitute(rule.to, params, quoted=True)))


def ascii_location(location: str) -> str:
    """A Location as written on the wire: non-ASCII characters percent-encoded (UTF-8)."""
    if location.isascii():
        return location
    return "".join(c if c.isascii() else quote(c) for c in location)


def with_query(location: str, query: str) -> str:
    """The request's query string passed on (unless the target has its own)."""
    if not query or "?" in location:
        return location
    return f"{location}?{query}"


class HeaderTable:
    """``_headers`` compiled: every block matching a path, headers combined."""

    __slots__ = ("_blocks", "_exact", "_patterns")

    def __init__(self, blocks: Sequence[HeaderBlock]) -> None:
        self._blocks = tuple(blocks)
        self._exact: dict[str, list[int]] = {}
        self._patterns: list[tuple[re.Pattern[str], int, tuple[str, ...]]] = []
        for index, block in enumerate(blocks):
            path = block.path
            if is_exact(path):
                self._exact.setdefault(path, []).append(index)
                if path != "/":
                    other = path[:-1] if path.endswith("/") else path + "/"
                    self._exact.setdefault(other, []).append(index)
                continue
            text, names = _regex(path)
            self._patterns.append((re.compile(text), index, tuple(names)))

    def __len__(self) -> int:
        return len(self._blocks)

    @property
    def paths(self) -> list[str]:
        return [block.path for block in self._blocks]

    def headers_for(self, paths: Sequence[str]) -> dict[str, str]:
        """Headers of every block matching any of ``paths`` (the forms one file is
        requested by), in file order; a name set twice gets its values joined by ``, ``.
        """
        matched: dict[int, Params] = {}
        for path in paths:
            for index in self._exact.get(path, ()):
                matched.setdefault(index, {})
            for regex, index, names in self._patterns:
                if index in matched:
                    continue
                m = regex.fullmatch(path)
                if m is not None:
                    matched[index] = {n: m.group(i + 1) or "" for i, n in enumerate(names)}
        combined: dict[str, tuple[str, str]] = {}
        for index in sorted(matched):
            params = matched[index]
            for name, value in self._blocks[index].headers:
                value = substitute(value, params, quoted=False)
                key = name.lower()
                before = combined.get(key)
                combined[key] = (
                    (name, value) if before is None else (before[0], f"{before[1]}, {value}")
                )
        return dict(combined.values())


def request_forms(manifest_path: str) -> tuple[str, ...]:
    """The request paths that serve a manifest path (``/a/index.html``: ``/a/``, ``/a``)."""
    if manifest_path.endswith("/index.html"):
        directory = manifest_path[: -len("index.html")]
        if directory == "/":
            return (manifest_path, "/")
        return (manifest_path, directory, directory[:-1])
    if manifest_path.endswith(".html"):
        return (manifest_path, manifest_path[: -len(".html")])
    return (manifest_path,)
