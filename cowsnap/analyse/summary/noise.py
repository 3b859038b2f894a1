"""Noise, named: unstable and cpu-bound points and their causes; and the floor
a snapshot cannot beat."""

from __future__ import annotations

import re

import pandas as pd

from cowsnap.analyse import verdict
from cowsnap.analyse.summary.words import noise_counts, rows_with
from cowsnap.analyse.text import fmt, fmt_count, table

# A cause's name: its words before the number (cowsnap.analyse.stats.noise_cause).
CAUSE = re.compile(r" varied | up to |: ")


def noise(points: pd.DataFrame) -> list[str]:
    """Per timed point: the spread of its runs and what else wanted the CPUs."""
    timed = rows_with(points, "writers_s_cv")
    if timed.empty:
        return []
    lines = ["## Noise", ""]
    unstable, bound, explained = noise_counts(timed)
    lines.append(
        f"{unstable} of {len(timed)} points are unstable (writers' time CV over {100 * verdict.NOISE_CV:g}%, pyperf's "
        f"rule); {bound} are cpu-bound (writers waited for a CPU over {100 * verdict.CPU_WAIT_SHARE:g}% of their "
        f"time): there the figures show how the scheduler shared the cores as much as what the kernel did. "
        f"Outliers: modified z-score over {verdict.OUTLIER_Z:g} on the median absolute deviation (hyperfine's rule), "
        "flagged, not dropped."
    )
    lines += [
        "",
        f"The machine's own measures explain {explained} of the {unstable} unstable points "
        f"(cowsnap/analyse/verdict.py): a fresh page's cost or the memory bandwidth varied over "
        f"{100 * verdict.NOISE_CV:g}%, the host took back "
        f"{100 * verdict.HOST_TOOK_SHARE:g}% of the array, stole {100 * verdict.STEAL_SHARE:g}% of the CPU time, or "
        "the writers waited for a CPU. Where none did, a quieter machine, not more runs, narrows the spread.",
    ]
    # Per experiment: how many points the rules flag, and how often each cause was measured beside them;
    # each point's own cause is its noise_cause in points.csv.
    lines += ["", "Per experiment (each point's own cause: noise_cause in <experiment>/points.csv):", ""]
    rows = []
    for experiment, group in timed.groupby("experiment", sort=False):
        flagged = group[group["unstable"].astype(str).eq("True")]
        bound = int(group.get("cpu_bound", pd.Series(dtype=str)).astype(str).eq("True").sum())
        texts = [text for text in flagged.get("noise_cause", pd.Series(dtype=str)) if isinstance(text, str)]
        causes = pd.Series([CAUSE.split(cause)[0] for text in texts for cause in text.split("; ")], dtype=str)
        causes = causes[causes != verdict.COPY_FAULT_SPREAD]
        counted = "; ".join(f"{name} {count}" for name, count in causes.value_counts().items())
        rows.append(
            [
                experiment,
                f"{len(flagged)} of {len(group)}",
                f"{100 * group['writers_s_cv'].median():.0f}%",
                str(bound),
                counted or "none",
            ]
        )
    lines += table(["experiment", "unstable", "median CV", "cpu-bound", "causes, by how many unstable points"], rows)
    return lines + [""]


def the_floor(points: pd.DataFrame) -> list[str]:
    lines = ["## The floor", ""]
    if "floor_s" not in points or points["floor_s"].isna().all():
        return lines + ["- No experiment measured both a no-snapshot baseline and the memcpy bandwidth.", ""]
    lines.append(
        "The least writers' time a snapshot could cost here: B, the baseline's writers' time at its interval's "
        "low end, plus the part of C, the array copied at one-thread memcpy speed, that does not fit in the CPU "
        "time the writers leave free, S = CPUs - writers times B, shared by every CPU: B + max(0, C - S) / CPUs."
    )
    lines.append("")
    rows = []
    for experiment, group in points.dropna(subset=["floor_s"]).groupby("experiment", sort=False):
        row = group.iloc[0]
        rows.append(
            [
                experiment,
                f"{fmt_count(row['size_mib'])} MiB at {fmt(row.get('memcpy_gbps'))} GB/s: {fmt(row['copy_floor_s'])} s",
                f"{fmt_count(row['writers'])} + {fmt_count(row['copiers'])} on {fmt_count(row.get('online_cpus'))}",
                "yes" if row["copy_on_idle_cores"] else "no",
                f"{fmt(group['floor_s'].min())}-{fmt(group['floor_s'].max())} s",
            ]
        )
    lines += table(["experiment", "copy (C)", "writers + copiers on CPUs", "idle cores for the copy", "floor"], rows)
    return lines + [""]
