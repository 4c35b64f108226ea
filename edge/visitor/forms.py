"""Form posts: decode and check a submission against the form's settings. Pure.

Accepted encodings: ``application/x-www-form-urlencoded``, ``multipart/form-data``
without files, and a JSON object of strings (or lists of strings). Anything else,
bad encoding, unknown or too many fields is refused whole: nothing partial is
ever stored.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl

import msgspec

from edge.snapshots.settings import FormSettings

Fields = dict[str, str | list[str]]
_json_fields = msgspec.json.Decoder(dict[str, str | list[str]])


class FormError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _add(fields: Fields, name: str, value: str) -> None:
    old = fields.get(name)
    if old is None:
        fields[name] = value
    elif isinstance(old, list):
        old.append(value)
    else:
        fields[name] = [old, value]


def _urlencoded(body: bytes, limit: int) -> Fields:
    try:
        pairs = parse_qsl(
            body.decode("utf-8", "strict"),
            keep_blank_values=True,
            strict_parsing=bool(body),
            errors="strict",
            max_num_fields=limit,
        )
    except (UnicodeDecodeError, ValueError) as exc:
        raise FormError(400, f"malformed form body: {exc}") from None
    fields: Fields = {}
    for name, value in pairs:
        _add(fields, name, value)
    return fields


_BOUNDARY = re.compile(r'boundary="?([0-9A-Za-z\'()+_,\-./:=? ]{1,70})"?', re.IGNORECASE)
_DISPOSITION = re.compile(
    rb'^content-disposition:\s*form-data((?:\s*;\s*[a-z*]+="[^"\r\n]*")*)\s*$',
    re.IGNORECASE | re.MULTILINE,
)
_PARAM = re.compile(rb'([a-z*]+)="([^"\r\n]*)"', re.IGNORECASE)
_MAX_PART_HEADERS = 1024


def _multipart(content_type: str, body: bytes, max_parts: int) -> Fields:
    """A linear, bounded multipart/form-data reader: named text fields only.

    (The stdlib email parser is neither: crafted headers make it take seconds or
    raise.) Parts are counted before anything is decoded.
    """
    match = _BOUNDARY.search(content_type)
    if match is None:
        raise FormError(400, "multipart body without a boundary")
    delimiter = b"--" + match.group(1).strip().encode("ascii")
    if body.count(delimiter) > max_parts + 1:
        raise FormError(400, f"too many fields (at most {max_parts})")
    sections = body.split(delimiter)
    if len(sections) < 3 or not sections[-1].startswith(b"--"):
        raise FormError(400, "malformed multipart body")
    fields: Fields = {}
    for section in sections[1:-1]:
        if not section.startswith(b"\r\n") or not section.endswith(b"\r\n"):
            raise FormError(400, "malformed multipart part")
        head, sep, value = section[2:-2].partition(b"\r\n\r\n")
        if not sep or len(head) > _MAX_PART_HEADERS:
            raise FormError(400, "malformed multipart part headers")
        disposition = _DISPOSITION.search(head)
        if disposition is None:
            raise FormError(400, "every part must be a named form-data field")
        params = {k.lower(): v for k, v in _PARAM.findall(disposition.group(1))}
        if b"filename" in params or b"filename*" in params:
            raise FormError(400, "file uploads are not accepted")
        if b"name" not in params:
            raise FormError(400, "every part must be a named form-data field")
        try:
            _add(fields, params[b"name"].decode("utf-8"), value.decode("utf-8"))
        except UnicodeDecodeError:
            raise FormError(400, "form fields must be UTF-8") from None
    return fields


def parse_form(content_type: str | None, body: bytes, form: FormSettings) -> Fields:
    """The submitted fields, or :class:`FormError` with the status to answer."""
    if len(body) > form.max_bytes:
        raise FormError(413, f"form bodies are limited to {form.max_bytes} bytes")
    media = (content_type or "").partition(";")[0].strip().lower()
    if media == "application/x-www-form-urlencoded":
        fields = _urlencoded(body, form.max_fields)
    elif media == "multipart/form-data":
        fields = _multipart(content_type or "", body, form.max_fields)
    elif media == "application/json":
        try:
            fields = _json_fields.decode(body)
        except msgspec.DecodeError as exc:
            raise FormError(400, f"expected a JSON object of strings: {exc}") from None
    else:
        raise FormError(415, "send application/x-www-form-urlencoded, multipart or JSON")
    count = sum(len(v) if isinstance(v, list) else 1 for v in fields.values())
    if count > form.max_fields:
        raise FormError(400, f"too many fields (at most {form.max_fields})")
    if form.fields is not None:
        unknown = sorted(set(fields) - set(form.fields))
        if unknown:
            raise FormError(400, f"unknown field(s): {', '.join(unknown[:10])}")
    return fields
