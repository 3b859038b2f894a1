"""Is it copying? The fork points' copies against reuses, per phase, and the
seed's own program."""

from __future__ import annotations

import pandas as pd

from cowsnap.analyse import verdict
from cowsnap.analyse.summary.words import (
    PHASE_KEYS,
    _baseline_of,
    copied_memory,
    fmt_interval,
    fork_phases,
    phase_facts,
    time_facts,
)
from cowsnap.analyse.text import fmt, fmt_count, table


def is_it_copying(points: pd.DataFrame, elsewhere: dict[str, str] | None = None) -> list[str]:
    """Per fork point and phase: copies against reuses, what was copied,
    the writers' time and where the kernel time went; the experiments in
    `elsewhere` (experiment -> its section) are told in their own section."""
    elsewhere = elsewhere or {}
    lines = ["## Is it copying?", ""]
    lines.append(
        "Per phase of the writers: while the snapshot lived, and after it ended (the seed's question). "
        f"'Not copying' means copies under {100 * verdict.NOT_COPYING:g}% of the write faults or under "
        f"{verdict.COPYING_MIN_PAGES} pages, 'copying' {100 * verdict.MOSTLY:g}% or more "
        f"(cowsnap/analyse/verdict.py). Keys: {PHASE_KEYS}; copied: the writers' and the child's copies, against what "
        "they shared (the array, and the destination when it was made before fork)."
    )
    lines.append("")
    during, after = fork_phases(points[~points["experiment"].isin(list(elsewhere))])
    rows = []
    for _, row in during.iterrows():
        rows.append(
            [
                row["experiment"],
                row["label"],
                "child alive",
                phase_facts(row, "_during_snapshot"),
                copied_memory(row),
                fmt_interval(row, "writers_s", " s"),
                time_facts(row, _baseline_of(points, row)),
            ]
        )
    for _, row in after.iterrows():
        kernel = f"{fmt(row.get('writer_stime_s_after_snapshot'))} s kernel time for {fmt_count(row['pages'])} pages"
        rows.append(
            [row["experiment"], row["label"], "after its exit", phase_facts(row, "_after_snapshot"), "", "",
             kernel]
        )  # fmt: skip
    if rows:
        header = ["experiment", "point", "phase", "copies, reuses", "copied", "writers' time", "kernel time"]
        lines += table(header, rows)
    else:
        lines.append("- No fork point of the benchmark ran.")
    lines += [f"- {name}: see {where}." for name, where in elsewhere.items()]
    lines += [
        "",
        "To check the same on your own program: `cowsnap watch --pid PID` (or `cowsnap watch -- COMMAND`) counts "
        "its COW copies and reuses per phase of its own snapshot (see docs/watch.md).",
        "",
    ]
    return lines


def the_seed(points: pd.DataFrame, ratios: pd.DataFrame) -> list[str]:
    """The seed's own allocation, where it ran: its munmap failed."""
    seed = points[(points["method"] == "fork") & (points.get("alloc", "mmap") == "new")] if "alloc" in points else []
    if len(seed) == 0:
        return []
    lines = [
        "## The seed's program",
        "",
        "Its array from new is not page-aligned, so each munmap of a copied batch fails (release_failed) and "
        "every page stays shared until the child exits.",
        "",
    ]
    for _, row in seed.iterrows():
        calls, failed = row.get("release_calls"), row.get("release_failed")
        if row.get("release") == "none" or pd.isna(calls):
            continue
        lines.append(
            f"- {row['experiment']}: {row['label']}: {fmt_count(failed)} of {fmt_count(calls)} releases failed; "
            f"while the child lived, {phase_facts(row, '_during_snapshot')}."
        )
    aligned = points[
        (points["method"] == "fork") & (points["alloc"] == "mmap") & points["experiment"].isin(seed["experiment"])
    ]
    for _, row in aligned.iterrows():
        if row.get("release") != "none" and not pd.isna(row.get("release_failed")):
            lines.append(
                f"- {row['experiment']}: {row['label']}: {fmt_count(row['release_failed'])} of "
                f"{fmt_count(row['release_calls'])} releases failed; while the child lived, "
                f"{phase_facts(row, '_during_snapshot')}."
            )
    return lines + [""]
