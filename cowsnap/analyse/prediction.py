"""cowsnap predict: what a snapshot of a given size would cost, from a
sweep's cost model (model.csv, cowsnap.analyse.model), for each method it
measured, with each term's error on a size the model did not see."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pandas as pd

from cowsnap.analyse import model
from cowsnap.plan import patterns

UNITS = {"K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT])(i?B)?\s*$", re.IGNORECASE)
# The terms a prediction prints, in order, with their words.
SHOWN = {
    "stall": "stall",
    "duration": "duration",
    "memory_mib": "peak memory",
    "copies": "COW copies",
    "copy_path_s": "writers' copy-path time",
}


class PredictError(ValueError):
    """An input the constants cannot speak for, with the reason."""


def size_mib(text: str) -> float:
    """'300G' (GiB), '300GB' (10^9 bytes), '512M', '1.5T' -> MiB."""
    found = SIZE.match(text)
    if not found or float(found.group(1)) <= 0:
        raise PredictError(
            f"--size {text!r}: not a size; allowed: a number above 0 with K, M, G or T (binary: 300G is 300 GiB), "
            "or KB, MB, GB, TB (decimal: 300GB is 300 x 10^9 bytes)"
        )
    number, unit, suffix = float(found.group(1)), found.group(2).upper(), found.group(3) or ""
    scale = UNITS[unit] if suffix.lower() != "b" else 1000 ** (list(UNITS).index(unit) + 1)
    return number * scale / 2**20


def find_model(results: Path) -> Path:
    """The results folder's model.csv with constants: the scale
    experiment's, else the first experiment's that has one."""
    preferred = results / model.EXPERIMENT / "model.csv"
    candidates = [preferred, *sorted(p for p in results.glob("*/model.csv") if p != preferred)]
    for path in candidates:
        if path.is_file() and path.stat().st_size > 2 and not pd.read_csv(path).empty:
            return path
    raise PredictError(
        f"--results {results}: no model.csv with constants under it; a sweep with the `{model.EXPERIMENT}` "
        "experiment (config/config.yaml) writes one: snakemake --cores all"
    )


def kernel_of(node_type: str) -> str:
    """A node type's kernel release (its fourth field)."""
    parts = [part.strip() for part in str(node_type).split("|")]
    return parts[3] if len(parts) > 3 else "?"


def choose(table: pd.DataFrame, backing: str, kernel: str | None, source: Path) -> pd.DataFrame:
    """The rows of one node type for the backing, or why none speaks for it."""
    kernels = sorted({kernel_of(n) for n in table["node_type"]})
    if kernel is not None:
        table = table[table["node_type"].map(kernel_of) == kernel]
        if table.empty:
            raise PredictError(f"--kernel {kernel}: {source} has constants for {', '.join(kernels)} only")
    rows = table[table["backing"] == backing]
    if rows.empty:
        measured = ", ".join(sorted(set(table["backing"])))
        raise PredictError(
            f"--backing {backing}: {source} measured {measured} only; run the {model.EXPERIMENT} experiment "
            f"with backing {backing} to predict it"
        )
    node_types = list(dict.fromkeys(rows["node_type"]))
    if len(node_types) > 1:
        raise PredictError(
            f"{source} holds constants of {len(node_types)} node types with {backing} pages; name one "
            f"with --kernel ({', '.join(kernels)})"
        )
    return rows


def band(row: pd.Series, term: str) -> str:
    """'±8% (held out)', or why the term is not used."""
    error, predicts = row.get(f"{term}_error", math.nan), row.get(f"{term}_predicts", False)
    if pd.isna(error):
        return "unchecked: fewer sizes than a check needs"
    if not predicts or str(predicts) == "False":
        return f"not predicted: its error on a held-out size was {100 * error:.0f}% (over {100 * model.MAX_ERROR:.0f}%)"
    return f"±{100 * error:.2g}%"


def cell(term: str, value: float, row: pd.Series) -> str:
    words = band(row, term)
    if words.startswith("not predicted") or pd.isna(value):
        return words if not pd.isna(value) else "n/a"
    if term == "memory_mib":
        shown = f"{value / 1024:,.3g} GiB"
    elif term == "copies":
        shown = f"{value:,.0f} pages ({value * model.page_kib(row['backing']) / 2**20:,.3g} GiB)"
    else:
        shown = f"{value:,.3g} s"
    return f"{shown} {words}"


def predict(results: Path, size: str, backing: str, write_rate: float, pattern: str,
            kernel: str | None = None) -> list[str]:  # fmt: skip
    """The prediction's lines: where the constants come from, then one
    line per method with each term and its error band."""
    mib = size_mib(size)
    if write_rate < 0 or not math.isfinite(write_rate):
        raise PredictError(f"--write-rate {write_rate:g}: not a rate; allowed: writes per second, 0 or more")
    if pattern not in patterns.PATTERNS or patterns.strided(pattern):
        drawn = [name for name in patterns.PATTERNS if not patterns.strided(name)]
        raise PredictError(f"--pattern {pattern}: the model speaks for {', '.join(drawn)}")
    source = find_model(results)
    rows = choose(pd.read_csv(source), backing, kernel, source)
    first = rows.iloc[0]
    largest = float(rows["largest_mib"].max())
    lines = [
        f"cowsnap predict: {mib / 1024:,.4g} GiB of {backing} pages, {write_rate:,.0f} {pattern} one-element "
        "writes a second (all writers together)",
        f"constants: {source}, node type {first['node_type']} (Linux {kernel_of(first['node_type'])}); the largest "
        f"size measured is {largest:,.0f} MiB" + (f"; this is {mib / largest:,.3g}x that" if mib > largest else ""),
        "error bands: each term's largest error on a size its fit did not see (docs/model.md)",
        "",
    ]
    for _, row in rows.iterrows():
        method = row["method"]
        values = model.predict(row.to_dict(), method, backing, mib, write_rate, pattern)
        parts = [f"{words} {cell(term, values[term], row)}" for term, words in SHOWN.items() if term in values]
        lines.append(f"- {method}: " + "; ".join(parts))
    return lines
