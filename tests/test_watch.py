"""`cowsnap watch` on real processes: a small C program (tests/data/cowchild.c)
that forks a child holding its memory and writes it while the child lives and
after it exited, each step held until the test says go; the watch's own
output lines tell the test when it has seen an event. Nothing waits on a
clock: every wait is for a file or a line, with a bound only as a failure."""

import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
from conftest import delayacct_not_ours

from cowsnap import watch_cli
from cowsnap.analyse import verdict
from cowsnap.analyse.watch import report as watch_report
from cowsnap.measure import knobs
from cowsnap.measure.watch import proc, tracker

DATA = Path(__file__).parent / "data"
REPO = Path(__file__).resolve().parent.parent
PAGES = 8192  # 32 MiB of 4 KiB pages: half written while the child lives, half after
HALF = PAGES // 2
BOUND_S = 120  # a wait that takes longer has failed
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (taskstats, the delay accounting knob)")
INTERFERED = "switched off during the watch by another program"


@pytest.fixture(scope="session")
def cowchild(tmp_path_factory) -> Path:
    program = tmp_path_factory.mktemp("cowchild") / "cowchild"
    subprocess.run(["cc", "-O2", "-Wall", str(DATA / "cowchild.c"), "-o", str(program)], check=True)
    return program


@pytest.fixture
def control(tmp_path) -> Path:
    """The folder through which the test and cowchild hand each other steps."""
    folder = tmp_path / "control"
    folder.mkdir()
    os.mkfifo(folder / "child")
    return folder


def reached(control: Path, step: str) -> None:
    """Waits until cowchild has created control/step."""
    deadline = time.monotonic() + BOUND_S
    while not (control / step).exists():
        assert time.monotonic() < deadline, f"cowchild never reached {step!r}"
        time.sleep(0.01)


def go(control: Path, step: str) -> None:
    (control / step).touch()


def let_child_exit(control: Path) -> None:
    go(control, "go-exit")
    with open(control / "child", "w") as fifo:  # opens once the child reads it
        fifo.write("x")


