"""results/summary.md: the answer, in a few sentences with numbers, for the
machine the sweep ran on. Every number is computed here from the runs
table (medians with 95% bootstrap intervals); nothing is typed in."""

from __future__ import annotations

import pandas as pd

from cowsnap import stats
from cowsnap.aggregate import FINGERPRINT, varying_axes


def fmt(value: float) -> str:
    return "n/a" if pd.isna(value) else f"{value:.3g}"


def fmt_count(value: float) -> str:
    return "n/a" if pd.isna(value) else f"{value:,.0f}"


def fmt_ci(ratio: tuple[float, float, float]) -> str:
    return f"{fmt(ratio[0])}x (95% CI {fmt(ratio[1])}-{fmt(ratio[2])})"


def point_labels(runs: pd.DataFrame) -> dict[tuple[str, str, str], str]:
    """(experiment, point_id, node_type) -> 'experiment: key=value, ...' over
    the keys that vary within the experiment, and the node type where the
    table holds several."""
    several_nodes = runs["node_type"].nunique() > 1
    labels = {}
    for experiment, group in runs.groupby("experiment", sort=False):
        axes = [axis for axis in varying_axes(group) if axis != "node_type"]
        for key, rows in stats.points(group):
            settings = ", ".join(f"{axis}={rows.iloc[0][axis]}" for axis in axes) or "base"
            labels[key] = f"{experiment}: {settings}" + (f" on {key[2]}" if several_nodes else "")
    return labels


def _median(values) -> float:
    return stats.median_ci(values)[0]


def copying_facts(runs: pd.DataFrame) -> list[dict]:
    """For fork points on 4 KiB pages with a no-snapshot baseline: the
    writers' extra CPU time and how much of it was COW copying."""
    ok = runs[runs["status"] == "ok"].assign(writer_cpu_s=lambda t: t["writer_utime_s"] + t["writer_stime_s"])
    facts = []
    candidates = ok[(ok["method"] == "fork") & (ok["backing"] == "4k") & (ok["start"] == "with_child")]
    for key, group in stats.points(candidates):
        experiment, _, node_type = key
        baseline_id = group["baseline_id"].iloc[0]
        baseline = ok[
            (ok["experiment"] == experiment) & (ok["point_id"] == baseline_id) & (ok["node_type"] == node_type)
        ]
        if baseline.empty or (baseline["method"] != "none").any():
            continue
        facts.append(
            {
                "point": key,
                "ratio": stats.ratio_ci(group["writers_s"], baseline["writers_s"]),
                "writers_s": _median(group["writers_s"]),
                "baseline_writers_s": _median(baseline["writers_s"]),
                "extra_cpu_s": _median(group["writer_cpu_s"]) - _median(baseline["writer_cpu_s"]),
                "copy_delay_s": _median(group["copy_delay_s"]),
                "copies": _median(group["copies"]),
                "reuses": _median(group["reuses"]),
                "copies_source": group["copies_source"].iloc[0],
                "pages": group["pages"].iloc[0],
            }
        )
    return facts


def after_exit_facts(runs: pd.DataFrame) -> list[dict]:
    ok = runs[runs["status"] == "ok"]
    candidates = ok[(ok["method"] == "fork") & (ok["backing"] == "4k") & (ok["start"] == "after_child")]
    return [
        {
            "point": key,
            "faults": _median(group["writer_minflt"]),
            "reuses": _median(group["reuses"]),
            "copies": _median(group["copies"]),
            "copies_source": group["copies_source"].iloc[0],
            "pages": group["pages"].iloc[0],
            "writer_stime_s": _median(group["writer_stime_s"]),
        }
        for key, group in stats.points(candidates)
    ]


