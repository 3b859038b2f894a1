"""results/summary.md: the answer to the seed's two questions, for the
machine the sweep ran on. Is it copying? How do I avoid it?

Every number comes from the statistics pass (points.csv, ratios.csv) and
every verdict word is chosen by a threshold declared below from those
numbers; nothing is typed in. No sentence ranks two points whose intervals
overlap.
"""

from __future__ import annotations

import math
import shlex
from pathlib import Path

import pandas as pd

from cowsnap.analyse import after_exit, labels, verdict
from cowsnap.analyse.aggregate import FINGERPRINT, virtualized
from cowsnap.analyse.figures import FORK_POINTS, FORK_SLOPES
from cowsnap.analyse.ranking import rankings
from cowsnap.measure.watch.tracker import CHILD_ROLES
from cowsnap.plan import methods

# Writers' time within this factor of the floor: "near the floor".
NEAR_FLOOR = 1.25

# What each lever trades away, by the setting that differs from a plain fork.
LEVERS = {
    **methods.LEVERS,
    ("populate", "map"): "MAP_POPULATE: the array is faulted in at allocation; no THP for it",
    ("populate", "write-after-exit"): "MADV_POPULATE_WRITE once the child exited: pays only for pages the "
    "writers had not reached by then",
    ("populate", "write-after-release"): "MADV_POPULATE_WRITE per batch the child released: a thread beside "
    "the writers",
    ("dest", "fresh"): "the destination allocated in the child: no COW faults of the copy itself",
    ("dontfork", True): "MADV_DONTFORK on the destination: kept out of the child",
    ("release", "none"): "the child keeps every batch until it exits",
    ("release", "dontneed"): "MADV_DONTNEED per copied batch",
    ("exit", "normal"): "teardown before exit",
    ("alloc", "new"): "the seed's unaligned array: every munmap fails",
}


def fmt(value: float) -> str:
    return "n/a" if value is None or pd.isna(value) else f"{value:.3g}"


def fmt_count(value: float) -> str:
    return "n/a" if value is None or pd.isna(value) else f"{value:,.0f}"


def fmt_interval(row: pd.Series, metric: str, unit: str = "") -> str:
    """'3.2 s (2.9-3.6, 93.8% interval)' from a points.csv row."""
    level = row.get(f"{metric}_ci_level")
    if pd.isna(row.get(metric)):
        return "n/a"
    if pd.isna(level) or row.get("n", 0) < 2:
        return f"{fmt(row[metric])}{unit} (one run, no interval)"
    low, high = fmt(row[f"{metric}_ci_low"]), fmt(row[f"{metric}_ci_high"])
    return f"{fmt(row[metric])}{unit} ({low}-{high}, {100 * level:.1f}% interval)"


def fmt_ratio(row: pd.Series) -> str:
    """'12x (9.1-15x, at least 87.9%)' from a ratios.csv row."""
    if pd.isna(row["ci_level"]) or row["n"] < 2 or row["n_baseline"] < 2:
        return f"{fmt(row['ratio'])}x (too few runs for an interval)"
    return f"{fmt(row['ratio'])}x ({fmt(row['ci_low'])}-{fmt(row['ci_high'])}x, at least {100 * row['ci_level']:.1f}%)"


def copying_words(copies: float, faults: float, source: str, faults_are: str = "write faults") -> str:
    """The verdict on one phase (cowsnap.analyse.verdict's rule)."""
    if pd.isna(copies):
        return f"copies not counted ({source})"
    if pd.isna(faults) or faults <= 0:
        return f"{fmt_count(copies)} copies, and no {faults_are[:-1]} counted"
    share = copies / faults
    word = verdict.copying_word(copies, faults)
    return f"{word}: {fmt_count(copies)} copies for {fmt_count(faults)} {faults_are} ({100 * share:.3g}%)"


