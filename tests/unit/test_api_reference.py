"""docs/admin-api.md is the OpenAPI document rendered; it cannot fall behind the code."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.admin_api.openapi import openapi_document
from edge.admin_api.reference import render_markdown, type_of

DOC = Path(__file__).resolve().parents[2] / "docs" / "admin-api.md"


def test_committed_reference_is_current() -> None:
    assert DOC.read_text(encoding="utf-8") == render_markdown(openapi_document()), (
        "docs/admin-api.md is stale: python -m edge.admin_api.reference > docs/admin-api.md"
    )


def test_every_operation_and_schema_is_in_the_reference() -> None:
    document = openapi_document()
    text = render_markdown(document)
    for path, item in document["paths"].items():
        for method in item:
            assert f"### `{method.upper()} {path}`" in text
    for name in document["components"]["schemas"]:
        assert f"### {name}\n" in text


@pytest.mark.parametrize(
    ("schema", "expected"),
    [
        ({"type": "string"}, "string"),
        ({"type": "array", "items": {"type": "string"}}, "[string]"),
        ({"$ref": "#/components/schemas/Published"}, "[Published](#published)"),
        ({"anyOf": [{"type": "integer"}, {"type": "null"}]}, "integer \\| null"),
        ({"enum": ["staging", "production"]}, '`"staging"` \\| `"production"`'),
        (
            {"type": "object", "additionalProperties": {"type": "integer"}},
            "{string: integer}",
        ),
        ({}, "any"),
    ],
)
def test_type_spelling(schema: dict[str, object], expected: str) -> None:
    assert type_of(schema) == expected
