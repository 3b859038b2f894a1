"""A cost model of a snapshot at sizes no run measured (docs/model.md).

Its terms, each from a sweep's points (points.csv) of one node type, page
backing and method:

- stall: the writers held up when the snapshot begins (snapshot_pause_s:
  the fork call, uffd's register and protect, the stop's whole copy),
  linear in the size (each size's median over its runs: the writes do
  not run then);
- duration: from the snapshot's start to its end (snapshot_end_s): the
  copy, linear in the size, slowed by the writes beside it,
  T = (a + b x size) / (1 - c x rate), fitted as T = a + b x size + c x W
  with W = rate x T the writes the snapshot lived through (c only where
  two rates or more were measured);
- copies (fork): the distinct pages written while the snapshot lives, from
  the write rate, the writers, the pattern and the duration
  (cowsnap.plan.patterns: N(1 - e^(-W/N)) for uniform writes);
- copy_path_s (fork): the writers' time in the COW-copy path, copies times
  the measured cost of one copy;
- memory_mib: the snapshot's peak memory (snapshot_memory_mib): its
  destination, the array's size, plus each copy's page.

Each term is checked on sizes it did not see: fitted on every size but the
largest, it predicts the largest, against what was measured there. A term
whose error there is over MAX_ERROR is not used to predict. The constants
used to predict are fitted on every size.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from cowsnap.analyse.figures import MODEL_FIT_SIZES
from cowsnap.plan import patterns
from cowsnap.plan.point import folio_kib

# The experiment whose points the model is fitted on by default.
EXPERIMENT = "scale"
# A term whose error on a held-out size is larger is not used to predict.
MAX_ERROR = 0.25
# Each term and the points.csv column it predicts.
TERMS = {
    "stall": "snapshot_pause_s",
    "duration": "snapshot_end_s",
    "copies": "copies_during_snapshot",
    "copy_path_s": "copy_delay_s_during_snapshot",
    "memory_mib": "snapshot_memory_mib",
}
SIZE_ONLY = ("stall",)  # checked against the median of the held-out size's points
FORK_ONLY = ("copies", "copy_path_s")  # the COW terms: a method whose writers fault on shared pages
GROUP = ["experiment", "node_type", "backing", "method"]
MIB_PER_GIB = 1024


def page_kib(backing: str) -> float:
    """The page a COW copy copies: 4 KiB, or the backing's folio."""
    return 4.0 if backing == "4k" else float(folio_kib(backing))


def modelled(points: pd.DataFrame) -> pd.DataFrame:
    """The points (or ok runs) the model speaks for: measured snapshots with
    drawn writes at a set rate (a strided pattern's pages follow no rate)."""
    needed = {*GROUP, "size_mib", "pattern", "write_rate", "writers", "snapshot_end_s"}
    if points.empty or not needed <= set(points.columns):
        return points.iloc[0:0]
    if "status" in points:
        points = points[points["status"] == "ok"]
    drawn = points["pattern"].map(lambda name: name in patterns.PATTERNS and not patterns.strided(name))
    ok = drawn & (pd.to_numeric(points["write_rate"], errors="coerce") > 0) & points["snapshot_end_s"].notna()
    return points[ok]


def rate_of(rows) -> pd.Series | float:
    """Writes a second of all writers together."""
    return rows["write_rate"].astype(float) * rows["writers"].astype(float)


def cost_per_copy(rows: pd.DataFrame) -> float:
    """The time in the COW-copy path per copy (s): all of it over all copies."""
    if "copies_during_snapshot" not in rows or TERMS["copy_path_s"] not in rows:
        return math.nan
    counted = rows.dropna(subset=["copies_during_snapshot", TERMS["copy_path_s"]])
    copies = counted["copies_during_snapshot"].sum()
    return float(counted[TERMS["copy_path_s"]].sum() / copies) if copies > 0 else math.nan


def runs_of(runs: pd.DataFrame, key: tuple) -> pd.DataFrame:
    """The modelled runs of one group."""
    return runs[(runs[GROUP] == pd.Series(dict(zip(GROUP, key, strict=True)))).all(axis=1)] if not runs.empty else runs


def constants(rows: pd.DataFrame, runs: pd.DataFrame) -> dict[str, float]:
    """One group's constants from its points, and from its runs the terms
    of the size alone (each size's median over every run of the group)."""
    found: dict[str, float] = {"sizes": float(rows["size_mib"].nunique()), "largest_mib": float(rows["size_mib"].max())}
    stall = runs.groupby("size_mib")[TERMS["stall"]].median().dropna()
    if len(stall) >= 2:
        found["stall_per_gib"], found["stall_intercept"] = np.polyfit(stall.index / MIB_PER_GIB, stall.values, 1)
    timed = rows.dropna(subset=[TERMS["duration"]])
    rates = rate_of(timed).nunique()
    found["rates"] = float(rates)
    if timed["size_mib"].nunique() >= 2:
        columns = [np.ones(len(timed)), timed["size_mib"] / MIB_PER_GIB]
        if rates >= 2:  # the writes' share of the duration is seen only across rates
            columns.append(rate_of(timed) * timed[TERMS["duration"]])
        fitted, *_ = np.linalg.lstsq(np.column_stack(columns), timed[TERMS["duration"]].to_numpy(float), rcond=None)
        found["duration_intercept"], found["duration_per_gib"] = fitted[0], fitted[1]
        found["duration_per_write"] = fitted[2] if rates >= 2 else 0.0
    found["cost_per_copy_s"] = cost_per_copy(rows)
    return {key: float(value) for key, value in found.items()}


