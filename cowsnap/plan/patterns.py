"""The writers' patterns, one row each: what a pattern is and how it writes.

Every list of patterns derives from this table: the schema's allowed values
and their words (plan/config.py), a run's bound (plan/point.py) and the
order of the after-exit scenarios (analyse/after_exit.py). The benchmark's
own patterns are the cases of PATTERN_CASES in native/bench/writers.cpp,
under the same names; tests/test_patterns.py holds the two equal and shows
that adding a pattern is one row here, one case there and one docs line.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Pattern:
    # What the pattern writes, in a few words (the schema's and docs/config.md's).
    description: str
    # Every element of a writer's share once a pass, in order (vectorised:
    # fast); otherwise one-element writes to drawn pages, as many a pass as
    # the array has pages (a cache miss each: slow).
    strided: bool


PATTERNS: dict[str, Pattern] = {
    "interleaved": Pattern("writers take every n-th element (the seed)", strided=True),
    "blocked": Pattern("a contiguous slice each", strided=True),
    "random": Pattern(
        "one-element writes to uniformly random pages, as many a pass as the array has pages (a server's writes)",
        strided=False,
    ),
    "skewed": Pattern("the same, 90% of them to a hot set of every tenth page", strided=False),
}


def strided(name: str) -> bool:
    return PATTERNS[name].strided
