"""Run one point and turn what it measured into a record.

The measurement itself runs in a benchmark process of its own (started by
the native library's run(), called through cppyy); this process sets the
system knobs around it and writes the record.

The order is fixed: check what this machine can run (skip with the reason
before anything is allocated), set the system knobs the point needs, read
the environment back under them, measure, put the knobs back.
"""

from __future__ import annotations

import contextlib
import os
import platform
import re
import shlex
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from cowsnap.measure import cgroup, checks, environment, host, knobs, native, records, vm
from cowsnap.measure.bench import wire
from cowsnap.plan import grid, threads
from cowsnap.plan import point as plan_point


def kernel_at_least(major: int, minor: int, release: str = "") -> bool:
    numbers = re.findall(r"\d+", release or platform.release())
    return (int(numbers[0]), int(numbers[1])) >= (major, minor)


def wanted_knobs(point: dict) -> dict[Path, str]:
    """The system settings this point runs under, by sysfs/procfs path: its
    modes and what its page backing needs."""
    return checks.host_knobs(checks.knobs_of(point, environment.hugetlb_pool()))


def skip_reason(point: dict) -> str:
    """Why this machine cannot run the point as asked ('' when it can)."""
    if plan_point.is_vm(point):
        return vm_skip_reason(point)
    return (
        memory_shortfall("the point", plan_point.memory_needed_mib(point))
        or populate_unsupported(point, "")
        or checks.failed_check(checks.checks_of(point))
        or checks.root_needed(wanted_knobs(point))
    )


def vm_skip_reason(point: dict) -> str:
    """What the host decides for a VM point; the guest checks the rest
    (its nodes, THP, delay accounting) itself."""
    vm_kernel = point["vm_kernel"]
    _, memory = plan_point.vm_shape([point])
    return (
        vm.missing(vm_kernel)
        or populate_unsupported(point, vm.release_of(vm_kernel))
        or memory_shortfall("the VM", memory + plan_point.VM_MEMORY_SPARE_MIB)
    )


def memory_shortfall(what: str, needed_mib: int) -> str:
    available = environment.meminfo_kib("MemAvailable") // 1024
    return f"{what} needs {needed_mib} MiB of memory, {available} MiB available" if needed_mib > available else ""


def populate_unsupported(point: dict, vm_kernel: str) -> str:
    """populate=write-* on a kernel without MADV_POPULATE_WRITE ('' for this machine's kernel)."""
    if point["populate"].startswith("write-") and not kernel_at_least(5, 14, vm_kernel):
        where = f" (vm_kernel={vm_kernel})" if vm_kernel else ""
        return f"populate={point['populate']}: MADV_POPULATE_WRITE needs Linux 5.14+{where}"
    return ""


def hugetlb_shortfall(point: dict) -> str:
    """After the pool was set: are there enough free huge pages?"""
    if point["backing"] not in plan_point.PAGE_KIB or point["hugetlb_pool"] != "auto":
        return ""  # an explicit pool is measured as given, short or not
    size = plan_point.size_name(point["backing"])
    free = environment.hugetlb_pool()[f"hugetlb_{size}_free"]
    needed = plan_point.hugetlb_pages_needed(point)
    if free >= needed:
        return ""
    return f"backing={point['backing']}: {free} free {size} huge pages, the point needs {needed}"


def measure(point: dict, build: native.Build) -> dict:
    """Runs the point through the compiled benchmark, in a memory cgroup of
    the run's own, where it counts the memory its snapshot costs; the
    measured keys. Without a cgroup, the record says why."""
    with cgroup.memory_cgroup() as (path, reason), memory_cgroup_named(path):
        measured = wire.measure(point, build)
    if not path:
        measured["snapshot_memory_source"] = f"not counted: {reason}"
    return measured


