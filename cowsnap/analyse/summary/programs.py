"""Real programs (watch points): a program's own snapshot, or its pool of
workers, in the benchmark's words; the pools ranked against the problem."""

from __future__ import annotations

import math

import pandas as pd

from cowsnap.analyse import verdict
from cowsnap.analyse.summary.levers import ratio_cell
from cowsnap.analyse.summary.words import NO_TIMES_TCG, fmt_interval, phase_facts, reason
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
        "writers, its children the child. Copies are counted against all of its minor faults. Keys: those of "
        "Is it copying?; children: child_wpcopy_count and <role>_wpcopy_count; workers: worker_wpcopy_count, "
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


def ratio_words(row: pd.Series | None, problem: str) -> str:
    """A pool's comparison with the problem (a comparisons.csv row), in
    the levers' words: "workers' copies 0.0332x (0.0327-0.0338) better"."""
    if row is None:
        return "not measured against " + problem
    return f"{verdict.POOL_OBJECTIVES[row['metric']]} {ratio_cell(row)}"


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
        levels = {int(r["rounds"]): r["ci_level"] for _, r in group.iterrows()}
        rounds = "; ".join(f"{n} rounds: {100 * level:.1f}%" for n, level in sorted(levels.items()))
        lines += [
            f"The pools of {experiment}{f' on {node_type}' if several else ''} against {problem} "
            f"({levers.EXAMPLES.get(problem, ('the reference',))[0]}: the problem), fewest workers' copies first: "
            f"each one's workers' copies (worker_wpcopy_count) and peak private memory (worker_private_dirty_pages) "
            f"over {problem}'s, round by round ({rounds}), in the words of How to avoid it.",
            "",
        ]
        for rank, pid in enumerate(order, start=1):
            name = names.get(pid, pid)
            lever = levers.EXAMPLES.get(name, ("", ""))[0]
            parts = [ratio_words(by_point[pid].get(metric), problem) for metric in verdict.POOL_OBJECTIVES]
            lines.append(f"{rank}. {name}{f', {lever}' if lever else ''}: {'; '.join(parts)}")
        lines.append("")
    return lines
