"""What the runs cannot tell apart: each open comparison of a lever with its
reference, and the ratios these runs would have resolved."""

from __future__ import annotations

import pandas as pd

from cowsnap.analyse import verdict
from cowsnap.analyse.summary.levers import lever_name, reference_contexts, share, within
from cowsnap.analyse.text import fmt, section, table


def cannot_tell_apart(comparisons: pd.DataFrame) -> list[str]:
    """Every open comparison on an objective, with the ratios these runs
    would have resolved."""
    if comparisons.empty:
        return []
    rows = comparisons[comparisons["metric"].isin(list(verdict.OBJECTIVES)) & ~comparisons["resolved"].astype(bool)]
    # Those within NEGLIGIBLE of each other are counted, not listed: they are the same for any use.
    alike = rows.apply(within, axis=1) < verdict.NEGLIGIBLE if not rows.empty else pd.Series(dtype=bool)
    same, rows = rows[alike], rows[~alike]
    if rows.empty and same.empty:
        return []
    lines = section(
        "What the runs cannot tell apart",
        "Each open comparison of a lever with its reference (How to avoid it): how far apart the two can be, the "
        "interval's farther end, and the true ratios these runs would have resolved at the same level, given "
        "their spread (docs/statistics.md).",
    )
    contexts = {
        label: context
        for _, group in rows.groupby("experiment", sort=False)
        for label, context in reference_contexts(group).items()
    }
    body = [
        [
            row["experiment"],
            f"{contexts[str(row['reference_label'])]}: {lever_name(row)}".lstrip(": "),
            verdict.OBJECTIVES[row["metric"]],
            f"within {share(within(row))}",
            f"below {fmt(row['detectable_below'])}x or above {fmt(row['detectable_above'])}x",
            f"{int(row['rounds'])}, {100 * row['ci_level']:.1f}%",
        ]
        for _, row in rows.iterrows()
    ]
    header = ["experiment", "lever", "objective", "apart", "resolvable", "rounds, level"]
    lines += table(header, body) if body else []
    if not same.empty:
        lines += ["", f"{len(same)} more open comparisons are within {share(verdict.NEGLIGIBLE)} of their reference."]
    return lines + [""]
