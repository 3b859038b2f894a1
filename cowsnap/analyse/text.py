"""How the summary writes: numbers, counts, sections and Markdown tables,
shared by its sections."""

from __future__ import annotations

import pandas as pd


def fmt(value: float) -> str:
    return "n/a" if value is None or pd.isna(value) else f"{value:.3g}"


def fmt_count(value: float) -> str:
    return "n/a" if value is None or pd.isna(value) else f"{value:,.0f}"


def fmt_ratio(row: pd.Series) -> str:
    """'12x (9.1-15x, at least 87.9%)' from a ratios.csv row."""
    if pd.isna(row["ci_level"]) or row["n"] < 2 or row["n_baseline"] < 2:
        return f"{fmt(row['ratio'])}x (too few runs for an interval)"
    return f"{fmt(row['ratio'])}x ({fmt(row['ci_low'])}-{fmt(row['ci_high'])}x, at least {100 * row['ci_level']:.1f}%)"


def section(title: str, preamble: str) -> list[str]:
    """A section's heading and the paragraph that says how to read it."""
    return [f"## {title}", "", preamble, ""]


def cell(text) -> str:
    """A table cell: pipes escaped, one line."""
    return " ".join(str(text).split()).replace("|", "\\|")


def table(header: list[str], rows: list[list]) -> list[str]:
    """A Markdown table."""
    return [
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(cell(value) for value in row) + " |" for row in rows),
    ]
