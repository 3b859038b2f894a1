"""Relations the kernel guarantees, measured on small 4 KiB-page arrays.

Copies are exact per writer thread (delay accounting); vmstat counters are
system-wide, so relations on them leave a margin for the rest of the machine.
"""

import statistics

import pytest

SIZE = {"size_mib": 32, "batch_kib": 512, "pattern": "blocked"}


def test_after_child_exit_writes_are_reuses_not_copies(run_point):
    record = run_point(method="fork", start="after_child", **SIZE)
    pages = record["pages"]
    assert record["snapshot_ok"] is True
    # Every page is still write-protected after the child exits: one fault each...
    assert pages <= record["writer_minflt_after_snapshot"] <= 1.05 * pages
    # ...and each one takes the page back without copying it (the writer
    # threads' own counts), as the system's reuse counter agrees.
    assert record["writer_wpcopy_count_after_snapshot"] == 0
    assert record["pgreuse_after_snapshot"] >= 0.95 * pages
    # The writers started after the snapshot ended: no writes before.
    assert record["writer_minflt_during_snapshot"] <= 0.01 * pages


def test_writes_while_the_child_holds_the_snapshot_are_copies(run_point):
    records = [run_point(method="fork", hold="writers", release="none", start="with_child", **SIZE) for _ in range(3)]
    record = records[0]
    pages = record["pages"]
    assert record["snapshot_ok"] is True
    # One copy per page, by the writer threads' own counts (a few more are
    # their first writes to stack and heap pages shared since fork).
    assert pages <= record["writer_wpcopy_count_during_snapshot"] <= 1.01 * pages
    # Next to no reuse: pgreuse is system-wide, so the median of 3 runs (a
    # burst of faults elsewhere on the machine during one run does not count).
    assert statistics.median(r["pgreuse"] for r in records) <= 0.02 * pages
    # The child exited only after the writers were done.
    assert record["snapshot_end_s"] >= record["writers_s"]
    assert record["writers_s_after_snapshot"] == 0
    assert record["writer_minflt_after_snapshot"] == 0
    assert record["writer_stime_s_during_snapshot"] == record["writer_stime_s"]


def test_no_snapshot_no_write_faults(run_point):
    record = run_point(method="none", **SIZE)
    assert record["writer_minflt"] <= 0.01 * record["pages"]
    assert record["snapshot_pause_s"] < record["writers_s"]
    assert "snapshot_ok" not in record


@pytest.mark.parametrize("exit_", ["early", "normal"])
@pytest.mark.parametrize("release", ["munmap", "dontneed", "none"])
def test_snapshot_is_consistent_however_the_child_releases_and_exits(run_point, release, exit_):
    record = run_point(method="fork", release=release, exit=exit_, size_mib=16, batch_kib=256)
    assert record["snapshot_ok"] is True
    assert record["child_copy_s"] > 0 and record["snapshot_end_s"] > 0
    # Every release call is checked and counted; on an aligned array they succeed.
    assert record["release_calls"] == (0 if release == "none" else record["batches"])
    assert record["release_failed"] == 0


def test_stop_the_world_copy_is_consistent_and_faultless(run_point):
    record = run_point(method="stop", **SIZE)
    assert record["snapshot_ok"] is True
    # The copy holds the writers up, inside their timed span.
    assert 0 < record["snapshot_pause_s"] <= record["writers_s"]
    assert record["writer_minflt"] <= 0.01 * record["pages"]


@pytest.mark.parametrize("method", ["fork", "uffd", "stop"])
def test_every_method_is_timed_from_the_same_instant(run_point, method):
    record = run_point(method=method, **SIZE)
    pause = record["snapshot_pause_s"]
    assert 0 < pause <= record["writers_s"]
    # What holds the writers up is the method's own first step, inside the span.
    own = {"fork": "fork_s", "uffd": "uffd_protect_s", "stop": "snapshot_pause_s"}[method]
    assert record[own] <= pause
    assert record["writers_s_during_snapshot"] + record["writers_s_after_snapshot"] == pytest.approx(
        record["writers_s"]
    )
    # Page tables before the snapshot, for every method: at least one 8-byte
    # entry per 4 KiB page of the array (a 4 KiB page of PTEs maps 2 MiB).
    assert record["vm_pte_kib"] >= record["pages"] * 8 / 1024


