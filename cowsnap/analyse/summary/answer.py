"""The answer in a few lines, each computed from the tables below it."""

from __future__ import annotations

import pandas as pd

from cowsnap.analyse import after_exit
from cowsnap.analyse.summary import avoid
from cowsnap.analyse.summary.kernels import after_exit_answer
from cowsnap.analyse.summary.words import (
    copied_memory,
    fork_phases,
    most_like_the_seed,
    noise_counts,
    phase_words,
    rows_with,
    tail_words,
)
from cowsnap.analyse.text import fmt, fmt_count


def the_answer(points: pd.DataFrame, comparisons: pd.DataFrame, scaling: pd.DataFrame | None = None) -> list[str]:
    """The answer in a few lines, each computed from the tables below it."""
    lines = ["## The answer", ""]  # the document's first lines: at most 12 with its title
    during, _ = (most_like_the_seed(rows) for rows in fork_phases(points))
    if not during.empty:
        row = during.iloc[0]
        lines.append(
            f"- **While the child holds its snapshot** ({row['experiment']}: {row['label']}): "
            f"{phase_words(row, '_during_snapshot')}; the snapshot copied {copied_memory(row)}."
        )
    lines += after_exit_answer(after_exit.cells(points))
    if not during.empty and not pd.isna(during.iloc[0].get("write_max_s")):
        lines.append(f"- **What a writer waits** ({during.iloc[0]['label']}): {tail_words(points, during.iloc[0])}.")
    lines += avoid.answer_lines(points, comparisons)
    forks = scaling[(scaling["metric"] == "fork_s")] if scaling is not None and not scaling.empty else None
    if forks is not None and not forks.empty:
        parts = [
            f"{fit['line']} {fmt(fit['slope_ms_per_gib'])} ms/GiB (R² {fit['r2']:.3f}, "
            f"{fmt_count(fit['min_mib'])}-{fmt_count(fit['max_mib'])} MiB)"
            for _, fit in forks.iterrows()
        ]
        lines.append(f"- **The fork() call** grows by {'; '.join(parts)} (see How fork scales).")
    if "writers_s_cv" in points:
        timed = rows_with(points, "writers_s_cv")
        unstable, bound, explained = noise_counts(timed)
        lines.append(
            f"- **Noise**: {unstable} of {len(timed)} points unstable ({explained} explained by the machine's own "
            f"measures), {bound} cpu-bound"
            + (": read their times with care (see Noise)." if unstable or bound else ": the machine was quiet enough.")
        )
    if len(lines) == 2:
        lines.append("- Nothing ran that answers it.")
    return lines + [""]
