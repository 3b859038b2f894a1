"""The memory a snapshot costs (snapshot_memory_mib), counted by a memory
cgroup of the run's own, for every method: against the counters' own
account (snapshot_memory_counted_mib) and against what /proc shows the
parent and the child hold, read with the run held at a known point."""

import contextlib
import ctypes
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from cowsnap.analyse import aggregate
from cowsnap.measure import cgroup, knobs
from cowsnap.measure.bench import runner, wire
from cowsnap.plan import grid
from cowsnap.plan import point as plan_point

SIZE_MIB = 64
# Each writer its own slice (blocked): two writers never copy one page at
# once, the second copy freed at once (interleaved writers do, more often
# the busier the machine).
SMALL = {"size_mib": SIZE_MIB, "batch_kib": 2048, "writers": 2, "copiers": 2, "pattern": "blocked"}
# The seed's point, small: its array from new (every munmap of a batch
# fails, so nothing is freed while the child lives), interleaved writers, a
# zeroed destination made before fork, a normal exit, nothing checked.
SEED = {**SMALL, "method": "fork", "alloc": "new", "exit": "normal", "check_copy": False, "pattern": "interleaved"}
DEADLINE_S = 60


@pytest.fixture(scope="module")
def parent_cgroup():
    """Where this machine puts a run's memory cgroup (skips where none can be made)."""
    where, reason = cgroup.parent()
    if where is None:
        pytest.skip(reason)
    if not os.access(where, os.W_OK):
        pytest.skip(f"cannot make a memory cgroup in {where} (uid {os.geteuid()})")
    return where


@pytest.fixture
def counted(run_point, parent_cgroup):
    """Runs a point; its record, which must hold snapshot_memory_mib, with
    the derived columns (snapshot_memory_counted_mib)."""

    def run(**settings):
        record = run_point(**settings)
        assert "snapshot_memory_mib" in record, record["snapshot_memory_source"]
        return aggregate.runs_table([record]).iloc[0]

    return run


def test_every_method_counts_the_memory_its_snapshot_costs(counted):
    none = counted(method="none", **SMALL)
    assert abs(none["snapshot_memory_mib"]) < 2  # threads and counters only
    for method in ("uffd", "stop"):  # their copy buffer, the destination
        row = counted(method=method, **SMALL)
        assert row["snapshot_memory_mib"] == pytest.approx(SIZE_MIB, rel=0.1), method
        assert row["snapshot_memory_source"].startswith("cgroup v")
    # fork, nothing freed while the child lives (release none): the parent's
    # zeroed destination and the child's copy of it, then the writers'
    # copies, none when they start after the child exited...
    alone = counted(method="fork", release="none", start="after_child", **SMALL)
    assert alone["copies_during_snapshot"] <= 0.01 * alone["pages"]  # their stacks, a page or two
    # ...and one per page when they write while it holds the snapshot.
    copying = counted(method="fork", release="none", hold="writers", **SMALL)
    assert copying["copies_during_snapshot"] >= copying["pages"]
    assert alone["snapshot_memory_mib"] >= 2 * SIZE_MIB
    grown = copying["snapshot_memory_mib"] - alone["snapshot_memory_mib"]
    assert grown == pytest.approx(copying["copies_during_snapshot"] * copying["page_bytes"] / 2**20, rel=0.1)
    for row in (alone, copying):
        assert row["snapshot_memory_mib"] == pytest.approx(row["snapshot_memory_counted_mib"], rel=0.1)
    # The seed's array: its munmaps fail, so nothing is freed either while
    # the child holds the snapshot (its exit frees its pages: it waits).
    seed = counted(**{**SEED, "pattern": "blocked", "hold": "writers"})
    assert seed["release_failed"] == seed["release_calls"] > 0
    assert seed["snapshot_memory_mib"] == pytest.approx(seed["snapshot_memory_counted_mib"], rel=0.1)


def test_without_a_cgroup_nothing_is_counted(build, run_point, monkeypatch):
    # The benchmark started without the variable (as in a VM): absent, never 0.
    monkeypatch.delenv(cgroup.VARIABLE, raising=False)
    keys = wire.measure(grid.resolve({"memcpy_mib": 0, "method": "fork", **SMALL}), build)
    assert keys["status"] == "ok", keys["reason"]
    assert "snapshot_memory_mib" not in keys
    assert keys["snapshot_memory_source"].startswith(f"not counted: {cgroup.VARIABLE} is not set")
    # The runner could not make one: its reason reaches the record.
    monkeypatch.setattr(cgroup, "parent", lambda: (None, "no memory controller here"))
    record = run_point(method="uffd", **SMALL)
    assert "snapshot_memory_mib" not in record
    assert record["snapshot_memory_source"] == "not counted: no memory controller here"
    assert cgroup.VARIABLE not in os.environ


