"""Every record key and derived column: its label (with its unit), the
direction that is better, and where it comes from. Axis labels, captions,
the tables' statistics and the key table of docs/keys.md all read this registry,
so a key has one name and one meaning everywhere.

    python -m cowsnap.analyse.glossary    # prints the key table of docs/keys.md
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from cowsnap.analyse.verdict import CPU_WAIT_SHARE, NOISE_CV, OUTLIER_Z
from cowsnap.plan.methods import CHILD_ROLES
from cowsnap.plan.point import PHASE_SUFFIXES

# The writers' whole phase, and its parts (cowsnap.plan.point.SNAPSHOT_PHASES) in words.
PHASES = dict(zip(("", *PHASE_SUFFIXES), ("", " while the snapshot lived", " after the snapshot ended"), strict=True))


@dataclass(frozen=True)
class Key:
    label: str  # what a reader sees on an axis or in a table, unit included
    source: str  # the counter or clock it comes from
    better: str = ""  # lower | higher | "" (not a cost)
    phased: bool = False  # also recorded per phase (_during_snapshot, _after_snapshot)


def _usage(who: str, phased: bool, source: str) -> dict[str, Key]:
    return {
        f"{who}_minflt": Key(f"{who}'s minor faults", source, "lower", phased),
        f"{who}_majflt": Key(f"{who}'s major faults (retried faults, uffd waits)", source, "lower", phased),
        f"{who}_utime_s": Key(f"{who}'s user time (s)", source, "lower", phased),
        f"{who}_stime_s": Key(f"{who}'s kernel time (s)", source, "lower", phased),
    }


def _role_keys(role: str) -> dict[str, Key]:
    """A watch point's keys of one child role (cowsnap.plan.methods.CHILD_ROLES)."""
    stem, source = role.replace(" ", "_"), "cowsnap watch: each child's role from what it did"
    return {
        f"{stem}_count": Key(f"watch: {role} processes the program forked", source),
        f"{stem}_wpcopy_count": Key(
            f"watch: COW copies by the program's {role} processes (pages)",
            "taskstats of each, or its private dirty pages' growth where taskstats did not count; reuses are "
            "counted machine-wide only (pgreuse)",
            "lower",
            True,
        ),
        f"{stem}_wpcopy_source": Key(f"where the {role} processes' copy count came from", source),
        f"{stem}_private_dirty_pages": Key(
            f"watch: private dirty pages of the {role} processes, each at its peak, summed",
            "/proc/PID/smaps_rollup Private_Dirty, read every 50 ms while each lives",
            "lower",
        ),
    }


THREADS = "getrusage(RUSAGE_THREAD) of each writer thread, summed; watch: the program's /proc/PID/stat"
TASKSTATS = "taskstats (delay accounting), per thread, summed; watch: the program's threads"
VMSTAT = "/proc/vmstat delta (system-wide)"
LATENCY = "steady clock per span written, log-bucketed histogram (32 buckets per power of two), writers merged"
CHILD = "wait4() of the snapshot child; watch: its children's /proc/PID/stat and exit notifications, summed"

