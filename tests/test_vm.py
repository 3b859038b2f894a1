"""Points inside a VM booting another kernel with two NUMA nodes.

One boot serves every check of this module (module-scoped fixture): the
placement checks need real nodes, which this machine does not have. The
boot needs qemu-system-x86_64, busybox and a Debian kernel package
(`.ci/kernels` installs them); without them the VM tests are skipped with
the reason, or fail where CI promised them (COWSNAP_REQUIRE_VM=1). Points
name a kernel by its series, as the configs do: whichever release of it is
installed.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from test_kernel_features import large_folio_rule

from cowsnap.measure import vm
from cowsnap.measure.bench import runner, wire
from cowsnap.plan import config, grid, kernels
from cowsnap.plan import point as plan_point

SIZE_MIB = 8
REPO = Path(__file__).resolve().parent.parent


def no_vm(reason: str):
    if os.environ.get("COWSNAP_REQUIRE_VM") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


def point(**settings) -> dict:
    return grid.resolve({"memcpy_mib": 0, "size_mib": SIZE_MIB, **settings})


# ---- without a boot


def test_params_text_is_what_the_bench_reads(build):
    """The host writes the Params as wire.cpp reads them: the bench runs the point."""
    done = subprocess.run(
        [str(build.bench)],
        input=wire.params_text(point(method="none"), build),
        capture_output=True,
        text=True,
        timeout=120,
    )
    result = wire.parse_result(done.stdout, build)
    assert result["status"] == "ok", result["reason"]
    assert result["pages"] == SIZE_MIB * 256
    assert wire.parse_result(done.stdout.replace("end\n", ""), build)["status"] == "failed"  # cut short


def test_a_kernel_not_installed_is_skipped_with_the_install_command(build):
    record = runner.run(point(vm_kernel="2.6.32-99-amd64", vm_nodes=2), build)
    assert record["status"] == "skipped"
    assert "2.6.32-99-amd64" in record["reason"]
    assert "apt-get install -y qemu-system-x86 busybox-static cpio linux-image-2.6.32-99-amd64" in record["reason"]
    assert record["vm_kernel_release"] == ""


def test_a_series_with_no_kernel_installed_is_skipped_with_the_command_that_installs_it(build):
    record = runner.run(point(vm_kernel="2.6", vm_nodes=2), build)
    assert record["status"] == "skipped"
    assert record["reason"].startswith("vm_kernel=2.6: ") and "bash .ci/kernels 2.6" in record["reason"]
    assert record["vm_kernel"] == "2.6" and record["vm_kernel_release"] == ""


# A machine's kernels as `ls /boot` might list them: two series, several ABIs
# and flavours of each, the running kernel of another series.
INSTALLED = [
    "6.1.0-52-rt-amd64",
    "6.12.9+deb12-amd64",
    "6.1.0-9-amd64",
    "6.12.118+deb12-amd64",
    "6.1.0-52-amd64",
    "6.1.0-52-cloud-amd64",
    "6.12.99+deb12-amd64",
    "6.18.44-fc-v1",
]


@pytest.mark.parametrize(
    "vm_kernel, release",
    [
        ("6.1", "6.1.0-52-amd64"),  # 52 after 9, the plain flavour before -cloud and -rt
        ("6.12", "6.12.118+deb12-amd64"),  # 118 after 99 and 9
        ("6.18", "6.18.44-fc-v1"),
        ("6.2", ""),  # nothing of that series
        ("6.1.0-9-amd64", "6.1.0-9-amd64"),  # an exact release, as named
        ("6.1.0-10-amd64", ""),  # an exact release not installed
        ("6.12.9", ""),  # an exact release is the whole name
    ],
)
def test_a_series_resolves_to_its_newest_installed_kernel(vm_kernel, release):
    assert kernels.resolve(vm_kernel, INSTALLED) == release
    assert kernels.resolve(vm_kernel, sorted(INSTALLED, reverse=True)) == release


def test_a_series_point_keeps_its_id_when_a_new_abi_replaces_the_old(tmp_path, monkeypatch):
    """The kernels experiment of the default sweep plans the same runs
    whichever release of each series is installed; the run boots the newest."""
    default = config.load(REPO / "config" / "config.yaml")

    def install(release: str) -> list[grid.Run]:
        (tmp_path / "boot" / f"vmlinuz-{release}").touch()
        (tmp_path / "modules" / release).mkdir(parents=True)
        (tmp_path / "modules" / release / "modules.dep").touch()
        return [run for run in grid.expand(default) if run.experiment == "kernels"]

    (tmp_path / "boot").mkdir()
    (tmp_path / "boot" / "vmlinuz-6.1.0-53-amd64").touch()  # no modules: cannot boot
    monkeypatch.setattr(vm, "BOOT_DIR", tmp_path / "boot")
    monkeypatch.setattr(vm, "MODULES_DIR", tmp_path / "modules")
    before = install("6.1.0-50-amd64")
    assert vm.release_of("6.1") == "6.1.0-50-amd64" and vm.release_of("6.12") == ""
    after = install("6.1.0-52-amd64")
    assert vm.release_of("6.1") == "6.1.0-52-amd64"
    assert [(r.run_id, r.point) for r in after] == [(r.run_id, r.point) for r in before]
    assert {r.point["vm_kernel"] for r in after} == {"host", "6.1", "6.12"}


def test_tables_read_back_keep_a_series_as_text(tmp_path):
    """The series 6.10 and 6.1 stay two kernels in the tables the figures,
    the summary and the comparison read back."""
    import pandas as pd

    from cowsnap.analyse import aggregate, compare

    runs = pd.read_csv(REPO / "tests" / "data" / "results" / "tiny" / "runs.csv").head(2)
    runs["vm_kernel"] = ["6.1", "6.10"]
    runs["kernel"] = ["6.1", "6.10"]  # a guest's uname -r as bare numbers
    (tmp_path / "tiny").mkdir()
    runs.to_csv(tmp_path / "tiny" / "runs.csv", index=False)
    for table in (aggregate.read_table(tmp_path / "tiny" / "runs.csv"), compare.load(tmp_path)):
        assert list(table["vm_kernel"]) == list(table["kernel"]) == ["6.1", "6.10"]


def test_vm_nodes_apply_only_in_a_vm():
    assert point(vm_nodes=2)["vm_nodes"] == 1
    assert point(vm_kernel="6.1", vm_nodes=2)["vm_nodes"] == 2
    with pytest.raises(config.ConfigError, match="vm_nodes=2 applies to none"):
        grid.check_applies([{**config.point_defaults(), "vm_nodes": 2}], "here")


def test_a_vm_takes_the_most_cpus_and_memory_its_points_name():
    small = point(vm_kernel="6.1", vm_nodes=2)
    assert plan_point.vm_shape([small]) == (2, plan_point.VM_MIN_MEMORY_MIB)  # auto: its threads, 1024 MiB at least
    named = point(vm_kernel="6.1", vm_nodes=2, vm_cpus=3, vm_memory_mib=3001)
    assert plan_point.vm_shape([small, named]) == (4, 3004)  # a multiple of the nodes; 2 MiB a node
    assert plan_point.vm_shape([point(vm_kernel="6.1", vm_memory_mib=512)]) == (1, 512)  # named, not the floor
    assert point(vm_memory_mib=4096)["vm_memory_mib"] == "auto"  # on the host it is not a key of the point
    with pytest.raises(config.ConfigError, match="vm_memory_mib=4096 applies to none"):
        grid.check_applies([{**config.point_defaults(), "vm_memory_mib": 4096}], "here")
    big = point(
        vm_kernel="6.1", size_mib=1024, vm_memory_mib=1024
    )  # fork's arrays 4096 MiB, 4608 with the guest kernel's
    with pytest.raises(config.ConfigError, match=r"here: .*has 1024 MiB.*allowed: auto, or at least 4608"):
        grid.check_boots([(big, lambda key: f"here: {key}")])
    with pytest.raises(config.ConfigError, match="vm_cpus") as caught:
        config.validate({"experiments": {"e": {"base": {"vm_kernel": "6.1", "vm_cpus": 0}}}})
    assert "auto" in str(caught.value)


def test_host_points_keep_their_ids():
    """The VM keys at host leave a point's id as it was before they existed."""
    host = config.point_defaults()
    without = {k: v for k, v in host.items() if k not in plan_point.VM_KEYS}
    assert grid.point_id(host) == grid.point_id(without)
    assert grid.point_id({**host, "vm_kernel": "6.1"}) != grid.point_id(host)
    # A VM point's id is as it was before vm_cpus and vm_memory_mib, at auto.
    guest = {**host, "vm_kernel": "6.1"}
    before = {k: v for k, v in guest.items() if k not in ("vm_cpus", "vm_memory_mib")}
    assert grid.point_id(guest) == grid.point_id(before) != grid.point_id({**guest, "vm_memory_mib": 2048})


