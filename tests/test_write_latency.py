"""Write latency as the records report it: every method times exactly the
spans its writers visit, or with write_latency_kib=0 none; the percentiles
are ordered and the histogram's phases add up; the first write holds the
snapshot's begin (and, where the writers wait, its end); a copy-on-write
fault shows in the median write; Python reads the benchmark's histogram
to the same percentiles. Real benchmark runs on small arrays."""

import math
import random
import subprocess
from collections import Counter
from itertools import accumulate
from pathlib import Path

import pytest

from cowsnap.measure import native

METHODS = ("none", "fork", "uffd", "stop")
SMALL = {"size_mib": 8, "batch_kib": 512, "copiers": 1, "memcpy_mib": 0}
PERCENTILES = {"write_p50_s": 0.5, "write_p99_s": 0.99, "write_p999_s": 0.999}
LATENCY_KEYS = ("writes_timed", "write_p50_s", "write_p99_s", "write_p999_s", "write_max_s", "write_first_s")


RNG = random.Random(7)
LATENCY_FEEDS = {
    "log-uniform, 1 ns to 1 s": [int(10 ** RNG.uniform(0, 9)) for _ in range(20_000)] + [3, 3, 3, 40, 63, 64, 65],
    "exact, 1 to 60 ns": list(range(60, 0, -1)),
}


@pytest.mark.parametrize("feed", LATENCY_FEEDS)
def test_every_percentile_of_the_histogram_is_the_nearest_rank_of_its_raw_values(tmp_path, feed):
    """The benchmark's histogram (native/bench/latency.cpp), fed known values: each
    percentile is the nearest-rank percentile of the raw values, to the
    histogram's resolution (exact below 64 ns, 1/32 of the value above), and
    never above the largest value."""
    program = tmp_path / "histogram_check"
    here = Path(__file__).parent / "data" / "histogram_check.cpp"
    sources = [str(here), str(native.NATIVE_DIR / "bench" / "latency.cpp")]
    subprocess.run(
        ["c++", "-O2", "-std=c++17", f"-I{native.NATIVE_DIR / native.COMMON}", *sources, "-o", str(program)], check=True
    )
    values = LATENCY_FEEDS[feed]
    quantiles = ("0.001", "0.1", "0.5", "0.9", "0.99", "0.999", "1")
    printed = subprocess.run([str(program), *quantiles], input="\n".join(map(str, values)), capture_output=True,
                             text=True, check=True).stdout  # fmt: skip
    got = dict(line.split() for line in printed.splitlines())
    ordered = sorted(values)
    assert int(got["max"]) == ordered[-1]
    for q in quantiles:
        raw = ordered[max(1, math.ceil(float(q) * len(values))) - 1]  # nearest rank
        resolution = 1 if raw < 64 else raw / 32
        assert raw <= int(got[q]) <= min(raw + resolution, ordered[-1]) or int(got[q]) == raw == ordered[-1], q


def spans_visited(size_mib, span_kib, writers, pattern):
    """The spans each writer writes into, summed over the writers."""
    n, span = size_mib * 2**20 // 8, span_kib * 1024 // 8
    total = 0
    for t in range(writers):
        if pattern == "blocked":
            first, last = n * t // writers, n * (t + 1) // writers
            total += (last - 1) // span - first // span + 1 if last > first else 0
        else:  # elements t, t + writers, ...: a span counts if one of them falls in it
            starts = range(0, n, span)
            total += sum(s + (t - s) % writers < min(s + span, n) for s in starts)
    return total


def histogram(record, phase):
    """{bucket lower bound in ns: writes} of one phase."""
    rows = zip(record["latency_phase"], record["latency_ns"], record["latency_writes"], strict=True)
    return Counter({int(ns): int(writes) for p, ns, writes in rows if p == phase})


def upper_end(lower_ns):
    """The next bucket's lower bound: exact below 64 ns, then 32 buckets per power of two."""
    return lower_ns + 1 if lower_ns < 64 else lower_ns + 2 ** (int(math.log2(lower_ns)) - 5)


def phases(record):
    return [p for p in ("during_snapshot", "after_snapshot") if f"writes_timed_{p}" in record]


