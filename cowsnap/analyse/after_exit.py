"""The seed's question per cell: after the snapshot child exited, do the
parent's write faults copy or reuse, by kernel, page backing and write
scenario. The kernel's rules for reusing a page of a large folio changed
between kernels, so an answer holds for the cell it was measured in only.

One row per cell (cells), from the fork points of points.csv; the summary
and the after_exit_copies figure both read it."""

from __future__ import annotations

import re

import pandas as pd

from cowsnap.analyse import verdict
from cowsnap.plan import patterns
from cowsnap.plan.point import folio_kib

COLUMNS = (
    "experiment", "kernel", "where", "backing", "scenario", "label",
    "copies_during_snapshot", "writer_minflt_during_snapshot", "copies_after_snapshot",
    "writer_minflt_after_snapshot", "reuses_after_snapshot", "splits_after_snapshot", "pages",
    "pages_written_during_snapshot", "writers_s_after_snapshot", "copies_source", "copy_share_after", "word",
)  # fmt: skip


THIS_MACHINE = "this machine"  # where a cell ran when not in a VM


def kernel_and_place(node_type: str) -> tuple[str, str]:
    """('6.12.57+deb13-amd64', 'a VM, tcg') from a points.csv node_type."""
    parts = str(node_type).split(" | ")
    if len(parts) < 2:  # a node type without its kernel: named as it is
        return str(node_type), "node type"
    kernel, virtual = parts[-2:]
    return kernel, THIS_MACHINE if virtual in ("none", "?") else f"a VM, {virtual}"


def scenario_of(row: pd.Series) -> str:
    """How the writers met the child's exit: all their writes after it, or
    a pattern's writes across it (touched_during: that share of the first
    pass while the child lived)."""
    if row.get("start") == "after_child":
        return AFTER_EXIT
    share = row.get("touched_during", "free")
    during = "across the exit" if str(share) == "free" else f"{100 * float(share):g}% of pass 1 before the exit"
    return f"{row.get('pattern')}, {during}"


def kernel_experiments(points: pd.DataFrame) -> list[str]:
    """Experiments whose fork points run on more than one kernel."""
    if "vm_kernel" not in points:
        return []
    fork = points[points["method"] == "fork"]
    return [name for name, group in fork.groupby("experiment", sort=False) if group["vm_kernel"].nunique() > 1]


def cells(points: pd.DataFrame) -> pd.DataFrame:
    """One row per kernel x backing x scenario whose writers faulted after
    the child exited: its counts while the child lived and after, the share
    of after-exit write faults that copied, and the verdict word. From the
    experiments that cross kernels when there are any, else from every
    fork point (the first of each cell in table order)."""
    if points.empty or "writer_minflt_after_snapshot" not in points:
        return pd.DataFrame(columns=COLUMNS)
    crossing = kernel_experiments(points)
    fork = points[points["method"] == "fork"]
    if crossing:
        fork = fork[fork["experiment"].isin(crossing)]
    if "hold" in fork:
        fork = fork[fork["hold"] != "writers"]
    fork = fork[fork["writer_minflt_after_snapshot"].fillna(0) > 0]
    rows = []
    for _, row in fork.iterrows():
        kernel, where = kernel_and_place(row["node_type"])
        cell = {key: row.get(key) for key in COLUMNS}
        copies, faults = row.get("copies_after_snapshot"), row["writer_minflt_after_snapshot"]
        counted = not pd.isna(copies)
        cell.update(
            kernel=kernel,
            where=where,
            scenario=scenario_of(row),
            copy_share_after=verdict.copy_share(copies, faults) if counted else float("nan"),
            word=verdict.copying_word(copies, faults) if counted else verdict.NOT_COUNTED_WORD,
        )
        rows.append(cell)
    table = pd.DataFrame(rows, columns=list(COLUMNS))
    table = table.drop_duplicates(["kernel", "where", "backing", "scenario"])
    order = sorted(table.index, key=lambda i: _order(table.loc[i]))
    return table.loc[order].reset_index(drop=True)


AFTER_EXIT = "written after the exit"  # the scenario of writers that start once the child exited


def kernel_order(kernel: str, where: str) -> tuple:
    """This machine first, then kernels by version."""
    return (where != THIS_MACHINE, tuple(int(n) for n in re.findall(r"\d+", kernel)[:3]))


def _order(cell: pd.Series) -> tuple:
    """This machine first, then kernels by version; backings from the
    smallest page up; writes after the exit, then by pattern."""
    backing = str(cell["backing"])
    size = {"4k": 4, "thp": 2048}.get(backing) or folio_kib(backing)
    after = cell["scenario"] == AFTER_EXIT
    names = list(patterns.PATTERNS)  # the order scenarios are listed in
    pattern = next((i for i, name in enumerate(names) if cell["scenario"].startswith(name)), len(names))
    return (*kernel_order(cell["kernel"], cell["where"]), size, not after, pattern, cell["scenario"])


def copying_cells(table: pd.DataFrame) -> pd.DataFrame:
    """The cells whose after-exit faults copied (partly or mostly)."""
    return table[table["word"].isin(verdict.COPIES_WORDS)]


def levers(table: pd.DataFrame) -> list[tuple[str, str, str, pd.DataFrame]]:
    """Where the after-exit phase copies: per kernel and scenario, every
    backing measured there, fewest after-exit copies first (then fewest
    faults): (kernel, where, scenario, ranked cells). Only what was
    measured in that kernel and scenario is ranked."""
    ranked = []
    copying = copying_cells(table)
    for (kernel, where, scenario), _ in copying.groupby(["kernel", "where", "scenario"], sort=False):
        same = table[(table["kernel"] == kernel) & (table["where"] == where) & (table["scenario"] == scenario)]
        same = same.dropna(subset=["copies_after_snapshot"])
        if len(same) > 1:
            order = same.sort_values(["copies_after_snapshot", "writer_minflt_after_snapshot"], kind="stable")
            ranked.append((kernel, where, scenario, order))
    return ranked
