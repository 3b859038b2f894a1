"""Figures from an experiment's tables (a PNG and a PDF each).

Figures compute no statistics: every bar is a point's median from
points.csv, every whisker its order-statistic interval, every ratio a row of
ratios.csv (cowsnap.analyse.stats made them all). One bar group per point, named by
the point's label; axis labels come from the glossary.
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from cowsnap.analyse import after_exit, glossary, model, verdict  # noqa: E402
from cowsnap.analyse.figures import FORK_POINTS, FORK_SLOPES, figures_for  # noqa: E402, F401 (figures_for: which figures an experiment draws)
from cowsnap.analyse.summary import levers as lever_text  # noqa: E402
from cowsnap.plan.point import PHASE_SUFFIXES  # noqa: E402

FAULT_KINDS = ("copies", "copies_estimate", "reuses", "splits")
KERNEL_TIME = ("writer_stime_s", "copy_delay_s", "memory_copy_s")
SNAPSHOT_PHASES = PHASE_SUFFIXES
PHASE_FAULTS = (
    *(f"{key}{phase}" for key in ("copies", "reuses") for phase in SNAPSHOT_PHASES),
    "child_wpcopy_count",
)
PHASE_KERNEL_TIME = (
    *(f"{key}{phase}" for key in ("copy_delay_s", "writer_stime_s") for phase in SNAPSHOT_PHASES),
    "child_wpcopy_delay_s",
)


def _points_in_order(points: pd.DataFrame) -> pd.DataFrame:
    return points.sort_values("label", kind="stable").reset_index(drop=True)


def _flags(points: pd.DataFrame) -> pd.Series:
    """' [oversubscribed]', ' [unstable]', ' [cpu-bound]' or '' per point:
    more threads than CPUs, and the noise the statistics found."""
    marks = pd.Series("", index=points.index)
    for column, mark in (
        ("oversubscribed", " [oversubscribed]"),
        ("unstable", " [unstable]"),
        ("cpu_bound", " [cpu-bound]"),
    ):
        if column in points:
            marks += points[column].astype(str).eq("True").map({True: mark, False: ""})
    return marks


def _labels(points: pd.DataFrame) -> pd.Series:
    return points["label"] + _flags(points)


def _bars(ax, points: pd.DataFrame, columns: list[str], scale: pd.Series | None = None) -> int:
    """Grouped bars, one group per point, one bar per column with data, each
    with its interval; returns how many bars were drawn."""
    points = _points_in_order(points)
    columns = [c for c in columns if c in points and points[c].notna().any()]
    if not columns:
        return 0
    scale = scale if scale is not None else pd.Series(1.0, index=points.index)
    palette = sns.color_palette(n_colors=len(columns))
    width = 0.8 / len(columns)
    x = np.arange(len(points))
    drawn = 0
    for i, column in enumerate(columns):
        value = points[column] * scale
        low = (points[column] - points[f"{column}_ci_low"]) * scale
        high = (points[f"{column}_ci_high"] - points[column]) * scale
        offset = x - 0.4 + width * (i + 0.5)
        hatch = ["//" if flag else "" for flag in _flags(points)]
        ax.bar(offset, value, width, color=palette[i], label=glossary.lookup(column).label, hatch=hatch)
        ax.errorbar(offset, value, yerr=[low.fillna(0), high.fillna(0)], fmt="none", ecolor="black", capsize=2)
        drawn += int(value.notna().sum())
    ax.set_xticks(x, _labels(points))
    plt.setp(ax.get_xticklabels(), rotation=30, ha="right", rotation_mode="anchor")
    if len(columns) > 1:
        ax.legend(fontsize="small")
    return drawn


def writers_time(tables: dict, ax) -> str:
    """Writers' time, from the start mark to the last writer's end."""
    points = tables["points"]
    if not _bars(ax, points, ["writers_s"]):
        return "no timed run"
    ax.set_ylabel(glossary.lookup("writers_s").label)
    return ""


def writer_faults(tables: dict, ax) -> str:
    """The writers' faults per array page: exact COW copies, the estimate
    where there is no exact count, reuses (system-wide pgreuse) and huge
    page splits."""
    points = tables["points"]
    if not _bars(ax, points, list(FAULT_KINDS), scale=1 / _points_in_order(points)["pages"]):
        return "no fault counted"
    ax.set_ylabel("per page of the array's backing")
    return ""


def kernel_time(tables: dict, ax) -> str:
    """The writers' kernel time, the time in the COW-copy fault path (delay
    accounting: allocation, accounting, TLB flush and the copy), and the
    copying itself at this machine's memcpy speed."""
    points = tables["points"]
    if not _bars(ax, points, list(KERNEL_TIME)):
        return "no kernel time measured"
    ax.set_ylabel("seconds, summed over the writer threads")
    return ""


