"""How to avoid it: each lever against its reference snapshot, round by
round, on the three objectives (comparisons.csv, verdict.OBJECTIVES); the
best lever on each, the levers no other beats on all three (the trade-off
set) with what each trades, and what the runs cannot tell apart. Reads
tables; computes no statistics."""

from __future__ import annotations

from math import inf

import pandas as pd

from cowsnap.analyse import verdict
from cowsnap.analyse.text import fmt, fmt_ratio, section, table
from cowsnap.plan import methods

# What each lever changes, by the setting that differs from a plain fork.
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
    ("alloc", "mmap"): "a page-aligned array: each munmap of a copied batch releases it",
}
PLAIN = {"method": "fork", "populate": "none", "dest": "zeroed", "dontfork": False, "release": "munmap",
         "exit": "early", "alloc": "mmap"}  # fmt: skip
THE_PLAIN_FORK = "the plain fork"
# Writers' time within this factor of the floor: "near the floor".
NEAR_FLOOR = 1.25


def floor_words(point: pd.Series) -> str:
    """'1.4x the floor', and what the numbers say about where a lever has
    nothing left to give."""
    over = point.get("writers_over_floor")
    if over is None or pd.isna(over):
        return "no floor measured"
    notes = [f"{fmt(over)}x the floor"]
    if over <= NEAR_FLOOR:
        notes.append(f"within {NEAR_FLOOR:g}x of the floor: little left to gain here")
    if point.get("populate") == "write-after-exit" and point.get("snapshot_end_s", 0) >= point.get("writers_s", inf):
        notes.append("the child exited after the writers finished, so populating after its exit had nothing to do")
    return "; ".join(notes)


def is_plain(row: pd.Series) -> bool:
    return all(row.get(key, value) == value for key, value in PLAIN.items())


def lever_words(row: pd.Series, reference: dict | pd.Series = PLAIN) -> str:
    """What the point changes against the reference's settings, in words."""
    changes = [(key, row[key]) for key in PLAIN if key in row and key in reference and row[key] != reference[key]]
    words = [LEVERS[change] for change in changes if change in LEVERS]
    return "; ".join(words) or THE_PLAIN_FORK


def lever_name(row: pd.Series) -> str:
    """A comparison's lever by the settings it changes against its
    reference (both labels name the experiment's varying keys)."""
    theirs = set(str(row["reference_label"]).split(", "))
    return ", ".join(part for part in str(row["label"]).split(", ") if part not in theirs) or str(row["label"])


def reference_contexts(comparisons: pd.DataFrame) -> dict[str, str]:
    """reference_label -> the settings that tell it from the table's other
    references ('' when there is one): the lever names' context."""
    labels = comparisons["reference_label"].astype(str).unique() if not comparisons.empty else []
    parts = {label: label.split(", ") for label in labels}
    shared = set.intersection(*(set(p) for p in parts.values())) if parts else set()
    return {label: ", ".join(part for part in p if part not in shared) for label, p in parts.items()}


def within(row: pd.Series) -> float:
    """How far apart the lever and its reference can be, as a share: the
    interval's farther end from 1."""
    return max(row["ci_high"], 1 / row["ci_low"]) - 1 if row["ci_low"] > 0 else float("nan")


def share(value: float) -> str:
    """'18%', '0.3%'."""
    return f"{100 * value:.0f}%" if value >= 0.01 else f"{100 * value:.1f}%"


def verdict_words(row: pd.Series) -> str:
    """'better', 'worse', 'better, by under 2%', or 'same within 18%'."""
    if row["resolved"]:
        words = "better" if row["better"] else "worse"
        small = within(row) < verdict.NEGLIGIBLE
        return f"{words}, by under {share(verdict.NEGLIGIBLE)}" if small else words
    return f"same within {share(within(row))}"


def ratio_cell(row: pd.Series | None) -> str:
    """'0.31x (0.12-0.45) better'."""
    if row is None:
        return "not measured"
    return f"{fmt(row['ratio'])}x ({fmt(row['ci_low'])}-{fmt(row['ci_high'])}) {verdict_words(row)}"


