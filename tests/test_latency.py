"""Write latency, the instrument: every method times its writers' writes
the same way or none does; the counts are exact; the first write holds what
the snapshot's start (and, where the writers wait, its end) cost them; a
copy-on-write fault shows in the writes it slows; Python reads the
histogram as the benchmark does. Real benchmark runs on small arrays."""

import math

import pandas as pd
import pytest

from cowsnap.analyse import aggregate

METHODS = ("none", "fork", "uffd", "stop")
SMALL = {"size_mib": 8, "batch_kib": 512, "copiers": 1, "memcpy_mib": 0}
LATENCY_KEYS = ("writes_timed", "write_p50_s", "write_p99_s", "write_p999_s", "write_max_s", "write_first_s")
SUB_BUCKETS = 32  # native/latency.cpp: buckets per power of two


def spans_visited(size_mib: int, span_kib: int, writers: int, pattern: str) -> int:
    """The timed writes of a run: the spans each writer writes into, summed."""
    n, span = size_mib * 2**20 // 8, span_kib * 1024 // 8
    if pattern == "interleaved":
        return writers * math.ceil(n / span)
    slices = [(n * t // writers, n * (t + 1) // writers) for t in range(writers)]
    return sum((last - 1) // span - first // span + 1 for first, last in slices if last > first)


def phase_writes(record: dict, phase: str) -> float:
    return sum(w for p, w in zip(record["latency_phase"], record["latency_writes"], strict=True) if p == phase)


@pytest.mark.parametrize("method", METHODS)
def test_every_method_times_every_span_its_writers_write(run_point, method):
    # Three writers split the array so that slices start inside spans.
    for pattern in ("blocked", "interleaved"):
        record = run_point(**SMALL, method=method, writers=3, pattern=pattern, write_latency_kib=12)
        assert record["writes_timed"] == spans_visited(8, 12, 3, pattern)
        assert 0 < record["write_p50_s"] <= record["write_p99_s"] <= record["write_p999_s"] <= record["write_max_s"]
        assert record["write_first_s"] <= record["write_max_s"]
        assert phase_writes(record, "all") == record["writes_timed"]
        if method != "none":
            phases = [p for p in ("during_snapshot", "after_snapshot") if f"writes_timed_{p}" in record]
            assert sum(record[f"writes_timed_{p}"] for p in phases) == record["writes_timed"]
            for p in phases:
                assert phase_writes(record, p) == record[f"writes_timed_{p}"]


@pytest.mark.parametrize("method", METHODS)
def test_no_method_times_writes_when_it_is_off(run_point, method):
    record = run_point(**SMALL, method=method, write_latency_kib=0)
    assert not [key for key in record if key.startswith(LATENCY_KEYS)]
    assert record["latency_phase"] == record["latency_ns"] == record["latency_writes"] == []


@pytest.mark.parametrize("method", ("fork", "uffd", "stop"))
def test_the_first_write_holds_the_snapshots_start(run_point, method):
    record = run_point(**SMALL, method=method, writers=2, pattern="blocked")
    assert record["write_first_s"] >= record["snapshot_pause_s"]
    if method == "stop":  # the writers wait for the whole copy
        assert record["write_first_s"] >= record["snapshot_end_s"]
        assert record["write_max_s"] == record["write_first_s"]


def test_writers_that_start_after_the_child_wait_for_it_in_their_first_write(run_point):
    record = run_point(**SMALL, method="fork", start="after_child", writers=1, pattern="blocked")
    assert record["write_first_s"] >= record["snapshot_end_s"]
    assert record["writes_timed_during_snapshot"] == 1  # only that first write started while the child lived


def test_copy_faults_slow_the_writes_they_hit(run_point):
    # The child holds every page until the writers end: each 4 KiB span
    # written while it lives is a copy-on-write fault, each span of the
    # baseline a write to a resident page.
    point = {**SMALL, "size_mib": 32, "writers": 1, "pattern": "blocked", "write_latency_kib": 4}
    fork = run_point(**point, method="fork", hold="writers", release="none")
    baseline = run_point(**point, method="none")
    assert fork["writer_minflt_during_snapshot"] >= 0.9 * fork["pages"]  # every span faulted
    assert fork["write_p50_s_during_snapshot"] > 2 * baseline["write_p50_s"]


def test_python_reads_the_histogram_as_the_benchmark_does(run_point):
    record = run_point(**SMALL, method="fork", writers=2, pattern="blocked")
    table = aggregate.latency_table([{"run_id": "r", **record}], pd.DataFrame({"run_id": ["r"], "timed": [True]}))
    whole = table[table["latency_phase"] == "all"].sort_values("latency_ns")
    for q, key in ((0.5, "write_p50_s"), (0.99, "write_p99_s"), (0.999, "write_p999_s")):
        rank = q * whole["latency_writes"].sum()
        holding = whole[whole["latency_writes"].cumsum() >= rank].iloc[0]["latency_ns"]
        upper = holding + max(1, holding // SUB_BUCKETS) if holding >= 2 * SUB_BUCKETS else holding + 1
        assert holding * 1e-9 <= record[key] <= min(upper * 1e-9, record["write_max_s"]) + 1e-15
    assert whole["latency_ns"].max() * 1e-9 <= record["write_max_s"]