def phase_faults(tables: dict, ax) -> str:
    """Copies against reuses, per phase: the writers' exact COW copies
    (delay accounting) and the system's reuses (pgreuse, whole machine)
    while the snapshot lived and after it ended, and the child's own copies.
    For a watch point the writers are the program's threads and the child
    its children."""
    points = tables["points"]
    if not _bars(ax, points, list(PHASE_FAULTS)):
        return "no copy or reuse counted"
    ax.set_ylabel("pages")
    return ""


def phase_kernel_time(tables: dict, ax) -> str:
    """Where the kernel time went, per phase: the writers' time in the
    COW-copy fault path (delay accounting) against their whole kernel time,
    while the snapshot lived and after it ended, and the child's time in
    the copy fault path."""
    points = tables["points"]
    if not _bars(ax, points, list(PHASE_KERNEL_TIME)):
        return "no kernel time measured"
    ax.set_ylabel("seconds, summed over the threads")
    return ""


def ratios_figure(tables: dict, ax) -> str:
    """Each point's writers' time over its no-snapshot baseline's (with the
    interval) and over the floor (the baseline plus the copy at memcpy speed
    when no core is idle for it)."""
    points = tables["points"]
    ratios = tables["ratios"]
    table = ratios[ratios["metric"] == "writers_s"] if not ratios.empty else ratios
    if table.empty:
        return "no point has a measured baseline"
    table = table.sort_values("label", kind="stable")
    flags = points.set_index("label").reindex(table["label"])
    table = table.assign(label=(table["label"] + _flags(flags).to_numpy()) if not flags.empty else table["label"])
    ax.errorbar(
        table["ratio"],
        table["label"],
        xerr=[table["ratio"] - table["ci_low"], table["ci_high"] - table["ratio"]],
        fmt="o",
        capsize=3,
        label="over the baseline",
    )
    floor = (
        points.set_index("label").reindex(table["label"])["writers_over_floor"]
        if "writers_over_floor" in points
        else None
    )
    if floor is not None and floor.notna().any():
        ax.plot(floor.to_numpy(), table["label"], "x", color="black", label="over the floor")
    ax.axvline(1, color="grey", linestyle="--", linewidth=1)
    ax.set_xscale("log")
    ax.set_xlabel("writers' time / reference (median; lower is better)")
    ax.legend(fontsize="small")
    return ""


def sharing_timeline(tables: dict, ax) -> str:
    """Share of the array still shared with the child while the writers run
    (pagemap samples; runs that sample are not timed)."""
    points = tables["points"]
    runs = tables["runs"]
    sharing = tables["sharing"]
    ok = runs[runs["status"] == "ok"]
    labels = points.set_index("point_id")["label"]
    timeline = sharing.merge(ok[["run_id", "point_id", "pages"]], on="run_id")
    if timeline.empty:
        return "no run sampled the pages still shared"
    timeline["point"] = labels.reindex(timeline["point_id"]).to_numpy()
    timeline["shared"] = timeline["sharing_pages"] / timeline["pages"]
    sns.lineplot(data=timeline, x="sharing_s", y="shared", hue="point", units="run_id", estimator=None, ax=ax)
    ax.set_xlabel(glossary.lookup("sharing_s").label)
    ax.set_ylabel("array pages still shared with the child (fraction)")
    return ""


def copy_bandwidth(tables: dict, ax) -> str:
    """The child's copy bandwidth against this machine's memcpy bandwidth."""
    points = tables["points"]
    if not _bars(ax, points, ["child_copy_gbps"]):
        return "no child copied"
    if "memcpy_gbps" in points and points["memcpy_gbps"].notna().any():
        memcpy = points["memcpy_gbps"].median()
        ax.axhline(memcpy, color="black", linestyle="--", linewidth=1, label=f"memcpy, one thread ({memcpy:.1f})")
        ax.legend(fontsize="small")
    ax.set_ylabel(glossary.lookup("child_copy_gbps").label)
    return ""


