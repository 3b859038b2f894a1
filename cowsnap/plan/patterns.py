"""The writers' patterns, one row each: what a pattern is and how it writes.

Every list of patterns derives from this table: the schema's allowed values
and their words (plan/config.py), a run's bound (plan/point.py) and the
order of the after-exit scenarios (analyse/after_exit.py). The benchmark's
own patterns are the cases of PATTERN_CASES in native/bench/writers.cpp,
under the same names; tests/test_patterns.py holds the two equal and shows
that adding a pattern is one row here, one case there and one docs line.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

# The skewed pattern: HOT_SHARE of its writes go to a hot set of
# HOT_FRACTION of the pages, every tenth page (native writers.cpp: the same
# constants; tests/test_patterns.py holds them equal).
HOT_FRACTION = 0.1
HOT_SHARE = 0.9


def uniform_pages(pages: float, writes: float) -> float:
    """Distinct pages that many writes to uniformly drawn pages touch, in expectation."""
    return pages * -math.expm1(-writes / pages) if pages > 0 else 0.0


def skewed_pages(pages: float, writes: float) -> float:
    """The same for the skewed pattern: its hot set takes HOT_SHARE of the
    writes and its share of the rest; the other pages the rest of the rest."""
    hot = max(1.0, math.floor(pages * HOT_FRACTION))
    cold = pages - hot
    hot_writes = HOT_SHARE * writes + (1 - HOT_SHARE) * writes * hot / pages
    return uniform_pages(hot, hot_writes) + uniform_pages(cold, (1 - HOT_SHARE) * writes * cold / pages)


@dataclass(frozen=True)
class Pattern:
    # What the pattern writes, in a few words (the schema's and docs/config.md's).
    description: str
    # Every element of a writer's share once a pass, in order (vectorised:
    # fast); otherwise one-element writes to drawn pages, as many a pass as
    # the array has pages (a cache miss each: slow).
    strided: bool
    # A drawn pattern: the distinct pages (pages, writes) touch, in expectation.
    touched: Callable[[float, float], float] | None = None


PATTERNS: dict[str, Pattern] = {
    "interleaved": Pattern("writers take every n-th element (the seed)", strided=True),
    "blocked": Pattern("a contiguous slice each", strided=True),
    "random": Pattern(
        "one-element writes to uniformly random pages, as many a pass as the array has pages (a server's writes)",
        strided=False,
        touched=uniform_pages,
    ),
    "skewed": Pattern("the same, 90% of them to a hot set of every tenth page", strided=False, touched=skewed_pages),
}


def strided(name: str) -> bool:
    return PATTERNS[name].strided


def distinct_pages(name: str, pages: float, writes: float) -> float:
    """Distinct pages a drawn pattern's writes touch, in expectation."""
    touched = PATTERNS[name].touched
    if touched is None:
        raise ValueError(f"pattern={name}: its pages follow its order, not a draw")
    return touched(pages, writes)
