"""Phrases every section of the summary shares: a number with its interval, a
phase's copies in words, a point's baseline, the tail of its writes."""

from __future__ import annotations

import math

import pandas as pd

from cowsnap.analyse import verdict
from cowsnap.analyse.text import fmt, fmt_count


def fmt_interval(row: pd.Series, metric: str, unit: str = "") -> str:
    """'3.2 s (2.9-3.6 at 93.8%)' from a points.csv row: the median and its interval."""
    level = row.get(f"{metric}_ci_level")
    if pd.isna(row.get(metric)):
        return "n/a"
    if pd.isna(level) or row.get("n", 0) < 2:
        return f"{fmt(row[metric])}{unit} (one run, no interval)"
    low, high = fmt(row[f"{metric}_ci_low"]), fmt(row[f"{metric}_ci_high"])
    return f"{fmt(row[metric])}{unit} ({low}-{high} at {100 * level:.1f}%)"


def reason(source) -> str:
    """Why a count is missing, once: a source 'not counted: X' reads X."""
    text = str(source) if source is not None and not pd.isna(source) else "no source"
    return text.removeprefix("not counted: ")


def copying_words(copies: float, faults: float, source: str, faults_are: str = "write faults") -> str:
    """The verdict on one phase (cowsnap.analyse.verdict's rule):
    'copying: 68,581 of 68,674 write faults (99.9%)' copied."""
    if pd.isna(copies):
        return f"copies not counted: {reason(source)}"
    if pd.isna(faults) or faults <= 0:
        return f"{fmt_count(copies)} copies, and no {faults_are[:-1]} counted"
    share = copies / faults
    word = verdict.copying_word(copies, faults)
    return f"{word}: {fmt_count(copies)} of {fmt_count(faults)} {faults_are} ({100 * share:.3g}%)"


# Where phase_facts' and time_facts' numbers come from, said once under each table.
PHASE_KEYS = (
    "copies: writer_wpcopy_count_<phase>; faults: writer_minflt_<phase>; reuses: pgreuse_<phase> (the whole "
    "machine); splits: thp_split_pmd_<phase>; copy path: the COW-copy fault path, writer_wpcopy_delay_s (delay "
    "accounting), and the memory copying inside it at this machine's memcpy speed; CPU: getrusage, over the "
    "baseline's"
)


def phase_facts(row: pd.Series, phase: str) -> str:
    """Copies, reuses, faults and splits of one phase (PHASE_KEYS; a watch
    point's faults are its program's minor faults, not only writes)."""
    copies, faults = row.get(f"copies{phase}"), row.get(f"writer_minflt{phase}")
    faults_are = "minor faults" if row.get("method") == "watch" else "faults"
    parts = [
        copying_words(copies, faults, row.get("copies_source", "no source"), faults_are),
        f"{fmt_count(row.get(f'reuses{phase}'))} reuses",
    ]
    if row.get("backing") != "4k":
        parts.append(f"{fmt_count(row.get(f'splits{phase}'))} huge page splits")
    if pd.isna(copies) and not pd.isna(row.get(f"copies_estimate{phase}")):
        parts.append(f"faults less reuses: {fmt_count(row[f'copies_estimate{phase}'])}, an estimate")
    return "; ".join(parts)


# A run under software emulation has counts, not times (docs/vms.md).
NO_TIMES_TCG = "no times: run under software emulation (tcg)"


def time_facts(row: pd.Series, baseline: pd.Series | None) -> str:
    """Where the writers' time went (PHASE_KEYS): the COW-copy fault path
    (wall time inside wp_page_copy, from delay accounting), the memory
    copying inside it at this machine's memcpy speed (the rest is
    allocation, accounting, locking and TLB work), and their CPU time
    against the baseline's (getrusage, tick-sampled: the two are not shares
    of one another)."""
    delay, memory = row.get("copy_delay_s"), row.get("memory_copy_s")
    if row.get("virtualized") == "tcg":
        return NO_TIMES_TCG
    if row.get("timed") is False or row.get("timed") == "False":
        return "no times: the run sampled pagemap while the writers ran"
    if pd.isna(delay):
        return f"copy fault path not counted: {reason(row.get('copies_source'))}"
    text = f"copy path {fmt(delay)} s"
    if not pd.isna(memory):
        text += f", memcpy {fmt(memory)} s at {fmt(row.get('memcpy_gbps'))} GB/s"
    if baseline is not None:
        cpu = row.get("writer_stime_s", math.nan) + row.get("writer_utime_s", math.nan)
        extra = cpu - (baseline["writer_stime_s"] + baseline["writer_utime_s"])
        text += f"; CPU +{fmt(extra)} s"
    return text


def _baseline_of(points: pd.DataFrame, row: pd.Series) -> pd.Series | None:
    match = points[
        (points["experiment"] == row["experiment"])
        & (points["point_id"] == row["baseline_id"])
        & (points["node_type"] == row["node_type"])
    ]
    if match.empty or match.iloc[0]["method"] != "none":
        return None
    return match.iloc[0]


def rows_with(points: pd.DataFrame, column: str) -> pd.DataFrame:
    """The points that have a value in column (none when the table lacks it)."""
    return points.dropna(subset=[column]) if column in points else points.iloc[0:0]


