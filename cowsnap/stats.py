"""Medians with bootstrap confidence intervals, and ratios to a baseline.

Few runs per point and a skewed, noisy distribution (one slow run in five is
common on a shared machine) call for the median, not the mean, and for an
interval that says how far to trust it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

CONFIDENCE = 0.95
RESAMPLES = 2000

# Every metric a table or figure compares, its label with the unit, and
# which direction is better.
METRICS = {
    "writers_s": ("writers' time (s)", "lower"),
    "writer_stime_s": ("writers' kernel time (s)", "lower"),
    "copy_delay_s": ("writers' COW copy time (s)", "lower"),
    "copies": ("writers' COW copies (pages)", "lower"),
    "reuses": ("write faults that reused the page", "lower"),
    "writer_minflt": ("writers' faults", "lower"),
    "faults_per_page": ("writers' faults per page", "lower"),
    "snapshot_pause_s": ("writers held up by the snapshot (s)", "lower"),
    "snapshot_end_s": ("snapshot end after the start mark (s)", "lower"),
    "writer_cpu_delay_s": ("writers' wait for a CPU (s)", "lower"),
    "child_copy_s": ("child copy time (s)", "lower"),
    "child_copy_gbps": ("child copy bandwidth (GB/s)", "higher"),
    "fork_s": ("fork() call (s)", "lower"),
}


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def median_ci(values, confidence: float = CONFIDENCE, seed: int = 0) -> tuple[float, float, float]:
    """Median and its percentile-bootstrap interval; NaNs ignored."""
    data = np.asarray(pd.Series(values, dtype=float).dropna())
    if data.size == 0:
        return (np.nan, np.nan, np.nan)
    if data.size == 1:
        return (data[0], data[0], data[0])
    medians = np.median(_rng(seed).choice(data, size=(RESAMPLES, data.size)), axis=1)
    tail = (1 - confidence) / 2
    return (float(np.median(data)), *map(float, np.quantile(medians, [tail, 1 - tail])))


def ratio_ci(values, baseline, confidence: float = CONFIDENCE, seed: int = 0) -> tuple[float, float, float]:
    """median(values) / median(baseline), with a bootstrap interval that
    resamples both sides."""
    a = np.asarray(pd.Series(values, dtype=float).dropna())
    b = np.asarray(pd.Series(baseline, dtype=float).dropna())
    if a.size == 0 or b.size == 0 or np.median(b) == 0:
        return (np.nan, np.nan, np.nan)
    rng = _rng(seed)
    with np.errstate(divide="ignore", invalid="ignore"):  # a resample of zeros
        ratios = np.median(rng.choice(a, size=(RESAMPLES, a.size)), axis=1) / np.median(
            rng.choice(b, size=(RESAMPLES, b.size)), axis=1
        )
    ratios = ratios[np.isfinite(ratios)]
    tail = (1 - confidence) / 2
    return (float(np.median(a) / np.median(b)), *map(float, np.quantile(ratios, [tail, 1 - tail])))


POINT = ["experiment", "point_id", "node_type"]


def points(table: pd.DataFrame):
    """Runs of one point of one experiment on one node type, the runs that
    may be pooled: ((experiment, point_id, node_type), runs)."""
    yield from table.groupby(POINT, sort=False)


def baseline_runs(ok: pd.DataFrame, key: tuple, baseline_id: str) -> pd.DataFrame:
    """The runs of a point's baseline: same experiment, same node type."""
    experiment, _, node_type = key
    return ok[(ok["experiment"] == experiment) & (ok["point_id"] == baseline_id) & (ok["node_type"] == node_type)]


def point_summary(runs: pd.DataFrame, metrics=tuple(METRICS)) -> pd.DataFrame:
    """One row per point (and node type) of the ok runs: n and median,
    ci_low, ci_high per metric."""
    ok = runs[runs["status"] == "ok"]
    rows = []
    for key, group in points(ok):
        row = {**dict(zip(POINT, key, strict=True)), "n": len(group)}
        for metric in metrics:
            if metric in group:
                row[metric], row[f"{metric}_ci_low"], row[f"{metric}_ci_high"] = median_ci(group[metric])
        rows.append(row)
    return pd.DataFrame(rows)


def baseline_ratios(runs: pd.DataFrame, metrics=("writers_s", "writer_stime_s")) -> pd.DataFrame:
    """Each point against its baseline point (baseline_id): ratio of medians
    with its interval, and whether it is better (the metric's direction)."""
    ok = runs[runs["status"] == "ok"]
    rows = []
    if "baseline_id" not in ok:
        return pd.DataFrame(rows)
    for (experiment, point_id, node_type), group in points(ok):
        baseline_id = group["baseline_id"].iloc[0]
        if not isinstance(baseline_id, str) or not baseline_id or baseline_id == point_id:
            continue
        # The baseline of the same experiment, measured on the same node type.
        baseline = ok[
            (ok["experiment"] == experiment) & (ok["point_id"] == baseline_id) & (ok["node_type"] == node_type)
        ]
        if baseline.empty:
            continue
        for metric in metrics:
            if metric not in group:
                continue
            ratio, low, high = ratio_ci(group[metric], baseline[metric])
            better = METRICS[metric][1]
            rows.append(
                {
                    "experiment": experiment,
                    "point_id": point_id,
                    "node_type": node_type,
                    "baseline_id": baseline_id,
                    "metric": metric,
                    "better": better,
                    "ratio": ratio,
                    "ci_low": low,
                    "ci_high": high,
                    "n": len(group),
                    "n_baseline": len(baseline),
                }
            )
    return pd.DataFrame(rows)
