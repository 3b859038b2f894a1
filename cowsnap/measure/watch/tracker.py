"""The watch's tracker: the processes it follows, their counters per
interval, and why a counter is not counted.

It follows a process, its threads and the children it forks (found in
/proc/PID/task/*/children at each reading, and from the kernel's taskstats
exit notifications, which give the final counts of a child that lived less
than one interval).

Copies come from taskstats only for threads the kernel keeps delay
accounting for: a task gets it only if it was created while
kernel.task_delayacct was 1. A thread is known to have it when it started
after delay accounting was known to be on, or when it has counted an event
only such a task counts; the minor faults of every other thread are
counted as unaccounted_minflt, so a count of copies that misses theirs is
never taken for exact. The snapshot children's private dirty pages
(smaps_rollup) count copies with no delay accounting at all.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field

from cowsnap.measure import environment, knobs
from cowsnap.measure.watch import proc
from cowsnap.plan.methods import CHILD_ROLES
from cowsnap.plan.point import SNAPSHOT_PHASES

# Per-process counters (the record's key stems): name -> where it comes from.
COUNTERS = {
    "wpcopy_count": "taskstats wpcopy_count",
    "wpcopy_delay_s": "taskstats wpcopy_delay_total",
    "minflt": "/proc/PID/stat",
    "majflt": "/proc/PID/stat",
    "utime_s": "/proc/PID/stat",
    "stime_s": "/proc/PID/stat",
    "cpu_delay_s": "taskstats cpu_delay_total",
    "unaccounted_minflt": "taskstats of each thread: minor faults of threads without delay accounting",
    "private_dirty_pages": "smaps_rollup Private_Dirty of the children running their parent's program, at its peak",
}
TASKSTATS_COUNTERS = ("wpcopy_count", "wpcopy_delay_s", "cpu_delay_s", "unaccounted_minflt")
USAGE = ("minflt", "majflt", "utime_s", "stime_s")
PHASES = ("before_snapshot", *SNAPSHOT_PHASES)
PHASE_WORDS = {
    "before_snapshot": "before any child",
    "during_snapshot": "while a child lived",
    "after_snapshot": "after the children exited",
}
# What a child did, decided when the watch ends (child_role): a helper runs
# another program (exec); a worker copied at least as much as its parent
# did while it lived, and either copied WORKER_MIN_PAGES or more itself or
# worked (CPU time) at least as much as its parent meanwhile; any other
# child is a snapshot child: its parent writes while it lives, so the
# parent copies (the roles: cowsnap.plan.methods.CHILD_ROLES).
WORKER_MIN_PAGES = 256
# Between two readings of the children's private dirty pages while one
# lives: the copies a child makes in its last moments are missed.
MEMORY_INTERVAL_S = 0.05


def boot_clock() -> float:
    return time.clock_gettime(time.CLOCK_BOOTTIME)


@dataclass
class Thread:
    comm: str
    start_boot_s: float
    verified: bool  # the kernel keeps delay accounting for it
    base: dict = field(default_factory=dict)  # counts when the watch first saw it
    total: dict = field(default_factory=dict)  # counts as last read
    minflt_at: dict = field(default_factory=dict)  # tick -> minflt read then


@dataclass
class Process:
    pid: int
    comm: str
    ppid: int
    role: str  # watched | child (a descendant)
    start_s: float | None  # since the watch began; None: before it
    end_s: float | None = None
    base: dict = field(default_factory=dict)  # counters when the watch first saw it
    total: dict = field(default_factory=dict)  # cumulative counters, as last read
    reported: dict = field(default_factory=dict)  # cumulative at the last interval row
    exit_code: int | None = None
    threads: dict = field(default_factory=dict)  # tid -> Thread
    same_program: bool = True  # a child still running its parent's program (it has not exec'd another)
    shared_pages: float = math.nan

    @property
    def alive(self) -> bool:
        return self.end_s is None

    def raise_to(self, values: dict) -> None:
        """Counters only grow: a read that lags (a zombie, a thread that just
        left) never takes back what was counted."""
        for key, value in values.items():
            if value is None or (isinstance(value, float) and math.isnan(value)):
                continue
            self.total[key] = max(self.total.get(key, -math.inf), value)
            self.base.setdefault(key, 0.0 if self.start_s is not None else value)


def _counts_dict(counts) -> dict:
    return {"wpcopy_count": counts.copies, "wpcopy_delay_s": counts.copy_delay_s, "cpu_delay_s": counts.cpu_delay_s}


def _usage_dict(counts) -> dict:
    return {"minflt": counts.minflt, "majflt": counts.majflt, "utime_s": counts.utime_s, "stime_s": counts.stime_s}


class Watch:
    """One watch: the tracked processes, their timeline and the reasons for
    what is not counted. `native` is the cowsnap C++ namespace (cppyy).

    delayacct_since: CLOCK_BOOTTIME seconds since which kernel.task_delayacct
    is known to have been 1 (tasks created later are accounted); None when
    taskstats copies are not counted at all (delayacct_reason says why)."""

    def __init__(
        self, native, root: int, delayacct_reason: str, sharing: bool = False, delayacct_since: float | None = None
    ):
        self.native = native
        self.root = root
        self.sharing = sharing
        self.t0 = time.monotonic()
        self.boot_offset = boot_clock() - self.t0
        self.delayacct_since = delayacct_since if delayacct_since is not None else boot_clock()
        self.processes: dict[int, Process] = {}
        self.rows: list[dict] = []
        self.events: list[dict] = []
        self.pending: list = []  # exits of tasks whose parent is not yet known
        self.reasons: dict[str, str] = {}
        self.sharing_cost = {"samples": 0, "seconds": 0.0, "pages": 0}
        self.memory_cost = {"samples": 0, "seconds": 0.0}
        self.memory = {"anon_pages_at_fork": math.nan, "peak_child_private_pages": math.nan}
        self.listener = native.ExitListener()
        if self.listener.error():
            self.reasons["exits"] = f"not counted: {self.listener.error()}"
        if not delayacct_reason and environment.sched_clock().get("sched_clock_stable") == 0:
            delayacct_reason = environment.SCHED_CLOCK_UNSTABLE
        if delayacct_reason:
            for key in TASKSTATS_COUNTERS:
                self.reasons[key] = f"not counted: {delayacct_reason}"
        self.vmstat0 = self.vmstat_last = proc.read_vmstat()
        self.last_tick = 0.0
        self.ticks = 0
        self.last_memory = -math.inf

    def now(self) -> float:
        return time.monotonic() - self.t0

    # -- discovery and sampling

    def _add(self, pid: int, role: str, stat: dict) -> Process:
        start = stat["start_boot_s"] - self.boot_offset - self.t0
        # Started after the watch (within the clock's tick): all its counts are the watch's.
        process = Process(pid, stat["comm"], stat["ppid"], role, max(start, 0.0) if start > -0.01 else None)
        self.processes[pid] = process
        if role == "child":
            self.check_program(process)
            if math.isnan(self.memory["anon_pages_at_fork"]):
                self.memory["anon_pages_at_fork"] = proc.anon_pages(self.root)
            self.event("started", process, max(start, 0.0))
        return process

    def check_program(self, process: Process) -> None:
        """A child that execs another program (its auxiliary vector is no
        longer its parent's) is not its parent's copy: read at every
        sampling, as it may exec after the watch first saw it."""
        if process.same_program:
            mine, parents = proc.auxv(process.pid), proc.auxv(process.ppid)
            process.same_program = mine is None or parents is None or mine == parents

    def event(self, what: str, process: Process, at: float) -> None:
        self.events.append(
            {"t_s": round(at, 4), "event": what, "pid": process.pid, "comm": process.comm, "role": process.role}
        )

    def start(self) -> None:
        """First reading of a running root; WatchError when it is already gone."""
        stat = proc.read_stat(self.root)
        if stat is None or stat["state"] in "ZX":
            raise proc.WatchError(f"process {self.root} exited before the watch could start")
        self.processes[self.root] = Process(self.root, stat["comm"], stat["ppid"], "watched", None)
        self.sample()
        self.receive(0)
        if not self.processes[self.root].total:
            raise proc.WatchError(f"process {self.root} exited before the watch could start")

    def adopt(self, pid: int, comm: str) -> None:
        """The root is a command this watch started: all its counts are the watch's."""
        self.root = pid
        self.processes[pid] = Process(pid, comm, os.getpid(), "watched", 0.0)
        self.sample()
        self.receive(0)

    def sample(self) -> None:
        """Reads every live tracked process and finds new children."""
        queue = [p.pid for p in self.processes.values() if p.alive]
        seen = set()
        while queue:
            pid = queue.pop()
            if pid in seen:
                continue
            seen.add(pid)
            stat = proc.read_stat(pid)
            if stat is None or stat["state"] in "ZX":
                # Its exit notification ends it; without them (or should one
                # be lost), a process found gone ends when it is seen gone.
                known = self.processes.get(pid)
                if known is not None and known.alive and (stat is None or "exits" in self.reasons):
                    self.end(known, self.now())
                continue
            process = self.processes.get(pid) or self._add(pid, "child", stat)
            if not process.alive:
                continue
            process.comm = stat["comm"]
            if process.role == "child":
                self.check_program(process)
            values = {k: stat[k] for k in USAGE}
            if not self.uncounted("wpcopy_count"):
                counts = self.native.task_counts(pid, True)
                if counts.error:
                    if proc.read_stat(pid) is not None:
                        for key in TASKSTATS_COUNTERS:
                            self.reasons[key] = f"not counted: {counts.error}"
                else:
                    values.update(_counts_dict(counts))
                    self._sample_threads(process)
            process.raise_to(values)
            self._sample_memory(process)
            if self.sharing:
                began = time.perf_counter()
                shared, scanned, reason = proc.shared_pages(pid)
                self.sharing_cost["seconds"] += time.perf_counter() - began
                self.sharing_cost["samples"] += 1
                self.sharing_cost["pages"] += scanned
                process.shared_pages = shared
                if reason:
                    self.reasons["shared_pages"] = f"not counted: {reason}"
            queue.extend(proc.children_of(pid) - seen)

    def sample_memory(self) -> None:
        """Reads the live children's private dirty pages (those running their parent's program), at most
        every MEMORY_INTERVAL_S (the main loop calls this between readings)."""
        if self.now() - self.last_memory < MEMORY_INTERVAL_S:
            return
        self.last_memory = self.now()
        # Children forked since the last reading: a pool's workers may copy all they will within one interval.
        for parent in [p for p in self.processes.values() if p.alive]:
            for pid in proc.children_of(parent.pid) - set(self.processes):
                stat = proc.read_stat(pid)
                if stat is not None and stat["state"] not in "ZX":
                    self._add(pid, "child", stat)
        for process in list(self.processes.values()):
            if process.role == "child" and process.alive:
                self._sample_memory(process)

    def _sample_memory(self, process: Process) -> None:
        if process.role != "child" or not process.same_program:
            return
        began = time.perf_counter()
        pages, reason = proc.private_dirty_pages(process.pid)
        self.memory_cost["seconds"] += time.perf_counter() - began
        self.memory_cost["samples"] += 1
        self.last_memory = self.now()
        if reason:
            self.reasons["private_dirty_pages"] = f"not counted: {reason}"
        process.raise_to({"private_dirty_pages": pages})
        live = [
            p.total.get("private_dirty_pages", 0.0) - p.base.get("private_dirty_pages", 0.0)
            for p in self.processes.values()
            if p.role == "child" and p.alive and p.same_program
        ]
        peak = self.memory["peak_child_private_pages"]
        self.memory["peak_child_private_pages"] = max(sum(live), 0.0 if math.isnan(peak) else peak)

    def _sample_threads(self, process: Process) -> None:
        """Each thread's counts, and whether the kernel keeps delay
        accounting for it (its copies are in wpcopy_count only if it does)."""
        now_boot = boot_clock()
        for tid in proc.threads_of(process.pid):
            counts = self.native.task_counts(tid, False)
            if not counts.error:
                self._read_thread(process, tid, counts, now_boot - counts.elapsed_s)

    def _read_thread(self, process: Process, tid: int, counts, start_boot_s: float) -> None:
        """Takes a thread's counts (a reading, or its exit's final ones); a
        thread seen first here gets its start and base."""
        values = {**_counts_dict(counts), **_usage_dict(counts)}
        thread = process.threads.get(tid)
        if thread is None:
            verified = start_boot_s > self.delayacct_since
            thread = process.threads[tid] = Thread(str(counts.comm), start_boot_s, verified)
            new = process.start_s is not None or start_boot_s > self.boot_offset + self.t0
            thread.base = {k: 0.0 for k in values} if new else dict(values)
        thread.verified = thread.verified or counts.accounted_events > 0
        thread.total = values
        thread.minflt_at[self.ticks] = counts.minflt

    def uncounted(self, key: str) -> str:
        """Why a counter is not counted in this watch ('' when it is)."""
        if key == "shared_pages" and not self.sharing:
            return "not counted: --sharing not asked for"
        return self.reasons.get(key, "")

    def receive(self, timeout_s: float) -> None:
        """Takes the exit notifications that arrive within timeout_s."""
        exits = list(self.listener.receive(timeout_s))
        self.pending = [e for e in self.pending if self.now() - e[0] < 5.0]
        for counts in exits:
            self.pending.append((counts.received_s - self.t0, counts))
        progress = True
        while progress:  # a grandchild may exit before its parent is known
            progress = False
            for item in list(self.pending):
                if self._apply_exit(*item):
                    self.pending.remove(item)
                    progress = True

    def _apply_exit(self, at: float, counts) -> bool:
        tgid = counts.tgid or counts.pid
        process = self.processes.get(tgid)
        if process is None:
            parent = self.processes.get(counts.ppid)
            if counts.whole_process or counts.pid != tgid or parent is None:
                return False
            # A child the polling never saw: it lived less than one interval.
            process = Process(tgid, str(counts.comm), counts.ppid, "child", max(at - counts.elapsed_s, 0.0))
            self.processes[tgid] = process
            self.event("started", process, process.start_s)
        if counts.error:
            return True
        if counts.whole_process:
            if not self.uncounted("wpcopy_count"):
                process.raise_to(_counts_dict(counts))
            self.end(process, at)
            return True
        self._read_thread(process, counts.pid, counts, boot_clock() - (self.now() - at) - counts.elapsed_s)
        summed = [*USAGE, *([] if self.uncounted("wpcopy_count") else _counts_dict(counts))]
        process.raise_to({k: sum(t.total.get(k, 0.0) for t in process.threads.values()) for k in summed})
        if counts.pid == tgid:
            process.exit_code = counts.exit_code
            self.end(process, at)
        return True

    def end(self, process: Process, at: float) -> None:
        if process.alive:
            process.end_s = at
            self.event("exited", process, at)

    # -- the timeline

    def check_delayacct(self) -> None:
        """Copies count only while kernel.task_delayacct stays 1: another
        program switching it off makes the watch's copies incomplete."""
        if self.uncounted("wpcopy_count") or knobs.current(knobs.TASK_DELAYACCT) == "1":
            return
        for key in TASKSTATS_COUNTERS:
            self.reasons[key] = (
                "not counted: kernel.task_delayacct was switched off during the watch by another program, "
                "so copies after that moment are missing"
            )

    def unaccounted_minflt(self, process: Process, tick: int) -> float:
        """Minor faults in interval `tick` of the process's threads without
        delay accounting, as far as the watch knows now."""
        total = 0.0
        for thread in process.threads.values():
            if thread.verified or tick not in thread.minflt_at:
                continue
            # The reading before this one (usually the tick before: a long watch stays linear).
            earlier = (thread.minflt_at[t] for t in range(tick - 1, -1, -1) if t in thread.minflt_at)
            before = next(earlier, thread.base.get("minflt", 0.0))
            total += thread.minflt_at[tick] - before
        return total

    def tick(self) -> list[dict]:
        """Closes one interval: samples, and appends one row per process that
        lived in it and one system-wide row. Returns the new rows."""
        self.check_delayacct()
        self.receive(0)
        self.sample()
        self.receive(0)
        t1 = self.now()
        t0, self.last_tick = self.last_tick, t1
        phase = self.phase(t0, t1)
        new = []
        for process in self.processes.values():
            if process.end_s is not None and process.end_s < t0 and process.reported == process.total:
                continue
            row = {
                "tick": self.ticks,
                "t_start_s": round(t0, 4),
                "t_end_s": round(t1, 4),
                "phase": phase,
                "scope": "process",
                "pid": process.pid,
                "comm": process.comm,
                "role": process.role,
                "alive": process.alive,
            }
            for key in COUNTERS:
                if key == "unaccounted_minflt":
                    row[key] = math.nan if self.uncounted(key) else self.unaccounted_minflt(process, self.ticks)
                    continue
                if self.uncounted(key) or key not in process.total:
                    row[key] = math.nan
                    continue
                row[key] = process.total[key] - process.reported.get(key, process.base.get(key, 0.0))
                process.reported[key] = process.total[key]
            row["shared_pages"] = process.shared_pages if process.alive else math.nan
            new.append(row)
        vmstat = proc.read_vmstat()
        system = {"tick": self.ticks, "t_start_s": round(t0, 4), "t_end_s": round(t1, 4), "phase": phase}
        system["scope"] = "system-wide"
        system.update({k: vmstat[k] - self.vmstat_last.get(k, vmstat[k]) for k in vmstat})
        self.vmstat_last = vmstat
        new.append(system)
        self.rows.extend(new)
        self.ticks += 1
        return new

    def settle(self) -> None:
        """Rewrites each row's unaccounted_minflt with what the watch knows
        at the end: a thread that showed its delay accounting later had it
        all along, so its earlier faults were accounted."""
        for row in self.rows:
            if row["scope"] == "process" and not math.isnan(row.get("unaccounted_minflt", math.nan)):
                row["unaccounted_minflt"] = self.unaccounted_minflt(self.processes[row["pid"]], row["tick"])

    def own_copies(self, pid: int) -> tuple[float, str]:
        """A process's copies over the watch and their source: taskstats, or
        its private dirty pages' growth where taskstats did not count them."""
        process = self.processes[pid]
        rows = [r for r in self.rows if r.get("pid") == pid]
        counted = sum(r["wpcopy_count"] for r in rows)
        if rows and not math.isnan(counted) and not any(r.get("unaccounted_minflt", 0.0) > 0 for r in rows):
            return counted, "taskstats"
        if "private_dirty_pages" in process.total:
            return process.total["private_dirty_pages"] - process.base.get(
                "private_dirty_pages", 0.0
            ), "child_private_dirty"
        return math.nan, ""

    def parent_while(self, child: Process, keys: tuple[str, ...]) -> float:
        """The sum of the child's parent's counters `keys` in the intervals the child lived."""
        end = child.end_s if child.end_s is not None else math.inf
        rows = [
            r
            for r in self.rows
            if r.get("pid") == child.ppid and r["t_end_s"] > (child.start_s or 0.0) and r["t_start_s"] < end
        ]
        return sum(r.get(key, 0.0) for r in rows for key in keys)

    def child_role(self, child: Process) -> str:
        """snapshot child, worker or helper (CHILD_ROLES), from what the child did."""
        if not child.same_program:
            return "helper"
        own, _ = self.own_copies(child.pid)
        parent = self.parent_while(child, ("wpcopy_count",))
        # Copies not counted, or not all (threads without delay accounting count 0): its minor faults bound them.
        if math.isnan(parent) or self.parent_while(child, ("unaccounted_minflt",)) > 0:
            parent = self.parent_while(child, ("minflt",))
        if math.isnan(own) or own < parent:
            return "snapshot child"
        cpu = ("utime_s", "stime_s")
        worked = sum(child.total.get(k, 0.0) - child.base.get(k, 0.0) for k in cpu) >= self.parent_while(child, cpu)
        return "worker" if own >= WORKER_MIN_PAGES or worked else "snapshot child"

    def lifetimes(self) -> list[tuple[int, str, float, float | None]]:
        return [(p.pid, p.comm, p.start_s or 0.0, p.end_s) for p in self.processes.values() if p.role == "child"]

    def phase(self, t0: float, t1: float) -> str:
        lives = self.lifetimes()
        if any(start < t1 and (end is None or end > t0) for _, _, start, end in lives):
            return "during_snapshot"
        return "after_snapshot" if any(end is not None and end <= t0 for *_, end in lives) else "before_snapshot"

    def root_alive(self) -> bool:
        return self.processes[self.root].alive

    def root_gone(self) -> bool:
        """The root exited (or is a zombie), even if no notification came."""
        stat = proc.read_stat(self.root)
        return stat is None or stat["state"] in "ZX"

    # -- the end

    def counted(self) -> dict[str, str]:
        """Each counter: its source, or why it is not counted."""
        return {key: self.uncounted(key) or COUNTERS.get(key, "pagemap") for key in [*COUNTERS, "shared_pages"]}

    def result(self) -> dict:
        """Everything the watch saw: per process, per phase, the events."""
        self.check_delayacct()
        self.settle()
        totals = {}
        for process in self.processes.values():
            unaccounted = sum(r.get("unaccounted_minflt", 0.0) for r in self.rows if r.get("pid") == process.pid)
            totals[process.pid] = {
                "comm": process.comm,
                "role": process.role,
                "child_role": self.child_role(process) if process.role == "child" else "",
                "ppid": process.ppid,
                "start_s": process.start_s,
                "end_s": process.end_s,
                "exit_code": process.exit_code,
                **{
                    key: (process.total[key] - process.base.get(key, 0.0))
                    if key in process.total and not self.uncounted(key)
                    else None
                    for key in COUNTERS
                    if key != "unaccounted_minflt"
                },
                "unaccounted_minflt": None if self.uncounted("unaccounted_minflt") else unaccounted,
                "not_counted": {"wpcopy_count": unaccounted_reason(process, unaccounted)} if unaccounted > 0 else {},
                "threads": {
                    tid: {
                        "comm": t.comm,
                        "delay_accounting": t.verified,
                        **{k: v - t.base.get(k, 0.0) for k, v in t.total.items()},
                    }
                    for tid, t in process.threads.items()
                },
            }
        for process in totals.values():
            if process["not_counted"]:  # taskstats' 0 for the threads it does not account is no count
                process["wpcopy_count"] = process["wpcopy_delay_s"] = None
        vmstat = proc.read_vmstat()
        return {
            "root": self.root,
            "duration_s": round(self.now(), 4),
            # The watch's own CPU time (this process, native library included).
            "watch_cpu_s": round(sum(os.times()[:2]), 3),
            "interval_rows": len(self.rows),
            "counted": self.counted(),
            "exit_notifications": self.reasons.get("exits", "taskstats exit notifications"),
            "exit_notifications_lost": int(self.listener.lost()),
            "system_wide": {k: vmstat[k] - self.vmstat0.get(k, vmstat[k]) for k in vmstat},
            "sharing_cost": self.sharing_cost,
            "memory_cost": self.memory_cost,
            "memory": self.memory,
            "processes": totals,
            "events": self.events,
            "phases": phase_totals(self.rows, self.counted()),
            "roles": self.role_totals(),
        }

    def role_totals(self) -> dict[str, dict]:
        """Per child role present: how many, their copies (and source), each
        one's private dirty pages at its peak summed, per phase the copies."""
        out: dict[str, dict] = {}
        for pid, process in self.processes.items():
            if process.role != "child":
                continue
            role = self.child_role(process)
            own, source = self.own_copies(pid)
            entry = out.setdefault(
                role,
                {"count": 0, "wpcopy_count": 0.0, "sources": set(), "private_dirty_pages": 0.0, "phases": {},
                 "forked_by_the_program": True},
            )  # fmt: skip
            entry["count"] += 1
            entry["forked_by_the_program"] &= process.ppid == self.root
            entry["wpcopy_count"] += own
            entry["sources"].add(source or "not counted")
            peak = self.processes[pid].total.get("private_dirty_pages")
            growth = math.nan if peak is None else peak - self.processes[pid].base.get("private_dirty_pages", 0.0)
            entry["private_dirty_pages"] += growth
            for row in self.rows:
                if row.get("pid") == pid:
                    entry["phases"][row["phase"]] = entry["phases"].get(row["phase"], 0.0) + row["wpcopy_count"]
        for entry in out.values():
            entry["source"] = " and ".join(sorted(entry.pop("sources")))
        return {role: out[role] for role in CHILD_ROLES if role in out}


def unaccounted_reason(process: Process, unaccounted: float) -> str:
    threads = [tid for tid, t in process.threads.items() if not t.verified]
    return (
        f"not counted: {unaccounted:,.0f} minor faults were taken by {len(threads)} of its threads that show no "
        "delay accounting (the kernel keeps it only for tasks started while kernel.task_delayacct was 1)"
    )


def phase_totals(rows: list[dict], counted: dict[str, str]) -> dict[str, dict]:
    """Per phase: the processes' counters summed (the children's copies
    also apart), the system-wide deltas, the phase's length, and why
    taskstats did not count copies ('' when it did). private_dirty_pages
    stays NaN in a phase where no snapshot child's was read."""
    why_not = counted["wpcopy_count"] if counted["wpcopy_count"].startswith("not counted") else ""
    out: dict[str, dict] = {}
    for row in rows:
        phase = out.setdefault(
            row["phase"],
            {
                "seconds": 0.0,
                "child_wpcopy_count": 0.0,
                **{k: 0.0 for k in COUNTERS},
                "private_dirty_pages": math.nan,
                **{k: 0.0 for k in proc.VMSTAT_KEYS},
                "why_not": why_not,
            },
        )
        if row["scope"] == "system-wide":
            phase["seconds"] += row["t_end_s"] - row["t_start_s"]
            for key in proc.VMSTAT_KEYS:
                phase[key] += row.get(key, 0.0)
            continue
        for key in COUNTERS:
            if key == "private_dirty_pages":
                if not math.isnan(row[key]):
                    phase[key] = (0.0 if math.isnan(phase[key]) else phase[key]) + row[key]
                continue
            phase[key] += row[key]  # NaN (not counted) stays NaN
        if row["role"] == "child":
            phase["child_wpcopy_count"] += row["wpcopy_count"]
    return {phase: out[phase] for phase in PHASES if phase in out}
