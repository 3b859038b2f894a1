"""Huge pages, mitigations, fork-free snapshots and exact copy counts:
relations that hold on Linux 5.19+; a machine without a feature skips the
test with the reason the run recorded."""

import pytest

from cowsnap.measure.bench import runner

SMALL = {"size_mib": 32, "batch_kib": 2048, "pattern": "blocked"}


def test_thp_backing_is_really_huge(run_point):
    record = run_point(method="none", backing="thp", **SMALL)
    # At least 90% of the array in huge pages, or the point is skipped.
    assert record["huge_kib"] >= 0.9 * SMALL["size_mib"] * 1024
    assert record["fill_thp_fault_alloc"] > 0


def test_thp_shared_with_a_live_child_splits_on_write(run_point):
    record = run_point(method="fork", backing="thp", hold="writers", release="none", **SMALL)
    assert record["thp_split_pmd"] > 0
    assert record["snapshot_ok"] is True


def test_thp_after_the_child_exits_is_reused_whole(run_point):
    record = run_point(method="fork", backing="thp", start="after_child", **SMALL)
    assert record["thp_split_pmd_after_snapshot"] == 0
    huge_pages = record["size_mib"] // 2
    # About one fault per 2 MiB page, not one per 4 KiB page.
    assert record["writer_minflt_after_snapshot"] <= 4 * huge_pages < record["pages"] / 100


def test_thp_after_the_child_exits_is_not_counted_as_copies(run_point):
    # A PMD-mapped THP reused whole counts in neither pgreuse nor wpcopy:
    # the writers' exact count says no copy, where faults minus pgreuse
    # would have said one per fault.
    record = run_point(method="fork", backing="thp", start="after_child", **SMALL)
    assert record["writer_wpcopy_count_after_snapshot"] == 0
    assert record["writer_minflt_after_snapshot"] > 0


def test_populate_write_after_exit_leaves_the_writers_almost_no_faults(run_point):
    plain = run_point(method="fork", start="after_child", **SMALL)
    populated = run_point(method="fork", start="after_child", populate="write-after-exit", **SMALL)
    assert plain["writer_minflt_after_snapshot"] >= plain["pages"]
    assert populated["writer_minflt_after_snapshot"] <= 0.02 * populated["pages"]
    assert populated["populate_s"] > 0


def exact_copies(record):
    if "child_wpcopy_count" not in record:
        pytest.skip("delay accounting (kernel.task_delayacct, 5.19+) is not available here")
    return record["child_wpcopy_count"]


def test_dest_fresh_removes_the_childs_own_cow_faults(run_point):
    zeroed = run_point(method="fork", dest="zeroed", **SMALL)
    fresh = run_point(method="fork", dest="fresh", **SMALL)
    assert exact_copies(zeroed) >= 0.95 * zeroed["pages"]  # the seed's zeroed destination
    assert exact_copies(fresh) <= 0.01 * fresh["pages"]


def test_exact_copies_agree_with_faults_minus_reuses(run_point):
    # pgreuse is system-wide: a burst elsewhere on the machine can land in
    # one run, so the relation is asked of the median of three.
    gaps = []
    for _ in range(3):
        record = run_point(method="fork", hold="writers", release="munmap", **SMALL)
        exact_copies(record)
        # A few copies beyond the array are the writers' own first writes
        # to heap pages shared since fork.
        assert 0 < record["writer_wpcopy_count"] <= 1.01 * record["pages"]
        gaps.append(abs(record["writer_wpcopy_count"] - (record["writer_minflt"] - record["pgreuse"])))
    assert sorted(gaps)[1] <= 0.03 * record["pages"], gaps


def test_uffd_snapshot_is_consistent_while_writers_run(run_point):
    record = run_point(method="uffd", start="with_child", **SMALL)
    assert record["snapshot_ok"] is True
    assert record["uffd_copy_s"] > 0


def test_uffd_leaves_no_write_protect_faults_after_it_ends(run_point):
    record = run_point(method="uffd", start="after_child", **SMALL)
    assert record["snapshot_ok"] is True
    assert record["writer_minflt"] <= 0.01 * record["pages"]
    assert record.get("writer_wpcopy_count", 0) == 0


def test_hugetlb_copies_whole_huge_pages(run_point):
    record = run_point(method="fork", backing="hugetlb-2m", hold="writers", release="none", **SMALL)
    exact_copies(record)
    assert record["pages"] == SMALL["size_mib"] // 2
    # At least one copy per 2 MiB page written while the child holds it,
    # and nowhere near one per 4 KiB.
    assert record["pages"] <= record["writer_wpcopy_count"] <= 2 * record["pages"]
    assert record["writer_minflt"] < SMALL["size_mib"] * 256 / 10


def test_numa_policy_is_read_back(run_point):
    record = run_point(method="none", numa_mem="bind:0", numa_writers="node:0", size_mib=8, batch_kib=512)
    assert record["numa_mem_effective"] == "bind:0"
    assert record["numa_nodes_used"] == "0:100%"


def test_missing_numa_node_is_skipped_with_reason(build):
    from cowsnap.measure import environment
    from cowsnap.measure.bench import runner
    from cowsnap.plan import grid

    node = max(environment.numa_nodes()) + 1
    record = runner.run(grid.resolve({"numa_mem": f"bind:{node}"}), build)
    assert record["status"] == "skipped"
    assert f"NUMA node {node} does not exist" in record["reason"]


def test_populate_per_released_batch_covers_every_batch(run_point):
    # More batches than the pipe of released batches holds (64 KiB / 8 B).
    record = run_point(method="fork", start="after_child", populate="write-after-release", size_mib=48, batch_kib=4)
    assert record["batches"] > 8192
    assert record["writer_minflt"] <= 0.02 * record["pages"]


def large_folio_rule(record: dict) -> None:
    """After the child exited, a write to a page of a large folio (here a
    64 KiB mTHP) copies it on kernels before 6.15 (wp_can_reuse_anon_folio:
    `if (folio_test_large(folio)) return false;`) and reuses it from 6.15
    on (__wp_can_reuse_large_anon_folio, commit 1da190f4d0a6)."""
    faults, copies = record["writer_minflt_after_snapshot"], record["writer_wpcopy_count_after_snapshot"]
    assert faults >= record["pages"]
    if runner.kernel_at_least(6, 15, record["kernel"]):
        assert copies <= 0.01 * faults, record["kernel"]
    else:
        assert copies >= 0.95 * record["pages"], record["kernel"]


def test_after_the_exit_large_folio_pages_follow_this_kernels_rule(run_point):
    record = run_point(method="fork", backing="mthp-64k", start="after_child", release="none", **SMALL)
    large_folio_rule(record)
