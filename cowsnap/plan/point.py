"""Facts about a point that every stage may ask: which of its keys the
native benchmark takes and which Python applies itself, its page sizes, the
memory and huge pages it needs, the NUMA nodes it names, what a VM running
it needs, and the most (and the least) a run of it takes (run_bound). Pure
functions of the point: nothing here reads the machine."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from cowsnap.plan import patterns
from cowsnap.plan.methods import BENCHMARK, COMMAND_KEYS, COPYING, VM_KEYS, WATCH_KEYS, arrays_needed

# Point keys the runner applies itself (system settings around the run).
HARNESS_KEYS = ("thp_mode", "hugetlb_pool", "delayacct")
# A watch point's own keys (plan/methods.py: WATCH_KEYS) are Python's too.
PYTHON_KEYS = HARNESS_KEYS + VM_KEYS + WATCH_KEYS
# Every other point key is a field of the native Params (native/common/params.def).

# The writers' phases: while the snapshot lived, and after it ended (fork:
# when the parent saw the child exit; uffd and stop: when the copy was done).
# A phased record key ends in _<phase> (PHASE_SUFFIXES).
SNAPSHOT_PHASES = ("during_snapshot", "after_snapshot")
PHASE_SUFFIXES = tuple(f"_{phase}" for phase in SNAPSHOT_PHASES)

PAGE_KIB = {"hugetlb-2m": 2048, "hugetlb-1g": 1024 * 1024}  # hugetlb backing -> page size in KiB
# A THP is a PMD's worth of memory: 2 MiB on x86-64, the machines cowsnap runs on.
THP_KIB = 2048
# vCPUs for a watch point's VM: its program, load and watch share them (under
# software emulation each vCPU is a host thread; two fit a 2-core machine).
WATCH_VM_CPUS = 2
VM_MEMORY_SPARE_MIB = 512  # a VM's memory beyond its points' arrays: the guest kernel and its files
VM_MIN_MEMORY_MIB = 1024  # a VM's memory at least, where its points name none (vm_memory_mib auto)


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


def largest_page_kib(backing: str) -> int:
    """The largest page or folio a backing may put the array in: what the
    array must hold one of at least for the backing to mean anything."""
    if backing == "thp":
        return THP_KIB
    return folio_kib(backing) if backing != "4k" else 4


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


def guest_threads(point: dict) -> int:
    """The threads a point runs at once in a VM: a benchmark point's writers
    or copiers, whichever are more; a watch point's program, its load and
    the watch itself, WATCH_VM_CPUS."""
    return max(point["writers"], point["copiers"]) if point["method"] in BENCHMARK else WATCH_VM_CPUS


def vm_shape(points: list[dict]) -> tuple[int, int]:
    """vCPUs and memory (MiB) for a VM running these points: the most any
    point names (vm_cpus, vm_memory_mib), where auto every point's threads
    and its arrays; the vCPUs a multiple of the nodes, the memory of 2 MiB
    per node."""
    nodes = points[0]["vm_nodes"]

    def named(key: str, auto) -> int:
        return max(auto(p) if p.get(key, "auto") == "auto" else p[key] for p in points)

    threads = named("vm_cpus", guest_threads)
    cpus = max(nodes, -(-threads // nodes) * nodes)
    memory = named("vm_memory_mib", lambda p: max(VM_MIN_MEMORY_MIB, memory_needed_mib(p) + VM_MEMORY_SPARE_MIB))
    return cpus, -(-memory // (2 * nodes)) * 2 * nodes


# ---- A run's cost, bounded from its keys before it starts (plan.grid
# refuses a point sure to outlive its time limit, warns where a limit is
# near a bound, and the dry run prints the sweep's bound).
#
# The bound of a run's time adds every part of it as if each ran alone on one
# CPU at this code's slowest rates; the floors below are what `cowsnap run`
# measured on the 2-core development VM (AMD EPYC, Linux 6.18, 2026-12-06,
# a VM whose first touch of a page may wait for its host) divided by a safety
# factor of about ten. No bound holds on a machine shared with other work: a
# 256 MiB fork run measured there once took 43 s instead of 4 s while other
# jobs ran beside it; the workflow runs nothing beside a timed run.
RUN_START_S = 10.0  # a run's fixed part: process, environment, knobs, record (1.1 s measured for a whole run)
STRIDED_WRITES_S = 1e8  # one-element writes a second on one CPU, a strided pattern (1.6e9 measured: vectorised)
RANDOM_WRITES_S = 1e6  # the same, a pattern of drawn pages (1.9e7 measured: a cache miss each)
FAULTS_S = 1e4  # write faults a second, a page copied each (1e5 measured: 2 writers beside 2 copiers on 2 CPUs)
FAULTS_PER_PAGE = 2  # write faults one page may take in a run: while the snapshot lives, and after it
TOUCH_MIB_S = 30.0  # memory touched first (filled, zeroed, warmed) (300 MiB/s measured warming 2 GiB, 1 GiB/s filling)
COPY_MIB_S = 30.0  # the snapshot copied, or checked (340 MiB/s measured: fork's child, 256 MiB, 2 copiers)
MEMCPY_PASSES = 3  # passes of the memcpy bandwidth measure over its buffer (native counters.cpp)
PAGEMAP_PAGES_S = 4e5  # pages a sharing sample reads a second (4.4e6 measured: 65,536 pages in 15 ms)
# A run is sure to take at least this long: no writer makes more one-element
# writes a second than this (1.6e9 measured; no core stores 8-byte elements
# twelve times faster).
MOST_WRITES_S = 2e10
MAX_RUN_S = 86400  # a day, the longest timeout_s and write_s: a run sure to take longer is a mistake
LONG_RUN_S = 3600  # a run sure to take an hour or more is worth a warning
ELEMENT_BYTES = 8  # the array's element (native common/internal.h: element)
WRITES_PER_LOOK = 4096  # writes between two looks at the clock and the rate (native writers.cpp: writes_per_look)
BENCH_PROCESS_MIB = 4 + 64  # the benchmark process beyond its arrays: the fresh-page probe (4 MiB), code, histograms
# A point in a VM: the guest runs each point under `timeout -s KILL` for
# VM_POINT_LIMIT_S or twice the longest timeout_s of its boot's points,
# whichever is longer, and the boot for VM_POINT_LIMIT_S more than its points'
# limits (cowsnap/measure/vm.py run_batch: the same rule).
VM_POINT_LIMIT_S = 120
# A watch point's Python in the guest, importing the watch and loading the
# native library through cppyy, before its first step (7-18 s measured under
# software emulation with the host's files cached in the guest, 9p cache=loose;
# 64 s once without that cache).
VM_WATCH_START_S = 60
VM_BOOT_S = 60.0  # a boot's own time (20 s measured for a boot of one 16 MiB point under software emulation)
VM_SLOWDOWN = 20  # a run in a VM under software emulation (a 64 MiB fork run: 15-50 s there, about 1 s here)
# A watch point: stopping a process group takes up to WATCH_STOP_S (SIGTERM,
# then SIGKILL), and a program that exits by itself is noticed within
# WATCH_EXIT_S (cowsnap/measure/watch/point.py: STOP_GRACE_S, EXIT_NOTICE_S).
WATCH_STOP_S = 5.0
WATCH_EXIT_S = 1.0


@dataclass(frozen=True)
class Span:
    """A stretch of a run: its seconds, the key that made it that long, and why, in words."""

    seconds: float
    key: str
    why: str


@dataclass(frozen=True)
class Bound:
    """The most one run of a point may take: seconds (a VM point's without
    its boot's own time) and memory at once in MiB, with the key that made
    the memory what it is ('' for a watch point, whose program is unknown)."""

    seconds: float
    memory_mib: int
    memory_key: str


def array_pages(point: dict) -> int:
    """Pages of the array in the backing's page size (a THP or mTHP array is counted in 4 KiB pages)."""
    return -(-point["size_mib"] * 1024 // PAGE_KIB.get(point["backing"], 4))


def writes_per_pass(point: dict) -> int:
    """One-element writes the busiest writer makes in a pass (native
    writers.cpp WritePattern::per_pass): its share of the elements
    (interleaved, blocked), or of as many writes as the array has pages."""
    if patterns.strided(point["pattern"]):
        return -(-point["size_mib"] * 2**20 // ELEMENT_BYTES // point["writers"])
    return max(1, array_pages(point) // point["writers"])


def _count(number: float) -> str:
    return f"{number:,.0f}"


def writers_at_least(point: dict) -> Span:
    """The least time the writers take, whatever the machine: until
    write_s, or their writes at write_rate, or at MOST_WRITES_S."""
    if point["write_s"] > 0:
        return Span(
            point["write_s"], "write_s", f"the writers write for {point['write_s']:g} s after the snapshot began"
        )
    per, passes, rate = writes_per_pass(point), point["passes"], point["write_rate"]
    writes = passes * per
    made = f"each writer makes {_count(writes)} writes" + (
        f" ({passes:,} passes of {_count(per)})" if passes > 1 else ""
    )
    made += f" (pattern={point['pattern']}, size_mib={point['size_mib']}, writers={point['writers']})"
    if rate and writes / rate >= writes / MOST_WRITES_S:
        return Span(writes / rate, "write_rate", f"{made} at write_rate={rate:,} a second")
    return Span(writes / MOST_WRITES_S, "passes", f"{made}, and no writer makes more than {MOST_WRITES_S:.0e} a second")


def child_at_least(point: dict) -> Span | None:
    """The least time a fork point's child lives while it waits for the
    writers (hold=writers: all their writes; touched_during: each writer's
    share of its first pass), None when it does not wait for them."""
    if point["method"] != "fork":
        return None
    if point["hold"] == "writers":
        span = writers_at_least(point)
        return Span(
            span.seconds, span.key, f"with hold=writers it holds its snapshot until the writers end, and {span.why}"
        )
    if point["touched_during"] != "free":
        share = int(float(point["touched_during"]) * writes_per_pass(point))
        rate = point["write_rate"] or MOST_WRITES_S
        key = "write_rate" if point["write_rate"] else "touched_during"
        why = (
            f"it waits until each writer wrote touched_during={point['touched_during']} of its pass, "
            f"{_count(share)} writes at {'write_rate=' if point['write_rate'] else 'at most '}{rate:,.0f} a second"
        )
        return Span(share / rate, key, why)
    return None


def _writers_at_most(point: dict) -> float:
    """The most the writers' writes take: every writer's on one CPU at the
    floor, plus the wait of write_rate (or write_s and one more pass)."""
    per, rate = writes_per_pass(point), point["write_rate"]
    floor = STRIDED_WRITES_S if patterns.strided(point["pattern"]) else RANDOM_WRITES_S
    one_pass = per * point["writers"] / floor
    if point["write_s"] > 0:
        # A writer looks at the clock after each group of writes (a timed span, or WRITES_PER_LOOK).
        group = max(WRITES_PER_LOOK, point["write_latency_kib"] * 1024 // ELEMENT_BYTES)
        return point["write_s"] + one_pass + (min(per, group) / rate if rate else 0.0)
    return point["passes"] * (one_pass + (per / rate if rate else 0.0))


def benchmark_at_most(point: dict) -> float:
    """The most the benchmark process of a (benchmark) point takes here,
    its start and record aside: every part added as if alone on one CPU."""
    size = point["size_mib"]
    # Touched first: the array, a destination zeroed before the snapshot,
    # the memcpy buffers, the warming (the copies' pages are faults below).
    zeroed = point["method"] in COPYING and point["dest"] == "zeroed"
    touched = (size * (1 + zeroed) + 2 * point["memcpy_mib"] + warm_mib(point)) / TOUCH_MIB_S
    memcpy = MEMCPY_PASSES * point["memcpy_mib"] / COPY_MIB_S
    pages_4k = size * 256
    span = _writers_at_most(point) + FAULTS_PER_PAGE * pages_4k / FAULTS_S
    if point["method"] in COPYING:
        span += size / COPY_MIB_S * (2 if point["check_copy"] else 1)
    if point["populate"] != "none":
        span += size / TOUCH_MIB_S
    if point["sharing_interval_ms"] > 0:  # a sample competes with the writers and the copy
        sample = pages_4k / PAGEMAP_PAGES_S
        span = span * (1 + sample / (point["sharing_interval_ms"] / 1000)) + 2 * sample
    return touched + memcpy + span


def vm_point_limit_s(points: list[dict]) -> float:
    """The time a VM boot allows each of its points: run_batch (cowsnap/measure/vm.py) gives each this
    (a watch point also the guest's Python starting, VM_WATCH_START_S)."""
    return max(VM_POINT_LIMIT_S, max(int(2 * point["timeout_s"]) + guest_start_s(point) for point in points))


def guest_start_s(point: dict) -> int:
    """What a point's guest spends before it measures, beyond its steps:
    a watch point's Python and cppyy starting (VM_WATCH_START_S), nothing
    for the compiled benchmark."""
    return 0 if point["method"] in BENCHMARK else VM_WATCH_START_S


def run_bound(point: dict, vm_limit_s: float = 0) -> Bound:
    """The most one run of the point may take, and the most memory it holds
    at once (a watch point: each step its command waits for at timeout_s).
    A VM point's time is at most vm_limit_s (vm_point_limit_s of its boot;
    0: its own), its boot's own time aside."""
    if point["method"] == "watch":
        steps = 1 + sum(bool(point[key].strip()) for key in ("ready_command", "setup_command", "after_command"))
        stops = sum(bool(point[key].strip()) for key in COMMAND_KEYS) * WATCH_STOP_S
        waits = point["load_lead_s"] + point["watch_after_s"] + WATCH_EXIT_S
        seconds = RUN_START_S + steps * point["timeout_s"] + waits + stops
        if is_vm(point):  # killed at its boot's limit
            seconds = min(seconds, vm_limit_s or vm_point_limit_s([point]))
        return Bound(seconds, 0, "")
    needed = memory_needed_mib(point)
    if warm_mib(point) > needed:
        memory, key = warm_mib(point), "warm_mib"
    else:
        arrays = point["size_mib"] * arrays_needed(point)
        memory, key = needed, "size_mib" if arrays >= needed - arrays else "memcpy_mib"
    bench = benchmark_at_most(point)
    limit = vm_limit_s or vm_point_limit_s([point])
    seconds = min(bench * VM_SLOWDOWN, limit) if is_vm(point) else RUN_START_S + bench
    return Bound(seconds, memory + BENCH_PROCESS_MIB, key)


def child_at_most(point: dict) -> float:
    """The most a fork point's child may live: its copy and check, and
    while it waits for the writers (hold=writers, touched_during) theirs."""
    size = point["size_mib"]
    seconds = size / COPY_MIB_S * (2 if point["check_copy"] else 1) + FAULTS_PER_PAGE * size * 256 / FAULTS_S
    if point["dest"] == "fresh":
        seconds += size / TOUCH_MIB_S
    if point["hold"] == "writers" or point["touched_during"] != "free":
        seconds += _writers_at_most(point)
    return seconds


def duration(seconds: float) -> str:
    """Seconds in words: '45 s', '12 min', '3 h 20 min', '2 d 4 h'."""
    seconds = math.ceil(seconds)
    if seconds < 120:
        return f"{seconds} s"
    minutes = math.ceil(seconds / 60)
    if minutes < 120:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"