# ---- one boot with two nodes

MEMORY = ["default", "bind:0", "bind:1", "interleave:all", "preferred:1", "local"]


def newest_series() -> str:
    """The series of the newest kernel installed here ('' when none is)."""
    installed = vm.installed_kernels()
    return kernels.series_of(max(installed, key=kernels.version_key)) if installed else ""


def bootable_series() -> str:
    """The newest series installed, or the module skipped (failed where CI
    promised VMs) with why no VM of it can boot here."""
    series = newest_series()
    if not series:
        no_vm("no guest kernel installed (/boot/vmlinuz-<release> with /lib/modules/<release>); run .ci/kernels")
    reason = vm.missing(series)
    if reason:
        no_vm(reason)
    return series


@pytest.fixture(scope="module")
def booted(build, tmp_path_factory):
    """Every point of this module's checks, in one 2-node boot of the newest
    series installed (one point names its release instead)."""
    series = bootable_series()
    common = {"vm_kernel": series, "vm_nodes": 2}
    points = {f"mem={m}": point(**common, numa_mem=m) for m in MEMORY}
    points["writers=node:1"] = point(**common, numa_writers="node:1", numa_copiers="node:0")
    points["copiers=node:1"] = point(**common, numa_copiers="node:1", numa_mem="bind:0")
    points["mem=bind:5"] = point(**common, numa_mem="bind:5")
    points["writers=node:5"] = point(**common, numa_writers="node:5")
    points["delayacct=false"] = point(**common, delayacct=False)
    points["release"] = point(**{**common, "vm_kernel": vm.release_of(series)})
    # Debian's guest kernels boot with THP mode always: an mTHP point still gets its folio size.
    points["mthp-after"] = point(**common, backing="mthp-64k", start="after_child", release="none", pattern="blocked")
    records = runner.run_vm([(p, {"run_id": name}) for name, p in points.items()], build, tmp_path_factory.mktemp("vm"))
    return {record["run_id"]: record for record in records}