class Watcher:
    """A `cowsnap watch` in its own process, its output read line by line."""

    def __init__(self, args: list[str], build, launcher: list[str] | None = None):
        launcher = launcher or [
            sys.executable,
            "-m",
            "cowsnap.cli",
            "watch",
            "--build-dir",
            str(build.directory.parent),
        ]
        self.process = subprocess.Popen([*launcher, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self.changed = threading.Condition()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            with self.changed:
                self.lines.append(line.rstrip("\n"))
                self.changed.notify_all()
        with self.changed:
            self.lines.append(None)  # end of output
            self.changed.notify_all()

    def expect(self, predicate, what: str, after: int = 0) -> int:
        """Index of the first line after `after` that satisfies predicate."""
        deadline = time.monotonic() + BOUND_S
        with self.changed:
            while True:
                for i in range(after, len(self.lines)):
                    if self.lines[i] is None:
                        raise AssertionError(f"the watch ended before {what}:\n{self.output()}{self.stderr()}")
                    if predicate(self.lines[i]):
                        return i
                left = deadline - time.monotonic()
                assert left > 0, f"no {what} in the watch's output:\n{self.output()}"
                self.changed.wait(left)

    def output(self) -> str:
        return "\n".join(line for line in self.lines if line is not None) + "\n"

    def stderr(self) -> str:
        return self.process.stderr.read() if self.process.poll() is not None else ""

    def finish(self) -> tuple[int, str]:
        code = self.process.wait(BOUND_S)
        self.reader.join(BOUND_S)
        return code, self.process.stderr.read()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def started(line: str) -> bool:
    return line.startswith("cowsnap watch: watching pid")


def interval_line(line: str) -> bool:
    return " system-wide " in line


def child_exited(line: str) -> bool:
    return " child " in line and line.endswith(" exited")


def copies_counted_or_skip(result: dict) -> None:
    how = result["counted"]["wpcopy_count"]
    if INTERFERED in how:
        delayacct_not_ours(f"another program changed kernel.task_delayacct during the watch: {how}")
    assert not how.startswith("not counted"), how


def run_cow_scenario(watcher: Watcher, control: Path) -> None:
    """Fork, half the pages written while the child lives, one reading of
    the watch while the child still holds the other half, the child exits;
    once the watch has closed the interval the child exited in, the other
    half is written; then cowchild exits."""
    watcher.expect(started, "the watch's start")
    reached(control, "filled")
    go(control, "go-fork")
    reached(control, "written-during")
    watcher.expect(interval_line, "a reading while the child lives", after=len(watcher.lines))
    let_child_exit(control)
    reached(control, "reaped")
    seen = watcher.expect(child_exited, "the child's exit")
    closed = watcher.expect(interval_line, "the interval the child exited in", after=seen)
    watcher.expect(interval_line, "a reading after the child exited", after=closed + 1)
    go(control, "go-write")
    reached(control, "written-after")
    go(control, "go-end")


def assert_copies_then_reuses(result: dict) -> None:
    phases = result["phases"]
    during, after = phases["during_snapshot"], phases["after_snapshot"]
    # About one copy per page written while the child held it (a few more
    # for the program's own stack and libc pages)...
    assert HALF <= during["wpcopy_count"] <= 1.05 * HALF + 64, during
    assert during["wpcopy_delay_s"] > 0
    # ...and none after it exited: every write fault reuses its page
    # (pgreuse is system-wide, so only a floor holds).
    assert after["wpcopy_count"] <= 0.01 * HALF, after
    assert after["minflt"] >= HALF
    assert after["pgreuse"] >= 0.9 * HALF
    verdict = "\n".join(result["verdict"])
    assert "while a child lived" in verdict and "copying:" in verdict
    assert "after the children exited" in verdict and "not copying" in verdict
    assert "MADV_POPULATE_WRITE" in verdict


def watched(build, args: list[str], scenario, out: Path) -> dict:
    """Runs the watch with args through a scenario; its watch.json, whose copies were counted."""
    watcher = Watcher(args, build)
    try:
        scenario(watcher)
        code, stderr = watcher.finish()
    finally:
        watcher.stop()
    assert code == 0, stderr
    result = json.loads((out / "watch.json").read_text())
    copies_counted_or_skip(result)
    return result


@needs_root
def test_copies_while_the_child_lives_and_reuses_after_it_exits(build, cowchild, control, tmp_path):
    out = tmp_path / "out"
    args = ["--interval", "0.3", "--sharing", "--out", str(out), "--", str(cowchild), str(PAGES), str(control)]
    result = watched(build, args, lambda watcher: run_cow_scenario(watcher, control), out)
    assert_copies_then_reuses(result)
    # The child's lifetime is in the timeline: its start and exit, and rows.
    children = {int(pid): p for pid, p in result["processes"].items() if p["role"] == "child"}
    assert len(children) == 1
    (child_pid, child), *_ = children.items()
    assert 0 <= child["start_s"] < child["end_s"]
    # The parent wrote while its child lived and copied: a snapshot child, and the memory line says so.
    assert child["child_role"] == "snapshot child" and list(result["roles"]) == ["snapshot child"]
    assert "memory: the snapshot copied" in "\n".join(result["verdict"])
    assert "workers" not in "\n".join(result["verdict"])
    assert {(e["event"], e["pid"]) for e in result["events"]} >= {("started", child_pid), ("exited", child_pid)}
    # Every key of watch.json, and of a process in it, is in docs/watch.md's table (the counters: keys.md).
    table = (REPO / "docs" / "watch.md").read_text().split("## What `watch.json` holds")[1].split("\n## ")[0]
    counters = {*result["counted"]}
    keys = {*result, *(key for process in result["processes"].values() for key in process if key not in counters)}
    assert not [key for key in keys if f"`{key}`" not in table]
    import pandas as pd

    timeline = pd.read_csv(out / "timeline.csv")
    assert (timeline["pid"] == child_pid).any()
    assert set(timeline["phase"]) >= {"during_snapshot", "after_snapshot"}
    assert (out / "timeline.png").stat().st_size > 0
    # --sharing: while the child lived, the half not yet written was still
    # shared with it; after it exited, nothing is; the cost is stated.
    root = timeline[(timeline["scope"] == "process") & (timeline["role"] == "watched")]
    assert root[root["phase"] == "during_snapshot"]["shared_pages"].max() >= HALF
    assert root[root["phase"] == "after_snapshot"]["shared_pages"].dropna().iloc[-1] <= 0.01 * PAGES
    assert result["sharing_cost"]["samples"] > 0 and result["sharing_cost"]["seconds"] > 0


@needs_root
def test_a_child_shorter_than_an_interval_is_counted_whole(build, cowchild, control, tmp_path):
    # One 60 s interval: the watch reads nothing between its start and the
    # end, so the child's counts can only come from its exit notification.
    child_pages = 1000
    out = tmp_path / "out"
    args = ["--interval", "60", "--out", str(out), "--", str(cowchild), str(PAGES), str(control), str(child_pages)]
    result = watched(build, args, lambda watcher: run_cow_scenario_without_intervals(watcher, control), out)
    children = [p for p in result["processes"].values() if p["role"] == "child"]
    assert len(children) == 1
    # The child wrote child_pages pages its parent still shared: a copy each.
    assert child_pages <= children[0]["wpcopy_count"] <= child_pages + 64
    assert children[0]["minflt"] >= child_pages
    assert children[0]["end_s"] is not None
    assert result["interval_rows"] == len(result["processes"]) + 1  # one interval only


def run_cow_scenario_without_intervals(watcher: Watcher, control: Path) -> None:
    watcher.expect(started, "the watch's start")
    reached(control, "filled")
    go(control, "go-fork")
    reached(control, "written-during")
    let_child_exit(control)
    reached(control, "reaped")
    go(control, "go-write")
    reached(control, "written-after")
    go(control, "go-end")


def attach_late(build, cowchild, control, tmp_path, monkeypatch, delayacct: str) -> tuple[dict, int]:
    """cowchild started while kernel.task_delayacct is held at delayacct,
    then watched with --pid through the scenario; its watch.json and pid.
    The test's own journal and lock: the watch takes the machine's lock to
    set the same knob, and would wait for this test's hold of it."""
    monkeypatch.setattr(knobs, "JOURNAL", tmp_path / "test-knobs.json")
    monkeypatch.setattr(knobs, "LOCK", tmp_path / "test-knobs.json.lock")
    out = tmp_path / "out"
    with knobs.applied({knobs.TASK_DELAYACCT: delayacct}):
        program = subprocess.Popen([str(cowchild), str(PAGES), str(control)])
        try:
            reached(control, "filled")
        except BaseException:
            program.kill()
            raise
    try:
        watcher = Watcher(["--pid", str(program.pid), "--interval", "0.3", "--out", str(out)], build)
        try:
            run_cow_scenario(watcher, control)
            assert program.wait(BOUND_S) == 0
            code, stderr = watcher.finish()
        finally:
            watcher.stop()
    finally:
        program.kill()
        program.wait()
    assert code == 0, stderr
    return json.loads((out / "watch.json").read_text()), program.pid


@needs_root
def test_attach_to_a_running_process_that_exits_during_the_watch(build, cowchild, control, tmp_path, monkeypatch):
    # Started while delay accounting was on: the kernel accounts its tasks,
    # which the watch learns from the copies they count.
    result, pid = attach_late(build, cowchild, control, tmp_path, monkeypatch, "1")
    copies_counted_or_skip(result)
    assert_copies_then_reuses(result)
    root = result["processes"][str(pid)]
    assert root["start_s"] is None  # it ran before the watch
    assert root["end_s"] is not None  # and the watch saw it exit, and ended
    assert ("exited", pid) in {(e["event"], e["pid"]) for e in result["events"]}


@needs_root
def test_attach_to_a_program_started_without_delay_accounting(build, cowchild, control, tmp_path, monkeypatch):
    # The common case: a server started while kernel.task_delayacct was 0
    # (the kernel's default), then watched. The kernel keeps no delay
    # accounting for its threads, so taskstats reads 0 copies for them: the
    # watch must not take that 0 for a count, and counts the copies from the
    # snapshot child's private dirty pages instead.
    result, pid = attach_late(build, cowchild, control, tmp_path, monkeypatch, "0")
    root = result["processes"][str(pid)]
    assert not any(thread["delay_accounting"] for thread in root["threads"].values())
    # taskstats' 0 for the program is not shown as its copies.
    assert root["wpcopy_count"] is None and root["not_counted"]["wpcopy_count"].startswith("not counted")
    during, after = result["phases"]["during_snapshot"], result["phases"]["after_snapshot"]
    assert during["unaccounted_minflt"] >= HALF
    copies, source, _ = verdict.best_copies(during)
    assert source == "child_private_dirty"
    assert 0.8 * HALF <= copies <= 1.3 * HALF, during
    lines = "\n".join(result["verdict"])
    assert f"while a child lived ({during['seconds']:.1f} s): copying:" in lines
    assert "counted by child_private_dirty" in lines
    # After the child exited nothing counts the parent's copies: it says so, never "not copying".
    after_line = next(line for line in result["verdict"] if line.startswith("after the children exited"))
    assert "copies not counted" in after_line and "not copying" not in after_line
    assert "kernel.task_delayacct=1" in after_line
    assert after["minflt"] >= HALF


def test_a_pid_that_does_not_exist_is_a_clear_error(build):
    gone = subprocess.Popen(["true"])
    gone.wait()
    watcher = Watcher(["--pid", str(gone.pid), "--for", "1"], build)
    code, stderr = watcher.finish()
    assert code == 2
    assert f"no process with PID {gone.pid}" in stderr
    assert "Traceback" not in stderr


def test_a_process_that_already_exited_is_a_clear_error(build):
    zombie = subprocess.Popen(["true"])  # not reaped until wait(): a zombie
    deadline = time.monotonic() + BOUND_S
    while proc.read_stat(zombie.pid)["state"] != "Z":
        assert time.monotonic() < deadline
        time.sleep(0.01)
    try:
        watcher = Watcher(["--pid", str(zombie.pid), "--for", "1"], build)
        code, stderr = watcher.finish()
    finally:
        zombie.wait()
    assert code == 2
    assert f"process {zombie.pid} exited before the watch could start" in stderr
    assert "Traceback" not in stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--interval", "nan", "--", "true"], "--interval must be a number of seconds above 0, not nan"),
        (["--interval", "0", "--", "true"], "--interval must be a number of seconds above 0, not 0.0"),
        (["--for", "inf", "--pid", "1"], "--for must be a number of seconds of at least 0, not inf"),
    ],
)
def test_bad_options_are_refused_before_watching(args, message, capsys):
    with pytest.raises(SystemExit) as stopped:
        watch_cli.parse_args(args)
    assert stopped.value.code == 2
    assert message in capsys.readouterr().err


