"""After the exit, by kernel and page backing: the seed's question per cell."""

from __future__ import annotations

import re

import pandas as pd

from cowsnap.analyse import after_exit, verdict
from cowsnap.analyse.summary.words import cell_counts, reason
from cowsnap.analyse.text import fmt, fmt_count, section, table


def short_kernel(kernel: str, where: str) -> str:
    """A kernel as a reader names it: its version, and where it ran."""
    version = ".".join(re.findall(r"\d+", kernel)[:2])
    return f"{version} here" if where == after_exit.THIS_MACHINE else f"{version} in a VM"


def kernel_names(cells: pd.DataFrame) -> dict[tuple[str, str], str]:
    """(kernel, where) -> its short name, or its full release where two
    kernels would share a short name."""
    places = list(dict.fromkeys(zip(cells["kernel"], cells["where"], strict=True)))
    short = [short_kernel(kernel, where) for kernel, where in places]
    return {
        (kernel, where): name if short.count(name) == 1 else f"{kernel} {name.split(' ', 1)[1]}"
        for (kernel, where), name in zip(places, short, strict=True)
    }


def after_exit_answer(cells: pd.DataFrame) -> list[str]:
    """The answer's line on the seed's question: per kernel measured, what
    copies after the exit (a backing, or a backing's scenario where its
    scenarios differ) and what was not counted, then the kernels where
    every cell measured is not copying; never a word for a kernel or
    backing that was not measured. The counts and every cell's verdict are
    in After the exit."""
    if cells.empty:
        return []
    said, quiet = [], []
    names = kernel_names(cells)
    for (kernel, where), cells_here in cells.groupby(["kernel", "where"], sort=False):
        found: dict[str, list[str]] = {}  # verdict word -> what it holds for
        for backing, group in cells_here.groupby("backing", sort=False):
            for word in (verdict.COPYING_WORD, verdict.PARTLY_COPYING_WORD, verdict.NOT_COUNTED_WORD):
                hits = group[group["word"] == word]
                if len(hits) == len(group):  # every scenario of the backing: the backing names them
                    found.setdefault(word, []).append(backing)
                else:
                    found.setdefault(word, []).extend(f"{backing}, {cell['scenario']}" for _, cell in hits.iterrows())
        clauses = [f"{word} on {'; and on '.join(what)}" for word, what in found.items() if what]
        if clauses:
            said.append(f"{names[(kernel, where)]}: {'; '.join(clauses)}")
        else:
            quiet.append(names[(kernel, where)])
    if quiet:
        said.append(f"{', '.join(quiet)}: {verdict.NOT_COPYING_WORD} on every cell measured")
    return [f"- **After the child exits**, per kernel measured: {'. '.join(said)} (every cell: After the exit)."]


def by_kernel(points: pd.DataFrame) -> list[str]:
    """The after-exit verdict per kernel x backing x scenario, with the
    copies while the child lived beside it (counts only: a VM under TCG
    gives no times), then the backings measured where it copies, ranked."""
    cells = after_exit.cells(points)
    if cells.empty:
        return []
    names = kernel_names(cells)
    kernels = "; ".join(f"{name}: Linux {kernel}, {where}" for (kernel, where), name in names.items())
    lines = section(
        "After the exit, by kernel and page backing",
        "Copies: writer_wpcopy_count per phase (delay accounting); faults: writer_minflt; splits: thp_split_pmd; "
        "reuses: pgreuse (whole machine); the verdict's thresholds are those of Is it copying?; figure "
        f"`<experiment>-after_exit_copies`. Kernels: {kernels}. Why the kernels differ: docs/findings.md.",
    )
    rows = [
        [
            names[(cell["kernel"], cell["where"])],
            cell["backing"],
            cell["scenario"],
            f"{fmt_count(cell['copies_during_snapshot'])} of {fmt_count(cell['writer_minflt_during_snapshot'])}",
            f"{fmt_count(cell['copies_after_snapshot'])} of {fmt_count(cell['writer_minflt_after_snapshot'])}",
            fmt_count(cell["reuses_after_snapshot"]),
            fmt_count(cell["splits_after_snapshot"]) if cell["backing"] != "4k" else "",
            f"not counted: {reason(cell['copies_source'])}"
            if cell["word"] == verdict.NOT_COUNTED_WORD
            else cell["word"],
        ]
        for _, cell in cells.iterrows()
    ]
    header = ["kernel", "backing", "writes", "copies while the child lived (of faults)",
              "copies after the exit (of faults)", "reuses after", "splits after", "after the exit"]  # fmt: skip
    lines += table(header, rows)
    ranked = after_exit.levers(cells)
    if ranked:
        lines += ["", "Where the after-exit writes copy, the backings measured there, fewest copies first "
                  "(of the after-exit write faults):", ""]  # fmt: skip
    for kernel, where, scenario, order in ranked:
        parts = []
        for _, cell in order.iterrows():
            timed = "" if "tcg" in where else f", writers after the exit {fmt(cell['writers_s_after_snapshot'])} s"
            parts.append(f"{cell['backing']} ({cell_counts(cell)}{timed})")
        lines.append(f"- {names[(kernel, where)]}, {scenario}: " + "; then ".join(parts) + ".")
    return lines + [""]
