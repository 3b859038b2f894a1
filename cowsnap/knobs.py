"""System settings a run changes (THP mode, mTHP sizes, huge page pools,
delay accounting), each put back to its exact previous value.

Before a value is written, the previous one is saved in a journal file; the
context manager restores it when the run ends, however it ends in Python
(exception, SIGINT, SIGTERM). A run killed outright (SIGKILL) leaves the
journal behind: the next run's start and the workflow's end hook restore
from it (restore_journal).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
from pathlib import Path

from cowsnap import environment

JOURNAL = Path(os.environ.get("COWSNAP_KNOB_JOURNAL", "/run/cowsnap-knobs.json"))
THP_ENABLED = environment.THP_DIR / "enabled"
TASK_DELAYACCT = Path("/proc/sys/kernel/task_delayacct")


class KnobError(RuntimeError):
    """A knob could not be set; the message says which and why."""


def current(path: Path) -> str:
    """The value as it would be written back ('always [madvise] never' -> 'madvise')."""
    return environment.selected(environment.read_text(path))


def _write(path: Path, value: str) -> None:
    try:
        Path(path).write_text(f"{value}\n")
    except OSError as error:
        raise KnobError(f"cannot set {path} to {value!r}: {error.strerror}") from None


def _load_journal() -> dict[str, str]:
    try:
        return json.loads(JOURNAL.read_text())
    except (OSError, ValueError):
        return {}


def _save_journal(saved: dict[str, str]) -> None:
    try:
        JOURNAL.parent.mkdir(parents=True, exist_ok=True)
        tmp = JOURNAL.with_suffix(".tmp")
        tmp.write_text(json.dumps(saved))
        os.replace(tmp, JOURNAL)
    except OSError as error:
        raise KnobError(f"cannot save the knob journal {JOURNAL}: {error.strerror}") from None


def _restore(saved: dict[str, str]) -> None:
    """Writes back every saved value (each one tried) and drops the journal."""
    for path, value in saved.items():
        with contextlib.suppress(KnobError):
            _write(Path(path), value)
    JOURNAL.unlink(missing_ok=True)


def restore_journal() -> dict[str, str]:
    """Puts back what an interrupted run left changed; returns what it restored."""
    saved = _load_journal()
    _restore(saved)
    return saved


def _raise_system_exit(signum, _frame):
    raise SystemExit(128 + signum)


@contextlib.contextmanager
def applied(wanted: dict[Path, str]):
    """Sets each knob for the duration of the block, then restores it.

    Values already in place are not touched (and need no privilege).
    """
    restore_journal()
    changes = {Path(p): v for p, v in wanted.items() if current(Path(p)) != v}
    saved = {str(p): current(p) for p in changes}
    previous_handlers = {s: signal.signal(s, _raise_system_exit) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        if changes:
            _save_journal(saved)
        for path, value in changes.items():
            _write(path, value)
            if current(path) != value:
                raise KnobError(f"{path} reads {current(path)!r} after writing {value!r}")
        yield
    finally:
        _restore(saved)
        for signum, handler in previous_handlers.items():
            signal.signal(signum, handler)