def noise_counts(timed: pd.DataFrame) -> tuple[int, int, int]:
    """(unstable, cpu-bound, unstable with a cause the machine measured)
    points among timed ones."""
    unstable = int(timed["unstable"].astype(str).eq("True").sum())
    bound = int(timed.get("cpu_bound", pd.Series()).astype(str).eq("True").sum())
    explained = int(timed.get("machine_explains", pd.Series()).astype(str).eq("True").sum())
    return unstable, bound, explained


def fork_phases(points: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The fork points whose writers ran while the child lived, and after it exited."""
    if "start" not in points:
        return points.iloc[0:0], points.iloc[0:0]
    fork = points[points["method"] == "fork"]
    return fork[fork["start"] == "with_child"], fork[fork["start"] == "after_child"]


def copied_memory(row: pd.Series) -> str:
    """What a fork point's snapshot copied, against what the child shared:
    the array, and the destination when it was made before fork (the seed's
    zeroed one, which the child's copy COW-faults too)."""
    copies = row.get("copies_during_snapshot", float("nan")) + row.get("child_wpcopy_count", 0.0)
    if pd.isna(copies) or pd.isna(row.get("pages")) or not row.get("pages"):
        return "n/a"
    shared_dest = row.get("dest") == "zeroed" and str(row.get("dontfork")) != "True"
    pages = row["pages"] * (2 if shared_dest else 1)
    what = "array + destination" if shared_dest else "array"
    return f"{verdict.mib(copies)}, {copies / pages:.0%} of {what}"


def tail_phase(row: pd.Series) -> tuple[str, str]:
    """(key suffix, words) of the writes whose tail tells a point's story:
    those that started while the snapshot lived; where the writers wait for
    the snapshot to end (start=after_child, method stop) only their first
    write did (it waited: the longest), so the writes after it ended; the
    whole phase without a snapshot."""
    if row.get("method") == "none":
        return "", "without a snapshot"
    if verdict.writers_wait(row):
        return "_after_snapshot", "after the snapshot ended"
    return "_during_snapshot", "while the snapshot lived"


def times(ratio: float) -> str:
    """'17.9x', '9,670x' ('n/a' when missing)."""
    return "n/a" if pd.isna(ratio) else f"{ratio:,.0f}x" if ratio >= 1000 else f"{fmt(ratio)}x"


def tail_words(points: pd.DataFrame, row: pd.Series) -> str:
    """'the longest a write waited: X (cause); p99 while the snapshot lived:
    Y against Z without one' for a point with a snapshot."""
    suffix, words = tail_phase(row)
    baseline = _baseline_of(points, row)
    without = "" if baseline is None else f" against {verdict.duration(baseline.get('write_p99_s'))} without one"
    return (
        f"the longest a write waited: {verdict.duration(row.get('write_max_s'))} "
        f"({verdict.longest_write_cause(row)}); p99 {words}: "
        f"{verdict.duration(row.get(f'write_p99_s{suffix}'))}{without}"
    )


def flags(row: pd.Series) -> str:
    """'; oversubscribed; unstable; cpu-bound' where the numbers say so."""
    marks = [
        name
        for name, on in (
            ("oversubscribed", row.get("oversubscribed")),
            ("unstable", row.get("unstable")),
            ("cpu-bound", row.get("cpu_bound")),
        )
        if str(on) == "True"  # a bool, or its text in a table read back
    ]
    return "".join(f"; {mark}" for mark in marks)


def most_like_the_seed(rows: pd.DataFrame) -> pd.DataFrame:
    """The rows, those closest to the seed's program first: measured on this
    machine (not in a VM), on 4 KiB pages, in the seed's experiment, with its
    array from new."""
    if rows.empty:
        return rows
    distance = sum(
        (rows[key].astype(str) != value).astype(int).to_numpy() if key in rows else 1
        for key, value in (("virtualized", "none"), ("backing", "4k"), ("experiment", "seed"), ("alloc", "new"))
    )
    order = sorted(range(len(rows)), key=lambda i: distance[i])  # stable: the tables' order breaks ties
    return rows.iloc[order]


def phase_words(row: pd.Series, phase: str) -> str:
    faults = row.get(f"writer_minflt{phase}")
    return copying_words(row.get(f"copies{phase}"), faults, row.get("copies_source", "no source"))


def why_no_line(fit: pd.Series) -> str:
    """Why a fit is under GOOD_FIT, in a few words: 'cap 0.937' (the runs'
    own spread at each size allows no more), or the size the runs bend
    away from a line most at."""
    ceiling = fit.get("r2_ceiling")
    if not pd.isna(ceiling) and ceiling < verdict.GOOD_FIT:
        return f"cap {ceiling:.3f}"
    residuals = dict(part.split(":") for part in str(fit.get("residual_ms_by_mib", "")).split(";") if ":" in part)
    worst = max(residuals, key=lambda size: abs(float(residuals[size])), default=None)
    return f"bends most at {worst} MiB" if worst else "too few sizes"


def cell_counts(cell: pd.Series) -> str:
    """'1,024 of 1,030 copied': one cell's after-exit write faults."""
    if pd.isna(cell["copies_after_snapshot"]):
        return f"not counted: {reason(cell['copies_source'])}"
    return f"{fmt_count(cell['copies_after_snapshot'])} of {fmt_count(cell['writer_minflt_after_snapshot'])} copied"
