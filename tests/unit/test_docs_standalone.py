"""The repository's documentation stands alone (issue 15, item 10).

The README linked ``../shared/spec/SPEC.md``, which a clone does not have: every
relative link of every Markdown file must lead to a file inside the repository.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = sorted(
    p
    for p in ROOT.rglob("*.md")
    if not any(
        part.startswith(".") or part in ("node_modules",) for part in p.relative_to(ROOT).parts
    )
)
LINK = re.compile(r"\]\(([^)\s]+)\)|`(\.\./[^`]+)`")


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_stays_in_the_repository(doc: Path) -> None:
    for match in LINK.finditer(doc.read_text(encoding="utf-8")):
        target = (match.group(1) or match.group(2)).partition("#")[0]
        if not target or re.match(r"^[a-z]+:", target):
            continue
        resolved = (doc.parent / target).resolve()
        assert resolved.is_relative_to(ROOT), f"{doc.name} links outside the repository: {target}"
        assert resolved.exists(), f"{doc.name} links to a missing file: {target}"


def test_the_readme_links_the_behaviour_reference() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "(docs/behaviour.md)" in readme
    assert "shared/spec" not in readme


def test_bootstrap_silences_the_editable_install_warning() -> None:
    bootstrap = (ROOT / "scripts" / "bootstrap").read_text(encoding="utf-8")
    assert 'PYTHONWARNINGS="ignore:Editable installation"' in bootstrap
