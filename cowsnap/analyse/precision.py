"""Enough runs to answer: which points of an experiment need more runs.

An experiment's `precision` (config) asks for more repetitions, in rounds
of `step` runs, up to `max_repetitions`, until each comparison is resolved:
- every step of the experiment's ranking (its snapshots taken while the
  writers run, by their writers' time over the no-snapshot baseline, per
  page backing) has non-overlapping intervals, and
- with `ratio_half_width`, every ratio's interval is at most that wide on
  either side, relative to the ratio.
A point that needs more runs takes its baseline along (their ratio is
paired run by run, cowsnap.analyse.stats).
"""

from __future__ import annotations

import pandas as pd

from cowsnap.analyse import stats
from cowsnap.analyse.ranking import rankings


def unresolved(points: pd.DataFrame, ratios: pd.DataFrame, half_width: float | None = None) -> set[str]:
    """The point ids whose ranking step is not resolved, or whose ratio's
    interval is wider than half_width (relative) on either side."""
    ranked = rankings(points, ratios)
    wanting: set[str] = set()
    for group in ranked.values():
        for i in range(len(group) - 1):
            a, b = group.iloc[i], group.iloc[i + 1]
            if not a["ci_high"] < b["ci_low"]:
                wanting.update((a["point_id"], b["point_id"]))
    if half_width:
        for group in ranked.values():
            wide = group[
                ((group["ci_high"] - group["ratio"]) > half_width * group["ratio"])
                | ((group["ratio"] - group["ci_low"]) > half_width * group["ratio"])
            ]
            wanting.update(wide["point_id"])
    return wanting


def more_runs(runs: pd.DataFrame, precision: dict) -> list[str]:
    """The point ids to run `step` more times: unresolved points below the
    cap, with their baselines; [] when the experiment is answered."""
    ok = runs[runs["status"] == "ok"] if "status" in runs else runs
    if ok.empty:
        return []
    points = stats.point_table(ok)
    ratios = stats.ratio_table(ok, points)
    wanting = unresolved(points, ratios, precision.get("ratio_half_width"))
    counts = ok.groupby("point_id").size()
    below_cap = {p for p in wanting if counts.get(p, 0) < precision["max_repetitions"]}
    baselines = set(points[points["point_id"].isin(below_cap)]["baseline_id"].dropna())
    return sorted(below_cap | {b for b in baselines if b})
