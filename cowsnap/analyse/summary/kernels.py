"""After the exit, by kernel and page backing: the seed's question per cell."""

from __future__ import annotations

import pandas as pd

from cowsnap.analyse import after_exit, verdict
from cowsnap.analyse.summary.words import cell_counts, reason
from cowsnap.analyse.text import fmt, fmt_count, section, table


def after_exit_answer(cells: pd.DataFrame) -> list[str]:
    """The answer's line on the seed's question: per kernel measured, the
    backings by their verdict after the exit (a backing whose scenarios
    differ names each scenario's); never a word for a kernel or backing
    that was not measured. The counts are in After the exit."""
    if cells.empty:
        return []
    kernels = []
    for (kernel, where), cells_here in cells.groupby(["kernel", "where"], sort=False):
        by_word: dict[str, list[str]] = {}
        for backing, group in cells_here.groupby("backing", sort=False):
            words = list(dict.fromkeys(group["word"]))
            if len(words) == 1:
                by_word.setdefault(words[0], []).append(backing)
            else:
                mixed = ", ".join(f"{cell['word']} {cell['scenario']}" for _, cell in group.iterrows())
                by_word.setdefault(f"{backing}: {mixed}", [])
        parts = [f"{word} on {', '.join(backings)}" if backings else word for word, backings in by_word.items()]
        kernels.append(f"Linux {kernel}, {where}: {'; '.join(parts)}")
    return [f"- **After the child exits**, per kernel and backing measured: {'. '.join(kernels)} (see After the exit)."]


def by_kernel(points: pd.DataFrame) -> list[str]:
    """The after-exit verdict per kernel x backing x scenario, with the
    copies while the child lived beside it (counts only: a VM under TCG
    gives no times), then the backings measured where it copies, ranked."""
    cells = after_exit.cells(points)
    if cells.empty:
        return []
    lines = section(
        "After the exit, by kernel and page backing",
        "Copies: writer_wpcopy_count per phase (delay accounting); faults: writer_minflt; splits: thp_split_pmd; "
        "reuses: pgreuse (whole machine); the verdict's thresholds are those of Is it copying?; figure "
        "`<experiment>-after_exit_copies`. Why the kernels differ: docs/findings.md.",
    )
    rows = [
        [
            f"{cell['kernel']} ({cell['where']})",
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
        lines += ["", "Where the after-exit writes copy, the backings measured there, fewest copies first:", ""]
    for kernel, where, scenario, order in ranked:
        parts = []
        for _, cell in order.iterrows():
            timed = "" if "tcg" in where else f", writers after the exit {fmt(cell['writers_s_after_snapshot'])} s"
            parts.append(f"{cell['backing']} ({cell_counts(cell)}{timed})")
        lines.append(f"- Linux {kernel} ({where}), {scenario}: " + "; then ".join(parts) + ".")
    return lines + [""]
