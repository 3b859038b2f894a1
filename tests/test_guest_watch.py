"""Watch points (method=watch) inside a VM booting another kernel: the
program, its load and its snapshot run in the guest, under the same watch
as on the host (cowsnap.measure.watch.guest).

One boot serves every check of this module: three watch points of the
program the watch tests compile (tests/data/cowpoint.c: it forks a child
that holds its pages while the parent writes half of them, then writes the
other half after the child exited), with delay accounting, without it, and
with the guest's 64 KiB mTHP size alone, and a benchmark point sharing the
boot. Without qemu, busybox or a
guest kernel the module is skipped with the reason, or fails where CI
promised them (COWSNAP_REQUIRE_VM=1), as tests/test_vm.py's are.
"""

from __future__ import annotations

import pytest
from test_vm import bootable_series, newest_series, planned_jobs
from test_watch_point import cowpoint, steps  # noqa: F401 (cowpoint: a fixture)

from cowsnap.measure import environment, guests
from cowsnap.plan import grid
from cowsnap.plan import point as plan_point
from cowsnap.plan.point import PHASE_SUFFIXES

THP = "/sys/kernel/mm/transparent_hugepage"
ONLY_64K = (
    f"grep -q '\\[always\\]' {THP}/hugepages-64kB/enabled && grep -q '\\[never\\]' {THP}/hugepages-2048kB/enabled"
)
PAGES = 2048  # 8 MiB of 4 KiB pages: half written while the child lives, half after
NAMED_SHAPE = {"vm_cpus": 3, "vm_memory_mib": 1536}  # beyond what auto gives (2 vCPUs, 1024 MiB)
HALF = PAGES // 2


def watch_keys(program, **keys) -> dict:
    """A cowpoint watch point, each step held by the point's commands."""
    point = grid.resolve({"method": "watch", **steps(program, PAGES), "watch_after_s": 60, "timeout_s": 60, **keys})
    grid.check_point(point, "point")
    return point


@pytest.fixture(scope="module")
def booted(build, cowpoint, tmp_path_factory):  # noqa: F811
    series = bootable_series()
    points = {
        "watch": watch_keys(cowpoint, vm_kernel=series),
        "watch delayacct=false": watch_keys(cowpoint, vm_kernel=series, delayacct=False),
        # The program starts only where the guest's THP sizes are the point's: 64 KiB alone, no PMD size.
        "watch mthp=mthp-64k": watch_keys(
            cowpoint,
            vm_kernel=series,
            mthp="mthp-64k",
            watch_command=["sh", "-c", f"{ONLY_64K} && exec {cowpoint} {PAGES}"],
        ),
        # Its VM's shape named: the boot takes it for every point.
        "bench": grid.resolve({"method": "none", "size_mib": 8, "memcpy_mib": 0, "vm_kernel": series, **NAMED_SHAPE}),
    }
    runs = [(p, {"run_id": name}) for name, p in points.items()]
    records = guests.run_boot(runs, build, tmp_path_factory.mktemp("vm"))
    return {record["run_id"]: record for record in records}


def ok(record: dict) -> dict:
    assert record["status"] == "ok", record["reason"]
    return record


def test_a_watch_point_runs_in_the_guest_and_says_so(booted):
    record = ok(booted["watch"])
    assert record["virtualized"] in ("tcg", "kvm")
    assert record["kernel"] == record["vm_kernel_release"] != record["host_kernel"]
    assert record["vm_kernel"] == newest_series()
    assert record["watch_command"].endswith(f"cowpoint {PAGES}")  # a watch point's settings, not an array's
    assert "size_mib" not in record


def test_the_guest_counts_copies_per_phase_as_the_host_does(booted):
    record = ok(booted["watch"])
    assert record["writer_wpcopy_source"] == record["child_wpcopy_source"] == "taskstats"
    assert record["delayacct_effective"] is True
    for suffix in PHASE_SUFFIXES:
        for stem in ("writer_wpcopy_count", "writer_minflt", "pgreuse", "watch_s"):
            assert f"{stem}{suffix}" in record, f"{stem}{suffix}"
    # A copy per page written while the child held it (a few more for the program's stack and libc)...
    assert HALF <= record["writer_wpcopy_count_during_snapshot"] <= 1.05 * HALF + 64
    # ...and none after it exited: the writes reuse their pages (pgreuse is system-wide: a floor only).
    assert record["writer_wpcopy_count_after_snapshot"] <= 0.01 * HALF
    assert record["writer_minflt_after_snapshot"] >= HALF
    assert record["pgreuse_after_snapshot"] >= 0.9 * HALF
    assert record["children"] == record["snapshot_child_count"] == 1


