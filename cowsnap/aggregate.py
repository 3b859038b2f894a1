"""Records -> tidy tables: one row per run, columns named like the record keys."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from cowsnap import records
from cowsnap.config import axis_names

TIMELINE_KEYS = ("sharing_s", "sharing_pages")


PHASES = ("", "_before_exit", "_after_exit")


def _column(table: pd.DataFrame, name: str) -> pd.Series:
    return table[name] if name in table else pd.Series(float("nan"), index=table.index)


def derive(table: pd.DataFrame) -> pd.DataFrame:
    """Columns computed from the measured ones.

    copies: the writers' COW copies. Exact from delay accounting
      (writer_wpcopy_count, taskstats) where the run had it; else the
      writers' faults that were not reuses (writer_minflt - pgreuse; pgreuse
      is system-wide, so this assumes a quiet machine). copies_source says
      which. Per phase, only the second way exists (writer_minflt - pgreuse
      of the phase).
      Hugetlb arrays have no copy count: hugetlb_wp() starts the copy delay
      before its reuse check, so wpcopy_count counts reuses too, and reuses
      of huge pages do not count in pgreuse (copy_delay_s still tells time).
    reuses: faults that took the page back without copying (pgreuse).
    splits: huge page mappings split by a write (thp_split_pmd).
    """
    out = table.copy()
    exact = _column(out, "writer_wpcopy_count")
    estimate = (_column(out, "writer_minflt") - _column(out, "pgreuse")).clip(lower=0)
    out["copies"] = exact.where(exact.notna(), estimate)
    out["copies_source"] = exact.notna().map({True: "taskstats", False: "writer_minflt-pgreuse"})
    hugetlb = out["backing"].astype(str).str.startswith("hugetlb-")
    out.loc[hugetlb, "copies"] = float("nan")
    out.loc[hugetlb, "copies_source"] = "none: hugetlb counts reuses as wpcopy"
    out["copy_delay_s"] = _column(out, "writer_wpcopy_delay_s")
    for phase in PHASES:
        out[f"reuses{phase}"] = _column(out, f"pgreuse{phase}")
        out[f"splits{phase}"] = _column(out, f"thp_split_pmd{phase}")
        if phase:
            minflt = _column(out, f"writer_minflt{phase}")
            out[f"copies{phase}"] = (minflt - out[f"reuses{phase}"]).clip(lower=0)
    out["bytes_copied"] = out["copies"] * 4096
    cpu = _column(out, "writer_utime_s") + _column(out, "writer_stime_s")
    out["writer_kernel_share"] = _column(out, "writer_stime_s") / cpu.where(cpu > 0)
    out["child_copy_gbps"] = out["size_mib"] * 2**20 / _column(out, "child_copy_s") / 1e9
    out["faults_per_page"] = _column(out, "writer_minflt") / _column(out, "pages")
    out["fork_net_s"] = _column(out, "fork_s") - _column(out, "fork_empty_s")
    out["node_type"] = node_type(out)
    return out


NODE_KEYS = ["cpu_model", "online_cpus", "numa_nodes", "kernel"]
FINGERPRINT = ["hostname", *NODE_KEYS]  # one machine


def node_type(table: pd.DataFrame) -> pd.Series:
    """What makes runs comparable: CPU model, cores, NUMA nodes, kernel.
    Statistics group by it, so runs of different node types never pool."""
    parts = [table[key].astype(str) if key in table else pd.Series("?", index=table.index) for key in NODE_KEYS]
    return parts[0].str.cat(parts[1:], sep=" | ")


def runs_table(rows: list[dict]) -> pd.DataFrame:
    """One row per record, without its timeline, plus the derived columns."""
    table = pd.DataFrame([{k: v for k, v in row.items() if k not in TIMELINE_KEYS} for row in rows])
    return derive(table) if not table.empty else table


def sharing_table(rows: list[dict]) -> pd.DataFrame:
    """The sharing timeline, long form: run_id, sharing_s, sharing_pages."""
    timeline = [
        {"run_id": row["run_id"], "sharing_s": t, "sharing_pages": pages}
        for row in rows
        for t, pages in zip(row.get("sharing_s", []), row.get("sharing_pages", []), strict=True)
    ]
    return pd.DataFrame(timeline, columns=["run_id", "sharing_s", "sharing_pages"])


def varying_axes(table: pd.DataFrame) -> list[str]:
    """The point keys (and node_type) that take more than one value in this table."""
    keys = [*axis_names(), "node_type"]
    return [key for key in keys if key in table and table[key].nunique(dropna=False) > 1]


def write(paths: list[Path], outputs: dict[str, Path]) -> pd.DataFrame:
    """runs.csv (one row per run), points.csv (medians and intervals per
    point), ratios.csv (each point against its baseline), sharing.csv."""
    from cowsnap import stats

    rows = [records.read(path) for path in paths]
    table = runs_table(rows)
    table.to_csv(outputs["runs"], index=False)
    stats.point_summary(table).to_csv(outputs["points"], index=False)
    stats.baseline_ratios(table).to_csv(outputs["ratios"], index=False)
    sharing_table(rows).to_csv(outputs["sharing"], index=False)
    return table
