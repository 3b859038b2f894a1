"""The one verdict (cowsnap.analyse.verdict): each boundary probed, the
documented thresholds pinned, and the sweep's summary and the watch
reading the same numbers the same way."""

import math
import re
from pathlib import Path

import pandas as pd

from cowsnap.analyse import summary, verdict
from cowsnap.analyse.watch import report as watch_report


def test_the_documented_thresholds():
    # docs/watch.md and the verdict module's docstring state these values.
    assert (verdict.NOT_COPYING, verdict.MOSTLY, verdict.COPYING_MIN_PAGES) == (0.01, 0.5, 256)
    assert (verdict.LEVER_SHARE, verdict.REUSING_SHARE, verdict.DISAGREE_SHARE) == (0.1, 0.5, 0.1)


def test_docs_watch_states_the_verdicts_own_words_and_thresholds():
    """docs/watch.md spells the verdict's words and thresholds again for the
    reader: they are the verdict module's, and no other word for copying is quoted."""
    text = " ".join((Path(__file__).parents[1] / "docs" / "watch.md").read_text().split())
    rule = re.search(
        r'"([a-z ]+)" under (\d+) copies or under (\d+)% of the minor faults, '
        r'"([a-z ]+)" at (\d+)% or more, "([a-z ]+)" between',
        text,
    )
    assert rule, "docs/watch.md no longer states the verdict's rule as tests/test_verdict.py reads it"
    not_copying, pages, under, copying, mostly, partly = rule.groups()
    assert (not_copying, copying, partly) == (
        verdict.NOT_COPYING_WORD,
        verdict.COPYING_WORD,
        verdict.PARTLY_COPYING_WORD,
    )
    assert (int(pages), int(under) / 100, int(mostly) / 100) == (
        verdict.COPYING_MIN_PAGES,
        verdict.NOT_COPYING,
        verdict.MOSTLY,
    )
    words = {verdict.COPYING_WORD, verdict.PARTLY_COPYING_WORD, verdict.NOT_COPYING_WORD}
    quoted = set(re.findall(r'"([a-z ]*copying)"', text))
    assert quoted <= words, f"docs/watch.md quotes verdict words verdict.py does not have: {quoted - words}"


def test_each_boundary_of_the_copying_word():
    faults = 1_000_000
    assert verdict.copying_word(0.5 * faults, faults) == verdict.COPYING_WORD == "copying"
    assert verdict.copying_word(0.5 * faults - 1, faults) == verdict.PARTLY_COPYING_WORD == "partly copying"
    assert verdict.copying_word(0.01 * faults, faults) == verdict.PARTLY_COPYING_WORD
    assert verdict.copying_word(0.01 * faults - 1, faults) == verdict.NOT_COPYING_WORD == "not copying"
    # Few copies are a fork's own stack pages, whatever their share.
    assert verdict.copying_word(255, 255) == verdict.NOT_COPYING_WORD
    assert verdict.copying_word(256, 256) == verdict.COPYING_WORD


def phase(**values) -> dict:
    base = {
        "seconds": 1.0,
        "wpcopy_count": 0.0,
        "wpcopy_delay_s": 0.01,
        "child_wpcopy_count": 0.0,
        "unaccounted_minflt": 0.0,
        "private_dirty_pages": math.nan,
        "minflt": 1000.0,
        "majflt": 0.0,
        "utime_s": 0.1,
        "stime_s": 0.1,
        "cpu_delay_s": 0.0,
        "pgreuse": 0.0,
        "why_not": "",
    }
    return {**base, **values}


def test_the_summary_and_the_watch_say_the_same_of_the_same_numbers():
    for copies in (600.0, 6000.0, 10.0):
        watch_words = watch_report.phase_lines("during_snapshot", phase(wpcopy_count=copies, minflt=10_000.0), 1)[0]
        sweep_words = summary.copying_words(copies, 10_000.0, "taskstats", "minor faults")
        word = verdict.copying_word(copies, 10_000.0)
        assert f"): {word}:" in watch_words and sweep_words.startswith(f"{word}:")


def test_the_best_source_is_named_and_a_zero_from_unaccounted_threads_is_no_count():
    copies, source, note = verdict.best_copies(phase(wpcopy_count=900.0))
    assert (copies, source, note) == (900.0, "taskstats", "")
    # Threads without delay accounting faulted: taskstats is not exact, the
    # children's private dirty pages count instead.
    copies, source, _ = verdict.best_copies(phase(wpcopy_count=0.0, unaccounted_minflt=900.0, private_dirty_pages=880))
    assert (copies, source) == (880, "child_private_dirty")
    # No source at all: not counted, never 0, and never "not copying".
    copies, source, why = verdict.best_copies(phase(wpcopy_count=0.0, unaccounted_minflt=900.0))
    assert math.isnan(copies) and source == "" and "900 minor faults" in why
    line = watch_report.phase_lines("after_snapshot", phase(wpcopy_count=0.0, unaccounted_minflt=900.0), 42)[0]
    assert "copies not counted" in line and "not copying" not in line and "cowsnap watch --pid 42" in line


