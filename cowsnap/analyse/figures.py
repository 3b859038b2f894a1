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
    "write_latency",
    "after_exit_copies",
    "levers",
    "tradeoff",
    "model_checks",
)
# Sizes the cost model is fitted on below the one it is checked on
# (cowsnap.analyse.model): an experiment with more draws its checks.
MODEL_FIT_SIZES = 3


def figures_for(
    methods: set[str],
    has_baseline: bool,
    samples_sharing: bool = False,
    sizes: int = 1,
    times_writes: bool = False,
    kernels: int = 1,
    has_reference: bool = False,
    model_sizes: int = 0,
) -> list[str]:
    """The figures that say something for an experiment (a watch point has
    no writers' time or array: its figures are the phase ones; fork runs
    over several array sizes get the scaling figure; points whose writers
    time their writes, the write latency figure; fork runs on several
    kernels, the after-exit copies by kernel and backing; levers against
    a reference snapshot, each lever round by round and the trade-off;
    snapshots at a set write rate over more sizes than the cost model is
    fitted on, its checks)."""
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
    if times_writes and methods - {"watch"}:
        names.append("write_latency")
    if "fork" in methods and kernels >= 2:
        names.append("after_exit_copies")
    if has_reference:
        names.append("levers")
    if has_reference and methods - {"watch"}:
        names.append("tradeoff")
    if model_sizes > MODEL_FIT_SIZES:
        names.append("model_checks")
    return names


# Published fork() costs, drawn as reference marks on fork_scaling and
# quoted by the summary: per-GB slopes (a band from low to high, in ms per
# 10^9 bytes) and single measurements (GiB, ms).
FORK_SLOPES = (
    ("Redis latency docs, bare metal: 9-13 ms/GB", 9.0, 13.0),
    ("Redis latency docs, KVM: 23 ms/GB", 23.0, 23.0),
)
FORK_POINTS = (
    ("'mm/memory: optimize fork() with PTE-mapped THP' (Linux 6.8 era): 14.3 ms, 1 GiB of 4 KiB pages", 1.0, 14.3),
)