def test_an_out_folder_that_cannot_be_written_is_refused_before_watching(tmp_path):
    blocked = tmp_path / "file"
    blocked.write_text("")
    args = watch_cli.parse_args(["--out", str(blocked / "out"), "--", "true"])
    with pytest.raises(proc.WatchError, match=r"--out .*/file/out: cannot write there"):
        watch_cli.run(args)


def test_another_users_process_is_refused_by_the_ownership_check():
    with pytest.raises(proc.WatchError, match=r"belongs to user .*only root may watch another user's process"):
        proc.check_may_watch(os.getpid(), euid=os.geteuid() + 1 if os.geteuid() else 65534)
    proc.check_may_watch(os.getpid(), euid=os.geteuid())  # one's own: allowed
    proc.check_may_watch(os.getpid(), euid=0)  # root: allowed


def nobody_launcher(build) -> list[str]:
    return [sys.executable, str(DATA / "watch_as_nobody.py"), str(build.directory.parent)]


@needs_root
def test_a_watcher_without_root_is_refused_a_root_process(build):
    watcher = Watcher(["--pid", str(os.getpid()), "--for", "1"], build, nobody_launcher(build))
    code, stderr = watcher.finish()
    assert code == 2
    assert f"process {os.getpid()}" in stderr and "belongs to user root (uid 0)" in stderr
    assert "runs as nobody (uid 65534): only root may watch another user's process" in stderr
    assert "Traceback" not in stderr


