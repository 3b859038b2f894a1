"""Records: the envelope every run's record starts and ends with, and records
on disk (one JSON file per run, written so no reader sees half of one).

A bench run (measure/bench/runner.py), a VM run (measure/vm.py) and a
watch point (measure/watch/point.py) each build their record in the same
envelope: it opens with its ids, when it started, the point's settings and
the build (opened), holds the environment it ran in, and closes with its
status and the reason (ok, skipped, failed; skipped_here reads the
environment for a run this machine skipped).
"""

from __future__ import annotations

import datetime
import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from cowsnap.measure import environment

if TYPE_CHECKING:
    from cowsnap.measure.native import Build

# Free space a run wants where its record goes before it measures: a record
# with its sharing samples is tens of KiB; the rest is room for the tables.
MIN_FREE_MIB = 64


# A record's status: measured, not run here (the reason says why), or broken.
OK = "ok"
SKIPPED = "skipped"
FAILED = "failed"


def now() -> str:
    """When a run started, as its record's started_at says it (UTC, ISO 8601)."""
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="microseconds")


def opened(settings: dict, build: Build, ids: dict | None = None) -> dict:
    """A record's opening keys, in their order: its ids, started_at (now),
    the point's settings and the build."""
    return {**(ids or {}), "started_at": now(), **settings, **build.describe()}


def outcome(status: str, reason: str = "") -> dict:
    """A record's closing keys: its status and the reason ('' when it ran)."""
    return {"status": status, "reason": reason}


def ok() -> dict:
    return outcome(OK)


def skipped(reason: str) -> dict:
    return outcome(SKIPPED, reason)


def failed(reason: str) -> dict:
    return outcome(FAILED, reason)


def skipped_here(record: dict, reason: str) -> dict:
    """The record of a run this machine skipped: the environment as read now
    (under whatever knobs are set), status skipped with the reason."""
    return {**record, **environment.capture(environment.REPO), **skipped(reason)}


class DiskFullError(OSError):
    """Too little free space to write a record; the message says where."""


def free_mib(folder: Path) -> int:
    """Free space for an ordinary file in folder (or its nearest existing parent)."""
    folder = Path(folder).absolute()
    while not folder.exists():
        folder = folder.parent
    stat = os.statvfs(folder)
    return stat.f_bavail * stat.f_frsize // (1024 * 1024)


def space_reason(folder: Path, needed_mib: int = MIN_FREE_MIB) -> str:
    """Why a record cannot be written in folder ('' when it can)."""
    free = free_mib(folder)
    if free < needed_mib:
        return f"{free} MiB free in {folder}, a run needs {needed_mib} MiB there for its record"
    return ""


def check_space(folder: Path, needed_mib: int = MIN_FREE_MIB) -> None:
    """DiskFullError before anything is measured when the record could not be written."""
    reason = space_reason(folder, needed_mib)
    if reason:
        raise DiskFullError(reason)


def write(path: Path, record: dict) -> None:
    """Write atomically: a temporary file in the same folder, then rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as file:
            json.dump(record, file, indent=1, sort_keys=False)
            file.write("\n")
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read(path: Path) -> dict:
    return json.loads(Path(path).read_text())
