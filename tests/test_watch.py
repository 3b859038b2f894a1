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

from cowsnap.measure import knobs, watch

DATA = Path(__file__).parent / "data"
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
    how = result["counted"]["copies"]
    if INTERFERED in how:
        pytest.skip(f"another program changed kernel.task_delayacct during the watch: {how}")
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
    during, after = phases["child_alive"], phases["after_child"]
    # About one copy per page written while the child held it (a few more
    # for the program's own stack and libc pages)...
    assert HALF <= during["copies"] <= 1.05 * HALF + 64, during
    assert during["copy_delay_s"] > 0
    # ...and none after it exited: every write fault reuses its page
    # (pgreuse is system-wide, so only a floor holds).
    assert after["copies"] <= 0.01 * HALF, after
    assert after["minflt"] >= HALF
    assert after["system_pgreuse"] >= 0.9 * HALF
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
    assert {(e["event"], e["pid"]) for e in result["events"]} >= {("started", child_pid), ("exited", child_pid)}
    import pandas as pd

    timeline = pd.read_csv(out / "timeline.csv")
    assert (timeline["pid"] == child_pid).any()
    assert set(timeline["phase"]) >= {"child_alive", "after_child"}
    assert (out / "timeline.png").stat().st_size > 0
    # --sharing: while the child lived, the half not yet written was still
    # shared with it; after it exited, nothing is; the cost is stated.
    root = timeline[(timeline["scope"] == "process") & (timeline["role"] == "watched")]
    assert root[root["phase"] == "child_alive"]["shared_pages"].max() >= HALF
    assert root[root["phase"] == "after_child"]["shared_pages"].dropna().iloc[-1] <= 0.01 * PAGES
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
    assert child_pages <= children[0]["copies"] <= child_pages + 64
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


@needs_root
def test_attach_to_a_running_process_that_exits_during_the_watch(build, cowchild, control, tmp_path, monkeypatch):
    # The kernel keeps delay accounting only for tasks started while it is
    # on: the test holds it on (its own journal) while cowchild starts.
    # Its own journal and lock: the watch takes the machine's lock to set the
    # same knob, and would wait for this test's hold of it.
    monkeypatch.setattr(knobs, "JOURNAL", tmp_path / "test-knobs.json")
    monkeypatch.setattr(knobs, "LOCK", tmp_path / "test-knobs.json.lock")
    out = tmp_path / "out"
    with knobs.applied({knobs.TASK_DELAYACCT: "1"}):
        program = subprocess.Popen([str(cowchild), str(PAGES), str(control)])
        try:
            reached(control, "filled")
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
    result = json.loads((out / "watch.json").read_text())
    copies_counted_or_skip(result)
    assert_copies_then_reuses(result)
    root = result["processes"][str(program.pid)]
    assert root["start_s"] is None  # it ran before the watch
    assert root["end_s"] is not None  # and the watch saw it exit, and ended
    assert ("exited", program.pid) in {(e["event"], e["pid"]) for e in result["events"]}


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
    while watch.read_stat(zombie.pid)["state"] != "Z":
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


def test_another_users_process_is_refused_by_the_ownership_check():
    with pytest.raises(watch.WatchError, match=r"belongs to user .*only root may watch another user's process"):
        watch.check_may_watch(os.getpid(), euid=os.geteuid() + 1 if os.geteuid() else 65534)
    watch.check_may_watch(os.getpid(), euid=os.geteuid())  # one's own: allowed
    watch.check_may_watch(os.getpid(), euid=0)  # root: allowed


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
        while watch.owner_of(sleeper.pid) != 65534:  # until setpriv has dropped to nobody
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
    for key in ("copies", "copy_delay_s", "cpu_delay_s"):
        how = result["counted"][key]
        assert how.startswith("not counted: ")
        assert "CAP_NET_ADMIN" in how or "only root may switch it on" in how, how
        assert result["processes"][str(sleeper.pid)][key] is None  # never 0
    assert result["counted"]["minflt"] == "/proc/PID/stat"
    assert result["processes"][str(sleeper.pid)]["minflt"] is not None
    assert "not counted: " in watcher.output()
    assert result["exit_notifications"].startswith("not counted: ")


def start_watch_that_sets_the_knob(build, tmp_path) -> tuple[Watcher, str]:
    """A watch of `sleep 60` that switched delay accounting on; the value
    it saved. Skips when the knob was on already (nothing to restore)."""
    before = knobs.current(knobs.TASK_DELAYACCT)
    # sleep's output goes elsewhere: the watch's pipes close when the watch ends.
    sleep = ["sh", "-c", "exec sleep 60 >/dev/null 2>&1"]
    watcher = Watcher(["--interval", "0.2", "--out", str(tmp_path / "out"), "--", *sleep], build)
    watcher.expect(started, "the watch's start")
    if not knobs.JOURNAL.exists():
        watcher.stop()
        pytest.skip(f"kernel.task_delayacct was {before} already (another program's): the watch changed nothing")
    return watcher, json.loads(knobs.JOURNAL.read_text())[str(knobs.TASK_DELAYACCT)]