@needs_root
def test_without_root_what_cannot_be_read_is_not_counted_with_the_reason(build):
    sleeper = subprocess.Popen(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "sleep", "60"])
    shared = Path(tempfile.mkdtemp(prefix="cowsnap-watch-nobody-"))  # a folder nobody may write
    shared.chmod(0o777)
    out = shared / "out"
    try:
        deadline = time.monotonic() + BOUND_S
        while proc.owner_of(sleeper.pid) != 65534:  # until setpriv has dropped to nobody
            assert time.monotonic() < deadline, "setpriv never dropped to nobody"
            time.sleep(0.01)
        args = ["--pid", str(sleeper.pid), "--for", "0.6", "--interval", "0.2", "--out", str(out)]
        watcher = Watcher(args, build, nobody_launcher(build))
        code, stderr = watcher.finish()
        assert code == 0, stderr
        result = json.loads((out / "watch.json").read_text())
    finally:
        sleeper.kill()
        sleeper.wait()
        shutil.rmtree(shared)
    for key in ("wpcopy_count", "wpcopy_delay_s", "cpu_delay_s"):
        how = result["counted"][key]
        assert how.startswith("not counted: ")
        assert "CAP_NET_ADMIN" in how or "only root may switch it on" in how, how
        assert result["processes"][str(sleeper.pid)][key] is None  # never 0
    assert result["counted"]["minflt"] == "/proc/PID/stat"
    assert result["processes"][str(sleeper.pid)]["minflt"] is not None
    assert "not counted: " in watcher.output()
    assert result["exit_notifications"].startswith("not counted: ")