GB_PER_GIB = 2**30 / 1e9


def fork_scaling(tables: dict, ax) -> str:
    """The fork() call against the array size, per line (page backing, or
    whatever else varies besides the size): every run,
    and the least-squares line of scaling.csv drawn over the sizes measured
    only (its slope in ms per GiB and R^2 in the legend); published costs as
    reference marks, labelled with their source and machine."""
    runs, scaling = tables["runs"], tables.get("scaling", pd.DataFrame())
    fits = scaling[scaling["metric"] == "fork_s"] if not scaling.empty else scaling
    if fits.empty:
        return "no fit: fewer than 3 array sizes of fork runs"
    ok = runs[(runs["status"] == "ok") & (runs["method"] == "fork")].dropna(subset=["fork_s"])
    for i, (_, fit) in enumerate(fits.iterrows()):
        mine = ok[ok["point_id"].isin(fit["point_ids"].split(";")) & (ok["node_type"] == fit["node_type"])]
        color = f"C{i}"
        ax.plot(mine["size_mib"] / 1024, mine["fork_s"] * 1e3, "o", color=color, alpha=0.5)
        gib = np.array([fit["min_mib"], fit["max_mib"]]) / 1024
        label = (
            f"{fit['line']}: {fit['slope_ms_per_gib']:.3g} ms/GiB + {fit['intercept_ms']:.2g} ms, R² {fit['r2']:.3f}"
        )
        ax.plot(gib, fit["slope_ms_per_gib"] * gib + fit["intercept_ms"], "-", color=color, label=label)
    top = fits["max_mib"].max() / 1024
    for j, (label, low, high) in enumerate(FORK_SLOPES):
        x = np.array([0, top])
        style = {"color": f"C{7 + j}", "linewidth": 0.8}
        if low == high:
            ax.plot(x, low * GB_PER_GIB * x, "--", label=label, **style)
        else:
            ax.fill_between(x, low * GB_PER_GIB * x, high * GB_PER_GIB * x, alpha=0.15, label=label, **style)
    for label, gib, ms in FORK_POINTS:
        ax.plot([gib], [ms], "k*", markersize=9, label=label)
    ax.set_xlabel("array size (GiB)")
    ax.set_ylabel(glossary.lookup("fork_s").label.replace("(s)", "(ms)"))
    ax.legend(fontsize="x-small")
    return ""


def write_latency(tables: dict, ax) -> str:
    """How long the writers' writes took: the share of a point's timed
    writes (every run of it, every writer) that took at least that long,
    a CCDF on log axes, one line per point; the baseline (no snapshot)
    dashed and black. A timed write is a writer's writes into one
    write_latency_kib span; its first counts from just before the snapshot
    begins, so the line's far end is what the snapshot's start (the fork
    call, a stop) or its end held a writer up. Buckets are 1/32 of a power
    of two wide."""
    runs, latency = tables["runs"], tables.get("latency", pd.DataFrame())
    if latency.empty:
        return "no run timed its writes"
    whole = latency[latency["latency_phase"] == "all"]
    ok = runs[runs["status"] == "ok"][["run_id", "point_id", "method"]]
    buckets = whole.merge(ok, on="run_id").groupby(["point_id", "method", "latency_ns"], as_index=False)
    buckets = buckets["latency_writes"].sum()
    labels = _labels(tables["points"].set_index("point_id", drop=False))
    for i, ((point_id, method), rows) in enumerate(buckets.groupby(["point_id", "method"], sort=False)):
        rows = rows.sort_values("latency_ns")
        at_least = rows["latency_writes"][::-1].cumsum()[::-1] / rows["latency_writes"].sum()
        style = {"color": "black", "linestyle": "--"} if method == "none" else {"color": f"C{i % 10}"}
        label = labels.get(point_id, point_id) + (" (baseline)" if method == "none" else "")
        ax.step(rows["latency_ns"] / 1e3, at_least, where="post", label=label, **style)
    ax.set_xscale("log")
    ax.set_yscale("log")
    spans = "/".join(
        str(int(kib)) for kib in sorted(tables["points"].get("write_latency_kib", pd.Series()).dropna().unique())
    )
    ax.set_xlabel(f"write latency (µs): a writer's writes into one {spans} KiB span of the array")
    ax.set_ylabel("share of writes at least this long")
    ax.legend(fontsize="x-small")
    return ""


