"""cowsnap watch: is MY program copying? The sweep's proof, for any process.

    cowsnap watch [options] -- COMMAND [ARGS...]
    cowsnap watch --pid PID [--for SECONDS] [options]

Options: --interval SECONDS (1), --sharing, --out DIR, --build-dir DIR.

Follows a process, its threads and the children it forks (found in
/proc/PID/task/*/children at each interval, and from the kernel's taskstats
exit notifications, which give the final counts of a child that lived less
than one interval). Every interval it reads, per process: exact COW copies and
the time spent in them (taskstats wpcopy_count / wpcopy_delay_total, delay
accounting), minor and major faults and user and kernel time (/proc/PID/stat),
time waiting for a CPU (taskstats cpu_delay_total), and the system-wide
/proc/vmstat deltas of pgreuse, thp_split_pmd, thp_fault_alloc and pgfault
(labelled system-wide: other programs count there too). With --sharing, the
process's private anonymous pages still shared with another process
(/proc/PID/pagemap bit 56 clear), at a cost it reports.

Nothing touches the watched program: no ptrace, no signals, no injected code.
Delay accounting (kernel.task_delayacct) is switched on for the watch when
this user may (cowsnap.measure.knobs: restored afterwards, also after Ctrl-C; after a
SIGKILL the next watch or run restores it from the journal). A count that
cannot be read is "not counted: <reason>", never 0.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import pwd
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from cowsnap.measure import knobs
from cowsnap.plan import config

# ---- thresholds of the verdict, declared once
# A phase is "copying" when its copies are at least this share of its minor
# faults and at least this many pages (a process copies a few stack and
# library pages after any fork).
COPYING_SHARE = 0.01
COPYING_MIN_PAGES = 256
# A lever is named for one side (the parent, the children) only when that
# side made at least this share of the phase's copies.
LEVER_SHARE = 0.1
# After a child exited, writes "reuse" pages when the system's pgreuse delta
# is at least this share of the watched processes' minor faults.
REUSING_SHARE = 0.5

PAGE_BYTES = os.sysconf("SC_PAGESIZE")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# Per-process counters: name -> where it comes from.
COUNTERS = {
    "copies": "taskstats wpcopy_count",
    "copy_delay_s": "taskstats wpcopy_delay_total",
    "minflt": "/proc/PID/stat",
    "majflt": "/proc/PID/stat",
    "utime_s": "/proc/PID/stat",
    "stime_s": "/proc/PID/stat",
    "cpu_delay_s": "taskstats cpu_delay_total",
}
TASKSTATS_COUNTERS = ("copies", "copy_delay_s", "cpu_delay_s")
SYSTEM_KEYS = ("pgreuse", "thp_split_pmd", "thp_fault_alloc", "pgfault")
PHASES = ("no_child", "child_alive", "after_child")
PHASE_WORDS = {
    "no_child": "before any child",
    "child_alive": "while a child lived",
    "after_child": "after the children exited",
}


class WatchError(RuntimeError):
    """The watch cannot start; the message says what is wrong (exit code 2)."""


# ---- /proc readers


def read_stat(pid: int, tid: int | None = None) -> dict | None:
    """A process's (or thread's) /proc stat fields the watch uses; None once gone."""
    path = f"/proc/{pid}/task/{tid}/stat" if tid else f"/proc/{pid}/stat"
    try:
        text = Path(path).read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    head, _, rest = text.rpartition(")")
    fields = rest.split()
    return {
        "comm": head.partition("(")[2],
        "state": fields[0],
        "ppid": int(fields[1]),
        "minflt": float(fields[7]),
        "majflt": float(fields[9]),
        "utime_s": int(fields[11]) / CLOCK_TICKS,
        "stime_s": int(fields[12]) / CLOCK_TICKS,
        "threads": int(fields[17]),
        "start_boot_s": int(fields[19]) / CLOCK_TICKS,
    }


def children_of(pid: int) -> set[int]:
    """The children of every thread of pid (/proc/PID/task/*/children)."""
    found: set[int] = set()
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for tid in tasks:
        with contextlib.suppress(OSError):
            found.update(int(c) for c in Path(f"/proc/{pid}/task/{tid}/children").read_text().split())
    return found


def threads_of(pid: int) -> list[int]:
    try:
        return sorted(int(t) for t in os.listdir(f"/proc/{pid}/task"))
    except OSError:
        return []


def read_vmstat() -> dict[str, float]:
    values = {}
    for line in Path("/proc/vmstat").read_text().splitlines():
        key, _, value = line.partition(" ")
        if key in SYSTEM_KEYS:
            values[key] = float(value)
    return values


def owner_of(pid: int) -> int:
    """The uid that owns process pid; WatchError when there is no such process."""
    try:
        return os.stat(f"/proc/{pid}").st_uid
    except FileNotFoundError:
        raise WatchError(f"no process with PID {pid}") from None


def user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def check_may_watch(pid: int, euid: int | None = None) -> None:
    """Refuses a process of another user unless the watcher is root."""
    euid = os.geteuid() if euid is None else euid
    owner = owner_of(pid)
    if euid != 0 and owner != euid:
        stat = read_stat(pid) or {"comm": "?"}
        raise WatchError(
            f"process {pid} ({stat['comm']}) belongs to user {user_name(owner)} (uid {owner}), "
            f"and this watch runs as {user_name(euid)} (uid {euid}): only root may watch another user's process"
        )


def shared_pages(pid: int) -> tuple[float, int, str]:
    """Pages of pid's private anonymous writable mappings that are present
    but not exclusively mapped (pagemap bit 56 clear): still shared with
    another process. Returns (shared pages, pages scanned, reason if not read)."""
    import numpy as np

    present, exclusive = np.uint64(1 << 63), np.uint64(1 << 56)
    shared = scanned = 0
    try:
        maps = Path(f"/proc/{pid}/maps").read_text().splitlines()
        fd = os.open(f"/proc/{pid}/pagemap", os.O_RDONLY)
    except OSError as error:
        return math.nan, 0, f"cannot read /proc/{pid}/pagemap: {error.strerror}"
    try:
        for line in maps:
            parts = line.split()
            perms = parts[1]
            anonymous = len(parts) < 6 or parts[5] in ("[heap]", "[stack]") or parts[5].startswith("[anon")
            if not (anonymous and perms[0] == "r" and perms[1] == "w" and perms[3] == "p"):
                continue
            begin, end = (int(x, 16) // PAGE_BYTES for x in parts[0].split("-"))
            for first in range(begin, end, 1 << 16):
                count = min(1 << 16, end - first)
                entries = np.frombuffer(os.pread(fd, count * 8, first * 8), dtype=np.uint64)
                shared += int(np.count_nonzero((entries & present != 0) & (entries & exclusive == 0)))
                scanned += len(entries)
    except OSError as error:
        return math.nan, scanned, f"cannot read /proc/{pid}/pagemap: {error.strerror}"
    finally:
        os.close(fd)
    return float(shared), scanned, ""


# ---- what the watch keeps


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
    thread_finals: dict = field(default_factory=dict)  # tid -> final counts of exited threads
    threads: dict = field(default_factory=dict)  # tid -> {"comm", "base", "total"}
    missing: dict = field(default_factory=dict)  # counter -> why this process's is not counted
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
    return {"copies": counts.copies, "copy_delay_s": counts.copy_delay_s, "cpu_delay_s": counts.cpu_delay_s}


def _usage_dict(counts) -> dict:
    return {"minflt": counts.minflt, "majflt": counts.majflt, "utime_s": counts.utime_s, "stime_s": counts.stime_s}


class Watch:
    """One watch: the tracked processes, their timeline and the reasons for
    what is not counted. `native` is the cowsnap C++ namespace (cppyy)."""

    def __init__(self, native, root: int, delayacct_reason: str, sharing: bool = False):
        self.native = native
        self.root = root
        self.sharing = sharing
        self.t0 = time.monotonic()
        self.boot_offset = time.clock_gettime(time.CLOCK_BOOTTIME) - self.t0
        self.processes: dict[int, Process] = {}
        self.rows: list[dict] = []
        self.events: list[dict] = []
        self.pending: list = []  # exits of tasks whose parent is not yet known
        self.reasons: dict[str, str] = {}
        self.sharing_cost = {"samples": 0, "seconds": 0.0, "pages": 0}
        self.listener = native.ExitListener()
        if self.listener.error():
            self.reasons["exits"] = f"not counted: {self.listener.error()}"
        if delayacct_reason:
            for key in TASKSTATS_COUNTERS:
                self.reasons[key] = f"not counted: {delayacct_reason}"
        self.vmstat0 = self.vmstat_last = read_vmstat()
        self.last_tick = 0.0

    def now(self) -> float:
        return time.monotonic() - self.t0

    # -- discovery and sampling

    def _add(self, pid: int, role: str, stat: dict) -> Process:
        start = stat["start_boot_s"] - self.boot_offset - self.t0
        # Started after the watch (within the clock's tick): all its counts are the watch's.
        process = Process(pid, stat["comm"], stat["ppid"], role, max(start, 0.0) if start > -0.01 else None)
        self.processes[pid] = process
        if role == "child":
            self.event("started", process, max(start, 0.0))
        return process

    def event(self, what: str, process: Process, at: float) -> None:
        self.events.append(
            {"t_s": round(at, 4), "event": what, "pid": process.pid, "comm": process.comm, "role": process.role}
        )

    def start(self) -> None:
        """First reading of a running root; WatchError when it is already gone."""
        stat = read_stat(self.root)
        if stat is None or stat["state"] in "ZX":
            raise WatchError(f"process {self.root} exited before the watch could start")
        self.processes[self.root] = Process(self.root, stat["comm"], stat["ppid"], "watched", None)
        self.sample()
        self.receive(0)
        if not self.processes[self.root].total:
            raise WatchError(f"process {self.root} exited before the watch could start")

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
            stat = read_stat(pid)
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
            if not process.total and process.start_s is None:
                self._check_accounted(process)
            process.comm = stat["comm"]
            values = {k: stat[k] for k in ("minflt", "majflt", "utime_s", "stime_s")}
            if "taskstats" not in self.reasons:
                counts = self.native.task_counts(pid, True)
                if counts.error:
                    if read_stat(pid) is not None:
                        self.reasons["taskstats"] = f"not counted: {counts.error}"
                else:
                    values.update(_counts_dict(counts))
                    if stat["threads"] > 1:
                        self._sample_threads(process)
            process.raise_to(self._drop_uncounted(values))
            if self.sharing:
                began = time.perf_counter()
                shared, scanned, reason = shared_pages(pid)
                self.sharing_cost["seconds"] += time.perf_counter() - began
                self.sharing_cost["samples"] += 1
                self.sharing_cost["pages"] += scanned
                process.shared_pages = shared
                if reason:
                    self.reasons["shared_pages"] = f"not counted: {reason}"
            queue.extend(children_of(pid) - seen)

    def _check_accounted(self, process: Process) -> None:
        """The kernel keeps delay accounting only for tasks started while
        kernel.task_delayacct was 1; a thread without it reads 0 copies."""
        if self.uncounted("copies"):
            return
        for tid in threads_of(process.pid):
            counts = self.native.task_counts(tid, False)
            if not counts.error and counts.cpu_count == 0:
                reason = (
                    f"not counted: process {process.pid} ({process.comm}) was started while "
                    "kernel.task_delayacct was 0, and the kernel keeps delay accounting only for tasks started "
                    "while it is 1 (start it under `cowsnap watch -- COMMAND`, or after "
                    "`sysctl kernel.task_delayacct=1`)"
                )
                process.missing = {key: reason for key in TASKSTATS_COUNTERS}
                return

    def _sample_threads(self, process: Process) -> None:
        for tid in threads_of(process.pid):
            counts = self.native.task_counts(tid, False)
            if counts.error:
                continue
            values = self._drop_uncounted({**_counts_dict(counts), **_usage_dict(counts)})
            thread = process.threads.setdefault(tid, {"comm": str(counts.comm), "base": None, "total": {}})
            if thread["base"] is None:
                thread_new = process.start_s is not None or counts.elapsed_s < self.now()
                thread["base"] = {k: 0.0 for k in values} if thread_new else dict(values)
            thread["total"] = values

    def _drop_uncounted(self, values: dict) -> dict:
        return {k: v for k, v in values.items() if not self.uncounted(k)}

    def uncounted(self, key: str) -> str:
        """Why a counter is not counted in this watch ('' when it is)."""
        if key in self.reasons:
            return self.reasons[key]
        if key in TASKSTATS_COUNTERS and "taskstats" in self.reasons:
            return self.reasons["taskstats"]
        if key == "shared_pages" and not self.sharing:
            return "not counted: --sharing not asked for"
        return ""

    def why_not(self, key: str) -> str:
        """Why a counter is not counted for the watch or for some process."""
        if key == "shared_pages":
            return self.uncounted(key)
        reasons = dict.fromkeys(p.missing[key] for p in self.processes.values() if key in p.missing)
        return self.uncounted(key) or "; ".join(reasons)

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
            process.raise_to(self._drop_uncounted(_counts_dict(counts)))
            self.end(process, at)
            return True
        process.thread_finals[counts.pid] = counts
        finals = process.thread_finals.values()
        summed = {k: sum(getattr(f, k) for f in finals) for k in ("minflt", "majflt", "utime_s", "stime_s")}
        summed.update({k: sum(_counts_dict(f)[k] for f in finals) for k in TASKSTATS_COUNTERS})
        process.raise_to(self._drop_uncounted(summed))
        if counts.pid in process.threads:
            process.threads[counts.pid]["total"] = self._drop_uncounted({**_counts_dict(counts), **_usage_dict(counts)})
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
        if self.uncounted("copies") or knobs.current(knobs.TASK_DELAYACCT) == "1":
            return
        for key in TASKSTATS_COUNTERS:
            self.reasons[key] = (
                "not counted: kernel.task_delayacct was switched off during the watch by another program, "
                "so copies after that moment are missing"
            )

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
                if self.uncounted(key) or key in process.missing or key not in process.total:
                    row[key] = math.nan
                    continue
                row[key] = process.total[key] - process.reported.get(key, process.base.get(key, 0.0))
                process.reported[key] = process.total[key]
            row["shared_pages"] = process.shared_pages if process.alive else math.nan
            new.append(row)
        vmstat = read_vmstat()
        system = {"t_start_s": round(t0, 4), "t_end_s": round(t1, 4), "phase": phase, "scope": "system-wide"}
        system.update({f"system_{k}": vmstat[k] - self.vmstat_last.get(k, vmstat[k]) for k in vmstat})
        self.vmstat_last = vmstat
        new.append(system)
        self.rows.extend(new)
        return new

    def lifetimes(self) -> list[tuple[int, str, float, float | None]]:
        return [(p.pid, p.comm, p.start_s or 0.0, p.end_s) for p in self.processes.values() if p.role == "child"]

    def phase(self, t0: float, t1: float) -> str:
        lives = self.lifetimes()
        if any(start < t1 and (end is None or end > t0) for _, _, start, end in lives):
            return "child_alive"
        return "after_child" if any(end is not None and end <= t0 for *_, end in lives) else "no_child"

    def root_alive(self) -> bool:
        return self.processes[self.root].alive

    def root_gone(self) -> bool:
        """The root exited (or is a zombie), even if no notification came."""
        stat = read_stat(self.root)
        return stat is None or stat["state"] in "ZX"

    # -- the end

    def result(self) -> dict:
        self.check_delayacct()
        totals = {}
        for process in self.processes.values():
            totals[process.pid] = {
                "comm": process.comm,
                "role": process.role,
                "ppid": process.ppid,
                "start_s": process.start_s,
                "end_s": process.end_s,
                "exit_code": process.exit_code,
                **{
                    key: (process.total[key] - process.base.get(key, 0.0))
                    if key in process.total and not self.uncounted(key) and key not in process.missing
                    else None
                    for key in COUNTERS
                },
                "not_counted": process.missing,
                "threads": {
                    tid: {
                        "comm": t["comm"],
                        **{k: v - (t["base"] or {}).get(k, 0.0) for k, v in t["total"].items()},
                    }
                    for tid, t in process.threads.items()
                },
            }
        vmstat = read_vmstat()
        phases = phase_totals(self.rows)
        return {
            "root": self.root,
            "duration_s": round(self.now(), 4),
            # The watch's own CPU time (this process, native library included).
            "watch_cpu_s": round(sum(os.times()[:2]), 3),
            "interval_rows": len(self.rows),
            "counted": {key: self.why_not(key) or COUNTERS.get(key, "pagemap") for key in [*COUNTERS, "shared_pages"]},
            "exit_notifications": self.reasons.get("exits", "taskstats exit notifications"),
            "exit_notifications_lost": int(self.listener.lost()),
            "system_wide": {k: vmstat[k] - self.vmstat0.get(k, vmstat[k]) for k in vmstat},
            "sharing_cost": self.sharing_cost,
            "processes": totals,
            "events": self.events,
            "phases": phases,
            "verdict": verdict(phases, {k: self.why_not(k) for k in COUNTERS}),
            "thresholds": {
                "copying_share": COPYING_SHARE,
                "copying_min_pages": COPYING_MIN_PAGES,
                "lever_share": LEVER_SHARE,
                "reusing_share": REUSING_SHARE,
            },
        }


# ---- verdict


def phase_totals(rows: list[dict]) -> dict[str, dict]:
    """Per phase: the processes' counters summed (children's copies also
    apart), the system-wide deltas and the phase's length."""
    out: dict[str, dict] = {}
    for row in rows:
        phase = out.setdefault(
            row["phase"],
            {
                "seconds": 0.0,
                "child_copies": 0.0,
                **{k: 0.0 for k in COUNTERS},
                **{f"system_{k}": 0.0 for k in SYSTEM_KEYS},
            },
        )
        if row["scope"] == "system-wide":
            phase["seconds"] += row["t_end_s"] - row["t_start_s"]
            for key in SYSTEM_KEYS:
                phase[f"system_{key}"] += row.get(f"system_{key}", 0.0)
            continue
        for key in COUNTERS:
            phase[key] += row[key]  # NaN (not counted) stays NaN
        if row["role"] == "child":
            phase["child_copies"] += row["copies"]
    return {phase: out[phase] for phase in PHASES if phase in out}


def _mib(pages: float) -> str:
    return f"{pages * PAGE_BYTES / 2**20:,.1f} MiB"


def verdict(phases: dict[str, dict], uncounted: dict[str, str]) -> list[str]:
    """The watch's answer in sentences, each number computed from the phases."""
    lines = []
    for name, phase in phases.items():
        words = PHASE_WORDS[name]
        faults, copies = phase["minflt"], phase["copies"]
        reuses = phase["system_pgreuse"]
        if math.isnan(copies) or uncounted["copies"]:
            lines.append(
                f"{words} ({phase['seconds']:.1f} s): copies {uncounted['copies']}; "
                f"{faults:,.0f} minor faults, system-wide pgreuse +{reuses:,.0f} (other programs count there too)."
            )
            continue
        cpu = phase["utime_s"] + phase["stime_s"]
        share = copy_share(copies, faults)
        copying = is_copying(copies, faults)
        cost = f"{phase['copy_delay_s']:.3g} s in the copy fault path"
        if cpu > 0:
            cost += f" ({100 * phase['copy_delay_s'] / cpu:.2g}% of their {cpu:.3g} s of CPU time)"
        if copying:
            line = (
                f"{words} ({phase['seconds']:.1f} s): copying: {copies:,.0f} pages copied ({_mib(copies)}, "
                f"{share:.0%} of {faults:,.0f} minor faults), {cost}"
            )
            if phase["child_copies"] > 0:
                line += f"; {phase['child_copies']:,.0f} of them by the children"
        else:
            line = (
                f"{words} ({phase['seconds']:.1f} s): not copying: {copies:,.0f} copies for {faults:,.0f} "
                f"minor faults; system-wide pgreuse +{reuses:,.0f}"
            )
        lines.append(line + ".")
        lever = lever_for(name, phase, copying, reuses, faults)
        if lever:
            lines.append("  lever: " + lever)
    return lines


def is_copying(copies: float, faults: float) -> bool:
    """The verdict's rule for one phase: at least COPYING_MIN_PAGES copies,
    and at least COPYING_SHARE of the minor faults."""
    return copies >= COPYING_MIN_PAGES and copy_share(copies, faults) >= COPYING_SHARE


def copy_share(copies: float, faults: float) -> float:
    """Copies as a share of the minor faults (all of them when there are copies but no faults)."""
    return copies / faults if faults else (1.0 if copies else 0.0)


def lever_for(name: str, phase: dict, copying: bool, reuses: float, faults: float) -> str:
    """The lever from the sweep's findings for one phase ('' when none fits):
    phase holds the phase's copies (children's included) and child_copies."""
    if name == "child_alive" and copying:
        own = phase["copies"] - phase["child_copies"]
        levers = []
        if own >= LEVER_SHARE * phase["copies"]:
            levers.append(
                "the parent copies pages the child still shares: have the child release each part as soon as "
                "it has saved it (munmap or MADV_DONTNEED per batch) and exit right after (_exit), so those "
                "writes reuse the page instead"
            )
        if phase["child_copies"] >= LEVER_SHARE * phase["copies"]:
            levers.append(
                "the child writes memory it shares with the parent: allocate its buffers in the child, or mark "
                "a buffer allocated before fork MADV_DONTFORK"
            )
        return "; ".join(levers) + "." if levers else ""
    # A few faults (a fork's own stack pages) have nothing to gain from populating.
    if name == "after_child" and not copying and faults >= COPYING_MIN_PAGES and reuses >= REUSING_SHARE * faults:
        return (
            "writes after the child exited still fault once per page and reuse it (kernel time in fault "
            "handling, not copying): MADV_POPULATE_WRITE over the written memory right after the child "
            "exits takes those faults in one call."
        )
    if name == "after_child" and copying:
        return (
            "copies after the children exited: something else still shares or pins the pages (another "
            "process, KSM, a GUP pin such as O_DIRECT, or split huge pages on kernels before 6.15)."
        )
    return ""


# ---- display


def _fmt(value, unit: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:,.3f}{unit}" if unit else f"{value:,.0f}"


HEADER = ("pid", "comm", "role", "state", "copies", "copy_s", "minflt", "majflt", "user_s", "sys_s", "runq_s", "shared")


def table_lines(watch: Watch, rows: list[dict]) -> list[str]:
    """The live table: one line per process this interval, then the system."""
    system = next(r for r in rows if r["scope"] == "system-wide")
    lines = [
        f"cowsnap watch: pid {watch.root}, {system['t_end_s']:.1f} s, {PHASE_WORDS[system['phase']]}; "
        f"this interval (+) / since the start",
        "".join(f"{h:>12}" for h in HEADER),
    ]
    for row in rows:
        if row["scope"] != "process":
            continue
        process = watch.processes[row["pid"]]
        total = {k: process.total.get(k, math.nan) - process.base.get(k, 0.0) for k in COUNTERS}
        cells = [
            str(row["pid"]),
            row["comm"][:11],
            row["role"],
            "alive" if row["alive"] else "exited",
            f"+{_fmt(row['copies'])}/{_fmt(total['copies'])}" if not math.isnan(row["copies"]) else "not counted",
            _fmt(row["copy_delay_s"], "s"),
            f"+{_fmt(row['minflt'])}",
            f"+{_fmt(row['majflt'])}",
            _fmt(row["utime_s"], "s"),
            _fmt(row["stime_s"], "s"),
            _fmt(row["cpu_delay_s"], "s"),
            _fmt(row["shared_pages"]),
        ]
        lines.append("".join(f"{c:>12}" for c in cells))
    lines.append(
        "system-wide: "
        + ", ".join(f"{k} +{_fmt(system.get(f'system_{k}', math.nan))}" for k in SYSTEM_KEYS)
        + " (all programs)"
    )
    return lines


def plain_lines(watch: Watch, rows: list[dict]) -> list[str]:
    """One line per process per interval, then one system-wide line."""
    out = []
    for row in rows:
        head = f"{row['t_end_s']:8.2f}s"
        if row["scope"] == "system-wide":
            out.append(
                f"{head} system-wide " + " ".join(f"{k} +{_fmt(row.get(f'system_{k}', math.nan))}" for k in SYSTEM_KEYS)
            )
            continue
        copies = "not-counted" if math.isnan(row["copies"]) else f"+{_fmt(row['copies'])}"
        out.append(
            f"{head} pid {row['pid']} ({row['comm']}) {row['role']} {'alive' if row['alive'] else 'exited'} "
            f"phase {row['phase']} copies {copies} copy_s {_fmt(row['copy_delay_s'], '')} "
            f"minflt +{_fmt(row['minflt'])} majflt +{_fmt(row['majflt'])} user_s {_fmt(row['utime_s'], '')} "
            f"sys_s {_fmt(row['stime_s'], '')} runq_s {_fmt(row['cpu_delay_s'], '')} "
            f"shared {_fmt(row['shared_pages'])}"
        )
    return out


def thread_lines(result: dict, top: int = 5) -> list[str]:
    """For a process with several threads: the threads that copied most."""
    lines = []
    for pid, process in result["processes"].items():
        copying = [(tid, t) for tid, t in process["threads"].items() if t.get("copies", 0) > 0]
        if len(process["threads"]) < 2 or not copying:
            continue
        copying.sort(key=lambda item: -item[1]["copies"])
        shown = ", ".join(
            f"{tid} ({t['comm']}) {t['copies']:,.0f} copies in {t.get('copy_delay_s', 0):.3g} s"
            for tid, t in copying[:top]
        )
        lines.append(f"threads of {pid} ({process['comm']}) that copied most: {shown}")
    return lines


class Display:
    def __init__(self, watch: Watch, stream=None):
        self.watch = watch
        self.stream = stream or sys.stdout
        self.tty = self.stream.isatty()
        self.drawn = 0
        self.events_shown = 0

    def begin(self) -> None:
        """Says what is watched and what cannot be counted, before the first interval."""
        root = self.watch.processes[self.watch.root]
        self.stream.write(f"cowsnap watch: watching pid {root.pid} ({root.comm}) and its children\n")
        for key in COUNTERS:
            if self.watch.why_not(key):
                self.stream.write(f"cowsnap watch: {key}: {self.watch.why_not(key)}\n")
        if "exits" in self.watch.reasons:
            self.stream.write(f"cowsnap watch: children's exits: {self.watch.reasons['exits']}\n")
        self.stream.flush()

    def show(self, rows: list[dict]) -> None:
        if self.tty:
            lines = table_lines(self.watch, rows)
            if self.drawn:
                self.stream.write(f"\x1b[{self.drawn}A\x1b[J")
            self.stream.write("\n".join(lines) + "\n")
            self.drawn = len(lines)
        else:
            self.show_events()
            self.stream.write("\n".join(plain_lines(self.watch, rows)) + "\n")
        self.stream.flush()

    def show_events(self) -> None:
        for event in self.watch.events[self.events_shown :]:
            self.stream.write(
                f"{event['t_s']:8.2f}s {event['role']} {event['pid']} ({event['comm']}) {event['event']}\n"
            )
        self.events_shown = len(self.watch.events)
        self.stream.flush()

    def end(self, result: dict) -> None:
        self.drawn = 0
        out = [
            "",
            f"cowsnap watch: verdict for pid {result['root']} over {result['duration_s']:.1f} s "
            f"(the watch itself used {result['watch_cpu_s']:.2f} s of CPU, its start included)",
        ]
        out += result["verdict"]
        out += thread_lines(result)
        for key, how in result["counted"].items():
            if how.startswith("not counted") and (key != "shared_pages" or self.watch.sharing):
                out.append(f"{key}: {how}")
        if result["sharing_cost"]["samples"]:
            cost = result["sharing_cost"]
            out.append(
                f"sharing: {cost['samples']} pagemap samples of {cost['pages']:,} pages took "
                f"{cost['seconds'] * 1e3:.1f} ms of the watch's time ({cost['seconds'] / cost['samples'] * 1e3:.2f} ms "
                "each, under the watched process's mmap read lock)"
            )
        self.stream.write("\n".join(out) + "\n")
        self.stream.flush()


# ---- outputs


def write_outputs(out_dir: Path, watch: Watch, result: dict) -> list[Path]:
    """timeline.csv (one row per interval and process, plus a system-wide
    row per interval), watch.json (totals, events, verdict) and
    timeline.png/.pdf."""
    import pandas as pd

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    table = pd.DataFrame(watch.rows).astype({"pid": "Int64"})
    table.to_csv(out_dir / "timeline.csv", index=False)
    (out_dir / "watch.json").write_text(json.dumps(result, indent=1, default=str) + "\n")
    return [out_dir / "timeline.csv", out_dir / "watch.json", *draw_timeline(table, watch, out_dir / "timeline")]


def draw_timeline(table, watch: Watch, stem: Path) -> list[Path]:
    """Copies (per process) and the system's reuses per interval, children's
    lifetimes as shaded spans."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd
    import seaborn as sns

    processes = table[table["scope"] == "process"].assign(
        what=lambda t: "copies, pid " + t["pid"].astype(int).astype(str) + " (" + t["comm"] + ")",
        count=lambda t: t["copies"],
    )
    system = table[table["scope"] == "system-wide"].assign(
        what="reuses (system-wide pgreuse)", count=lambda t: t["system_pgreuse"]
    )
    data = pd.concat([processes, system])[["t_end_s", "what", "count"]].dropna()
    figure, ax = plt.subplots(figsize=(8, 4.2))
    if not data.empty:
        sns.lineplot(data=data, x="t_end_s", y="count", hue="what", marker="o", ax=ax)
    for i, (pid, comm, start, end) in enumerate(watch.lifetimes()):
        ax.axvspan(
            start,
            end if end is not None else table["t_end_s"].max(),
            alpha=0.15,
            color="C3",
            label="a child lived" if i == 0 else None,
        )
        ax.annotate(
            f"{pid} ({comm})", (start, 1.0), xycoords=("data", "axes fraction"), fontsize=7, va="top", rotation=90
        )
    ax.set_xlabel("seconds since the watch started (end of each interval)")
    ax.set_ylabel("pages per interval")
    ax.set_title(f"cowsnap watch, pid {watch.root}: copies and reuses per interval")
    ax.legend(fontsize=7)
    figure.tight_layout()
    paths = [stem.with_suffix(".png"), stem.with_suffix(".pdf")]
    for path in paths:
        figure.savefig(path)
    plt.close(figure)
    return paths


# ---- running a watch


def delay_accounting() -> tuple[dict, str]:
    """The knob change the watch asks for, and why copies cannot be counted ('' if they can)."""
    if os.geteuid() == 0:
        knobs.restore_journal()  # a watch or run killed with SIGKILL left it changed
    if knobs.current(knobs.TASK_DELAYACCT) == "1":
        return {}, ""
    if not knobs.TASK_DELAYACCT.exists():
        return {}, "this kernel has no delay accounting (/proc/sys/kernel/task_delayacct missing)"
    if os.geteuid() != 0:
        return {}, "kernel.task_delayacct is 0 and only root may switch it on"
    return {knobs.TASK_DELAYACCT: "1"}, ""


def parse_args(argv: list[str]) -> argparse.Namespace:
    command: list[str] = []
    if "--" in argv:
        at = argv.index("--")
        argv, command = argv[:at], argv[at + 1 :]
    parser = argparse.ArgumentParser(prog="cowsnap watch", description=__doc__.split("\n\n")[0])
    parser.add_argument("--pid", type=int, help="watch this running process")
    parser.add_argument(
        "--for", dest="duration", type=float, metavar="SECONDS", help="seconds to watch (default: until it exits)"
    )
    parser.add_argument(
        "--interval", type=float, default=1.0, metavar="SECONDS", help="seconds between readings (default 1)"
    )
    parser.add_argument("--sharing", action="store_true", help="count anonymous pages still shared (pagemap)")
    parser.add_argument("--out", type=Path, help="write timeline.csv, watch.json and timeline.png/.pdf here")
    parser.add_argument("--build-dir", type=Path, default=Path("results/build"), help="native build cache")
    parser.add_argument("--cxxflags", default=config.schema()["properties"]["cxxflags"]["default"])
    args = parser.parse_args(argv)
    args.command = command
    if bool(args.pid) == bool(command):
        parser.error("give either --pid PID or -- COMMAND [ARGS...]")
    if args.interval <= 0:
        parser.error(f"--interval must be above 0 seconds, not {args.interval}")
    return args


def load_native(build_dir: Path, cxxflags: str):
    from cowsnap.measure import native

    return native.load(native.ensure_built(build_dir, cxxflags).library)


def run(args: argparse.Namespace, stream=None) -> int:
    stream = stream or sys.stdout
    if args.pid is not None:
        check_may_watch(args.pid)
    native_ns = load_native(args.build_dir, args.cxxflags)
    wanted, reason = delay_accounting()
    stop = {"signal": None}

    def on_signal(signum, _frame):
        stop["signal"] = signum

    with contextlib.ExitStack() as stack:
        if wanted:
            try:
                stack.enter_context(knobs.applied(wanted))
            except knobs.KnobError as error:
                reason = str(error)
        previous = signal.signal(signal.SIGINT, on_signal)
        stack.callback(signal.signal, signal.SIGINT, previous)
        # The exit listener exists before the command starts: its first exits count.
        watch = Watch(native_ns, args.pid or 0, reason, args.sharing)
        child = None
        if args.command:
            try:
                child = subprocess.Popen(args.command)
            except OSError as error:
                raise WatchError(f"cannot run {args.command[0]!r}: {error.strerror}") from None
            watch.adopt(child.pid, Path(args.command[0]).name[:15])
        else:
            watch.start()
        display = Display(watch, stream)
        display.begin()
        deadline = args.duration if args.duration is not None else math.inf
        next_tick = args.interval
        while stop["signal"] is None:
            now = watch.now()
            if now >= next_tick or now >= deadline:
                display.show(watch.tick())
                while next_tick <= watch.now():
                    next_tick += args.interval
                if now >= deadline or not watch.root_alive():
                    break
                continue
            if watch.root_alive() and (child.poll() is not None if child else watch.root_gone()):
                watch.receive(0.2)  # its exit notification is on the way
                if watch.root_alive():
                    watch.end(watch.processes[watch.root], watch.now())
            watch.receive(max(0.0, min(0.05, next_tick - now, deadline - now)))
            if not display.tty:
                display.show_events()
            if not watch.root_alive():
                break
        if not watch.rows or watch.last_tick < watch.now() - 1e-3:
            display.show(watch.tick())
        result = watch.result()
        result["command"] = args.command
        if child is not None:
            result["command_exit_code"] = child.poll()
        if stop["signal"] is not None:
            result["ended_by"] = "SIGINT"
        display.end(result)
        if args.out:
            try:
                paths = write_outputs(args.out, watch, result)
            except OSError as error:
                raise WatchError(f"cannot write the watch's outputs to {args.out}: {error}") from None
            for path in paths:
                print(path, file=stream)
    # A command's exit status passes through (128 + N for a signal N).
    status = child.poll() if child is not None else None
    return 0 if not status else (status if status > 0 else 128 - status)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    try:
        return run(args)
    except WatchError as error:
        print(f"cowsnap watch: {error}", file=sys.stderr)
        return 2
