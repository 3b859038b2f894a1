"""Figures from an experiment's tables (seaborn; a PNG and a PDF each).

Every bar is a median with its 95% bootstrap interval. The x axis is
`writers` when it varies, else the first varying point key; the other
varying keys make the colour, labelled with their config names.
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from cowsnap import stats  # noqa: E402
from cowsnap.aggregate import varying_axes  # noqa: E402

FAULT_KINDS = {"copies": "copies (COW copy)", "reuses": "reuses (no copy)", "splits": "huge page splits"}
KERNEL_TIME = {"copy_delay_s": "copying (wpcopy delay)", "other_kernel_s": "other kernel time (faults without copy)"}
BAR = {"estimator": "median", "errorbar": ("ci", 95), "seed": 0}


def _layout(table: pd.DataFrame) -> tuple[str, str | None, pd.DataFrame]:
    """x axis and colour (named after the config keys they combine)."""
    axes = varying_axes(table)
    x = "writers" if "writers" in axes else (axes[0] if axes else "method")
    rest = [a for a in axes if a != x]
    table = table.copy()
    table[x] = table[x].astype(str)
    hue = None
    if rest:
        hue = ", ".join(rest)
        table[hue] = table[rest].astype(str).agg(", ".join, axis=1)
    return x, hue, table


def _variant(table: pd.DataFrame) -> tuple[str, pd.DataFrame]:
    """One label per point, for figures whose colour is taken."""
    x, hue, data = _layout(table)
    if not hue:
        return x, data
    label = f"{x} | {hue}"
    data[label] = data[x] + " | " + data[hue]
    return label, data


def _ok(table: pd.DataFrame) -> pd.DataFrame:
    return table[table["status"] == "ok"]


def _figure(title: str):
    figure, ax = plt.subplots(figsize=(7, 4.2))
    ax.set_title(title)
    return figure, ax


def _save(figure, stem: Path) -> list[Path]:
    stem.parent.mkdir(parents=True, exist_ok=True)
    outputs = [stem.with_suffix(".png"), stem.with_suffix(".pdf")]
    for path in outputs:
        figure.savefig(path, bbox_inches="tight", dpi=150)
    plt.close(figure)
    return outputs


def writers_time(runs: pd.DataFrame, sharing: pd.DataFrame, ax) -> None:
    """Writers' time: first write to last, by the experiment's axes."""
    x, hue, data = _layout(_ok(runs))
    sns.barplot(data=data, x=x, y="writers_s", hue=hue, order=sorted(data[x].unique()), ax=ax, **BAR)
    ax.set_ylabel(stats.METRICS["writers_s"][0])


def _slanted(ax) -> None:
    plt.setp(ax.get_xticklabels(), rotation=30, ha="right", rotation_mode="anchor")


def _split_bars(data: pd.DataFrame, x: str, parts: dict[str, str], legend: str, ax) -> None:
    """One bar per part (column -> label) for each x, side by side."""
    long = data.melt(id_vars=[x], value_vars=list(parts), var_name=legend, value_name="value")
    long[legend] = long[legend].map(parts)
    sns.barplot(data=long, x=x, y="value", hue=legend, order=sorted(data[x].unique()), ax=ax, **BAR)
    _slanted(ax)


def writer_faults(runs: pd.DataFrame, sharing: pd.DataFrame, ax) -> None:
    """The writers' faults per array page: copies, reuses, huge page splits."""
    x, data = _variant(_ok(runs))
    data = data.assign(**{kind: data[kind] / data["pages"] for kind in FAULT_KINDS})
    _split_bars(data, x, FAULT_KINDS, "fault", ax)
    ax.set_ylabel("per page of the array's backing")


def kernel_time(runs: pd.DataFrame, sharing: pd.DataFrame, ax) -> None:
    """The writers' kernel time split into COW copying (delay accounting)
    and the rest (fault handling without a copy)."""
    x, data = _variant(_ok(runs))
    data = data.assign(other_kernel_s=(data["writer_stime_s"] - data["copy_delay_s"]).clip(lower=0))
    _split_bars(data, x, KERNEL_TIME, "part", ax)
    ax.set_ylabel("writers' kernel time, summed over threads (s)")


def ratios(runs: pd.DataFrame, sharing: pd.DataFrame, ax) -> None:
    """Each point's writers' time over its baseline's, with the interval."""
    x, data = _variant(_ok(runs))
    table = stats.baseline_ratios(runs, metrics=("writers_s",))
    if table.empty:
        return
    labels = data.drop_duplicates(["point_id", "node_type"]).set_index(["point_id", "node_type"])[x]
    table[x] = labels.loc[list(zip(table["point_id"], table["node_type"], strict=True))].to_numpy()
    ax.errorbar(
        table["ratio"],
        table[x],
        xerr=[table["ratio"] - table["ci_low"], table["ci_high"] - table["ratio"]],
        fmt="o",
        capsize=3,
    )
    ax.axvline(1, color="grey", linestyle="--", linewidth=1)
    ax.set_xscale("log")
    ax.set_xlabel("writers' time / baseline's (median, 95% CI; lower is better)")
    ax.set_ylabel(x)


