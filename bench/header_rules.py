"""Settings header rules: the compiled matcher's cost with 10 and with 1,000 rules.

SPEC §6 asks that rules cost a cached hit little; issue 19 that header rules
compile to a matcher whose cost does not grow with their number. This times
``CompiledSettings.headers_for`` (what every cache miss runs) in-process, for 10
and for 1,000 prefix rules, beside the walk over every rule it replaced, and
reports the ratios (1,000 rules / 10 rules). In-process and CPU-bound: the
absolute times describe the machine, the ratios the matcher.

    .venv/bin/python bench/header_rules.py [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import sys
import timeit
from collections.abc import Callable

from edge.snapshots.settings import compile_settings


def rules(n: int) -> dict[str, dict[str, str]]:
    """``n`` prefix rules like a real site's: sections of varied depth, plus the root."""
    found = {"/": {"X-Frame-Options": "DENY"}}
    for i in range(n - 1):
        found[f"/section-{i}/" + "sub/" * (i % 4)] = {"Cache-Control": f"max-age={i}"}
    return found


def linear(table: dict[str, dict[str, str]]) -> Callable[[str], dict[str, str]]:
    ordered = sorted(table.items(), key=lambda kv: len(kv[0]))

    def headers_for(path: str) -> dict[str, str]:
        extra: dict[str, str] = {}
        for prefix, headers in ordered:
            if path.startswith(prefix):
                extra.update(headers)
        return extra

    return headers_for


PATHS = [f"/section-{i}/sub/sub/page-{i}.html" for i in range(0, 1000, 37)] + ["/about.html"]


def per_call(fn: Callable[[str], dict[str, str]]) -> float:
    """Seconds per lookup, the best of 5 runs."""
    loops = 2000

    def run() -> None:
        for path in PATHS:
            fn(path)

    best = min(timeit.repeat(run, number=loops, repeat=5))
    return best / (loops * len(PATHS))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="also write the JSON document here")
    args = parser.parse_args()
    results: dict[str, dict[str, float]] = {}
    for n in (10, 1000):
        table = rules(n)
        compiled = compile_settings({"headers": table})
        walk = linear(table)
        for path in PATHS:  # correct before timed
            assert compiled.headers_for(path) == walk(path), path
        print(f"timing {n} rules...", file=sys.stderr)
        results[str(n)] = {
            "compiled_us": per_call(compiled.headers_for) * 1e6,
            "linear_us": per_call(walk) * 1e6,
        }
    compiled_ratio = results["1000"]["compiled_us"] / results["10"]["compiled_us"]
    linear_ratio = results["1000"]["linear_us"] / results["10"]["linear_us"]
    print(f"{'rules':>6} {'compiled µs':>12} {'walk every rule µs':>20}")
    for n, row in results.items():
        print(f"{n:>6} {row['compiled_us']:>12.3f} {row['linear_us']:>20.3f}")
    print(f"1000/10 rules: compiled {compiled_ratio:.2f}x, walk {linear_ratio:.2f}x")
    verdict = "ok" if compiled_ratio < 2.0 else "MISSED"
    print(f"target: the compiled matcher's cost does not grow with rules (< 2x): {verdict}")
    doc = {"results": results, "compiled_ratio": compiled_ratio, "linear_ratio": linear_ratio}
    print(json.dumps(doc))
    if args.json:
        with open(args.json, "w") as out:
            json.dump(doc, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
