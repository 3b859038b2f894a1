"""Figures from an experiment's table (seaborn; PNG and PDF each)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from cowsnap.aggregate import varying_axes  # noqa: E402

FAULT_KINDS = {"copies": "copies (COW copy)", "reuses": "reuses (no copy)", "splits": "huge page splits"}


def _layout(table: pd.DataFrame) -> tuple[str, str | None, pd.DataFrame]:
    """x axis: writers if it varies, else the first varying axis; hue: the rest."""
    axes = varying_axes(table)
    x = "writers" if "writers" in axes else (axes[0] if axes else "method")
    rest = [a for a in axes if a != x]
    table = table.copy()
    hue = None
    if rest:
        hue = ", ".join(rest)
        table[hue] = table[rest].astype(str).agg(", ".join, axis=1)
    return x, hue, table


def _save(figure, stem: Path) -> list[Path]:
    stem.parent.mkdir(parents=True, exist_ok=True)
    outputs = [stem.with_suffix(".png"), stem.with_suffix(".pdf")]
    for path in outputs:
        figure.savefig(path, bbox_inches="tight", dpi=150)
    plt.close(figure)
    return outputs


def writers_time(table: pd.DataFrame, sharing: pd.DataFrame, stem: Path, title: str) -> list[Path]:
    """Writers' phase time by the experiment's axes, median with 95% CI."""
    ok = table[table["status"] == "ok"]
    x, hue, data = _layout(ok)
    figure, ax = plt.subplots(figsize=(6.5, 4))
    if not data.empty:
        sns.barplot(data=data, x=x, y="writers_s", hue=hue, estimator="median", errorbar=("ci", 95), ax=ax)
    ax.set_ylabel("writers' time (s)")
    ax.set_xlabel(x)
    ax.set_title(title)
    return _save(figure, stem)


def writer_faults(table: pd.DataFrame, sharing: pd.DataFrame, stem: Path, title: str) -> list[Path]:
    """The writers' faults per array page: copies, reuses, huge page splits."""
    ok = table[table["status"] == "ok"]
    x, hue, data = _layout(ok)
    if hue:
        data[x] = data[x].astype(str) + " | " + data[hue]
    data = data.assign(**{kind: data[kind] / data["pages"] for kind in FAULT_KINDS})
    long = data.melt(id_vars=[x], value_vars=list(FAULT_KINDS), var_name="fault", value_name="per_page")
    long["fault"] = long["fault"].map(FAULT_KINDS)
    figure, ax = plt.subplots(figsize=(6.5, 4))
    if not long.empty:
        sns.barplot(data=long, x=x, y="per_page", hue="fault", estimator="median", errorbar=("ci", 95), ax=ax)
    ax.set_ylabel("writers' faults per array page")
    ax.set_xlabel(f"{x} | {hue}" if hue else x)
    ax.tick_params(axis="x", labelrotation=30)
    ax.set_title(title)
    return _save(figure, stem)


def sharing_timeline(table: pd.DataFrame, sharing: pd.DataFrame, stem: Path, title: str) -> list[Path]:
    """Share of the array still shared with the child while the writers run."""
    ok = table[table["status"] == "ok"]
    x, hue, data = _layout(ok)
    label = f"{x}, {hue}" if hue else x
    data[label] = data[x].astype(str) + (", " + data[hue] if hue else "")
    timeline = sharing.merge(data[["run_id", "pages", label]], on="run_id")
    timeline["shared_share"] = timeline["sharing_pages"] / timeline["pages"]
    figure, ax = plt.subplots(figsize=(6.5, 4))
    if not timeline.empty:
        sns.lineplot(data=timeline, x="sharing_s", y="shared_share", hue=label, units="run_id", estimator=None, ax=ax)
    ax.set_xlabel("time since the writers started (s)")
    ax.set_ylabel("array pages still shared with the child (fraction)")
    ax.set_title(title)
    return _save(figure, stem)


FIGURES = {"writers_time": writers_time, "writer_faults": writer_faults, "sharing_timeline": sharing_timeline}