def ok(record: dict) -> dict:
    assert record["status"] == "ok", record["reason"]
    return record


def shares(record: dict) -> dict[int, float]:
    """'0:50%,1:50%' -> {0: 0.5, 1: 0.5}"""
    return {int(n): float(p.rstrip("%")) / 100 for n, p in (s.split(":") for s in record["numa_nodes_used"].split(","))}


def assert_pages_on(record: dict, nodes: set[int]) -> None:
    """All sampled pages on these nodes, and some on each of them."""
    used = shares(ok(record))
    assert {node for node, share in used.items() if share > 0} == nodes, record["numa_nodes_used"]


def test_records_say_where_they_ran(booted):
    record = ok(booted["mem=default"])
    assert record["virtualized"] in ("tcg", "kvm")
    assert record["virtualized"] == vm.accelerator()
    assert record["vm_kernel"] == newest_series()  # the point as given: its id stays
    assert record["kernel"] == record["vm_kernel_release"] == vm.release_of(record["vm_kernel"])  # what booted
    assert kernels.series_of(record["kernel"]) == record["vm_kernel"]
    assert record["kernel"] != record["host_kernel"]
    assert record["numa_nodes"] == 2
    assert record["online_cpus"] >= 2 and record["online_cpus"] % 2 == 0
    assert record["cpu_model"]
    # The guest's clock, read in the guest: delay accounting's copy counts hold under a stable one.
    assert record["sched_clock_source"] == "sched_debug" and record["sched_clock_stable"] == 1


@pytest.mark.parametrize(
    "memory, nodes",
    [("bind:0", {0}), ("bind:1", {1}), ("interleave:all", {0, 1}), ("preferred:1", {1})],
)
def test_memory_policy_places_the_pages_on_the_nodes_named(booted, memory, nodes):
    assert_pages_on(booted[f"mem={memory}"], nodes)
    assert booted[f"mem={memory}"]["numa_mem_effective"].startswith(memory.partition(":")[0])


def test_interleave_spreads_the_pages_evenly(booted):
    used = shares(booted["mem=interleave:all"])
    assert abs(used[0] - used[1]) < 0.1