KEYS: dict[str, Key] = {
    # phases and clocks
    "writers_s": Key(
        "writers' time (s)",
        "steady clock: from just before the snapshot begins to the last writer's end",
        "lower",
        True,
    ),
    "snapshot_pause_s": Key(
        "writers held up by the snapshot (s)", "steady clock: fork() call, uffd register+protect, stop copy", "lower"
    ),
    "snapshot_end_s": Key(
        "snapshot end after the start mark (s)", "steady clock; watch: from the trigger to its children's exit", "lower"
    ),
    "fork_s": Key("fork() call (s)", "steady clock around fork()", "lower"),
    "vm_pte_kib": Key(
        "page-table memory just before the snapshot (KiB)", "VmPTE of /proc/self/status, every method", "lower"
    ),
    "snapshot_memory_mib": Key(
        "memory the snapshot cost: process and child together at their peak over it, less the process before "
        "the destination (MiB)",
        "the run's own memory cgroup, every method: its peak (cgroup v1 memory.max_usage_in_bytes, v2 memory.peak; "
        "reset just before the timed span, read once the snapshot ended) less its usage just before the "
        "destination is allocated; absent when not counted (snapshot_memory_source)",
        "lower",
    ),
    "snapshot_memory_source": Key(
        "where snapshot_memory_mib came from, or why there is none", "the benchmark; the runner, without a cgroup"
    ),
    "fork_empty_s": Key("fork() of the bare benchmark process (s)", "steady clock, best of 3", "lower"),
    # write latency (write_latency_kib > 0): each writer times its writes into
    # every write_latency_kib span; a write's phase is the one it started in
    "writes_timed": Key("timed writes (spans written)", LATENCY, "", True),
    "write_p50_s": Key("median write latency (s)", LATENCY, "lower", True),
    "write_p99_s": Key("p99 write latency (s)", LATENCY, "lower", True),
    "write_p999_s": Key("p99.9 write latency (s)", LATENCY, "lower", True),
    "write_max_s": Key("longest write (s)", "the writers' longest timed write, exact", "lower", True),
    "write_first_s": Key(
        "longest first write: it waited for the snapshot to begin (s)",
        "steady clock: from just before the snapshot begins to a writer's first span written, longest writer",
        "lower",
    ),
    "latency_phase": Key("phase of a write latency bucket: all, during_snapshot, after_snapshot", LATENCY),
    "latency_ns": Key("write latency bucket's lower end (ns)", LATENCY),
    "latency_writes": Key("writes in the bucket", LATENCY),
    "fork_net_s": Key("fork() call less the bare process's (s)", "fork_s - fork_empty_s", "lower"),
    "fill_s": Key("array fill (s)", "steady clock"),
    "populate_s": Key("MADV_POPULATE_WRITE calls (s)", "steady clock, summed", "lower"),
    "child_copy_s": Key("child's copy (s)", "steady clock in the child", "lower"),
    "child_check_s": Key("child's check of its copy (s)", "steady clock in the child"),
    "uffd_protect_s": Key("uffd register and write-protect (s)", "steady clock", "lower"),
    "uffd_copy_s": Key("uffd copy, protect to last batch (s)", "steady clock", "lower"),
    "memcpy_gbps": Key("memcpy bandwidth, one thread (GB/s)", "best of 3 memcpy of memcpy_mib", "higher"),
    "child_copy_gbps": Key("child's copy bandwidth (GB/s)", "size_mib / child_copy_s", "higher"),
    # the writers
    **_usage("writer", True, THREADS),
    "writer_cpu_delay_s": Key(
        "writers' wait for a CPU (s)",
        "/proc/thread-self/schedstat run_delay, per writer, summed; watch: taskstats cpu_delay_total",
        "lower",
        True,
    ),
    "writer_wpcopy_count": Key("writers' COW copies (pages)", TASKSTATS, "lower", True),
    "writer_wpcopy_delay_s": Key("writers' time in the COW-copy fault path (s)", TASKSTATS, "lower", True),
    "writer_wpcopy_source": Key("where the writers' copy count came from, or why there is none", "the benchmark"),
    "writer_unaccounted_minflt": Key(
        "watch: minor faults of the program's threads without delay accounting (their copies are not in "
        "writer_wpcopy_count)",
        "taskstats of each thread; a thread started while kernel.task_delayacct was 0 has none",
        "",
        True,
    ),
    # the process and the child
    **_usage("parent", True, "getrusage(RUSAGE_SELF) over the writers' phase"),
    **_usage("child", False, CHILD),
    "child_wpcopy_count": Key(
        "child's COW copies (pages)", "taskstats of the copier threads, summed; watch: of its children", "lower"
    ),
    "child_wpcopy_delay_s": Key("child's time in the COW-copy fault path (s)", "taskstats", "lower"),
    "child_private_dirty_pages": Key(
        "watch: the children's private dirty pages at their peak (pages either side copied, and their own)",
        "/proc/PID/smaps_rollup Private_Dirty of each snapshot child, read every 50 ms while it lives",
        "lower",
    ),
    "child_wpcopy_source": Key("where the child's copy count came from, or why there is none", "the benchmark"),
    "release_calls": Key("batches the child released (munmap or MADV_DONTNEED calls)", "the child"),
    "release_failed": Key("release calls that failed", "the child's checked return values", "lower"),
    "release_errno": Key("errno of the first failed release", "the child"),
    "uffd_faults": Key("write faults the uffd handler saw", "userfaultfd messages", "lower"),
    # system-wide counters over the writers' phase
    "pgfault": Key("page faults, whole machine", VMSTAT, "lower", True),
    "pgmajfault": Key("major faults, whole machine", VMSTAT, "lower", True),
    "pgreuse": Key("write faults that reused a 4 KiB page, whole machine", VMSTAT, "lower", True),
    "thp_fault_alloc": Key("THP allocated at fault", VMSTAT, "", True),
    "thp_fault_fallback": Key("THP fault fell back to small pages", VMSTAT, "lower", True),
    "thp_split_pmd": Key("huge page mappings split", VMSTAT, "lower", True),
    "thp_split_page": Key("huge pages split", VMSTAT, "lower", True),
    "thp_collapse_alloc": Key("THP collapsed by khugepaged", VMSTAT, "", True),
    # derived (cowsnap.analyse.aggregate)
    "copies": Key("writers' COW copies (pages)", "writer_wpcopy_count; absent when not counted", "lower", True),
    "copies_estimate": Key(
        "writers' faults that were not reuses (pages)", "writer_minflt - pgreuse, 4 KiB pages only", "lower", True
    ),
    "copies_source": Key("where copies came from, or why there are none", "writer_wpcopy_source"),
    "copy_delay_s": Key("writers' time in the COW-copy fault path (s)", "writer_wpcopy_delay_s", "lower", True),
    "memory_copy_s": Key(
        "writers' memory copying at memcpy speed (s)", "copies x 4 KiB / memcpy_gbps: the copy itself", "lower"
    ),
    "reuses": Key("write faults that reused the page (pages)", "pgreuse (system-wide)", "lower", True),
    "splits": Key("huge page mappings split by a write", "thp_split_pmd (system-wide)", "lower", True),
    "bytes_copied": Key("bytes the writers' copies moved", "copies x 4 KiB", "lower"),
    "snapshot_memory_counted_mib": Key(
        "memory the counters say the snapshot holds, the cross-check of snapshot_memory_mib (MiB)",
        "size_mib per destination the snapshot writes (fork with dest=zeroed: the parent's zeroed destination and "
        "the child's copy of it) + the writers' copies while it lived (copies_during_snapshot) x page_bytes, as if "
        "it held them all at once. Pages freed meanwhile make the measure lower: the old page of a copy once the "
        "child releases its batch (munmap or MADV_DONTNEED on an aligned array: the measure 67-84% of this at "
        "64-256 MiB, 2026-12-06), a child's exit while the writers still copy (hold=copy), the second copy when "
        "two writers copy one page at once. Page tables, thread stacks and the child's own pages, not in it, make "
        "it higher (a fork that holds everything until the writers end: 0.7-1 MiB more at 64 MiB, 2 MiB at 256)",
        "lower",
    ),
    "faults_per_page": Key("writers' faults per page", "writer_minflt / pages", "lower"),
    "writer_kernel_share": Key("writers' kernel share of CPU time", "writer_stime_s / (utime + stime)", "lower"),
    "timed": Key("times usable (no pagemap sampling during the run)", "sharing_interval_ms == 0"),
    "node_type": Key("node type: CPU model, CPUs, NUMA nodes, kernel and virtualization", "the record's environment"),
    "copy_floor_s": Key("copying the array at memcpy speed (s)", "size_mib / memcpy_gbps", "lower"),
    "writer_cpu_wait_share": Key(
        "writers' wait for a CPU, share of their thread time",
        "writer_cpu_delay_s / (writer_utime_s + writer_stime_s + writer_cpu_delay_s)",
        "lower",
    ),
    "writers_s_cv": Key("writers' time, coefficient of variation of the point's runs", "std / mean", "lower"),
    "writers_s_outliers": Key(
        f"runs whose writers' time is an outlier (modified z-score over {OUTLIER_Z:g} on the MAD)",
        "the point's runs",
        "lower",
    ),
    "unstable": Key(
        f"the point's writers' time varies by more than {100 * NOISE_CV:g}% (CV): noise, not effect", "writers_s_cv"
    ),
    "cpu_bound": Key(
        f"the writers waited for a CPU more than {100 * CPU_WAIT_SHARE:g}% of their thread time",
        "writer_cpu_wait_share",
    ),
    "machine_explains": Key(
        "an unstable point's spread comes with a spread the machine measured beside it (noise_cause)",
        "its runs' fresh_page_us, memcpy_gbps, host_reported_kib, steal_share, writer_cpu_wait_share",
    ),
    "noise_cause": Key(
        "what the machine measured that explains an unstable point's spread, and where in the run it lies",
        "its runs, by cowsnap/analyse/verdict.py's noise rules",
    ),
    "paired": Key(
        "the ratio is the median of run-by-run ratios to the baseline's run of the same round",
        "repetition; else the ratio of medians",
    ),
    "copy_on_idle_cores": Key("the copy can run on idle cores", "online_cpus >= writers + copiers"),
    "floor_s": Key(
        "the floor: least writers' time with a snapshot (s)",
        "baseline's low end B + max(0, copy - (online_cpus - writers) x B) / online_cpus",
        "lower",
    ),
    "writers_over_floor": Key("writers' time / floor", "writers_s / floor_s", "lower"),
    # what took effect
    "delayacct_effective": Key("delay accounting on for the run", "kernel.task_delayacct read back"),
    "huge_kib": Key("array in PMD huge pages (kB)", "smaps AnonHugePages of the array"),
    "fill_thp_fault_alloc": Key("THP allocated by the fill", VMSTAT),
    "mthp_fault_alloc": Key("mTHP folios of the size allocated by the fill", "sysfs hugepages-<N>kB/stats"),
    "numa_mem_effective": Key("the array's memory policy read back", "get_mempolicy"),
    "numa_nodes_used": Key("where sampled array pages landed", "move_pages"),
    "writer_cpus": Key("the CPU each writer thread finished on", "sched_getcpu"),
    "snapshot_ok": Key("the copy equals the array when the snapshot was taken", "the method's own check"),
    "snapshot_check": Key("why the copy was not checked (check_copy false)", "the benchmark"),
    "page_bytes": Key(
        "page size of the backing (bytes); a watch point's: the watched kernel's base page, its counts' unit",
        "the backing; sysconf(_SC_PAGESIZE)",
    ),
    "pages": Key("pages the array spans", "the mapping"),
    "batches": Key("copy and release batches", "size_mib / batch_kib"),
    "writes": Key("the writers' one-element writes", "counted by each writer, summed"),
    # the machine's own share
    "warm_mib_effective": Key(
        "memory touched and freed before the run (MiB)", "the point's warm_mib, auto resolved to what it allocates"
    ),
    "warm_s": Key("bringing that memory back from the host (s)", "steady clock, before the timed span"),
    "fresh_page_us": Key(
        "first write to a page of a fresh 4 MiB mapping (µs per page)",
        "steady clock just before the snapshot, every method: a fault, a page allocated and zeroed, backed by "
        "the host where it backs memory lazily",
        "lower",
    ),
    "touched_page_us": Key("second write to each page of that mapping (µs per page)", "steady clock", "lower"),
    "host_memory_return": Key(
        "how this machine hands free memory back to a host", "sysfs: /sys/bus/virtio/drivers/virtio_balloon"
    ),
    "host_reported_kib": Key(
        "free memory reported to the host during the run (KiB)",
        "/sys/module/page_reporting/parameters/reported_kib delta (whole machine), where the kernel counts it",
        "lower",
    ),
    "host_reported_source": Key("why host_reported_kib is absent", "the run"),
    "steal_s": Key("CPU time the host stole during the run (s, all CPUs)", "/proc/stat steal delta", "lower"),
    "writers_wait": Key(
        "the writers started only once the snapshot ended", "the method's Snapshot::writers_wait (the benchmark)"
    ),
    "samples_sharing": Key(
        "the method can sample the pages still shared (sharing_interval_ms)",
        "the method's Snapshot::samples_sharing (the benchmark)",
    ),
    "steal_share": Key(
        "share of the machine's CPU time the host stole during the run",
        "steal_s / (the run's wall time x online CPUs)",
        "lower",
    ),
    "pages_written": Key(
        "distinct pages the writers wrote (pages)",
        "the writes replayed after the run (the random patterns' generator is stateless)",
    ),
    "pages_written_during_snapshot": Key(
        "distinct pages the writers wrote while the snapshot lived (pages)",
        "each writer's writes before it saw the snapshot's end, replayed after the run",
    ),
    "writers_paused_s": Key(
        "touched_during: the longest a writer waited for the child's exit (s)", "steady clock", "lower"
    ),
    "process_mappings": Key("mappings of the benchmark process (what fork copies)", "/proc/self/maps"),
    "sharing_s": Key("time of a sharing sample since the start mark (s)", "steady clock"),
    "sharing_pages": Key("pages still shared with the child", "pagemap bit 56 (exclusive) clear"),
    # a watch point (method=watch): the program's own snapshot
    "watch_s": Key(
        "time watched from the snapshot's start (s)",
        "steady clock: from the reading before the snapshot to the last; per phase between readings",
        "",
        True,
    ),
    "children": Key("children the program forked, of every role", "cowsnap watch"),
    **{key: entry for role in CHILD_ROLES for key, entry in _role_keys(role).items()},
    "server_rdb_last_cow_size": Key(
        "the server's own count of its last snapshot's COW memory (bytes)", "report_command: INFO rdb_last_cow_size"
    ),
    "server_latest_fork_usec": Key("the server's own fork() time (µs)", "report_command: INFO latest_fork_usec"),
    "server_set_p50_us": Key(
        "the load's SET latency, median, on the server's side (µs)", "report_command: INFO latencystats", "lower"
    ),
    "server_set_p99_us": Key("the same, p99 (µs)", "report_command: INFO latencystats", "lower"),
    "server_set_p999_us": Key("the same, p99.9 (µs)", "report_command: INFO latencystats", "lower"),
    "server_report_source": Key("where the server_ keys come from, or which of them its report lacked", "cowsnap"),
    "anon_pages": Key(
        "the program's resident anonymous memory when its snapshot began (pages)", "/proc/PID/status RssAnon"
    ),
    # cowsnap watch: per process in watch.json ("processes") and per interval in timeline.csv
    "wpcopy_count": Key(
        "cowsnap watch: the process's COW copies (pages)",
        "taskstats wpcopy_count of its threads (delay accounting); none when a thread is not accounted",
        "lower",
    ),
    "wpcopy_delay_s": Key(
        "cowsnap watch: the process's time in the COW-copy fault path (s)", "taskstats wpcopy_delay_total", "lower"
    ),
    "minflt": Key("cowsnap watch: the process's minor faults", "/proc/PID/stat", "lower"),
    "majflt": Key("cowsnap watch: the process's major faults", "/proc/PID/stat", "lower"),
    "utime_s": Key("cowsnap watch: the process's user time (s)", "/proc/PID/stat", "lower"),
    "stime_s": Key("cowsnap watch: the process's kernel time (s)", "/proc/PID/stat", "lower"),
    "cpu_delay_s": Key("cowsnap watch: the process's wait for a CPU (s)", "taskstats cpu_delay_total", "lower"),
    "unaccounted_minflt": Key(
        "cowsnap watch: minor faults of the process's threads without delay accounting (their copies are not in "
        "wpcopy_count)",
        "taskstats of each thread; a thread started while kernel.task_delayacct was 0 has none",
    ),
    "private_dirty_pages": Key(
        "cowsnap watch: a child's private dirty pages at their peak (children running their parent's program)",
        "/proc/PID/smaps_rollup Private_Dirty, read every 50 ms while it lives",
        "lower",
    ),
    "shared_pages": Key(
        "cowsnap watch --sharing: the process's private anonymous pages still shared with another process",
        "/proc/PID/pagemap bit 56 (exclusive) clear",
    ),
    "status": Key("ok, skipped (not applicable here) or failed", "the run"),
    "reason": Key("why a run was skipped or failed", "the run"),
    # ids, environment, build
    "run_id": Key("experiment/point/repetition", "the grid"),
    "experiment": Key("experiment name", "the config"),
    "point_id": Key("hash of the point's settings", "the grid"),
    "repetition": Key("repetition number", "the grid"),
    "baseline_id": Key("the point this one is compared with", "the config's baseline"),
    "schedule_seed": Key("seed of the shuffled run order", "the config"),
    "schedule_position": Key("place in the shuffled run order", "the grid"),
    "started_at": Key("when the run started (UTC)", "the clock"),
    "label": Key("the point's name: its varying keys", "the config"),
    "n": Key("ok runs of the point", "the runs"),
    "kernel": Key("kernel release (the guest's for a VM run)", "uname"),
    "virtualized": Key(
        "none (this machine), or the VM's accelerator: kvm or tcg (software, not timed)", "cowsnap.measure.vm"
    ),
    "host_kernel": Key("kernel release of the machine that ran the VM", "uname"),
    "vm_kernel_release": Key(
        "the installed kernel release vm_kernel named: a series' newest ('' when none)",
        "the kernels installed in /boot and /lib/modules (cowsnap.plan.kernels)",
    ),
    "vm_boot_s": Key("the VM's whole boot: start, every point of the batch, power off (s)", "steady clock"),
    "guest_import_s": Key(
        "a watch point in a VM: the guest's Python importing the watch before it starts (s)",
        "steady clock in the guest (cowsnap.measure.watch.guest)",
    ),
    "guest_native_load_s": Key(
        "a watch point in a VM: loading the native library (taskstats) through cppyy in the guest (s)",
        "steady clock in the guest (cowsnap.measure.watch.guest)",
    ),
    "cpu_model": Key("CPU model", "/proc/cpuinfo"),
    "online_cpus": Key("online CPUs", "sysconf"),
    "runnable_threads": Key(
        "the most threads of the point that want a CPU at once",
        "cowsnap.plan.threads: writers, plus copiers copying beside them, plus a populating thread",
    ),
    "oversubscribed": Key("more threads wanted a CPU at once than the machine has", "runnable_threads > online_cpus"),
    "load1": Key("1-minute load average just before the run", "/proc/loadavg"),
    "procs_running": Key("tasks runnable just before the run (the runner's own included)", "/proc/loadavg"),
    "busy_processes": Key("other processes running just before the run", "/proc/PID/stat state R"),
    "numa_nodes": Key("NUMA nodes", "/sys/devices/system/node"),
    "hostname": Key("host name", "uname"),
    "uid": Key("user id of the run", "getuid"),
    "mem_total_mib": Key("memory (MiB)", "/proc/meminfo"),
    "thp_enabled": Key("THP mode during the run", "sysfs, read back"),
    "clocksource": Key(
        "the kernel's clock source: whether a clock read is a system call", "sysfs clocksource0/current_clocksource"
    ),
    "sched_clock_stable": Key(
        "1 where the kernel's sched_clock, delay accounting's clock, is stable; at 0 the copy counts are dropped",
        "the scheduler's debug file, sched_clock_stable()",
    ),
    "sched_clock_source": Key("where sched_clock_stable came from, or why it is absent", "the run"),
    "thp_defrag": Key("THP defrag mode during the run", "sysfs"),
    "cxxflags": Key("compiler flags of the benchmark", "the config"),
    "compiler": Key("compiler version", "c++ --version"),
    "cppyy_version": Key("cppyy version", "the Python package"),
    "source_hash": Key("hash of native/", "the build"),
    "build_key": Key("the build's cache key", "the build"),
    "git_commit": Key("commit of the code", "git"),
}