def after_exit_copies(tables: dict, ax) -> str:
    """The seed's question per kernel and page backing: the share of the
    writers' write faults after the child exited that copied a page (bars,
    one per way the writers met the exit), and the share while the child
    lived beside each (black marks); 0 is reuse, 1 is a copy per fault.
    Counts from each point's records (writer_wpcopy_count and writer_minflt
    per phase); a cell with no after-exit faults or uncounted copies has no
    bar; the number over a bar is its after-exit faults, and a mark needs
    at least verdict.COPYING_MIN_PAGES faults while the child lived. Under
    software emulation these are counts, which emulation does not
    change."""
    cells = after_exit.cells(tables["points"])
    cells = cells.dropna(subset=["copy_share_after"])
    if cells.empty:
        return "no fork point counted copies after the child exited"
    groups = list(dict.fromkeys(zip(cells["kernel"], cells["backing"], strict=True)))
    scenarios = list(dict.fromkeys(cells["scenario"]))
    width = 0.8 / len(scenarios)
    for i, scenario in enumerate(scenarios):
        rows = cells[cells["scenario"] == scenario]
        offset = (i - (len(scenarios) - 1) / 2) * width
        x = [groups.index(cell) + offset for cell in zip(rows["kernel"], rows["backing"], strict=True)]
        bars = ax.bar(x, rows["copy_share_after"], width, label=f"after the exit: {scenario}", color=f"C{i % 10}")
        ax.bar_label(bars, [f"{n:,.0f}" for n in rows["writer_minflt_after_snapshot"]], fontsize="xx-small")
        # A share of a handful of faults says nothing: marked only from COPYING_MIN_PAGES faults.
        faults = rows["writer_minflt_during_snapshot"]
        during = (rows["copies_during_snapshot"] / faults).where(faults >= verdict.COPYING_MIN_PAGES)
        ax.plot(x, during, "k_", markersize=12, markeredgewidth=2, label="while the child lived" if i == 0 else None)
    ax.set_xticks(range(len(groups)), [f"{kernel}\n{backing}" for kernel, backing in groups], fontsize="x-small")
    ax.set_ylim(0, 1.15)
    ax.set_ylabel("write faults that copied (share)")
    ax.legend(fontsize="x-small")
    return ""


# A snapshot's objectives, and a pool's (its programs against the problem).
OBJECTIVE_NAMES = {**verdict.OBJECTIVES, **verdict.POOL_OBJECTIVES}
TIMES = matplotlib.ticker.FuncFormatter(lambda x, _: f"{x:g}x")