def sleep_pid(watcher: Watcher) -> int:
    line = watcher.lines[watcher.expect(started, "the watch's start")]
    return int(line.split("pid ")[1].split()[0])


@needs_root
def test_the_knob_is_restored_after_sigint(build, tmp_path):
    watcher, saved = start_watch_that_sets_the_knob(build, tmp_path)
    sleeper = sleep_pid(watcher)
    try:
        watcher.expect(interval_line, "an interval")
        watcher.process.send_signal(signal.SIGINT)
        code, stderr = watcher.finish()
    finally:
        watcher.stop()
        os.kill(sleeper, signal.SIGKILL)
    assert code == 0, stderr
    assert "verdict" in watcher.output()
    assert json.loads((tmp_path / "out" / "watch.json").read_text())["ended_by"] == "SIGINT"
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


def test_the_verdict_follows_the_declared_thresholds():
    def phase(copies, minflt, reuses, child_copies=0.0):
        return {
            "seconds": 1.0,
            "copies": copies,
            "child_copies": child_copies,
            "copy_delay_s": 0.01,
            "minflt": minflt,
            "majflt": 0.0,
            "utime_s": 0.1,
            "stime_s": 0.1,
            "cpu_delay_s": 0.0,
            "system_pgreuse": reuses,
        }

    counted = dict.fromkeys(watch.COUNTERS, "")
    below = watch.COPYING_SHARE * 100_000 * 0.5
    lines = watch.verdict({"child_alive": phase(below, 100_000, 0), "after_child": phase(0, 1000, 1000)}, counted)
    assert lines[0].startswith("while a child lived (1.0 s): not copying")
    assert "MADV_POPULATE_WRITE" in lines[-1]
    few = watch.COPYING_MIN_PAGES - 1  # a large share of few faults: a fork's own stack pages
    lines = watch.verdict({"after_child": phase(few, few, 0)}, counted)
    assert lines[0].startswith("after the children exited (1.0 s): not copying")
    lines = watch.verdict({"child_alive": phase(900, 1000, 0, child_copies=300)}, counted)
    assert "copying: 900 pages copied" in lines[0] and "300 of them by the children" in lines[0]
    assert "munmap or MADV_DONTNEED" in lines[1] and "MADV_DONTFORK" in lines[1]
    missing = {**counted, "copies": "not counted: because"}
    lines = watch.verdict({"after_child": phase(float("nan"), 1000, 900)}, missing)
    assert "copies not counted: because" in lines[0]


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
def test_redis_bgsave_copies_agree_with_redis_own_cow_size(build, tmp_path, monkeypatch):
    # Redis measures its snapshot child's copy-on-write itself (Private_Dirty
    # of the child: pages either side copied) as rdb_last_cow_size; the watch
    # counts the copies the kernel made. Delay accounting is held on while
    # the server starts, so its tasks are accounted.
    # Its own journal and lock: the watch takes the machine's lock to set the
    # same knob, and would wait for this test's hold of it.
    monkeypatch.setattr(knobs, "JOURNAL", tmp_path / "test-knobs.json")
    monkeypatch.setattr(knobs, "LOCK", tmp_path / "test-knobs.json.lock")
    port = free_port()
    out = tmp_path / "out"
    server = load = watcher = None
    with knobs.applied({knobs.TASK_DELAYACCT: "1"}):
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
    assert code == 0, stderr
    assert info["rdb_last_bgsave_status"] == "ok"
    result = json.loads((out / "watch.json").read_text())
    copies_counted_or_skip(result)
    redis_pages = int(info["rdb_last_cow_size"]) / 4096
    watch_copies = result["phases"]["child_alive"]["copies"]
    print(
        f"redis rdb_last_cow_size / 4096 = {redis_pages:,.0f}; watch copies while the child lived = {watch_copies:,.0f}"
    )
    print("\n".join(result["verdict"]))
    assert redis_pages > 1000, f"too little copy-on-write to compare: {info['rdb_last_cow_size']} bytes"
    assert 0.5 * redis_pages <= watch_copies <= 2 * redis_pages


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_on_a_terminal_the_table_is_redrawn_in_place():
    fake = watch.Watch.__new__(watch.Watch)
    fake.root, fake.sharing, fake.events, fake.reasons = 7, False, [], {}
    fake.processes = {7: watch.Process(7, "prog", 1, "watched", None, base={"copies": 0.0}, total={"copies": 5.0})}
    counters = dict.fromkeys(watch.COUNTERS, 1.0)
    rows = [
        {"scope": "process", "pid": 7, "comm": "prog", "role": "watched", "alive": True, **counters, "shared_pages": 0},
        {"scope": "system-wide", "t_end_s": 1.0, "phase": "no_child", "system_pgreuse": 3.0},
    ]
    screen = FakeTerminal()
    display = watch.Display(fake, screen)
    display.show(rows)
    first = screen.getvalue()
    display.show(rows)
    lines = len(first.splitlines())
    assert "\x1b[" not in first and "pgreuse +3" in first
    assert screen.getvalue()[len(first) :].startswith(f"\x1b[{lines}A\x1b[J")  # up over the table, then clear