# Families named by a pattern (one entry per page size the kernel offers).
PATTERNS = {
    r"hugetlb_\d+kB_total": Key("huge pages in the pool of that size", "sysfs"),
    r"hugetlb_\d+kB_free": Key("free huge pages in the pool of that size", "sysfs"),
}

# What the point table summarises: medians with intervals, per point.
METRICS = [
    *(f"{key}{phase}" for key in ("writers_s", "copies", "copies_estimate", "reuses", "splits") for phase in PHASES),
    *(f"{key}{phase}" for key in ("writer_minflt", "writer_stime_s", "copy_delay_s") for phase in PHASES),
    "writer_utime_s",
    "writer_cpu_delay_s",
    "writer_cpu_wait_share",
    "load1",
    "writer_wpcopy_count",
    "memory_copy_s",
    "faults_per_page",
    "snapshot_pause_s",
    "snapshot_end_s",
    "fork_s",
    "vm_pte_kib",
    "snapshot_memory_mib",
    "snapshot_memory_counted_mib",
    "child_copy_s",
    "child_copy_gbps",
    "child_wpcopy_count",
    "child_wpcopy_delay_s",
    *(f"watch_s{phase}" for phase in PHASES),
    *(f"{key}{phase}" for key in ("write_p50_s", "write_p99_s", "write_p999_s", "write_max_s") for phase in PHASES),
    "write_first_s",
    "anon_pages",
    "server_rdb_last_cow_size",
    "server_latest_fork_usec",
    "server_set_p50_us",
    "server_set_p99_us",
    "server_set_p999_us",
    "memcpy_gbps",
    "release_failed",
    "release_calls",
    "pages",
    "writes",
    "fresh_page_us",
    "host_reported_kib",
    "steal_s",
    "steal_share",
    "warm_s",
    "pages_written",
    "pages_written_during_snapshot",
    "writers_paused_s",
    *(
        f"{role.replace(' ', '_')}_{key}"
        for role in CHILD_ROLES
        for key in (
            "count",
            "wpcopy_count",
            "private_dirty_pages",
            *(f"wpcopy_count{phase}" for phase in PHASES if phase),
        )
    ),
]