def _ratio_axis(axis) -> None:
    """A log axis of ratios, ticked at 1-2-5 steps and labelled '0.5x'."""
    axis.set_major_locator(matplotlib.ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(TIMES)
    axis.set_minor_formatter(matplotlib.ticker.NullFormatter())


def _objective_rows(tables: dict) -> pd.DataFrame:
    comparisons = tables.get("comparisons", pd.DataFrame())
    if comparisons.empty or "objective" not in comparisons:
        return comparisons
    rows = comparisons[comparisons["metric"].isin(list(OBJECTIVE_NAMES))].copy()
    context = lever_text.reference_contexts(rows)
    rows["lever"] = [
        f"{context[str(row['reference_label'])]}: {lever_text.lever_name(row)}".lstrip(": ")
        for _, row in rows.iterrows()
    ]
    return rows


def levers_figure(tables: dict, ax) -> str:
    """Each lever against its reference snapshot, per objective: one dot
    per round (the lever's run over the reference's run of the same round),
    and the median of those ratios with its distribution-free interval
    (the sign test's level)."""
    rows = _objective_rows(tables)
    if rows.empty:
        return "no lever was compared with a reference snapshot"
    rows = rows.sort_values(["lever", "metric"], ascending=False, kind="stable")
    names = [f"{row['lever']}: {OBJECTIVE_NAMES[row['metric']]}" for _, row in rows.iterrows()]
    for y, (_, row) in enumerate(rows.iterrows()):
        dots = [float(pair.split(":")[1]) for pair in str(row["round_ratios"]).split(";") if ":" in pair]
        ax.plot(dots, [y] * len(dots), "o", color="grey", alpha=0.5, markersize=4)
        ax.errorbar(
            row["ratio"],
            y,
            xerr=[[row["ratio"] - row["ci_low"]], [row["ci_high"] - row["ratio"]]],
            fmt="D",
            color="black" if row["resolved"] else "tab:orange",
            capsize=3,
        )
    ax.set_yticks(range(len(names)), names, fontsize="small")
    ax.axvline(1, color="grey", linestyle="--", linewidth=1)
    ax.set_xscale("log")
    _ratio_axis(ax.xaxis)
    ax.set_xlabel("lever / reference, per round (dots); median and interval (black: resolved; orange: open)")
    return ""


def tradeoff(tables: dict, ax) -> str:
    """The trade-off between the objectives: each lever's writers' time
    against its longest write, both over its reference snapshot's (medians
    of the per-round ratios), the memory it holds at its peak as the
    marker's area; the reference at (1, 1)."""
    rows = _objective_rows(tables)
    if rows.empty:
        return "no lever was compared with a reference snapshot"
    wide = rows.pivot_table(index="lever", columns="metric", values="ratio", aggfunc="first")
    if not {"writers_s", "write_max_s"} <= set(wide):
        return "no lever has both its writers' time and its longest write compared"
    memory = wide["snapshot_memory_mib"] if "snapshot_memory_mib" in wide else pd.Series(1.0, index=wide.index)
    ax.scatter(wide["writers_s"], wide["write_max_s"], s=80 * memory.fillna(1.0), alpha=0.6)
    for lever, row in wide.iterrows():
        ax.annotate(f"{lever}, memory {memory[lever]:.2g}x", (row["writers_s"], row["write_max_s"]), fontsize="x-small")
    ax.scatter([1], [1], s=80, marker="s", color="black", label="the reference (memory 1x)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    _ratio_axis(ax.xaxis)
    _ratio_axis(ax.yaxis)
    ax.set_xlabel("writers' time / reference's")
    ax.set_ylabel("longest write / reference's")
    ax.legend(fontsize="small", title="area: snapshot memory / reference's", title_fontsize="x-small")
    return ""


def model_checks(tables: dict, ax) -> str:
    """The cost model on a size it did not see: each term fitted on the
    smaller sizes and predicted at the largest, its error against what was
    measured there (a dot per method, pattern and write rate); the band is
    the largest error a term may have and still predict (docs/model.md)."""
    checks = tables.get("model_checks", pd.DataFrame())
    checks = checks.dropna(subset=["error"]) if "error" in checks else checks.iloc[0:0]
    if checks.empty:
        return "no term was checked on a size it did not see"
    writes = [
        "every run of the size" if pd.isna(rate) else f"{pattern}, {rate:,.0f}/s"
        for pattern, rate in zip(checks["pattern"], checks["write_rate"], strict=True)
    ]
    checks = checks.assign(
        percent=100 * checks["error"], case=checks["method"] + ", " + pd.Series(writes, index=checks.index)
    )
    sns.stripplot(data=checks, x="term", y="percent", hue="case", ax=ax, jitter=0.15, size=6)
    ax.axhspan(-100 * model.MAX_ERROR, 100 * model.MAX_ERROR, color="0.9", zorder=0)
    ax.axhline(0, color="black", linewidth=0.8)
    size = checks["size_mib"].iloc[0]
    ax.set_xlabel(f"term, predicted at {size:,.0f} MiB from {checks['fit_sizes_mib'].iloc[0]} MiB")
    ax.set_ylabel("error: predicted / measured - 1 (%)")
    ax.legend(fontsize="x-small", title="method, pattern, write rate", title_fontsize="x-small")
    return ""


FIGURES = {
    "writers_time": writers_time,
    "writer_faults": writer_faults,
    "kernel_time": kernel_time,
    "ratios": ratios_figure,
    "sharing_timeline": sharing_timeline,
    "copy_bandwidth": copy_bandwidth,
    "phase_faults": phase_faults,
    "phase_kernel_time": phase_kernel_time,
    "fork_scaling": fork_scaling,
    "write_latency": write_latency,
    "after_exit_copies": after_exit_copies,
    "levers": levers_figure,
    "tradeoff": tradeoff,
    "model_checks": model_checks,
}
# The statistic a figure's caption takes its interval level from.
LEVEL_OF = {
    "phase_faults": "copies_during_snapshot",
    "phase_kernel_time": "copy_delay_s_during_snapshot",
    "after_exit_copies": "copies_after_snapshot",
}


def render(name: str, tables: dict[str, pd.DataFrame], title: str):
    """(figure, axes, why it is empty or '') of one figure from the tables
    (points, ratios, runs, sharing)."""
    points = tables["points"]
    figure, ax = plt.subplots(figsize=(max(7, 0.6 * len(points) + 2), 4.2))
    ax.set_title(title)
    empty = "no point ran" if points.empty else ""
    if not empty:
        empty = FIGURES[name](tables, ax)
    if empty:
        ax.set_axis_off()
        ax.text(0.5, 0.5, f"nothing to draw: {empty}", ha="center", va="center", transform=ax.transAxes)
    return figure, ax, empty


def _save(figure, stem: Path) -> list[Path]:
    stem.parent.mkdir(parents=True, exist_ok=True)
    outputs = [stem.with_suffix(".png"), stem.with_suffix(".pdf")]
    for path in outputs:
        figure.savefig(path, bbox_inches="tight", dpi=150)
    plt.close(figure)
    return outputs


def draw(name: str, tables: dict[str, pd.DataFrame], stem: Path, title: str) -> tuple[list[Path], str]:
    """Draws and saves one figure; its files and, when there was nothing to
    draw, why."""
    figure, _, empty = render(name, tables, title)
    return _save(figure, stem), empty


def caption(name: str, experiment: str, description: str, points: pd.DataFrame, empty: str = "") -> str:
    """The figure's caption: what it shows, the experiment, and the level of
    its intervals (order statistics of the runs each point has)."""
    text = (FIGURES[name].__doc__ or "").strip().replace("\n", " ")
    text = " ".join(text.split())
    if empty:
        return f"{text} Experiment `{experiment}`: {description.strip()} Nothing to draw: {empty}."
    metric = LEVEL_OF.get(name, "writers_s")
    runs, levels = int(points["n"].sum()), points.get(f"{metric}_ci_level", pd.Series(dtype=float)).dropna()
    level = f"{100 * levels.min():.1f}%" if not levels.empty else "no"
    flagged = int((_flags(points) != "").sum())
    noise = (
        f" {flagged} points are marked (hatched, named): oversubscribed, more of their threads wanted a CPU at "
        "once than the machine has; unstable, their writers' time varied by more than "
        f"{100 * verdict.NOISE_CV:g}% (CV), or cpu-bound, their writers waited for a CPU more than "
        f"{100 * verdict.CPU_WAIT_SHARE:g}% of their time."
        if flagged
        else ""
    )
    return (
        f"{text} Experiment `{experiment}`: {description.strip()} {runs} runs of {len(points)} points; "
        f"bars are medians, whiskers distribution-free intervals for the median of at least {level} "
        f"confidence.{noise}"
    )


def sidecar(path: Path, name: str, runs: pd.DataFrame, config_hash: str, caption_text: str) -> None:
    """What a figure was drawn from: config hash, rows, commit, source."""
    info = {
        "figure": name,
        "config_hash": config_hash,
        "caption": caption_text,
        "rows": len(runs),
        "run_ids": sorted(runs["run_id"]) if "run_id" in runs else [],
        "git_commits": sorted(runs["git_commit"].dropna().astype(str).unique()) if "git_commit" in runs else [],
        "source_hashes": sorted(runs["source_hash"].dropna().astype(str).unique()) if "source_hash" in runs else [],
    }
    Path(path).write_text(json.dumps(info, indent=1) + "\n")


def draw_comparison(table: pd.DataFrame, stem: Path, title: str) -> list[Path]:
    """B / A per point and metric, with the interval (compare.py)."""
    figure, ax = plt.subplots(figsize=(7, 4.2))
    ax.set_title(title)
    if not table.empty:
        for offset, (metric, rows) in enumerate(table.groupby("metric", sort=False)):
            ax.errorbar(
                rows["ratio"],
                [f"{p}" for p in rows["point"]],
                xerr=[rows["ratio"] - rows["ci_low"], rows["ci_high"] - rows["ratio"]],
                fmt="os"[offset % 2],
                capsize=3,
                label=glossary.lookup(metric).label,
            )
        ax.axvline(1, color="grey", linestyle="--", linewidth=1)
        ax.set_xscale("log")
        ax.legend()
    ax.set_xlabel("B / A (median with its interval; below 1: B is faster)")
    return _save(figure, stem)