def levers(comparisons: pd.DataFrame, objectives_only: bool = True) -> dict[tuple, dict[str, pd.Series]]:
    """(experiment, point_id, node_type) -> objective (or any metric
    compared) -> its comparison row."""
    out: dict[tuple, dict[str, pd.Series]] = {}
    if comparisons.empty:
        return out
    metrics = list(verdict.OBJECTIVES) + ([] if objectives_only else list(verdict.ALSO_COMPARED))
    for _, row in comparisons[comparisons["metric"].isin(metrics)].iterrows():
        out.setdefault((row["experiment"], row["point_id"], row["node_type"]), {})[row["metric"]] = row
    return out


def point_of(points: pd.DataFrame, experiment: str, point_id: str, node_type: str) -> pd.Series:
    match = points[
        (points["experiment"] == experiment) & (points["point_id"] == point_id) & (points["node_type"] == node_type)
    ]
    return match.iloc[0]


def shared_objectives(candidates: dict) -> list[str]:
    """The objectives every candidate was compared on."""
    return [o for o in verdict.OBJECTIVES if all(o in objectives for objectives in candidates.values())]


def tradeoff_set(candidates: dict, objectives: list[str]) -> list:
    """The candidates no other candidate beats on every objective (medians
    of the ratios to each one's reference; the reference itself is 1 on
    each). Keys are the candidates' keys; a candidate maps objective ->
    ratio."""

    def beaten(key) -> bool:
        mine = candidates[key]
        return any(
            all(theirs[o] <= mine[o] for o in objectives) and any(theirs[o] < mine[o] for o in objectives)
            for other, theirs in candidates.items()
            if other != key
        )

    return [key for key in candidates if not beaten(key)]


def stall_words(points: pd.DataFrame, key: tuple, rows: dict[str, pd.Series]) -> str:
    """'a stall of up to 29.3 ms' where the lever's longest write is resolved worse."""
    row = rows.get("write_max_s")
    if row is None or not row["resolved"] or row["better"]:
        return ""
    return f"a stall of up to {verdict.duration(point_of(points, *key).get('write_max_s'))}"


def trades(points: pd.DataFrame, key: tuple, rows: dict[str, pd.Series]) -> str:
    """What a lever gives up against its reference: the objectives it is
    resolved worse on, with the number; a stall named as one."""
    words = []
    for objective, row in rows.items():
        if row["resolved"] and not row["better"]:
            what = f"{verdict.OBJECTIVES[objective]} {fmt(row['ratio'])}x"
            if objective == "write_max_s":
                what = f"{stall_words(points, key, rows)}, its {what}"
            words.append(what)
    return "; ".join(words) or "gives up nothing these runs resolve"


def plain_fork_candidates(points: pd.DataFrame, comparisons: pd.DataFrame, backing: str, node_type: str) -> dict:
    """The levers on `backing` whose reference is a plain fork, each as its
    objective rows; the plain fork itself is the key None."""
    found = {}
    for key, rows in levers(comparisons).items():
        if key[2] != node_type:
            continue
        point = point_of(points, *key)
        reference = point_of(points, key[0], next(iter(rows.values()))["reference_id"], key[2])
        if point.get("backing") == backing and is_plain(reference):
            found[key] = rows
    return found


def best_lines(
    points: pd.DataFrame, comparisons: pd.DataFrame, backing: str, node_type: str, short: bool = False
) -> list[str]:
    """Per objective, the best lever on a plain fork of this backing: the
    lowest median among those resolved better than their plain fork; else
    that none was, with what the runs could have resolved (short: the
    answer's words, the ratio and its interval only)."""
    candidates = plain_fork_candidates(points, comparisons, backing, node_type)
    lines = []
    for objective, name in verdict.OBJECTIVES.items():
        rows = [(key, r[objective]) for key, r in candidates.items() if objective in r]
        if not rows:
            lines.append(f"{name}: no lever compared")
            continue
        better = sorted((r for r in rows if r[1]["better"]), key=lambda r: r[1]["ratio"])
        if better:
            key, row = better[0]
            if short:
                lines.append(
                    f"{name}: {lever_name(row)}, {fmt(row['ratio'])}x, {fmt(row['ci_low'])}-{fmt(row['ci_high'])}"
                )
            else:
                lines.append(f"{name}: {lever_name(row)} ({key[0]}), {ratio_cell(row)} than {THE_PLAIN_FORK}")
            continue
        key, row = min(rows, key=lambda r: r[1]["ratio"])
        if short:
            lines.append(f"{name}: none resolved, {lever_name(row)} {verdict_words(row)}")
            continue
        lines.append(
            f"{name}: no lever resolved better than {THE_PLAIN_FORK}; the closest, {lever_name(row)} ({key[0]}), "
            f"{ratio_cell(row)}"
        )
    return lines


