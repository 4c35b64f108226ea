"""Cache keys: the variant names the environment and the content coding."""

from __future__ import annotations

import pytest

from edge.cache.keys import CODINGS, Variant, variant_for
from edge.router import Env


@pytest.mark.parametrize(
    ("env", "gzip", "expected"),
    [
        ("production", False, Variant.PRODUCTION),
        ("production", True, Variant.PRODUCTION_GZIP),
        ("staging", False, Variant.STAGING),
        ("staging", True, Variant.STAGING_GZIP),
    ],
)
def test_variant_for(env: Env, gzip: bool, expected: Variant) -> None:
    variant = variant_for(env, gzip)
    assert variant is expected
    assert variant.env == env
    assert variant.gzip is gzip


def test_every_variant_is_distinct_and_round_trips() -> None:
    variants = list(Variant)
    assert len(set(variants)) == len({v.value for v in variants}) == 8
    for v in variants:
        assert variant_for(v.env, CODINGS.index(v.coding)) is v


def test_staging_and_production_keys_never_collide() -> None:
    """The staging representation can never answer a production request."""
    for gzip in range(len(CODINGS)):
        staging_key = ("snap", "/index.html", variant_for("staging", gzip))
        production_key = ("snap", "/index.html", variant_for("production", gzip))
        assert staging_key != production_key
        assert hash(staging_key) == hash(("snap", "/index.html", variant_for("staging", gzip)))


def test_unknown_environment_is_refused() -> None:
    with pytest.raises(KeyError):
        variant_for("preview", False)  # type: ignore[arg-type]
