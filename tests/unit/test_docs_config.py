"""docs/configuration.md lists exactly the keys edge/config.py accepts.

Each documented table is matched to the Struct that decodes it; a key added to the
schema without a line in the reference (or documented but not accepted) fails here.
"""

from __future__ import annotations

import re
from pathlib import Path

import msgspec
import pytest

from edge import config

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"

# Heading of each reference table -> the Struct it documents.
TABLES: dict[str, type[msgspec.Struct]] = {
    "`[server]`": config.ServerConfig,
    "`[store]`": config.StoreConfig,
    "`[retention]`": config.RetentionConfig,
    "`[[tokens]]`": config.TokenConfig,
    "`[[sites]]`": config.SiteConfig,
    "`[sites.production]` and `[sites.staging]`": config.EnvironmentConfig,
    "webhook table": config.WebhookConfig,
    "upstream table": config.UpstreamConfig,
    "TLS files (`default_tls`, `tls`)": config.TlsFiles,
}

ROW_KEY = re.compile(r"^\| `([a-z0-9_]+)` \|", re.MULTILINE)


def documented_tables() -> dict[str, set[str]]:
    """Heading -> the keys in the first column of the table under it."""
    sections = re.split(r"^#{2,3} (.+)$", DOC.read_text(encoding="utf-8"), flags=re.MULTILINE)
    return {
        heading.strip(): set(ROW_KEY.findall(body))
        for heading, body in zip(sections[1::2], sections[2::2], strict=True)
    }


def schema_keys(struct: type[msgspec.Struct]) -> set[str]:
    return {f.encode_name for f in msgspec.structs.fields(struct)}


@pytest.mark.parametrize("heading", list(TABLES))
def test_reference_table_matches_schema(heading: str) -> None:
    tables = documented_tables()
    assert heading in tables, f"docs/configuration.md has no section {heading!r}"
    schema = schema_keys(TABLES[heading])
    documented = tables[heading]
    assert not schema - documented, f"{heading}: undocumented keys {sorted(schema - documented)}"
    assert not documented - schema, f"{heading}: documented but not accepted {documented - schema}"


def test_every_config_struct_has_a_table() -> None:
    """A new nested table in the schema needs its own section in the reference."""
    reachable: set[type[msgspec.Struct]] = set()
    pending: list[type[msgspec.Struct]] = [config.Config]
    while pending:
        struct = pending.pop()
        for field in msgspec.structs.fields(struct):
            for inner in re.findall(r"\b(\w+)\b", str(field.type)):
                candidate = getattr(config, inner, None)
                if (
                    isinstance(candidate, type)
                    and issubclass(candidate, msgspec.Struct)
                    and candidate not in reachable
                ):
                    reachable.add(candidate)
                    pending.append(candidate)
    assert reachable - {config.Config} <= set(TABLES.values()), (
        f"undocumented tables: {reachable - {config.Config} - set(TABLES.values())}"
    )
