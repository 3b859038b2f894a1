"""What a writer waits: the tail of the writers' write latency, per point."""

from __future__ import annotations

import pandas as pd

from cowsnap.analyse import verdict
from cowsnap.analyse.summary.words import _baseline_of, rows_with, tail_phase, times
from cowsnap.analyse.text import section, table


def what_a_writer_waits(points: pd.DataFrame, runs: pd.DataFrame, elsewhere: dict[str, str] | None = None) -> list[str]:
    """Per point whose writers timed their writes: the tail of their write
    latency while the snapshot lived (or, where they wait for it, after),
    the longest write and what held it up, against the same writes without
    a snapshot; the experiments in `elsewhere` are left to their sections."""
    timed = rows_with(points[~points["experiment"].isin(list(elsewhere or {}))], "write_p99_s")
    if timed.empty:
        return []
    # A point without a snapshot is a baseline: its p99 is the column beside each snapshot's.
    with_snapshot = timed[timed["method"] != "none"] if "method" in timed else timed
    timed = with_snapshot if not with_snapshot.empty else timed
    lines = section(
        "What a writer waits",
        "A timed write is a writer's writes into one write_latency_kib span; the first counts from just before "
        "the snapshot begins. Percentiles merge a run's writers, then take the median over runs; the longest is "
        "exact. Where the writers wait for the snapshot to end (start=after_child, method=stop), the percentiles "
        "are of the writes after it and the wait is the longest write. The write_latency figures show every "
        "write; p50 and the rest are in points.csv (docs/measuring.md#write-latency).",
    )
    tails = []  # (row, its tail's suffix and words, the p99 of its baseline's writes)
    for _, row in timed.iterrows():
        suffix, words = tail_phase(row)
        baseline = _baseline_of(points, row) if suffix else None
        tails.append((row, suffix, words, baseline.get("write_p99_s") if baseline is not None else float("nan")))
    # Where some points have writes without a snapshot to set their tail against, those are shown.
    paired = any(base_p99 > 0 for *_, base_p99 in tails)
    unpaired = [row["experiment"] for row, *_, base_p99 in tails if paired and not base_p99 > 0]
    rows = [
        [
            row["experiment"],
            row["label"],
            words,
            *(verdict.duration(row.get(f"write_{q}_s{suffix}")) for q in ("p99", "p999")),
            f"{verdict.duration(row.get('write_max_s'))}: {verdict.longest_write_cause(row)}",
            f"{verdict.duration(base_p99)}, {times(row.get(f'write_p99_s{suffix}') / base_p99)}"
            if base_p99 > 0
            else "",
        ]
        for row, suffix, words, base_p99 in tails
        if base_p99 > 0 or not paired
    ]
    header = ["experiment", "point", "writes", "p99", "p99.9", "longest write", "p99 without, over it"]
    lines += table(header, rows)
    if unpaired:
        lines += ["", f"{len(unpaired)} more timed points ({', '.join(dict.fromkeys(unpaired))}) have no write "
                  "without a snapshot to set their tail against: their tails are in points.csv and the "
                  "write_latency figures."]  # fmt: skip
    clocks = rows_with(runs, "write_p99_s").get("clocksource", [])
    return lines + ["", verdict.clock_words(clocks), ""]