@contextlib.contextmanager
def memory_cgroup_named(path: str) -> Iterator[None]:
    """cgroup.VARIABLE set to path (unset when '') for the benchmark started
    meanwhile (the native run() passes this environment on); restored after."""
    before = os.environ.get(cgroup.VARIABLE)
    if path:
        os.environ[cgroup.VARIABLE] = path
    else:
        os.environ.pop(cgroup.VARIABLE, None)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(cgroup.VARIABLE, None)
        else:
            os.environ[cgroup.VARIABLE] = before


def run(point: dict, build: native.Build, ids: dict | None = None) -> dict:
    """The record of one run: ids, settings, environment, build, measurements.
    The record says how many of the point's threads wanted a CPU at once and
    whether that oversubscribed this machine."""
    point = plan_point.planned(point)
    if plan_point.is_vm(point):
        return run_vm([(point, ids or {})], build)[0]
    record = {**records.opened(point, build, ids), "virtualized": "none"}
    runnable = threads.runnable_threads(point)
    record.update(runnable_threads=runnable, oversubscribed=runnable > threads.usable_cpus())
    reason = skip_reason(point)
    if reason:
        return records.skipped_here(record, reason)
    try:
        with knobs.applied(wanted_knobs(point)):
            record.update(environment.capture(environment.REPO))  # read back under the knobs
            reason = hugetlb_shortfall(point)
            if reason:
                return {**record, **records.skipped(reason)}
            before = host.counters()
            measured = measure(point, build)
            return {**record, **measured, **host.during(before, host.counters())}
    except knobs.KnobError as error:
        return records.skipped_here(record, str(error))


def bench_run(point: dict, build: native.Build, batch: Path, index: int) -> vm.GuestRun:
    """A benchmark point in a VM's guest: the host's cowsnap-bench reads the Params on stdin."""
    params = batch / f"{index}.params"
    return vm.GuestRun(
        files={params: wire.params_text(point, build)},
        checks=checks.checks_of(point),
        knobs=checks.knobs_of(point, {}),  # a guest boots with no huge pages reserved: its pool is empty
        command=f"{shlex.quote(str(build.bench.resolve()))} < {shlex.quote(str(params))}",
        parse=lambda text: wire.parse_result(text, build),
    )


def run_vm(
    runs: list[tuple[dict, dict]], build: native.Build, folder: Path | None = None, guest_run=bench_run
) -> list[dict]:
    """The records of (point, ids) runs whose vm_kernel names one kernel and
    that share vm_nodes, all measured in one boot (cowsnap.measure.vm), each
    as guest_run(point, build, batch folder, index) makes it (benchmark points
    by default; cowsnap.measure.guests for any point); a point the host
    already knows it cannot run is skipped without a boot. Each record keeps
    the point's vm_kernel (a series or a release) and says which installed
    release it named (vm_kernel_release, '' when none) and which booted
    (kernel)."""
    vm_records, todo = [], []
    runs = [(plan_point.planned(point), ids) for point, ids in runs]
    # The host, once for the boot's records: what the guest reports of itself is the guest's.
    captured = environment.capture(environment.REPO)
    host = {k: v for k, v in captured.items() if not k.startswith(environment.GUEST_KEYS)}
    for point, ids in runs:
        release = vm.release_of(point["vm_kernel"])
        record = {
            **records.opened(grid.recorded_settings(point), build, ids),
            **host,
            "kernel": release or point["vm_kernel"],
            "vm_kernel_release": release,
        }
        reason = skip_reason(point)
        if reason:
            record.update(virtualized=vm.accelerator(), **records.skipped(reason))
        else:
            todo.append(len(vm_records))
            record["host_reported_source"] = "not counted: measured in a VM, whose host is this machine"
        vm_records.append(record)
    if todo:
        tmp = Path(tempfile.mkdtemp(prefix="cowsnap-vm.", dir=folder))
        try:
            measured = vm.run_batch(
                [runs[i][0] for i in todo], lambda point, batch, index: guest_run(point, build, batch, index), tmp
            )
        finally:
            if not os.environ.get(vm.KEEP_VARIABLE):
                shutil.rmtree(tmp, ignore_errors=True)
        for index, result in zip(todo, measured, strict=True):
            vm_records[index].update(result)
    return vm_records