def lookup(name: str) -> Key:
    """The entry of a key, phase suffixes included; KeyError if it has none."""
    for suffix, words in PHASES.items():
        if suffix and name.endswith(suffix):
            base = KEYS.get(name.removesuffix(suffix))
            if base is not None and base.phased:
                unit = re.search(r" \(([^)]*)\)$", base.label)
                text = base.label[: unit.start()] if unit else base.label
                return Key(text + words + (f" ({unit.group(1)})" if unit else ""), base.source, base.better, True)
    if name in KEYS:
        return KEYS[name]
    for pattern, key in PATTERNS.items():
        if re.fullmatch(pattern, name):
            return key
    raise KeyError(f"{name!r} has no entry in cowsnap.analyse.glossary")


def markdown_table() -> str:
    """The table of measured and derived keys in docs/keys.md."""
    lines = ["| key | what | from | better |", "| --- | --- | --- | --- |"]
    for name, key in KEYS.items():
        phases = " (also `_during_snapshot`, `_after_snapshot`)" if key.phased else ""
        lines.append(f"| `{name}`{phases} | {key.label} | {key.source} | {key.better} |")
    for pattern, key in PATTERNS.items():
        lines.append(f"| `{pattern}` | {key.label} | {key.source} | {key.better} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(markdown_table(), end="")