def sharing_timeline(runs: pd.DataFrame, sharing: pd.DataFrame, ax) -> None:
    """Share of the array still shared with the child while the writers run."""
    x, data = _variant(_ok(runs))
    timeline = sharing.merge(data[["run_id", "pages", x]], on="run_id")
    timeline["shared"] = timeline["sharing_pages"] / timeline["pages"]
    if not timeline.empty:
        sns.lineplot(data=timeline, x="sharing_s", y="shared", hue=x, units="run_id", estimator=None, ax=ax)
    ax.set_xlabel("time since the writers started (s)")
    ax.set_ylabel("array pages still shared with the child (fraction)")


def copy_bandwidth(runs: pd.DataFrame, sharing: pd.DataFrame, ax) -> None:
    """The child's copy bandwidth against this machine's memcpy bandwidth."""
    x, hue, data = _layout(_ok(runs))
    sns.barplot(data=data, x=x, y="child_copy_gbps", hue=hue, ax=ax, **BAR)
    if "memcpy_gbps" in data and data["memcpy_gbps"].notna().any():
        memcpy = data["memcpy_gbps"].median()
        ax.axhline(memcpy, color="black", linestyle="--", linewidth=1, label=f"memcpy, one thread ({memcpy:.1f})")
        ax.legend()
    ax.set_ylabel("copy bandwidth (GB/s)")


FIGURES = {
    "writers_time": writers_time,
    "writer_faults": writer_faults,
    "kernel_time": kernel_time,
    "ratios": ratios,
    "sharing_timeline": sharing_timeline,
    "copy_bandwidth": copy_bandwidth,
}


def figures_for(methods: set[str], has_baseline: bool, samples_sharing: bool = False) -> list[str]:
    """The figures that say something for an experiment."""
    names = ["writers_time", "writer_faults", "kernel_time"]
    if has_baseline:
        names.append("ratios")
    if "fork" in methods:
        names.append("copy_bandwidth")
    if samples_sharing:
        names.append("sharing_timeline")
    return names


def caption(name: str, experiment: str, description: str, runs: pd.DataFrame) -> str:
    ok = _ok(runs)
    text = (FIGURES[name].__doc__ or "").strip().replace("\n", " ")
    return (
        f"{text} Experiment `{experiment}`: {description.strip()} "
        f"{len(ok)} runs of {ok['point_id'].nunique()} points; bars are medians with 95% bootstrap intervals."
    )


def draw(name: str, runs: pd.DataFrame, sharing: pd.DataFrame, stem: Path, title: str) -> list[Path]:
    figure, ax = _figure(title)
    points = _ok(runs)["point_id"].nunique() if "point_id" in runs else 1
    figure.set_size_inches(max(7, 0.6 * points + 2), 4.2)  # room for one label per point
    if not _ok(runs).empty:
        FIGURES[name](runs, sharing, ax)
    return _save(figure, stem)


def sidecar(path: Path, name: str, runs: pd.DataFrame, config_hash: str, caption_text: str) -> None:
    """What a figure was drawn from: config hash, rows, commit, source."""
    info = {
        "figure": name,
        "config_hash": config_hash,
        "caption": caption_text,
        "rows": len(runs),
        "run_ids": sorted(runs["run_id"]),
        "git_commits": sorted(runs["git_commit"].dropna().astype(str).unique()) if "git_commit" in runs else [],
        "source_hashes": sorted(runs["source_hash"].dropna().astype(str).unique()) if "source_hash" in runs else [],
    }
    Path(path).write_text(json.dumps(info, indent=1) + "\n")


def draw_comparison(table: pd.DataFrame, stem: Path, title: str) -> list[Path]:
    """B / A per point and metric, with the interval (compare.py)."""
    figure, ax = _figure(title)
    if not table.empty:
        for offset, (metric, rows) in enumerate(table.groupby("metric", sort=False)):
            ax.errorbar(
                rows["ratio"],
                [f"{p}" for p in rows["point"]],
                xerr=[rows["ratio"] - rows["ci_low"], rows["ci_high"] - rows["ratio"]],
                fmt="os"[offset % 2],
                capsize=3,
                label=stats.METRICS[metric][0],
            )
        ax.axvline(1, color="grey", linestyle="--", linewidth=1)
        ax.set_xscale("log")
        ax.legend()
    ax.set_xlabel("B / A (median, 95% CI; below 1: B is faster)")
    return _save(figure, stem)