def test_a_count_the_guest_cannot_read_is_absent_with_its_reason(booted):
    record = ok(booted["watch delayacct=false"])
    assert record["delayacct_effective"] is False  # the guest's knob, set by its script, not the host's
    assert record["writer_wpcopy_source"].startswith("not counted: delayacct=false")
    for key in ("writer_wpcopy_count", *(f"writer_wpcopy_count{suffix}" for suffix in PHASE_SUFFIXES)):
        assert key not in record, key  # absent, never 0
    assert record["writer_minflt_during_snapshot"] >= HALF  # /proc still counts the faults


def test_the_guest_sets_the_points_mthp_size_alone(booted):
    record = booted["watch mthp=mthp-64k"]
    if "offers no 64kB THP size" in record["reason"]:  # a guest kernel before mTHP (6.8)
        pytest.skip("this kernel offers no 64 KiB THP size")  # the words tests/skip-allowlist.txt accepts
    ok(record)
    assert record["mthp"] == "mthp-64k"
    assert record["writer_wpcopy_count_during_snapshot"] >= HALF  # the program ran, and copied


def test_a_benchmark_point_shares_the_watch_points_boot(booted):
    record = ok(booted["bench"])
    assert record["vm_boot_s"] == booted["watch"]["vm_boot_s"]  # one boot
    for shared in (record, booted["watch"]):  # the boot's shape, as the benchmark point named it
        assert shared["online_cpus"] == NAMED_SHAPE["vm_cpus"]
        assert 1024 < shared["mem_total_mib"] <= NAMED_SHAPE["vm_memory_mib"]
    assert record["pages"] == 8 * 256


def test_the_guest_reports_what_its_python_took_before_watching(booted):
    record = ok(booted["watch"])
    assert record["guest_import_s"] > 0 and record["guest_native_load_s"] > 0
    assert record["guest_import_s"] + record["guest_native_load_s"] < record["vm_boot_s"]


# ---- without a boot


def test_a_watch_point_takes_a_vm_kernel_and_keeps_its_id_on_the_host(cowpoint):  # noqa: F811
    host = watch_keys(cowpoint)
    guest = watch_keys(cowpoint, vm_kernel="6.12")
    assert guest["vm_kernel"] == "6.12" and grid.recorded_settings(guest)["vm_kernel"] == "6.12"
    assert grid.point_id(host) != grid.point_id(guest)
    assert grid.point_id(host) == grid.point_id(grid.resolve({**host, "vm_kernel": "host"}))


def test_a_guest_watch_point_is_run_by_its_kernels_boot(tmp_path):
    """A watch point of one kernel is measured in the boot of that kernel's benchmark points, not on the host."""
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.yaml").write_text(
        """
experiments:
  w:
    repetitions: 1
    matrix:
      - {method: [watch], watch_command: ['sleep 1'], snapshot_command: ['true'], vm_kernel: ['6.12']}
      - {method: [none], size_mib: [8], memcpy_mib: [0], vm_kernel: ['6.12']}
"""
    )
    jobs, output = planned_jobs(tmp_path)
    assert jobs["run_vm_boot"] == "1" and jobs["run_point"] == "2"
    assert "watch_point" not in jobs
    assert "results/vm/6.12-1nodes" in output


def test_a_guest_watch_point_uses_the_hosts_python_and_this_checkout(tmp_path, build):
    point = grid.resolve({"method": "watch", "watch_command": "sleep 1", "vm_kernel": "6.12", "thp_mode": "always"})
    run = guests.guest_run(point, build, tmp_path, 0)
    assert str(environment.REPO) in run.command and "cowsnap.measure.watch.guest" in run.command
    assert {knob.path.rsplit("/", 1)[-1] for knob in run.knobs} == {"enabled", "task_delayacct"}


def test_a_guest_watch_point_gets_two_vcpus_and_time_for_its_python_to_start(cowpoint):  # noqa: F811
    watch = watch_keys(cowpoint, vm_kernel="6.12")
    bench = grid.resolve({"method": "fork", "size_mib": 8, "memcpy_mib": 0, "vm_kernel": "6.12", "timeout_s": 60})
    assert plan_point.vm_shape([watch])[0] == plan_point.WATCH_VM_CPUS
    assert plan_point.vm_point_limit_s([watch]) == 2 * watch["timeout_s"] + plan_point.VM_WATCH_START_S
    assert plan_point.vm_point_limit_s([bench]) == plan_point.VM_POINT_LIMIT_S  # the benchmark's, as before
    assert plan_point.vm_point_limit_s([bench, watch]) == plan_point.vm_point_limit_s([watch])  # one boot, one limit
