"""Two result sets side by side (two kernels, two machines, before and after
a change): the ratio B/A of each point both measured.

Runs from different machines are never pooled silently: a side whose runs
come from more than one machine is refused unless pooling is asked for, and
a difference between the two sides' machines or kernels is said first.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from cowsnap.analyse import aggregate, labels, stats
from cowsnap.analyse.aggregate import FINGERPRINT


class CompareError(ValueError):
    pass


# Columns a runs.csv must have to be compared (an experiment whose runs were
# all skipped has no measured column).
REQUIRED = ("experiment", "point_id", "status")
METRICS = ("writers_s", "writer_stime_s")


def read_runs(path: Path) -> pd.DataFrame:
    """One runs.csv; CompareError, naming the file, when it is not one."""
    try:
        table = aggregate.read_csv(path)
    except (OSError, ValueError, UnicodeDecodeError) as error:  # pandas' parser errors are ValueErrors
        raise CompareError(f"{path}: not a readable runs.csv ({str(error).strip()})") from None
    if "virtualized" not in table and "kernel" in table:
        table = table.copy()  # one block: a column added to a fragmented frame warns
        table["virtualized"] = "none"  # written before VM runs existed: ran on the machine itself
    missing = [column for column in (*REQUIRED, *FINGERPRINT) if column not in table]
    if missing:
        raise CompareError(f"{path}: not a runs.csv of cowsnap: no column {', '.join(missing)}")
    for column in METRICS:
        if column in table and not pd.api.types.is_numeric_dtype(table[column]):
            raise CompareError(f"{path}: column {column} holds values that are not numbers")
    return table


def load(results: Path) -> pd.DataFrame:
    """Every experiment's runs.csv under a results folder."""
    tables = [read_runs(path) for path in sorted(Path(results).glob("*/runs.csv"))]
    if not tables:
        raise CompareError(f"{results}: no <experiment>/runs.csv here (is it a results folder?)")
    return pd.concat(tables, ignore_index=True)


def describe(machine: pd.Series) -> str:
    return ", ".join(f"{key}={machine[key]}" for key in FINGERPRINT)


def machines(runs: pd.DataFrame) -> pd.DataFrame:
    return runs.drop_duplicates(FINGERPRINT)[FINGERPRINT].reset_index(drop=True)


def flags(a: pd.DataFrame, b: pd.DataFrame, pool: bool) -> list[str]:
    """What a reader must know before reading the ratios; CompareError
    when a side pools machines and pooling was not asked for."""
    notes = []
    for name, runs in (("A", a), ("B", b)):
        found = machines(runs)
        if len(found) > 1:
            listed = "; ".join(describe(m) for _, m in found.iterrows())
            if not pool:
                raise CompareError(f"{name} holds runs from {len(found)} machines ({listed}); pass --pool to pool them")
            notes.append(f"{name} pools runs from {len(found)} machines: {listed}")
    ma, mb = machines(a).iloc[0], machines(b).iloc[0]
    differing = [key for key in FINGERPRINT if ma[key] != mb[key]]
    if differing:
        notes.append("machine mismatch: " + ", ".join(f"{key} {ma[key]} (A) vs {mb[key]} (B)" for key in differing))
    return notes


def ratios(a: pd.DataFrame, b: pd.DataFrame, metrics=METRICS) -> pd.DataFrame:
    """Per point measured in both: median(B) / median(A) with its interval."""
    a_ok, b_ok = a[a["status"] == "ok"], b[b["status"] == "ok"]
    names = labels.point_labels(a.assign(node_type="A"))  # one side is one machine, or pooled on purpose
    rows = []
    for (experiment, point_id), group_a in a_ok.groupby(["experiment", "point_id"], sort=False):
        group_b = b_ok[(b_ok["experiment"] == experiment) & (b_ok["point_id"] == point_id)]
        if group_b.empty:
            continue
        for metric in metrics:
            if metric not in group_a or metric not in group_b:
                continue
            rows.append(
                {
                    "experiment": experiment,
                    "point_id": point_id,
                    "point": names[experiment, point_id, "A"],
                    **stats.ratio_columns(metric, group_b[metric], group_a[metric]),
                    "n_a": len(group_a),
                    "n_b": len(group_b),
                }
            )
    return pd.DataFrame(rows)


def write(a_dir: Path, b_dir: Path, out_dir: Path, pool: bool = False) -> list[str]:
    """compare.csv, compare.md and the ratio figure in out_dir; returns the flags."""
    from cowsnap.analyse import plots

    a, b = load(a_dir), load(b_dir)
    notes = flags(a, b, pool)
    table = ratios(a, b)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    table.to_csv(out_dir / "compare.csv", index=False)
    lines = [f"# {b_dir} (B) against {a_dir} (A)", ""]
    lines += [f"- **{note}**" for note in notes] or ["- same machine and kernel"]
    lines += ["", f"{table['point_id'].nunique() if not table.empty else 0} points measured in both:", ""]
    for _, row in table.iterrows():
        lines.append(
            f"- {row['point']}: {row['metric']} B/A = {row['ratio']:.3g} "
            f"({row['ci_low']:.3g}-{row['ci_high']:.3g}, at least {100 * row['ci_level']:.1f}% confidence; "
            f"{row['better']} is better)"
        )
    plots.draw_comparison(table, out_dir / "compare", f"{b_dir} / {a_dir}")
    (out_dir / "compare.md").write_text("\n".join(lines) + "\n")
    return notes