def test_a_peak_that_cannot_be_reset_is_not_counted(build, tmp_path, monkeypatch):
    # cgroup v2 before Linux 6.12: memory.peak is read-only, so the peak
    # over the snapshot alone cannot be had (here a folder of plain files
    # the benchmark takes for such a cgroup, its memory.peak unwritable).
    fake = tmp_path / "cgroup"
    (fake / "memory.peak").mkdir(parents=True)
    (fake / "memory.current").write_text("1048576\n")
    (fake / "cgroup.procs").write_text("")
    monkeypatch.setenv(cgroup.VARIABLE, str(fake))
    keys = wire.measure(grid.resolve({"memcpy_mib": 0, "method": "stop", "size_mib": 4, "batch_kib": 512}), build)
    assert keys["status"] == "ok", keys["reason"]
    assert "snapshot_memory_mib" not in keys
    assert keys["snapshot_memory_source"].startswith(f"not counted: cannot reset {fake}/memory.peak")


def test_the_cgroup_is_removed_after_the_run_also_when_it_fails(run_point_raw, parent_cgroup, monkeypatch):
    measure, made = wire.measure, []

    def spy(point, build):
        made.append(Path(os.environ[cgroup.VARIABLE]))
        assert made[-1].is_dir() and made[-1].parent == parent_cgroup
        if point.get("size_mib") == 1:
            raise RuntimeError("the run broke")
        return measure(point, build)

    monkeypatch.setattr(wire, "measure", spy)
    ok = run_point_raw(method="fork", **SMALL)
    assert ok["status"] == "ok" and ok["snapshot_memory_source"].startswith("cgroup v")
    failed = run_point_raw(method="fork", inject="wipe-on-fork", **SMALL)  # the benchmark fails the run
    assert failed["status"] == "failed"
    with pytest.raises(RuntimeError, match="the run broke"):  # the runner itself fails
        run_point_raw(method="none", size_mib=1, batch_kib=64)
    assert len(made) == 3 and len(set(made)) == 3
    for path in made:
        assert not path.exists(), path
    assert cgroup.VARIABLE not in os.environ


def test_a_cgroup_v2_run_goes_where_memory_is_delegated(tmp_path, monkeypatch):
    # Most users have cgroup v2 (this machine's memory controller is on v1):
    # its placement, on a hierarchy made of plain files.
    mount, own = tmp_path / "unified", tmp_path / "unified" / "user.slice" / "run"
    own.mkdir(parents=True)
    (tmp_path / "mountinfo").write_text(f"41 31 0:38 / {mount} rw,relatime - cgroup2 cgroup2 rw\n")
    (tmp_path / "cgroup").write_text("0::/user.slice/run\n")
    monkeypatch.setattr(cgroup, "MOUNTINFO", tmp_path / "mountinfo")
    monkeypatch.setattr(cgroup, "PROC_CGROUP", tmp_path / "cgroup")

    def delegated(controllers: str, root: str, this: str):
        (mount / "cgroup.controllers").write_text(controllers)
        (mount / "cgroup.subtree_control").write_text(root)
        (own / "cgroup.subtree_control").write_text(this)
        return cgroup.parent()

    assert delegated("cpu memory\n", "cpu memory\n", "") == (mount, "")
    assert delegated("cpu memory\n", "cpu\n", "memory\n") == (own, "")
    where, reason = delegated("cpu memory\n", "cpu\n", "")
    assert where is None and reason.startswith("cgroup v2: memory is not in cgroup.subtree_control")
    where, reason = delegated("cpu\n", "cpu\n", "")
    assert where is None and reason.startswith("no memory controller")
    delegated("memory\n", "memory\n", "")
    with cgroup.memory_cgroup() as (path, reason):
        assert Path(path).parent == mount and Path(path).is_dir() and not reason
    assert not Path(path).exists()


# ---- the seed's point against /proc, the run held at a known point


def proc_fields(pid: int, name: str) -> dict[str, int]:
    """The 'Key: value [kB]' lines of /proc/PID/<name>, as numbers."""
    fields = {}
    for line in Path(f"/proc/{pid}/{name}").read_text().splitlines():
        key, _, value = line.partition(":")
        if value.split() and value.split()[0].isdigit():
            fields[key] = int(value.split()[0])
    return fields


def private_kib(pid: int) -> int:
    """What only this process maps (smaps_rollup Private_Clean + Private_Dirty)."""
    rollup = proc_fields(pid, "smaps_rollup")
    return rollup["Private_Clean"] + rollup["Private_Dirty"]


def stopped(pid: int) -> bool:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in "tT"


