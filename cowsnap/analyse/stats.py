"""Medians with distribution-free intervals, ratios to a baseline, and the
floor a snapshot cannot beat: the one statistics pass, whose tables the
figures and the summary read.

Few runs per point and a skewed, noisy distribution (one slow run in five is
common on a shared machine) call for the median, not the mean. Its interval
comes from order statistics: [x(j), x(n+1-j)] covers the true median with a
probability that depends only on n and j (a binomial sum), so every
interval carries its real confidence level: 95% where the runs allow it,
less where they do not (with 5 runs, [min, max] is 93.8%; with 3, 75%).
"""

from __future__ import annotations

from math import comb

import numpy as np
import pandas as pd

from cowsnap.analyse import glossary
from cowsnap.analyse.labels import POINT, label, point_labels, settings_of, varying_axes
from cowsnap.analyse.verdict import (
    ALSO_COMPARED,
    COPY_FAULT_SPREAD,
    CPU_WAIT_SHARE,
    GOOD_FIT,
    HOST_TOOK_SHARE,
    NOISE_CV,
    OBJECTIVES,
    OUTLIER_Z,
    POOL_OBJECTIVES,
    STEAL_SHARE,
)

CONFIDENCE = 0.95
# A ratio to the baseline is paired run by run (the point's n-th run over
# the baseline's n-th run, neighbours in the schedule) when at least this
# many pairs exist; drift between rounds then cancels.
MIN_PAIRS = 3


