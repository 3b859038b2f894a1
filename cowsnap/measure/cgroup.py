"""A memory cgroup of one run's own, where the benchmark counts the memory
its snapshot costs (native/bench/counters.cpp joins it and reads its peak).

cgroup v1: a child of this process's memory cgroup. cgroup v2: a child of
the hierarchy's root, or of this process's cgroup, wherever memory is in
cgroup.subtree_control. Made for one run (the runner names it to the
benchmark in COWSNAP_MEMORY_CGROUP) and removed after it, also when the
run fails.
Where none can be made (not root, no memory controller, a read-only
hierarchy), the path is '' and the reason says why.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

VARIABLE = "COWSNAP_MEMORY_CGROUP"  # native MEMORY_CGROUP_VARIABLE
PROC_CGROUP = Path("/proc/self/cgroup")
MOUNTINFO = Path("/proc/self/mountinfo")
REMOVE_S = 2.0  # how long rmdir is retried while the exited benchmark leaves the cgroup


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _mounts() -> list[tuple[str, Path, str, set[str]]]:
    """(fstype, mount point, root within the hierarchy, super options) of each cgroup mount."""
    mounts = []
    for line in _read(MOUNTINFO).splitlines():
        fields, _, tail = line.partition(" - ")
        fields, tail = fields.split(), tail.split()
        if len(fields) >= 5 and len(tail) >= 3 and tail[0] in ("cgroup", "cgroup2"):
            mounts.append((tail[0], Path(fields[4]), fields[3], set(tail[2].split(","))))
    return mounts


def _own(controller: str) -> str | None:
    """This process's cgroup path in the hierarchy of a v1 controller ('' for v2)."""
    for line in _read(PROC_CGROUP).splitlines():
        _, controllers, path = line.split(":", 2)
        if controller in controllers.split(",") or (not controller and not controllers):
            return path
    return None


def _inside(mount: Path, root: str, path: str) -> Path:
    relative = os.path.relpath(path, root)
    return mount if relative == "." else mount / relative


def parent() -> tuple[Path | None, str]:
    """Where a run's memory cgroup goes, or None and why there is none."""
    mounts, own_v1 = _mounts(), _own("memory")
    for fstype, mount, root, options in mounts:
        if fstype == "cgroup" and "memory" in options and own_v1 is not None:
            return _inside(mount, root, own_v1), ""
    for fstype, mount, root, _ in mounts:
        if fstype != "cgroup2" or "memory" not in _read(mount / "cgroup.controllers").split():
            continue
        own = _own("")
        candidates = [mount] + ([_inside(mount, root, own)] if own else [])
        for candidate in candidates:
            if "memory" in _read(candidate / "cgroup.subtree_control").split():
                return candidate, ""
        return None, f"cgroup v2: memory is not in cgroup.subtree_control of {' or '.join(map(str, candidates))}"
    return None, "no memory controller: no cgroup hierarchy in /proc/self/mountinfo has it"


def _rmdir(path: Path) -> bool:
    """rmdir, retried while the benchmark that just exited leaves the cgroup;
    False if it is still busy after REMOVE_S."""
    deadline = time.monotonic() + REMOVE_S
    while True:
        try:
            path.rmdir()
            return True
        except FileNotFoundError:
            return True
        except OSError as error:
            if error.errno != errno.EBUSY:
                raise
            if time.monotonic() > deadline:
                return False
        time.sleep(0.01)


def _remove(path: Path) -> None:
    """Removes a run's cgroup; a process still in it (one that outlived the
    run) is moved to the parent first. OSError when it cannot."""
    if _rmdir(path):
        return
    for pid in _read(path / "cgroup.procs").split():
        with contextlib.suppress(OSError):
            (path.parent / "cgroup.procs").write_text(pid)
    if not _rmdir(path):
        raise OSError(errno.EBUSY, f"cannot remove the run's memory cgroup {path}", str(path))


@contextlib.contextmanager
def memory_cgroup() -> Iterator[tuple[str, str]]:
    """(path, '') of a new memory cgroup for one run, removed on exit; ('',
    reason) when none can be made."""
    where, reason = parent()
    if where is None:
        yield "", reason
        return
    path = where / f"cowsnap-{os.getpid()}-{secrets.token_hex(4)}"
    try:
        path.mkdir()
    except OSError as error:
        user = "" if os.geteuid() == 0 else f" (not root: uid {os.geteuid()})"
        yield "", f"cannot create a memory cgroup in {where}: {error.strerror}{user}"
        return
    try:
        yield str(path), ""
    finally:
        _remove(path)
