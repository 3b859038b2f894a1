"""Thread counts sized to the machine, and how many of a point's threads
run at once.

`writers: auto` is half the CPUs this process may use (at least 1);
`copiers: auto` is the CPUs the writers leave (at least 1). So by default a
fork snapshot's writers and copiers fit the cores, and the figures show
what the kernel did, not how the scheduler shared too few cores. `auto` is
resolved where the sweep is planned (and by `cowsnap run`); the record
says how many CPUs the run's machine had.
"""

from __future__ import annotations

import os

from cowsnap.plan import methods

AUTO = "auto"


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity, not the machine's count)."""
    return len(os.sched_getaffinity(0))


def resolve(point: dict, cpus: int | None = None) -> dict:
    """The point with `auto` writers and copiers as numbers."""
    cpus = cpus or usable_cpus()
    out = dict(point)
    if out.get("writers") == AUTO:
        out["writers"] = max(1, cpus // 2)
    if out.get("copiers") == AUTO:
        out["copiers"] = max(1, cpus - out["writers"])
    return out


def runnable_threads(point: dict) -> int:
    """The most threads of the point that want a CPU at the same time: the
    writers, with the copiers where they copy while the writers run (fork
    with writers that start with the child, uffd), and the populating
    thread beside the writers (write-after-release); the stop snapshot
    pauses its writers while it copies. 0 for a watch point (its program's
    threads are its own)."""
    if point.get("method") not in methods.BENCHMARK:
        return 0
    writers, copiers = int(point["writers"]), int(point["copiers"])
    copiers_run = methods.copiers_beside_writers(point)
    if copiers_run == "instead":
        return max(writers, copiers)
    helper = 1 if point.get("populate") == "write-after-release" and point["method"] in methods.COPYING else 0
    return writers + (copiers if copiers_run == "beside" else 0) + helper
