"""Real programs (watch points): a program's own snapshot, or its pool of
workers, in the benchmark's words; the pools ranked against the problem."""

from __future__ import annotations

import math

import pandas as pd

from cowsnap.analyse import verdict
from cowsnap.analyse.summary.words import NO_TIMES_TCG, PHASE_KEYS, fmt_interval, phase_facts, reason
from cowsnap.analyse.text import fmt, fmt_count, section
from cowsnap.analyse.watch import levers
from cowsnap.plan.methods import CHILD_ROLES


def program_name(row: pd.Series) -> str:
    """The watched program's name, by what its command runs: pool_objects
    for `sh -c 'exec python3 .../pool_objects.py ...'` (levers.program_of)."""
    command = row.get("watch_command")
    return (levers.program_of(command) if isinstance(command, (str, list)) else "") or "the program"


def watch_lever(row: pd.Series, phase: str) -> str:
    """The lever for a phase of a watch point, from the point's medians
    (cowsnap.analyse.verdict): '' when none fits."""
    copies, faults, reuses = (row.get(f"{key}{phase}") for key in ("copies", "writer_minflt", "reuses"))
    if any(pd.isna(value) for value in (copies, faults, reuses)):
        return ""
    children = row.get("child_wpcopy_count") if phase == "_during_snapshot" else 0.0
    children = 0.0 if pd.isna(children) else children
    return verdict.lever(phase.removeprefix("_"), copies + children, children, reuses, faults)


def is_pool(row: pd.Series) -> bool:
    """A pool of workers, no snapshot: the program's children copy for themselves."""
    return row.get("worker_count", 0) > 0 and not row.get("snapshot_child_count", 0) > 0


def count_spread(row: pd.Series, metric: str) -> str:
    """'19,484-19,534 at 50.0%' of a count in points.csv."""
    level = row.get(f"{metric}_ci_level")
    if pd.isna(level) or row.get("n", 0) < 2:
        return "one run, no interval"
    return f"{fmt_count(row[f'{metric}_ci_low'])}-{fmt_count(row[f'{metric}_ci_high'])} at {100 * level:.1f}%"


def workers_copied(row: pd.Series) -> str:
    """What a pool's workers copied and their private memory at its peak:
    what a pool's line leads with."""
    workers, copies, anon = row["worker_count"], row.get("worker_wpcopy_count"), row.get("anon_pages")
    if pd.isna(copies):
        return f"its {fmt_count(workers)} workers' copies were not counted"
    spread = count_spread(row, "worker_wpcopy_count")
    text = f"its {fmt_count(workers)} workers copied {fmt_count(copies)} pages, {verdict.mib(copies)}, {spread}"
    if anon > 0:
        text += f"; {copies / (workers * anon):.0%} of the {verdict.mib(anon)} each shared at fork"
    after = row.get("worker_wpcopy_count_after_snapshot", 0)
    if after > 0:
        text += f"; {fmt_count(after)} of them after the workers' phase"
    peak = row.get("worker_private_dirty_pages")
    if not pd.isna(peak):
        text += (
            f"; their private memory peaked at {verdict.mib(peak)}, {count_spread(row, 'worker_private_dirty_pages')}"
        )
    return text


def watch_points(points: pd.DataFrame, comparisons: pd.DataFrame | None = None) -> list[str]:
    """A program of the user's next to the benchmark (method=watch): per
    phase of its own snapshot, copies against reuses and the time in the
    copy fault path, in the words the benchmark's points get, and the
    watch's lever where one fits. A pool's line leads with what its workers
    copied, and the pools are ranked against the problem (pool_ranking,
    from the comparisons round by round)."""
    rows = points[points["method"] == "watch"] if "method" in points else points.iloc[0:0]
    if rows.empty:
        return []
    lines = section(
        "Real programs (watch points)",
        "A program run under cowsnap watch while its own snapshot is taken under its load, or while its workers run: "
        "its threads are the "
        "writers, its children the child. Copies are counted against all of its minor faults. Keys: "
        f"{PHASE_KEYS}; children: child_wpcopy_count and <role>_wpcopy_count; workers: worker_wpcopy_count, "
        "worker_private_dirty_pages (docs/keys.md).",
    )
    for _, row in rows.iterrows():
        during, after = "_during_snapshot", "_after_snapshot"
        children = "its snapshot"
        if is_pool(row):
            # A pool's workers are no snapshot: its line leads with what they copied, then its parent's own
            # writes while they lived; the snapshot's levers stay out.
            lines.append(
                f"- {row['experiment']}: {program_name(row)}: {workers_copied(row)}. Its parent while they lived: "
                f"{phase_facts(row, during)}."
            )
            continue
        named = program_name(row) + ("" if row["label"] == "base" else f", {row['label']}")
        text = (
            f"- {row['experiment']}: {named}: it had {fmt_count(row.get('anon_pages'))} anonymous pages when "
            f"{children} began; while {children} lived, {fmt_interval(row, 'snapshot_end_s', ' s')}: "
            f"{phase_facts(row, during)}; its children made {fmt_count(row.get('child_wpcopy_count'))} copies"
        )
        roles = []
        for role in CHILD_ROLES:
            stem = role.replace(" ", "_")
            if row.get(f"{stem}_count", 0) > 0 and not pd.isna(row.get(f"{stem}_wpcopy_count")):
                roles.append(f"{fmt_count(row[f'{stem}_wpcopy_count'])} by {fmt_count(row[f'{stem}_count'])} {role}(s)")
        if roles:
            text += f", {', '.join(roles)}"
        delay, kernel = row.get(f"copy_delay_s{during}"), row.get(f"writer_stime_s{during}")
        if row.get("virtualized") == "tcg":
            text += f"; {NO_TIMES_TCG}"
        elif pd.isna(delay):
            text += f"; copy fault path not counted: {reason(row.get('copies_source'))}"
        else:
            text += f"; {fmt(delay)} s in the COW-copy fault path of {fmt(kernel)} s of kernel time"
        text += f". After it ended, {fmt(row.get(f'watch_s{after}'))} s watched: {phase_facts(row, after)}."
        lines.append(text)
        for phase in (during, after):
            lever = watch_lever(row, phase)
            if lever:
                lines.append(f"  - lever ({'while it lived' if phase == during else 'after it ended'}): {lever}")
    return lines + [""] + pool_ranking(rows[rows.apply(is_pool, axis=1)], comparisons)


