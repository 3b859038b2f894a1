"""Run one point in this process and turn what it measured into a record."""

from __future__ import annotations

import platform
from pathlib import Path

from cowsnap import environment, native

REPO = Path(__file__).resolve().parent.parent
MIB = 1024 * 1024


def kernel_at_least(major: int, minor: int) -> bool:
    numbers = platform.release().split("-")[0].split(".")
    return (int(numbers[0]), int(numbers[1])) >= (major, minor)


def memory_needed_mib(point: dict) -> int:
    """Worst case: the array, the destination, a private copy of every page."""
    copies = {"none": 0, "stop": 1, "fork": 2}[point["method"]]
    return point["size_mib"] * (1 + copies) + 2 * point["memcpy_mib"]


def skip_reason(point: dict) -> str:
    """Why this machine cannot run the point as asked ('' when it can)."""
    backing = point["backing"]
    available = environment.meminfo_kib("MemAvailable") // 1024
    if backing.startswith("hugetlb-"):
        size = {"hugetlb-2m": "2048kB", "hugetlb-1g": "1048576kB"}[backing]
        pool = environment.hugetlb_pool()
        if f"hugetlb_{size}_free" not in pool:
            return f"backing={backing}: this kernel has no {size} huge pages"
        page_mib = 2 if backing == "hugetlb-2m" else 1024
        needed = memory_needed_mib(point) // page_mib
        free = pool[f"hugetlb_{size}_free"]
        if free < needed:
            return f"backing={backing}: {free} free {size} huge pages, the point needs {needed}"
    elif memory_needed_mib(point) > available:
        return f"needs {memory_needed_mib(point)} MiB of memory, {available} MiB available"
    if backing == "thp" and environment.selected(environment.read_text(environment.THP_DIR / "enabled")) == "never":
        return "backing=thp: transparent huge pages are disabled (enabled=never)"
    if backing.startswith("mthp-"):
        size_kib = int(backing.removeprefix("mthp-").removesuffix("k"))
        if size_kib not in environment.mthp_sizes_kib():
            offered = ", ".join(f"mthp-{s}k" for s in environment.mthp_sizes_kib()) or "none"
            return f"backing={backing}: this kernel offers no {size_kib} KiB THP size (offered: {offered})"
        knob = environment.THP_DIR / f"hugepages-{size_kib}kB" / "enabled"
        if environment.selected(environment.read_text(knob)) == "never":
            return f"backing={backing}: {knob} is 'never'"
    if point["populate"].startswith("write-") and not kernel_at_least(5, 14):
        return f"populate={point['populate']}: MADV_POPULATE_WRITE needs Linux 5.14+"
    return ""


def measure(point: dict, library: Path) -> dict:
    """Runs the point through the compiled benchmark; the measured keys."""
    cowsnap = native.load(library)
    params = cowsnap.Params()
    for key, value in point.items():
        setattr(params, key, value)
    result = cowsnap.run(params)
    values = {str(key): float(value) for key, value in result.values}
    if "snapshot_ok" in values:
        values["snapshot_ok"] = bool(values["snapshot_ok"])
    return {
        "status": str(result.status),
        "reason": str(result.reason),
        **values,
        "sharing_s": list(result.sharing_s),
        "sharing_pages": list(result.sharing_pages),
    }


def run(point: dict, build: native.Build, ids: dict | None = None) -> dict:
    """The record of one run: ids, settings, environment, build, measurements."""
    record = {**(ids or {}), **point, **environment.capture(REPO), **build.describe()}
    reason = skip_reason(point)
    if reason:
        return {**record, "status": "skipped", "reason": reason}
    return {**record, **measure(point, build.library)}