def wait_for(condition, what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        assert time.monotonic() < deadline, f"not within {DEADLINE_S} s: {what}"
        time.sleep(0.002)


class Tracer:
    """ptrace of a process's main thread, for its fork events: the forking
    thread and the new child stop there until they are let go."""

    SEIZE, CONT, DETACH, GETEVENTMSG = 0x4206, 7, 17, 0x4201
    TRACEFORK, EXITKILL, EVENT_FORK, WALL = 0x2, 0x100000, 1, 0x40000000

    def __init__(self, pid: int):
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
        self.libc.ptrace.restype = ctypes.c_long
        self.pid = pid
        self.call(self.SEIZE, pid, self.TRACEFORK | self.EXITKILL)

    def call(self, request: int, pid: int, data: int = 0, address=None) -> None:
        if self.libc.ptrace(request, pid, address, ctypes.c_void_p(data)) != 0:
            raise OSError(ctypes.get_errno(), f"ptrace({request:#x}, {pid})")

    def stop_of(self, pid: int) -> int:
        """The next stop of a traced thread (its wait status), within the deadline."""
        deadline = time.monotonic() + DEADLINE_S
        while True:
            got, status = os.waitpid(pid, os.WNOHANG | self.WALL)
            if got:
                assert os.WIFSTOPPED(status), f"{pid} ended while traced: status {status:#x}"
                return status
            assert time.monotonic() < deadline, f"{pid} did not stop within {DEADLINE_S} s"
            time.sleep(0.001)

    def fork_where(self, condition) -> int:
        """Lets the process run until it forks while condition() holds; the
        new child's pid. Both stay stopped; other children are let go."""
        while True:
            status = self.stop_of(self.pid)
            event, signal_number = status >> 16, os.WSTOPSIG(status)
            if event != self.EVENT_FORK:  # a signal to deliver, or another stop
                self.call(self.CONT, self.pid, signal_number if event == 0 else 0)
                continue
            message = ctypes.c_ulong()
            self.call(self.GETEVENTMSG, self.pid, ctypes.addressof(message))
            child = message.value
            self.stop_of(child)  # its first stop, traced from birth
            if condition():
                return child
            self.call(self.DETACH, child)
            self.call(self.CONT, self.pid)


def test_the_seed_costs_what_proc_shows_parent_and_child_hold(build, parent_cgroup, tmp_path):
    """The seed's point run by hand, held where the snapshot holds the most:
    the child has copied the whole array (its copy is private to it, the
    parent held at fork meanwhile), and the writers have written every page
    (each a copy: the child, stopped, still maps them all). /proc's private
    memory of the two then, less the parent's before the array and the
    array, is the memory the snapshot costs."""
    point = plan_point.planned(grid.resolve({"memcpy_mib": 0, **SEED, "hold": "writers", "timeout_s": 600}))
    size_kib = SIZE_MIB * 1024
    gate = tmp_path / "gate"
    gate.mkdir()
    child = None
    with knobs.applied(runner.wanted_knobs(point)), cgroup.memory_cgroup() as (path, reason):
        assert path, reason
        environment = {**os.environ, cgroup.VARIABLE: path, "COWSNAP_TEST_GATE": str(gate)}
        params = tmp_path / "params"
        params.write_text(wire.params_text(point, build))
        with params.open() as stdin:
            bench = subprocess.Popen(
                [str(build.bench)], stdin=stdin, stdout=subprocess.PIPE, env=environment, text=True
            )
        try:
            wait_for(lambda: (gate / f"{bench.pid}.waiting").exists(), "the benchmark waits at its gate")
            before = private_kib(bench.pid)  # nothing allocated yet
            tracer = Tracer(bench.pid)
            (gate / str(bench.pid)).touch()
            # The snapshot's fork: the parent then holds the array and its
            # destination (the empty forks before come before the array).
            child = tracer.fork_where(lambda: proc_fields(bench.pid, "status")["RssAnon"] >= 2 * size_kib)
            threads = proc_fields(bench.pid, "status")["Threads"]  # main, writers, the one awaiting the end
            tracer.call(Tracer.DETACH, child)
            # The child copies everything and then waits for the writers
            # (hold=writers); the parent, held at fork, writes nothing.
            wait_for(
                lambda: proc_fields(child, "status")["Threads"] == 1 and private_kib(child) >= size_kib,
                "the child copied the whole array",
            )
            os.kill(child, signal.SIGSTOP)  # it cannot exit, whatever the parent does
            wait_for(lambda: stopped(child), "the child stopped")
            tracer.call(Tracer.DETACH, bench.pid)
            # The writers write every page, then end; the parent waits for the child.
            wait_for(
                lambda: proc_fields(bench.pid, "status")["Threads"] <= threads - SEED["writers"],
                "the writers finished",
            )
            held = private_kib(bench.pid) + private_kib(child)
            os.kill(child, signal.SIGCONT)
            output, _ = bench.communicate(timeout=DEADLINE_S)
        except BaseException:
            for pid in (child, bench.pid):  # neither reaped yet: the benchmark has not ended
                if pid:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
            bench.wait()
            raise
    record = wire.parse_result(output, build)
    assert record["status"] == "ok", record["reason"]
    assert record["release_failed"] == record["release_calls"] > 0  # nothing freed
    assert record["writer_wpcopy_count"] >= record["pages"]
    expected_mib = (held - before) / 1024 - SIZE_MIB  # less the parent's own and the array
    assert record["snapshot_memory_mib"] == pytest.approx(expected_mib, rel=0.1)
    assert record["snapshot_memory_mib"] >= 3 * SIZE_MIB  # destination, the child's copy, the writers' copies
