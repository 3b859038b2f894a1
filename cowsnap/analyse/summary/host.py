"""What the host adds: warm against cold runs where the machine is a VM whose
host backs memory lazily."""

from __future__ import annotations

import pandas as pd

from cowsnap.analyse.text import fmt, fmt_count, fmt_ratio, section, table


def what_the_host_adds(points: pd.DataFrame, ratios: pd.DataFrame) -> list[str]:
    """Where an experiment runs points with and without warm memory
    (warm_mib 0 against the rest): the writers' time cold over warm, run by
    run, and the machine's share each measured."""
    if "warm_mib" not in points or "point_id" not in ratios:
        return []
    varied = [name for name, group in points.groupby("experiment") if group["warm_mib"].astype(str).nunique() > 1]
    cold_points = points[points["experiment"].isin(varied) & (points["warm_mib"].astype(str) == "0")]
    if cold_points.empty:
        return []
    lines = section(
        "What the host adds",
        "The same point with the run's memory brought back from the host first (warm) and without (cold, "
        "warm_mib 0); fresh page: the first write to a page of a fresh 4 MiB mapping just before the snapshot "
        "(fresh_page_us); reported: free memory this machine reported to its host during the run "
        "(host_reported_kib).",
    )
    rows = []
    for _, cold in cold_points.iterrows():
        ratio = ratios[(ratios["point_id"] == cold["point_id"]) & (ratios["metric"] == "writers_s")]
        warm = points[(points["point_id"] == cold["baseline_id"]) & (points["experiment"] == cold["experiment"])]
        if ratio.empty or warm.empty:
            continue
        warm = warm.iloc[0]
        rows.append(
            [
                cold["experiment"],
                cold["label"],
                f"{fmt_ratio(ratio.iloc[0])} the warm writers' time",
                f"{fmt(cold.get('fresh_page_us'))} µs cold, {fmt(warm.get('fresh_page_us'))} µs warm",
                f"{fmt_count(cold.get('host_reported_kib'))} KiB cold, {fmt_count(warm.get('host_reported_kib'))} warm",
                f"{fmt(warm.get('warm_s'))} s (warm_s, outside the timed span)",
            ]
        )
    if not rows:
        return []
    lines += table(["experiment", "cold point", "writers' time", "fresh page", "reported to the host", "warming"], rows)
    return lines + [""]