def phase_facts(row: pd.Series, phase: str) -> str:
    """Copies, reuses, faults and splits of one phase, each with its counter
    (a watch point's faults are its program's minor faults, not only writes)."""
    copies, faults = row.get(f"copies{phase}"), row.get(f"writer_minflt{phase}")
    faults_are = "minor faults" if row.get("method") == "watch" else "write faults"
    words = copying_words(copies, faults, row.get("copies_source", "no source"), faults_are)
    parts = [
        f"{words} (copies: writer_wpcopy_count{phase}, faults: writer_minflt{phase})",
        f"{fmt_count(row.get(f'reuses{phase}'))} reuses (pgreuse{phase}, whole machine)",
    ]
    if row.get("backing") != "4k":
        parts.append(f"{fmt_count(row.get(f'splits{phase}'))} huge page splits (thp_split_pmd{phase})")
    if pd.isna(copies) and not pd.isna(row.get(f"copies_estimate{phase}")):
        parts.append(f"faults less reuses: {fmt_count(row[f'copies_estimate{phase}'])} (an estimate)")
    return "; ".join(parts)


def time_facts(row: pd.Series, baseline: pd.Series | None) -> str:
    """Where the writers' time went: the COW-copy fault path (wall time
    inside wp_page_copy, from delay accounting), the memory copying inside
    it at this machine's memcpy speed, and their CPU time against the
    baseline's (getrusage, tick-sampled: the two are not shares of one
    another)."""
    delay, memory = row.get("copy_delay_s"), row.get("memory_copy_s")
    if row.get("virtualized") == "tcg":
        return "no times: the run ran in a VM under software emulation (tcg)"
    if row.get("timed") is False or row.get("timed") == "False":
        return "no times: the run sampled pagemap while the writers ran"
    if pd.isna(delay):
        return f"time in the COW-copy fault path not counted ({row.get('copies_source', 'no source')})"
    text = f"{fmt(delay)} s in the COW-copy fault path (writer_wpcopy_delay_s)"
    if not pd.isna(memory):
        text += (
            f", of which copying the pages themselves takes {fmt(memory)} s at this machine's memcpy speed "
            f"({fmt(row.get('memcpy_gbps'))} GB/s); the rest is allocation, accounting, locking and TLB work"
        )
    if baseline is not None:
        cpu = row.get("writer_stime_s", math.nan) + row.get("writer_utime_s", math.nan)
        extra = cpu - (baseline["writer_stime_s"] + baseline["writer_utime_s"])
        text += f"; their CPU time was {fmt(extra)} s above the baseline's (getrusage)"
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


def section(title: str, preamble: str) -> list[str]:
    """A section's heading and the paragraph that says how to read it."""
    return [f"## {title}", "", preamble, ""]


def cell(text) -> str:
    """A table cell: pipes escaped, one line."""
    return " ".join(str(text).split()).replace("|", "\\|")


def table(header: list[str], rows: list[list]) -> list[str]:
    """A Markdown table."""
    return [
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(cell(value) for value in row) + " |" for row in rows),
    ]


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
    what = "the array and the destination made before fork" if shared_dest else "the array"
    return f"{verdict.mib(copies)} ({copies / pages:.0%} of {what})"


def is_it_copying(points: pd.DataFrame) -> list[str]:
    lines = ["## Is it copying?", ""]
    lines.append(
        "Per phase of the writers: while the snapshot lived, and after it ended (the seed's question). "
        f"'Not copying' means copies under {100 * verdict.NOT_COPYING:g}% of the write faults or under "
        f"{verdict.COPYING_MIN_PAGES} pages, 'copying' {100 * verdict.MOSTLY:g}% or more "
        "(cowsnap/analyse/verdict.py). Copies: writer_wpcopy_count; faults: writer_minflt; reuses: pgreuse "
        "(whole machine); copied: the writers' and the child's copies."
    )
    lines.append("")
    during, after = fork_phases(points)
    rows = []
    for _, row in during.iterrows():
        rows.append(
            [
                row["experiment"],
                row["label"],
                "while the child lived",
                phase_facts(row, "_during_snapshot"),
                copied_memory(row),
                fmt_interval(row, "writers_s", " s"),
                time_facts(row, _baseline_of(points, row)),
            ]
        )
    for _, row in after.iterrows():
        kernel = f"{fmt(row.get('writer_stime_s_after_snapshot'))} s of kernel time for {fmt_count(row['pages'])} pages"
        rows.append(
            [row["experiment"], row["label"], "after the child exited", phase_facts(row, "_after_snapshot"), "", "",
             kernel]
        )  # fmt: skip
    if rows:
        lines += table(["experiment", "point", "phase", "copies, reuses", "copied", "writers' time", "time"], rows)
    else:
        lines.append("- No fork point of the benchmark ran.")
    lines += [
        "",
        "To check the same on your own program: `cowsnap watch --pid PID` (or `cowsnap watch -- COMMAND`) counts "
        "its COW copies and reuses per phase of its own snapshot (see docs/watch.md).",
        "",
    ]
    return lines


