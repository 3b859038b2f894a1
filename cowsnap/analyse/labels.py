"""One name per point, used by the tables, the figures, the summary and
comparisons: the point keys that vary within its experiment."""

from __future__ import annotations

import pandas as pd

from cowsnap.plan.config import axis_names

# What identifies a point's runs that may be pooled: same experiment, same
# settings, same node type.
POINT = ["experiment", "point_id", "node_type"]


def settings_of(group: pd.DataFrame) -> dict:
    """The point keys of a group of runs of one point."""
    first = group.iloc[0]
    return {key: first[key] for key in axis_names() if key in group}


def label(settings: dict, axes: list[str]) -> str:
    """The one name of a point: its varying keys, 'key=value, ...' (a key
    it does not have, as a watch point has no array size, left out)."""
    return ", ".join(f"{axis}={settings[axis]}" for axis in axes if not pd.isna(settings.get(axis))) or "base"


def varying_axes(table: pd.DataFrame) -> list[str]:
    """The point keys that take more than one value in this table (where they are set)."""
    return [key for key in axis_names() if key in table and table[key].dropna().astype(str).nunique() > 1]


def point_labels(runs: pd.DataFrame) -> dict[tuple, str]:
    """(experiment, point_id, node_type) -> the point's label, for every
    run, ok or not: its keys that vary in the experiment, and the node type
    where the experiment ran on several."""
    labels = {}
    for _, group in runs.groupby("experiment", sort=False):
        axes = varying_axes(group)
        several_nodes = group["node_type"].nunique() > 1
        for key, rows in group.groupby(POINT, sort=False):
            labels[key] = label(settings_of(rows), axes) + (f" on {key[2]}" if several_nodes else "")
    return labels