def tradeoff_lines(
    points: pd.DataFrame, comparisons: pd.DataFrame, backing: str, node_type: str, short: bool = False
) -> list[str]:
    """The trade-off set among the plain fork and its levers on this backing
    (short: the answer's words, each member named once, a stall with its length)."""
    candidates = plain_fork_candidates(points, comparisons, backing, node_type)
    objectives = shared_objectives(candidates)
    if not candidates or not objectives:
        return []
    medians = {key: {o: rows[o]["ratio"] for o in objectives} for key, rows in candidates.items()}
    medians[None] = dict.fromkeys(objectives, 1.0)
    members = tradeoff_set(medians, objectives)
    if short:
        named: dict[str, str] = {}
        for key in members:
            name = THE_PLAIN_FORK if key is None else lever_name(candidates[key][objectives[0]])
            stall = "" if key is None else stall_words(points, key, candidates[key])
            named[name] = named.get(name) or stall
        return ["; ".join(f"{name}{f', {stall}' if stall else ''}" for name, stall in named.items())]
    names = [
        THE_PLAIN_FORK
        if key is None
        else f"{lever_name(candidates[key][objectives[0]])} ({key[0]}: {trades(points, key, candidates[key])})"
        for key in members
    ]
    on = ", ".join(verdict.OBJECTIVES[o] for o in objectives)
    return [f"no other lever beats these on all of {on} (medians): {'; '.join(names)}"]


def cost_at_all(ratios: pd.DataFrame | None, experiment: str, point_id: str, node_type: str) -> str:
    """'; it costs 5.7x (3.8-16x, at least 87.9%) the no-snapshot writers' time' from ratios.csv."""
    if ratios is None or ratios.empty or "point_id" not in ratios:
        return ""
    rows = ratios[
        (ratios["experiment"] == experiment)
        & (ratios["point_id"] == point_id)
        & (ratios["node_type"] == node_type)
        & (ratios["metric"] == "writers_s")
        & (ratios["baseline_method"] == "none")
    ]
    return f"; it costs {fmt_ratio(rows.iloc[0])} the no-snapshot writers' time" if not rows.empty else ""


