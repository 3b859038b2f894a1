"""Records on disk: one JSON file per run, written so no reader sees half of one."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

# Free space a run wants where its record goes before it measures: a record
# with its sharing samples is tens of KiB; the rest is room for the tables.
MIN_FREE_MIB = 64


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
