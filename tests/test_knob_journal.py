"""The knob journal and its lock, with real processes: runs serialize, a
run killed with SIGKILL is restored by the next, a journal that is not
cowsnap's is never used. Nothing here changes a system setting: the saved
values are the current ones."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cowsnap.measure import knobs

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="the knob journal is root's")
THP = str(knobs.THP_ENABLED)

HOLDER = """
import os, sys, time
from pathlib import Path
from cowsnap.measure import knobs
gate = Path(sys.argv[1])
with knobs.locked():
    Path(gate, sys.argv[2] + ".in").write_text(str(time.monotonic()))
    if len(sys.argv) > 3:
        knobs._save_journal({sys.argv[3]: knobs.current(Path(sys.argv[3]))})
    while not Path(gate, sys.argv[2] + ".go").exists():
        time.sleep(0.01)
    Path(gate, sys.argv[2] + ".out").write_text(str(time.monotonic()))
"""


@pytest.fixture
def journal(tmp_path, monkeypatch):
    path = tmp_path / "knobs.json"
    monkeypatch.setattr(knobs, "JOURNAL", path)
    monkeypatch.setattr(knobs, "LOCK", path.with_name(path.name + ".lock"))
    monkeypatch.setenv("COWSNAP_KNOB_JOURNAL", str(path))
    monkeypatch.setenv("COWSNAP_KNOB_LOCK", str(knobs.LOCK))
    return path


def holder(gate: Path, name: str, *journal_knob: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", HOLDER, str(gate), name, *journal_knob])


# F_GETLK: the process holding a POSIX write lock on a file that would stop
# the asking process taking it, or 0. Asked from a process of its own, since
# a process never conflicts with its own locks.
GETLK = """
import fcntl, os, struct, sys
layout = "hhqqi4x"  # struct flock on Linux: l_type, l_whence, l_start, l_len, l_pid
fd = os.open(sys.argv[1], os.O_RDWR)
asked = struct.pack(layout, fcntl.F_WRLCK, 0, 0, 0, 0)  # a write lock on the whole file
kind, _, _, _, pid = struct.unpack(layout, fcntl.fcntl(fd, fcntl.F_GETLK, asked))
print(0 if kind == fcntl.F_UNLCK else pid)
"""


def lock_holder(path: Path) -> int:
    """The process holding the lock on path (0: none), seen from another process."""
    done = subprocess.run([sys.executable, "-c", GETLK, str(path)], capture_output=True, text=True, check=True)
    return int(done.stdout)


def wait_for(path: Path, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + 60
    while not path.exists():
        assert process is None or process.poll() is None, "the process ended early"
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.01)


@needs_root
def test_concurrent_runs_serialize_on_the_lock(journal, tmp_path):
    first = holder(tmp_path, "a")
    wait_for(tmp_path / "a.in", first)
    second = holder(tmp_path, "b")
    try:
        assert lock_holder(knobs.LOCK) == first.pid  # a holds the lock: b cannot get in
        assert not (tmp_path / "b.in").exists()
        (tmp_path / "a.go").touch()
        (tmp_path / "b.go").touch()
        assert first.wait(timeout=60) == 0 and second.wait(timeout=60) == 0
    finally:
        first.kill(), second.kill()
    assert float((tmp_path / "a.out").read_text()) <= float((tmp_path / "b.in").read_text())


@needs_root
def test_threads_of_one_process_serialize_on_the_lock(journal):
    # Timed runs are threads of the Snakemake process, and a POSIX lock
    # belongs to the whole process: a second thread must still wait.
    import threading

    inside, leave, order = threading.Event(), threading.Event(), []

    def first():
        with knobs.locked():
            order.append("a in")
            inside.set()
            leave.wait(60)
            order.append("a out")

    def second():
        with knobs.locked():
            order.append("b in")

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    threads[0].start()
    assert inside.wait(60)
    threads[1].start()
    # a holds both locks: the process's, which keeps b's thread out, and the
    # file's (seen from another process), which keeps other runs out.
    assert knobs._THREADS.locked()
    assert lock_holder(knobs.LOCK) == os.getpid()
    assert order == ["a in"]
    leave.set()
    for thread in threads:
        thread.join(60)
    assert order == ["a in", "a out", "b in"]


@needs_root
def test_sigkill_then_the_next_run_restores(journal, tmp_path):
    process = holder(tmp_path, "a", THP)
    wait_for(tmp_path / "a.in", process)
    wait_for(journal, process)
    before = knobs.current(knobs.THP_ENABLED)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert journal.exists()  # nothing could restore it
    with knobs.applied({}):  # the lock is free again, and the next run restores
        assert not journal.exists()
    assert knobs.current(knobs.THP_ENABLED) == before


@needs_root
@pytest.mark.parametrize(
    "content",
    ['{"/sys/kernel/mm/transparent_hugepage/enab', '["always"]', '{"/etc/passwd": "x"}', f'{{"{THP}": "sometimes"}}'],
    ids=["truncated", "not an object", "knob not on the allow-list", "value not allowed"],
)
def test_a_journal_of_the_wrong_shape_is_moved_aside(journal, content, capfd):
    journal.write_text(content)
    journal.chmod(0o600)
    assert knobs.restore_journal() == {}
    assert not journal.exists()
    (aside,) = journal.parent.glob("knobs.json.bad-*")
    assert aside.read_text() == content
    assert "moved to" in capfd.readouterr().err
    with knobs.applied({}):  # and the next run goes ahead
        pass


@needs_root
def test_a_journal_others_can_read_is_not_used(journal):
    journal.write_text(json.dumps({THP: knobs.current(knobs.THP_ENABLED)}))
    journal.chmod(0o644)
    assert knobs.restore_journal() == {}
    assert list(journal.parent.glob("knobs.json.bad-*"))


def test_only_allowed_knobs_and_values():
    assert knobs.allowed(THP, "madvise")
    assert knobs.allowed("/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages", "12")
    assert knobs.allowed("/proc/sys/kernel/task_delayacct", "1")
    assert not knobs.allowed("/etc/passwd", "1")
    assert not knobs.allowed("/sys/kernel/mm/hugepages/hugepages-2048kB/../../../../etc/x", "1")
    assert not knobs.allowed(THP, "madvise\nalways")
    with pytest.raises(knobs.KnobError, match="does not change /etc/passwd"):
        knobs._write(Path("/etc/passwd"), "x")


def test_an_ordinary_user_run_ignores_a_root_journal(journal, tmp_path):
    from test_knobs import unprivileged_python

    prefix = unprivileged_python()
    journal.write_text(json.dumps({THP: knobs.current(knobs.THP_ENABLED)}))
    journal.chmod(0o600)
    tmp_path.chmod(0o755)
    code = "from cowsnap.measure import knobs\nknobs.restore_journal()\nwith knobs.applied({}):\n    print('ran')"
    done = subprocess.run([*prefix, "-c", code], capture_output=True, text=True, cwd="/")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ran"
    assert journal.exists()  # root's to restore, not this user's


FORKING_HOLDER = """
import os, sys, time
from pathlib import Path
from cowsnap.measure import knobs
gate = Path(sys.argv[1])
with knobs.locked():
    if os.fork() == 0:  # as the snapshot child does, in native code
        while not Path(gate, "child.go").exists():
            time.sleep(0.01)
        os._exit(0)
    Path(gate, "in").touch()
    time.sleep(3600)
"""


@needs_root
def test_a_killed_runs_child_does_not_keep_the_lock(journal, tmp_path, monkeypatch):
    process = subprocess.Popen([sys.executable, "-c", FORKING_HOLDER, str(tmp_path)])
    try:
        wait_for(tmp_path / "in", process)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        monkeypatch.setattr(knobs, "LOCK_WAIT_S", 30)  # KnobError, not a hang, if the child held it
        with knobs.locked():
            pass
    finally:
        (tmp_path / "child.go").touch()
        process.kill()
