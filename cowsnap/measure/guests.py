"""Any point in a VM's guest: a boot (cowsnap.measure.vm) runs the benchmark
points of its kernel and topology and its watch points alike, each as its
own product makes it (cowsnap.measure.bench.runner.bench_run,
cowsnap.measure.watch.guest.guest_run)."""

from __future__ import annotations

from pathlib import Path

from cowsnap.measure import native, vm
from cowsnap.measure.bench import runner
from cowsnap.measure.watch import guest as watch_guest
from cowsnap.plan.methods import BENCHMARK


def guest_run(point: dict, build: native.Build, batch: Path, index: int) -> vm.GuestRun:
    """What the guest runs for a point: the compiled benchmark, or the watch of a program."""
    run = runner.bench_run if point["method"] in BENCHMARK else watch_guest.guest_run
    return run(point, build, batch, index)


def run_boot(runs: list[tuple[dict, dict]], build: native.Build, folder: Path | None = None) -> list[dict]:
    """The records of (point, ids) runs of one kernel and topology, of any method, in one boot."""
    return runner.run_vm(runs, build, folder, guest_run)
