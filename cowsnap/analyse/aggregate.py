"""Records -> tidy tables: one row per run, columns named like the record keys.

    python -m cowsnap.analyse.aggregate --restat FOLDER...

recomputes the statistics tables (points, ratios, comparisons, scaling) of each folder
from its runs.csv: how the small tables under tests/data are made, and how
a folder of old results gets today's statistics."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import pandas as pd

from cowsnap.analyse import model, stats
from cowsnap.measure import environment, records
from cowsnap.plan import methods
from cowsnap.plan.point import PHASE_SUFFIXES

# Record keys that are lists, each kept in a long table of its own.
SHARING_KEYS = ("sharing_s", "sharing_pages")
LATENCY_KEYS = ("latency_phase", "latency_ns", "latency_writes")
TIMELINE_KEYS = (*SHARING_KEYS, *LATENCY_KEYS)


# The tables an experiment's records make (write's outputs, by name), and
# those of them computed from the runs table alone.
TABLES = ("runs", "points", "ratios", "comparisons", "scaling", "model", "model_checks", "sharing", "latency")
STATISTICS = ("points", "ratios", "comparisons", "scaling", "model", "model_checks")

# The writers' whole phase, the part while the snapshot lived (fork: until
# the parent saw the child exit; uffd and stop: until the copy was done),
# and the part after.
PHASES = ("", *PHASE_SUFFIXES)
HUGETLB_NOT_COUNTED = "not counted: hugetlb_wp() counts reuses of huge pages as wpcopy too"


def _column(table: pd.DataFrame, name: str) -> pd.Series:
    return table[name] if name in table else pd.Series(float("nan"), index=table.index)


def _timing_columns(table: pd.DataFrame) -> list[str]:
    """Columns that are times (seconds) or derived from them."""
    derived = ["writer_kernel_share", "writer_cpu_wait_share", "child_copy_gbps", "fork_net_s"]
    return [c for c in table if re.search(r"_s(_|$)", c) or c in derived]


def derive(table: pd.DataFrame) -> pd.DataFrame:
    """Columns computed from the measured ones.

    copies: the writers' COW copies, per phase, exact from delay accounting
      (writer_wpcopy_count, per writer thread, taskstats), or absent (NaN)
      with copies_source saying why: never a 0 for a count not taken.
      Hugetlb arrays have no copy count: hugetlb_wp() starts the copy delay
      before its reuse check, so wpcopy_count counts reuses too
      (copy_delay_s still tells the time). Nor does a record whose kernel's
      sched_clock was unstable (sched_clock_stable 0): delay accounting
      then drops copies (environment.SCHED_CLOCK_UNSTABLE).
    copies_estimate: on 4 KiB pages only, the writers' faults that were not
      reuses (writer_minflt - pgreuse). pgreuse is system-wide, so this
      assumes a quiet machine; reuses of huge pages do not count in it.
    reuses: faults that took a 4 KiB page back without copying (pgreuse,
      system-wide).
    splits: huge page mappings split by a write (thp_split_pmd).
    snapshot_memory_counted_mib: the memory the counters say the snapshot
      holds, the cross-check of snapshot_memory_mib (see destinations()):
      the destinations it writes, size_mib each, plus the writers' copies
      while it lived (copies_during_snapshot x page_bytes; after it, a
      copy replaces a page no longer shared). NaN where copies are not
      counted.
    timed: false for runs that sampled the sharing timeline and for runs
      in a VM under software emulation (virtualized tcg); their times are
      left out (NaN) so that no statistic uses them. Their counters stay.
    """
    out = table.copy()
    backing = _column(out, "backing").astype(str)  # none for a watch point: its program's pages are its own
    small_pages = backing == "4k"
    hugetlb = backing.str.startswith("hugetlb-")
    unstable_clock = _column(out, "sched_clock_stable") == 0
    source = _column(out, "writer_wpcopy_source").astype(object)
    for phase in PHASES:
        estimate = (_column(out, f"writer_minflt{phase}") - _column(out, f"pgreuse{phase}")).clip(lower=0)
        out[f"copies{phase}"] = _column(out, f"writer_wpcopy_count{phase}").where(~hugetlb & ~unstable_clock)
        out[f"copies_estimate{phase}"] = estimate.where(small_pages)
        out[f"copy_delay_s{phase}"] = _column(out, f"writer_wpcopy_delay_s{phase}")
        out[f"reuses{phase}"] = _column(out, f"pgreuse{phase}")
        out[f"splits{phase}"] = _column(out, f"thp_split_pmd{phase}")
    out["copies_source"] = source.fillna("not counted: the record has no writer_wpcopy_source")
    out.loc[hugetlb, "copies_source"] = HUGETLB_NOT_COUNTED
    out.loc[unstable_clock & ~hugetlb, "copies_source"] = f"not counted: {environment.SCHED_CLOCK_UNSTABLE}"
    out["bytes_copied"] = out["copies"] * 4096
    out["memory_copy_s"] = out["bytes_copied"] / (_column(out, "memcpy_gbps") * 1e9)
    cpu = _column(out, "writer_utime_s") + _column(out, "writer_stime_s")
    out["writer_kernel_share"] = _column(out, "writer_stime_s") / cpu.where(cpu > 0)
    runnable = cpu + _column(out, "writer_cpu_delay_s")
    out["writer_cpu_wait_share"] = _column(out, "writer_cpu_delay_s") / runnable.where(runnable > 0)
    out["child_copy_gbps"] = _column(out, "size_mib") * 2**20 / _column(out, "child_copy_s") / 1e9
    out["faults_per_page"] = _column(out, "writer_minflt") / _column(out, "pages")
    out["fork_net_s"] = _column(out, "fork_s") - _column(out, "fork_empty_s")
    # The writers' copies while the snapshot lived (without a snapshot: all of them).
    snapshot = _column(out, "method").isin(methods.COPYING)
    held = out["copies_during_snapshot"].where(snapshot, out["copies"])
    counted_bytes = destinations(out) * _column(out, "size_mib") * 2**20 + held * _column(out, "page_bytes")
    out["snapshot_memory_counted_mib"] = counted_bytes / 2**20
    out["virtualized"] = virtualized(out)
    out["node_type"] = node_type(out)
    sampled = _column(out, "sharing_interval_ms").fillna(0).astype(float) > 0
    out["timed"] = ~sampled & (out["virtualized"] != "tcg")
    out.loc[~out["timed"], _timing_columns(out)] = float("nan")
    return out


def destinations(table: pd.DataFrame) -> pd.Series:
    """Array-sized regions a run's snapshot writes besides the array: its
    copy (a method that copies), and where the copy is made into a zeroed
    destination that both processes hold (fork, dest=zeroed: the child's
    writes copy the parent's destination), that destination too: what
    cowsnap.plan.methods counts as the zeroed destination's extra region."""
    method, rows = _column(table, "method"), methods.METHODS.items()
    copy = method.map({name: float(m.copies) for name, m in rows})
    zeroed = method.map({name: float(m.arrays_zeroed_dest - m.arrays_fresh_dest) for name, m in rows})
    return copy + zeroed.where(_column(table, "dest") == "zeroed", 0.0)


NODE_KEYS = ["cpu_model", "online_cpus", "numa_nodes", "kernel", "virtualized"]
FINGERPRINT = ["hostname", *NODE_KEYS]  # one machine


def virtualized(table: pd.DataFrame) -> pd.Series:
    """none, kvm or tcg; records from before VM runs existed ran on the machine itself."""
    if "virtualized" not in table:
        return pd.Series("none", index=table.index)
    return table["virtualized"].fillna("none").astype(str)


def node_type(table: pd.DataFrame) -> pd.Series:
    """What makes runs comparable: CPU model, cores, NUMA nodes, kernel, and
    whether they ran in a VM (a VM's CPU model, cores and nodes are the guest's).
    Statistics group by it, so runs of different node types never pool."""
    parts = [table[key].astype(str) if key in table else pd.Series("?", index=table.index) for key in NODE_KEYS]
    return parts[0].str.cat(parts[1:], sep=" | ")


# Columns that name kernels, read back as text: the series 6.10 is not the
# number 6.1.
KERNEL_COLUMNS = ("vm_kernel", "vm_kernel_release", "kernel", "host_kernel")


def read_csv(path: Path) -> pd.DataFrame:
    """A table of this module's, its kernel columns as text."""
    return pd.read_csv(path, dtype=dict.fromkeys(KERNEL_COLUMNS, str))


def read_table(path: Path) -> pd.DataFrame:
    """A table this module wrote; an empty one (no ok run) as an empty frame."""
    try:
        return read_csv(path)
    except pd.errors.EmptyDataError:
        return pd.DataFrame()


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


def latency_table(rows: list[dict], runs: pd.DataFrame) -> pd.DataFrame:
    """The write latency histograms, long form: run_id, latency_phase,
    latency_ns (a bucket's lower end), latency_writes. Runs whose times are
    not used (runs' timed false) are left out, as their times are everywhere."""
    timed = set(runs.loc[runs["timed"], "run_id"]) if "timed" in runs else set()
    buckets = [
        {"run_id": row["run_id"], "latency_phase": phase, "latency_ns": ns, "latency_writes": writes}
        for row in rows
        if row.get("run_id") in timed
        for phase, ns, writes in zip(*(row.get(key, []) for key in LATENCY_KEYS), strict=True)
    ]
    return pd.DataFrame(buckets, columns=["run_id", *LATENCY_KEYS])


def write(paths: list[Path], outputs: dict[str, Path], references: dict[str, str] | None = None) -> pd.DataFrame:
    """The one statistics pass: runs.csv (one row per run, with its
    reference_id from `references`, point id -> the reference snapshot it
    is a lever on), points.csv (per point: settings, label, medians with
    their intervals, the floor), ratios.csv (each point against its
    baseline), comparisons.csv (each lever against its reference, round by
    round, per objective), scaling.csv (fits against the array size),
    sharing.csv, latency.csv."""
    rows = [records.read(path) for path in paths]
    table = runs_table(rows)
    if not table.empty and "point_id" in table:
        table["reference_id"] = table["point_id"].map(references or {}).fillna("")
    table.to_csv(outputs["runs"], index=False)
    for name, frame in statistics(table).items():
        frame.to_csv(outputs[name], index=False)
    sharing_table(rows).to_csv(outputs["sharing"], index=False)
    latency_table(rows, table).to_csv(outputs["latency"], index=False)
    return table


def statistics(table: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The STATISTICS tables of a runs table (cowsnap.analyse.stats)."""
    points = stats.point_table(table) if not table.empty else pd.DataFrame()
    if not points.empty:
        points = stats.floor(table, points)
    return {
        "points": points,
        "ratios": stats.ratio_table(table, points),
        "comparisons": stats.comparison_table(table, points),
        "scaling": stats.scaling_table(table),
        "model": model.table(points, table),
        "model_checks": model.checks(points, table),
    }


def restat(folder: Path) -> dict[str, pd.DataFrame]:
    """Rewrites a folder's STATISTICS tables from its runs.csv."""
    frames = statistics(read_table(Path(folder) / "runs.csv"))
    for name, frame in frames.items():
        frame.to_csv(Path(folder) / f"{name}.csv", index=False)
    return frames


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cowsnap.analyse.aggregate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--restat", type=Path, nargs="+", required=True, metavar="FOLDER", help="folders with runs.csv")
    args = parser.parse_args(argv)
    missing = [str(folder) for folder in args.restat if not (folder / "runs.csv").is_file()]
    if missing:
        parser.error(f"no runs.csv in {', '.join(missing)}")
    for folder in args.restat:
        restat(folder)
    return 0


if __name__ == "__main__":
    sys.exit(main())
