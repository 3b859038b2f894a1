"""At a larger size: the cost model's terms (model.csv) and how each did on
the size its fit did not see, with the command that carries them further."""

from __future__ import annotations

import pandas as pd

from cowsnap.analyse import model
from cowsnap.analyse.text import fmt, section, table


def error_words(row: pd.Series, term: str) -> str:
    """'8.9%' or '33%, not used': a term's largest held-out error ('' when it has none)."""
    error = row.get(f"{term}_error")
    if error is None or pd.isna(error):
        return ""
    used = "" if str(row.get(f"{term}_predicts")) == "True" else ", not used"
    return f"{100 * error:.2g}%{used}"


def at_a_larger_size(models: pd.DataFrame) -> list[str]:
    """One row per node type, backing and method the model was fitted on."""
    if models is None or models.empty:
        return []
    several = models["node_type"].nunique() > 1
    lines = section(
        "At a larger size",
        "The cost model (docs/model.md): each term fitted on the smaller sizes and checked on the largest, its "
        f"error there; a term over {100 * model.MAX_ERROR:.0f}% is not used. model.csv holds the constants, "
        "model_checks.csv each check; `cowsnap predict --size 300G --write-rate R` carries them to your size.",
    )
    rows = [
        [
            (f"{row['node_type']}: " if several else "") + f"{row['method']}, {row['backing']}",
            f"{fmt(1000 * row.get('stall_per_gib', float('nan')))} ms/GiB, {error_words(row, 'stall')}",
            f"{fmt(row.get('duration_per_gib', float('nan')))} s/GiB, {error_words(row, 'duration')}",
            error_words(row, "copies"),
            error_words(row, "copy_path_s"),
            f"{row['largest_mib']:,.0f} MiB",
        ]
        for _, row in models.iterrows()
    ]
    header = ["snapshot", "stall, error", "duration, error", "copies", "copy path", "largest size"]
    return lines + table(header, rows) + [""]