def program_name(row: pd.Series) -> str:
    """The watched program's name: its command's first word, without its folder."""
    try:
        return Path(shlex.split(str(row.get("watch_command", "")))[0]).name
    except (ValueError, IndexError):
        return "the program"


def watch_lever(row: pd.Series, phase: str) -> str:
    """The lever for a phase of a watch point, from the point's medians
    (cowsnap.analyse.verdict): '' when none fits."""
    copies, faults, reuses = (row.get(f"{key}{phase}") for key in ("copies", "writer_minflt", "reuses"))
    if any(pd.isna(value) for value in (copies, faults, reuses)):
        return ""
    children = row.get("child_wpcopy_count") if phase == "_during_snapshot" else 0.0
    children = 0.0 if pd.isna(children) else children
    return verdict.lever(phase.removeprefix("_"), copies + children, children, reuses, faults)


def watch_points(points: pd.DataFrame) -> list[str]:
    """A program of the user's next to the benchmark (method=watch): per
    phase of its own snapshot, copies against reuses and the time in the
    copy fault path, in the words the benchmark's points get, and the
    watch's lever where one fits."""
    rows = points[points["method"] == "watch"] if "method" in points else points.iloc[0:0]
    if rows.empty:
        return []
    lines = section(
        "Real programs (watch points)",
        "A program run under cowsnap watch while its own snapshot is taken under its load, or while its workers run: "
        "its threads are the "
        "writers, its children the child. Copies are counted against all of its minor faults.",
    )
    for _, row in rows.iterrows():
        during, after = "_during_snapshot", "_after_snapshot"
        # A pool's workers are no snapshot: its lines speak of the workers, and the snapshot's levers stay out.
        pool = row.get("worker_count", 0) > 0 and not row.get("snapshot_child_count", 0) > 0
        children = f"its {fmt_count(row['worker_count'])} workers" if pool else "its snapshot"
        text = (
            f"- {row['experiment']}: {row['label']}: {program_name(row)} "
            f"({fmt_count(row.get('anon_pages'))} anonymous pages when {children} began), while {children} "
            f"lived ({fmt_interval(row, 'snapshot_end_s', ' s')}): {phase_facts(row, during)}; its children made "
            f"{fmt_count(row.get('child_wpcopy_count'))} copies (child_wpcopy_count)"
        )
        roles = []
        for role in CHILD_ROLES:
            stem = role.replace(" ", "_")
            if row.get(f"{stem}_count", 0) > 0 and not pd.isna(row.get(f"{stem}_wpcopy_count")):
                roles.append(
                    f"{fmt_count(row[f'{stem}_wpcopy_count'])} by {fmt_count(row[f'{stem}_count'])} {role}(s) "
                    f"({stem}_wpcopy_count)"
                )
        if roles:
            text += f", {', '.join(roles)}"
        delay, kernel = row.get(f"copy_delay_s{during}"), row.get(f"writer_stime_s{during}")
        if pd.isna(delay):
            text += f"; time in the COW-copy fault path not counted ({row.get('copies_source', 'no source')})"
        else:
            text += (
                f"; {fmt(delay)} s in the COW-copy fault path (writer_wpcopy_delay_s{during}) of "
                f"{fmt(kernel)} s of kernel time (writer_stime_s{during})"
            )
        ended = "they" if pool else "it"
        text += f". After {ended} ended ({fmt(row.get(f'watch_s{after}'))} s watched): {phase_facts(row, after)}."
        lines.append(text)
        for phase in () if pool else (during, after):
            lever = watch_lever(row, phase)
            if lever:
                lines.append(f"  - lever ({'while it lived' if phase == during else 'after it ended'}): {lever}")
    return lines + [""]


def _lever(row: pd.Series, plain: dict) -> str:
    changes = [(key, row[key]) for key, value in plain.items() if key in row and row[key] != value]
    words = [LEVERS[change] for change in changes if change in LEVERS]
    return "; ".join(words) or "the plain fork snapshot"


