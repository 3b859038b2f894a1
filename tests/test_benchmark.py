"""Relations the kernel guarantees, measured on small 4 KiB-page arrays.

vmstat counters are system-wide: these tests assume nothing else on the
machine faults heavily while they run, and leave a margin for what does.
"""

import pytest

SIZE = {"size_mib": 32, "batch_kib": 512, "pattern": "blocked"}


def test_after_child_exit_writes_are_reuses_not_copies(run_point):
    record = run_point(method="fork", start="after_child", **SIZE)
    pages = record["pages"]
    assert record["snapshot_ok"] is True
    # Every page is still write-protected after the child exits: one fault each...
    assert pages <= record["writer_minflt"] <= 1.05 * pages
    # ...and each one takes the page back without copying it.
    assert record["pgreuse"] >= 0.95 * record["writer_minflt"]
    assert record["pgreuse_before_exit"] == 0
    # All of it after the exit, by the writer threads' own counts too.
    assert record["writer_minflt_before_exit"] == 0
    assert record["writer_minflt_after_exit"] == record["writer_minflt"]


def test_writes_while_the_child_holds_the_snapshot_are_copies(run_point):
    record = run_point(method="fork", hold="writers", release="none", start="with_child", **SIZE)
    pages = record["pages"]
    assert record["snapshot_ok"] is True
    assert pages <= record["writer_minflt"] <= 1.05 * pages
    assert record["pgreuse"] <= 0.02 * pages
    # The child exited only after the writers were done.
    assert record["child_reaped_s"] >= record["writers_s"]
    assert record["writers_s_after_exit"] == 0
    assert record["writer_minflt_after_exit"] == 0
    assert record["writer_stime_s_before_exit"] == record["writer_stime_s"]


def test_no_snapshot_no_write_faults(run_point):
    record = run_point(method="none", **SIZE)
    assert record["writer_minflt"] <= 0.01 * record["pages"]
    assert "snapshot_ok" not in record


@pytest.mark.parametrize("exit_", ["early", "normal"])
@pytest.mark.parametrize("release", ["munmap", "dontneed", "none"])
def test_snapshot_is_consistent_however_the_child_releases_and_exits(run_point, release, exit_):
    record = run_point(method="fork", release=release, exit=exit_, size_mib=16, batch_kib=256)
    assert record["snapshot_ok"] is True
    assert record["child_copy_s"] > 0 and record["child_reaped_s"] > 0


def test_stop_the_world_copy_is_consistent_and_faultless(run_point):
    record = run_point(method="stop", **SIZE)
    assert record["snapshot_ok"] is True
    assert record["pause_s"] > 0
    assert record["writer_minflt"] <= 0.01 * record["pages"]


def test_sharing_falls_to_zero_once_the_child_released_everything(run_point):
    record = run_point(method="fork", hold="writers", release="none", sharing_interval_ms=1, **SIZE)
    shared = record["sharing_pages"]
    assert len(shared) == len(record["sharing_s"]) >= 2
    assert shared[0] == record["pages"]  # before the writers start, all shared (nothing released)
    assert shared[-1] == 0  # the writers copied every page they wrote


def test_record_carries_the_build_and_environment(run_point):
    record = run_point(method="none", size_mib=4, batch_kib=64)
    for key in (
        "cxxflags",
        "cppyy_version",
        "source_hash",
        "kernel",
        "cpu_model",
        "online_cpus",
        "thp_enabled",
        "thp_defrag",
        "fork_empty_s",
        "fill_s",
        "writers_s",
        "parent_minflt",
    ):
        assert key in record, key
    assert record["fork_empty_s"] > 0
