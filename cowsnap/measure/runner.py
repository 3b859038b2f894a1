"""Run one point and turn what it measured into a record.

The measurement itself runs in a benchmark process of its own (started by
the native library's run(), called through cppyy); this process sets the
system knobs around it and writes the record.

The order is fixed: check what this machine can run (skip with the reason
before anything is allocated), set the system knobs the point needs, read
the environment back under them, measure, put the knobs back.
"""

from __future__ import annotations

import datetime
import os
import platform
import re
from pathlib import Path

from cowsnap.measure import environment, knobs, native
from cowsnap.plan import grid, threads
from cowsnap.plan import point as plan_point

REPO = Path(__file__).resolve().parents[2]

HUGETLB = grid.PAGE_KIB  # hugetlb backing -> page size in KiB


def size_name(backing: str) -> str:
    """The kernel's name for the page size of a hugetlb or mTHP backing: '2048kB'."""
    kib = HUGETLB[backing] if backing in HUGETLB else int(backing.removeprefix("mthp-").removesuffix("k"))
    return f"{kib}kB"


def kernel_at_least(major: int, minor: int, release: str = "") -> bool:
    numbers = re.findall(r"\d+", release or platform.release())
    return (int(numbers[0]), int(numbers[1])) >= (major, minor)


def is_root() -> bool:
    return os.geteuid() == 0


def arrays_needed(point: dict) -> int:
    """Array-sized regions at worst: the array, the destination, and a
    private copy of each that both processes write (fork)."""
    return {"none": 1, "stop": 2, "uffd": 2, "fork": 4 if point["dest"] == "zeroed" else 3}[point["method"]]


def memory_needed_mib(point: dict) -> int:
    return point["size_mib"] * arrays_needed(point) + 2 * point["memcpy_mib"]


def hugetlb_pages_needed(point: dict) -> int:
    if point["hugetlb_pool"] != "auto":
        return point["hugetlb_pool"]
    return point["size_mib"] * 1024 * arrays_needed(point) // HUGETLB[point["backing"]]


def numa_nodes_named(point: dict) -> set[int]:
    spec = point["numa_mem"].partition(":")[2]
    nodes = set(environment.parse_list(spec)) if spec != "all" else set()
    for key in ("numa_writers", "numa_copiers"):
        if point[key].startswith("node:"):
            nodes.add(int(point[key].removeprefix("node:")))
    return nodes


def mode_knobs(point: dict) -> dict[Path, str]:
    """The THP mode and delay accounting a point, of the benchmark or a watch
    point, runs under."""
    wanted = {}
    if point["thp_mode"] != "keep":
        wanted[knobs.THP_ENABLED] = point["thp_mode"]
    if knobs.TASK_DELAYACCT.exists():
        wanted[knobs.TASK_DELAYACCT] = "1" if point["delayacct"] else "0"
    return wanted


def wanted_knobs(point: dict) -> dict[Path, str]:
    """The system settings this point runs under, by sysfs/procfs path: its
    modes and what its page backing needs."""
    wanted = mode_knobs(point)
    backing = point["backing"]
    if backing.startswith("mthp-"):
        wanted[environment.THP_DIR / f"hugepages-{size_name(backing)}" / "enabled"] = "always"
    if backing in HUGETLB:
        size = size_name(backing)
        pool = environment.hugetlb_pool()
        total, free = pool.get(f"hugetlb_{size}_total", 0), pool.get(f"hugetlb_{size}_free", 0)
        needed = hugetlb_pages_needed(point)
        target = needed if point["hugetlb_pool"] != "auto" else total + max(0, needed - free)
        wanted[environment.HUGETLB_DIR / f"hugepages-{size}" / "nr_hugepages"] = str(target)
    return wanted


def skip_reason(point: dict) -> str:
    """Why this machine cannot run the point as asked ('' when it can)."""
    if is_vm(point):
        return vm_skip_reason(point)
    backing = point["backing"]
    reason = memory_shortfall("the point", memory_needed_mib(point)) or populate_unsupported(point, "")
    if reason:
        return reason
    if backing in HUGETLB:
        size = size_name(backing)
        if f"hugetlb_{size}_total" not in environment.hugetlb_pool():
            return f"backing={backing}: this kernel has no {size} huge pages"
    if backing.startswith("mthp-") and size_name(backing) not in {f"{s}kB" for s in environment.mthp_sizes_kib()}:
        offered = ", ".join(f"mthp-{s}k" for s in environment.mthp_sizes_kib()) or "none"
        return f"backing={backing}: this kernel offers no {size_name(backing)} THP size (offered: {offered})"
    if backing == "thp" and not environment.THP_DIR.exists():
        return "backing=thp: this kernel has no transparent huge pages"
    missing = sorted(numa_nodes_named(point) - set(environment.numa_nodes()))
    if missing:
        return f"NUMA node {missing[0]} does not exist here (nodes: {environment.numa_nodes()})"
    for key in ("numa_writers", "numa_copiers"):
        node = point[key].removeprefix("node:")
        if point[key] != "any" and not environment.read_text(environment.NODE_DIR / f"node{node}" / "cpulist"):
            return f"{key}={point[key]}: node {node} has no CPUs"
    return knob_skip_reason(point, wanted_knobs(point))


