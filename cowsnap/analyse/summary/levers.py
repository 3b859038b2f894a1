"""A lever in words: what it changes against a plain fork, its name against
its reference, and a comparison's cell ('0.31x (0.12-0.45) better')."""

from __future__ import annotations

from math import inf

import pandas as pd

from cowsnap.analyse import verdict
from cowsnap.analyse.text import fmt
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
        return "n/a"
    notes = [f"{fmt(over)}x the floor"]
    if over <= NEAR_FLOOR:
        notes.append(f"within {NEAR_FLOOR:g}x of the floor: little left to gain here")
    if point.get("populate") == "write-after-exit" and point.get("snapshot_end_s", 0) >= point.get("writers_s", inf):
        notes.append("nothing to populate: the child exited after the writers finished")
    return "; ".join(notes)


def is_plain(row: pd.Series) -> bool:
    return all(row.get(key, value) == value for key, value in PLAIN.items())


def lever_words(row: pd.Series, reference: dict | pd.Series = PLAIN) -> dict[str, str]:
    """What the point changes against the reference's settings: 'key=value' -> its words."""
    changes = [(key, row[key]) for key in PLAIN if key in row and key in reference and row[key] != reference[key]]
    return {f"{key}={value}": LEVERS[(key, value)] for key, value in changes if (key, value) in LEVERS}


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