def test_two_sources_that_disagree_are_flagged():
    _, _, note = verdict.best_copies(phase(wpcopy_count=10_000.0, private_dirty_pages=8_000.0))
    assert "disagree" in note
    _, _, note = verdict.best_copies(phase(wpcopy_count=10_000.0, private_dirty_pages=9_500.0))
    assert note == ""


def test_a_disagreement_needs_both_its_share_and_its_page_floor():
    assert not verdict.disagree(300.0, 100.0)  # 67% apart, but by 200 pages, under COPYING_MIN_PAGES
    assert verdict.disagree(100.0 + verdict.COPYING_MIN_PAGES + 1, 100.0)
    assert not verdict.disagree(10_000.0, 9_100.0)  # 910 pages, but 9%: under DISAGREE_SHARE


def test_the_parent_lever_needs_its_share_of_the_copies():
    # 1,000 copies: the parent made 150 (15%, over LEVER_SHARE), then 50 (5%).
    assert "munmap or MADV_DONTNEED" in verdict.lever("during_snapshot", 1000.0, 850.0, 0.0, 1000.0)
    assert "munmap or MADV_DONTNEED" not in verdict.lever("during_snapshot", 1000.0, 950.0, 0.0, 1000.0)


def test_levers_follow_the_shares():
    lever = verdict.lever("during_snapshot", 900.0, 300.0, 0.0, 1000.0)
    assert "munmap or MADV_DONTNEED" in lever and "MADV_DONTFORK" in lever
    assert "MADV_DONTFORK" not in verdict.lever("during_snapshot", 900.0, 89.0, 0.0, 1000.0)
    assert "MADV_POPULATE_WRITE" in verdict.lever("after_snapshot", 0.0, 0.0, 500.0, 1000.0)
    assert verdict.lever("after_snapshot", 0.0, 0.0, 499.0, 1000.0) == ""
    row = pd.Series({"copies_after_snapshot": 0.0, "writer_minflt_after_snapshot": 1000.0})
    assert "MADV_POPULATE_WRITE" in summary.watch_lever({**row, "reuses_after_snapshot": 900.0}, "_after_snapshot")


def test_memory_cost_in_words():
    words = verdict.memory_words(67_584, 72_704, "taskstats")
    assert words.startswith("the snapshot copied 264.0 MiB (taskstats), 93% of the 284.0 MiB")
    assert verdict.memory_words(math.nan, 1.0, "x") == ""


def test_what_held_up_the_longest_write_is_read_from_the_numbers():
    fork = {"method": "fork", "start": "with_child", "write_max_s": 0.010, "snapshot_end_s": 0.5}
    # The first write is the longest and the fork call took most of it.
    held = {**fork, "write_first_s": 0.010, "snapshot_pause_s": 0.005}
    assert verdict.longest_write_cause(held) == "the first write, held up by the fork call of 5 ms"
    # Just under START_SHARE of it: the fork call did not hold it up alone.
    woke = {**held, "snapshot_pause_s": 0.0049}
    assert verdict.longest_write_cause(woke).startswith("the first write, after the fork call of 4.9 ms")
    # Under FIRST_WRITE_SHARE of the longest: another write, by its phase.
    later = {**fork, "write_first_s": 0.0089, "snapshot_pause_s": 0.008, "write_max_s_during_snapshot": 0.010,
             "write_max_s_after_snapshot": 0.002}  # fmt: skip
    assert verdict.longest_write_cause(later) == "a write while the snapshot lived"
    after = {**later, "write_max_s_during_snapshot": 0.001}
    assert verdict.longest_write_cause(after) == "a write after the snapshot ended"
    # Writers that start after the snapshot wait for its end, by their setting.
    waiting = {**held, "start": "after_child", "snapshot_pause_s": 0.001}
    assert "waiting for the snapshot to end" in verdict.longest_write_cause(waiting)
    outlasted = {**held, "snapshot_pause_s": 0.001, "snapshot_end_s": 0.009}
    assert verdict.longest_write_cause(outlasted) == "the first write: it ended only after the snapshot ended, at 9 ms"
    stop = {**held, "method": "stop", "start": "after_child", "snapshot_end_s": 0.0099, "snapshot_pause_s": 0.0099}
    assert verdict.longest_write_cause(stop) == "the first write, held up by the stop-the-world copy of 9.9 ms"
    assert verdict.longest_write_cause({**held, "method": "none"}) == "a write (no snapshot)"
    assert verdict.longest_write_cause({**held, "write_first_s": math.nan}) == ""


def test_latencies_read_in_their_unit():
    assert [verdict.duration(s) for s in (840e-9, 2.5e-6, 0.0121, 1.5, math.nan)] == [
        "0.84 µs", "2.5 µs", "12.1 ms", "1.5 s", "n/a"
    ]  # fmt: skip


def test_the_clock_source_says_what_timing_a_write_costs():
    assert verdict.clock_words(["tsc", "tsc"]).startswith("Clock source tsc: read in user space")
    slow = verdict.clock_words(["tsc", "hpet"])
    assert slow.startswith("Clock source hpet: not read in user space") and "bench_write_latency.py" in slow
    unknown = verdict.clock_words([math.nan])
    assert "do not record their clock source" in unknown and "not known" in unknown