def best_mitigations(runs: pd.DataFrame) -> dict[tuple[str, str], dict]:
    """Per page backing and node type: of the snapshots taken while the
    writers run (start=with_child), the one with the lowest writers' time
    relative to its no-snapshot baseline."""
    ratios = stats.baseline_ratios(runs, metrics=("writers_s",))
    if ratios.empty:
        return {}
    first = runs.drop_duplicates(stats.POINT).set_index(stats.POINT)
    keys = list(zip(ratios["experiment"], ratios["point_id"], ratios["node_type"], strict=True))
    baseline_keys = list(zip(ratios["experiment"], ratios["baseline_id"], ratios["node_type"], strict=True))
    ratios = ratios.assign(
        backing=first.loc[keys, "backing"].to_numpy(),
        start=first.loc[keys, "start"].to_numpy(),
        baseline_method=first.loc[baseline_keys, "method"].to_numpy(),
    )
    ratios = ratios[(ratios["baseline_method"] == "none") & (ratios["start"] == "with_child")]
    best = {}
    for (backing, node_type), group in ratios.groupby(["backing", "node_type"], sort=False):
        row = group.loc[group["ratio"].idxmin()]
        best[backing, node_type] = {
            "point": (row["experiment"], row["point_id"], node_type),
            "ratio": (row["ratio"], row["ci_low"], row["ci_high"]),
        }
    return best


def build(runs: pd.DataFrame) -> str:
    labels = point_labels(runs)
    lines = ["# What the sweep found", ""]
    machines = runs.drop_duplicates(FINGERPRINT)[FINGERPRINT]
    lines.append("## Machine")
    lines.append("")
    for _, machine in machines.iterrows():
        lines.append(
            f"- {machine['hostname']}: {machine['cpu_model']}, {machine['online_cpus']} CPUs, "
            f"{machine['numa_nodes']} NUMA node(s), Linux {machine['kernel']}"
        )
    if len(machines) > 1:
        lines.append("- **Runs from several machines: every number below is for one node type, named with it.**")
    lines += ["", "## Is the writers' extra time after fork COW copying?", ""]
    facts = copying_facts(runs)
    for fact in facts:
        share = fact["copy_delay_s"] / fact["extra_cpu_s"] if fact["extra_cpu_s"] > 0 else float("nan")
        lines.append(
            f"- {labels[fact['point']]}: the writers took {fmt_ci(fact['ratio'])} the no-snapshot time "
            f"({fmt(fact['writers_s'])} s against {fmt(fact['baseline_writers_s'])} s). Of their "
            f"{fmt(fact['extra_cpu_s'])} s of extra CPU time, {fmt(fact['copy_delay_s'])} s ({fmt(100 * share)}%) "
            f"was COW copying ({fmt_count(fact['copies'])} copies of {fmt_count(fact['pages'])} pages, "
            f"source: {fact['copies_source']}); the rest is write faults that copied nothing "
            f"({fmt_count(fact['reuses'])} reuses, pgreuse) and other kernel work."
        )
    if not facts:
        lines.append("- No fork point on 4 KiB pages with a no-snapshot baseline ran.")
    lines += ["", "## After the child exits", ""]
    for fact in after_exit_facts(runs):
        lines.append(
            f"- {labels[fact['point']]}: the writers still took {fmt_count(fact['faults'])} faults for "
            f"{fmt_count(fact['pages'])} pages: {fmt_count(fact['reuses'])} reuses (pgreuse) and "
            f"{fmt_count(fact['copies'])} copies ({fact['copies_source']}), {fmt(fact['writer_stime_s'])} s "
            "of kernel time: fault handling, not copying."
        )
    lines += ["", "## Best mitigation for each page backing", ""]
    lines.append("Snapshots taken while the writers run; writers' time over the no-snapshot baseline's.")
    lines.append("")
    best = best_mitigations(runs)
    for (backing, _), choice in best.items():
        lines.append(f"- backing={backing}: {labels[choice['point']]} at {fmt_ci(choice['ratio'])}")
    if not best:
        lines.append("- No experiment with a no-snapshot baseline ran.")
    lines += ["", "## Points not measured", ""]
    missing = runs[runs["status"] != "ok"].drop_duplicates([*stats.POINT, "status", "reason"])
    for _, row in missing.iterrows():
        lines.append(f"- {labels[tuple(row[stats.POINT])]}: {row['status']}: {row['reason']}")
    if missing.empty:
        lines.append("- none: every point ran")
    return "\n".join(lines) + "\n"