def _when_it_stops_paying(row: pd.Series) -> str:
    """What the numbers say about where a lever has nothing left to give."""
    notes = []
    if row.get("writers_over_floor", math.inf) <= NEAR_FLOOR:
        notes.append(f"within {NEAR_FLOOR:g}x of the floor: little left to gain here")
    if row.get("populate") == "write-after-exit" and row.get("snapshot_end_s", 0) >= row.get("writers_s", math.inf):
        notes.append("the child exited after the writers finished, so populating after its exit had nothing to do")
    return "".join(f"; {note}" for note in notes)


PLAIN = {"method": "fork", "populate": "none", "dest": "zeroed", "dontfork": False, "release": "munmap",
         "exit": "early", "alloc": "mmap"}  # fmt: skip


def is_plain(row: pd.Series) -> bool:
    return all(row.get(key, value) == value for key, value in PLAIN.items())


def how_to_avoid(points: pd.DataFrame, ratios: pd.DataFrame) -> list[str]:
    lines = ["## How to avoid it", ""]
    lines.append(
        "Snapshots taken while the writers run, ranked by the writers' time over the no-snapshot baseline "
        "(the median of run-by-run ratios to the baseline's run of the same round, with its distribution-free "
        f"interval) and over the floor (see The floor). A point marked unstable varied by more than "
        f"{100 * verdict.NOISE_CV:g}% between its runs; cpu-bound: its writers waited for a CPU more than "
        f"{100 * verdict.CPU_WAIT_SHARE:g}% of their time."
    )
    lines.append("")
    ranked = rankings(points, ratios)
    if not ranked:
        return lines + ["- No experiment with a no-snapshot baseline ran.", ""]
    several = len({node for _, node in ranked}) > 1
    for (backing, node_type), group in ranked.items():
        lines += [f"backing={backing}" + (f" on {node_type}" if several else "") + ":", ""]
        plain = next((row for _, row in group.iterrows() if is_plain(row)), None)
        rows = []
        for i, row in group.iterrows():
            floor = row.get("writers_over_floor")
            lever = _lever(row, PLAIN) + (
                f" ({fmt(row.get('snapshot_pause_s'))} s here)" if row["method"] == "stop" else ""
            )
            step = ""
            if i + 1 < len(group):
                following = group.iloc[i + 1]
                step = (
                    "resolved from the next"
                    if row["ci_high"] < following["ci_low"]
                    else "not resolved from the next (intervals overlap)"
                )
            rows.append(
                [
                    i + 1,
                    row["experiment"],
                    f"{row['label']}: {fmt_ratio(row)} the baseline",
                    f"{fmt(floor)}x the floor" + _when_it_stops_paying(row),
                    tail_cell(row, plain),
                    lever + flags(row),
                    step,
                ]
            )
        header = ["rank", "experiment", "point", "over the floor", "the tail", "lever", "from the next"]
        lines += table(header, rows)
        lines.append("")
    return lines


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


def what_a_writer_waits(points: pd.DataFrame, runs: pd.DataFrame) -> list[str]:
    """Per point whose writers timed their writes: the tail of their write
    latency while the snapshot lived (or, where they wait for it, after),
    the longest write and what held it up, against the same writes without
    a snapshot."""
    timed = rows_with(points, "write_p99_s")
    if timed.empty:
        return []
    lines = section(
        "What a writer waits",
        "A timed write is a writer's writes into one write_latency_kib span of the array; the first counts from "
        "just before the snapshot begins. Percentiles are of every write of a run, writers merged (the upper end "
        "of the histogram bucket, at most 3.1% wide), then the median over runs; the longest is exact. A write's "
        "phase is the one it started in: where the writers wait for the snapshot to end (start=after_child, "
        "method=stop), only their first write started while it lived, so the percentiles are of the writes after "
        "it ended and the wait is the longest write. The CCDF figures (write_latency) show every write.",
    )
    rows = []
    for _, row in timed.iterrows():
        suffix, words = tail_phase(row)
        baseline = _baseline_of(points, row) if suffix else None
        base_p99 = baseline.get("write_p99_s") if baseline is not None else float("nan")
        p99 = row.get(f"write_p99_s{suffix}")
        rows.append(
            [
                row["experiment"],
                row["label"],
                words,
                *(verdict.duration(row.get(f"write_{q}_s{suffix}")) for q in ("p50", "p99", "p999")),
                f"{verdict.duration(row.get('write_max_s'))}: {verdict.longest_write_cause(row)}",
                verdict.duration(base_p99),
                times(p99 / base_p99 if base_p99 > 0 else float("nan")),
            ]
        )
    header = ["experiment", "point", "writes", "p50", "p99", "p99.9", "longest write", "p99 without a snapshot"]
    lines += table([*header, "p99 over it"], rows)
    clocks = rows_with(runs, "write_p99_s").get("clocksource", [])
    return lines + ["", verdict.clock_words(clocks), ""]


