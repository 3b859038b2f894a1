"""How to avoid it: each lever against its reference snapshot, round by
round, on the three objectives (comparisons.csv, verdict.OBJECTIVES); the
best lever on each, the levers no other beats on all three (the trade-off
set) with what each trades, and what the runs cannot tell apart. Reads
tables; computes no statistics."""

from __future__ import annotations

import pandas as pd

from cowsnap.analyse import verdict
from cowsnap.analyse.summary import apart
from cowsnap.analyse.summary.levers import (
    THE_PLAIN_FORK,
    floor_words,
    is_plain,
    lever_name,
    lever_words,
    ratio_cell,
    verdict_words,
)
from cowsnap.analyse.text import fmt, fmt_ratio, section, table


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
    changes: dict[str, str] = {}  # a setting -> what it changes, said once under the tables
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
            ]
            for key in keys
        ]
        header = ["lever", *verdict.OBJECTIVES.values(), *verdict.ALSO_COMPARED.values(), "over the floor"]
        lines += table(header, rows) + [""]
        for key in keys:
            changes.update(lever_words(point_of(points, *key), reference))
    if changes:
        lines += [
            "What each setting of a lever changes:",
            "",
            *(f"- {name}: {words}" for name, words in changes.items()),
            "",
        ]
    for backing, node_type in sorted({(str(point_of(points, *key).get("backing")), key[2]) for key in by_lever}):
        best = best_lines(points, comparisons, backing, node_type)
        if not plain_fork_candidates(points, comparisons, backing, node_type):
            continue
        where = f"backing={backing}" + (f" on {node_type}" if several else "")
        lines += [f"The best lever on each objective ({where}):", "", *(f"- {line}" for line in best)]
        lines += [f"- {line}" for line in tradeoff_lines(points, comparisons, backing, node_type)] + [""]
    return lines + apart.cannot_tell_apart(comparisons)


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
