"""System settings a run changes (THP mode, mTHP sizes, huge page pools,
delay accounting), each put back to its exact previous value.

A run holds the machine's lock (a POSIX lock, fcntl.lockf, on LOCK; unlike
flock it is not inherited by the snapshot child, so a run killed outright
frees it at once) from before it sets anything until everything is back, so
runs on one machine serialize: none sets a knob under another, and a record
never claims a mode it did not run under. Before a value is written, the previous one is saved in the
journal (root-owned, mode 0600); the context manager restores it when the run
ends, however it ends in Python (exception, SIGINT, SIGTERM). A run killed
outright (SIGKILL) leaves the journal behind and its lock free: the next
run's start, and the workflow's start and end hooks, restore from it
(restore_journal).

Only knobs on the allow-list (KNOBS) are ever written, with values of their
form. A journal that is not root's with mode 0600, or not of the expected
shape, is reported and moved aside (to <journal>.bad-<time>), never used.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import signal
import stat
import sys
import threading
import time
from pathlib import Path

from cowsnap.measure import environment

JOURNAL = Path(os.environ.get("COWSNAP_KNOB_JOURNAL", "/run/cowsnap-knobs.json"))
# One lock for the machine, whichever journal a run names.
LOCK = Path(os.environ.get("COWSNAP_KNOB_LOCK", "/run/cowsnap-knobs.lock"))
THP_ENABLED = environment.THP_DIR / "enabled"
TASK_DELAYACCT = Path("/proc/sys/kernel/task_delayacct")
LOCK_WAIT_S = 3600  # longer than any run; a run still waiting after this gives up
# A POSIX lock belongs to the process, and closing any of its descriptors of
# the file drops it: threads of one process (runs inside Snakemake's)
# serialize on this first.
_THREADS = threading.Lock()

# The knobs cowsnap may change: path pattern -> pattern of the values it may write.
KNOBS = {
    r"/sys/kernel/mm/transparent_hugepage/enabled": r"always|madvise|never",
    r"/sys/kernel/mm/transparent_hugepage/hugepages-[0-9]+kB/enabled": r"always|inherit|madvise|never",
    r"/sys/kernel/mm/hugepages/hugepages-[0-9]+kB/nr_hugepages": r"[0-9]{1,12}",
    r"/proc/sys/kernel/task_delayacct": r"0|1",
}


class KnobError(RuntimeError):
    """A knob could not be set; the message says which and why."""


def allowed(path, value: str) -> bool:
    """Whether cowsnap may write value to path (the allow-list, KNOBS)."""
    return any(re.fullmatch(pattern, str(path)) and re.fullmatch(form, str(value)) for pattern, form in KNOBS.items())


def current(path: Path) -> str:
    """The value as it would be written back ('always [madvise] never' -> 'madvise')."""
    return environment.selected(environment.read_text(path))


def _write(path: Path, value: str) -> None:
    if not allowed(path, value):
        raise KnobError(f"cowsnap does not change {path} (or not to {value!r}); allowed: {', '.join(KNOBS)}")
    try:
        Path(path).write_text(f"{value}\n")
    except OSError as error:
        raise KnobError(f"cannot set {path} to {value!r}: {error.strerror}") from None


def _report(message: str) -> None:
    print(f"cowsnap: knob journal {JOURNAL}: {message}", file=sys.stderr)


def _move_aside(why: str) -> None:
    aside = JOURNAL.with_name(f"{JOURNAL.name}.bad-{time.strftime('%Y%m%dT%H%M%S')}")
    try:
        os.replace(JOURNAL, aside)
        _report(f"{why}; not used, moved to {aside}")
    except OSError as error:
        _report(f"{why}; not used, and it cannot be moved aside ({error.strerror})")


def _load_journal() -> dict[str, str]:
    """The saved values, when the journal is root's, mode 0600 and of the
    right shape (a JSON object of allowed knob paths to values); else it is
    reported and moved aside, and nothing is restored from it."""
    try:
        info = JOURNAL.lstat()
    except FileNotFoundError:
        return {}
    except OSError as error:
        _report(f"cannot be read ({error.strerror})")
        return {}
    if not stat.S_ISREG(info.st_mode) or info.st_uid != 0 or stat.S_IMODE(info.st_mode) != 0o600:
        _move_aside(f"not a file owned by root with mode 0600 (uid {info.st_uid}, mode {stat.S_IMODE(info.st_mode):o})")
        return {}
    try:
        saved = json.loads(JOURNAL.read_text())
    except (OSError, ValueError) as error:
        _move_aside(f"not valid JSON ({error})")
        return {}
    if not isinstance(saved, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in saved.items()):
        _move_aside("not an object of knob paths to values")
        return {}
    refused = [f"{path}={value}" for path, value in saved.items() if not allowed(path, value)]
    if refused:
        _move_aside(f"holds knobs or values cowsnap does not change ({', '.join(refused)})")
        return {}
    return saved


def _save_journal(saved: dict[str, str]) -> None:
    try:
        JOURNAL.parent.mkdir(parents=True, exist_ok=True)
        tmp = JOURNAL.with_name(JOURNAL.name + ".tmp")
        tmp.unlink(missing_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as file:
            json.dump(saved, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, JOURNAL)
    except OSError as error:
        raise KnobError(f"cannot save the knob journal {JOURNAL}: {error.strerror}") from None


def _restore(saved: dict[str, str]) -> None:
    """Writes back every saved value (each one tried) and drops the journal."""
    for path, value in saved.items():
        with contextlib.suppress(KnobError):
            _write(Path(path), value)
    JOURNAL.unlink(missing_ok=True)


@contextlib.contextmanager
def locked():
    """Holds the machine's knob lock for the block: exclusive for root (who
    may change knobs), shared for an ordinary user when the lock file is
    there to read (its runs change nothing, but wait for a root run that
    does), none when it is not."""
    if not _THREADS.acquire(timeout=LOCK_WAIT_S):
        raise KnobError(f"another cowsnap run in this process held the knob lock for {LOCK_WAIT_S} s")
    try:
        with _locked_file():
            yield
    finally:
        _THREADS.release()


@contextlib.contextmanager
def _locked_file():
    """The POSIX lock on LOCK (see locked)."""
    root = os.geteuid() == 0
    try:
        if root:
            LOCK.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        else:
            fd = os.open(LOCK, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as error:
        if root:
            raise KnobError(f"cannot open the knob lock {LOCK}: {error.strerror}") from None
        yield  # an ordinary user changes no knob
        return
    try:
        mode = fcntl.LOCK_EX if root else fcntl.LOCK_SH
        deadline = time.monotonic() + LOCK_WAIT_S
        while True:
            try:
                fcntl.lockf(fd, mode | fcntl.LOCK_NB)
                break
            except OSError as error:
                if error.errno not in (errno.EAGAIN, errno.EACCES):  # anything but "another process holds it"
                    raise KnobError(f"cannot lock {LOCK}: {error.strerror}") from None
                if time.monotonic() > deadline:
                    raise KnobError(f"another cowsnap run held the knob lock {LOCK} for {LOCK_WAIT_S} s") from None
                time.sleep(0.01)
        yield
    finally:
        os.close(fd)  # releases the lock


def restore_journal() -> dict[str, str]:
    """Puts back what an interrupted run left changed; returns what it
    restored. Only root has a journal (and may change knobs)."""
    if os.geteuid() != 0:
        return {}
    with locked():
        saved = _load_journal()
        _restore(saved)
    return saved


def _raise_system_exit(signum, _frame):
    raise SystemExit(128 + signum)


@contextlib.contextmanager
def applied(wanted: dict[Path, str]):
    """Sets each knob for the duration of the block, then restores it; the
    block runs under the knob lock.

    Values already in place are not touched (and need no privilege).
    """
    # SIGINT and SIGTERM end the run through the restoring code below. Only
    # the main thread may set handlers; a run in another thread (inside
    # Snakemake) is ended by its benchmark process ending.
    in_main_thread = threading.current_thread() is threading.main_thread()
    signals = (signal.SIGTERM, signal.SIGINT) if in_main_thread else ()
    previous_handlers = {s: signal.signal(s, _raise_system_exit) for s in signals}
    saved: dict[str, str] = {}
    try:
        with locked():
            if os.geteuid() == 0:
                _restore(_load_journal())
            changes = {Path(p): v for p, v in wanted.items() if current(Path(p)) != v}
            saved = {str(p): current(p) for p in changes}
            try:
                if changes:
                    _save_journal(saved)
                for path, value in changes.items():
                    _write(path, value)
                    if current(path) != value:
                        raise KnobError(f"{path} reads {current(path)!r} after writing {value!r}")
                yield
            finally:
                if saved:
                    _restore(saved)
    finally:
        for signum, handler in previous_handlers.items():
            signal.signal(signum, handler)
