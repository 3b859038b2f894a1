"""results/summary.md: the answer, in a few sentences with numbers, for the
machine the sweep ran on. Every number is computed here from the runs
table (medians with 95% bootstrap intervals); nothing is typed in."""

from __future__ import annotations

import pandas as pd

from cowsnap import stats
from cowsnap.aggregate import varying_axes

FINGERPRINT = ["hostname", "cpu_model", "online_cpus", "numa_nodes", "kernel"]


def fmt(value: float) -> str:
    return "n/a" if pd.isna(value) else f"{value:.3g}"


def fmt_count(value: float) -> str:
    return "n/a" if pd.isna(value) else f"{value:,.0f}"


def fmt_ci(ratio: tuple[float, float, float]) -> str:
    return f"{fmt(ratio[0])}x (95% CI {fmt(ratio[1])}-{fmt(ratio[2])})"


def point_labels(runs: pd.DataFrame) -> dict[str, str]:
    """point_id -> 'experiment: key=value, ...' over the keys that vary within its experiment."""
    labels = {}
    for experiment, group in runs.groupby("experiment", sort=False):
        axes = varying_axes(group)
        for point_id, rows in group.groupby("point_id", sort=False):
            row = rows.iloc[0]
            settings = ", ".join(f"{axis}={row[axis]}" for axis in axes) or "base"
            labels[point_id] = f"{experiment}: {settings}"
    return labels


def _median(runs: pd.DataFrame, point_id: str, column: str) -> float:
    values = runs.loc[(runs["point_id"] == point_id) & (runs["status"] == "ok"), column]
    return stats.median_ci(values)[0]


def copying_facts(runs: pd.DataFrame) -> list[dict]:
    """For fork points on 4 KiB pages with a no-snapshot baseline: the
    writers' extra CPU time and how much of it was COW copying."""
    ok = runs[runs["status"] == "ok"].assign(writer_cpu_s=lambda t: t["writer_utime_s"] + t["writer_stime_s"])
    facts = []
    candidates = ok[(ok["method"] == "fork") & (ok["backing"] == "4k") & (ok["start"] == "with_child")]
    for point_id, group in candidates.groupby("point_id", sort=False):
        baseline_id = group["baseline_id"].iloc[0]
        baseline = ok[ok["point_id"] == baseline_id]
        if baseline.empty or (baseline["method"] != "none").any():
            continue
        facts.append(
            {
                "point_id": point_id,
                "ratio": stats.ratio_ci(group["writers_s"], baseline["writers_s"]),
                "writers_s": stats.median_ci(group["writers_s"])[0],
                "baseline_writers_s": stats.median_ci(baseline["writers_s"])[0],
                "extra_cpu_s": stats.median_ci(group["writer_cpu_s"])[0] - stats.median_ci(baseline["writer_cpu_s"])[0],
                "copy_delay_s": stats.median_ci(group["copy_delay_s"])[0],
                "copies": stats.median_ci(group["copies"])[0],
                "reuses": stats.median_ci(group["reuses"])[0],
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
            "point_id": point_id,
            "faults": stats.median_ci(group["writer_minflt"])[0],
            "reuses": stats.median_ci(group["reuses"])[0],
            "copies": stats.median_ci(group["copies"])[0],
            "copies_source": group["copies_source"].iloc[0],
            "pages": group["pages"].iloc[0],
            "writer_stime_s": stats.median_ci(group["writer_stime_s"])[0],
        }
        for point_id, group in candidates.groupby("point_id", sort=False)
    ]


def best_mitigations(runs: pd.DataFrame) -> dict[str, dict]:
    """Per page backing: the snapshot point with the lowest writers' time
    relative to its no-snapshot baseline."""
    ratios = stats.baseline_ratios(runs, metrics=("writers_s",))
    if ratios.empty:
        return {}
    first = runs.drop_duplicates("point_id").set_index("point_id")
    ratios = ratios[ratios["baseline_id"].map(first["method"]) == "none"]
    ratios = ratios.assign(backing=ratios["point_id"].map(first["backing"]))
    best = {}
    for backing, group in ratios.groupby("backing", sort=False):
        row = group.loc[group["ratio"].idxmin()]
        best[backing] = {"point_id": row["point_id"], "ratio": (row["ratio"], row["ci_low"], row["ci_high"])}
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
        lines.append("- **Runs from different machines are in this table; each figure pools them.**")
    lines += ["", "## Is the writers' extra time after fork COW copying?", ""]
    facts = copying_facts(runs)
    for fact in facts:
        share = fact["copy_delay_s"] / fact["extra_cpu_s"] if fact["extra_cpu_s"] > 0 else float("nan")
        lines.append(
            f"- {labels[fact['point_id']]}: the writers took {fmt_ci(fact['ratio'])} the no-snapshot time "
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
            f"- {labels[fact['point_id']]}: the writers still took {fmt_count(fact['faults'])} faults for "
            f"{fmt_count(fact['pages'])} pages: {fmt_count(fact['reuses'])} reuses (pgreuse) and "
            f"{fmt_count(fact['copies'])} copies ({fact['copies_source']}), {fmt(fact['writer_stime_s'])} s "
            "of kernel time: fault handling, not copying."
        )
    lines += ["", "## Best mitigation for each page backing (writers' time / no-snapshot baseline)", ""]
    best = best_mitigations(runs)
    for backing, choice in best.items():
        lines.append(f"- backing={backing}: {labels[choice['point_id']]} at {fmt_ci(choice['ratio'])}")
    if not best:
        lines.append("- No experiment with a no-snapshot baseline ran.")
    lines += ["", "## Points not measured", ""]
    missing = runs[runs["status"] != "ok"].drop_duplicates(["point_id", "status", "reason"])
    for _, row in missing.iterrows():
        lines.append(f"- {labels[row['point_id']]}: {row['status']}: {row['reason']}")
    if missing.empty:
        lines.append("- none: every point ran")
    return "\n".join(lines) + "\n"
