"""Enough runs to answer: which points of an experiment need more runs.

An experiment's `precision` (config) asks for more repetitions, in rounds
of `step` runs, up to `max_repetitions`, for the comparisons that decide
how to avoid it and are still open:
- a lever whose comparison with its reference snapshot, round by round, is
  not resolved on an objective where its median is better than the
  reference's: it may be the best on that objective or belong to the
  trade-off set, and only more rounds can say (a lever already resolved,
  or only ever worse, gets none);
- with `ratio_half_width`, a point whose ratio to the baseline has an
  interval wider than that on either side, relative to the ratio.
A point that gets more runs takes its reference and its baseline along, so
every ratio stays paired round by round (cowsnap.analyse.stats).
"""

from __future__ import annotations

import pandas as pd

from cowsnap.analyse import glossary, stats


def open_levers(comparisons: pd.DataFrame) -> set[str]:
    """The levers with an objective still open where they may be better."""
    if comparisons.empty:
        return set()
    rows = comparisons[comparisons["objective"] & ~comparisons["resolved"]]
    hopeful = [
        row["point_id"]
        for _, row in rows.iterrows()
        if (row["ratio"] < 1) == (glossary.lookup(row["metric"]).better == "lower")
    ]
    return set(hopeful)


def too_wide(ratios: pd.DataFrame, half_width: float) -> set[str]:
    """The points whose writers' time over the baseline is wider than
    half_width (relative) on either side."""
    if ratios.empty:
        return set()
    rows = ratios[ratios["metric"] == "writers_s"]
    wide = rows[
        ((rows["ci_high"] - rows["ratio"]) > half_width * rows["ratio"])
        | ((rows["ratio"] - rows["ci_low"]) > half_width * rows["ratio"])
    ]
    return set(wide["point_id"])


def more_runs(runs: pd.DataFrame, precision: dict, references: dict[str, str] | None = None) -> list[str]:
    """The point ids to run `step` more times: open points below the cap,
    with their references and baselines; [] when the experiment is answered."""
    ok = runs[runs["status"] == "ok"] if "status" in runs else runs
    if ok.empty:
        return []
    ok = ok.assign(reference_id=ok["point_id"].map(references or {}).fillna(""))
    points = stats.point_table(ok)
    wanting = open_levers(stats.comparison_table(ok, points))
    if precision.get("ratio_half_width"):
        wanting |= too_wide(stats.ratio_table(ok, points), precision["ratio_half_width"])
    counts = ok.groupby("point_id").size()
    below_cap = {p for p in wanting if counts.get(p, 0) < precision["max_repetitions"]}
    chosen = points[points["point_id"].isin(below_cap)]
    along = set(chosen["baseline_id"].dropna()) | {(references or {}).get(p, "") for p in below_cap}
    return sorted(below_cap | {p for p in along if p})