# The words for a pool's program with less and more than the problem, by metric (verdict.POOL_OBJECTIVES).
POOL_WORDS = {
    "worker_wpcopy_count": ("copies less than", "copies more than"),
    "worker_private_dirty_pages": ("peaks lower than", "peaks higher than"),
}


def ratio_words(row: pd.Series | None, problem: str, name: str) -> str:
    """A pool's comparison with the problem (a comparisons.csv row), and
    resolved where the interval leaves 1 out: "workers' copies 0.0332x
    pool_objects's (0.0327-0.0338x, 50.0% interval of 2 paired rounds):
    resolved, pool_flat copies less than pool_objects"."""
    if row is None:
        return "not measured against " + problem
    what = verdict.POOL_OBJECTIVES[row["metric"]]
    less, more = POOL_WORDS[row["metric"]]
    text = f"{what} {fmt(row['ratio'])}x {problem}'s"
    text += f" ({fmt(row['ci_low'])}-{fmt(row['ci_high'])}x, {100 * row['ci_level']:.1f}% interval of "
    text += f"{int(row['rounds'])} paired rounds)"
    if row["resolved"]:
        return f"{text}: resolved, {name} {less if row['ratio'] < 1 else more} {problem}"
    return f"{text}: not resolved, the interval holds 1"


def pool_ranking(pools: pd.DataFrame, comparisons: pd.DataFrame | None) -> list[str]:
    """The pools of an experiment ranked by their workers' copies against
    the problem's (the experiment's reference: levers.PROBLEM, the examples'
    pool of objects): copies and peak private memory as ratios to the
    problem's, round by round (comparisons.csv), fewest copies first."""
    if pools.empty or comparisons is None or comparisons.empty:
        return []
    rows = comparisons[comparisons["metric"].isin(list(verdict.POOL_OBJECTIVES))]
    rows = rows[rows["point_id"].isin(pools["point_id"])]
    names = dict(zip(pools["point_id"], pools.apply(program_name, axis=1), strict=True))
    lines = []
    several = pools["node_type"].nunique() > 1 if "node_type" in pools else False
    for (experiment, node_type), group in rows.groupby(["experiment", "node_type"], sort=False):
        problem = names.get(group["reference_id"].iloc[0], levers.PROBLEM)
        by_point = {pid: dict(zip(g["metric"], (r for _, r in g.iterrows()), strict=True))
                    for pid, g in group.groupby("point_id", sort=False)}  # fmt: skip
        order = sorted(by_point, key=lambda pid: by_point[pid].get("worker_wpcopy_count", {"ratio": math.inf})["ratio"])
        lines += [
            f"The pools of {experiment}{f' on {node_type}' if several else ''} against {problem} "
            f"({levers.EXAMPLES.get(problem, ('the reference',))[0]}: the problem), fewest workers' copies first: "
            f"each one's workers' copies (worker_wpcopy_count) and peak private memory (worker_private_dirty_pages) "
            f"over {problem}'s, round by round, with the interval and its level (docs/statistics.md). Resolved: the "
            "interval leaves 1 out.",
            "",
        ]
        for rank, pid in enumerate(order, start=1):
            name = names.get(pid, pid)
            lever = levers.EXAMPLES.get(name, ("", ""))[0]
            parts = [ratio_words(by_point[pid].get(metric), problem, name) for metric in verdict.POOL_OBJECTIVES]
            lines.append(f"{rank}. {name}{f', {lever}' if lever else ''}: {'; '.join(parts)}")
        lines.append("")
    return lines