def tail_cell(row: pd.Series, plain: pd.Series | None) -> str:
    """A lever's tail: its p99 (tail_phase's writes) and its longest write,
    each against the plain fork snapshot's of the same ranking."""
    suffix, words = tail_phase(row)
    p99, longest = row.get(f"write_p99_s{suffix}"), row.get("write_max_s")
    if pd.isna(p99):
        return "not timed"
    text = f"p99 {verdict.duration(p99)} ({words}), longest {verdict.duration(longest)}"
    if plain is None or plain["point_id"] == row["point_id"]:
        return text
    plain_p99 = plain.get(f"write_p99_s{tail_phase(plain)[0]}")
    against = [
        times(mine / theirs)
        for mine, theirs in ((p99, plain_p99), (longest, plain.get("write_max_s")))
        if not pd.isna(theirs) and theirs > 0
    ]
    return text + (f" ({' and '.join(against)} the plain fork's)" if len(against) == 2 else "")


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
    """Why a fit is under GOOD_FIT: the runs' own spread at each size, or
    sizes whose runs lie off any line."""
    ceiling = fit.get("r2_ceiling")
    if not pd.isna(ceiling) and ceiling < verdict.GOOD_FIT:
        return (
            f"the runs' spread at each size caps R² at {ceiling:.3f}: more runs narrow the slope's interval, "
            "a quieter machine lifts the cap"
        )
    residuals = dict(part.split(":") for part in str(fit.get("residual_ms_by_mib", "")).split(";") if ":" in part)
    worst = max(residuals, key=lambda size: abs(float(residuals[size])), default=None)
    return f"the sizes bend away from a line, most at {worst} MiB" if worst else "too few sizes"


def the_answer(points: pd.DataFrame, ratios: pd.DataFrame, scaling: pd.DataFrame | None = None) -> list[str]:
    """The answer in a few lines, each computed from the tables below it."""
    lines = ["## The answer", ""]
    during, _ = (most_like_the_seed(rows) for rows in fork_phases(points))
    if not during.empty:
        row = during.iloc[0]
        lines.append(
            f"- **While the child holds its snapshot** ({row['experiment']}: {row['label']}): "
            f"{phase_words(row, '_during_snapshot')}; the snapshot copied {copied_memory(row)}."
        )
    lines += after_exit_answer(after_exit.cells(points))
    if not during.empty and not pd.isna(during.iloc[0].get("write_max_s")):
        lines.append(f"- **What a writer waits** ({during.iloc[0]['label']}): {tail_words(points, during.iloc[0])}.")
    small = next((group for (backing, _), group in rankings(points, ratios).items() if backing == "4k"), None)
    if small is not None:
        best = small.iloc[0]
        plain = next((row for _, row in small.iterrows() if is_plain(row)), None)
        text = (
            f"- **What helps most here (4 KiB pages)**: {best['label']} ({_lever(best, PLAIN)}), "
            f"{fmt_ratio(best)} the no-snapshot writers' time"
        )
        if plain is not None and plain["point_id"] != best["point_id"]:
            resolved = best["ci_high"] < plain["ci_low"]
            text += f", against {fmt_ratio(plain)} for the plain fork snapshot ({plain['label']}): " + (
                "resolved" if resolved else "not resolved, the intervals overlap"
            )
        lines.append(text + ".")
    forks = scaling[(scaling["metric"] == "fork_s")] if scaling is not None and not scaling.empty else None
    if forks is not None and not forks.empty:
        parts = [
            f"{fit['line']} {fmt(fit['slope_ms_per_gib'])} ms/GiB (R² {fit['r2']:.3f}, "
            f"{fmt_count(fit['min_mib'])}-{fmt_count(fit['max_mib'])} MiB)"
            for _, fit in forks.iterrows()
        ]
        lines.append(f"- **The fork() call** grows by {'; '.join(parts)} (see How fork scales).")
    if "writers_s_cv" in points:
        timed = rows_with(points, "writers_s_cv")
        unstable, bound, explained = noise_counts(timed)
        lines.append(
            f"- **Noise**: {unstable} of {len(timed)} points unstable ({explained} explained by the machine's own "
            f"measures), {bound} cpu-bound"
            + (": read their times with care (see Noise)." if unstable or bound else ": the machine was quiet enough.")
        )
    if len(lines) == 2:
        lines.append("- Nothing ran that answers it.")
    return lines + [""]