def order_statistic_interval(n: int, confidence: float = CONFIDENCE) -> tuple[int, float]:
    """(j, level): [x(j), x(n+1-j)] (1-based) is the narrowest symmetric
    interval for the median whose level reaches `confidence`, or [min, max]
    with the level it has when n is too small."""
    best = (1, 1 - 2 * 0.5**n) if n > 1 else (1, 0.0)
    for j in range(1, n // 2 + 1):
        level = 1 - 2 * sum(comb(n, i) for i in range(j)) / 2**n
        if level >= confidence:
            best = (j, level)
    return best


def median_interval(values, confidence: float = CONFIDENCE) -> tuple[float, float, float, float]:
    """(median, low, high, level) of the finite values; NaNs when there are none."""
    data = np.sort(np.asarray(pd.Series(values, dtype=float).dropna()))
    if data.size == 0:
        return (np.nan, np.nan, np.nan, np.nan)
    j, level = order_statistic_interval(data.size, confidence)
    return (float(np.median(data)), float(data[j - 1]), float(data[data.size - j]), level)


def ratio_interval(values, baseline, confidence: float = CONFIDENCE) -> tuple[float, float, float, float]:
    """median(values) / median(baseline), with the interval both medians'
    intervals give: [low / baseline high, high / baseline low]. It covers
    the true ratio whenever both cover their medians: at least the product
    of their levels (the runs are independent)."""
    median, low, high, level = median_interval(values, confidence)
    b_median, b_low, b_high, b_level = median_interval(baseline, confidence)
    if np.isnan(median) or np.isnan(b_median) or b_median <= 0 or b_low <= 0:
        return (np.nan, np.nan, np.nan, np.nan)
    return (median / b_median, low / b_high, high / b_low, level * b_level)


def round_ratios(values: pd.Series, reference: pd.Series) -> pd.Series:
    """values over reference, round by round (both indexed by repetition:
    the n-th runs share a round of the schedule), in round order; a round
    without both, or with a reference not above 0, gives none."""
    values, reference = (v[~v.index.duplicated()] for v in (values, reference))
    pairs = pd.concat([values.rename("a"), reference.rename("b")], axis=1, join="inner").dropna()
    pairs = pairs[pairs["b"] > 0]
    return (pairs["a"] / pairs["b"]).sort_index()


def paired_ratio_interval(values: pd.Series, baseline: pd.Series, confidence: float = CONFIDENCE) -> tuple:
    """The median of the run-by-run ratios (round_ratios) with its
    distribution-free interval; NaNs with fewer than MIN_PAIRS pairs."""
    ratios = round_ratios(values, baseline)
    return median_interval(ratios, confidence) if len(ratios) >= MIN_PAIRS else (np.nan,) * 4


def ratio_columns(metric: str, values, baseline_values, paired: bool = False) -> dict:
    """One metric's ratio (values over baseline_values) with its interval,
    as the columns of a row of a ratio table: the median of the run-by-run
    ratios when paired (both indexed by repetition) and enough pairs exist,
    else the ratio of medians."""
    ratio = paired_ratio_interval(values, baseline_values) if paired else (np.nan,) * 4
    paired = not np.isnan(ratio[0])
    if not paired:
        ratio = ratio_interval(values, baseline_values)
    better = glossary.lookup(metric).better
    return {
        "metric": metric,
        "better": better,
        "ratio": ratio[0],
        "ci_low": ratio[1],
        "ci_high": ratio[2],
        "ci_level": ratio[3],
        "paired": paired,
    }


def variation(values) -> float:
    """Coefficient of variation of the values present (NaN below two)."""
    data = pd.Series(values, dtype=float).dropna()
    return float(data.std(ddof=1) / data.mean()) if len(data) >= 2 and data.mean() > 0 else np.nan


def noise(values) -> dict:
    """The spread of one point's runs: coefficient of variation, the runs
    whose modified z-score passes OUTLIER_Z (flagged, never dropped), and
    whether it is unstable (cowsnap.analyse.verdict's noise rules)."""
    data = pd.Series(values, dtype=float).dropna()
    if len(data) < 2 or data.mean() <= 0:
        return {"cv": np.nan, "outliers": 0, "unstable": False}
    cv = variation(data)
    mad = float((data - data.median()).abs().median())
    outliers = int((0.6745 * (data - data.median()).abs() / mad > OUTLIER_Z).sum()) if mad > 0 else 0
    return {"cv": cv, "outliers": outliers, "unstable": cv > NOISE_CV}


def noise_cause(group: pd.DataFrame) -> dict:
    """What the machine measured beside one point's runs that explains their
    spread (verdict's noise rules; each the most over its runs), and where in the run the spread lies:
    machine_explains, and noise_cause in words ('none the machine measured'
    when no measure passed its rule)."""
    causes = []
    for column, what in (("fresh_page_us", "fresh page cost"), ("memcpy_gbps", "memory bandwidth")):
        spread = variation(group[column]) if column in group else np.nan
        if spread > NOISE_CV:
            causes.append(f"{what} varied {100 * spread:.0f}%")
    if "host_reported_kib" in group and "size_mib" in group:
        took = group["host_reported_kib"].max()
        if took >= HOST_TOOK_SHARE * group["size_mib"].iloc[0] * 1024:
            causes.append(f"memory reported to the host: {took / 1024:.0f} MiB")
    if "steal_share" in group:
        stolen = group["steal_share"].max()
        if stolen >= STEAL_SHARE:
            causes.append(f"steal up to {100 * stolen:.0f}% of the CPU time")
    if "writer_cpu_wait_share" in group:
        waited = group["writer_cpu_wait_share"].max()
        if waited > CPU_WAIT_SHARE:
            causes.append(f"CPU wait up to {100 * waited:.0f}%")
    words = "; ".join(causes) or "none the machine measured"
    if {"copy_delay_s", "copies"} <= set(group) and (group["copies"] > 0).all():
        per_copy = group["copy_delay_s"] / group["copies"] * 1e6
        if variation(per_copy) > NOISE_CV:
            words += f"; {COPY_FAULT_SPREAD}: {per_copy.min():.2g}-{per_copy.max():.2g} µs"
    return {"machine_explains": bool(causes), "noise_cause": words}


def resolved(a: tuple, b: tuple) -> bool:
    """Two (value, low, high, ...) intervals that do not overlap."""
    return bool(a[2] < b[1] or b[2] < a[1])


def point_table(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per point of the ok runs (and node type): its settings, its
    label, n, and per metric the median, ci_low, ci_high and ci_level."""
    ok = runs[runs["status"] == "ok"] if "status" in runs else runs
    labels = point_labels(runs)
    rows = []
    for key, group in ok.groupby(POINT, sort=False):
        settings = settings_of(group)
        row = {**dict(zip(POINT, key, strict=True)), **settings, "label": labels[key], "n": len(group)}
        row["baseline_id"] = group["baseline_id"].iloc[0] if "baseline_id" in group else ""
        for metric in glossary.METRICS:
            if metric in group:
                interval = median_interval(group[metric])
                row[metric], row[f"{metric}_ci_low"], row[f"{metric}_ci_high"] = interval[:3]
                row[f"{metric}_ci_level"] = interval[3]
        for text in ("copies_source", "online_cpus", "release_errno", "timed", "virtualized", "oversubscribed",
                     "writers_wait"):  # fmt: skip
            if text in group:
                row[text] = group[text].iloc[0]
        if "writers_s" in group:
            spread = noise(group["writers_s"])
            row["writers_s_cv"], row["writers_s_outliers"], row["unstable"] = spread.values()
            if row["unstable"]:
                row.update(noise_cause(group))
        if "writer_cpu_wait_share" in row:
            row["cpu_bound"] = bool(row["writer_cpu_wait_share"] > CPU_WAIT_SHARE)
        rows.append(row)
    return pd.DataFrame(rows)


def floor(runs: pd.DataFrame, points: pd.DataFrame) -> pd.DataFrame:
    """Per point with a no-snapshot baseline: the least its writers' time
    could be with a snapshot of the array on this machine, a bound no run
    can beat. The writers need at least what they need without a snapshot
    (the baseline's interval low end, B); the copy needs C core-seconds
    (the array at the measured one-thread memcpy speed). On P CPUs the
    writers leave (P - writers) x B core-seconds free; what of the copy does
    not fit there is shared by all P CPUs at best:
    floor = B + max(0, C - (P - writers) x B) / P.
    """
    out = points.copy()
    if not {"size_mib", "writers", "copiers"} <= set(out):  # no benchmark point (watch points only)
        return out.assign(copy_floor_s=np.nan, copy_on_idle_cores=False, floor_s=np.nan, writers_over_floor=np.nan)
    ok = runs[runs["status"] == "ok"]
    bandwidth = ok.groupby(["experiment", "node_type"])["memcpy_gbps"].median() if "memcpy_gbps" in ok else None
    cpus = ok.groupby(["experiment", "node_type"])["online_cpus"].first() if "online_cpus" in ok else None
    copy_s, idle_cores, floor_s = [], [], []
    by_id = out.set_index(["experiment", "point_id", "node_type"])
    for _, row in out.iterrows():
        key = (row["experiment"], row["node_type"])
        gbps = bandwidth.get(key, np.nan) if bandwidth is not None else np.nan
        seconds = row["size_mib"] * 2**20 / (gbps * 1e9) if gbps and not np.isnan(gbps) else np.nan
        processors = cpus[key] if cpus is not None and key in cpus else np.nan
        base_key = (row["experiment"], row["baseline_id"], row["node_type"])
        base = by_id.loc[base_key] if row["baseline_id"] and base_key in by_id.index else None
        baseline_s = base["writers_s_ci_low"] if base is not None and base["method"] == "none" else np.nan
        spare = max(0.0, processors - row["writers"]) * baseline_s
        copy_s.append(seconds)
        idle_cores.append(bool(processors >= row["writers"] + row["copiers"]))
        # No memcpy bandwidth measured (memcpy_mib=0): no floor, not the baseline alone.
        floor_s.append(baseline_s + max(0.0, seconds - spare) / processors if not np.isnan(seconds) else np.nan)
    out["copy_floor_s"] = copy_s
    out["copy_on_idle_cores"] = idle_cores
    out["floor_s"] = floor_s
    out["writers_over_floor"] = out["writers_s"] / out["floor_s"]
    return out


def ratio_table(runs: pd.DataFrame, points: pd.DataFrame, metrics=("writers_s", "writer_stime_s")) -> pd.DataFrame:
    """Each point against its baseline point: ratio of medians with its
    interval and level, whether it is resolved from 1, and the metric's
    better direction."""
    ok = runs[runs["status"] == "ok"]
    rows = []
    if points.empty or "baseline_id" not in ok:
        return pd.DataFrame(rows)
    runs_of = {key: group for key, group in ok.groupby(POINT, sort=False)}
    for _, point in points.iterrows():
        baseline_id = point["baseline_id"]
        if not isinstance(baseline_id, str) or not baseline_id or baseline_id == point["point_id"]:
            continue
        base_key = (point["experiment"], baseline_id, point["node_type"])
        if base_key not in runs_of:
            continue
        group, baseline = runs_of[(point["experiment"], point["point_id"], point["node_type"])], runs_of[base_key]
        for metric in metrics:
            if metric not in group:
                continue
            ratio = ratio_columns(
                metric,
                group.set_index("repetition")[metric] if "repetition" in group else group[metric],
                baseline.set_index("repetition")[metric] if "repetition" in baseline else baseline[metric],
                paired="repetition" in group and "repetition" in baseline,
            )
            if np.isnan(ratio["ratio"]):
                continue
            rows.append(
                {
                    "experiment": point["experiment"],
                    "point_id": point["point_id"],
                    "node_type": point["node_type"],
                    "label": point["label"],
                    "baseline_id": baseline_id,
                    "baseline_method": baseline["method"].iloc[0],
                    **ratio,
                    "resolved": bool(ratio["ci_low"] > 1 or ratio["ci_high"] < 1),
                    "n": len(group),
                    "n_baseline": len(baseline),
                }
            )
    return pd.DataFrame(rows)


def detectable(median: float, low: float, high: float) -> tuple[float, float]:
    """(below, above): the true ratios these runs would have resolved from
    1, given their spread. A lever whose true ratio were r would have shown
    the interval [low, high] moved by r / median; it leaves 1 behind once
    r < median / high or r > median / low."""
    if not (low > 0 and high > 0 and median > 0):
        return (np.nan, np.nan)
    return (median / high, median / low)


def compare_paired(values: pd.Series, reference: pd.Series, confidence: float = CONFIDENCE) -> dict:
    """One lever against its reference on one metric, round by round:
    values and reference indexed by repetition (the n-th runs of both share
    a round of the schedule). The median of the per-round ratios with its
    distribution-free interval, whose level is the sign test's: the
    interval leaves 1 out exactly when a two-sided sign test on the rounds
    rejects "no difference" at 1 - level. NaNs with fewer than MIN_PAIRS
    rounds."""
    ratios = round_ratios(values, reference)
    ratio, low, high, level = median_interval(ratios, confidence) if len(ratios) >= MIN_PAIRS else (np.nan,) * 4
    below, above = detectable(ratio, low, high)
    return {
        "ratio": ratio,
        "ci_low": low,
        "ci_high": high,
        "ci_level": level,
        "resolved": bool(low > 1 or high < 1),
        "detectable_below": below,
        "detectable_above": above,
        "rounds": len(ratios),
        "round_ratios": ";".join(f"{r}:{x:.4g}" for r, x in ratios.items()),
    }


def comparison_table(runs: pd.DataFrame, points: pd.DataFrame) -> pd.DataFrame:
    """Each lever against its reference snapshot (runs' reference_id, from
    the experiment's `reference`), on every objective and ALSO_COMPARED
    metric it has (a pool's program: POOL_OBJECTIVES), round by round (compare_paired): how to avoid it is
    concluded from these rows. `better` says whether the resolved
    difference is an improvement in the metric's better direction."""
    needed = {"reference_id", "repetition"}
    ok = runs[runs["status"] == "ok"] if "status" in runs else runs
    if points.empty or not needed <= set(ok) or not ok["reference_id"].fillna("").astype(str).str.len().any():
        return pd.DataFrame()
    runs_of = {key: group.set_index("repetition") for key, group in ok.groupby(POINT, sort=False)}
    label_of = {tuple(row[POINT]): row["label"] for _, row in points.iterrows()}
    rows = []
    for key, group in runs_of.items():
        reference_id = group["reference_id"].iloc[0]
        if not isinstance(reference_id, str) or not reference_id:
            continue
        reference_key = (key[0], reference_id, key[2])
        if reference_key not in runs_of or key not in label_of:
            continue
        reference = runs_of[reference_key]
        for metric in (*OBJECTIVES, *ALSO_COMPARED, *POOL_OBJECTIVES):
            if metric not in group or metric not in reference:
                continue
            compared = compare_paired(group[metric], reference[metric])
            if np.isnan(compared["ratio"]):
                continue
            better = glossary.lookup(metric).better
            improved = compared["ci_high"] < 1 if better == "lower" else compared["ci_low"] > 1
            rows.append(
                {
                    **dict(zip(POINT, key, strict=True)),
                    "label": label_of[key],
                    "reference_id": reference_id,
                    "reference_label": label_of.get(reference_key, reference_id),
                    "metric": metric,
                    "objective": metric in OBJECTIVES or metric in POOL_OBJECTIVES,
                    **compared,
                    "better": bool(compared["resolved"] and improved),
                }
            )
    return pd.DataFrame(rows)


# What scales with the array: the fork call, and the writers' fault cost
# after the child exited (every page still write-protected).
SCALING_METRICS = ("fork_s", "writers_s_after_snapshot")
MIN_SIZES = 3  # distinct array sizes a fit needs


def line_name(settings: dict) -> str:
    """A fitted line's name: its backing bare, any other key as key=value."""
    others = {key: value for key, value in settings.items() if key != "backing"}
    named = [str(settings["backing"])] if "backing" in settings else []
    return ", ".join(named + ([label(others, list(others))] if others else []))


def scaling_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Per line of an experiment's fork runs (the points that differ only
    in array size: one per value of its other varying keys, such as the page
    backing) and node type, where the size varies over at least MIN_SIZES
    sizes: a least-squares line of each
    SCALING_METRICS against the size, in ms per GiB, fitted to every run
    (slope, intercept, R^2, the largest residual and the median residual
    per size), the R^2 no line could pass given the runs' spread at each
    size (r2_ceiling), and the sizes it holds for (never extrapolated)."""
    ok = runs[(runs["status"] == "ok") & (runs.get("method") == "fork")] if "method" in runs else runs.iloc[0:0]
    if "write_rate" in ok:  # writes at a set rate last as long as write_s says: the cost model speaks for them
        ok = ok[pd.to_numeric(ok["write_rate"], errors="coerce").fillna(0) == 0]
    rows = []
    if ok.empty or "size_mib" not in ok:
        return pd.DataFrame(rows)
    lines = []  # (experiment, node type, the line's settings, its runs)
    for (experiment, node_type), runs_here in ok.groupby(["experiment", "node_type"], sort=False):
        keys = [key for key in varying_axes(runs_here) if key != "size_mib"] or ["backing"]
        for values, group in runs_here.groupby(keys, sort=False, dropna=False):
            values = values if isinstance(values, tuple) else (values,)
            lines.append((experiment, node_type, dict(zip(keys, values, strict=True)), group))
    for experiment, node_type, settings, group in lines:
        if group["size_mib"].nunique() < MIN_SIZES:
            continue
        backing = group["backing"].iloc[0]
        for metric in SCALING_METRICS:
            data = group[["size_mib", metric]].dropna() if metric in group else pd.DataFrame()
            if data["size_mib"].nunique() < MIN_SIZES if not data.empty else True:
                continue
            gib, ms = data["size_mib"].to_numpy() / 1024, data[metric].to_numpy() * 1e3
            slope, intercept = np.polyfit(gib, ms, 1)
            residual = ms - (slope * gib + intercept)
            total = float(((ms - ms.mean()) ** 2).sum())
            r2 = 1 - float((residual**2).sum()) / total if total > 0 else np.nan
            by_size = pd.Series(residual).groupby(data["size_mib"].to_numpy()).median()
            # No line fits better than the runs' own spread at each size allows.
            within = pd.Series(ms).groupby(data["size_mib"].to_numpy()).transform(lambda runs: runs - runs.mean())
            r2_ceiling = 1 - float((within**2).sum()) / total if total > 0 else np.nan
            rows.append(
                {
                    "experiment": experiment,
                    "line": line_name(settings),
                    "backing": backing,
                    "node_type": node_type,
                    "metric": metric,
                    "point_ids": ";".join(sorted(group["point_id"].unique())),
                    "slope_ms_per_gib": float(slope),
                    "intercept_ms": float(intercept),
                    "r2": r2,
                    "good_fit": bool(r2 >= GOOD_FIT),
                    "r2_ceiling": r2_ceiling,
                    "max_residual_ms": float(np.abs(residual).max()),
                    "residual_ms_by_mib": ";".join(f"{int(size)}:{value:.3g}" for size, value in by_size.items()),
                    "min_mib": int(data["size_mib"].min()),
                    "max_mib": int(data["size_mib"].max()),
                    "n": len(data),
                }
            )
    return pd.DataFrame(rows)
