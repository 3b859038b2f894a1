"""How fork scales: the fork() call and the after-exit faults against the array
size, beside published costs."""

from __future__ import annotations

import pandas as pd

from cowsnap.analyse import verdict
from cowsnap.analyse.figures import FORK_POINTS, FORK_SLOPES
from cowsnap.analyse.summary.words import why_no_line
from cowsnap.analyse.text import fmt, fmt_count, table

# Published fork() costs the summary sets a fit against (the figure's marks).
PUBLISHED = "; ".join(label for label, *_ in (*FORK_SLOPES, *FORK_POINTS))


def how_fork_scales(scaling: pd.DataFrame) -> list[str]:
    """The fork call and the writers' after-exit fault cost against the
    array size, per page backing: the fitted line, its R^2 and residuals,
    over the sizes measured only."""
    if scaling is None or scaling.empty:
        return []
    lines = ["## How fork scales", ""]
    lines.append(
        "Least-squares lines over every run (scaling.csv), valid over the sizes measured only, never beyond; "
        f"for comparison, {PUBLISHED}. R² under {verdict.GOOD_FIT}: not a line; cap: the most R² the runs' spread "
        "at each size allows (more runs narrow the slope's interval, a quieter machine lifts the cap). The "
        "residuals by size are in scaling.csv."
    )
    lines.append("")
    words = {"fork_s": "fork() call", "writers_s_after_snapshot": "writers after the child exited"}
    rows = []
    for _, fit in scaling.iterrows():
        good = verdict.GOOD_FIT
        quality = f"{fit['r2']:.3f}" + ("" if fit["r2"] >= good else f", not a line: {why_no_line(fit)}")
        rows.append(
            [
                fit["experiment"],
                fit["line"],
                words.get(fit["metric"], fit["metric"]),
                f"{fmt(fit['slope_ms_per_gib'])} ms/GiB + {fmt(fit['intercept_ms'])} ms",
                quality,
                f"{fmt(fit['max_residual_ms'])} ms",
                f"{fmt_count(fit['min_mib'])}-{fmt_count(fit['max_mib'])} MiB, {fmt_count(fit['n'])} runs",
            ]
        )
    lines += table(["experiment", "points", "what", "line", "R²", "largest residual", "measured"], rows)
    return lines + [""]