def start_watch_that_sets_the_knob(build, tmp_path) -> tuple[Watcher, str]:
    """A watch of `sleep 60` that switched delay accounting on; the value it saved."""
    # sleep's output goes elsewhere: the watch's pipes close when the watch ends.
    sleep = ["sh", "-c", "exec sleep 60 >/dev/null 2>&1"]
    return knob_watch(build, ["--interval", "0.2", "--out", str(tmp_path / "out"), "--", *sleep])


def sleep_pid(watcher: Watcher) -> int:
    line = watcher.lines[watcher.expect(started, "the watch's start")]
    return int(line.split("pid ")[1].split()[0])


SMALL = 4096  # 16 MiB of 4 KiB pages: the stop tests' program


def knob_watch(build, args: list[str]) -> tuple[Watcher, str]:
    """A watch that switched delay accounting on (its journal saved the
    value before); skips where the knob was on already (nothing to restore)."""
    before = knobs.current(knobs.TASK_DELAYACCT)
    if before != "0":
        delayacct_not_ours(f"kernel.task_delayacct was {before} already (another program's): a watch changes nothing")
    watcher = Watcher(args, build)
    watcher.expect(started, "the watch's start")
    assert knobs.JOURNAL.exists(), "the watch switched delay accounting on without journaling the value before"
    return watcher, json.loads(knobs.JOURNAL.read_text())[str(knobs.TASK_DELAYACCT)]


def child_started(line: str) -> bool:
    return " child " in line and line.endswith(" started")


@needs_root
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_a_stopped_watch_keeps_what_it_saw(build, cowchild, control, tmp_path, signum):
    # The program forks a child holding 16 MiB and writes half of it while
    # the child lives; the stop comes once the watch has seen the child.
    out = tmp_path / "out"
    watcher, saved = knob_watch(
        build, ["--interval", "0.3", "--out", str(out), "--", str(cowchild), str(SMALL), str(control)]
    )
    try:
        reached(control, "filled")
        go(control, "go-fork")
        reached(control, "written-during")
        watcher.expect(child_started, "the child's start")
        watcher.process.send_signal(signum)
        code, stderr = watcher.finish()
    finally:
        watcher.stop()
    assert code == 128 + signum, stderr
    assert "verdict" in watcher.output() and "while a child lived" in watcher.output()
    result = json.loads((out / "watch.json").read_text())
    assert result["ended_by"] == signal.Signals(signum).name
    copies_counted_or_skip(result)
    half = SMALL // 2
    assert half <= result["phases"]["during_snapshot"]["wpcopy_count"] <= 1.05 * half + 64
    assert (out / "timeline.csv").stat().st_size > 0 and (out / "timeline.png").stat().st_size > 0
    # The command was stopped with the watch (its own process group).
    assert result["command_exit_code"] is not None
    assert not knobs.JOURNAL.exists()
    assert knobs.current(knobs.TASK_DELAYACCT) == saved


