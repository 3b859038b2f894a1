"""What a writer waits: the tail of the writers' write latency, per point."""

from __future__ import annotations

import pandas as pd

from cowsnap.analyse import verdict
from cowsnap.analyse.summary.words import _baseline_of, rows_with, tail_phase, times
from cowsnap.analyse.text import section, table


def what_a_writer_waits(points: pd.DataFrame, runs: pd.DataFrame) -> list[str]:
    """Per point whose writers timed their writes: the tail of their write
    latency while the snapshot lived (or, where they wait for it, after),
    the longest write and what held it up, against the same writes without
    a snapshot."""
    timed = rows_with(points, "write_p99_s")
    if timed.empty:
        return []
    lines = section(
        "What a writer waits",
        "A timed write is a writer's writes into one write_latency_kib span of the array; the first counts from "
        "just before the snapshot begins. Percentiles are of every write of a run, writers merged (the upper end "
        "of the histogram bucket, at most 3.1% wide), then the median over runs; the longest is exact. A write's "
        "phase is the one it started in: where the writers wait for the snapshot to end (start=after_child, "
        "method=stop), only their first write started while it lived, so the percentiles are of the writes after "
        "it ended and the wait is the longest write. The CCDF figures (write_latency) show every write.",
    )
    rows = []
    for _, row in timed.iterrows():
        suffix, words = tail_phase(row)
        baseline = _baseline_of(points, row) if suffix else None
        base_p99 = baseline.get("write_p99_s") if baseline is not None else float("nan")
        p99 = row.get(f"write_p99_s{suffix}")
        rows.append(
            [
                row["experiment"],
                row["label"],
                words,
                *(verdict.duration(row.get(f"write_{q}_s{suffix}")) for q in ("p50", "p99", "p999")),
                f"{verdict.duration(row.get('write_max_s'))}: {verdict.longest_write_cause(row)}",
                verdict.duration(base_p99),
                times(p99 / base_p99 if base_p99 > 0 else float("nan")),
            ]
        )
    header = ["experiment", "point", "writes", "p50", "p99", "p99.9", "longest write", "p99 without a snapshot"]
    lines += table([*header, "p99 over it"], rows)
    clocks = rows_with(runs, "write_p99_s").get("clocksource", [])
    return lines + ["", verdict.clock_words(clocks), ""]