def the_seed(points: pd.DataFrame, ratios: pd.DataFrame) -> list[str]:
    """The seed's own allocation, where it ran: its munmap failed."""
    seed = points[(points["method"] == "fork") & (points.get("alloc", "mmap") == "new")] if "alloc" in points else []
    if len(seed) == 0:
        return []
    lines = ["## The seed's program", ""]
    for _, row in seed.iterrows():
        calls, failed = row.get("release_calls"), row.get("release_failed")
        if row.get("release") == "none" or pd.isna(calls):
            continue
        lines.append(
            f"- {row['experiment']}: {row['label']}: {fmt_count(failed)} of {fmt_count(calls)} releases failed "
            "(release_failed): its array from new is not page-aligned, so every page stays shared until the "
            f"child exits; while the child lived, {phase_facts(row, '_during_snapshot')}."
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


def cell_counts(cell: pd.Series, faults: str = "after-exit write faults") -> str:
    """'1,024 of 1,030 after-exit write faults copied' for one cell."""
    if pd.isna(cell["copies_after_snapshot"]):
        return f"after-exit copies not counted ({cell['copies_source']})"
    return (
        f"{fmt_count(cell['copies_after_snapshot'])} of {fmt_count(cell['writer_minflt_after_snapshot'])} "
        f"{faults} copied"
    )


def after_exit_answer(cells: pd.DataFrame) -> list[str]:
    """The answer's lines on the seed's question, one per kernel and
    backing measured, each scenario with its own counts: never a sentence
    for a kernel or backing that was not measured."""
    if cells.empty:
        return []
    lines = ["- **After the child exited, by kernel and page backing** (the writers' write faults after the exit; "
             "each line holds for that kernel and backing only; where nothing copies, the kernel time left is "
             "fault handling):"]  # fmt: skip
    for (kernel, where, backing), group in cells.groupby(["kernel", "where", "backing"], sort=False):
        parts = [f"{cell['scenario']}: {cell['word']} ({cell_counts(cell, 'faults')})" for _, cell in group.iterrows()]
        lines.append(f"  - Linux {kernel} ({where}), {backing}: " + "; ".join(parts) + ".")
    return lines


def by_kernel(points: pd.DataFrame) -> list[str]:
    """The after-exit verdict per kernel x backing x scenario, with the
    copies while the child lived beside it (counts only: a VM under TCG
    gives no times), then the backings measured where it copies, ranked."""
    cells = after_exit.cells(points)
    if cells.empty:
        return []
    lines = section(
        "After the exit, by kernel and page backing",
        "Copies: writer_wpcopy_count per phase (delay accounting); faults: writer_minflt; splits: thp_split_pmd; "
        "reuses: pgreuse (whole machine); the verdict's thresholds are those of Is it copying?; figure "
        "`<experiment>-after_exit_copies`. Why the kernels differ: docs/findings.md.",
    )
    rows = [
        [
            f"{cell['kernel']} ({cell['where']})",
            cell["backing"],
            cell["scenario"],
            f"{fmt_count(cell['copies_during_snapshot'])} of {fmt_count(cell['writer_minflt_during_snapshot'])}",
            f"{fmt_count(cell['copies_after_snapshot'])} of {fmt_count(cell['writer_minflt_after_snapshot'])}",
            fmt_count(cell["reuses_after_snapshot"]),
            fmt_count(cell["splits_after_snapshot"]) if cell["backing"] != "4k" else "",
            cell["word"],
        ]
        for _, cell in cells.iterrows()
    ]
    header = ["kernel", "backing", "writes", "copies while the child lived (of faults)",
              "copies after the exit (of faults)", "reuses after", "splits after", "after the exit"]  # fmt: skip
    lines += table(header, rows)
    ranked = after_exit.levers(cells)
    if ranked:
        lines += ["", "Where the after-exit writes copy, the backings measured there, fewest copies first:", ""]
    for kernel, where, scenario, order in ranked:
        parts = []
        for _, cell in order.iterrows():
            timed = "" if "tcg" in where else f", writers after the exit {fmt(cell['writers_s_after_snapshot'])} s"
            parts.append(f"{cell['backing']} ({cell_counts(cell)}{timed})")
        lines.append(f"- Linux {kernel} ({where}), {scenario}: " + "; then ".join(parts) + ".")
    return lines + [""]


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


# Published fork() costs the summary sets a fit against (the figure's marks).
PUBLISHED = "; ".join(label for label, *_ in (*FORK_SLOPES, *FORK_POINTS))


def how_fork_scales(scaling: pd.DataFrame) -> list[str]:
    """The fork call and the writers' after-exit fault cost against the
    array size, per page backing: the fitted line, its R^2 and residuals,
    over the sizes measured only."""
    if scaling is None or scaling.empty:
        return []
    lines = ["## How fork scales", ""]
    lines.append(
        "Least-squares lines over every run (scaling.csv), valid over the sizes measured only, never beyond; "
        f"for comparison, {PUBLISHED}."
    )
    lines.append("")
    words = {"fork_s": "fork() call", "writers_s_after_snapshot": "writers after the child exited"}
    rows = []
    for _, fit in scaling.iterrows():
        good = verdict.GOOD_FIT
        quality = f"{fit['r2']:.3f}" + ("" if fit["r2"] >= good else f" (under {good}: not a line; {why_no_line(fit)})")
        rows.append(
            [
                fit["experiment"],
                fit["line"],
                words.get(fit["metric"], fit["metric"]),
                f"{fmt(fit['slope_ms_per_gib'])} ms/GiB + {fmt(fit['intercept_ms'])} ms",
                quality,
                f"{fmt(fit['max_residual_ms'])} ms (by size in MiB: {fit['residual_ms_by_mib']})",
                f"{fmt_count(fit['min_mib'])}-{fmt_count(fit['max_mib'])} MiB, {fmt_count(fit['n'])} runs",
            ]
        )
    lines += table(["experiment", "points", "what", "line", "R²", "largest residual", "measured"], rows)
    return lines + [""]


def build(runs: pd.DataFrame, points: pd.DataFrame, ratios: pd.DataFrame, scaling: pd.DataFrame | None = None) -> str:
    lines = ["# What the sweep found", ""]
    if runs.empty:
        return "\n".join(lines + ["Nothing ran: the sweep has no runs.", ""])
    ratios = ratios if not ratios.empty else pd.DataFrame(columns=["metric", "baseline_method"])
    runs = runs.copy()  # one block: a column added to a fragmented frame warns
    runs["virtualized"] = virtualized(runs)
    ran = runs[runs["status"] == "ok"] if "status" in runs else runs
    if not points.empty:
        lines += the_answer(points, ratios, scaling)
    lines += ["## Machine", ""]
    for _, machine in ran.drop_duplicates(FINGERPRINT)[FINGERPRINT].iterrows():
        lines.append(
            f"- {machine['hostname']}: {machine['cpu_model']}, {machine['online_cpus']} CPUs, "
            f"{machine['numa_nodes']} NUMA node(s), Linux {machine['kernel']}"
            + (f", in a VM ({machine['virtualized']})" if machine.get("virtualized", "none") != "none" else "")
        )
    if ran.drop_duplicates(FINGERPRINT).shape[0] > 1:
        lines.append("- **Runs from several machines: every number below is for one node type, named with it.**")
    lines.append("")
    if points.empty:
        lines += ["Nothing ran: every run was skipped or failed.", ""]
    else:
        lines += is_it_copying(points)
        lines += watch_points(points)
        lines += by_kernel(points)
        lines += what_the_host_adds(points, ratios)
        lines += the_seed(points, ratios)
        lines += how_to_avoid(points, ratios)
        lines += what_a_writer_waits(points, ran)
        lines += how_fork_scales(scaling)
        lines += noise(points)
        lines += the_floor(points)
    lines += ["## Points not measured", ""]
    names = labels.point_labels(runs)
    missing = runs[runs["status"] != "ok"].drop_duplicates([*labels.POINT, "status", "reason"])
    for _, row in missing.iterrows():
        name = names[tuple(row[labels.POINT])]
        lines.append(f"- {row['experiment']}: {name}: {row['status']}: {row['reason']}")
    if missing.empty:
        lines.append("- none: every point ran")
    return "\n".join(lines) + "\n"
