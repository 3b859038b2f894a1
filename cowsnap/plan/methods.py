"""The snapshot methods, one row each: what a method is and what it can do.

Every list of methods derives from this table: the schema's allowed values,
which point keys apply (plan/grid.py), the threads that want a CPU at once
(plan/threads.py), the memory a point needs (plan/point.py), what holds up
a writer and whether the writers wait (analyse/verdict.py), and the lever
words of the summary. The benchmark's own methods are the native files that
register a Snapshot under the same name (COWSNAP_METHOD in
native/bench/<name>_snapshot.cpp); tests/test_methods.py holds the two equal.
Adding a method: docs/adding-a-method.md.
"""

from __future__ import annotations

from dataclasses import dataclass

# What a watched program's child did, decided when the watch ends
# (cowsnap.measure.watch.tracker): a snapshot child, whose parent copies; a
# worker, that copies inherited memory itself; a helper, that exec'd another
# program. The records' per-role keys and the summary's words derive from it.
CHILD_ROLES = ("snapshot child", "worker", "helper")

# The keys of a watch point (method=watch) only; a benchmark point has none
# of them. Commands are shell-like strings or argv lists.
COMMAND_KEYS = ("watch_command", "ready_command", "setup_command", "load_command", "snapshot_command", "after_command",
                "report_command")  # fmt: skip
WATCH_KEYS = (*COMMAND_KEYS, "load_lead_s", "watch_after_s", "mthp")
# Keys that say where a point runs: this machine (vm_kernel host) or a VM
# booting that kernel, with vm_nodes NUMA nodes, vm_cpus vCPUs and
# vm_memory_mib of memory (cowsnap.measure.vm). Every method takes them.
VM_KEYS = ("vm_kernel", "vm_nodes", "vm_cpus", "vm_memory_mib")

# Keys every benchmark method takes: the array, the threads, the writes.
BENCHMARK_KEYS = ("size_mib", "writers", "copiers", "batch_kib", "pattern", "backing", "populate", "numa_mem",
                  "numa_writers", "memcpy_mib", "warm_mib", "write_latency_kib", "passes", "write_s",
                  "write_rate", "hugetlb_pool", *VM_KEYS)  # fmt: skip


@dataclass(frozen=True)
class Method:
    # What the method is, in a few words (the schema's description of `method`).
    description: str
    # Measured by the native benchmark (a Snapshot case, or none's no snapshot).
    benchmark: bool
    # The array is copied: a snapshot is taken.
    copies: bool
    # Array-sized regions at worst: the array, the destination, and a private
    # copy of each that both processes write (fork); with the destination
    # made and zeroed before the snapshot (dest=zeroed), and without.
    arrays_zeroed_dest: int
    arrays_fresh_dest: int
    # When the copiers want a CPU beside the writers: "always", "with_child"
    # (unless the writers start after the snapshot ended), "instead" (the
    # writers pause while they copy) or "never".
    copiers_run: str
    # When the writers wait for the snapshot's end before writing: "always",
    # "after_child" (with start=after_child) or "never" (native
    # Snapshot::writers_wait decides the same).
    writers_wait: str
    # What a writer's first write waits for when the snapshot begins ("" none).
    start: str
    # The summary's words for the method as a lever against the plain fork ("" none).
    lever: str
    # Point keys this method takes beyond BENCHMARK_KEYS (a value of a key as "key=value").
    keys: tuple[str, ...] = ()


METHODS: dict[str, Method] = {
    "none": Method(
        description="no snapshot: the baseline",
        benchmark=True,
        copies=False,
        arrays_zeroed_dest=1,
        arrays_fresh_dest=1,
        copiers_run="never",
        writers_wait="never",
        start="",
        lever="",
        keys=("alloc",),
    ),
    "fork": Method(
        description="the seed's snapshot: a forked child copies the array",
        benchmark=True,
        copies=True,
        arrays_zeroed_dest=4,
        arrays_fresh_dest=3,
        copiers_run="with_child",
        writers_wait="after_child",
        start="the fork call",
        lever="",
        keys=(
            "release",
            "exit",
            "hold",
            "start",
            "touched_during",
            "populate=write-after-exit",
            "populate=write-after-release",
            "dest",
            "dontfork",
            "inject",
            "check_copy",
            "alloc",
            "numa_copiers",
            "sharing_interval_ms",
            "timeout_s",
        ),
    ),
    "uffd": Method(
        description="a userfaultfd write-protect snapshot in this process, no fork",
        benchmark=True,
        copies=True,
        arrays_zeroed_dest=2,
        arrays_fresh_dest=2,
        copiers_run="always",
        writers_wait="after_child",
        start="write-protecting the array",
        lever="no fork: userfaultfd write-protect (Linux 5.7+); a writer that reaches an uncopied batch "
        "waits for its copy",
        keys=("start", "dest", "check_copy", "numa_copiers"),
    ),
    "stop": Method(
        description="the writers wait while the parent copies",
        benchmark=True,
        copies=True,
        arrays_zeroed_dest=2,
        arrays_fresh_dest=2,
        copiers_run="instead",
        writers_wait="always",
        start="the stop-the-world copy",
        lever="the writers pause for the whole copy",
        keys=("dest", "check_copy", "alloc", "numa_copiers"),
    ),
    "watch": Method(
        description="no benchmark: a program of yours, run under cowsnap watch while its own snapshot is taken "
        "(the watch_* and *_command keys)",
        benchmark=False,
        copies=False,
        arrays_zeroed_dest=0,
        arrays_fresh_dest=0,
        copiers_run="never",
        writers_wait="never",
        start="",
        lever="",
        # In a VM of another kernel too: the program, its load and its snapshot run in the guest.
        keys=(*WATCH_KEYS, "timeout_s", *VM_KEYS),
    ),
}

# An unknown method name, in every lookup below, is a KeyError: the config's
# schema allows only METHODS.
BENCHMARK = tuple(name for name, method in METHODS.items() if method.benchmark)
COPYING = tuple(name for name, method in METHODS.items() if method.copies)
SNAPSHOT_START = {name: method.start for name, method in METHODS.items() if method.start}
LEVERS = {("method", name): method.lever for name, method in METHODS.items() if method.lever}


def taking(key: str) -> tuple[str, ...]:
    """The methods a key (or "key=value") applies to."""
    return tuple(
        name for name, method in METHODS.items() if key in method.keys or (method.benchmark and key in BENCHMARK_KEYS)
    )


def arrays_needed(point: dict) -> int:
    """Array-sized regions a benchmark point allocates at worst."""
    method = METHODS[point["method"]]
    return method.arrays_zeroed_dest if point.get("dest", "zeroed") == "zeroed" else method.arrays_fresh_dest


def copiers_beside_writers(point: dict) -> str:
    """'beside', 'instead' or 'no': whether the point's copiers want a CPU
    while its writers do."""
    runs = METHODS[point["method"]].copiers_run
    if runs == "with_child":
        runs = "always" if point.get("start", "with_child") == "with_child" else "never"
    return {"always": "beside", "instead": "instead", "never": "no"}[runs]


def writers_wait(point) -> bool:
    """The writers start only once the snapshot ended (native Snapshot::writers_wait)."""
    method = METHODS.get(point.get("method"))
    if method is None:
        return False
    return method.writers_wait == "always" or (
        method.writers_wait == "after_child" and point.get("start") == "after_child"
    )
