"""Writers that keep writing across the child's exit: passes, a time, a
rate, random and skewed patterns, and the share of the first pass written
while the child lives (touched_during). Relations that hold on any Linux
kernel: the pages a pattern claims to touch are the pages the kernel
faulted, in each phase."""

import pytest

from cowsnap.plan import patterns

# 4 KiB pages, and a child that keeps every batch until it exits: each page
# the writers first write while it lives takes exactly one write fault then.
SMALL = {"size_mib": 16, "batch_kib": 2048, "backing": "4k", "release": "none", "writers": 1, "copiers": 1}
PAGES = 16 * 256


def expected_pages(writes: float, pattern: str) -> float:
    """Distinct pages that many one-element writes touch, in expectation:
    the cost model's term (cowsnap.plan.patterns.distinct_pages)."""
    return patterns.distinct_pages(pattern, PAGES, writes)


@pytest.mark.parametrize("pattern", ("random", "skewed"))
def test_a_random_pattern_touches_the_pages_it_claims_in_each_phase(run_point, pattern):
    record = run_point(method="fork", pattern=pattern, passes=2, touched_during=0.5, **SMALL)
    # Half of the first pass while the child lived, one and a half after.
    assert record["writes"] == 2 * PAGES
    during, written = record["pages_written_during_snapshot"], record["pages_written"]
    assert during == pytest.approx(expected_pages(PAGES / 2, pattern), rel=0.05)
    assert written == pytest.approx(expected_pages(2 * PAGES, pattern), rel=0.05)
    # The kernel agrees: one write fault per page first written in a phase
    # (a few more for the writer's own stack and histograms).
    assert during <= record["writer_minflt_during_snapshot"] <= during + 32
    assert written - during <= record["writer_minflt_after_snapshot"] <= written - during + 32


def test_the_skewed_pattern_touches_fewer_pages_than_the_uniform_one(run_point):
    uniform = run_point(method="fork", pattern="random", passes=2, **SMALL)
    skewed = run_point(method="fork", pattern="skewed", passes=2, **SMALL)
    assert skewed["pages_written"] < 0.8 * uniform["pages_written"]


@pytest.mark.parametrize("pattern", ("interleaved", "blocked"))
def test_a_strided_pattern_writes_its_share_before_the_exit(run_point, pattern):
    record = run_point(method="fork", pattern=pattern, touched_during=0.25, **SMALL)
    assert record["pages_written"] == PAGES
    assert record["pages_written_during_snapshot"] == pytest.approx(PAGES / 4, abs=1)
    assert PAGES / 4 <= record["writer_minflt_during_snapshot"] <= PAGES / 4 + 32
    # The rest after the exit, each page reused: its only mapping is the parent's.
    assert 3 * PAGES / 4 <= record["writer_minflt_after_snapshot"] <= 3 * PAGES / 4 + 32
    assert record["writers_paused_s"] > 0


def test_no_share_during_the_snapshot_leaves_every_write_after_it(run_point):
    record = run_point(method="fork", pattern="random", touched_during=0, **SMALL)
    assert record["pages_written_during_snapshot"] == 0
    assert record["writer_minflt_during_snapshot"] <= 32
    assert record["writer_minflt_after_snapshot"] >= record["pages_written"]


def test_later_passes_write_after_the_exit_without_faulting_again(run_point):
    one = run_point(method="fork", pattern="blocked", touched_during=0.5, **SMALL)
    three = run_point(method="fork", pattern="blocked", touched_during=0.5, passes=3, **SMALL)
    assert three["writes"] == 3 * one["writes"]
    # A page written once is the parent's alone: passes two and three fault on nothing new.
    assert three["writer_minflt"] <= one["writer_minflt"] + 32


def test_writers_given_a_time_write_until_it_has_passed(run_point):
    record = run_point(method="none", pattern="random", write_s=0.3, **SMALL)
    assert record["writers_s"] >= 0.3
    assert record["writes"] > PAGES  # more than one pass in that time


def test_a_write_rate_paces_the_writers(run_point):
    # 4,096 writes at 20,000 a second take 0.2 s at least, whatever the machine.
    record = run_point(method="none", pattern="random", write_rate=20_000, write_latency_kib=0, **SMALL)
    assert record["writes"] == PAGES
    assert record["writers_s"] >= PAGES / 20_000
