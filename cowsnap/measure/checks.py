"""What a point needs of the kernel it runs on, as data: the checks that
skip it (a file that must exist, or hold text, and the reason when it does
not) and the knobs it sets. One list, two executors: the runner applies them
on this machine (cowsnap.measure.bench.runner), a VM boot writes them into the
guest's script (cowsnap.measure.vm).

A reason may name {nodes} (the NUMA nodes there are) or {offered} (the mTHP
sizes the kernel offers); each executor fills them in its own way."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cowsnap.measure import environment, knobs
from cowsnap.plan import point as plan_point

THP = str(environment.THP_DIR)
HUGETLB = str(environment.HUGETLB_DIR)
NODE = str(environment.NODE_DIR)
DELAYACCT = str(knobs.TASK_DELAYACCT)
# Every THP size a kernel may offer per size (hugepages-<size>/enabled): the
# powers of two from 8 KiB to 16 GiB, so a guest's sizes need not be known.
MTHP_SIZE_NAMES = tuple(f"{2**shift}kB" for shift in range(3, 25))


@dataclass(frozen=True)
class Check:
    path: str  # a file or folder of /sys or /proc that must exist
    reason: str  # why the point is skipped when it does not
    nonempty: bool = False  # the file must hold text, not only exist


@dataclass(frozen=True)
class Knob:
    path: str  # on the allow-list, knobs.KNOBS
    value: str
    if_present: bool = False  # set only where the kernel has the file


def mode_checks(point: dict) -> list[Check]:
    """What the THP mode and delay accounting of a point, of the benchmark
    or a watch point, need."""
    checks = []
    if point["thp_mode"] != "keep":
        checks.append(Check(THP, f"thp_mode={point['thp_mode']}: this kernel has no transparent huge pages"))
    if point["delayacct"]:
        checks.append(Check(DELAYACCT, "delayacct=true: this kernel has no delay accounting (kernel.task_delayacct)"))
    if point.get("mthp", "keep") != "keep":
        checks.append(mthp_check(point["mthp"], f"mthp={point['mthp']}"))
    return checks


def mthp_check(name: str, what: str) -> Check:
    """The kernel offers the mTHP size name (mthp-<N>k) names."""
    size = plan_point.size_name(name)
    return Check(
        f"{THP}/hugepages-{size}/enabled", f"{what}: this kernel offers no {size} THP size (offered: {{offered}})"
    )


def mthp_alone(name: str) -> list[Knob]:
    """The mTHP size name (mthp-<N>k) names, and no other: the kernel takes
    the largest size enabled, so PMD THP (inherit, under THP mode always)
    would win otherwise."""
    size = plan_point.size_name(name)
    others = [other for other in MTHP_SIZE_NAMES if other != size]
    return [
        Knob(f"{THP}/hugepages-{size}/enabled", "always"),
        *(Knob(f"{THP}/hugepages-{other}/enabled", "never", if_present=True) for other in others),
    ]


def checks_of(point: dict) -> list[Check]:
    """What the kernel must offer a benchmark point, in the order they are
    checked: its page backing, its NUMA nodes and their CPUs, its modes."""
    checks = []
    backing = point["backing"]
    if backing in plan_point.PAGE_KIB:
        size = plan_point.size_name(backing)
        checks.append(Check(f"{HUGETLB}/hugepages-{size}", f"backing={backing}: this kernel has no {size} huge pages"))
    if backing.startswith("mthp-"):
        checks.append(mthp_check(backing, f"backing={backing}"))
    if backing == "thp":
        checks.append(Check(THP, "backing=thp: this kernel has no transparent huge pages"))
    for node in sorted(plan_point.numa_nodes_named(point)):
        checks.append(Check(f"{NODE}/node{node}", f"NUMA node {node} does not exist here (nodes: {{nodes}})"))
    for key in ("numa_writers", "numa_copiers"):
        if point[key] != "any":
            node = point[key].removeprefix("node:")
            checks.append(Check(f"{NODE}/node{node}/cpulist", f"{key}={point[key]}: node {node} has no CPUs", True))
    return checks + mode_checks(point)


def mode_knobs(point: dict) -> list[Knob]:
    """The THP mode and delay accounting a point, of the benchmark or a
    watch point, runs under."""
    wanted = []
    if point["thp_mode"] != "keep":
        wanted.append(Knob(f"{THP}/enabled", point["thp_mode"]))
    wanted.append(Knob(DELAYACCT, "1" if point["delayacct"] else "0", if_present=True))
    if point.get("mthp", "keep") != "keep":
        wanted += mthp_alone(point["mthp"])
    return wanted


def knobs_of(point: dict, hugetlb_pool: dict[str, int]) -> list[Knob]:
    """The system settings a benchmark point runs under: its modes and what
    its page backing needs. An auto hugetlb pool grows the kernel's pool
    (hugetlb_pool, environment.hugetlb_pool's form: empty for a fresh guest)
    by the pages missing from its free pages."""
    wanted = mode_knobs(point)
    backing = point["backing"]
    if backing.startswith("mthp-"):
        wanted += mthp_alone(backing)
    if backing in plan_point.PAGE_KIB:
        size = plan_point.size_name(backing)
        total, free = hugetlb_pool.get(f"hugetlb_{size}_total", 0), hugetlb_pool.get(f"hugetlb_{size}_free", 0)
        needed = plan_point.hugetlb_pages_needed(point)
        target = needed if point["hugetlb_pool"] != "auto" else total + max(0, needed - free)
        wanted.append(Knob(f"{HUGETLB}/hugepages-{size}/nr_hugepages", str(target)))
    return wanted


# On this machine (a VM boot writes the same checks into its guest's script).
def is_root() -> bool:
    return os.geteuid() == 0


def host_knobs(wanted: list[Knob]) -> dict[Path, str]:
    """Knobs as this machine sets them: by path, those only set where the
    kernel has them left out where it has not."""
    return {Path(knob.path): knob.value for knob in wanted if not knob.if_present or Path(knob.path).exists()}


def failed_check(wanted: list[Check]) -> str:
    """The reason of the first check this machine fails ('' when none)."""
    for check in wanted:
        path = Path(check.path)
        if not path.exists() or (check.nonempty and not environment.read_text(path)):
            offered = ", ".join(f"mthp-{s}k" for s in environment.mthp_sizes_kib()) or "none"
            return check.reason.format(nodes=environment.numa_nodes(), offered=offered)
    return ""


def host_mode_knobs(point: dict) -> dict[Path, str]:
    """The THP mode and delay accounting a point, of the benchmark or a watch
    point, runs under."""
    return host_knobs(mode_knobs(point))


def knob_skip_reason(point: dict, wanted: dict[Path, str]) -> str:
    """Why the point cannot have the system settings it wants here: no THP
    or delay accounting in this kernel, or a knob to change without root
    ('' when it can)."""
    return failed_check(mode_checks(point)) or root_needed(wanted)


def root_needed(wanted: dict[Path, str]) -> str:
    """A knob to change without root ('' when none)."""
    if not is_root():
        for path, value in wanted.items():
            if knobs.current(path) != value:
                return f"needs root to set {path} to {value} (it is {knobs.current(path)})"
    return ""
