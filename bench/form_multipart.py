"""Form multipart bodies: edge's reader against aiohttp's ``MultipartReader`` (issue 17).

Why ``edge.visitor.forms`` keeps its own multipart reader: this runs both over the
same bodies. First the answers: each body's fields (or the status it is refused
with) from both readers; the table marks where they differ. Then the time per post
of each, for a typical form and one at the default limits (50 fields, 60 KB), as a
ratio to edge's reader. In-process, no server, a few seconds::

    .venv/bin/python bench/form_multipart.py [--json PATH]

The aiohttp reader is what ``forms._multipart`` would be on aiohttp's
``MultipartReader`` with the same limits: the body is already whole and within
``max_bytes``, fed to a ``StreamReader``; parts counted as they are read; part
headers within aiohttp's line and count limits; named text fields only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import BodyPartReader, MultipartReader, StreamReader, hdrs
from aiohttp.base_protocol import BaseProtocol
from aiohttp.helpers import parse_mimetype
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.multipart import content_disposition_filename, parse_content_disposition

from edge.errors import FormError
from edge.snapshots.settings import FormSettings
from edge.visitor.forms import Fields, parse_form

CT = "multipart/form-data; boundary=b"
Outcome = tuple[str, Any]  # ("ok", fields) or ("refused", status)


async def aiohttp_multipart(content_type: str, body: bytes, form: FormSettings) -> Fields:
    """Named text fields of a form-data body, read by aiohttp's MultipartReader."""
    if len(body) > form.max_bytes:
        raise FormError("too large")
    if not parse_mimetype(content_type).parameters.get("boundary"):
        raise FormError("multipart body without a boundary")
    loop = asyncio.get_running_loop()
    stream = StreamReader(BaseProtocol(loop), max(len(body), 2**16), loop=loop)
    stream.feed_data(body)
    stream.feed_eof()
    try:
        reader = MultipartReader(
            {hdrs.CONTENT_TYPE: content_type},
            stream,
            client_max_size=form.max_bytes,
            max_field_size=1024,
            max_headers=8,
        )
    except ValueError:
        raise FormError("multipart body without a boundary") from None
    fields: Fields = {}
    parts = 0
    try:
        while (part := await reader.next()) is not None:
            parts += 1
            if parts > form.max_fields:
                raise FormError("too many fields")
            if not isinstance(part, BodyPartReader):
                raise FormError("every part must be a named form-data field")
            disposition, params = parse_content_disposition(
                part.headers.get(hdrs.CONTENT_DISPOSITION)
            )
            if content_disposition_filename(params, "filename") is not None:
                raise FormError("file uploads are not accepted")
            name = content_disposition_filename(params, "name")
            if disposition != "form-data" or name is None:
                raise FormError("every part must be a named form-data field")
            value = (await part.read()).decode("utf-8")
            old = fields.get(name)
            fields[name] = (
                value if old is None else [*([old] if isinstance(old, str) else old), value]
            )
    except UnicodeDecodeError:
        raise FormError("form fields must be UTF-8") from None
    except (ValueError, RuntimeError, AssertionError, HttpProcessingError) as exc:
        raise FormError(f"malformed multipart body: {exc}") from None
    if not parts:
        raise FormError("malformed multipart body: no part")
    return fields


async def edge_multipart(content_type: str, body: bytes, form: FormSettings) -> Fields:
    return parse_form(content_type, body, form)


def _part(name: bytes, value: bytes, extra: bytes = b"") -> bytes:
    return b'Content-Disposition: form-data; name="' + name + b'"' + extra + b"\r\n\r\n" + value


def _body(*parts: bytes, end: bool = True) -> bytes:
    out = b"".join(b"--b\r\n" + p + b"\r\n" for p in parts)
    return out + (b"--b--\r\n" if end else b"")


CASES: dict[str, tuple[str, bytes]] = {
    "two fields": (CT, _body(_part(b"name", b"multi"), _part(b"message", "héllo".encode()))),
    "a repeated field": (CT, _body(_part(b"a", b"1"), _part(b"a", b"2"))),
    "a _charset_ field (RFC 7578 4.6)": (
        CT,
        _body(_part(b"_charset_", b"UTF-8"), _part(b"a", b"1")),
    ),
    "no boundary": ("multipart/form-data", _body(_part(b"a", b"1"))),
    "wrong boundary": ("multipart/form-data; boundary=zz", _body(_part(b"a", b"1"))),
    "no closing boundary": (CT, _body(_part(b"a", b"1"), end=False)),
    "a file": (CT, _body(_part(b"a", b"1", b'; filename="x.txt"'))),
    "too many fields": (CT, _body(*[_part(b"a", b"1")] * 6)),
    "a 56 KB part header": (CT, _body(_part(b"a", b"v", b'; p="x"' * 8000))),
    "not UTF-8": (CT, _body(_part(b"a", b"\xff"))),
}
FORM = FormSettings(max_fields=5)
TIMED = {
    "5 fields of 40 bytes": _body(*[_part(b"f%d" % i, b"x" * 40) for i in range(5)]),
    "50 fields, 60 KB (the default limits)": _body(
        *[_part(b"f%d" % i, b"x" * 1200) for i in range(50)]
    ),
}

Reader = Callable[[str, bytes, FormSettings], Awaitable[Fields]]


async def outcome(reader: Reader, content_type: str, body: bytes, form: FormSettings) -> Outcome:
    try:
        return ("ok", await reader(content_type, body, form))
    except FormError as exc:
        return ("refused", exc.status)


async def per_post(reader: Reader, body: bytes, seconds: float = 1.0) -> float:
    form = FormSettings()
    assert (await outcome(reader, CT, body, form))[0] == "ok"
    count, started = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds:
        for _ in range(20):
            await reader(CT, body, form)
        count += 20
    return elapsed / count


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    answers = []
    print(f"{'body':38} {'edge':>16} {'aiohttp':>24}")
    for label, (content_type, body) in CASES.items():
        ours = await outcome(edge_multipart, content_type, body, FORM)
        theirs = await outcome(aiohttp_multipart, content_type, body, FORM)
        same = ours == theirs
        answers.append({"body": label, "edge": ours, "aiohttp": theirs, "same": same})
        show = [o[1] if o[0] == "refused" else "stored" for o in (ours, theirs)]
        print(f"{label:38} {show[0]!s:>16} {show[1]!s:>24}{'' if same else '  <- differs'}")
    timings = []
    print(f"\n{'post':38} {'edge µs':>10} {'aiohttp µs':>12} {'ratio':>7}")
    for label, body in TIMED.items():
        ours_s = await per_post(edge_multipart, body)
        theirs_s = await per_post(aiohttp_multipart, body)
        ratio = theirs_s / ours_s
        timings.append({"post": label, "edge_us": ours_s * 1e6, "aiohttp_us": theirs_s * 1e6,
                        "ratio": ratio})  # fmt: skip
        print(f"{label:38} {ours_s * 1e6:10.1f} {theirs_s * 1e6:12.1f} {ratio:6.1f}x")
    doc = {
        "machine": {"python": platform.python_version(), "platform": platform.platform()},
        "answers": answers,
        "timings": timings,
    }
    text = json.dumps(doc, indent=2, default=str)
    print(text)
    if args.json is not None:
        args.json.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