def test_sharing_falls_to_zero_once_the_child_released_everything(run_point):
    record = run_point(method="fork", hold="writers", release="none", sharing_interval_ms=1, **SIZE)
    shared = record["sharing_pages"]
    assert len(shared) == len(record["sharing_s"]) >= 2
    assert shared[0] == record["pages"]  # before the writers start, all shared (nothing released)
    assert shared[-1] == 0  # the writers copied every page they wrote


def test_the_seed_allocation_makes_every_munmap_fail(run_point):
    # The seed's `new std::array` is 16 bytes into a page: its munmap of a
    # batch fails with EINVAL, so every page stays shared until the child exits.
    record = run_point(method="fork", alloc="new", writers=1, hold="writers", release="munmap", **SIZE)
    assert record["pages"] == SIZE["size_mib"] * 256 + 1  # one more page: it is not aligned
    assert record["release_calls"] == record["batches"] > 0
    assert record["release_failed"] == record["release_calls"]
    assert record["release_errno"] == "EINVAL"
    pages = record["pages"]
    assert pages <= record["writer_wpcopy_count_during_snapshot"] <= 1.01 * pages
    assert record["snapshot_ok"] is True


def test_a_wrong_snapshot_fails_the_run(run_point_raw):
    # MADV_WIPEONFORK on the first batch: the child sees zeros there.
    record = run_point_raw(method="fork", inject="wipe-on-fork", **SIZE)
    assert record["status"] == "failed"
    assert record["snapshot_ok"] is False
    assert "snapshot inconsistent" in record["reason"]


@pytest.mark.parametrize("method", ["fork", "uffd", "stop"])
def test_a_copy_not_checked_says_so_for_every_method(run_point, method):
    """check_copy false (the seed's program checks nothing): no method
    checks, and the record says why there is no snapshot_ok."""
    record = run_point(method=method, check_copy=False, **SIZE)
    assert "snapshot_ok" not in record and "child_check_s" not in record
    assert record["snapshot_check"].startswith("not checked: check_copy is false")
    checked = run_point(method=method, **SIZE)
    assert checked["snapshot_ok"] is True and "snapshot_check" not in checked


def test_a_wrong_snapshot_nothing_checks_is_refused():
    from cowsnap.plan import config, grid

    with pytest.raises(config.ConfigError, match="inject=wipe-on-fork applies to none of its points"):
        grid.check_applies(
            [config.validate_point({"method": "fork", "inject": "wipe-on-fork", "check_copy": False})], "p"
        )


def test_the_benchmark_runs_in_a_lean_process(run_point):
    # Not inside the Python/Cling process that called it: a fork there
    # copies thousands of mappings.
    record = run_point(method="none", size_mib=4, batch_kib=64)
    with open("/proc/self/maps") as maps:
        here = len(maps.readlines())
    assert record["process_mappings"] * 4 < here


def test_normal_exit_tears_down_only_the_benchmark(run_point):
    early = run_point(method="fork", exit="early", size_mib=64, batch_kib=2048, writers=1, copiers=1)
    normal = run_point(method="fork", exit="normal", size_mib=64, batch_kib=2048, writers=1, copiers=1)
    assert abs(normal["child_minflt"] - early["child_minflt"]) < 100


def test_uffd_wakes_a_writer_only_once_its_batch_is_copied(run_point):
    record = run_point(method="uffd", writers=2, **SIZE)
    assert record["snapshot_ok"] is True
    # A woken writer finds its page unprotected: at most one fault per
    # writer and batch, never a loop of faults on a batch being copied.
    assert record["uffd_faults"] <= record["writers"] * record["batches"]


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
        "writer_majflt",
        "writer_cpu_delay_s",
    ):
        assert key in record, key
    assert record["fork_empty_s"] > 0
