"""Noise, named: unstable and cpu-bound points and their causes; and the floor
a snapshot cannot beat."""

from __future__ import annotations

import pandas as pd

from cowsnap.analyse import verdict
from cowsnap.analyse.summary.words import noise_counts, rows_with
from cowsnap.analyse.text import fmt, fmt_count, table


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
        f"The machine's own measures explain {explained} of the {unstable} unstable points: over their runs a fresh "
        f"page's cost (fresh_page_us) or the memory bandwidth (memcpy_gbps) varied by more than "
        f"{100 * verdict.NOISE_CV:g}%, the machine reported at least {100 * verdict.HOST_TOOK_SHARE:g}% of the array "
        f"to its host during a run, the host stole at least {100 * verdict.STEAL_SHARE:g}% of the CPU time during a "
        "run, or the writers waited for a CPU (the cause column). Where none did, the column says so, and where the "
        "copy faults' own time varied, by how much: that spread is the kernel's copy path on this machine, and a "
        "quieter machine, not more runs, narrows it.",
    ]
    lines.append("")
    rows = [
        [
            row["experiment"],
            row["label"],
            fmt_count(row["n"]),
            f"{100 * row['writers_s_cv']:.0f}%",
            fmt_count(row.get("writers_s_outliers")),
            "n/a" if pd.isna(row.get("writer_cpu_wait_share")) else f"{100 * row['writer_cpu_wait_share']:.0f}%",
            {"True": "yes", "False": "no"}.get(str(row.get("oversubscribed")), "n/a"),
            fmt(row.get("load1")),
            row.get("noise_cause") if isinstance(row.get("noise_cause"), str) else "",
        ]
        for _, row in timed.iterrows()
    ]
    header = ["experiment", "point", "runs", "CV", "outliers", "CPU wait", "oversubscribed", "load", "cause"]
    lines += table(header, rows)
    return lines + [""]


def the_floor(points: pd.DataFrame) -> list[str]:
    lines = ["## The floor", ""]
    if "floor_s" not in points or points["floor_s"].isna().all():
        return lines + ["- No experiment measured both a no-snapshot baseline and the memcpy bandwidth.", ""]
    lines.append(
        "The least writers' time a snapshot could cost here: the baseline's writers' time (its interval's low "
        "end, B), plus the part of the copy (the array at one-thread memcpy speed, C) that does not fit in the "
        "CPU time the writers leave free, shared by every CPU: B + max(0, C - (CPUs - writers) x B) / CPUs."
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
