"""The machine a record was measured on: kernel, CPU, memory, THP, hugetlb."""

from __future__ import annotations

import os
import platform
import re
import shutil
import socket
import subprocess
from pathlib import Path

from cowsnap.plan.point import parse_list

REPO = Path(__file__).resolve().parents[2]  # the checkout whose commit a record names

THP_DIR = Path("/sys/kernel/mm/transparent_hugepage")
HUGETLB_DIR = Path("/sys/kernel/mm/hugepages")
NODE_DIR = Path("/sys/devices/system/node")
# The clock the steady clock reads: what one timed write's clock read costs.
CLOCKSOURCE = Path("/sys/devices/system/clocksource/clocksource0/current_clocksource")
# The scheduler's debug file, whose header says whether sched_clock is stable
# (debugfs since 5.13, /proc before).
SCHED_DEBUG = (Path("/sys/kernel/debug/sched/debug"), Path("/proc/sched_debug"))
# Keys a VM's guest reports of itself, in place of the host's: its huge page pool and its clocks.
GUEST_KEYS = ("hugetlb_", "clocksource", "sched_clock_")
SCHED_CLOCK_LINE = re.compile(r"sched_clock_stable\(\)\s*:\s*([01])")
# Delay accounting counts a delay only when its clock moved (kernel/delayacct.c,
# delayacct_end: `if (ns > 0)`). An unstable sched_clock is a per-CPU clock held
# between ticks, which can read the same before and after a copy: the copy is
# then not counted, and wpcopy_count is a lower bound (measured: 86-92% of a
# 6.1 guest's write faults under TCG, whose TSC the kernel marked unstable).
SCHED_CLOCK_UNSTABLE = (
    "the kernel's sched_clock is unstable (sched_clock_stable() is 0), and delay accounting drops a delay "
    "whose clock did not move, so its counts are lower bounds"
)


def read_text(path: Path, default: str = "") -> str:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return default


def sched_debug_head() -> str:
    """The first lines of the scheduler's debug file ('' where unreadable).
    Where debugfs is not mounted, root reads it from a mount namespace of its
    own: the system's mounts stay as they were."""
    for path in SCHED_DEBUG:
        try:
            with open(path) as debug:
                return debug.read(4096)
        except OSError:
            pass
    if os.geteuid() != 0 or not shutil.which("unshare"):
        return ""
    script = f"mount -t debugfs none /sys/kernel/debug && head -c 4096 {SCHED_DEBUG[0]}"
    try:
        done = subprocess.run(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout


def sched_clock(head: str | None = None) -> dict:
    """Whether the kernel's sched_clock, the clock of delay accounting, is
    stable: sched_clock_stable 1 or 0; where the scheduler's debug file cannot
    be read, no such key and sched_clock_source says why. A kernel whose
    architecture has no unstable sched_clock prints no such line: stable."""
    head = sched_debug_head() if head is None else head
    if not head:
        return {"sched_clock_source": f"not read: {SCHED_DEBUG[0]} is unreadable (debugfs not mounted, or not root)"}
    match = SCHED_CLOCK_LINE.search(head)
    return {"sched_clock_stable": int(match.group(1)) if match else 1, "sched_clock_source": "sched_debug"}


def selected(choice_line: str) -> str:
    """'always [madvise] never' -> 'madvise'."""
    match = re.search(r"\[([^\]]+)\]", choice_line)
    return match.group(1) if match else choice_line


def cpu_model() -> str:
    for line in read_text(Path("/proc/cpuinfo")).splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def meminfo_kib(field: str) -> int:
    for line in read_text(Path("/proc/meminfo")).splitlines():
        name, _, rest = line.partition(":")
        if name == field:
            return int(rest.split()[0])
    return 0


def numa_nodes() -> list[int]:
    return parse_list(read_text(NODE_DIR / "online", "0"))


def hugetlb_pool() -> dict[str, int]:
    """Reserved and free huge pages per size, as in 'hugetlb_2048kB_total'."""
    pool = {}
    for size_dir in sorted(HUGETLB_DIR.glob("hugepages-*kB")):
        size = size_dir.name.removeprefix("hugepages-")
        pool[f"hugetlb_{size}_total"] = int(read_text(size_dir / "nr_hugepages", "0"))
        pool[f"hugetlb_{size}_free"] = int(read_text(size_dir / "free_hugepages", "0"))
    return pool


def mthp_sizes_kib() -> list[int]:
    """Multi-size THP sizes this kernel offers (6.8+), smallest first."""
    sizes = [int(p.name.removeprefix("hugepages-").removesuffix("kB")) for p in THP_DIR.glob("hugepages-*kB")]
    return sorted(sizes)


def git_commit(repo: Path) -> str:
    try:
        done = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout.strip()


def fingerprint() -> dict:
    """The node: what keeps results from different machines apart."""
    return {
        "hostname": socket.gethostname(),
        "kernel": platform.release(),
        "cpu_model": cpu_model(),
        "online_cpus": os.cpu_count(),
        "numa_nodes": len(numa_nodes()),
        "mem_total_mib": meminfo_kib("MemTotal") // 1024,
    }


def machine_load() -> dict:
    """What else the machine was doing just before a run: the 1-minute load
    average, the tasks runnable at this moment (this process's thread
    included) and the other processes running now (state R)."""
    fields = read_text(Path("/proc/loadavg"), "").split()
    busy = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        text = read_text(stat, "")
        head, _, rest = text.rpartition(")")
        if rest.split()[:1] == ["R"] and int(stat.parent.name) != os.getpid():
            busy.append(f"{head.partition('(')[2]}({stat.parent.name})")
    return {
        "load1": float(fields[0]) if fields else float("nan"),
        "procs_running": int(fields[3].split("/")[0]) if len(fields) > 3 else -1,
        "busy_processes": ", ".join(sorted(busy)[:8]),
    }


def capture(repo: Path) -> dict:
    """Everything a record says about where it ran."""
    return {
        **fingerprint(),
        **machine_load(),
        "thp_enabled": selected(read_text(THP_DIR / "enabled", "unavailable")),
        "thp_defrag": selected(read_text(THP_DIR / "defrag", "unavailable")),
        "clocksource": read_text(CLOCKSOURCE, "unavailable"),
        **sched_clock(),
        **hugetlb_pool(),
        "git_commit": git_commit(repo),
        "uid": os.geteuid(),
    }