@needs_root
def test_a_second_signal_ends_the_watch_at_once_and_restores_the_knob(build, tmp_path):
    # A command that ignores SIGTERM holds the watch in its stop, where the
    # second signal comes.
    stubborn = ["sh", "-c", "trap '' TERM; exec sleep 60 >/dev/null 2>&1"]
    watcher, saved = knob_watch(build, ["--interval", "0.2", "--out", str(tmp_path / "out"), "--", *stubborn])
    sleeper = sleep_pid(watcher)
    try:
        watcher.expect(interval_line, "an interval")
        watcher.process.send_signal(signal.SIGTERM)
        watcher.expect(lambda line: line.startswith("cowsnap watch: stopping (SIGTERM)"), "the stop")
        watcher.process.send_signal(signal.SIGTERM)
        code, stderr = watcher.finish()
    finally:
        watcher.stop()
    assert code == 128 + signal.SIGTERM, stderr
    assert "stopped at once by a second SIGTERM" in stderr
    assert proc.read_stat(sleeper) is None  # killed with the watch
    assert not knobs.JOURNAL.exists()
    assert knobs.current(knobs.TASK_DELAYACCT) == saved


@needs_root
def test_the_knob_is_restored_by_the_next_watch_after_sigkill(build, tmp_path):
    watcher, saved = start_watch_that_sets_the_knob(build, tmp_path)
    sleeper = sleep_pid(watcher)
    try:
        watcher.process.kill()
        watcher.finish()
        assert knobs.JOURNAL.exists()  # left behind
        after = Watcher(["--pid", str(sleeper), "--for", "0.3", "--interval", "0.1"], build)
        code, stderr = after.finish()
    finally:
        os.kill(sleeper, signal.SIGKILL)
    assert code == 0, stderr
    assert not knobs.JOURNAL.exists()
    assert knobs.current(knobs.TASK_DELAYACCT) == saved


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def redis_info(port: int) -> dict[str, str]:
    text = subprocess.run(
        ["redis-cli", "-h", "127.0.0.1", "-p", str(port), "INFO", "persistence"],
        capture_output=True,
        text=True,
        timeout=BOUND_S,
    ).stdout
    return dict(line.split(":", 1) for line in text.replace("\r", "").splitlines() if ":" in line)


def redis_cli(port: int, *words: str) -> str:
    done = subprocess.run(
        ["redis-cli", "-h", "127.0.0.1", "-p", str(port), *words], capture_output=True, text=True, timeout=BOUND_S
    )
    return done.stdout.strip()


REDIS_KEYS = 250_000  # of 1000 bytes: about 300 MiB in the server
needs_redis = pytest.mark.skipif(
    not all(shutil.which(tool) for tool in ("redis-server", "redis-cli", "redis-benchmark")),
    reason="needs Debian's redis-server and redis-tools (apt-get install redis-server redis-tools)",
)