def how_to_avoid(points: pd.DataFrame, comparisons: pd.DataFrame, ratios: pd.DataFrame | None = None) -> list[str]:
    lines = section(
        "How to avoid it",
        "Each lever against its experiment's reference snapshot, round by round: the median of the per-round "
        "ratios and its distribution-free interval, at the sign test's level (docs/statistics.md). better or "
        "worse: the interval leaves 1 out; same within N%: it does not. Levers of different experiments meet "
        "only through their own reference.",
    )
    by_lever = levers(comparisons, objectives_only=False)
    if not by_lever:
        return lines + ["- No experiment compared levers with a reference snapshot.", ""]
    groups: dict[tuple, list] = {}
    for key, rows in by_lever.items():
        groups.setdefault((key[0], next(iter(rows.values()))["reference_id"], key[2]), []).append(key)
    several = len({key[2] for key in by_lever}) > 1
    for (experiment, reference_id, node_type), keys in groups.items():
        reference = point_of(points, experiment, reference_id, node_type)
        levels = {int(r["rounds"]): r["ci_level"] for key in keys for r in by_lever[key].values()}
        rounds = "; ".join(f"{n} rounds: {100 * level:.1f}%" for n, level in sorted(levels.items()))
        lines += [
            f"{experiment}: against {reference['label']}"
            + (f" on {node_type}" if several else "")
            + f" ({rounds}){cost_at_all(ratios, experiment, reference_id, node_type)}:",
            "",
        ]
        rows = [
            [
                lever_name(by_lever[key][next(iter(by_lever[key]))]),
                *(ratio_cell(by_lever[key].get(metric)) for metric in (*verdict.OBJECTIVES, *verdict.ALSO_COMPARED)),
                floor_words(point_of(points, *key)),
                lever_words(point_of(points, *key), reference),
            ]
            for key in keys
        ]
        header = [
            "lever", *verdict.OBJECTIVES.values(), *verdict.ALSO_COMPARED.values(), "over the floor", "what it changes"
        ]  # fmt: skip
        lines += table(header, rows) + [""]
    for backing, node_type in sorted({(str(point_of(points, *key).get("backing")), key[2]) for key in by_lever}):
        best = best_lines(points, comparisons, backing, node_type)
        if not plain_fork_candidates(points, comparisons, backing, node_type):
            continue
        where = f"backing={backing}" + (f" on {node_type}" if several else "")
        lines += [f"The best lever on each objective ({where}):", "", *(f"- {line}" for line in best)]
        lines += [f"- {line}" for line in tradeoff_lines(points, comparisons, backing, node_type)] + [""]
    return lines + cannot_tell_apart(comparisons)


def cannot_tell_apart(comparisons: pd.DataFrame) -> list[str]:
    """Every open comparison on an objective, with the ratios these runs
    would have resolved."""
    if comparisons.empty:
        return []
    rows = comparisons[comparisons["metric"].isin(list(verdict.OBJECTIVES)) & ~comparisons["resolved"].astype(bool)]
    # Those within NEGLIGIBLE of each other are counted, not listed: they are the same for any use.
    alike = rows.apply(within, axis=1) < verdict.NEGLIGIBLE if not rows.empty else pd.Series(dtype=bool)
    same, rows = rows[alike], rows[~alike]
    if rows.empty and same.empty:
        return []
    lines = section(
        "What the runs cannot tell apart",
        "Each open comparison of a lever with its reference (How to avoid it): how far apart the two can be, the "
        "interval's farther end, and the true ratios these runs would have resolved at the same level, given "
        "their spread (docs/statistics.md).",
    )
    contexts = {
        label: context
        for _, group in rows.groupby("experiment", sort=False)
        for label, context in reference_contexts(group).items()
    }
    body = [
        [
            row["experiment"],
            f"{contexts[str(row['reference_label'])]}: {lever_name(row)}".lstrip(": "),
            verdict.OBJECTIVES[row["metric"]],
            f"within {share(within(row))}",
            f"below {fmt(row['detectable_below'])}x or above {fmt(row['detectable_above'])}x",
            f"{int(row['rounds'])}, {100 * row['ci_level']:.1f}%",
        ]
        for _, row in rows.iterrows()
    ]
    header = ["experiment", "lever", "objective", "apart", "resolvable", "rounds, level"]
    lines += table(header, body) if body else []
    if not same.empty:
        lines += ["", f"{len(same)} more open comparisons are within {share(verdict.NEGLIGIBLE)} of their reference."]
    return lines + [""]


def answer_lines(points: pd.DataFrame, comparisons: pd.DataFrame, backing: str = "4k") -> list[str]:
    """The answer's lines on avoiding it, for one backing on each node type."""
    lines = []
    node_types = sorted({key[2] for key in levers(comparisons)})
    for node_type in node_types:
        if not plain_fork_candidates(points, comparisons, backing, node_type):
            continue
        where = f"{backing} pages" + (f" on {node_type}" if len(node_types) > 1 else "")
        best = "; ".join(best_lines(points, comparisons, backing, node_type, short=True))
        lines.append(f"- **Best lever ({where})**, each over {THE_PLAIN_FORK} of its rounds: {best}.")
        trade = tradeoff_lines(points, comparisons, backing, node_type, short=True)
        lines += [f"- **The trade-off ({where})**, none beaten on every objective: {line}." for line in trade]
    return lines