@pytest.mark.parametrize("pattern", ("blocked", "interleaved"))
@pytest.mark.parametrize("method", METHODS)
def test_every_span_each_writer_visits_is_timed_once(run_point, method, pattern):
    # 3 writers and 20 KiB spans: blocked slices and the array's end fall inside spans.
    record = run_point(**SMALL, method=method, writers=3, pattern=pattern, write_latency_kib=20)
    assert record["writes_timed"] == spans_visited(8, 20, 3, pattern)
    whole = histogram(record, "all")
    assert sum(whole.values()) == record["writes_timed"]
    for suffix in ["", *(f"_{p}" for p in phases(record))]:
        p50, p99, p999, top = (record[f"write_{k}_s{suffix}"] for k in ("p50", "p99", "p999", "max"))
        assert 0 < p50 <= p99 <= p999 <= top <= record["write_max_s"]
    if method == "none":
        assert set(record["latency_phase"]) == {"all"} and not phases(record)
        return
    during, after = histogram(record, "during_snapshot"), histogram(record, "after_snapshot")
    assert phases(record) and whole == during + after  # bucket by bucket
    for p, counts in (("during_snapshot", during), ("after_snapshot", after)):
        assert sum(counts.values()) == record.get(f"writes_timed_{p}", 0)
    assert record["write_max_s"] == max(record[f"write_max_s_{p}"] for p in phases(record))


@pytest.mark.parametrize("method", METHODS)
def test_nothing_is_timed_when_latency_is_off(run_point, method):
    record = run_point(**SMALL, method=method, writers=2, write_latency_kib=0)
    assert not [key for key in record if key.startswith(LATENCY_KEYS)]
    assert record["latency_phase"] == record["latency_ns"] == record["latency_writes"] == []


# (method, start, whether the writers wait for the snapshot's end)
SNAPSHOTS = [("fork", "with_child", False), ("uffd", "with_child", False), ("fork", "after_child", True)]
SNAPSHOTS += [("uffd", "after_child", True), ("stop", "with_child", True)]


@pytest.mark.parametrize("method, start, waits", SNAPSHOTS)
def test_the_first_write_holds_the_snapshots_begin_and_where_writers_wait_its_end(run_point, method, start, waits):
    record = run_point(**SMALL, method=method, start=start, writers=2, pattern="blocked")
    assert record["snapshot_pause_s"] <= record["write_first_s"] <= record["write_max_s"]
    if waits:
        assert record["write_first_s"] >= record["snapshot_end_s"]
        assert record["writes_timed_during_snapshot"] == 2  # each writer's first write, nothing else
    if method == "stop":  # the whole copy is inside the first write
        assert record["write_max_s"] == record["write_first_s"]


def test_copy_on_write_faults_raise_the_median_write(run_point):
    # The child keeps every page until the writers end: each 4 KiB span
    # written during the snapshot copies a page; the baseline's are resident.
    point = {**SMALL, "size_mib": 32, "writers": 1, "pattern": "blocked", "write_latency_kib": 4}
    fork = run_point(**point, method="fork", hold="writers", release="none")
    baseline = run_point(**point, method="none")
    assert fork["writes_timed_during_snapshot"] > 1000
    assert fork["write_p50_s_during_snapshot"] > 2 * baseline["write_p50_s"]


def test_python_reads_the_histogram_to_the_benchmarks_percentiles(run_point):
    record = run_point(**SMALL, method="fork", writers=2, pattern="blocked", write_latency_kib=4)
    for phase, suffix in [("all", ""), *((p, f"_{p}") for p in phases(record))]:
        buckets = sorted(histogram(record, phase).items())
        max_ns = round(record[f"write_max_s{suffix}"] * 1e9)
        assert buckets[-1][0] <= max_ns < upper_end(buckets[-1][0])
        seen = list(accumulate(writes for _, writes in buckets))
        for key, q in PERCENTILES.items():  # the bucket holding the q-th write
            lower = next(ns for (ns, _), upto in zip(buckets, seen, strict=True) if upto >= q * seen[-1])
            assert record[key + suffix] == min(upper_end(lower), max_ns) * 1e-9, (phase, key)