@needs_root
@needs_redis
@pytest.mark.parametrize(
    ("delayacct", "source"), [("1", "taskstats"), ("0", "child_private_dirty")], ids=["accounted", "started-before"]
)
def test_redis_bgsave_copies_agree_with_redis_own_cow_size(build, tmp_path, monkeypatch, delayacct, source):
    # Redis measures its snapshot child's copy-on-write itself (Private_Dirty
    # of the child: pages either side copied) as rdb_last_cow_size; the watch
    # counts the copies the kernel made. Delay accounting is held as the
    # parameter says while the server starts: on, its tasks are accounted
    # and taskstats counts; off (the kernel's default), the watch, attached
    # later, counts from the BGSAVE child's private dirty pages.
    # Its own journal and lock: the watch takes the machine's lock to set the
    # same knob, and would wait for this test's hold of it.
    monkeypatch.setattr(knobs, "JOURNAL", tmp_path / "test-knobs.json")
    monkeypatch.setattr(knobs, "LOCK", tmp_path / "test-knobs.json.lock")
    port = free_port()
    out = tmp_path / "out"
    server = load = watcher = None
    with knobs.applied({knobs.TASK_DELAYACCT: delayacct}):
        try:
            server = subprocess.Popen(
                ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(tmp_path)]
                + ["--save", "", "--appendonly", "no", "--enable-debug-command", "local", "--logfile", ""],
                stdout=subprocess.DEVNULL,
            )
            deadline = time.monotonic() + BOUND_S
            while redis_cli(port, "PING") != "PONG":
                assert server.poll() is None and time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)
            assert redis_cli(port, "DEBUG", "POPULATE", str(REDIS_KEYS), "key", "1000") == "OK"
            watcher = Watcher(["--pid", str(server.pid), "--interval", "0.5", "--out", str(out)], build)
            watcher.expect(started, "the watch's start")
            # A write load of SETs at random over REDIS_KEYS keys, running
            # (some 50,000 commands served) before BGSAVE starts.
            served = int(redis_cli(port, "INFO", "stats").split("total_commands_processed:")[1].split()[0])
            load = subprocess.Popen(
                ["redis-benchmark", "-h", "127.0.0.1", "-p", str(port), "-c", "4", "-P", "16", "-n", "3000000"]
                + ["-r", str(REDIS_KEYS), "-q", "SET", "key:__rand_int__", "x" * 20],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            while (
                int(redis_cli(port, "INFO", "stats").split("total_commands_processed:")[1].split()[0]) < served + 50_000
            ):
                assert load.poll() is None and time.monotonic() < deadline, "redis-benchmark did not start its load"
                time.sleep(0.05)
            assert "Background saving started" in redis_cli(port, "BGSAVE")
            while redis_info(port).get("rdb_bgsave_in_progress") != "0":
                assert time.monotonic() < deadline, "BGSAVE did not end"
                time.sleep(0.05)
            info = redis_info(port)
            load.terminate()
            load.wait(BOUND_S)
            seen = watcher.expect(child_exited, "the BGSAVE child's exit")
            watcher.expect(interval_line, "the interval the child exited in", after=seen)
            watcher.process.send_signal(signal.SIGINT)
            code, stderr = watcher.finish()
        finally:
            for process in (load, watcher and watcher.process, server):
                if process is not None and process.poll() is None:
                    process.kill()
                    process.wait()
    assert code == 128 + signal.SIGINT, stderr
    assert info["rdb_last_bgsave_status"] == "ok"
    result = json.loads((out / "watch.json").read_text())
    copies_counted_or_skip(result)
    redis_pages = int(info["rdb_last_cow_size"]) / 4096
    during = result["phases"]["during_snapshot"]
    watch_copies, counted_by, note = verdict.best_copies(during)
    print(
        f"redis rdb_last_cow_size / 4096 = {redis_pages:,.0f}; watch copies while the child lived = "
        f"{watch_copies:,.0f} ({counted_by}; taskstats {during['wpcopy_count']:,.0f}, children's private dirty "
        f"{during['private_dirty_pages']:,.0f}, unaccounted faults {during['unaccounted_minflt']:,.0f}) {note}"
    )
    print("\n".join(result["verdict"]))
    assert redis_pages > 1000, f"too little copy-on-write to compare: {info['rdb_last_cow_size']} bytes"
    assert counted_by == source
    # The children's private dirty pages are Redis's own measure, read by
    # the watch every 50 ms while the child lives: the same count.
    assert 0.9 * redis_pages <= during["private_dirty_pages"] <= 1.1 * redis_pages
    # taskstats counts every copy, also of pages the child later released:
    # never fewer; where it counts more, the verdict says the two disagree.
    if counted_by == "taskstats":
        assert during["wpcopy_count"] >= 0.9 * redis_pages
        assert bool(note) == verdict.disagree(during["wpcopy_count"], during["private_dirty_pages"])
    assert "memory: the snapshot copied" in "\n".join(result["verdict"])
    assert {p["child_role"] for p in result["processes"].values() if p["role"] == "child"} == {"snapshot child"}


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_on_a_terminal_the_table_is_redrawn_in_place():
    fake = tracker.Watch.__new__(tracker.Watch)
    fake.root, fake.sharing, fake.events, fake.reasons = 7, False, [], {}
    fake.processes = {7: tracker.Process(7, "prog", 1, "watched", None)}
    counters = dict.fromkeys(tracker.COUNTERS, 1.0)
    rows = [
        {"scope": "process", "pid": 7, "comm": "prog", "role": "watched", "alive": True, **counters, "shared_pages": 0},
        {"scope": "system-wide", "t_end_s": 1.0, "phase": "before_snapshot", "pgreuse": 3.0},
    ]
    screen = FakeTerminal()
    display = watch_report.Display(fake, screen)
    display.show(rows)
    first = screen.getvalue()
    display.show(rows)
    lines = len(first.splitlines())
    assert "\x1b[" not in first and "pgreuse +3" in first
    assert screen.getvalue()[len(first) :].startswith(f"\x1b[{lines}A\x1b[J")  # up over the table, then clear
