"""What the watch reads of other processes in /proc, and nothing else:
each reader returns None (or NaN) once the process is gone."""

from __future__ import annotations

import contextlib
import math
import os
import pwd
from pathlib import Path

PAGE_BYTES = os.sysconf("SC_PAGESIZE")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# The system-wide /proc/vmstat counters the watch reads.
VMSTAT_KEYS = ("pgreuse", "thp_split_pmd", "thp_fault_alloc", "pgfault")


class WatchError(RuntimeError):
    """The watch cannot start; the message says what is wrong (exit code 2)."""


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
    for tid in threads_of(pid):
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
        if key in VMSTAT_KEYS:
            values[key] = float(value)
    return values


def private_dirty_pages(pid: int) -> tuple[float, str]:
    """Pages only this process maps that it or the kernel wrote
    (Private_Dirty of /proc/PID/smaps_rollup). For a snapshot child these are
    the pages either side broke out of sharing (Redis's rdb_last_cow_size),
    plus the child's own new memory. Returns (pages, reason if not read)."""
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return math.nan, ""  # gone: nothing to say
    except OSError as error:
        return math.nan, f"cannot read /proc/{pid}/smaps_rollup: {error.strerror}"
    for line in text.splitlines():
        if line.startswith("Private_Dirty:"):
            return int(line.split()[1]) * 1024 / PAGE_BYTES, ""
    return math.nan, ""  # an exited process's rollup is empty


def anon_pages(pid: int) -> float:
    """The process's resident anonymous memory in pages (RssAnon; NaN when gone)."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024 / PAGE_BYTES
    return math.nan


def auxv(pid: int) -> bytes | None:
    """/proc/PID/auxv (None when unreadable): the kernel writes it at exec,
    so a forked child has its parent's until it execs another program (a
    child that only renames itself, as Redis's BGSAVE child does, keeps it)."""
    try:
        return Path(f"/proc/{pid}/auxv").read_bytes()
    except OSError:
        return None


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
