"""Records -> tidy tables: one row per run, columns named like the record keys."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from cowsnap import records
from cowsnap.config import axis_names

TIMELINE_KEYS = ("sharing_s", "sharing_pages")


def derive(table: pd.DataFrame) -> pd.DataFrame:
    """Columns computed from the measured ones.

    reuses: write faults that took the page back without copying (pgreuse).
    copies: the writers' faults that were not reuses (writer_minflt - pgreuse);
      pgreuse is system-wide, so this assumes a quiet machine, and the child's
      own faults on a prefork destination are copies, never reuses.
    """
    out = table.copy()
    for column in ("writer_minflt", "pgreuse", "thp_split_pmd", "writer_utime_s", "writer_stime_s"):
        if column not in out:
            out[column] = float("nan")
    out["reuses"] = out["pgreuse"]
    out["copies"] = (out["writer_minflt"] - out["pgreuse"]).clip(lower=0)
    out["copies_source"] = "writer_minflt-pgreuse"
    out["splits"] = out["thp_split_pmd"]
    out["bytes_copied"] = out["copies"] * 4096
    cpu = out["writer_utime_s"] + out["writer_stime_s"]
    out["writer_kernel_share"] = out["writer_stime_s"] / cpu.where(cpu > 0)
    if "child_copy_s" in out:
        out["child_copy_gbps"] = out["size_mib"] * 2**20 / out["child_copy_s"] / 1e9
    out["faults_per_page"] = out["writer_minflt"] / out["pages"]
    return out


def runs_table(paths: list[Path]) -> pd.DataFrame:
    rows = [records.read(p) for p in paths]
    table = pd.DataFrame([{k: v for k, v in row.items() if k not in TIMELINE_KEYS} for row in rows])
    return derive(table) if not table.empty else table


def sharing_table(paths: list[Path]) -> pd.DataFrame:
    """The sharing timeline, long form: run_id, sharing_s, sharing_pages."""
    rows = []
    for path in paths:
        record = records.read(path)
        for t, pages in zip(record.get("sharing_s", []), record.get("sharing_pages", []), strict=True):
            rows.append({"run_id": record["run_id"], "sharing_s": t, "sharing_pages": pages})
    return pd.DataFrame(rows, columns=["run_id", "sharing_s", "sharing_pages"])


def varying_axes(table: pd.DataFrame) -> list[str]:
    """The point keys that take more than one value in this table."""
    return [axis for axis in axis_names() if axis in table and table[axis].nunique(dropna=False) > 1]


def write(paths: list[Path], runs_csv: Path, sharing_csv: Path) -> pd.DataFrame:
    table = runs_table(paths)
    table.to_csv(runs_csv, index=False)
    sharing_table(paths).to_csv(sharing_csv, index=False)
    return table