def predict(found: dict[str, float], method: str, backing: str, size_mib: float, rate: float,
            pattern: str) -> dict[str, float]:  # fmt: skip
    """Each term at a size and a rate of writes (all writers together),
    from one group's constants (NaN where a term has no constants, or
    where the writes would never let the snapshot end)."""
    gib = size_mib / MIB_PER_GIB
    slowed = 1 - found.get("duration_per_write", 0.0) * rate
    out = {
        "stall": found.get("stall_intercept", math.nan) + found.get("stall_per_gib", math.nan) * gib,
        "duration": (found.get("duration_intercept", math.nan) + found.get("duration_per_gib", math.nan) * gib) / slowed
        if slowed > 0
        else math.nan,
    }
    copies = 0.0
    if method == "fork":
        pages = size_mib * 1024 / page_kib(backing)
        copies = patterns.distinct_pages(pattern, pages, rate * out["duration"])
        out["copies"] = copies
        out["copy_path_s"] = copies * found.get("cost_per_copy_s", math.nan)
    out["memory_mib"] = size_mib + copies * page_kib(backing) / 1024
    return out


def check_row(group: tuple, point: pd.Series, fit_sizes: str, term: str, predicted: float, measured: float) -> dict:
    experiment, node_type, backing, method = group
    return {
        "experiment": experiment, "node_type": node_type, "backing": backing, "method": method,
        "pattern": point["pattern"], "write_rate": point["write_rate"], "writers": point["writers"],
        "size_mib": point["size_mib"],
        "fit_sizes_mib": fit_sizes, "term": term, "predicted": predicted, "measured": measured,
        "error": predicted / measured - 1 if measured and not pd.isna(measured) else math.nan,
    }  # fmt: skip


def checks(points: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """Per group and point of the largest size: each term as predicted from
    the smaller sizes, against what was measured (a term of the size alone:
    against the median of the size's runs, once)."""
    rows = []
    points, runs = modelled(points), modelled(runs)
    for group, points_here in points.groupby(GROUP, sort=False) if not points.empty else []:
        largest = points_here["size_mib"].max()
        fit = points_here[points_here["size_mib"] < largest]
        if fit["size_mib"].nunique() < MODEL_FIT_SIZES:
            continue
        group_runs = runs_of(runs, group)
        found = constants(fit, group_runs[group_runs["size_mib"] < largest])
        fit_sizes = "-".join(f"{size:g}" for size in sorted(fit["size_mib"].unique()))
        held_out = points_here[points_here["size_mib"] == largest]
        for index, (_, point) in enumerate(held_out.iterrows()):
            rate = float(point["write_rate"]) * float(point["writers"])
            predicted = predict(found, group[3], group[2], largest, rate, point["pattern"])
            for term, value in predicted.items():
                if term in SIZE_ONLY:
                    if index == 0:
                        measured = group_runs.loc[group_runs["size_mib"] == largest, TERMS[term]].median()
                        row = check_row(group, point, fit_sizes, term, value, measured)
                        rows.append(row | {"pattern": "all", "write_rate": math.nan, "writers": math.nan})
                    continue
                rows.append(check_row(group, point, fit_sizes, term, value, point.get(TERMS[term], math.nan)))
    return pd.DataFrame(rows)


def table(points: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """model.csv: per group, the constants fitted on every size, and per
    term its largest error on the held-out size and whether it predicts."""
    held_out = checks(points, runs)
    rows = []
    points, runs = modelled(points), modelled(runs)
    for key, group in points.groupby(GROUP, sort=False) if not points.empty else []:
        if group["size_mib"].nunique() < 2:
            continue  # one size: no line to carry to another
        row = {**dict(zip(GROUP, key, strict=True)), **constants(group, runs_of(runs, key))}
        mine = held_out[(held_out[GROUP] == pd.Series(row)[GROUP]).all(axis=1)] if not held_out.empty else held_out
        for term in TERMS:
            if row["method"] != "fork" and term in FORK_ONLY:
                continue
            errors = mine[mine["term"] == term]["error"].dropna() if not mine.empty else pd.Series(dtype=float)
            row[f"{term}_error"] = float(errors.abs().max()) if not errors.empty else math.nan
            row[f"{term}_predicts"] = bool(not errors.empty and errors.abs().max() <= MAX_ERROR)
        rows.append(row)
    return pd.DataFrame(rows)