def knob_skip_reason(point: dict, wanted: dict[Path, str]) -> str:
    """Why the point cannot have the system settings it wants here: no delay
    accounting in this kernel, or a knob to change without root ('' when it can)."""
    if point["delayacct"] and not knobs.TASK_DELAYACCT.exists():
        return "delayacct=true: this kernel has no delay accounting (kernel.task_delayacct)"
    if not is_root():
        for path, value in wanted.items():
            if knobs.current(path) != value:
                return f"needs root to set {path} to {value} (it is {knobs.current(path)})"
    return ""


def is_vm(point: dict) -> bool:
    return point.get("vm_kernel", "host") != "host"


def vm_skip_reason(point: dict) -> str:
    """What the host decides for a VM point; the guest checks the rest
    (its nodes, THP, delay accounting) itself."""
    from cowsnap.measure import vm

    vm_kernel = point["vm_kernel"]
    _, memory = vm.shape([point])
    return (
        vm.missing(vm_kernel)
        or populate_unsupported(point, vm.release_of(vm_kernel))
        or memory_shortfall("the VM", memory + 512)
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
    if point["backing"] not in HUGETLB or point["hugetlb_pool"] != "auto":
        return ""  # an explicit pool is measured as given, short or not
    size = size_name(point["backing"])
    free = environment.hugetlb_pool()[f"hugetlb_{size}_free"]
    needed = hugetlb_pages_needed(point)
    if free >= needed:
        return ""
    return f"backing={point['backing']}: {free} free {size} huge pages, the point needs {needed}"


def measure(point: dict, build: native.Build) -> dict:
    """Runs the point through the compiled benchmark; the measured keys."""
    cowsnap = native.load(build.library)
    return result_keys(cowsnap.run(params_of(cowsnap, point), str(build.bench)))


def params_of(cowsnap, point: dict):
    """The benchmark's Params (of the loaded cowsnap namespace) for a point."""
    params = cowsnap.Params()
    for key, value in plan_point.native_params(point).items():
        setattr(params, key, value)
    return params


def result_keys(result) -> dict:
    """The measured keys of the benchmark's Result."""
    values = {str(key): float(value) for key, value in result.values}
    for flag in ("snapshot_ok", "delayacct_effective"):
        if flag in values:
            values[flag] = bool(values[flag])
    return {
        "status": str(result.status),
        "reason": str(result.reason),
        **values,
        **{str(key): str(value) for key, value in result.effective},
        "sharing_s": list(result.sharing_s),
        "sharing_pages": list(result.sharing_pages),
    }


def run(point: dict, build: native.Build, ids: dict | None = None) -> dict:
    """The record of one run: ids, settings, environment, build, measurements.
    The record says how many of the point's threads wanted a CPU at once and
    whether that oversubscribed this machine."""
    point = threads.resolve(point)  # a point of `cowsnap run` or a test may still say auto
    if is_vm(point):
        return run_vm([(point, ids or {})], build)[0]
    started_at = datetime.datetime.now(datetime.UTC).isoformat(timespec="microseconds")
    record = {**(ids or {}), "started_at": started_at, **point, **build.describe(), "virtualized": "none"}
    runnable = threads.runnable_threads(point)
    record.update(runnable_threads=runnable, oversubscribed=runnable > threads.usable_cpus())
    reason = skip_reason(point)
    if reason:
        return {**record, **environment.capture(REPO), "status": "skipped", "reason": reason}
    try:
        with knobs.applied(wanted_knobs(point)):
            record.update(environment.capture(REPO))  # read back under the knobs
            reason = hugetlb_shortfall(point)
            if reason:
                return {**record, "status": "skipped", "reason": reason}
            return {**record, **measure(point, build)}
    except knobs.KnobError as error:
        return {**record, **environment.capture(REPO), "status": "skipped", "reason": str(error)}


def run_vm(runs: list[tuple[dict, dict]], build: native.Build, folder: Path | None = None) -> list[dict]:
    """The records of (point, ids) runs whose vm_kernel names one kernel and
    that share vm_nodes, all measured in one boot (cowsnap.measure.vm); a
    point the host already knows it cannot run is skipped without a boot.
    Each record keeps the point's vm_kernel (a series or a release) and says
    which installed release it named (vm_kernel_release, '' when none) and
    which booted (kernel)."""
    import shutil
    import tempfile

    from cowsnap.measure import vm

    records, todo = [], []
    for point, ids in runs:
        release = vm.release_of(point["vm_kernel"])
        host = {k: v for k, v in environment.capture(REPO).items() if not k.startswith("hugetlb_")}
        record = {
            **ids,
            "started_at": vm.started_at(),
            **point,
            **build.describe(),
            **host,
            "kernel": release or point["vm_kernel"],
            "vm_kernel_release": release,
        }
        reason = skip_reason(point)
        if reason:
            record.update({"virtualized": vm.accelerator(), "status": "skipped", "reason": reason})
        else:
            todo.append(len(records))
        records.append(record)
    if todo:
        tmp = Path(tempfile.mkdtemp(prefix="cowsnap-vm.", dir=folder))
        try:
            measured = vm.run_batch([runs[i][0] for i in todo], build, tmp)
        finally:
            if not os.environ.get(vm.KEEP_VARIABLE):
                shutil.rmtree(tmp, ignore_errors=True)
        for index, result in zip(todo, measured, strict=True):
            records[index].update(result)
    return records