def test_local_places_the_pages_on_one_node(booted):
    assert len([s for s in shares(ok(booted["mem=local"])).values() if s > 0]) == 1


def test_a_wrong_expectation_fails(booted):
    """The check can fail: pages bound to node 0 are not on node 1."""
    with pytest.raises(AssertionError):
        assert_pages_on(booted["mem=bind:0"], {1})


def test_writers_run_on_the_cpus_of_the_node_named(booted):
    record = ok(booted["writers=node:1"])
    per_node = record["online_cpus"] // 2
    cpus = [int(c) for c in record["writer_cpus"].split(",")]
    assert len(cpus) == record["writers"]
    assert all(per_node <= cpu < 2 * per_node for cpu in cpus), record["writer_cpus"]
    assert ok(booted["copiers=node:1"])  # a copier off node 1's CPUs skips the point


def test_a_node_that_does_not_exist_skips_the_point(booted):
    for name in ("mem=bind:5", "writers=node:5"):
        assert booted[name]["status"] == "skipped"
        assert "node 5" in booted[name]["reason"] and "nodes: 0-1" in booted[name]["reason"]


def test_a_point_naming_the_exact_release_boots_it(booted):
    record = ok(booted["release"])
    assert record["vm_kernel"] == record["vm_kernel_release"] == record["kernel"] == booted["mem=default"]["kernel"]


def test_knobs_are_set_inside_the_guest(booted):
    """delay accounting on for one point and off for the next, in one boot."""
    assert ok(booted["mem=default"])["delayacct_effective"] is True
    assert booted["mem=default"]["writer_wpcopy_count"] > 0  # counted: the writers copied while the child lived
    assert ok(booted["delayacct=false"])["delayacct_effective"] is False


# ---- the workflow: one boot per (vm_kernel, vm_nodes), planned without booting

BATCHED = """
experiments:
  k:
    base: {size_mib: 8, batch_kib: 512, memcpy_mib: 0}
    repetitions: 2
    matrix:
      vm_kernel: [host, '6.1', '6.12']
      backing: [4k, thp]
  n:
    base: {size_mib: 8, batch_kib: 512, memcpy_mib: 0, vm_kernel: '6.12', vm_nodes: 2}
    matrix:
      numa_mem: [bind:0, bind:1]
"""


def planned_jobs(cwd, *args: str) -> tuple[dict[str, str], str]:
    """A real dry run: the job counts by rule, and what it printed."""
    done = subprocess.run(
        [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--dry-run", "--cores", "2", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return dict(re.findall(r"^(\w+)\s+(\d+)$", done.stdout, re.MULTILINE)), done.stdout


def test_the_workflow_boots_once_per_kernel_and_topology(tmp_path):
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.yaml").write_text(BATCHED)
    jobs, output = planned_jobs(tmp_path)
    assert jobs["run_vm_boot"] == "3"  # 6.1 on 1 node, 6.12 on 1 node, 6.12 on 2 nodes
    assert set(re.findall(r"results/vm/([\w.+-]+?-\d+nodes)", output)) == {"6.1-1nodes", "6.12-1nodes", "6.12-2nodes"}
    assert jobs["run_point"] == str(2 * 6 + 2)


def test_an_mthp_point_gets_its_folio_size_in_a_guest_whose_thp_mode_is_always(booted):
    record = ok(booted["mthp-after"])
    assert record["thp_enabled"] == "always"
    assert record["huge_kib"] == 0
    assert record["mthp_fault_alloc"] >= 0.9 * SIZE_MIB * 1024 / 64


def test_after_the_exit_large_folio_pages_follow_the_guest_kernels_rule(booted):
    large_folio_rule(ok(booted["mthp-after"]))


def test_the_paper_numa_experiment_plans_one_two_node_boot(tmp_path):
    """config/paper-numa-vm.yaml over the paper's config, at the smoke size:
    its numa experiment's points in one 2-node boot."""
    target = "results/paper/smoke/figures/numa-writer_faults.png"
    configs = [str(REPO / "config" / "paper.yaml"), str(REPO / "config" / "paper-numa-vm.yaml")]
    jobs, output = planned_jobs(tmp_path, "--configfile", *configs, "--config", "smoke_mib=16", "--", target)
    assert jobs["run_vm_boot"] == "1" and jobs["run_point"] == "12"
    assert "results/paper/smoke/vm/6.12-2nodes" in output
