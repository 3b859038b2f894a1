"""Facts about a point that every stage may ask: which of its keys the
native benchmark takes and which Python applies itself, its page sizes, the
memory and huge pages it needs, the NUMA nodes it names, and what a VM
running it needs. Pure functions of the point: nothing here reads the
machine."""

from __future__ import annotations

import re

from cowsnap.plan.methods import WATCH_KEYS, arrays_needed

# Point keys the runner applies itself (system settings around the run).
HARNESS_KEYS = ("thp_mode", "hugetlb_pool", "delayacct")
# Point keys that say where the point runs: this machine (vm_kernel host) or
# a VM booting that kernel with vm_nodes NUMA nodes (cowsnap.measure.bench.vm).
VM_KEYS = ("vm_kernel", "vm_nodes")
# A watch point's own keys (plan/methods.py: WATCH_KEYS) are Python's too.
PYTHON_KEYS = HARNESS_KEYS + VM_KEYS + WATCH_KEYS
# Every other point key is a field of the native Params (native/common/params.def).

# The writers' phases: while the snapshot lived, and after it ended (fork:
# when the parent saw the child exit; uffd and stop: when the copy was done).
# A phased record key ends in _<phase> (PHASE_SUFFIXES).
SNAPSHOT_PHASES = ("during_snapshot", "after_snapshot")
PHASE_SUFFIXES = tuple(f"_{phase}" for phase in SNAPSHOT_PHASES)

PAGE_KIB = {"hugetlb-2m": 2048, "hugetlb-1g": 1024 * 1024}  # hugetlb backing -> page size in KiB
VM_MEMORY_SPARE_MIB = 512  # a VM's memory beyond its points' arrays: the guest kernel and its files


class Point(dict):
    """A point resolved once, where the sweep is planned (plan.grid.resolve):
    every key set, the keys that do not apply at their defaults, its threads
    as numbers. Read-only, so every later stage, the wire included, measures
    the point the plan made; a variant is a new point,
    grid.resolve({**point, key: value})."""

    def __init__(self, settings=(), /):
        super().__init__(settings)
        unresolved = [key for key in ("writers", "copiers") if self.get(key) == "auto"]
        if unresolved:
            raise ValueError(f"{', '.join(unresolved)} still auto: resolve the point with plan.grid.resolve")

    def _read_only(self, *args, **kwargs):
        raise TypeError("a Point is read-only: make a new one with plan.grid.resolve({**point, key: value})")

    __setitem__ = __delitem__ = __ior__ = clear = pop = popitem = setdefault = update = _read_only

    def __reduce__(self):  # pickled as a job's parameter: rebuilt whole, not key by key
        return (Point, (dict(self),))


def planned(point: dict) -> Point:
    """The point a stage after the plan was given, as the plan made it: a
    Point as it is, or one a job read back from its parameters; TypeError
    for settings the plan never resolved."""
    if isinstance(point, Point):
        return point
    raise TypeError(
        f"{type(point).__name__} is not a planned point: resolve it with plan.grid.resolve (settings) or "
        "plan.grid.point_of (a command line's settings)"
    )


def native_params(point: dict) -> dict:
    """The point's keys that are fields of the native Params."""
    return {key: value for key, value in point.items() if key not in PYTHON_KEYS}


def parse_list(text: str, limit: int | None = None) -> list[int]:
    """A kernel list such as '0,2-3' -> [0, 2, 3] ('' -> []): the one parser
    of node and CPU lists. ValueError on a malformed list ('-', '0-', '3-1',
    '0,,1') or a number above limit."""
    numbers: list[int] = []
    text = text.strip()
    for part in text.split(",") if text else []:
        match = re.fullmatch(r"([0-9]+)(?:-([0-9]+))?", part)
        if not match:
            raise ValueError(f"{part!r} in {text!r} is not a number or a range n-m")
        first = int(match.group(1))
        last = int(match.group(2)) if match.group(2) is not None else first
        if last < first:
            raise ValueError(f"range {part!r} in {text!r} ends before it starts")
        if limit is not None and last > limit:
            raise ValueError(f"{last} in {text!r} is above {limit}")
        numbers.extend(range(first, last + 1))
    return numbers


def size_name(backing: str) -> str:
    """The kernel's name for the page size of a hugetlb or mTHP backing: '2048kB'."""
    return f"{folio_kib(backing)}kB"


def folio_kib(backing: str) -> int:
    """The size in KiB of one page of a hugetlb backing, or of one folio of an mTHP backing."""
    return PAGE_KIB[backing] if backing in PAGE_KIB else int(backing.removeprefix("mthp-").removesuffix("k"))


def memory_needed_mib(point: dict) -> int:
    return point["size_mib"] * arrays_needed(point) + 2 * point["memcpy_mib"]


def warm_mib(point: dict) -> int:
    """The memory touched and freed before the run: warm_mib, auto being
    what the point allocates."""
    return memory_needed_mib(point) if point["warm_mib"] == "auto" else point["warm_mib"]


def hugetlb_pages_needed(point: dict) -> int:
    if point["hugetlb_pool"] != "auto":
        return point["hugetlb_pool"]
    return point["size_mib"] * 1024 * arrays_needed(point) // PAGE_KIB[point["backing"]]


def numa_nodes_named(point: dict) -> set[int]:
    spec = point["numa_mem"].partition(":")[2]
    nodes = set(parse_list(spec)) if spec != "all" else set()
    for key in ("numa_writers", "numa_copiers"):
        if point[key].startswith("node:"):
            nodes.add(int(point[key].removeprefix("node:")))
    return nodes


def is_vm(point: dict) -> bool:
    return point.get("vm_kernel", "host") != "host"


def vm_shape(points: list[dict]) -> tuple[int, int]:
    """vCPUs and memory (MiB) for a VM running these points: every point's
    threads, its arrays."""
    nodes = points[0]["vm_nodes"]
    threads = max(max(p["writers"], p["copiers"]) for p in points)
    cpus = max(nodes, -(-threads // nodes) * nodes)
    memory = max(1024, max(memory_needed_mib(p) for p in points) + VM_MEMORY_SPARE_MIB)
    return cpus, -(-memory // (2 * nodes)) * 2 * nodes
