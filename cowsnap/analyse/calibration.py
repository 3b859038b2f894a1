"""The yardsticks, paired: cowsnap against plain C doing the same work.

Two yardsticks check cowsnap: `cowsnap calibrate` (the harness against plain
C, measured by cowsnap.measure.bench.calibrate) and tests/bench_seed_match.py
(the seed's own program against cowsnap's seed point). Both run their sides
in rounds, round k one run of each side, the order alternating, so whatever
the machine did at round k (steal, a host reclaiming memory) it did to both
sides. A quantity's comparison is then paired: the median of the per-round
ratios (one side over the other, round by round) with its distribution-free
interval [x(j), x(n+1-j)] of the ratios' order statistics
(cowsnap.analyse.stats.median_interval), which covers the true median ratio
with probability 1 - 2 P(Binomial(n, 1/2) < j), the sign test inverted: with
5 rounds [min, max] at 93.75%, with 3 at 75%.

The verdict: a bias where the interval lies above or below 1; else noise the
runs cannot resolve, with the ratios they could have resolved. The interval
scales with the ratios: had the true ratio been r instead of the median M
(each round's ratio times r / M), the interval [L, H] would have been
[L r / M, H r / M], clear of 1 when r > M / L (above) or r < M / H (below).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from cowsnap.analyse.stats import MIN_PAIRS, median_interval
from cowsnap.measure.bench.calibrate import PARKED_THREADS, QUANTITIES, SIDES

# A bias larger than this share between the harness and plain C gets an
# explanation from what was measured.
GAP = 0.10


@dataclass(frozen=True)
class Paired:
    """One quantity's paired comparison, a side over its reference: the
    median of the per-round ratios, its interval [low, high] and the
    interval's level; how many rounds gave a ratio, how many of those were
    above and below 1, and how many gave none (a side missing, or a
    reference not above 0)."""

    median: float
    low: float
    high: float
    level: float
    rounds: int
    above: int
    below: int
    unpaired: int = 0

    @property
    def judged(self) -> bool:
        """Enough rounds for a verdict (stats.MIN_PAIRS, as every paired ratio)."""
        return self.rounds >= MIN_PAIRS

    @property
    def bias(self) -> int:
        """1 where the interval lies above 1, -1 below it, 0 where it holds 1
        or the rounds are too few to judge."""
        if not self.judged:
            return 0
        return 1 if self.low > 1 else -1 if self.high < 1 else 0

    def resolvable(self) -> tuple[float, float]:
        """(below, above): a true ratio under `below` or over `above` these
        runs would have resolved (M / H and M / L; infinite above when the
        interval reaches 0)."""
        below = self.median / self.high if self.high > 0 else math.nan
        above = self.median / self.low if self.low > 0 else math.inf
        return below, above

    def beyond(self, limit: float) -> bool:
        """The interval lies entirely outside 1 ± limit: a bias beyond it."""
        return self.judged and (self.low > 1 + limit or self.high < 1 - limit)

    def interval(self, digits: int = 2) -> str:
        """low-high, with more digits where fewer would round an end other
        than 1 to 1 (a bias's interval never reads as holding 1)."""
        while digits < 6 and any(
            end != 1 and f"{end:.{digits}f}" == f"{1:.{digits}f}" for end in (self.low, self.high)
        ):
            digits += 1
        return f"{self.low:.{digits}f}-{self.high:.{digits}f}"

    def verdict(self, digits: int = 2) -> str:
        """Which it is, in words: a bias, noise the runs cannot resolve (with
        the ratios they could), or too few rounds to judge."""
        if not self.judged:
            return f"too few rounds to judge: {self.rounds} (a verdict needs {MIN_PAIRS})" + self._unpaired()
        level = f"{100 * self.level:.4g}%"
        if self.bias:
            side, count = ("above", self.above) if self.bias > 0 else ("below", self.below)
            who = "every round's ratio is" if count == self.rounds else f"{count} of {self.rounds} rounds' ratios are"
            return f"a bias: {who} {side} 1 (interval {self.interval(digits)} at {level})" + self._unpaired()
        below, above = self.resolvable()
        bounds = f"[{below:.{digits}f}, {'∞)' if math.isinf(above) else f'{above:.{digits}f}]'}"
        return (
            f"noise the runs cannot resolve: the interval {self.interval(digits)} (at {level}) holds 1; "
            f"these runs could resolve a ratio outside {bounds}" + self._unpaired()
        )

    def _unpaired(self) -> str:
        return (
            f"; {self.unpaired} round(s) gave no ratio (the reference not above 0, or a side missing)"
            if self.unpaired
            else ""
        )


def paired(values, reference) -> Paired:
    """values over reference, paired round by round: both in round order,
    one value a round (NaN where a round lacks it)."""
    a = np.asarray(values, dtype=float)
    b = np.asarray(reference, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired: {a.size} rounds against {b.size}; a round is one run of each side")
    usable = np.isfinite(a) & np.isfinite(b) & (b > 0)
    ratios = a[usable] / b[usable]
    median, low, high, level = median_interval(ratios)
    return Paired(
        median,
        low,
        high,
        level,
        rounds=int(usable.sum()),
        above=int((ratios > 1).sum()),
        below=int((ratios < 1).sum()),
        unpaired=int((~usable).sum()),
    )


# The paired table's columns: each side's median, harness / plain C (paired,
# with its interval, level, rounds, verdict and the ratios it could resolve),
# harness / plain C with parked threads (paired) and the explanation.
COLUMNS = (
    "size_mib",
    "quantity",
    *SIDES,
    "ratio",
    "ratio_low",
    "ratio_high",
    "ratio_level",
    "rounds",
    "bias",
    "resolvable_below",
    "resolvable_above",
    "verdict",
    "ratio_threads",
    "ratio_threads_low",
    "ratio_threads_high",
    "explanation",
)


def table(df: pd.DataFrame) -> pd.DataFrame:
    """calibrate.measure's runs (one row per size, side and repetition, a
    repetition being a round) as the paired table: one row per size and
    quantity."""
    rows = []
    for size_mib, runs in df.groupby("size_mib", sort=True):
        for quantity in QUANTITIES:
            by_round = runs.pivot(index="repetition", columns="side", values=quantity).reindex(columns=list(SIDES))
            medians = by_round.median()  # a side not measured is NaN, not missing
            harness = paired(by_round["harness"], by_round["plain_c"])
            threads = paired(by_round["harness"], by_round["plain_c_threads"])
            sides = paired(by_round["plain_c_threads"], by_round["plain_c"])
            below, above = harness.resolvable() if harness.judged and not harness.bias else (math.nan, math.nan)
            row = {
                "size_mib": size_mib,
                "quantity": quantity,
                **{side: medians[side] for side in SIDES},
                "ratio": harness.median,
                "ratio_low": harness.low,
                "ratio_high": harness.high,
                "ratio_level": harness.level,
                "rounds": harness.rounds,
                "bias": harness.bias,
                "resolvable_below": below,
                "resolvable_above": above,
                "verdict": harness.verdict(),
                "ratio_threads": threads.median,
                "ratio_threads_low": threads.low,
                "ratio_threads_high": threads.high,
            }
            row["explanation"] = explanation(runs, row, sides)
            rows.append(row)
    return pd.DataFrame(rows, columns=list(COLUMNS))


def explanation(runs: pd.DataFrame, row: dict, sides: Paired) -> str:
    """Why the harness is biased more than GAP from plain C for one size and
    quantity, from what was measured ('' where the paired verdict is noise or
    the bias within GAP): plain C's own two sides (paired, they differ by at
    least as much), or a machine measure that differed between the
    harness's runs and plain C's in the bias's direction; else
    'unexplained', with what was seen."""
    gap = row["ratio"] - 1
    if not row["bias"] or abs(gap) <= GAP:
        return ""
    own = sides.median - 1
    if not pd.isna(own) and abs(own) >= abs(gap):
        return f"within plain C's own two sides, which differ by {100 * own:+.0f}% (paired)"
    seen = []
    for key, unit, form in (
        ("fresh_page_us", "µs a fresh page", "{:.2f}"),
        ("host_reported_kib", "KiB reported to the host", "{:,.0f}"),
    ):
        mine = runs[runs["side"] == "harness"][key].median() if key in runs else float("nan")
        theirs = runs[runs["side"] == "plain_c"][key].median() if key in runs else float("nan")
        if pd.isna(mine) or pd.isna(theirs):
            continue
        words = f"{form.format(mine)} {unit} in the harness's runs, {form.format(theirs)} in plain C's"
        if _more(mine, theirs, key, row["size_mib"]) if gap > 0 else _more(theirs, mine, key, row["size_mib"]):
            return f"the machine: {words}"
        seen.append(words)
    return "unexplained" + (f": the machine measured no such difference ({'; '.join(seen)})" if seen else "")


def _more(a: float, b: float, key: str, size_mib: int) -> bool:
    """A machine measure larger in a than in b by more than GAP (of b for
    the probe, of the array for reported memory)."""
    return a > b * (1 + GAP) if key == "fresh_page_us" else a - b > GAP * size_mib * 1024


def _number(value: float) -> str:
    """Three significant digits or more, never an exponent."""
    if pd.isna(value):
        return "n/a"
    return f"{value:.0f}" if abs(value) >= 100 else f"{value:.3g}" if abs(value) >= 1 else f"{value:.3f}"


def _ratio(median: float, low: float, high: float) -> str:
    return "n/a" if pd.isna(median) else f"{median:.2f} ({low:.2f}-{high:.2f})"


def format_table(summary: pd.DataFrame) -> str:
    """The paired table as markdown, one row per size and quantity."""
    lines = [
        f"| size (MiB) | quantity | plain C | plain C, {PARKED_THREADS} threads parked | harness "
        f"| harness / plain C, paired | harness / plain C with threads, paired | verdict (harness / plain C) "
        f"| a bias over {100 * GAP:g}%, explained |",
        "|---:|:---|---:|---:|---:|---:|---:|:---|:---|",
    ]
    for row in summary.itertuples(index=False):
        label = QUANTITIES.get(row.quantity, row.quantity)
        numbers = " | ".join(_number(getattr(row, side)) for side in SIDES)
        ratios = " | ".join(
            (
                _ratio(row.ratio, row.ratio_low, row.ratio_high),
                _ratio(row.ratio_threads, row.ratio_threads_low, row.ratio_threads_high),
            )
        )
        lines.append(f"| {row.size_mib} | {label} | {numbers} | {ratios} | {row.verdict} | {row.explanation} |")
    return "\n".join(lines) + "\n"


def report(df: pd.DataFrame, setting: str) -> str:
    """What `cowsnap calibrate` prints: how the table was made (setting: the
    runs' shape, in words), then the table."""
    rounds = df.groupby("size_mib")["repetition"].nunique()
    counts = ", ".join(str(n) for n in sorted(set(rounds))) or "0"
    return (
        f"Paired: {counts} round(s) per size, each one run of every side, the order alternating; "
        "each side's median, and harness / plain C as the median of the per-round ratios with its "
        "distribution-free interval (order statistics, covering the true median ratio with the level "
        "the verdict gives: 1 - 2 P(Binomial(n, 1/2) < j)). A bias where the interval lies clear of 1; "
        "else noise, with the ratios these runs could have resolved: above M / L or below M / H "
        "(M the median, [L, H] its interval). "
        f"{setting}.\n\n{format_table(table(df))}"
    )
