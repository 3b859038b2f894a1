"""The ranking the summary states and precision resolves: per page backing
and node type, the snapshots taken while the writers ran, by their writers'
time over the no-snapshot baseline (rows of ratios.csv with their points),
best first. Reads tables; computes no statistics."""

from __future__ import annotations

import pandas as pd


def rankings(points: pd.DataFrame, ratios: pd.DataFrame) -> dict[tuple, pd.DataFrame]:
    """(backing, node_type) -> its ranked rows, best first."""
    if ratios.empty or "metric" not in ratios:
        return {}
    chosen = ratios[(ratios["metric"] == "writers_s") & (ratios["baseline_method"] == "none")]
    if chosen.empty:
        return {}
    merged = chosen.merge(points, on=["experiment", "point_id", "node_type"], suffixes=("", "_point"))
    if "start" in merged:
        merged = merged[merged["start"] == "with_child"]
    return {
        key: group.sort_values("ratio").reset_index(drop=True)
        for key, group in merged.groupby(["backing", "node_type"], sort=False)
    }
