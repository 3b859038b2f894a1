"""The figures by name, and which of them an experiment draws: what the
workflow needs to name its figure files, without loading the plotting
libraries (cowsnap.analyse.plots draws them)."""

from __future__ import annotations

NAMES = (
    "writers_time",
    "writer_faults",
    "kernel_time",
    "ratios",
    "sharing_timeline",
    "copy_bandwidth",
    "phase_faults",
    "phase_kernel_time",
    "fork_scaling",
)


def figures_for(methods: set[str], has_baseline: bool, samples_sharing: bool = False, sizes: int = 1) -> list[str]:
    """The figures that say something for an experiment (a watch point has
    no writers' time or array: its figures are the phase ones; fork runs
    over several array sizes get the scaling figure)."""
    names = ["writers_time", "writer_faults", "kernel_time"] if methods - {"watch"} else []
    if "watch" in methods:
        names += ["phase_faults", "phase_kernel_time"]
    if has_baseline:
        names.append("ratios")
    if "fork" in methods:
        names.append("copy_bandwidth")
    if samples_sharing:
        names.append("sharing_timeline")
    if "fork" in methods and sizes >= 3:
        names.append("fork_scaling")
    return names
