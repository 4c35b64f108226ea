"""Form posts: decode and check a submission against the form's settings. Pure.

Accepted encodings: ``application/x-www-form-urlencoded``, ``multipart/form-data``
without files, and a JSON object of strings (or lists of strings). Anything else,
bad encoding, unknown or too many fields is refused whole: nothing partial is
ever stored.
"""

from __future__ import annotations

import email.parser
import email.policy
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


def _multipart(content_type: str, body: bytes) -> Fields:
    head = f"Content-Type: {content_type}\r\n\r\n".encode("latin-1", "replace")
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    if not message.is_multipart() or message.defects:
        raise FormError(400, "malformed multipart body")
    fields: Fields = {}
    for part in message.iter_parts():
        if (
            part.get_content_disposition() != "form-data"
            or part.get_param("name", header="content-disposition") is None
        ):
            raise FormError(400, "every multipart part must be a named form-data field")
        if part.get_filename() is not None:
            raise FormError(400, "file uploads are not accepted")
        name = str(part.get_param("name", header="content-disposition"))
        payload = part.get_payload(decode=True)
        if not isinstance(payload, bytes):
            raise FormError(400, "malformed multipart part")
        try:
            _add(fields, name, payload.decode("utf-8", "strict"))
        except UnicodeDecodeError:
            raise FormError(400, f"field {name!r} is not UTF-8") from None
    return fields


def parse_form(content_type: str | None, body: bytes, form: FormSettings) -> Fields:
    """The submitted fields, or :class:`FormError` with the status to answer."""
    if len(body) > form.max_bytes:
        raise FormError(413, f"form bodies are limited to {form.max_bytes} bytes")
    media = (content_type or "").partition(";")[0].strip().lower()
    if media == "application/x-www-form-urlencoded":
        fields = _urlencoded(body, form.max_fields)
    elif media == "multipart/form-data":
        fields = _multipart(content_type or "", body)
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
